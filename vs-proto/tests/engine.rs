//! The engine on full conversations: NAT, DR and TUN, IPv4 and IPv6, TCP and UDP; states,
//! counters, timeouts, quiescing and deletion, table-full refusal, and no allocation.

#[path = "common/counting.rs"]
mod counting;

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{CLIENT_MAC, DIRECTOR_MAC, checksums_ok, frame};
use counting::allocations;
use vs_proto::conn::{ConnState, ConnTable, Forward};
use vs_proto::engine::{DropReason, Engine, EngineConfig, RealConfig, ServiceConfig, ServiceKey, ServiceSlot, Verdict};
use vs_proto::wire::{IpProtocol, MacAddr, PacketBuf, Summary, TcpFlags};

const RS_MAC: MacAddr = MacAddr([0x02, 0x5e, 0, 0, 0, 1]);
const HEADROOM: usize = 64;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn vip() -> (IpAddr, u16) {
    (v4(198, 18, 0, 100), 80)
}

fn client(n: u8) -> (IpAddr, u16) {
    (v4(198, 18, 5, n), 40000 + u16::from(n))
}

fn rs(n: u8) -> IpAddr {
    v4(198, 18, 1, n)
}

fn neighbours(addr: IpAddr) -> Option<MacAddr> {
    match addr {
        IpAddr::V4(a) if a.octets()[2] == 1 => Some(RS_MAC),
        _ => Some(CLIENT_MAC),
    }
}

/// An engine with one TCP service on `vip()` and the given real servers.
struct Lab {
    engine: Engine<'static, 8>,
}

impl Lab {
    fn new(scheduler: &str, forward: Forward, reals: &[u8], capacity: usize) -> Lab {
        let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(capacity)].into_boxed_slice());
        let table = ConnTable::new(memory, capacity, 99).unwrap();
        let services: &'static mut [ServiceSlot<8>] =
            Box::leak((0..4).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
        let config = EngineConfig {
            mac: DIRECTOR_MAC,
            tunnel_v4: Some(Ipv4Addr::new(198, 18, 0, 254)),
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(table, services, config).unwrap();
        for proto in [IpProtocol::TCP, IpProtocol::UDP] {
            let key = ServiceKey::new(proto, vip().0, vip().1);
            engine.add_service(key, &ServiceConfig { scheduler, ..ServiceConfig::default() }).unwrap();
            for n in reals {
                let port = if forward == Forward::Nat { 8080 } else { 80 };
                let real =
                    RealConfig { addr: rs(*n), port, forward, weight: 1, upper_threshold: 0, lower_threshold: 0 };
                engine.add_real(&key, &real).unwrap();
            }
        }
        Lab { engine }
    }

    fn send(&mut self, frame: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
        let mut storage = vec![0u8; HEADROOM + frame.len()];
        storage[HEADROOM..].copy_from_slice(frame);
        let mut buf = PacketBuf::new(&mut storage, HEADROOM, frame.len()).unwrap();
        let verdict = self.engine.process(&mut buf, now_ms, &neighbours);
        (verdict, buf.data().to_vec())
    }

    fn tcp_key(&self) -> ServiceKey {
        ServiceKey::new(IpProtocol::TCP, vip().0, vip().1)
    }

    /// (active, inactive) of each real server, in IPVS list order.
    fn counts(&self, proto: IpProtocol) -> Vec<(IpAddr, u32, u32)> {
        let key = ServiceKey::new(proto, vip().0, vip().1);
        self.engine.service(&key).unwrap().reals().map(|(r, d)| (r.addr, d.active, d.inactive)).collect()
    }

    fn state_of(&self, c: (IpAddr, u16)) -> Option<ConnState> {
        let t = self.engine.connections();
        t.lookup_in(IpProtocol::TCP, c, vip()).map(|i| t.get(i).unwrap().state())
    }
}

fn summary(frame: &[u8]) -> Summary {
    Summary::from_ethernet(frame).unwrap()
}

