//! The one-pass summary on crafted packets: every field of the flow, partial results on errors,
//! ICMP errors with their quoted packet, fragments, tunnels, and no allocation anywhere.

#[path = "common/counting.rs"]
mod counting;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use counting::allocations;
use vs_proto::wire::{
    ChecksumCaps, Error, Fragment, IcmpHeader, IpProtocol, Ipv4Header, Ipv6Header, L3, PacketBuf, Rewriter, Summary,
    TcpFlags, TunnelHeader, decapsulate, encapsulate,
};
use zerocopy::IntoBytes;
use zerocopy::byteorder::network_endian::U16;

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
    let h = Ipv4Header::new(Ipv4Addr::from(src), Ipv4Addr::from(dst), proto, 64, u16::try_from(l4.len()).unwrap());
    let mut p = h.as_bytes().to_vec();
    p.extend_from_slice(l4);
    p
}

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t
}

#[test]
fn tcp_syn_over_vlan() {
    let ip = ipv4([198, 18, 0, 1], [198, 18, 0, 100], IpProtocol::TCP, &tcp(40000, 80, 0x02));
    let mut tagged = vec![0u8, 10, 0x08, 0x00];
    tagged.extend_from_slice(&ip);
    let f = ethernet(0x8100, &tagged);
    let s = Summary::from_ethernet(&f).unwrap();
    assert_eq!(s.vlans.as_slice(), &[10]);
    assert_eq!(s.l3, L3::Ipv4);
    assert_eq!(s.l3_offset, 18);
    assert_eq!(s.l4_offset, 38);
    assert_eq!(s.l3_end, f.len());
    assert_eq!(s.src, Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))));
    assert_eq!(s.proto, Some(IpProtocol::TCP));
    assert_eq!(s.ports, Some((40000, 80)));
    assert_eq!(s.tcp_flags, Some(TcpFlags::SYN));
    assert_eq!(s.fragment, None);
}

#[test]
fn failure_keeps_what_was_parsed() {
    let mut ip = ipv4([198, 18, 0, 1], [198, 18, 0, 2], IpProtocol::UDP, &[0, 1, 0, 2, 0, 8, 0, 0]);
    ip[3] = 200; // total length beyond the buffer
    let mut s = Summary::default();
    assert_eq!(s.parse_ip(&ip), Err(Error::Ipv4BadTotalLen));
    assert_eq!(s.l3, L3::Ipv4);
    assert_eq!(s.dst, Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2))));
    assert_eq!(s.proto, Some(IpProtocol::UDP));
    assert_eq!(s.ports, None);
    // A TCP header with a bad data offset still names its ports.
    let mut seg = tcp(1, 2, 0x10);
    seg[12] = 3 << 4;
    let ip = ipv4([198, 18, 0, 1], [198, 18, 0, 2], IpProtocol::TCP, &seg);
    assert_eq!(s.parse_ip(&ip), Err(Error::TcpBadDataOffset));
    assert_eq!(s.ports, Some((1, 2)));
    assert_eq!(s.parse_ip(&[0x15, 0, 0]), Err(Error::Ipv4BadVersion));
    assert_eq!(s.l3, L3::None);
    assert_eq!(s.parse_ip(&[]), Err(Error::Ipv4Truncated));
}

#[test]
fn icmp_fragmentation_needed_quotes_the_tcp_flow() {
    let quoted = ipv4([198, 18, 0, 100], [198, 18, 0, 1], IpProtocol::TCP, &tcp(80, 40000, 0x18));
    let mut icmp = IcmpHeader { ty: 3, code: 4, checksum: U16::ZERO, rest: [0, 0, 0x05, 0xdc] }.as_bytes().to_vec();
    icmp.extend_from_slice(&quoted[..28]);
    let ck = vs_proto::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    let ip = ipv4([198, 18, 0, 254], [198, 18, 0, 100], IpProtocol::ICMP, &icmp);
    let s = Summary::from_ip(&ip).unwrap();
    let info = s.icmp.unwrap();
    assert_eq!((info.ty, info.code, info.is_error), (3, 4, true));
    let q = s.quoted.unwrap();
    assert_eq!(q.src, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)));
    assert_eq!(q.proto, IpProtocol::TCP);
    assert_eq!(q.ports, Some((80, 40000)));
    assert_eq!(s.l4_checksum_ok(&ip), Some(true));
    assert_eq!(IcmpHeader::parse(&icmp).unwrap().mtu(), 1500);
    // Echo requests quote nothing.
    let echo = ipv4([198, 18, 0, 1], [198, 18, 0, 2], IpProtocol::ICMP, &[8, 0, 0, 0, 0, 1, 0, 1]);
    let s = Summary::from_ip(&echo).unwrap();
    assert_eq!(s.icmp.map(|i| i.is_error), Some(false));
    assert_eq!(s.quoted, None);
}

