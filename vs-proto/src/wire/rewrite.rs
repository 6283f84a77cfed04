//! In-place header rewrites that keep every checksum valid with RFC 1624 incremental updates:
//! addresses, ports, MAC addresses and the TTL / hop limit.
//!
//! A [`Rewriter`] works on a packet that [`Summary`] parsed successfully and keeps the summary in
//! step with the bytes. Checksums are updated only where the [`ChecksumCaps`] policy says software
//! computes them on transmit; otherwise the field is left for the hardware.

use core::net::IpAddr;

use super::caps::ChecksumCaps;
use super::checksum;
use super::error::{Error, Result};
use super::number::{IpProtocol, MacAddr};
use super::summary::{L3, Summary};

/// Offsets inside the IPv4 header.
const V4_TTL: usize = 8;
const V4_CHECKSUM: usize = 10;
const V4_SRC: usize = 12;
const V4_DST: usize = 16;
/// Offsets inside the IPv6 header.
const V6_HOP_LIMIT: usize = 7;
const V6_SRC: usize = 8;
const V6_DST: usize = 24;
/// Offsets inside the Ethernet header.
const ETH_DST: usize = 0;
const ETH_SRC: usize = 6;

/// Which address of the IP header to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

/// Rewrites one parsed packet in place.
#[derive(Debug)]
pub struct Rewriter<'a> {
    packet: &'a mut [u8],
    summary: &'a mut Summary,
    caps: ChecksumCaps,
}

impl<'a> Rewriter<'a> {
    /// A rewriter over `packet`, which `summary` describes (it must be the buffer that was
    /// parsed, and the parse must have succeeded).
    pub fn new(packet: &'a mut [u8], summary: &'a mut Summary, caps: ChecksumCaps) -> Self {
        Rewriter { packet, summary, caps }
    }

    /// The packet bytes.
    #[must_use]
    pub fn packet(&self) -> &[u8] {
        self.packet
    }

    /// Sets the IP source address; the address family must match the packet.
    ///
    /// # Errors
    /// [`Error::NotApplicable`] for another family or a non-IP packet.
    pub fn set_src_addr(&mut self, addr: IpAddr) -> Result<()> {
        self.set_addr(Side::Src, addr)?;
        self.summary.src = Some(addr);
        Ok(())
    }

    /// Sets the IP destination address; the address family must match the packet.
    ///
    /// # Errors
    /// [`Error::NotApplicable`] for another family or a non-IP packet.
    pub fn set_dst_addr(&mut self, addr: IpAddr) -> Result<()> {
        self.set_addr(Side::Dst, addr)?;
        self.summary.dst = Some(addr);
        Ok(())
    }

    /// Sets the TCP or UDP source port.
    ///
    /// # Errors
    /// [`Error::NotApplicable`] when the packet has no TCP/UDP header.
    pub fn set_src_port(&mut self, port: u16) -> Result<()> {
        self.set_port(0, port)?;
        self.summary.ports = self.summary.ports.map(|(_, d)| (port, d));
        Ok(())
    }

    /// Sets the TCP or UDP destination port.
    ///
    /// # Errors
    /// [`Error::NotApplicable`] when the packet has no TCP/UDP header.
    pub fn set_dst_port(&mut self, port: u16) -> Result<()> {
        self.set_port(2, port)?;
        self.summary.ports = self.summary.ports.map(|(s, _)| (s, port));
        Ok(())
    }

    /// Sets the Ethernet source and destination MAC addresses (VLAN tags stay as they are).
    ///
    /// # Errors
    /// [`Error::NotApplicable`] when the packet has no Ethernet header.
    pub fn set_macs(&mut self, src: MacAddr, dst: MacAddr) -> Result<()> {
        if !self.summary.has_ethernet {
            return Err(Error::NotApplicable);
        }
        write(self.packet, ETH_DST, &dst.0)?;
        write(self.packet, ETH_SRC, &src.0)
    }

    /// Decrements the IPv4 TTL or IPv6 hop limit and returns the new value.
    ///
    /// # Errors
    /// [`Error::HopLimitExceeded`] (packet unchanged) when the value is 1 or 0: the packet must
    /// not be forwarded; [`Error::NotApplicable`] for non-IP packets.
    pub fn decrement_hop_limit(&mut self) -> Result<u8> {
        let l3 = self.summary.l3_offset;
        match self.summary.l3 {
            L3::Ipv4 => {
                let at = l3.checked_add(V4_TTL).ok_or(Error::NotApplicable)?;
                let [ttl, proto] = read::<2>(self.packet, at)?;
                let new = ttl.checked_sub(1).filter(|t| *t > 0).ok_or(Error::HopLimitExceeded)?;
                write(self.packet, at, &[new])?;
                if self.caps.ipv4.tx() {
                    let old_word = u16::from_be_bytes([ttl, proto]);
                    let new_word = u16::from_be_bytes([new, proto]);
                    self.update_ipv4_checksum(|c| checksum::update16(c, old_word, new_word))?;
                }
                Ok(new)
            }
            L3::Ipv6 => {
                let at = l3.checked_add(V6_HOP_LIMIT).ok_or(Error::NotApplicable)?;
                let [hops] = read::<1>(self.packet, at)?;
                let new = hops.checked_sub(1).filter(|t| *t > 0).ok_or(Error::HopLimitExceeded)?;
                write(self.packet, at, &[new])?;
                Ok(new)
            }
            _ => Err(Error::NotApplicable),
        }
    }