#[test]
fn nat_tcp_conversation() {
    let mut lab = Lab::new("rr", Forward::Nat, &[1], 64);
    let c = client(1);
    let (v, out) = lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 0);
    assert_eq!(v, Verdict::Transmit { next_hop: rs(1), port: 0 });
    let s = summary(&out);
    assert_eq!((s.dst, s.dst_port(), s.src, s.src_port()), (Some(rs(1)), 8080, Some(c.0), c.1));
    assert_eq!(&out[0..12], &[RS_MAC.0, DIRECTOR_MAC.0].concat()[..]);
    assert_eq!(out[14 + 8], 63, "TTL decremented");
    assert!(checksums_ok(&out));
    assert_eq!(lab.state_of(c), Some(ConnState::SynRecv));
    assert_eq!(lab.counts(IpProtocol::TCP), [(rs(1), 1, 0)], "SYN_RECV counts as active");

    // The real server's SYN+ACK goes back from the VIP.
    let (v, out) = lab.send(&frame((rs(1), 8080), c, IpProtocol::TCP, TcpFlags::SYN | TcpFlags::ACK, b""), 10);
    assert_eq!(v, Verdict::Transmit { next_hop: c.0, port: 0 });
    let s = summary(&out);
    assert_eq!((s.src, s.src_port(), s.dst, s.dst_port()), (Some(vip().0), 80, Some(c.0), c.1));
    assert_eq!(&out[0..6], &CLIENT_MAC.0);
    assert!(checksums_ok(&out));
    assert_eq!(lab.state_of(c), Some(ConnState::SynRecv));

    for (flags, dir_in, expect) in [
        (TcpFlags::ACK, true, ConnState::Established),
        (TcpFlags::ACK | TcpFlags::PSH, true, ConnState::Established),
        (TcpFlags::FIN | TcpFlags::ACK, true, ConnState::CloseWait),
        (TcpFlags::FIN | TcpFlags::ACK, false, ConnState::TimeWait),
    ] {
        let f = if dir_in {
            frame(c, vip(), IpProtocol::TCP, flags, b"GET / HTTP/1.0\r\n\r\n")
        } else {
            frame((rs(1), 8080), c, IpProtocol::TCP, flags, b"")
        };
        let (v, out) = lab.send(&f, 20);
        assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
        assert!(checksums_ok(&out));
        assert_eq!(lab.state_of(c), Some(expect));
    }
    assert_eq!(lab.counts(IpProtocol::TCP), [(rs(1), 0, 1)], "TIME_WAIT is inactive");
    let svc = lab.engine.service(&lab.tcp_key()).unwrap();
    assert_eq!((svc.stats().conns, svc.stats().in_packets, svc.stats().out_packets), (1, 4, 2));

    // TIME_WAIT lasts 120 s.
    assert_eq!(lab.engine.sweep(20 + 119_000, 64), 0);
    assert_eq!(lab.engine.sweep(20 + 120_100, 64), 1);
    assert_eq!(lab.counts(IpProtocol::TCP), [(rs(1), 0, 0)]);
    assert!(lab.engine.connections().is_empty());
}

#[test]
fn direct_routing_changes_only_the_link_layer_and_ttl() {
    let mut lab = Lab::new("rr", Forward::DirectRoute, &[1], 64);
    let c = client(2);
    let syn = frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b"");
    let (v, out) = lab.send(&syn, 0);
    assert_eq!(v, Verdict::Transmit { next_hop: rs(1), port: 0 });
    assert_eq!(&out[0..6], &RS_MAC.0);
    assert_eq!(&out[6..12], &DIRECTOR_MAC.0);
    let mut expected = syn.clone();
    expected[0..12].copy_from_slice(&out[0..12]);
    expected[22] = 63;
    assert_eq!(out[14..22], expected[14..22]);
    assert_eq!(
        out[23..],
        expected[23..24].iter().chain(&out[24..26]).chain(&expected[26..]).copied().collect::<Vec<_>>()[..]
    );
    assert!(checksums_ok(&out));
    // No replies pass the director: INPUT_ONLY, a client FIN gives FIN_WAIT.
    lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::ACK, b""), 1);
    assert_eq!(lab.state_of(c), Some(ConnState::Established));
    lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::FIN | TcpFlags::ACK, b""), 2);
    assert_eq!(lab.state_of(c), Some(ConnState::FinWait));
}

#[test]
fn tunnel_encapsulates_and_answers_too_big() {
    let mut lab = Lab::new("rr", Forward::Tunnel, &[1], 64);
    let c = client(3);
    let syn = frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b"");
    let (v, out) = lab.send(&syn, 0);
    assert_eq!(v, Verdict::Transmit { next_hop: rs(1), port: 0 });
    let s = summary(&out);
    assert_eq!(s.proto, Some(IpProtocol::IPIP));
    assert_eq!((s.src, s.dst), (Some(v4(198, 18, 0, 254)), Some(rs(1))));
    assert_eq!(out[14 + 8], 63, "outer TTL = inner TTL after the decrement");
    assert_eq!(out[14 + 6] & 0x40, 0x40, "DF copied from the inner header");
    assert_eq!(&out[0..6], &RS_MAC.0);
    assert!(s.ipv4_checksum_ok(&out).unwrap());
    let inner = &out[34..];
    assert_eq!(inner[8], 63);
    assert_eq!(&inner[12..20], &syn[26..34], "inner addresses unchanged");
    // 1500-byte packet with DF: 1480 left for it.
    let big = frame(c, vip(), IpProtocol::TCP, TcpFlags::ACK, &vec![0u8; 1460]);
    let (v, out) = lab.send(&big, 1);
    assert_eq!(v, Verdict::Transmit { next_hop: c.0, port: 0 });
    let s = summary(&out);
    assert_eq!((s.src, s.dst), (Some(vip().0), Some(c.0)));
    let icmp = s.icmp.unwrap();
    assert_eq!((icmp.ty, icmp.code), (3, 4));
    assert_eq!(u16::from_be_bytes([out[34 + 6], out[34 + 7]]), 1480);
    assert_eq!(s.quoted.unwrap().ports, Some((c.1, 80)));
    assert!(checksums_ok(&out));
    assert_eq!(lab.engine.stats().drops_for(DropReason::TooBig), 1);
}

