#!/usr/bin/env bash
# The no-std proof: build the freestanding binary (optimised and unoptimised, panic = "abort")
# and check that it is a static executable that needs no shared library.
set -euo pipefail
cd "$(dirname "$0")/nostd-check"
export CARGO_TARGET_DIR=../../target/nostd-check
cargo build -q --release
cargo build -q
bin=$CARGO_TARGET_DIR/release/vs-nostd-check
if readelf -d "$bin" | grep -q NEEDED; then
    echo "nostd-check: $bin needs shared libraries"
    exit 1
fi
echo "nostd-check: freestanding static binary built without std or alloc ($(stat -c %s "$bin") bytes)"
