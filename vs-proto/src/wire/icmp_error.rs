//! Building an ICMP or ICMPv6 error about a packet, in place: the director's answers
//! "fragmentation needed" / "packet too big" (tunnel MTU), "port unreachable" (no real server)
//! and "time exceeded" (TTL), as IPVS sends them.
//!
//! The new IP and ICMP headers go into the headroom (the link header moves ahead of them, as in
//! [`super::encapsulate`]); the original IP packet, cut to what an error may quote (576 bytes in
//! all for IPv4, 1280 for IPv6, as Linux's `icmp_send` / `icmp6_send`), becomes the quote.

use core::net::IpAddr;

use zerocopy::IntoBytes;
use zerocopy::byteorder::network_endian::U16;

use super::buffer::PacketBuf;
use super::checksum;
use super::error::{Error, Result};
use super::icmp::IcmpHeader;
use super::ipv4::Ipv4Header;
use super::ipv6::Ipv6Header;
use super::number::IpProtocol;
use super::summary::{L3, Summary};

/// Which error to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IcmpError {
    /// IPv4 destination unreachable, fragmentation needed (3/4) or ICMPv6 packet too big (2/0),
    /// with the MTU the packet must fit.
    TooBig {
        /// The MTU to report.
        mtu: u32,
    },
    /// Destination unreachable, port unreachable (IPv4 3/3, ICMPv6 1/4).
    PortUnreachable,
    /// Time exceeded in transit (IPv4 11/0, ICMPv6 3/0).
    TimeExceeded,
}

impl IcmpError {
    /// (type, code, rest-of-header word) for the family.
    fn header(self, v6: bool) -> (u8, u8, [u8; 4]) {
        match (self, v6) {
            (IcmpError::TooBig { mtu }, false) => {
                let m = u16::try_from(mtu).unwrap_or(u16::MAX).to_be_bytes();
                (3, 4, [0, 0, m[0], m[1]])
            }
            (IcmpError::TooBig { mtu }, true) => (2, 0, mtu.to_be_bytes()),
            (IcmpError::PortUnreachable, false) => (3, 3, [0; 4]),
            (IcmpError::PortUnreachable, true) => (1, 4, [0; 4]),
            (IcmpError::TimeExceeded, false) => (11, 0, [0; 4]),
            (IcmpError::TimeExceeded, true) => (3, 0, [0; 4]),
        }
    }
}

/// Replaces the parsed packet in `buf` by an ICMP error about it, from `from` to the packet's
/// source, with TTL / hop limit 64. Returns the summary of the new packet (protocol ICMP or
/// ICMPv6, `quoted` describing the original).
///
/// # Errors
/// [`Error::NotApplicable`] for a non-IP packet or a `from` of the other family,
/// [`Error::NoHeadroom`] when the headers do not fit before the packet.
// The offsets added here are bounded by small constants (a link header of at most 22 bytes,
// headers of at most 48, a quote of at most 1280 bytes), so the additions cannot overflow.
#[allow(clippy::arithmetic_side_effects)]
pub fn icmp_error(buf: &mut PacketBuf<'_>, summary: &Summary, kind: IcmpError, from: IpAddr) -> Result<Summary> {
    let to = summary.src.ok_or(Error::NotApplicable)?;
    let v6 = match (summary.l3, from, to) {
        (L3::Ipv4, IpAddr::V4(_), IpAddr::V4(_)) => false,
        (L3::Ipv6, IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return Err(Error::NotApplicable),
    };
    let l2 = summary.l3_offset;
    if summary.l3_end > buf.len() || l2 > summary.l3_end {
        return Err(Error::BadBounds);
    }
    let (ip_len, limit) = if v6 { (Ipv6Header::LEN, 1280usize) } else { (Ipv4Header::LEN, 576usize) };
    let head = ip_len + IcmpHeader::LEN;
    let original = summary.l3_end.checked_sub(l2).ok_or(Error::BadBounds)?;
    let quote = original.min(limit - head);
    if buf.headroom() < head {
        return Err(Error::NoHeadroom);
    }
    buf.truncate(l2 + quote);
    buf.push_head(head)?;
    let data = buf.data_mut();
    data.copy_within(head..head + l2, 0);
    let (ty, code, rest) = kind.header(v6);
    let icmp_len = IcmpHeader::LEN + quote;
    let icmp_len16 = u16::try_from(icmp_len).map_err(|_| Error::TooLong)?;
    {
        let icmp = data.get_mut(l2 + ip_len..l2 + head).ok_or(Error::BadBounds)?;
        icmp.copy_from_slice(IcmpHeader { ty, code, checksum: U16::ZERO, rest }.as_bytes());
    }
    let message = data.get(l2 + ip_len..l2 + ip_len + icmp_len).ok_or(Error::BadBounds)?;
    let check = match (from, to) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let pseudo = checksum::pseudo_header_v6(s, d, IpProtocol::ICMPV6, u32::from(icmp_len16));
            !checksum::fold(checksum::sum(pseudo, message))
        }
        _ => checksum::checksum(message),
    };
    data.get_mut(l2 + ip_len + 2..l2 + ip_len + 4).ok_or(Error::BadBounds)?.copy_from_slice(&check.to_be_bytes());
    let header = data.get_mut(l2..l2 + ip_len).ok_or(Error::BadBounds)?;
    match (from, to) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            header.copy_from_slice(Ipv4Header::new(s, d, IpProtocol::ICMP, 64, icmp_len16).as_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            header.copy_from_slice(Ipv6Header::new(s, d, IpProtocol::ICMPV6, 64, icmp_len16).as_bytes());
        }
        _ => return Err(Error::NotApplicable),
    }
    if summary.has_ethernet { Summary::from_ethernet(buf.data()) } else { Summary::from_ip(buf.data()) }
}