#[test]
fn udp_flows_time_out_after_300_seconds() {
    let mut lab = Lab::new("rr", Forward::Nat, &[1, 2], 64);
    let c = client(4);
    let (v, out) = lab.send(&frame(c, vip(), IpProtocol::UDP, TcpFlags::empty(), b"query"), 0);
    assert!(matches!(v, Verdict::Transmit { .. }));
    assert!(checksums_ok(&out));
    let to = summary(&out).dst.unwrap();
    let (v, out) = lab.send(&frame((to, 8080), c, IpProtocol::UDP, TcpFlags::empty(), b"answer"), 100);
    assert_eq!(v, Verdict::Transmit { next_hop: c.0, port: 0 });
    assert_eq!(summary(&out).src, Some(vip().0));
    let counts = lab.counts(IpProtocol::UDP);
    let (active, inactive) = counts.iter().fold((0, 0), |(a, i), c| (a + c.1, i + c.2));
    assert_eq!((active, inactive), (0, 1), "UDP is never active");
    assert_eq!(lab.engine.sweep(100 + 299_000, 64), 0);
    assert_eq!(lab.engine.sweep(100 + 300_100, 64), 1);
}

#[test]
fn rr_spreads_thirty_connections_evenly() {
    let mut lab = Lab::new("rr", Forward::Nat, &[1, 2, 3], 256);
    let mut per = std::collections::BTreeMap::new();
    for n in 0..30 {
        let (_, out) = lab.send(&frame(client(n), vip(), IpProtocol::TCP, TcpFlags::SYN, b""), u64::from(n));
        *per.entry(summary(&out).dst.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(per.values().copied().collect::<Vec<_>>(), [10, 10, 10]);
}

#[test]
fn not_for_a_service_passes_and_only_syn_opens() {
    let mut lab = Lab::new("rr", Forward::Nat, &[1], 64);
    let (v, _) = lab.send(&frame(client(5), (v4(198, 18, 0, 7), 80), IpProtocol::TCP, TcpFlags::SYN, b""), 0);
    assert_eq!(v, Verdict::Pass);
    let (v, _) = lab.send(&frame(client(5), vip(), IpProtocol::TCP, TcpFlags::ACK, b""), 0);
    assert_eq!(v, Verdict::Pass, "an ACK without a connection goes to the host");
    let (v, _) = lab.send(&frame(client(5), vip(), IpProtocol::TCP, TcpFlags::SYN | TcpFlags::RST, b""), 0);
    assert_eq!(v, Verdict::Pass);
    let (v, _) = lab.send(b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x06", 0);
    assert_eq!(v, Verdict::Pass);
}

#[test]
fn nothing_that_does_not_belong_is_relayed() {
    // One NAT connection, client 1 -> VIP -> rs1, established.
    let mut lab = Lab::new("rr", Forward::Nat, &[1, 2], 64);
    let c = client(1);
    let real = lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 0).1;
    let server = summary(&real).dst.unwrap();
    let other = if server == rs(1) { rs(2) } else { rs(1) };
    lab.send(&frame((server, 8080), c, IpProtocol::TCP, TcpFlags::SYN | TcpFlags::ACK, b""), 1);
    lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::ACK, b""), 2);
    let passed = |lab: &mut Lab, f: Vec<u8>, what: &str| {
        let (v, out) = lab.send(&f, 3);
        assert_eq!(v, Verdict::Pass, "{what}");
        assert_eq!(out, f, "{what}: handed to the host unchanged");
    };
    // "Replies" from hosts that are not this connection's real server, or to another port.
    passed(&mut lab, frame((other, 8080), c, IpProtocol::TCP, TcpFlags::ACK, b"forged"), "another real server");
    passed(&mut lab, frame((v4(198, 18, 1, 99), 8080), c, IpProtocol::TCP, TcpFlags::ACK, b"x"), "a stranger");
    passed(&mut lab, frame((server, 8081), c, IpProtocol::TCP, TcpFlags::ACK, b"x"), "the real server, another port");
    passed(
        &mut lab,
        frame((server, 8080), (c.0, c.1 + 1), IpProtocol::TCP, TcpFlags::ACK, b"x"),
        "another client port",
    );
    // Mid-stream packets of connections the director does not know (IPVS schedules SYNs only).
    for flags in [TcpFlags::ACK, TcpFlags::ACK | TcpFlags::PSH, TcpFlags::FIN | TcpFlags::ACK, TcpFlags::RST] {
        passed(&mut lab, frame(client(9), vip(), IpProtocol::TCP, flags, b"mid-stream"), "unknown connection");
    }
    // Packets to addresses that are no service's, and to a VIP's other ports.
    passed(&mut lab, frame(c, (server, 8080), IpProtocol::TCP, TcpFlags::SYN, b""), "straight to a real server");
    passed(&mut lab, frame(c, (vip().0, 81), IpProtocol::TCP, TcpFlags::SYN, b""), "a port of the VIP with no service");
    // The connection itself still works, and nothing above was counted as its traffic.
    let (v, _) = lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::ACK, b"real"), 4);
    assert_eq!(v, Verdict::Transmit { next_hop: server, port: 0 });
    let stats = *lab.engine.service(&lab.tcp_key()).unwrap().stats();
    assert_eq!((stats.in_packets, stats.out_packets), (3, 1), "only the connection's packets");
}

