#!/usr/bin/env bash
# A benchmark, not a test: packets per second delivered and CPU time per packet for vsd and for
# an nftables DNAT director doing the same job, in one run, on the LVS-NAT topology of
# scripts/topo.sh (client → director → real server 198.18.1.1, replies back through the
# director). Loads are iperf3's, bounded in time: UDP with 64-byte payloads at full speed (the
# receiver counts what arrived), then TCP (bulk, offloads on). Needs root and iperf3.
#
#   sudo ./scripts/throughput.sh [SECONDS]      (default 5 s per measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-5}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
for tool in iperf3 nft python3; do command -v $tool >/dev/null || { echo "needs $tool" >&2; exit 1; }; done
cargo build -q --release -p vs-linux-rawsock --bin vsd
VSD=$PWD/target/release/vsd
TOPO=vstp-
source scripts/topo.sh
work=$(mktemp -d)
cleanup() { topo_down; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
topo_up nat
topo_ns rs1 iperf3 -s -D --pidfile "$work/iperf.pid" >/dev/null

busy_jiffies() { awk '/^cpu /{print $2+$3+$4+$6+$7+$8}' /proc/stat; }
proc_jiffies() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# measure NAME PID: runs the loads, prints one line per load.
measure() {
    local name=$1 pid=$2 mode json before after pbefore pafter
    for mode in udp tcp; do
        before=$(busy_jiffies); pbefore=0; [ "$pid" != 0 ] && pbefore=$(proc_jiffies "$pid")
        if [ $mode = udp ]; then
            json=$(topo_ns client iperf3 -c 198.18.0.100 -u -b 0 -l 64 -t "$SECONDS_PER_RUN" --json)
        else
            json=$(topo_ns client iperf3 -c 198.18.0.100 -t "$SECONDS_PER_RUN" --json)
        fi
        after=$(busy_jiffies); pafter=0; [ "$pid" != 0 ] && pafter=$(proc_jiffies "$pid")
        python3 - "$name" "$mode" "$((after - before))" "$((pafter - pbefore))" "$hz" "$json" <<'PY'
import json, sys
name, mode, busy, proc, hz, raw = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
r = json.loads(raw)["end"]
if mode == "udp":
    s = r["sum"]
    packets = s["packets"] - s["lost_packets"]
    secs = s["seconds"]
    what = f"UDP 64 B: {packets / secs / 1e3:8.1f} kpps delivered, {s['lost_percent']:5.1f} % lost"
else:
    s = r["sum_received"]
    secs = s["seconds"]
    packets = s["bytes"] / 1448  # MSS-sized segments on the wire
    what = f"TCP bulk: {s['bits_per_second'] / 1e9:6.2f} Gbit/s ({packets / secs / 1e3:7.1f} k segments/s)"
all_ns = busy / hz * 1e9 / max(packets, 1)
own = f", director process {proc / hz * 1e9 / max(packets, 1):6.0f} ns" if proc else ""
print(f"{name:<9} {what}; CPU per packet: whole machine {all_ns:6.0f} ns{own}")
PY
    done
}

cat >"$work/rules" <<'RULES'
-A -t 198.18.0.100:5201 -s rr
-a -t 198.18.0.100:5201 -r 198.18.1.1:5201 -m
-A -u 198.18.0.100:5201 -s rr
-a -u 198.18.0.100:5201 -r 198.18.1.1:5201 -m
RULES
topo_ns dir "$VSD" run --iface d0 --iface d1 --rules "$work/rules" --control "$work/vsd.sock" --conn-capacity 65536 \
    2>"$work/vsd.log" &
for _ in $(seq 100); do [ -S "$work/vsd.sock" ] && break; sleep 0.05; done
vsd_pid=$(pgrep -f "vsd run .*$work/rules")
echo "iperf3 client 198.18.0.1 → VIP 198.18.0.100:5201 → real server 198.18.1.1, ${SECONDS_PER_RUN} s per load"
measure vsd "$vsd_pid"
"$VSD" ctl --control "$work/vsd.sock" raw '{"op":"list"}' >"$work/list.json"
python3 - "$work/list.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["report"]
print(f"          (vsd: ring drops {r['ring_drops']} of {r['ring_packets']} frames, transmit errors {r['tx_errors']})")
PY
kill "$vsd_pid"; while kill -0 "$vsd_pid" 2>/dev/null; do sleep 0.1; done

# The same job for the kernel: the VIP on the director, DNAT to the real server, conntrack
# reverses the replies.
topo_ns dir ip addr add 198.18.0.100/32 dev d0
topo_ns dir nft -f - <<'NFT'
table ip lb {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr 198.18.0.100 tcp dport 5201 dnat to 198.18.1.1:5201
        ip daddr 198.18.0.100 udp dport 5201 dnat to 198.18.1.1:5201
    }
}
NFT
measure nftables 0
