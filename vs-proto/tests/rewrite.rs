//! Rewrites and encapsulation: incremental checksum updates must equal a full recomputation for
//! random packets and random rewrites (property tests), and the special cases hold.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use vs_proto::wire::checksum::{self, pseudo_header_v4, pseudo_header_v6};
use vs_proto::wire::{
    Checksum, ChecksumCaps, Error, EtherType, IpProtocol, Ipv4Header, Ipv6Header, L3, MacAddr, PacketBuf, Rewriter,
    Summary, TunnelHeader, decapsulate, encapsulate,
};
use zerocopy::IntoBytes;

/// Builds Ethernet + IP + (TCP | UDP | ICMP) with every checksum computed from scratch.
fn build(src: IpAddr, dst: IpAddr, proto: IpProtocol, ports: (u16, u16), payload: &[u8], ttl: u8) -> Vec<u8> {
    let l4_header_len = match proto {
        IpProtocol::TCP => 20,
        IpProtocol::UDP | IpProtocol::ICMP | IpProtocol::ICMPV6 => 8,
        _ => 0,
    };
    let mut l4 = vec![0u8; l4_header_len];
    l4.extend_from_slice(payload);
    let l4_len = u16::try_from(l4.len()).unwrap();
    match proto {
        IpProtocol::TCP => {
            l4[0..2].copy_from_slice(&ports.0.to_be_bytes());
            l4[2..4].copy_from_slice(&ports.1.to_be_bytes());
            l4[12] = 5 << 4;
            l4[13] = 0x18;
        }
        IpProtocol::UDP => {
            l4[0..2].copy_from_slice(&ports.0.to_be_bytes());
            l4[2..4].copy_from_slice(&ports.1.to_be_bytes());
            l4[4..6].copy_from_slice(&l4_len.to_be_bytes());
        }
        _ => l4[0] = if proto == IpProtocol::ICMP { 8 } else { 128 },
    }
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) if proto != IpProtocol::ICMP => pseudo_header_v4(s, d, proto, u32::from(l4_len)),
        (IpAddr::V6(s), IpAddr::V6(d)) => pseudo_header_v6(s, d, proto, u32::from(l4_len)),
        _ => 0,
    };
    let mut c = !checksum::fold(checksum::sum(pseudo, &l4));
    if proto == IpProtocol::UDP {
        c = checksum::udp_wire(c);
    }
    let at = if proto == IpProtocol::TCP {
        16
    } else if proto == IpProtocol::UDP {
        6
    } else {
        2
    };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0, 0];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            frame[12..14].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
            frame.extend_from_slice(Ipv4Header::new(s, d, proto, ttl, l4_len).as_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            frame[12..14].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
            frame.extend_from_slice(Ipv6Header::new(s, d, proto, ttl, l4_len).as_bytes());
        }
        _ => unreachable!(),
    }
    frame.extend_from_slice(&l4);
    frame
}