#[test]
fn no_real_server_answers_port_unreachable() {
    let mut lab = Lab::new("rr", Forward::Nat, &[1], 64);
    lab.engine
        .edit_real(
            &lab.tcp_key(),
            &RealConfig {
                addr: rs(1),
                port: 8080,
                forward: Forward::Nat,
                weight: 0,
                upper_threshold: 0,
                lower_threshold: 0,
            },
        )
        .unwrap();
    let c = client(6);
    let (v, out) = lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 0);
    assert_eq!(v, Verdict::Transmit { next_hop: c.0, port: 0 });
    let s = summary(&out);
    assert_eq!((s.icmp.unwrap().ty, s.icmp.unwrap().code), (3, 3));
    assert_eq!(s.src, Some(vip().0));
    assert!(checksums_ok(&out));
    assert_eq!(lab.engine.stats().drops_for(DropReason::NoDestination), 1);
}

#[test]
fn quiescing_and_deleting_real_servers() {
    let mut lab = Lab::new("rr", Forward::Nat, &[1, 2], 64);
    let key = lab.tcp_key();
    let (c1, c2) = (client(7), client(8));
    let (_, a) = lab.send(&frame(c1, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 0);
    let (_, b) = lab.send(&frame(c2, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 0);
    let (ra, rb) = (summary(&a).dst.unwrap(), summary(&b).dst.unwrap());
    assert_ne!(ra, rb);
    // Weight 0: existing connections go on, new ones go elsewhere.
    lab.engine
        .edit_real(
            &key,
            &RealConfig {
                addr: ra,
                port: 8080,
                forward: Forward::Nat,
                weight: 0,
                upper_threshold: 0,
                lower_threshold: 0,
            },
        )
        .unwrap();
    let (v, out) = lab.send(&frame(c1, vip(), IpProtocol::TCP, TcpFlags::ACK, b""), 1);
    assert_eq!(v, Verdict::Transmit { next_hop: ra, port: 0 });
    assert_eq!(summary(&out).dst, Some(ra));
    let (_, out) = lab.send(&frame(client(9), vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 1);
    assert_eq!(summary(&out).dst, Some(rb));
    // Deleted (expire_nodest_conn = 0): packets of its connections are dropped.
    lab.engine.delete_real(&key, rb, 8080).unwrap();
    let (v, _) = lab.send(&frame(c2, vip(), IpProtocol::TCP, TcpFlags::ACK, b""), 2);
    assert_eq!(v, Verdict::Drop(DropReason::DestRemoved));
    // With expire_nodest_conn the entry goes and a SYN is scheduled afresh.
    lab.engine.config_mut().expire_nodest_conn = true;
    lab.engine
        .edit_real(
            &key,
            &RealConfig {
                addr: ra,
                port: 8080,
                forward: Forward::Nat,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
            },
        )
        .unwrap();
    let (v, out) = lab.send(&frame(c2, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 3);
    assert_eq!(v, Verdict::Transmit { next_hop: ra, port: 0 });
    assert_eq!(summary(&out).dst, Some(ra));
    assert_eq!(
        lab.engine.add_real(
            &key,
            &RealConfig {
                addr: ra,
                port: 8080,
                forward: Forward::Nat,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0
            }
        ),
        Err(vs_proto::engine::ConfigError::Exists)
    );
}

#[test]
fn table_full_refuses_new_connections_only() {
    let mut lab = Lab::new("rr", Forward::Nat, &[1], 2);
    let (v1, _) = lab.send(&frame(client(10), vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 0);
    let (v2, _) = lab.send(&frame(client(11), vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 0);
    assert!(matches!(v1, Verdict::Transmit { .. }) && matches!(v2, Verdict::Transmit { .. }));
    let (v3, _) = lab.send(&frame(client(12), vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 0);
    assert_eq!(v3, Verdict::Drop(DropReason::TableFull));
    let (v, _) = lab.send(&frame(client(10), vip(), IpProtocol::TCP, TcpFlags::ACK, b""), 1);
    assert!(matches!(v, Verdict::Transmit { .. }), "existing connections are not disturbed");
    assert_eq!(lab.engine.stats().drops_for(DropReason::TableFull), 1);
}

#[test]
fn syn_on_time_wait_reuses_the_port_with_a_new_schedule() {
    let mut lab = Lab::new("rr", Forward::Nat, &[1, 2], 64);
    let c = client(13);
    let (_, first) = lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 0);
    let first = summary(&first).dst.unwrap();
    lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::ACK, b""), 1);
    lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::RST, b""), 1);
    assert_eq!(lab.state_of(c), Some(ConnState::Close));
    let (_, second) = lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 2);
    assert_ne!(summary(&second).dst.unwrap(), first, "conn_reuse_mode 1 rescheduled the SYN");
    assert_eq!(lab.state_of(c), Some(ConnState::SynRecv));
}

#[test]
fn ipv6_nat() {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(16)].into_boxed_slice());
    let services: &'static mut [ServiceSlot<8>] =
        Box::leak((0..2).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
    let mut engine = Engine::new(ConnTable::new(memory, 16, 1).unwrap(), services, EngineConfig::default()).unwrap();
    let vip: IpAddr = "2001:db8::100".parse().unwrap();
    let real: IpAddr = "2001:db8:1::1".parse().unwrap();
    let key = ServiceKey::new(IpProtocol::TCP, vip, 443);
    engine.add_service(key, &ServiceConfig::default()).unwrap();
    engine
        .add_real(
            &key,
            &RealConfig {
                addr: real,
                port: 8443,
                forward: Forward::Nat,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
            },
        )
        .unwrap();
    let c: (IpAddr, u16) = ("2001:db8:5::7".parse().unwrap(), 50000);
    let f = frame(c, (vip, 443), IpProtocol::TCP, TcpFlags::SYN, b"");
    let mut storage = vec![0u8; f.len()];
    storage.copy_from_slice(&f);
    let len = f.len();
    let mut buf = PacketBuf::new(&mut storage, 0, len).unwrap();
    let v = engine.process(&mut buf, 0, &|_| Some(RS_MAC));
    assert_eq!(v, Verdict::Transmit { next_hop: real, port: 0 });
    let s = summary(buf.data());
    assert_eq!((s.dst, s.dst_port()), (Some(real), 8443));
    assert_eq!(buf.data()[14 + 7], 63, "hop limit decremented");
    assert!(checksums_ok(buf.data()));
}