/// Which end of an ICMP error's quoted packet to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum QuotedEnd {
    /// The quoted packet's source address and port.
    Src,
    /// The quoted packet's destination address and port.
    Dst,
}

/// Rewrites one end of the packet an ICMP error quotes (address, and port when the quote holds
/// it), refreshes the quoted IPv4 header checksum, and recomputes the ICMP / ICMPv6 checksum
/// over the whole message (IPVS's `ip_vs_nat_icmp`). The quoted transport checksum is left as
/// it is, as IPVS leaves it (a quote rarely holds the whole segment).
///
/// # Errors
/// [`Error::NotApplicable`] when the packet is not an ICMP error with a quote of that family.
// Offsets are bounded by the parsed summary of this very packet (checked against its length).
#[allow(clippy::arithmetic_side_effects)]
pub fn rewrite_quoted(packet: &mut [u8], summary: &mut Summary, end: QuotedEnd, addr: IpAddr, port: u16) -> Result<()> {
    let mut quoted = summary.quoted.ok_or(Error::NotApplicable)?;
    if summary.l3_end > packet.len() || summary.l4_offset > summary.l3_end {
        return Err(Error::BadBounds);
    }
    let q = summary.l4_offset + IcmpHeader::LEN;
    let (field, octets): (usize, &[u8]) = match (quoted.src, addr, end) {
        (IpAddr::V4(_), IpAddr::V4(a), QuotedEnd::Src) => (12, &a.octets()[..]),
        (IpAddr::V4(_), IpAddr::V4(a), QuotedEnd::Dst) => (16, &a.octets()[..]),
        (IpAddr::V6(_), IpAddr::V6(a), QuotedEnd::Src) => (8, &a.octets()[..]),
        (IpAddr::V6(_), IpAddr::V6(a), QuotedEnd::Dst) => (24, &a.octets()[..]),
        _ => return Err(Error::NotApplicable),
    };
    packet.get_mut(q + field..q + field + octets.len()).ok_or(Error::NotApplicable)?.copy_from_slice(octets);
    if quoted.ports.is_some() {
        let at = q + quoted.l4_offset + if end == QuotedEnd::Src { 0 } else { 2 };
        if let Some(p) = packet.get_mut(at..at + 2) {
            p.copy_from_slice(&port.to_be_bytes());
        }
    }
    if quoted.src.is_ipv4() {
        let header = packet.get_mut(q..q + quoted.l4_offset).ok_or(Error::NotApplicable)?;
        header.get_mut(10..12).ok_or(Error::NotApplicable)?.copy_from_slice(&[0, 0]);
        let c = checksum::checksum(header);
        header.get_mut(10..12).ok_or(Error::NotApplicable)?.copy_from_slice(&c.to_be_bytes());
    }
    match end {
        QuotedEnd::Src => quoted.src = addr,
        QuotedEnd::Dst => quoted.dst = addr,
    }
    quoted.ports = quoted.ports.map(|(s, d)| if end == QuotedEnd::Src { (port, d) } else { (s, port) });
    summary.quoted = Some(quoted);
    // The whole message's checksum, over the pseudo-header for ICMPv6.
    let start = summary.l4_offset;
    let message = packet.get_mut(start..summary.l3_end).ok_or(Error::NotApplicable)?;
    message.get_mut(2..4).ok_or(Error::NotApplicable)?.copy_from_slice(&[0, 0]);
    let check = match (summary.src, summary.dst) {
        (Some(IpAddr::V6(s)), Some(IpAddr::V6(d))) => {
            let len = u32::try_from(message.len()).map_err(|_| Error::TooLong)?;
            let pseudo = checksum::pseudo_header_v6(s, summary.final_dst.unwrap_or(d), IpProtocol::ICMPV6, len);
            !checksum::fold(checksum::sum(pseudo, message))
        }
        _ => checksum::checksum(message),
    };
    message.get_mut(2..4).ok_or(Error::NotApplicable)?.copy_from_slice(&check.to_be_bytes());
    Ok(())
}
