//! Shared workloads for the criterion benchmarks and for callgrind instruction counts: each
//! workload comes with its baseline doing the same work with another crate.
//!
//! Parse + NAT rewrite of an Ethernet / IPv4 / TCP frame (destination address and port, TTL,
//! every checksum kept valid), by vs-proto and by etherparse.
//!
//! etherparse has no in-place rewrite with incremental checksums (its issue #9), so the baseline
//! does what its maintainer recommends: validate with `SlicedPacket`, decode the IPv4 and TCP
//! headers, change them, recompute both checksums and write the headers back.

use std::net::{IpAddr, Ipv4Addr};

use vs_proto::wire::{ChecksumCaps, Rewriter, Summary, checksum};

/// The real server the NAT rewrite sends to.
pub const NEW_DST: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
/// The real server's port.
pub const NEW_PORT: u16 = 8080;

/// An Ethernet / IPv4 / TCP frame of `len` bytes with valid checksums.
pub fn frame(len: usize) -> Vec<u8> {
    let payload_len = len - 14 - 20 - 20;
    let mut f = vec![0u8; len];
    f[0..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let total = u16::try_from(len - 14).unwrap();
    f[14] = 0x45;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[198, 18, 0, 1]);
    f[30..34].copy_from_slice(&[198, 18, 0, 100]);
    let ip_ck = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&ip_ck.to_be_bytes());
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    f[46] = 5 << 4;
    f[47] = 0x18;
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let seg_len = u32::try_from(20 + payload_len).unwrap();
    let pseudo = checksum::pseudo_header_v4(
        Ipv4Addr::new(198, 18, 0, 1),
        Ipv4Addr::new(198, 18, 0, 100),
        vs_proto::wire::IpProtocol::TCP,
        seg_len,
    );
    let ck = !checksum::fold(checksum::sum(pseudo, &f[34..]));
    f[50..52].copy_from_slice(&ck.to_be_bytes());
    f
}

/// Parse and NAT-rewrite with vs-proto: in place, incremental checksums.
pub fn vs_proto_parse_nat(buf: &mut [u8]) -> bool {
    let mut summary = Summary::default();
    if summary.parse_ethernet(buf).is_err() {
        return false;
    }
    let mut rw = Rewriter::new(buf, &mut summary, ChecksumCaps::software());
    rw.set_dst(IpAddr::V4(NEW_DST), NEW_PORT).is_ok() && rw.decrement_hop_limit().is_ok()
}

/// The same with etherparse: validate, decode, change, recompute, write back.
pub fn etherparse_parse_nat(buf: &mut [u8]) -> bool {
    let (ip_start, tcp_start, end) = {
        let Ok(sliced) = etherparse::SlicedPacket::from_ethernet(buf) else {
            return false;
        };
        let Some(etherparse::NetSlice::Ipv4(ip)) = sliced.net else {
            return false;
        };
        let ip_len = ip.header().slice().len();
        let total = usize::from(ip.header().total_len());
        (14, 14 + ip_len, 14 + total)
    };
    let Ok((mut ip, _)) = etherparse::Ipv4Header::from_slice(&buf[ip_start..]) else {
        return false;
    };
    let Ok((mut tcp, _)) = etherparse::TcpHeader::from_slice(&buf[tcp_start..end]) else {
        return false;
    };
    let payload_start = tcp_start + tcp.header_len();
    ip.destination = NEW_DST.octets();
    ip.time_to_live -= 1;
    ip.header_checksum = ip.calc_header_checksum();
    tcp.destination_port = NEW_PORT;
    let Ok(ck) = tcp.calc_checksum_ipv4(&ip, &buf[payload_start..end]) else {
        return false;
    };
    tcp.checksum = ck;
    let ip_bytes = ip.to_bytes();
    buf[ip_start..ip_start + ip_bytes.len()].copy_from_slice(&ip_bytes);
    let tcp_bytes = tcp.to_bytes();
    buf[tcp_start..tcp_start + tcp_bytes.len()].copy_from_slice(&tcp_bytes);
    true
}

/// An Ethernet / IPv4 / TCP frame between two endpoints with `payload_len` zero bytes of
/// payload and valid checksums.
pub fn tcp_frame(
    src: (std::net::IpAddr, u16),
    dst: (std::net::IpAddr, u16),
    flags: vs_proto::wire::TcpFlags,
    payload_len: usize,
) -> Vec<u8> {
    let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (src.0, dst.0) else { panic!("IPv4 only") };
    let len = 14 + 20 + 20 + payload_len;
    let mut f = vec![0u8; len];
    f[0..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&u16::try_from(len - 14).unwrap().to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&s.octets());
    f[30..34].copy_from_slice(&d.octets());
    let ip_ck = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&ip_ck.to_be_bytes());
    f[34..36].copy_from_slice(&src.1.to_be_bytes());
    f[36..38].copy_from_slice(&dst.1.to_be_bytes());
    f[46] = 5 << 4;
    f[47] = flags.bits();
    let pseudo =
        checksum::pseudo_header_v4(s, d, vs_proto::wire::IpProtocol::TCP, u32::try_from(20 + payload_len).unwrap());
    let ck = !checksum::fold(checksum::sum(pseudo, &f[34..]));
    f[50..52].copy_from_slice(&ck.to_be_bytes());
    f
}

pub mod lab;