#[test]
fn processing_does_not_allocate() {
    let mut lab = Lab::new("wlc", Forward::Nat, &[1, 2, 3], 1024);
    let frames: Vec<Vec<u8>> = (0..200u8)
        .map(|n| frame((v4(198, 18, 6, n), 1000 + u16::from(n)), vip(), IpProtocol::TCP, TcpFlags::SYN, b""))
        .collect();
    let mut storage = vec![0u8; 2048];
    let before = allocations();
    for (i, f) in frames.iter().enumerate() {
        storage[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
        let mut buf = PacketBuf::new(&mut storage, HEADROOM, f.len()).unwrap();
        let v = lab.engine.process(&mut buf, i as u64, &neighbours);
        assert!(matches!(v, Verdict::Transmit { .. }));
    }
    lab.engine.sweep(10_000_000, 1024);
    assert_eq!(allocations(), before, "the packet path allocated");
}

#[test]
fn a_burst_decides_as_packet_by_packet_does() {
    let frames: Vec<Vec<u8>> = (0..100u8)
        .flat_map(|n| {
            let c = (v4(198, 18, 7, n), 2000 + u16::from(n));
            [
                frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b""),
                frame(c, vip(), IpProtocol::TCP, TcpFlags::ACK, b"x"),
            ]
        })
        .collect();
    let mut one = Lab::new("wlc", Forward::Nat, &[1, 2, 3], 512);
    let singles: Vec<(Verdict, Vec<u8>)> = frames.iter().map(|f| one.send(f, 5)).collect();
    let mut burst = Lab::new("wlc", Forward::Nat, &[1, 2, 3], 512);
    let mut storages: Vec<Vec<u8>> = frames.iter().map(|f| [vec![0u8; HEADROOM], f.clone()].concat()).collect();
    let mut bufs: Vec<PacketBuf<'_>> =
        storages.iter_mut().zip(&frames).map(|(s, f)| PacketBuf::new(s, HEADROOM, f.len()).unwrap()).collect();
    let mut verdicts = vec![Verdict::Pass; bufs.len()];
    assert_eq!(burst.engine.process_burst(&mut bufs, 5, &neighbours, &mut verdicts), frames.len());
    for (i, (v, out)) in singles.iter().enumerate() {
        assert_eq!(verdicts[i], *v, "packet {i}");
        assert_eq!(bufs[i].data(), &out[..], "packet {i}");
    }
}

