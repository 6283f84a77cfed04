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