    fn set_addr(&mut self, side: Side, addr: IpAddr) -> Result<()> {
        let l3 = self.summary.l3_offset;
        match (self.summary.l3, addr) {
            (L3::Ipv4, IpAddr::V4(new)) => {
                let field = if side == Side::Src { V4_SRC } else { V4_DST };
                let at = l3.checked_add(field).ok_or(Error::NotApplicable)?;
                let old = read::<4>(self.packet, at)?;
                let new = new.octets();
                write(self.packet, at, &new)?;
                if self.caps.ipv4.tx() {
                    self.update_ipv4_checksum(|c| checksum::update32(c, old, new))?;
                }
                self.update_l4_pseudo(&old, &new)
            }
            (L3::Ipv6, IpAddr::V6(new)) => {
                let field = if side == Side::Src { V6_SRC } else { V6_DST };
                let at = l3.checked_add(field).ok_or(Error::NotApplicable)?;
                let old = read::<16>(self.packet, at)?;
                let new = new.octets();
                write(self.packet, at, &new)?;
                // With a Routing header the pseudo-header names the final destination, not
                // this field (RFC 8200 §8.1), so the transport checksum does not change.
                if side == Side::Dst && self.summary.final_dst.is_some() {
                    return Ok(());
                }
                self.update_l4_pseudo(&old, &new)
            }
            _ => Err(Error::NotApplicable),
        }
    }

    fn set_port(&mut self, field: usize, port: u16) -> Result<()> {
        let proto = self.summary.proto.ok_or(Error::NotApplicable)?;
        if !matches!(proto, IpProtocol::TCP | IpProtocol::UDP) || self.summary.ports.is_none() {
            return Err(Error::NotApplicable);
        }
        let at = self.summary.l4_offset.checked_add(field).ok_or(Error::NotApplicable)?;
        let old = read::<2>(self.packet, at)?;
        let new = port.to_be_bytes();
        write(self.packet, at, &new)?;
        self.update_l4(&old, &new)
    }

    /// Updates the transport checksum for a change in a field the pseudo-header covers.
    fn update_l4_pseudo(&mut self, old: &[u8], new: &[u8]) -> Result<()> {
        match self.summary.proto {
            // ICMPv4 has no pseudo-header; other protocols' checksums are not ours to keep.
            Some(IpProtocol::TCP | IpProtocol::UDP | IpProtocol::ICMPV6) => self.update_l4(old, new),
            _ => Ok(()),
        }
    }

    /// Updates the transport checksum for a changed field, following UDP's zero rule.
    fn update_l4(&mut self, old: &[u8], new: &[u8]) -> Result<()> {
        if self.summary.is_later_fragment() {
            // The transport header (and its checksum) travels in the first fragment.
            return Ok(());
        }
        let Some(proto) = self.summary.proto else { return Ok(()) };
        if !self.caps.for_l4(proto).is_some_and(|c| c.tx()) {
            return Ok(());
        }
        let offset = match proto {
            IpProtocol::TCP => super::tcp::TcpHeader::CHECKSUM_OFFSET,
            IpProtocol::UDP => super::udp::UdpHeader::CHECKSUM_OFFSET,
            IpProtocol::ICMPV6 => super::icmp::IcmpHeader::CHECKSUM_OFFSET,
            _ => return Ok(()),
        };
        let at = self.summary.l4_offset.checked_add(offset).ok_or(Error::NotApplicable)?;
        let current = u16::from_be_bytes(read::<2>(self.packet, at)?);
        let is_udp = proto == IpProtocol::UDP;
        if is_udp && current == 0 && self.summary.l3 == L3::Ipv4 {
            // IPv4 UDP without a checksum stays without one.
            return Ok(());
        }
        let mut updated = checksum::update_bytes(current, old, new);
        if is_udp {
            updated = checksum::udp_wire(updated);
        }
        write(self.packet, at, &updated.to_be_bytes())
    }

    fn update_ipv4_checksum(&mut self, f: impl FnOnce(u16) -> u16) -> Result<()> {
        let at = self
            .summary
            .l3_offset
            .checked_add(V4_CHECKSUM)
            .ok_or(Error::NotApplicable)?;
        let current = u16::from_be_bytes(read::<2>(self.packet, at)?);
        write(self.packet, at, &f(current).to_be_bytes())
    }
}

/// Reads `N` bytes at `at`.
fn read<const N: usize>(packet: &[u8], at: usize) -> Result<[u8; N]> {
    let end = at.checked_add(N).ok_or(Error::NotApplicable)?;
    packet
        .get(at..end)
        .and_then(|b| b.try_into().ok())
        .ok_or(Error::NotApplicable)
}

/// Writes `bytes` at `at`.
fn write(packet: &mut [u8], at: usize, bytes: &[u8]) -> Result<()> {
    let end = at.checked_add(bytes.len()).ok_or(Error::NotApplicable)?;
    packet
        .get_mut(at..end)
        .ok_or(Error::NotApplicable)?
        .copy_from_slice(bytes);
    Ok(())
}