#[test]
fn firewall_mark_services_match_marked_packets() {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(16)].into_boxed_slice());
    let services: &'static mut [ServiceSlot<8>] =
        Box::leak((0..2).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
    let mut engine = Engine::new(ConnTable::new(memory, 16, 1).unwrap(), services, EngineConfig::default()).unwrap();
    let key = ServiceKey::fwmark(7, false);
    engine.add_service(key, &ServiceConfig { scheduler: "rr", ..ServiceConfig::default() }).unwrap();
    // No port: the packet's destination port is kept.
    engine
        .add_real(
            &key,
            &RealConfig {
                addr: rs(1),
                port: 0,
                forward: Forward::Nat,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
            },
        )
        .unwrap();
    let c = client(20);
    let mut send = |dst: (IpAddr, u16), mark: u32| {
        let f = frame(c, dst, IpProtocol::TCP, TcpFlags::SYN, b"");
        let mut storage = f.clone();
        let mut buf = PacketBuf::new(&mut storage, 0, f.len()).unwrap();
        let v = engine.process_marked(&mut buf, mark, 0, &neighbours);
        (v, buf.data().to_vec())
    };
    let (v, _) = send((v4(198, 18, 0, 50), 443), 0);
    assert_eq!(v, Verdict::Pass, "unmarked packets do not match");
    let (v, out) = send((v4(198, 18, 0, 50), 443), 7);
    assert_eq!(v, Verdict::Transmit { next_hop: rs(1), port: 0 });
    let s = summary(&out);
    assert_eq!((s.dst, s.dst_port()), (Some(rs(1)), 443));
    let (v, out) = send((v4(198, 18, 0, 51), 8443), 7);
    assert_eq!(v, Verdict::Transmit { next_hop: rs(1), port: 0 });
    assert_eq!(summary(&out).dst_port(), 8443);
}

#[test]
fn one_packet_scheduling_keeps_no_connection() {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(16)].into_boxed_slice());
    let services: &'static mut [ServiceSlot<8>] =
        Box::leak((0..2).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
    let mut engine = Engine::new(ConnTable::new(memory, 16, 1).unwrap(), services, EngineConfig::default()).unwrap();
    let key = ServiceKey::new(IpProtocol::UDP, vip().0, 53);
    engine.add_service(key, &ServiceConfig { scheduler: "rr", one_packet: true, ..ServiceConfig::default() }).unwrap();
    for n in [1, 2] {
        engine
            .add_real(
                &key,
                &RealConfig {
                    addr: rs(n),
                    port: 53,
                    forward: Forward::Nat,
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                },
            )
            .unwrap();
    }
    let mut targets = vec![];
    for _ in 0..4 {
        let f = frame(client(21), (vip().0, 53), IpProtocol::UDP, TcpFlags::empty(), b"q");
        let mut storage = f.clone();
        let mut buf = PacketBuf::new(&mut storage, 0, f.len()).unwrap();
        assert!(matches!(engine.process(&mut buf, 0, &neighbours), Verdict::Transmit { .. }));
        targets.push(summary(buf.data()).dst.unwrap());
    }
    assert_eq!(targets, [rs(2), rs(1), rs(2), rs(1)], "every datagram of the same flow is scheduled anew");
    assert!(engine.connections().is_empty());
    assert_eq!(engine.service(&key).unwrap().stats().conns, 4);
}

