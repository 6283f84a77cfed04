//! Fuzz the engine with arbitrary sequences of packets, clock steps, sweeps and weight edits,
//! against NAT, DR and tunnel services (IPv4 and IPv6, TCP and UDP), one of them persistent,
//! with every defence strategy in automatic mode over a small table. After every step:
//! - a transmitted frame parses, and its checksums are valid when the arriving ones were;
//! - a passed frame is the frame that arrived;
//! - each service's counters are the sums of its real servers', the totals the services' sums;
//! - the table holds no more than its capacity, and the real servers' active + inactive
//!   counts equal the live connections (templates: the persistent counts).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vs_proto::conn::{ConnTable, Forward};
use vs_proto::engine::{
    Defence, Engine, EngineConfig, Persistence, RealConfig, ServiceConfig, ServiceKey, ServiceSlot, Verdict,
};
use vs_proto::wire::{Frame, IpProtocol, L3, MacAddr, PacketBuf, Segment, Summary, TcpFlags};

const CAPACITY: usize = 48;
const REALS: u8 = 3;
const HEADROOM: usize = 64;

/// (protocol, IPv6, method, persistent, scheduler) of each service.
const SERVICES: [(IpProtocol, bool, Forward, bool, &str); 5] = [
    (IpProtocol::TCP, false, Forward::Nat, false, "wlc"),
    (IpProtocol::TCP, false, Forward::Nat, true, "rr"),
    (IpProtocol::UDP, false, Forward::DirectRoute, false, "sh"),
    (IpProtocol::TCP, true, Forward::Tunnel, false, "mh"),
    (IpProtocol::UDP, true, Forward::Nat, false, "lc"),
];

fn addr(v6: bool, net: u8, host: u8) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, u16::from(net), 0, 0, 0, u16::from(host)))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 18, net, host))
    }
}

fn vip(service: usize) -> IpAddr {
    addr(SERVICES[service].1, 1, 100 + service as u8)
}

fn real(service: usize, r: u8) -> IpAddr {
    addr(SERVICES[service].1, 2, 10 * service as u8 + r)
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// A client's packet to a service (or, with `stranger`, to an address that is none).
    Client { service: u8, client: u8, port: u8, flags: u8, len: u8, stranger: bool, damage: Option<(u16, u8)> },
    /// A real server's packet to a client: a reply on a connection, or a spoofed one.
    Server { service: u8, real: u8, client: u8, port: u8, flags: u8, damage: Option<(u16, u8)> },
    /// Any bytes as a frame.
    Raw(Vec<u8>),
    /// Host time moves on.
    Wait(u16),
    /// The sweep runs.
    Sweep(u8),
    /// A real server's weight changes (0 quiesces).
    Weight { service: u8, real: u8, weight: u8 },
}

#[derive(Debug, Arbitrary)]
struct Input {
    steps: Vec<Step>,
}

