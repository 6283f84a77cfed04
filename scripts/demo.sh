#!/usr/bin/env bash
# The main job. Until the engine and the director land (issues 4 and later), the demo shows the
# packet layer at work: it dissects real captures with vs-proto and prints one JSON object per
# frame. The replay demo, and then the director balancing HTTP across real servers, replace it.
set -euo pipefail
cd "$(dirname "$0")/.."
pcaps=${VS_PCAPS:-../shared/pcaps/tcpdump}
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    if [ ! -d "$pcaps" ]; then
        echo "demo: give capture files as arguments (no corpus at $pcaps)"
        exit 2
    fi
    files=("$pcaps/802.1ad_QinQ.pcap" "$pcaps/icmpv6.pcap" "$pcaps/ipv6-routing-header.pcap")
fi
cargo build -q -p vs-proto --example dissect
for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    echo "== $f"
    ./target/debug/examples/dissect "$f" | head -n 5
done
echo "(the replay demo arrives with the engine, issue 4; the director after it)"
