//! IP-in-IP (protocol 4) and IPv6 (protocol 41) encapsulation into headroom, and
//! decapsulation, for IPVS's tunnel forwarding method.
//!
//! The link-layer header (Ethernet and VLAN tags), if any, stays at the front: it moves into the
//! headroom ahead of the new outer header, and its EtherType is set for the outer header.

use core::net::IpAddr;

use zerocopy::IntoBytes;
use zerocopy::byteorder::network_endian::U16;

use super::buffer::PacketBuf;
use super::error::{Error, Result};
use super::ipv4::Ipv4Header;
use super::ipv6::Ipv6Header;
use super::number::{EtherType, IpProtocol};
use super::summary::{L3, Summary};

/// The outer header of a tunnelled packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TunnelHeader {
    /// Outer source (the director's tunnel address).
    pub src: IpAddr,
    /// Outer destination (the real server).
    pub dst: IpAddr,
    /// TTL / hop limit of the outer header.
    pub ttl: u8,
    /// TOS / traffic class of the outer header.
    pub tos: u8,
    /// The don't-fragment flag (IPv4 outer header only).
    pub dont_frag: bool,
    /// Identification of the outer IPv4 header.
    pub ident: u16,
}

/// Wraps the parsed packet in `buf` in a new outer IPv4 or IPv6 header (the family of
/// `outer.src`), written into the headroom. Link-layer padding after the inner packet is dropped.
/// Returns the summary of the result (outer addresses, protocol 4 or 41).
///
/// # Errors
/// [`Error::NotApplicable`] for a non-IP packet or mixed outer families, [`Error::NoHeadroom`],
/// [`Error::TooLong`] when the result exceeds the outer header's length field.
pub fn encapsulate(buf: &mut PacketBuf<'_>, summary: &Summary, outer: &TunnelHeader) -> Result<Summary> {
    let inner_v6 = match summary.l3 {
        L3::Ipv4 => false,
        L3::Ipv6 => true,
        _ => return Err(Error::NotApplicable),
    };
    let l2 = summary.l3_offset;
    encapsulate_at(buf, l2, summary.l3_end, inner_v6, summary.has_ethernet, outer)?;
    let outer_len = if outer.src.is_ipv4() { Ipv4Header::LEN } else { Ipv6Header::LEN };
    let inner_len = summary.l3_end.saturating_sub(l2);
    Ok(Summary {
        has_ethernet: summary.has_ethernet,
        vlans: summary.vlans,
        l3: if outer.src.is_ipv4() { L3::Ipv4 } else { L3::Ipv6 },
        l3_offset: l2,
        l3_end: l2.saturating_add(outer_len).saturating_add(inner_len),
        src: Some(outer.src),
        dst: Some(outer.dst),
        proto: Some(if inner_v6 { IpProtocol::IPV6 } else { IpProtocol::IPIP }),
        l4_offset: l2.saturating_add(outer_len),
        ..Summary::default()
    })
}

/// [`encapsulate`] of the IP packet that starts at `l2` (after `l2` bytes of link-layer header)
/// and ends at `l3_end`, without building a summary of the result (the engine's fast path).
///
/// # Errors
/// As [`encapsulate`].
pub(crate) fn encapsulate_at(
    buf: &mut PacketBuf<'_>,
    l2: usize,
    l3_end: usize,
    inner_v6: bool,
    has_ethernet: bool,
    outer: &TunnelHeader,
) -> Result<()> {
    let inner_proto = if inner_v6 { IpProtocol::IPV6 } else { IpProtocol::IPIP };
    let inner_len = l3_end.checked_sub(l2).ok_or(Error::BadBounds)?;
    let (outer_len, ethertype) = match outer.src {
        IpAddr::V4(_) => (Ipv4Header::LEN, EtherType::IPV4),
        IpAddr::V6(_) => (Ipv6Header::LEN, EtherType::IPV6),
    };
    let payload_len = match outer.src {
        IpAddr::V4(_) => inner_len.checked_add(Ipv4Header::LEN),
        IpAddr::V6(_) => Some(inner_len),
    };
    let length_field = payload_len.and_then(|n| u16::try_from(n).ok()).ok_or(Error::TooLong)?;
    if buf.headroom() < outer_len {
        return Err(Error::NoHeadroom);
    }
    buf.truncate(l3_end);
    buf.push_head(outer_len)?;
    let data = buf.data_mut();
    let l2_end = outer_len.checked_add(l2).ok_or(Error::BadBounds)?;
    if l2_end > data.len() {
        return Err(Error::BadBounds);
    }
    data.copy_within(outer_len..l2_end, 0);
    let header = data.get_mut(l2..l2_end).ok_or(Error::BadBounds)?;
    match (outer.src, outer.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let inner_payload = length_field.saturating_sub(20);
            let mut h = Ipv4Header::new(src, dst, inner_proto, outer.ttl, inner_payload);
            h.tos = outer.tos;
            h.ident = U16::new(outer.ident);
            h.set_dont_frag(outer.dont_frag);
            h.fill_checksum();
            header.copy_from_slice(h.as_bytes());
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut h = Ipv6Header::new(src, dst, inner_proto, outer.ttl, length_field);
            let vtf = h.version_tc_flow.get() | (u32::from(outer.tos) << 20);
            h.version_tc_flow.set(vtf);
            header.copy_from_slice(h.as_bytes());
        }
        _ => return Err(Error::NotApplicable),
    }
    if has_ethernet {
        set_link_ethertype(data, l2, ethertype)?;
    }
    Ok(())
}

/// Removes the outer header of an IP-in-IP or IPv6-encapsulated packet and returns the summary
/// of the inner packet.
///
/// # Errors
/// [`Error::NotApplicable`] when the packet is not a whole (unfragmented) tunnel packet; any
/// parse error of the inner packet.
pub fn decapsulate(buf: &mut PacketBuf<'_>, summary: &Summary) -> Result<Summary> {
    if !matches!(summary.proto, Some(IpProtocol::IPIP | IpProtocol::IPV6)) || summary.fragment.is_some() {
        return Err(Error::NotApplicable);
    }
    let l2 = summary.l3_offset;
    let outer_len = summary.l4_offset.checked_sub(l2).ok_or(Error::BadBounds)?;
    buf.truncate(summary.l3_end);
    let data = buf.data_mut();
    let moved_end = l2.checked_add(outer_len).ok_or(Error::BadBounds)?;
    if moved_end > data.len() {
        return Err(Error::BadBounds);
    }
    data.copy_within(0..l2, outer_len);
    buf.pull_head(outer_len)?;
    let data = buf.data_mut();
    if summary.has_ethernet {
        let inner_type = match data.get(l2).map(|b| b >> 4) {
            Some(6) => EtherType::IPV6,
            _ => EtherType::IPV4,
        };
        set_link_ethertype(data, l2, inner_type)?;
        Summary::from_ethernet(data)
    } else {
        Summary::from_ip(data)
    }
}

/// Sets the EtherType that ends the link-layer header of `l2` bytes (after any VLAN tags).
fn set_link_ethertype(data: &mut [u8], l2: usize, ethertype: EtherType) -> Result<()> {
    let at = l2.checked_sub(2).ok_or(Error::BadBounds)?;
    data.get_mut(at..l2).ok_or(Error::BadBounds)?.copy_from_slice(&ethertype.0.to_be_bytes());
    Ok(())
}
