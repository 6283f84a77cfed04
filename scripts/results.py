#!/usr/bin/env python3
"""The README's performance table from the last `cargo bench -p vs-benches --bench dataplane`
(criterion's median estimates under target/criterion), `scripts/callgrind.sh` output (file given
as the first argument, optional) and `scripts/katran.sh` output (second argument, optional).

    cargo bench -p vs-benches --bench dataplane
    ./scripts/callgrind.sh > /tmp/cg.txt; sudo ./scripts/katran.sh > /tmp/katran.txt
    ./scripts/results.py /tmp/cg.txt /tmp/katran.txt
"""
import json
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def ns(group, function, param=None):
    path = root / group / function
    if param is not None:
        path = path / str(param)
    f = path / "new" / "estimates.json"
    if not f.exists():
        return None
    return json.loads(f.read_text())["median"]["point_estimate"]


def fmt(v):
    return "—" if v is None else (f"{v:.1f} ns" if v < 1000 else f"{v / 1000:.2f} µs")


def pair(group, function, a, b):
    return f"{fmt(ns(group, function, a))} / {fmt(ns(group, function, b))}"


instr = {}
if len(sys.argv) > 1:
    for line in open(sys.argv[1]):
        m = re.match(r"engine (\w+)\s+(v4|v6):.*floor: (\d+)\)", line)
        if m:
            instr[(m.group(1), m.group(2))] = int(m.group(3))
katran = {}
if len(sys.argv) > 2:
    for line in open(sys.argv[2]):
        m = re.search(r"case=(\S+) .*median=([\d.]+)", line)
        if m:
            katran[m.group(1)] = float(m.group(2))


def ins(case, family="v4"):
    return str(instr.get((case, family), "—"))


def ratio(a, b):
    return "" if a is None or b is None else f" ({b / a:.1f}× slower)"


k = katran
floor = k.get("empty-program", 0)
ack = f"ACK (IPIP, LRU hit): {k['ack']:.0f} ns raw, ≈ {k['ack'] - floor - 20:.0f} net of its {floor:.0f} ns harness and ~20 ns wrapper" if "ack" in k else "—"
syn = f"SYN (Maglev + LRU insert): {k['syn']:.0f} ns raw" if "syn" in k else "—"
miss = f"miss: {k['miss']:.0f} ns raw" if "miss" in k else "—"
nat1, base1 = ns("established", "vs_nat_in_v4", 1), ns("established", "baseline_nat_in_v4", 1)
nat4k, base4k = ns("established", "vs_nat_in_v4", 4096), ns("established", "baseline_nat_in_v4", 4096)
rows = [
    ("established NAT, 1 flow", fmt(nat1), fmt(base1) + ratio(nat1, base1), ack, ins("nat_in")),
    ("established NAT, 4,096 flows", fmt(nat4k), fmt(base4k) + ratio(nat4k, base4k), "—", "—"),
    ("established NAT, IPv6, 1 / 4,096 flows", pair("established", "vs_nat_in_v6", 1, 4096), "—", "—", ins("nat_in", "v6")),
    ("NAT reply, 1 / 4,096 flows (IPv6: " + pair("established", "vs_nat_reply_v6", 1, 4096) + ")",
     pair("established", "vs_nat_reply_v4", 1, 4096), "—", "—", ins("nat_reply")),
    ("DR, 1 / 4,096 flows (IPv6: " + pair("established", "vs_dr_v6", 1, 4096) + ")",
     pair("established", "vs_dr_v4", 1, 4096), "—", "—", ins("dr")),
    ("TUN, 1 / 4,096 flows (IPv6: " + pair("established", "vs_tun_v6", 1, 4096) + ")",
     pair("established", "vs_tun_v4", 1, 4096), "—", "Katran's ACK above is its IPIP case", ins("tun")),
]
single, burst = ns("large", "vs_nat_in_v4_single", 1 << 20), ns("large", "vs_nat_in_v4_burst32", 1 << 20)
base1m = ns("large", "baseline_nat_in_v4", 1 << 20)
rows.append(("established NAT, 1M flows in random order (table for 4M), single / `process_burst` of 32",
             f"{fmt(single)} / {fmt(burst)}", fmt(base1m), "—", "—"))
s16, b16 = ns("large", "vs_nat_in_v4_single", 16 << 20), ns("large", "vs_nat_in_v4_burst32", 16 << 20)
if s16 is not None:
    rows.append(("established NAT, 16M flows (table for 17M), single / `process_burst` of 32",
                 f"{fmt(s16)} / {fmt(b16)}", "—", "—", "—"))
for servers in (16, 256):
    vals = " / ".join(fmt(ns("new_conn", f"vs_{s}_nat_v4", servers)) for s in ("rr", "wlc", "sh", "mh"))
    rows.append((f"new connection (SYN), rr / wlc / sh / mh, {servers} servers", vals, "—",
                 syn if servers == 16 else "—",
                 f"wlc {ins('new_wlc')}, mh {ins('new_mh')}" if servers == 16 else "—"))
nv, nb = ns("not_vip", "vs_tcp_v4"), ns("not_vip", "baseline_tcp_v4")
rows.append(("TCP to an address that is no service's", fmt(nv), fmt(nb) + " (parse only, no lookup)", miss, ins("not_vip")))
rows.append(("expiry sweep, per live entry (1M)", fmt(ns("sweep", "vs_per_entry", 1 << 20)), "—", "—", "—"))
print("| case (IPv4 unless said) | vs | baseline (etherparse + HashMap) | Katran, same session | instructions |")
print("|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
