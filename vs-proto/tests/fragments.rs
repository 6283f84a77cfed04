//! Fragments: the first fragment is scheduled like any packet; later fragments of the same
//! datagram follow it to the same real server; unmatched ones go to the host or are dropped.

mod common;

use std::net::IpAddr;

use common::frame;
use vs_proto::conn::{ConnTable, Forward};
use vs_proto::engine::{DropReason, Engine, EngineConfig, RealConfig, ServiceConfig, ServiceKey, ServiceSlot, Verdict};
use vs_proto::wire::checksum::{self, pseudo_header_v4};
use vs_proto::wire::{IpProtocol, MacAddr, PacketBuf, Summary, TcpFlags};

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Splits an Ethernet/IPv4 frame's IP payload at `at` bytes (a multiple of 8) into two
/// fragments with identification `ident`.
fn fragment(frame: &[u8], at: usize, ident: u16) -> (Vec<u8>, Vec<u8>) {
    let (head, payload) = frame.split_at(34);
    let make = |part: &[u8], offset: usize, more: bool| {
        let mut f = head.to_vec();
        f[18..20].copy_from_slice(&ident.to_be_bytes());
        let flags = if more { 0x2000u16 } else { 0 } | (offset / 8) as u16;
        f[20..22].copy_from_slice(&flags.to_be_bytes());
        f[16..18].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(part);
        f
    };
    (make(&payload[..at], 0, true), make(&payload[at..], at, false))
}

fn engine(pass_unmatched: bool) -> Engine<'static, 4> {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(64)].into_boxed_slice());
    let services: &'static mut [ServiceSlot<4>] =
        Box::leak((0..2).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
    let config = EngineConfig { pass_unmatched_fragments: pass_unmatched, ..EngineConfig::default() };
    let mut engine = Engine::new(ConnTable::new(memory, 64, 1).unwrap(), services, config).unwrap();
    let key = ServiceKey::new(IpProtocol::UDP, a("198.18.0.100"), 53);
    engine.add_service(key, &ServiceConfig { scheduler: "rr", ..ServiceConfig::default() }).unwrap();
    for real in ["198.18.1.1", "198.18.1.2"] {
        engine
            .add_real(
                &key,
                &RealConfig {
                    addr: a(real),
                    port: 5353,
                    forward: Forward::Nat,
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                },
            )
            .unwrap();
    }
    engine
}

fn send(e: &mut Engine<'static, 4>, f: &[u8]) -> (Verdict, Vec<u8>) {
    let mut storage = f.to_vec();
    let mut buf = PacketBuf::new(&mut storage, 0, f.len()).unwrap();
    let v = e.process(&mut buf, 0, &|_| Some(MacAddr([2, 0, 0, 0, 0, 3])));
    (v, buf.data().to_vec())
}

#[test]
fn later_fragments_follow_the_first() {
    let mut e = engine(true);
    let client = (a("198.18.5.1"), 33333);
    let whole = frame(client, (a("198.18.0.100"), 53), IpProtocol::UDP, TcpFlags::empty(), &[7u8; 100]);
    let (first, second) = fragment(&whole, 80, 0x4242);
    let (v1, out1) = send(&mut e, &first);
    let Verdict::Transmit { next_hop, .. } = v1 else { panic!("{v1:?}") };
    let (v2, out2) = send(&mut e, &second);
    assert_eq!(v2, Verdict::Transmit { next_hop, port: 0 }, "the second fragment goes where the first went");
    let (s1, s2) = (Summary::from_ethernet(&out1).unwrap(), Summary::from_ethernet(&out2).unwrap());
    assert_eq!((s1.dst, s2.dst), (Some(next_hop), Some(next_hop)));
    assert_eq!(s1.ports, Some((client.1, 5353)));
    assert!(s1.ipv4_checksum_ok(&out1).unwrap() && s2.ipv4_checksum_ok(&out2).unwrap());
    // Reassembled, the datagram's UDP checksum is valid for the new destination.
    let mut datagram = out1[34..].to_vec();
    datagram.extend_from_slice(&out2[34..]);
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (client.0, next_hop) else { unreachable!() };
    let pseudo = pseudo_header_v4(src, dst, IpProtocol::UDP, datagram.len() as u32);
    assert!(checksum::is_valid(checksum::sum(pseudo, &datagram)));
}

