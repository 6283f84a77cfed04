//! ICMP errors about known connections are relayed as IPVS relays them (§5.5): from the client
//! side to the real server, from a NAT real server back to the client, with the outer and the
//! quoted headers rewritten for NAT; tshark checks every checksum of what is relayed.

mod common;

use std::net::IpAddr;

use common::{frame, tshark_fields, write_pcap};
use vs_proto::conn::{ConnTable, Forward};
use vs_proto::engine::{Engine, EngineConfig, RealConfig, ServiceConfig, ServiceKey, ServiceSlot, Verdict};
use vs_proto::wire::{IcmpError, IpProtocol, MacAddr, PacketBuf, Summary, TcpFlags, icmp_error};

const HEADROOM: usize = 128;

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn engine(forward: Forward, vip: &str, real: &str) -> Engine<'static, 4> {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(16)].into_boxed_slice());
    let services: &'static mut [ServiceSlot<4>] =
        Box::leak((0..2).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
    let mut engine = Engine::new(ConnTable::new(memory, 16, 1).unwrap(), services, EngineConfig::default()).unwrap();
    let key = ServiceKey::new(IpProtocol::TCP, a(vip), 80);
    engine.add_service(key, &ServiceConfig::default()).unwrap();
    let port = if forward == Forward::Nat { 8080 } else { 80 };
    let real = RealConfig { addr: a(real), port, forward, weight: 1, upper_threshold: 0, lower_threshold: 0 };
    engine.add_real(&key, &real).unwrap();
    engine
}

fn send(engine: &mut Engine<'static, 4>, f: &[u8]) -> (Verdict, Vec<u8>) {
    let mut storage = vec![0u8; HEADROOM + f.len()];
    storage[HEADROOM..].copy_from_slice(f);
    let mut buf = PacketBuf::new(&mut storage, HEADROOM, f.len()).unwrap();
    let v = engine.process(&mut buf, 0, &|_| Some(MacAddr([2, 0, 0, 0, 0, 5])));
    (v, buf.data().to_vec())
}

/// An ICMP error from `from` about `about` (sent back to `about`'s source).
fn error_about(about: &[u8], kind: IcmpError, from: &str) -> Vec<u8> {
    let mut storage = vec![0u8; HEADROOM + about.len()];
    storage[HEADROOM..].copy_from_slice(about);
    let mut buf = PacketBuf::new(&mut storage, HEADROOM, about.len()).unwrap();
    let s = Summary::from_ethernet(buf.data()).unwrap();
    icmp_error(&mut buf, &s, kind, a(from)).unwrap();
    buf.data().to_vec()
}

fn summary(f: &[u8]) -> Summary {
    Summary::from_ethernet(f).unwrap()
}

#[test]
fn nat_relays_both_ways_with_valid_checksums() {
    let (vip, real, client) = ("198.18.0.100", "198.18.1.1", (a("198.18.5.1"), 40000));
    let mut e = engine(Forward::Nat, vip, real);
    send(&mut e, &frame(client, (a(vip), 80), IpProtocol::TCP, TcpFlags::SYN, b""));
    let mut relayed = vec![];

    // A router on the client's side cannot deliver a reply VIP → client: "fragmentation
    // needed". The error reaches the director (it is addressed to the VIP) and goes on to the
    // real server, outer destination and quoted source rewritten to the real server.
    let reply = frame((a(vip), 80), client, IpProtocol::TCP, TcpFlags::ACK, &[0; 100]);
    let err = error_about(&reply, IcmpError::TooBig { mtu: 1400 }, "198.18.9.1");
    let (v, out) = send(&mut e, &err);
    assert_eq!(v, Verdict::Transmit { next_hop: a(real), port: 0 });
    let s = summary(&out);
    assert_eq!((s.src, s.dst), (Some(a("198.18.9.1")), Some(a(real))));
    let q = s.quoted.unwrap();
    assert_eq!((q.src, q.dst, q.ports), (a(real), client.0, Some((8080, client.1))));
    assert_eq!(s.l4_checksum_ok(&out), Some(true), "ICMP checksum");
    assert_eq!(u16::from_be_bytes([out[34 + 6], out[34 + 7]]), 1400, "the MTU is kept");
    relayed.push(out);

    // The real server answers a client packet with "port unreachable": it goes back to the
    // client from the VIP, the quoted destination rewritten to VIP:80.
    let to_real = frame(client, (a(real), 8080), IpProtocol::TCP, TcpFlags::ACK, b"");
    let err = error_about(&to_real, IcmpError::PortUnreachable, real);
    let (v, out) = send(&mut e, &err);
    assert_eq!(v, Verdict::Transmit { next_hop: client.0, port: 0 });
    let s = summary(&out);
    assert_eq!((s.src, s.dst), (Some(a(vip)), Some(client.0)));
    let q = s.quoted.unwrap();
    assert_eq!((q.src, q.dst, q.ports), (client.0, a(vip), Some((client.1, 80))));
    assert_eq!(s.l4_checksum_ok(&out), Some(true));
    relayed.push(out);

    let svc = e.service(&ServiceKey::new(IpProtocol::TCP, a(vip), 80)).unwrap();
    assert_eq!((svc.stats().in_packets, svc.stats().out_packets), (2, 1), "relayed errors are counted");

    let path = std::env::temp_dir().join(format!("vs-icmp-relay-{}.pcap", std::process::id()));
    write_pcap(&path, &relayed);
    let Some(rows) =
        tshark_fields(&path, &["icmp.checksum.status", "ip.checksum.status", "icmp.type", "ip.src", "ip.dst"])
    else {
        eprintln!("SKIP: tshark not installed; the relayed ICMP was checked by vs-proto only");
        return;
    };
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r[0], "1", "tshark: ICMP checksum good: {r:?}");
        assert_eq!(r[1], "1,1", "tshark: outer and quoted IPv4 header checksums good: {r:?}");
    }
    assert_eq!(rows[0][3], format!("198.18.9.1,{real}"), "the quoted source is the real server");
    assert_eq!(rows[0][4], format!("{real},{}", client.0), "the outer destination is the real server");
    assert_eq!(rows[1][3], format!("{vip},{}", client.0), "outer source is the VIP");
}

