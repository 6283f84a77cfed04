#!/usr/bin/env bash
# Record IPVS connection states and timers from the real Linux 6.1 kernel (../shared/ipvs-oracle):
# `ipvsadm -L -c -n` after each step of NAT conversations (handshake, data, the client's FIN and
# the server's answering FIN, RST, a lost SYN-ACK, UDP, secure_tcp, ipvsadm --set), written to
# vs-proto/tests/oracle/conn-states.txt, which vs-proto/tests/oracle_states.rs replays through
# the engine. One boot of the oracle VM (~10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
oracle=${IPVS_ORACLE:-../shared/ipvs-oracle}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/job.sh" <<'JOB'
. /opt/ipvs/lib.sh
net_init
vip_add 198.19.1.10 198.19.1.11 198.19.1.12 198.19.1.13
rs_add 192.188.4.1
client_add 198.18.3.1 198.18.3.2 198.18.3.3 198.18.3.4 198.18.3.5 198.18.3.6
ipvsadm -A -t 198.19.1.10:80 -s rr
ipvsadm -a -t 198.19.1.10:80 -r 192.188.4.1:80 -m -w 1
ipvsadm -A -t 198.19.1.11:80 -s rr
ipvsadm -a -t 198.19.1.11:80 -r 198.51.100.7:80 -m -w 1
ipvsadm -A -u 198.19.1.10:53 -s rr
ipvsadm -a -u 198.19.1.10:53 -r 192.188.4.1:53 -m -w 1
ipvsadm -A -t 198.19.1.12:80 -s rr
ipvsadm -a -t 198.19.1.12:80 -r 192.188.4.1:80 -m -w 1
ipvsadm -A -t 198.19.1.13:80 -s rr
ipvsadm -a -t 198.19.1.13:80 -r 192.188.4.1:80 -m -w 1
cat > steps <<'EOS'
open 198.18.3.1:41001 198.19.1.10:80 est
exec echo STEP handshake; ipvsadm -L -c -n
send 1 100
exec echo STEP data; ipvsadm -L -c -n
close 1
sleep 0.5
exec echo STEP client-fin; ipvsadm -L -c -n
open 198.18.3.2:41002 198.19.1.10:80 est
reset 2
exec echo STEP rst; ipvsadm -L -c -n
open 198.18.3.3:41003 198.19.1.11:80 syn
exec echo STEP lost-synack; ipvsadm -L -c -n
udp 198.18.3.4:41004 198.19.1.10:53
exec echo STEP udp; ipvsadm -L -c -n
exec echo 3 > /proc/sys/net/ipv4/vs/secure_tcp
open 198.18.3.5:41005 198.19.1.12:80 est
exec echo STEP secure-handshake; ipvsadm -L -c -n
send 5 100
exec echo STEP secure-data; ipvsadm -L -c -n
exec echo 0 > /proc/sys/net/ipv4/vs/secure_tcp
exec ipvsadm --set 100 50 30
open 198.18.3.6:41006 198.19.1.13:80 est
exec echo STEP set-timeouts; ipvsadm -L -c -n
EOS
python3 /opt/ipvs/conns.py steps
JOB
out=vs-proto/tests/oracle/conn-states.txt
{
    echo "# recorded from Linux 6.1 IPVS (ipvs-oracle) by scripts/record-states.sh on $(date -u +%Y-%m-%d)"
    "$oracle/run.sh" "$tmp/job.sh" 2>/dev/null | sed -n '/^STEP handshake/,$p' | grep -v '^run:'
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(grep -c '^STEP' "$out") steps)"