#[test]
fn an_owned_engine_needs_no_outside_memory() {
    use vs_proto::conn::{OwnedMemory, OwnedTable, buckets_for};
    use vs_proto::engine::OwnedEngine;
    use zerocopy::FromZeros;
    const CAP: usize = 256;
    const B: usize = buckets_for(CAP);
    let table = OwnedTable::<CAP, B>::owned(OwnedMemory::new_zeroed(), 3).unwrap();
    let services: [ServiceSlot<4>; 2] = Default::default();
    let mut engine: Box<OwnedEngine<CAP, B, 2, 4>> =
        Box::new(Engine::new(table, services, EngineConfig::default()).unwrap());
    let key = ServiceKey::new(IpProtocol::TCP, vip().0, vip().1);
    engine.add_service(key, &ServiceConfig::default()).unwrap();
    engine
        .add_real(
            &key,
            &RealConfig {
                addr: rs(1),
                port: 80,
                forward: Forward::DirectRoute,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
            },
        )
        .unwrap();
    let f = frame(client(30), vip(), IpProtocol::TCP, TcpFlags::SYN, b"");
    let mut storage = f.clone();
    let mut buf = PacketBuf::new(&mut storage, 0, f.len()).unwrap();
    assert_eq!(engine.process(&mut buf, 0, &neighbours), Verdict::Transmit { next_hop: rs(1), port: 0 });
    assert_eq!(engine.connections().len(), 1);
    assert!(OwnedTable::<CAP, 3>::owned(OwnedMemory::new_zeroed(), 0).is_err(), "wrong bucket count");
}

/// An IPv6 service on [2001:db8::100]:80 with one real server by `forward`.
fn v6_engine(forward: Forward) -> Engine<'static, 8> {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(16)].into_boxed_slice());
    let services: &'static mut [ServiceSlot<8>] =
        Box::leak((0..2).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
    let config = EngineConfig { tunnel_v6: Some("2001:db8::fe".parse().unwrap()), ..EngineConfig::default() };
    let mut engine = Engine::new(ConnTable::new(memory, 16, 1).unwrap(), services, config).unwrap();
    let key = ServiceKey::new(IpProtocol::TCP, "2001:db8::100".parse().unwrap(), 80);
    engine.add_service(key, &ServiceConfig::default()).unwrap();
    let real = RealConfig {
        addr: "2001:db8:1::1".parse().unwrap(),
        port: 80,
        forward,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    engine.add_real(&key, &real).unwrap();
    engine
}

fn v6_send(engine: &mut Engine<'static, 8>, f: &[u8]) -> (Verdict, Vec<u8>) {
    let mut storage = vec![0u8; HEADROOM + f.len()];
    storage[HEADROOM..].copy_from_slice(f);
    let mut buf = PacketBuf::new(&mut storage, HEADROOM, f.len()).unwrap();
    let v = engine.process(&mut buf, 0, &|_| Some(RS_MAC));
    (v, buf.data().to_vec())
}

#[test]
fn ipv6_direct_routing_and_tunnel() {
    let vip6: (IpAddr, u16) = ("2001:db8::100".parse().unwrap(), 80);
    let real: IpAddr = "2001:db8:1::1".parse().unwrap();
    let c: (IpAddr, u16) = ("2001:db8:5::9".parse().unwrap(), 50001);
    // DR: only the link layer and the hop limit change.
    let mut dr = v6_engine(Forward::DirectRoute);
    let syn = frame(c, vip6, IpProtocol::TCP, TcpFlags::SYN, b"");
    let (v, out) = v6_send(&mut dr, &syn);
    assert_eq!(v, Verdict::Transmit { next_hop: real, port: 0 });
    assert_eq!(&out[0..6], &RS_MAC.0);
    assert_eq!(out[14 + 7], 63);
    assert_eq!(&out[14 + 8..], &syn[14 + 8..], "addresses, ports and payload untouched");
    assert!(checksums_ok(&out));
    // TUN: IPv6 in IPv6 (next header 41), outer hop limit = inner after the decrement.
    let mut tun = v6_engine(Forward::Tunnel);
    let (v, out) = v6_send(&mut tun, &syn);
    assert_eq!(v, Verdict::Transmit { next_hop: real, port: 0 });
    let s = summary(&out);
    assert_eq!(s.proto, Some(IpProtocol::IPV6));
    assert_eq!((s.src, s.dst), (Some("2001:db8::fe".parse().unwrap()), Some(real)));
    assert_eq!(out[14 + 7], 63);
    assert_eq!(&out[14 + 40 + 8..], &syn[14 + 8..], "the inner packet after its hop limit");
    // Too big: 1500 - 40 = 1460 left, answered with ICMPv6 packet too big from the VIP.
    let big = frame(c, vip6, IpProtocol::TCP, TcpFlags::ACK, &vec![0u8; 1440]);
    let (v, out) = v6_send(&mut tun, &big);
    assert_eq!(v, Verdict::Transmit { next_hop: c.0, port: 0 });
    let s = summary(&out);
    assert_eq!((s.icmp.unwrap().ty, s.icmp.unwrap().code), (2, 0));
    assert_eq!(u32::from_be_bytes(out[14 + 40 + 4..14 + 40 + 8].try_into().unwrap()), 1460);
    assert_eq!(s.src, Some(vip6.0));
    assert!(checksums_ok(&out));
}

#[test]
fn the_neighbour_lookup_names_the_egress_port() {
    struct TwoPorts;
    impl vs_proto::engine::Neighbours for TwoPorts {
        fn lookup(&self, next_hop: IpAddr) -> Option<vs_proto::engine::Neighbour> {
            let port = if next_hop == rs(1) { 2 } else { 1 };
            Some(vs_proto::engine::Neighbour { mac: RS_MAC, port })
        }
    }
    let mut lab = Lab::new("rr", Forward::Nat, &[1], 16);
    let c = client(40);
    let f = frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b"");
    let mut storage = f.clone();
    let mut buf = PacketBuf::new(&mut storage, 0, f.len()).unwrap();
    assert_eq!(lab.engine.process(&mut buf, 0, &TwoPorts), Verdict::Transmit { next_hop: rs(1), port: 2 });
    let f = frame((rs(1), 8080), c, IpProtocol::TCP, TcpFlags::SYN | TcpFlags::ACK, b"");
    let mut storage = f.clone();
    let mut buf = PacketBuf::new(&mut storage, 0, f.len()).unwrap();
    assert_eq!(lab.engine.process(&mut buf, 0, &TwoPorts), Verdict::Transmit { next_hop: c.0, port: 1 });
}