#[test]
fn dr_forwards_errors_unchanged_and_unknown_ones_go_to_the_host() {
    let (vip, real, client) = ("198.18.0.100", "198.18.1.1", (a("198.18.5.2"), 40001));
    let mut e = engine(Forward::DirectRoute, vip, real);
    send(&mut e, &frame(client, (a(vip), 80), IpProtocol::TCP, TcpFlags::SYN, b""));
    let reply = frame((a(vip), 80), client, IpProtocol::TCP, TcpFlags::ACK, b"");
    let err = error_about(&reply, IcmpError::TimeExceeded, "198.18.9.1");
    let (v, out) = send(&mut e, &err);
    assert_eq!(v, Verdict::Transmit { next_hop: a(real), port: 0 });
    assert_eq!(out[14 + 8], err[14 + 8] - 1, "only the TTL (and the link layer) change");
    assert_eq!(&out[14 + 12..], &err[14 + 12..]);
    // About a connection nobody has: passed to the host.
    let stranger = frame((a(vip), 80), (a("198.18.5.99"), 1), IpProtocol::TCP, TcpFlags::ACK, b"");
    let (v, _) = send(&mut e, &error_about(&stranger, IcmpError::TimeExceeded, "198.18.9.1"));
    assert_eq!(v, Verdict::Pass);
    // Echo requests to the VIP are the host's.
    let echo = frame(client, (a(vip), 80), IpProtocol::ICMP, TcpFlags::empty(), b"");
    let mut echo = echo;
    echo[34] = 8; // an ICMP header where UDP's would be: type 8 echo request
    let (v, _) = send(&mut e, &echo);
    assert_eq!(v, Verdict::Pass);
}

#[test]
fn icmpv6_packet_too_big_is_relayed_for_nat() {
    let (vip, real) = ("2001:db8::100", "2001:db8:1::1");
    let client = (a("2001:db8:5::1"), 40002);
    let mut e = engine(Forward::Nat, vip, real);
    send(&mut e, &frame(client, (a(vip), 80), IpProtocol::TCP, TcpFlags::SYN, b""));
    let reply = frame((a(vip), 80), client, IpProtocol::TCP, TcpFlags::ACK, &[0; 200]);
    let err = error_about(&reply, IcmpError::TooBig { mtu: 1280 }, "2001:db8:9::1");
    let (v, out) = send(&mut e, &err);
    assert_eq!(v, Verdict::Transmit { next_hop: a(real), port: 0 });
    let s = summary(&out);
    assert_eq!(s.dst, Some(a(real)));
    assert_eq!(s.quoted.unwrap().src, a(real));
    assert_eq!(s.quoted.unwrap().ports, Some((8080, client.1)));
    assert_eq!(s.l4_checksum_ok(&out), Some(true), "ICMPv6 checksum over the new pseudo-header");
}