#[test]
fn ipv4_fragments() {
    let udp = [0u8, 1, 0, 2, 0x05, 0xdc, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    let mut first = ipv4([198, 18, 0, 1], [198, 18, 0, 2], IpProtocol::UDP, &udp);
    first[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    first[6] = 0x20; // MF, offset 0
    let s = Summary::from_ip(&first).unwrap();
    assert_eq!(s.fragment, Some(Fragment { ident: 0x1234, offset: 0, more: true }));
    assert_eq!(s.ports, Some((1, 2)), "a first fragment carries the ports; its UDP length is not checked");
    assert_eq!(s.l4_checksum_ok(&first), None);
    let mut later = first.clone();
    later[6] = 0x00;
    later[7] = 0x02; // offset 16 bytes, last fragment
    let s = Summary::from_ip(&later).unwrap();
    assert_eq!(s.fragment, Some(Fragment { ident: 0x1234, offset: 16, more: false }));
    assert!(s.is_later_fragment());
    assert_eq!(s.ports, None);
}

#[test]
fn ipv6_non_first_fragment_and_tunnels() {
    let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let mut p = Ipv6Header::new(src, dst, IpProtocol::IPV6_FRAG, 64, 16).as_bytes().to_vec();
    p.extend_from_slice(&[6, 0, 0x00, 0x21, 0, 0, 0, 9]); // offset 32, M = 1, next TCP
    p.extend_from_slice(&[0xaa; 8]);
    let s = Summary::from_ip(&p).unwrap();
    assert_eq!(s.proto, Some(IpProtocol::TCP));
    assert_eq!(s.fragment, Some(Fragment { ident: 9, offset: 32, more: true }));
    assert_eq!(s.ports, None);

    // IPv4 in IPv6: recognised as a tunnel for decapsulation.
    let inner = ipv4([198, 18, 0, 1], [198, 18, 0, 2], IpProtocol::TCP, &tcp(5, 6, 0x10));
    let mut outer =
        Ipv6Header::new(src, dst, IpProtocol::IPIP, 64, u16::try_from(inner.len()).unwrap()).as_bytes().to_vec();
    outer.extend_from_slice(&inner);
    let s = Summary::from_ip(&outer).unwrap();
    assert_eq!(s.proto, Some(IpProtocol::IPIP));
    assert_eq!(s.l4_offset, 40);
    let mut storage = outer.clone();
    let len = storage.len();
    let mut buf = PacketBuf::new(&mut storage, 0, len).unwrap();
    let inner_summary = decapsulate(&mut buf, &s).unwrap();
    assert_eq!(buf.data(), &inner[..]);
    assert_eq!(inner_summary.ports, Some((5, 6)));
}

#[test]
fn arp_and_other_ethertypes() {
    let arp = vs_proto::wire::ArpPacket::new(
        vs_proto::wire::ArpOp::REQUEST,
        vs_proto::wire::MacAddr([2, 0, 0, 0, 0, 1]),
        Ipv4Addr::new(198, 18, 0, 1),
        vs_proto::wire::MacAddr::default(),
        Ipv4Addr::new(198, 18, 0, 2),
    );
    let s = Summary::from_ethernet(&ethernet(0x0806, arp.as_bytes())).unwrap();
    assert_eq!(s.l3, L3::Arp);
    assert_eq!(s.src, None);
    let s = Summary::from_ethernet(&ethernet(0x88cc, &[0; 30])).unwrap();
    assert_eq!(s.l3, L3::Other(vs_proto::wire::EtherType(0x88cc)));
}

#[test]
fn packet_path_does_not_allocate() {
    let frame = ethernet(0x0800, &ipv4([198, 18, 0, 1], [198, 18, 0, 100], IpProtocol::TCP, &tcp(40000, 80, 0x18)));
    let mut storage = vec![0u8; 64 + frame.len()];
    let outer = TunnelHeader {
        src: Ipv4Addr::new(198, 18, 0, 254).into(),
        dst: Ipv4Addr::new(198, 18, 2, 2).into(),
        ttl: 64,
        tos: 0,
        dont_frag: true,
        ident: 1,
    };
    let before = allocations();
    for _ in 0..1000 {
        storage[64..].copy_from_slice(&frame);
        let len = frame.len();
        let mut buf = PacketBuf::new(&mut storage, 64, len).unwrap();
        let mut s = Summary::from_ethernet(buf.data()).unwrap();
        let mut rw = Rewriter::new(buf.data_mut(), &mut s, ChecksumCaps::software());
        rw.set_dst(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)), 8080).unwrap();
        rw.decrement_hop_limit().unwrap();
        let t = encapsulate(&mut buf, &s, &outer).unwrap();
        decapsulate(&mut buf, &t).unwrap();
        assert_eq!(s.ipv4_checksum_ok(buf.data()), Some(true));
    }
    let after = allocations();
    assert_eq!(after, before, "the packet path allocated");
}

