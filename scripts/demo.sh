#!/usr/bin/env bash
# The main job: the classic LVS-NAT tutorial, live. Builds vsd, creates network namespaces (a
# client, the director, three real servers running a real HTTP server behind a switch; the
# director is also their gateway and masquerades their own traffic), starts `vsd run`, types the
# tutorial's ipvsadm commands with vsadm (VIP 198.18.0.100 port 80, rr, three NAT real servers
# of weight 1), makes 30 HTTP requests from the client to the VIP, prints how many each real
# server answered and vsadm's listings, and removes everything again (also when interrupted).
# Needs root.
#
# The offline replay of the same example stays available: ./scripts/replay-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "demo.sh needs root (network namespaces): sudo $0" >&2
    exit 1
fi
for tool in ip nft iptables curl python3; do
    command -v "$tool" >/dev/null || { echo "demo.sh needs $tool (apt-get install iproute2 nftables iptables curl python3)" >&2; exit 1; }
done
cargo build -q --release -p vs-linux-rawsock --bins
VSD=$PWD/target/release/vsd
VSADM=$PWD/target/release/vsadm
TOPO=vsdemo-
source scripts/topo.sh
work=$(mktemp -d)
cleanup() {
    topo_down
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

topo_up nat
topo_http "$work"
topo_ns dir "$VSD" run --iface d0 --iface d1 --control "$work/vsd.sock" 2>"$work/vsd.log" &
for _ in $(seq 100); do [ -S "$work/vsd.sock" ] && break; sleep 0.05; done
[ -S "$work/vsd.sock" ] || { cat "$work/vsd.log"; exit 1; }

# The tutorial's commands, as an LVS operator types them (vsadm is ipvsadm for vsd).
export VSADM_CONTROL=$work/vsd.sock
vsadm() { echo "\$ vsadm $*"; "$VSADM" "$@"; }
vsadm -A -t 198.18.0.100:http -s rr
vsadm -a -t 198.18.0.100:http -r 198.18.1.1:http -m -w 1
vsadm -a -t 198.18.0.100:http -r 198.18.1.2:http -m -w 1
vsadm -a -t 198.18.0.100:http -r 198.18.1.3:http -m -w 1
echo
echo "30 HTTP requests from the client (198.18.0.1) to http://198.18.0.100/:"
for _ in $(seq 30); do
    topo_ns client curl -sS -m 5 http://198.18.0.100/ || echo "request failed"
done | sort | uniq -c | while read -r count who; do echo "  $who answered $count"; done

echo
vsadm -L -n
vsadm -L -n --stats