#[test]
fn unmatched_fragments_go_to_the_host_or_are_dropped() {
    let client = (a("198.18.5.2"), 33334);
    let whole = frame(client, (a("198.18.0.100"), 53), IpProtocol::UDP, TcpFlags::empty(), &[7u8; 100]);
    let (_, second) = fragment(&whole, 80, 0x4343);
    let mut passing = engine(true);
    assert_eq!(send(&mut passing, &second).0, Verdict::Pass);
    let mut dropping = engine(false);
    assert_eq!(send(&mut dropping, &second).0, Verdict::Drop(DropReason::UnmatchedFragment));
    assert_eq!(dropping.stats().drops_for(DropReason::UnmatchedFragment), 1);
}

/// Splits an Ethernet/IPv6 frame (no extension headers) at `at` payload bytes into two
/// fragments carrying Fragment headers with identification `ident`.
fn fragment_v6(frame: &[u8], at: usize, ident: u32) -> (Vec<u8>, Vec<u8>) {
    let (head, payload) = frame.split_at(54);
    let next = head[20];
    let make = |part: &[u8], offset: usize, more: bool| {
        let mut f = head.to_vec();
        f[20] = 44;
        f[18..20].copy_from_slice(&((8 + part.len()) as u16).to_be_bytes());
        let off = (offset as u16) | u16::from(more);
        f.extend_from_slice(&[next, 0]);
        f.extend_from_slice(&off.to_be_bytes());
        f.extend_from_slice(&ident.to_be_bytes());
        f.extend_from_slice(part);
        f
    };
    (make(&payload[..at], 0, true), make(&payload[at..], at, false))
}

#[test]
fn ipv6_fragments_follow_too() {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(64)].into_boxed_slice());
    let services: &'static mut [ServiceSlot<4>] =
        Box::leak((0..2).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
    let mut e = Engine::new(ConnTable::new(memory, 64, 1).unwrap(), services, EngineConfig::default()).unwrap();
    let key = ServiceKey::new(IpProtocol::UDP, a("2001:db8::100"), 53);
    e.add_service(key, &ServiceConfig { scheduler: "rr", ..ServiceConfig::default() }).unwrap();
    for real in ["2001:db8:1::1", "2001:db8:1::2"] {
        e.add_real(
            &key,
            &RealConfig {
                addr: a(real),
                port: 53,
                forward: Forward::Nat,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
            },
        )
        .unwrap();
    }
    let client = (a("2001:db8:5::1"), 33335);
    let whole = frame(client, (a("2001:db8::100"), 53), IpProtocol::UDP, TcpFlags::empty(), &[9u8; 120]);
    let (first, second) = fragment_v6(&whole, 64, 0xabcdef);
    let (v1, out1) = send(&mut e, &first);
    let Verdict::Transmit { next_hop, .. } = v1 else { panic!("{v1:?}") };
    let (v2, out2) = send(&mut e, &second);
    assert_eq!(v2, Verdict::Transmit { next_hop, port: 0 });
    assert_eq!(Summary::from_ethernet(&out1).unwrap().dst, Some(next_hop));
    assert_eq!(Summary::from_ethernet(&out2).unwrap().dst, Some(next_hop));
    // Reassembled, the UDP checksum is valid for the real server's address.
    let mut datagram = out1[62..].to_vec();
    datagram.extend_from_slice(&out2[62..]);
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (client.0, next_hop) else { unreachable!() };
    let pseudo = vs_proto::wire::checksum::pseudo_header_v6(src, dst, IpProtocol::UDP, datagram.len() as u32);
    assert!(checksum::is_valid(checksum::sum(pseudo, &datagram)));
}
