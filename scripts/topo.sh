#!/usr/bin/env bash
# Test topologies for the live director, in network namespaces (addresses from 198.18.0.0/15
# and 2001:db8::/32 only). Source it, then call `topo_up nat|flat [PREFIX]` and `topo_down`.
#
# nat  (the LVS-NAT tutorial, two-armed): client ns — director ns (d0: 198.18.0.254,
#      2001:db8::fe) ; director ns (d1: 198.18.1.254, 2001:db8:1::fe) — switch ns (bridge) —
#      rs1..rs3 (198.18.1.1-3, 2001:db8:1::1-3, default routes via the director, which also
#      masquerades their own traffic to the client side).
# flat (DR and TUN, one-armed): client, director (198.18.0.254), rs1..rs3 (198.18.0.11-13)
#      on one switch; the VIP 198.18.0.100 is on the real servers' lo with arp_ignore=1 and
#      arp_announce=2.
#
# Namespaces are named ${TOPO}client, ${TOPO}dir, ${TOPO}sw, ${TOPO}rs1..3 (TOPO defaults to "vs-").

TOPO=${TOPO:-vs-}
VIP=198.18.0.100
VIP6=2001:db8::100

topo_ns() { ip netns exec "${TOPO}$1" "${@:2}"; }

topo_down() {
    local ns
    for ns in client dir sw rs1 rs2 rs3; do
        ip netns pids "${TOPO}$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    done
    sleep 0.2
    for ns in client dir sw rs1 rs2 rs3; do
        ip netns pids "${TOPO}$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "${TOPO}$ns" 2>/dev/null || true
    done
}

# A veth from namespace $1 (interface $2) into the switch's bridge.
_to_switch() {
    ip link add "${TOPO}t$1" type veth peer name "$2" netns "${TOPO}$1"
    ip link set "${TOPO}t$1" netns "${TOPO}sw"
    topo_ns sw ip link set "${TOPO}t$1" master br0 up
    topo_ns "$1" ip link set "$2" up
}

topo_up() {
    local mode=$1 i
    topo_down
    for ns in client dir sw rs1 rs2 rs3; do
        ip netns add "${TOPO}$ns"
        topo_ns "$ns" ip link set lo up
        topo_ns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    topo_ns sw ip link add br0 type bridge
    topo_ns sw ip link set br0 up
    if [ "$mode" = nat ]; then
        ip link add c0 netns "${TOPO}client" type veth peer name d0 netns "${TOPO}dir"
        topo_ns client ip link set c0 up
        topo_ns client ip addr add 198.18.0.1/24 dev c0
        topo_ns client ip addr add 2001:db8::1/64 dev c0 nodad
        topo_ns dir ip link set d0 up
        topo_ns dir ip addr add 198.18.0.254/24 dev d0
        topo_ns dir ip addr add 2001:db8::fe/64 dev d0 nodad
        _to_switch dir d1
        topo_ns dir ip addr add 198.18.1.254/24 dev d1
        topo_ns dir ip addr add 2001:db8:1::fe/64 dev d1 nodad
        topo_ns dir sysctl -qw net.ipv4.ip_forward=1
        topo_ns dir iptables -t nat -A POSTROUTING -s 198.18.1.0/24 -o d0 -j MASQUERADE
        for i in 1 2 3; do
            _to_switch "rs$i" eth0
            topo_ns "rs$i" ip addr add "198.18.1.$i/24" dev eth0
            topo_ns "rs$i" ip addr add "2001:db8:1::$i/64" dev eth0 nodad
            topo_ns "rs$i" ip route add default via 198.18.1.254
            topo_ns "rs$i" ip -6 route add default via 2001:db8:1::fe
        done
    else
        _to_switch client c0
        topo_ns client ip addr add 198.18.0.1/24 dev c0
        _to_switch dir d0
        topo_ns dir ip addr add 198.18.0.254/24 dev d0
        for i in 1 2 3; do
            _to_switch "rs$i" eth0
            topo_ns "rs$i" ip addr add "198.18.0.1$i/24" dev eth0
            topo_ns "rs$i" ip addr add "$VIP/32" dev lo
            topo_ns "rs$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2 \
                net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
        done
    fi
}

# A real HTTP server on every real server, answering with its name.
topo_http() {
    local i
    for i in 1 2 3; do
        mkdir -p "$1/rs$i"
        echo "rs$i" >"$1/rs$i/index.html"
        topo_ns "rs$i" python3 -m http.server 80 --bind :: --directory "$1/rs$i" >/dev/null 2>&1 &
    done
    for i in 1 2 3; do
        for _ in $(seq 50); do
            topo_ns "rs$i" bash -c 'exec 3<>/dev/tcp/127.0.0.1/80' 2>/dev/null && break
            sleep 0.1
        done
    done
}