fn addr(v6: bool, bits: u128) -> IpAddr {
    if v6 { IpAddr::V6(Ipv6Addr::from(bits)) } else { IpAddr::V4(Ipv4Addr::from(bits as u32)) }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn incremental_updates_equal_full_recomputation(
        v6 in any::<bool>(),
        proto_pick in 0usize..3,
        a in any::<[u128; 4]>(),
        ports in any::<[u16; 4]>(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        ttl in 2u8..=255,
        which in any::<[bool; 5]>(),
    ) {
        let proto = [IpProtocol::TCP, IpProtocol::UDP, if v6 { IpProtocol::ICMPV6 } else { IpProtocol::ICMP }][proto_pick];
        let (src, dst) = (addr(v6, a[0]), addr(v6, a[1]));
        let (new_src, new_dst) = (addr(v6, a[2]), addr(v6, a[3]));
        let mut packet = build(src, dst, proto, (ports[0], ports[1]), &payload, ttl);
        let mut summary = Summary::from_ethernet(&packet).unwrap();
        prop_assert_eq!(summary.l4_checksum_ok(&packet), Some(true));
        let ported = proto == IpProtocol::TCP || proto == IpProtocol::UDP;
        let (mut fs, mut fd, mut fsp, mut fdp) = (src, dst, ports[0], ports[1]);
        {
            let mut rw = Rewriter::new(&mut packet, &mut summary, ChecksumCaps::software());
            if which[0] { rw.set_src_addr(new_src).unwrap(); fs = new_src; }
            if which[1] { rw.set_dst_addr(new_dst).unwrap(); fd = new_dst; }
            if which[2] && ported { rw.set_src_port(ports[2]).unwrap(); fsp = ports[2]; }
            if which[3] && ported { rw.set_dst_port(ports[3]).unwrap(); fdp = ports[3]; }
            if which[4] { rw.decrement_hop_limit().unwrap(); }
            if !ported {
                prop_assert_eq!(rw.set_src_port(1), Err(Error::NotApplicable));
            }
        }
        let expected = build(fs, fd, proto, (fsp, fdp), &payload, if which[4] { ttl - 1 } else { ttl });
        prop_assert_eq!(&packet, &expected);
        prop_assert_eq!(summary, Summary::from_ethernet(&packet).unwrap());
    }

    #[test]
    fn encapsulation_round_trips(
        inner_v6 in any::<bool>(),
        outer_v6 in any::<bool>(),
        a in any::<[u128; 4]>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        headroom in 40usize..64,
    ) {
        let original = build(addr(inner_v6, a[0]), addr(inner_v6, a[1]), IpProtocol::UDP, (1000, 53), &payload, 64);
        let mut storage = vec![0u8; headroom + original.len()];
        storage[headroom..].copy_from_slice(&original);
        let mut buf = PacketBuf::new(&mut storage, headroom, original.len()).unwrap();
        let summary = Summary::from_ethernet(buf.data()).unwrap();
        let outer = TunnelHeader { src: addr(outer_v6, a[2]), dst: addr(outer_v6, a[3]), ttl: 64, tos: 0, dont_frag: true, ident: 7 };
        let tunnelled = encapsulate(&mut buf, &summary, &outer).unwrap();
        prop_assert_eq!(Summary::from_ethernet(buf.data()).unwrap(), tunnelled);
        prop_assert_eq!(tunnelled.proto, Some(if inner_v6 { IpProtocol::IPV6 } else { IpProtocol::IPIP }));
        prop_assert_eq!(tunnelled.src, Some(outer.src));
        prop_assert_eq!(tunnelled.ipv4_checksum_ok(buf.data()).unwrap_or(true), true);
        let inner = decapsulate(&mut buf, &tunnelled).unwrap();
        prop_assert_eq!(buf.data(), &original[..]);
        prop_assert_eq!(inner, summary);
    }
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ipv4_udp_without_checksum_stays_without() {
    let mut packet = build(v4("198.18.0.1"), v4("198.18.0.2"), IpProtocol::UDP, (1, 2), b"hello", 64);
    packet[14 + 20 + 6] = 0;
    packet[14 + 20 + 7] = 0;
    let mut s = Summary::from_ethernet(&packet).unwrap();
    let mut rw = Rewriter::new(&mut packet, &mut s, ChecksumCaps::software());
    rw.set_dst_addr(v4("198.19.0.9")).unwrap();
    rw.set_dst_port(8080).unwrap();
    assert_eq!(&packet[14 + 26..14 + 28], &[0, 0]);
    assert_eq!(s.l4_checksum_ok(&packet), Some(true));
}

#[test]
fn udp_checksum_that_becomes_zero_is_sent_as_ffff() {
    // Search for a rewrite whose incremental result is 0 and check it is written as 0xFFFF and
    // still verifies.
    let mut found = false;
    for port in 0..=u16::MAX {
        let mut packet = build(v4("198.18.0.1"), v4("198.18.0.2"), IpProtocol::UDP, (1, 2), b"x", 64);
        let mut s = Summary::from_ethernet(&packet).unwrap();
        let old = u16::from_be_bytes([packet[40], packet[41]]);
        if checksum::update16(old, 2, port) != 0 {
            continue;
        }
        Rewriter::new(&mut packet, &mut s, ChecksumCaps::software()).set_dst_port(port).unwrap();
        assert_eq!(&packet[40..42], &[0xFF, 0xFF]);
        assert_eq!(s.l4_checksum_ok(&packet), Some(true));
        found = true;
        break;
    }
    assert!(found);
}

#[test]
fn offloaded_checksums_are_left_alone_and_verify_follows_policy() {
    let mut packet = build(v4("198.18.0.1"), v4("198.18.0.2"), IpProtocol::TCP, (1, 2), b"data", 64);
    let before = packet.clone();
    let mut s = Summary::from_ethernet(&packet).unwrap();
    let caps = ChecksumCaps::all(Checksum::Rx);
    Rewriter::new(&mut packet, &mut s, caps).set_dst_addr(v4("198.18.0.3")).unwrap();
    assert_eq!(packet[24..26], before[24..26], "IPv4 checksum untouched");
    assert_eq!(packet[50..52], before[50..52], "TCP checksum untouched");
    assert_eq!(caps.verify(&s, &packet), Err(Error::Ipv4BadChecksum));
    assert_eq!(ChecksumCaps::all(Checksum::Tx).verify(&s, &packet), Ok(()));
    let mut tcp_only = ChecksumCaps::all(Checksum::None);
    tcp_only.tcp = Checksum::Both;
    assert_eq!(tcp_only.verify(&s, &packet), Err(Error::TcpBadChecksum));
}

#[test]
fn hop_limit_and_macs() {
    let mut packet = build(v4("198.18.0.1"), v4("198.18.0.2"), IpProtocol::TCP, (1, 2), b"", 2);
    let mut s = Summary::from_ethernet(&packet).unwrap();
    let mut rw = Rewriter::new(&mut packet, &mut s, ChecksumCaps::software());
    assert_eq!(rw.decrement_hop_limit(), Ok(1));
    assert_eq!(rw.decrement_hop_limit(), Err(Error::HopLimitExceeded));
    rw.set_macs(MacAddr([2, 0, 0, 0, 0, 0xaa]), MacAddr([2, 0, 0, 0, 0, 0xbb])).unwrap();
    assert_eq!(&packet[0..12], &[2, 0, 0, 0, 0, 0xbb, 2, 0, 0, 0, 0, 0xaa]);
    assert_eq!(s.ipv4_checksum_ok(&packet), Some(true));
    assert_eq!(s.l3, L3::Ipv4);
    let mut bare = packet[14..].to_vec();
    let mut s = Summary::from_ip(&bare).unwrap();
    let mut rw = Rewriter::new(&mut bare, &mut s, ChecksumCaps::software());
    assert_eq!(rw.set_macs(MacAddr::default(), MacAddr::default()), Err(Error::NotApplicable));
    assert_eq!(rw.set_src_addr("2001:db8::1".parse().unwrap()), Err(Error::NotApplicable));
}

#[test]
fn encapsulation_needs_headroom_and_sets_outer_fields() {
    let original = build(v4("198.18.0.1"), v4("198.18.1.1"), IpProtocol::TCP, (1234, 80), b"GET /", 63);
    let mut storage = vec![0u8; 10 + original.len()];
    storage[10..].copy_from_slice(&original);
    let mut buf = PacketBuf::new(&mut storage, 10, original.len()).unwrap();
    let s = Summary::from_ethernet(buf.data()).unwrap();
    let outer = TunnelHeader {
        src: v4("198.18.0.254"),
        dst: v4("198.18.2.2"),
        ttl: 63,
        tos: 0x10,
        dont_frag: true,
        ident: 0x1234,
    };
    assert_eq!(encapsulate(&mut buf, &s, &outer), Err(Error::NoHeadroom));
    assert_eq!(buf.data(), &original[..], "a refused encapsulation leaves the packet alone");
    let mut storage = vec![0u8; 20 + original.len() + 6];
    storage[20..20 + original.len()].copy_from_slice(&original);
    // Six bytes of Ethernet padding after the packet are dropped by encapsulation.
    let mut buf = PacketBuf::new(&mut storage, 20, original.len() + 6).unwrap();
    let s = Summary::from_ethernet(buf.data()).unwrap();
    let t = encapsulate(&mut buf, &s, &outer).unwrap();
    let d = buf.data();
    assert_eq!(d.len(), original.len() + 20);
    assert_eq!(&d[12..14], &[0x08, 0x00]);
    assert_eq!(d[14], 0x45);
    assert_eq!(d[15], 0x10, "tos");
    assert_eq!(&d[18..20], &[0x12, 0x34], "ident");
    assert_eq!(d[20] & 0x40, 0x40, "DF");
    assert_eq!(d[22], 63, "ttl");
    assert_eq!(d[23], 4, "IP-in-IP");
    assert_eq!(t.ipv4_checksum_ok(d), Some(true));
    assert_eq!(&d[34..], &original[14..]);
}
