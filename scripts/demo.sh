#!/usr/bin/env bash
# The main job: the classic LVS-NAT tutorial, live. Builds vsd, creates network namespaces (a
# client, the director, three real servers running a real HTTP server behind a switch; the
# director is also their gateway and masquerades their own traffic), starts `vsd run` with the
# tutorial's rules (VIP 198.18.0.100 port 80, rr, three NAT real servers of weight 1), makes 30
# HTTP requests from the client to the VIP, prints how many each real server answered and the
# service listing, and removes everything again (also when interrupted). Needs root.
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
cargo build -q --release -p vs-linux-rawsock --bin vsd
VSD=$PWD/target/release/vsd
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
cat >"$work/rules" <<'RULES'
# The LVS-NAT tutorial: ipvsadm -A -t VIP:http -s rr; ipvsadm -a -t VIP:http -r RS:http -m -w 1
-A -t 198.18.0.100:http -s rr
-a -t 198.18.0.100:http -r 198.18.1.1:http -m -w 1
-a -t 198.18.0.100:http -r 198.18.1.2:http -m -w 1
-a -t 198.18.0.100:http -r 198.18.1.3:http -m -w 1
RULES
echo "rules:"
sed 's/^/  /' "$work/rules"
topo_ns dir "$VSD" run --iface d0 --iface d1 --rules "$work/rules" --control "$work/vsd.sock" 2>"$work/vsd.log" &
for _ in $(seq 100); do [ -S "$work/vsd.sock" ] && break; sleep 0.05; done
[ -S "$work/vsd.sock" ] || { cat "$work/vsd.log"; exit 1; }

echo
echo "30 HTTP requests from the client (198.18.0.1) to http://198.18.0.100/:"
for _ in $(seq 30); do
    topo_ns client curl -sS -m 5 http://198.18.0.100/ || echo "request failed"
done | sort | uniq -c | while read -r count who; do echo "  $who answered $count"; done

echo
echo "vsd's service listing (vsd ctl list):"
"$VSD" ctl --control "$work/vsd.sock" list | sed 's/^/  /'
