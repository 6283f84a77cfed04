#!/usr/bin/env bash
# Instructions per packet (valgrind callgrind: repeatable on a noisy VM, unlike time).
# - parse + NAT rewrite of one frame, vs-proto against etherparse (net of the frame copy);
# - the engine's paths over 4,096 established flows (and new connections), each by the
#   difference of two runs so that the set-up cancels out; `copy_only` is the harness floor
#   (frame copy + buffer), already subtracted in the "net" column.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
cargo build -q --release -p vs-benches --bin callgrind_parse_nat --bin callgrind_engine
collected() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
for len in 64 1500; do
    base=$(collected ./target/release/callgrind_parse_nat copy-only "$n" "$len")
    for w in vs-proto etherparse; do
        total=$(collected ./target/release/callgrind_parse_nat "$w" "$n" "$len")
        echo "parse_nat ${len}B $w: $(( (total - base) / n )) instructions/packet"
    done
done
per_packet() { # CASE FAMILY
    local small large
    small=$(collected ./target/release/callgrind_engine "$1" "$2" "$n")
    large=$(collected ./target/release/callgrind_engine "$1" "$2" $((3 * n)))
    echo $(( (large - small) / (2 * n) ))
}
for family in v4 v6; do
    floor=$(per_packet copy_only "$family")
    for case in nat_in nat_reply dr tun not_vip new_wlc new_mh; do
        total=$(per_packet "$case" "$family")
        printf 'engine %-9s %s: %4d instructions/packet (net of the %d-instruction harness floor: %d)\n' \
            "$case" "$family" "$total" "$floor" $((total - floor))
    done
done