#[test]
fn rates_every_two_seconds_and_zeroing() {
    let mut lab = Lab::new("rr", Forward::Nat, &[1, 2], 4096);
    let key = lab.tcp_key();
    let mut n = 0u32;
    for second in 0..60u64 {
        for _ in 0..25 {
            let c = (IpAddr::V4(Ipv4Addr::from(0xC612_4000 + n)), 2000);
            n += 1;
            lab.send(&frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), second * 1000);
        }
        lab.engine.sweep(second * 1000 + 999, 0);
    }
    let rates = lab.engine.service(&key).unwrap().rates();
    assert_eq!(rates.cps, 25, "25 new connections a second");
    assert_eq!(rates.in_pps, 25);
    assert_eq!(lab.engine.stats().rates.rates().cps, 25);
    let per_real: Vec<u64> = lab.engine.service(&key).unwrap().reals().map(|(r, _)| r.rates.rates().cps).collect();
    assert!(per_real.iter().all(|c| (12..=13).contains(c)), "{per_real:?}");
    // -Z: counters and rates start again; connection counts stay.
    let active: u32 = lab.engine.service(&key).unwrap().reals().map(|(_, d)| d.active).sum();
    lab.engine.zero_stats(Some(&key)).unwrap();
    let svc = lab.engine.service(&key).unwrap();
    assert_eq!((svc.stats().conns, svc.rates().cps), (0, 0));
    assert_eq!(svc.reals().map(|(_, d)| d.active).sum::<u32>(), active);
    assert_eq!(lab.engine.stats().total.conns, 1500, "the totals are zeroed only by -Z without a service");
    lab.engine.zero_stats(None).unwrap();
    assert_eq!(lab.engine.stats().total.conns, 0);
    assert!(lab.engine.zero_stats(Some(&ServiceKey::new(IpProtocol::TCP, vip().0, 81))).is_err());
}

#[test]
fn editing_a_cross_family_tunnel_server_keeps_it_a_tunnel() {
    let mut memory = vec![0u8; ConnTable::footprint(64)];
    let table = ConnTable::new(&mut memory, 64, 1).unwrap();
    let mut slots: Vec<ServiceSlot<4>> = (0..2).map(|_| ServiceSlot::default()).collect();
    let mut e: Engine<'_, 4> = Engine::new(table, &mut slots[..], EngineConfig::default()).unwrap();
    let key = ServiceKey::new(IpProtocol::TCP, vip().0, 80);
    e.add_service(key, &ServiceConfig::default()).unwrap();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let tunnel =
        RealConfig { addr: v6, port: 80, forward: Forward::Tunnel, weight: 1, upper_threshold: 0, lower_threshold: 0 };
    // A v6 server on a v4 service: only as a tunnel, on add and on edit alike.
    assert_eq!(
        e.add_real(&key, &RealConfig { forward: Forward::Nat, ..tunnel }),
        Err(vs_proto::engine::ConfigError::Invalid)
    );
    e.add_real(&key, &tunnel).unwrap();
    assert_eq!(
        e.edit_real(&key, &RealConfig { forward: Forward::Nat, ..tunnel }),
        Err(vs_proto::engine::ConfigError::Invalid)
    );
    assert_eq!(
        e.edit_real(&key, &RealConfig { forward: Forward::DirectRoute, ..tunnel }),
        Err(vs_proto::engine::ConfigError::Invalid)
    );
    e.edit_real(&key, &RealConfig { weight: 5, ..tunnel }).unwrap();
    let real = e.service(&key).unwrap().reals().next().unwrap();
    assert_eq!((real.0.forward, real.1.weight), (Forward::Tunnel, 5));
}