fn engine<'a>(memory: &'a mut [u8], slots: &'a mut [ServiceSlot<4>]) -> Engine<'a, 4> {
    let table = ConnTable::new(memory, CAPACITY, 11).expect("table");
    let defence =
        Defence { threshold: CAPACITY / 2, drop_entry: 1, drop_packet: 1, secure_tcp: 1, ..Defence::default() };
    let config = EngineConfig {
        tunnel_v4: Some(Ipv4Addr::new(198, 18, 0, 250)),
        tunnel_v6: Some("2001:db8::250".parse().expect("address")),
        expire_nodest_conn: true,
        defence,
        seed: 5,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(table, slots, config).expect("engine");
    for (i, (proto, _, forward, persistent, scheduler)) in SERVICES.iter().enumerate() {
        let key = ServiceKey::new(*proto, vip(i), 80);
        let persistence = persistent.then_some(Persistence { timeout_s: 30, prefix_len: 128, ipv4_mask: None });
        e.add_service(key, &ServiceConfig { scheduler, persistence, ..ServiceConfig::default() }).expect("service");
        for r in 0..REALS {
            let real =
                RealConfig { addr: real(i, r), port: 8080, forward: *forward, weight: 1, ..RealConfig::default() };
            e.add_real(&key, &real).expect("real");
        }
    }
    e
}

/// A frame built with the crate's frame builder (valid checksums), then perhaps damaged.
fn frame(src: (IpAddr, u16), dst: (IpAddr, u16), tcp: bool, flags: u8, len: u8, damage: Option<(u16, u8)>) -> Vec<u8> {
    let payload = vec![0x5a; usize::from(len)];
    let segment = if tcp {
        Segment::Tcp { flags: TcpFlags::from_bits_retain(flags), seq: 1, ack: 1, payload: &payload }
    } else {
        Segment::Udp { payload: &payload }
    };
    let f = Frame { src_mac: MacAddr([2, 0, 0, 0, 0, 1]), dst_mac: MacAddr([2, 0, 0, 0, 0, 2]), src, dst, ttl: 64 };
    let mut out = vec![0u8; 1600];
    let n = f.write(&mut out, &segment).expect("frame fits");
    out.truncate(n);
    if let Some((at, xor)) = damage
        && let Some(b) = out.get_mut(usize::from(at) % n)
    {
        *b ^= xor;
    }
    out
}

/// Valid checksums all the way in: the IPv4 header's, the transport's, and a tunnel's inner
/// packet's. `None` when the frame is not one these apply to.
fn checksums_valid(data: &[u8]) -> Option<bool> {
    let mut s = Summary::default();
    s.parse_ethernet(data).ok()?;
    if s.ipv4_checksum_ok(data) == Some(false) {
        return Some(false);
    }
    if matches!(s.proto, Some(IpProtocol::IPIP) | Some(IpProtocol::IPV6)) {
        let inner = data.get(s.l4_offset..s.l3_end)?;
        let mut i = Summary::default();
        i.parse_ip(inner).ok()?;
        if i.ipv4_checksum_ok(inner) == Some(false) {
            return Some(false);
        }
        return i.l4_checksum_ok(inner);
    }
    s.l4_checksum_ok(data)
}

fn check_counters(e: &Engine<'_, 4>) {
    let mut totals = (0u64, 0u64, 0u64);
    for s in e.services() {
        let reals = s.real_slots().fold((0u64, 0u64, 0u64), |(i, o, c), r| {
            (i + r.stats.in_packets, o + r.stats.out_packets, c + r.stats.conns)
        });
        let own = (s.stats().in_packets, s.stats().out_packets, s.stats().conns);
        assert_eq!(own, reals, "service {:?}: its counters are not its real servers' sums", s.key());
        totals = (totals.0 + own.0, totals.1 + own.1, totals.2 + own.2);
    }
    let t = &e.stats().total;
    assert_eq!((t.in_packets, t.out_packets, t.conns), totals, "totals are not the services' sums");
}

fn check_table(e: &Engine<'_, 4>) {
    let (mut conns, mut templates) = (0u64, 0u64);
    for (_, c) in e.connections().iter() {
        if c.is_template() {
            templates += 1;
        } else {
            conns += 1;
        }
    }
    assert!(conns + templates <= CAPACITY as u64, "{} entries in a table of {CAPACITY}", conns + templates);
    let (mut bound, mut persistent) = (0u64, 0u64);
    for s in e.services() {
        for (_, d) in s.reals() {
            bound += u64::from(d.active) + u64::from(d.inactive);
            persistent += u64::from(d.persistent);
        }
    }
    assert_eq!(bound, conns, "active + inactive counts against live connections");
    assert_eq!(persistent, templates, "persistent counts against templates");
}

fn process(e: &mut Engine<'_, 4>, frame: &[u8], now: u64) {
    let neighbours = |a: IpAddr| (a != addr(false, 2, 2)).then_some(MacAddr([2, 0, 0, 0, 0, 9]));
    let arrived_valid = checksums_valid(frame) == Some(true);
    let mut storage = vec![0u8; HEADROOM + frame.len() + 64];
    storage[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut buf = PacketBuf::new(&mut storage, HEADROOM, frame.len()).expect("buffer");
    match e.process(&mut buf, now, &neighbours) {
        Verdict::Pass => assert_eq!(buf.data(), frame, "a passed frame was changed"),
        Verdict::Transmit { .. } => {
            let mut s = Summary::default();
            s.parse_ethernet(buf.data()).expect("a transmitted frame parses");
            assert!(matches!(s.l3, L3::Ipv4 | L3::Ipv6), "a transmitted frame is IP");
            if arrived_valid {
                assert_eq!(checksums_valid(buf.data()), Some(true), "checksums broken: {:02x?}", buf.data());
            }
        }
        _ => {}
    }
}

fuzz_target!(|input: Input| {
    let mut memory = vec![0u8; ConnTable::footprint(CAPACITY)];
    let mut slots: Vec<ServiceSlot<4>> = (0..SERVICES.len()).map(|_| ServiceSlot::default()).collect();
    let mut e = engine(&mut memory, &mut slots);
    let mut now = 1_000u64;
    for step in input.steps.iter().take(256) {
        match step {
            Step::Client { service, client, port, flags, len, stranger, damage } => {
                let i = usize::from(*service) % SERVICES.len();
                let (proto, v6, ..) = SERVICES[i];
                let dst = if *stranger { addr(v6, 3, 1) } else { vip(i) };
                let src = (addr(v6, 4, client % 8), 40000 + u16::from(port % 4));
                let f = frame(src, (dst, 80), proto == IpProtocol::TCP, *flags, len % 64, *damage);
                process(&mut e, &f, now);
            }
            Step::Server { service, real: r, client, port, flags, damage } => {
                let i = usize::from(*service) % SERVICES.len();
                let (proto, v6, ..) = SERVICES[i];
                let src = (real(i, r % (REALS + 1)), 8080);
                let dst = (addr(v6, 4, client % 8), 40000 + u16::from(port % 4));
                let f = frame(src, dst, proto == IpProtocol::TCP, *flags, 8, *damage);
                process(&mut e, &f, now);
            }
            Step::Raw(bytes) => process(&mut e, bytes, now),
            Step::Wait(ms) => now += u64::from(*ms) * 16,
            Step::Sweep(budget) => {
                e.sweep(now, usize::from(*budget));
            }
            Step::Weight { service, real: r, weight } => {
                let i = usize::from(*service) % SERVICES.len();
                let (proto, _, forward, ..) = SERVICES[i];
                let key = ServiceKey::new(proto, vip(i), 80);
                let config = RealConfig {
                    addr: real(i, r % REALS),
                    port: 8080,
                    forward,
                    weight: u32::from(weight % 4),
                    ..RealConfig::default()
                };
                e.edit_real(&key, &config).expect("edit");
            }
        }
        check_counters(&e);
        check_table(&e);
    }
});
