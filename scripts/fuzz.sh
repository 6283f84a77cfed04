#!/usr/bin/env bash
# Run the parser fuzz target for SECONDS (default 60), seeded from the capture corpus when
# ../shared/pcaps is present. Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on stable
# without a sanitizer (`-s none`).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
pcaps=${VS_PCAPS:-../shared/pcaps/tcpdump}
corpus=fuzz/corpus/parse
if [ ! -d "$corpus" ] || [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then
    if [ -d "$pcaps" ]; then
        cargo run -q -p vs-proto --example pcap_frames -- "$corpus" "$pcaps"/*
    else
        echo "fuzz: no capture corpus at $pcaps; starting from an empty corpus"
        mkdir -p "$corpus"
    fi
fi
cd fuzz
cargo fuzz run -s none parse "corpus/parse" -- -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
