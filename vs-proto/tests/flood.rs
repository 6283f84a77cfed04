//! A SYN flood from random sources fills the table while established connections keep
//! flowing: not one established packet is lost or misrouted, the defence engages (drop_entry,
//! secure_tcp), and the flood's entries go away as configured. And a UDP flood cannot take the
//! slots kept for TCP.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use common::frame;
use vs_proto::conn::{ConnState, ConnTable, Forward};
use vs_proto::engine::{
    Defence, DropReason, Engine, EngineConfig, RealConfig, ServiceConfig, ServiceKey, ServiceSlot, Verdict,
};
use vs_proto::wire::{IpProtocol, MacAddr, PacketBuf, Summary, TcpFlags};

const CAPACITY: usize = 4096;

fn engine(defence: Defence) -> Engine<'static, 4> {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(CAPACITY)].into_boxed_slice());
    let services: &'static mut [ServiceSlot<4>] =
        Box::leak((0..2).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
    let config = EngineConfig { defence, ..EngineConfig::default() };
    let mut engine = Engine::new(ConnTable::new(memory, CAPACITY, 11).unwrap(), services, config).unwrap();
    for proto in [IpProtocol::TCP, IpProtocol::UDP] {
        let key = ServiceKey::new(proto, vip().0, 80);
        engine.add_service(key, &ServiceConfig { scheduler: "wlc", ..ServiceConfig::default() }).unwrap();
        for n in 1..=3 {
            let real = RealConfig {
                addr: rs(n),
                port: 8080,
                forward: Forward::Nat,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
            };
            engine.add_real(&key, &real).unwrap();
        }
    }
    engine
}

fn vip() -> (IpAddr, u16) {
    (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)), 80)
}

fn rs(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 1, n))
}

fn send(e: &mut Engine<'static, 4>, f: &[u8], now_ms: u64) -> (Verdict, Option<IpAddr>) {
    let mut storage = f.to_vec();
    let mut buf = PacketBuf::new(&mut storage, 0, f.len()).unwrap();
    let v = e.process(&mut buf, now_ms, &|_| Some(MacAddr([2, 0, 0, 0, 0, 4])));
    (v, Summary::from_ethernet(buf.data()).ok().and_then(|s| s.dst))
}

/// A small deterministic generator for the flood's sources.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }
}

#[test]
fn established_flows_survive_a_syn_flood() {
    let mut e = engine(Defence { drop_entry: 1, secure_tcp: 1, ..Defence::default() });
    // 200 established connections, each remembered with its real server.
    let mut established: HashMap<(IpAddr, u16), IpAddr> = HashMap::new();
    for n in 0..200u32 {
        let c = (IpAddr::V4(Ipv4Addr::from(0xC612_0A00 + n)), 50000);
        let (_, to) = send(&mut e, &frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 0);
        let real = to.unwrap();
        send(&mut e, &frame((real, 8080), c, IpProtocol::TCP, TcpFlags::SYN | TcpFlags::ACK, b""), 0);
        send(&mut e, &frame(c, vip(), IpProtocol::TCP, TcpFlags::ACK, b""), 0);
        established.insert(c, real);
    }
    // 20 s of flood: 1000 spoofed SYNs every 100 ms, the established clients sending all along.
    let mut rng = Lcg(7);
    let (mut flood_refused, mut secure_seen) = (0u64, false);
    for tick in 1..=200u64 {
        let now = tick * 100;
        for _ in 0..1000 {
            let src =
                (IpAddr::V4(Ipv4Addr::from(0xC613_0000 | (rng.next() & 0xFFFF))), (rng.next() % 60000) as u16 + 1024);
            let (v, _) = send(&mut e, &frame(src, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), now);
            flood_refused += u64::from(matches!(v, Verdict::Drop(_)));
        }
        for (c, real) in &established {
            let (v, to) = send(&mut e, &frame(*c, vip(), IpProtocol::TCP, TcpFlags::ACK | TcpFlags::PSH, b"data"), now);
            assert!(matches!(v, Verdict::Transmit { .. }), "established packet lost at {now} ms: {v:?}");
            assert_eq!(to, Some(*real), "established packet misrouted");
        }
        e.sweep(now, 512);
        secure_seen |= e.config().secure_tcp;
    }
    assert!(flood_refused > 0, "the table filled up");
    assert!(e.stats().drops_for(DropReason::TableFull) > 0);
    assert!(e.stats().defence_dropped > 0, "drop_entry engaged");
    assert!(secure_seen, "secure_tcp engaged while the table was under pressure");
    // The flood stops; its SYN_RECV entries go (drop_entry and their 60 s timeout) and the
    // defence switches itself off again.
    for tick in 201..=1000u64 {
        e.sweep(tick * 100, 512);
    }
    let table = e.connections();
    assert_eq!(table.len(), 200, "only the established connections are left");
    assert!(table.iter().all(|(_, c)| c.state() == ConnState::Established));
    assert!(!e.config().secure_tcp, "back to the normal state table");
}

#[test]
fn a_udp_flood_cannot_take_tcp_slots() {
    let mut e = engine(Defence { max_other: 1024, ..Defence::default() });
    let mut rng = Lcg(9);
    for _ in 0..5000 {
        let src = (IpAddr::V4(Ipv4Addr::from(0xC613_0000 | (rng.next() & 0xFFFF))), (rng.next() % 60000) as u16 + 1024);
        send(&mut e, &frame(src, vip(), IpProtocol::UDP, TcpFlags::empty(), b"x"), 0);
    }
    assert_eq!(e.connections().len(), 1024);
    assert!(e.stats().drops_for(DropReason::ClassFull) > 0);
    for n in 0..1000u32 {
        let c = (IpAddr::V4(Ipv4Addr::from(0xC612_0B00 + n)), 40000);
        let (v, _) = send(&mut e, &frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 0);
        assert!(matches!(v, Verdict::Transmit { .. }), "TCP connection {n} refused: {v:?}");
    }
}

#[test]
fn drop_packet_always_on_drops_one_new_connection_in_am_droprate() {
    let mut e = engine(Defence { drop_packet: 3, am_droprate: 10, ..Defence::default() });
    e.sweep(0, 0);
    e.sweep(1000, 0); // the first defence run sets the rate
    let mut dropped = 0;
    for n in 0..100u32 {
        let c = (IpAddr::V4(Ipv4Addr::from(0xC612_0C00 + n)), 40000);
        let (v, _) = send(&mut e, &frame(c, vip(), IpProtocol::TCP, TcpFlags::SYN, b""), 1000);
        dropped += u32::from(v == Verdict::Drop(DropReason::Defence));
    }
    assert_eq!(dropped, 10);
}