#[test]
fn fill_l4_checksum_completes_a_partial_checksum() {
    // A TCP segment as a veth hands it over with offloads on: only the pseudo-header sum in
    // the checksum field (CHECKSUM_PARTIAL). Filling it makes the checksum valid.
    let mut t = tcp(40000, 80, 0x18);
    t.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let mut frame = ethernet(0x0800, &ipv4([198, 18, 0, 1], [198, 18, 0, 100], IpProtocol::TCP, &t));
    frame[14 + 20 + 16] = 0x12;
    frame[14 + 20 + 17] = 0x34;
    let s = Summary::from_ethernet(&frame).unwrap();
    assert_eq!(s.l4_checksum_ok(&frame), Some(false));
    assert!(s.fill_l4_checksum(&mut frame));
    assert_eq!(s.l4_checksum_ok(&frame), Some(true));
    // UDP too; an ICMP packet is not touched.
    let mut udp = vec![0u8; 8 + 5];
    udp[0..2].copy_from_slice(&5353u16.to_be_bytes());
    udp[2..4].copy_from_slice(&53u16.to_be_bytes());
    udp[4..6].copy_from_slice(&13u16.to_be_bytes());
    let mut frame = ethernet(0x0800, &ipv4([198, 18, 0, 1], [198, 18, 0, 100], IpProtocol::UDP, &udp));
    let s = Summary::from_ethernet(&frame).unwrap();
    assert!(s.fill_l4_checksum(&mut frame));
    assert_ne!(frame[14 + 20 + 6..14 + 20 + 8], [0, 0]);
    assert_eq!(s.l4_checksum_ok(&frame), Some(true));
    let mut icmp =
        ethernet(0x0800, &ipv4([198, 18, 0, 1], [198, 18, 0, 100], IpProtocol::ICMP, &[8, 0, 0, 0, 0, 0, 0, 0]));
    let s = Summary::from_ethernet(&icmp).unwrap();
    assert!(!s.fill_l4_checksum(&mut icmp));
}

#[test]
fn partial_checksum_completes_to_the_full_one() {
    // What an offloading sender does with the partial form: sum the segment (with the partial
    // value in the field) and complement. It must equal the full checksum.
    let mut t = tcp(40000, 80, 0x18);
    t.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut frame = ethernet(0x0800, &ipv4([198, 18, 0, 1], [198, 18, 1, 1], IpProtocol::TCP, &t));
    let s = Summary::from_ethernet(&frame).unwrap();
    assert_eq!(s.fill_partial_l4_checksum(&mut frame), Some(16));
    let field = s.l4_offset + 16;
    let completed = !vs_proto::wire::checksum::fold(vs_proto::wire::checksum::sum(0, &frame[s.l4_offset..s.l3_end]));
    frame[field..field + 2].copy_from_slice(&completed.to_be_bytes());
    assert_eq!(s.l4_checksum_ok(&frame), Some(true));
}
