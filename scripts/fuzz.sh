#!/usr/bin/env bash
# Run every fuzz target (or the ones named after SECONDS) for SECONDS each (default 60).
# Corpora live in fuzz/corpus/TARGET (not committed) and are seeded on first use:
# - parse: the frames of the capture corpus (../shared/pcaps, when present);
# - engine, cabi: start empty (their inputs are structured; libFuzzer grows them quickly);
# - rules, control: fuzz/seeds/TARGET;
# - vsadm: every ipvsadm command line recorded from the real ipvsadm
#   (examples/linux-rawsock/tests/ipvsadm/sequences.txt), words separated by NUL bytes.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on stable without a sanitizer (`-s none`).
# Any build error or crash fails the script; each target's totals are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse engine rules control vsadm cabi)
pcaps=${VS_PCAPS:-../shared/pcaps/tcpdump}

seed() { # TARGET
    local corpus=fuzz/corpus/$1
    if [ -d "$corpus" ] && [ -n "$(ls -A "$corpus" 2>/dev/null)" ]; then
        return
    fi
    mkdir -p "$corpus"
    case $1 in
    parse)
        if [ -d "$pcaps" ]; then
            cargo run -q -p vs-proto --example pcap_frames -- "$corpus" "$pcaps"/*
        else
            echo "fuzz: no capture corpus at $pcaps; parse starts from an empty corpus"
        fi
        ;;
    rules | control) cp fuzz/seeds/"$1"/* "$corpus"/ ;;
    vsadm)
        local i=0
        grep '^ipvsadm ' examples/linux-rawsock/tests/ipvsadm/sequences.txt | while read -r line; do
            i=$((i + 1))
            # The words after the program name, NUL-separated (no shell quoting in these lines
            # is needed by the parser's seeds).
            printf '%s' "${line#ipvsadm }" | tr ' ' '\0' >"$corpus/seq-$i"
        done
        ;;
    esac
}

(cd fuzz && cargo fuzz build -s none)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
    seed "$t"
    echo "== fuzz $t (${seconds} s)"
    if ! (cd fuzz && cargo fuzz run -s none "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1) >"$log" 2>&1; then
        cat "$log"
        echo "fuzz: $t failed (crash inputs, if any, are in fuzz/artifacts/$t)"
        exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)|DONE +cov' "$log" || true
done
