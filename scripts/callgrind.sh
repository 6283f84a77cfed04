#!/usr/bin/env bash
# Instructions per packet (valgrind callgrind; repeatable on a noisy VM) for each parse + NAT
# workload of benches/src/lib.rs, net of the per-iteration frame copy.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
cargo build -q --release -p vs-benches --bin callgrind_parse_nat
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null ./target/release/callgrind_parse_nat "$1" "$n" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for len in 64 1500; do
    base=$(count copy-only "$len")
    for w in vs-proto etherparse; do
        total=$(count "$w" "$len")
        echo "parse_nat ${len}B $w: $(( (total - base) / n )) instructions/packet"
    done
done
# The engine's established-flow NAT path (4096 live flows): per-packet cost by difference of two
# runs, so that the setup (opening the flows) cancels out.
small=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null ./target/release/callgrind_parse_nat engine-nat 10000 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
large=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null ./target/release/callgrind_parse_nat engine-nat 30000 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
echo "engine established NAT, 4096 flows: $(( (large - small) / 20000 )) instructions/packet"
