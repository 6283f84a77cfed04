#!/usr/bin/env bash
# Every test of the project: formatting, lints, the test suites (incl. the capture corpus
# against tshark when ../shared/pcaps and tshark are present), the no-std proof, docs, the
# defmt build, the C library's firmware build (the C/C++ suites run in cargo test), benchmark compilation and a bounded fuzz smoke run (when cargo-fuzz is installed).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p vs-proto --features defmt -- -D warnings
cargo clippy -p vs-sched --features defmt -- -D warnings

step "examples/smartnic (a workspace of its own): fmt, clippy with and without defmt"
cargo fmt --manifest-path examples/smartnic/Cargo.toml -- --check
cargo clippy --manifest-path examples/smartnic/Cargo.toml --release -- -D warnings
cargo clippy --manifest-path examples/smartnic/Cargo.toml --release --features defmt -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "no-std proof"
./ci/nostd-check.sh

step "C library: firmware (no_std) build"
./ci/ffi-firmware.sh

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q

step "benchmarks compile"
cargo bench --workspace --no-run -q

if cargo fuzz --version >/dev/null 2>&1; then
    step "fuzz smoke run (${VS_FUZZ_SECONDS:-20} s per target)"
    # The whole log is kept and shown on failure: a build error or a crash fails the run.
    fuzz_log=$(mktemp)
    if ! ./scripts/fuzz.sh "${VS_FUZZ_SECONDS:-20}" >"$fuzz_log" 2>&1; then
        cat "$fuzz_log"
        echo "fuzz: the smoke run failed"
        exit 1
    fi
    grep -E '^(== fuzz|Done|stat::number_of_executed_units)' "$fuzz_log"
    rm -f "$fuzz_log"
else
    echo "SKIP: fuzz smoke run (cargo-fuzz not installed; .ci/run installs it)"
fi

step "all tests passed"
