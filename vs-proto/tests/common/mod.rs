//! Packet builders for the integration tests: Ethernet frames with IPv4 / IPv6 and TCP / UDP,
//! every checksum computed from scratch.
#![allow(dead_code)]

use std::net::IpAddr;

use vs_proto::wire::checksum::{self, pseudo_header_v4, pseudo_header_v6};
use vs_proto::wire::{IpProtocol, Ipv4Header, Ipv6Header, MacAddr, TcpFlags};
use zerocopy::IntoBytes;

mod capture;
#[allow(unused_imports)] // Each test binary uses its own share of the helpers.
pub(crate) use capture::{run_tshark, tshark_fields, write_pcap};

pub(crate) const CLIENT_MAC: MacAddr = MacAddr([0x02, 0xc1, 0, 0, 0, 1]);
pub(crate) const DIRECTOR_MAC: MacAddr = MacAddr([0x02, 0xd1, 0, 0, 0, 1]);

/// A frame: `proto` segment with `payload` between the endpoints, TTL 64, DF set.
pub(crate) fn frame(
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    proto: IpProtocol,
    flags: TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    let mut l4 = vec![0u8; if proto == IpProtocol::TCP { 20 } else { 8 }];
    l4[0..2].copy_from_slice(&src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
    if proto == IpProtocol::TCP {
        l4[4..8].copy_from_slice(&1000u32.to_be_bytes());
        l4[12] = 5 << 4;
        l4[13] = flags.bits();
        l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
    }
    l4.extend_from_slice(payload);
    let len = u16::try_from(l4.len()).unwrap();
    if proto == IpProtocol::UDP {
        l4[4..6].copy_from_slice(&len.to_be_bytes());
    }
    let pseudo = match (src.0, dst.0) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(s, d, proto, u32::from(len)),
        (IpAddr::V6(s), IpAddr::V6(d)) => pseudo_header_v6(s, d, proto, u32::from(len)),
        _ => panic!("mixed families"),
    };
    let mut c = !checksum::fold(checksum::sum(pseudo, &l4));
    if proto == IpProtocol::UDP {
        c = checksum::udp_wire(c);
    }
    let at = if proto == IpProtocol::TCP { 16 } else { 6 };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&DIRECTOR_MAC.0);
    f.extend_from_slice(&CLIENT_MAC.0);
    match (src.0, dst.0) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut h = Ipv4Header::new(s, d, proto, 64, len);
            h.ident.set(0x4242);
            h.set_dont_frag(true);
            h.fill_checksum();
            f.extend_from_slice(h.as_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&0x86DDu16.to_be_bytes());
            f.extend_from_slice(Ipv6Header::new(s, d, proto, 64, len).as_bytes());
        }
        _ => unreachable!(),
    }
    f.extend_from_slice(&l4);
    f
}

/// Every checksum of a frame is right, as etherparse (an implementation independent of
/// vs-proto's) computes them: the IPv4 header's; the TCP, UDP (an IPv4 UDP checksum of 0 means
/// none was sent), ICMP or ICMPv6 one; and for a tunnel (IP in IP) the inner packet's, the same
/// way. A frame etherparse cannot take apart, or carrying anything else, fails: nothing passes
/// for want of a judgement.
pub(crate) fn checksums_ok(frame: &[u8]) -> bool {
    etherparse::SlicedPacket::from_ethernet(frame).is_ok_and(|p| packet_checksums_ok(&p))
}

fn packet_checksums_ok(p: &etherparse::SlicedPacket<'_>) -> bool {
    use etherparse::{NetSlice, TransportSlice};
    let (v4, payload) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            if ip.header().to_header().calc_header_checksum() != ip.header().header_checksum() {
                return false;
            }
            (Some(ip.header().to_header()), ip.payload())
        }
        Some(NetSlice::Ipv6(ip)) => (None, ip.payload()),
        _ => return false,
    };
    let v6 = match &p.net {
        Some(NetSlice::Ipv6(ip)) => Some(ip.header().to_header()),
        _ => None,
    };
    match (&p.transport, v4, v6) {
        (Some(TransportSlice::Tcp(t)), Some(h), _) => {
            t.to_header().calc_checksum_ipv4(&h, t.payload()).ok() == Some(t.checksum())
        }
        (Some(TransportSlice::Tcp(t)), _, Some(h)) => {
            t.to_header().calc_checksum_ipv6(&h, t.payload()).ok() == Some(t.checksum())
        }
        (Some(TransportSlice::Udp(u)), Some(h), _) => {
            u.checksum() == 0 || u.to_header().calc_checksum_ipv4(&h, u.payload()).ok() == Some(u.checksum())
        }
        (Some(TransportSlice::Udp(u)), _, Some(h)) => {
            u.to_header().calc_checksum_ipv6(&h, u.payload()).ok() == Some(u.checksum())
        }
        (Some(TransportSlice::Icmpv4(i)), Some(_), _) => {
            i.header().icmp_type.calc_checksum(i.payload()) == i.checksum()
        }
        (Some(TransportSlice::Icmpv6(i)), _, Some(h)) => i.is_checksum_valid(h.source, h.destination),
        // IP in IP (4) or IPv6 in IP (41): the inner packet is judged the same way.
        (None, _, _) if matches!(payload.ip_number.0, 4 | 41) && !payload.fragmented => {
            etherparse::SlicedPacket::from_ip(payload.payload).is_ok_and(|inner| packet_checksums_ok(&inner))
        }
        _ => false,
    }
}
