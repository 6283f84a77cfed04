//! In-place header rewrites that keep every checksum valid with RFC 1624 incremental updates:
//! addresses, ports, MAC addresses and the TTL / hop limit.
//!
//! A [`Rewriter`] works on a packet that [`Summary`] parsed successfully and keeps the summary in
//! step with the bytes. Checksums are updated only where the [`ChecksumCaps`] policy says software
//! computes them on transmit; otherwise the field is left for the hardware. Every operation checks
//! what it needs before it writes, so an operation that fails leaves the packet unchanged.
//!
//! NAT changes an address and a port together ([`Rewriter::set_dst`], [`Rewriter::set_src`]):
//! both changes are added into one checksum delta and the transport checksum is updated once.

use core::net::IpAddr;

use super::caps::ChecksumCaps;
use super::checksum;
use super::error::{Error, Result};
use super::icmp::IcmpHeader;
use super::number::{IpProtocol, MacAddr};
use super::summary::{L3, Summary};
use super::tcp::TcpHeader;
use super::udp::UdpHeader;

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

/// Which end of the flow to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

/// Where the transport checksum that software keeps up to date lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct L4Checksum {
    /// Absolute offset of the checksum field.
    at: usize,
    /// UDP's rule: a computed zero is sent as 0xFFFF.
    udp: bool,
    /// The checksum covers the pseudo-header (TCP, UDP, ICMPv6; not ICMPv4).
    pseudo: bool,
}

/// Rewrites one parsed packet in place.
#[derive(Debug)]
pub struct Rewriter<'a> {
    packet: &'a mut [u8],
    summary: &'a mut Summary,
    caps: ChecksumCaps,
    l4: Option<L4Checksum>,
}

impl<'a> Rewriter<'a> {
    /// A rewriter over `packet`, which `summary` describes (it must be the buffer that was
    /// parsed, and the parse must have succeeded).
    pub fn new(packet: &'a mut [u8], summary: &'a mut Summary, caps: ChecksumCaps) -> Self {
        let l4 = Self::locate_l4_checksum(packet, summary, &caps);
        Rewriter { packet, summary, caps, l4 }
    }

    /// The transport checksum software must keep, if any: none for later fragments (the header
    /// travels in the first), for offloaded protocols, and for IPv4 UDP sent without one.
    fn locate_l4_checksum(packet: &[u8], summary: &Summary, caps: &ChecksumCaps) -> Option<L4Checksum> {
        if summary.is_later_fragment() {
            return None;
        }
        let proto = summary.proto?;
        if !caps.for_l4(proto)?.tx() {
            return None;
        }
        let (field, udp, pseudo) = match proto {
            IpProtocol::TCP => (TcpHeader::CHECKSUM_OFFSET, false, true),
            IpProtocol::UDP => (UdpHeader::CHECKSUM_OFFSET, true, true),
            IpProtocol::ICMPV6 => (IcmpHeader::CHECKSUM_OFFSET, false, true),
            IpProtocol::ICMP => (IcmpHeader::CHECKSUM_OFFSET, false, false),
            _ => return None,
        };
        let at = summary.l4_offset.checked_add(field)?;
        let current = read::<2>(packet, at).ok()?;
        if udp && current == [0, 0] && summary.l3 == L3::Ipv4 {
            // IPv4 UDP without a checksum stays without one.
            return None;
        }
        Some(L4Checksum { at, udp, pseudo })
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
        self.set(Side::Src, Some(addr), None)
    }

    /// Sets the IP destination address; the address family must match the packet.
    ///
    /// # Errors
    /// [`Error::NotApplicable`] for another family or a non-IP packet.
    pub fn set_dst_addr(&mut self, addr: IpAddr) -> Result<()> {
        self.set(Side::Dst, Some(addr), None)
    }

    /// Sets the TCP or UDP source port.
    ///
    /// # Errors
    /// [`Error::NotApplicable`] when the packet has no TCP/UDP header.
    pub fn set_src_port(&mut self, port: u16) -> Result<()> {
        self.set(Side::Src, None, Some(port))
    }

    /// Sets the TCP or UDP destination port.
    ///
    /// # Errors
    /// [`Error::NotApplicable`] when the packet has no TCP/UDP header.
    pub fn set_dst_port(&mut self, port: u16) -> Result<()> {
        self.set(Side::Dst, None, Some(port))
    }

    /// Sets the source address and port together (NAT of a reply), with one checksum update.
    ///
    /// # Errors
    /// [`Error::NotApplicable`] for another address family or a packet without TCP/UDP header.
    pub fn set_src(&mut self, addr: IpAddr, port: u16) -> Result<()> {
        self.set(Side::Src, Some(addr), Some(port))
    }

    /// Sets the destination address and port together (NAT towards a real server), with one
    /// checksum update.
    ///
    /// # Errors
    /// [`Error::NotApplicable`] for another address family or a packet without TCP/UDP header.
    pub fn set_dst(&mut self, addr: IpAddr, port: u16) -> Result<()> {
        self.set(Side::Dst, Some(addr), Some(port))
    }

    /// Sets the Ethernet source and destination MAC addresses (VLAN tags stay as they are).
    ///
    /// # Errors
    /// [`Error::NotApplicable`] when the packet has no Ethernet header.
    pub fn set_macs(&mut self, src: MacAddr, dst: MacAddr) -> Result<()> {
        if !self.summary.has_ethernet {
            return Err(Error::NotApplicable);
        }
        let header = self.packet.get_mut(ETH_DST..ETH_SRC + 6).ok_or(Error::NotApplicable)?;
        let (d, s) = header.split_at_mut(ETH_SRC);
        d.copy_from_slice(&dst.0);
        s.copy_from_slice(&src.0);
        Ok(())
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
                    self.apply_ipv4(checksum::delta(0, [ttl, proto], [new, proto]))?;
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

    /// Changes the address and/or port of one side, adding every change the transport checksum
    /// covers into one delta.
    fn set(&mut self, side: Side, addr: Option<IpAddr>, port: Option<u16>) -> Result<()> {
        // Check everything before the first write.
        let port_at = match port {
            Some(_) => Some(self.port_offset(side)?),
            None => None,
        };
        let addr_at = match addr {
            Some(a) => Some(self.addr_offset(side, a)?),
            None => None,
        };
        let mut l4_delta = 0u32;
        if let (Some(at), Some(addr)) = (addr_at, addr) {
            l4_delta = match addr {
                IpAddr::V4(a) => self.write_v4_addr(at, a.octets())?,
                IpAddr::V6(a) => self.write_v6_addr(side, at, a.octets())?,
            };
            match side {
                Side::Src => self.summary.src = Some(addr),
                Side::Dst => self.summary.dst = Some(addr),
            }
        }
        if let (Some(at), Some(port)) = (port_at, port) {
            let new = port.to_be_bytes();
            let old = read::<2>(self.packet, at)?;
            write(self.packet, at, &new)?;
            l4_delta = checksum::delta(l4_delta, old, new);
            self.summary.ports = self.summary.ports.map(|(s, d)| match side {
                Side::Src => (port, d),
                Side::Dst => (s, port),
            });
        }
        self.apply_l4(l4_delta)
    }

    /// Offset of the TCP/UDP port of `side`.
    fn port_offset(&self, side: Side) -> Result<usize> {
        if !matches!(self.summary.proto, Some(IpProtocol::TCP | IpProtocol::UDP)) || self.summary.ports.is_none() {
            return Err(Error::NotApplicable);
        }
        let field = if side == Side::Src { 0 } else { 2 };
        self.summary.l4_offset.checked_add(field).ok_or(Error::NotApplicable)
    }

    /// Offset of the address of `side`, if `addr` has the packet's family.
    fn addr_offset(&self, side: Side, addr: IpAddr) -> Result<usize> {
        let field = match (self.summary.l3, addr, side) {
            (L3::Ipv4, IpAddr::V4(_), Side::Src) => V4_SRC,
            (L3::Ipv4, IpAddr::V4(_), Side::Dst) => V4_DST,
            (L3::Ipv6, IpAddr::V6(_), Side::Src) => V6_SRC,
            (L3::Ipv6, IpAddr::V6(_), Side::Dst) => V6_DST,
            _ => return Err(Error::NotApplicable),
        };
        self.summary.l3_offset.checked_add(field).ok_or(Error::NotApplicable)
    }

    /// Writes an IPv4 address, updates the header checksum, and returns the transport delta.
    fn write_v4_addr(&mut self, at: usize, new: [u8; 4]) -> Result<u32> {
        let old = read::<4>(self.packet, at)?;
        write(self.packet, at, &new)?;
        let d = checksum::delta(0, old, new);
        if self.caps.ipv4.tx() {
            self.apply_ipv4(d)?;
        }
        Ok(if self.l4.is_some_and(|c| c.pseudo) { d } else { 0 })
    }

    /// Writes an IPv6 address and returns the transport delta.
    fn write_v6_addr(&mut self, side: Side, at: usize, new: [u8; 16]) -> Result<u32> {
        let old = read::<16>(self.packet, at)?;
        write(self.packet, at, &new)?;
        // With a Routing header the pseudo-header names the final destination, not this field
        // (RFC 8200 §8.1), so the transport checksum does not change.
        let covered = self.l4.is_some_and(|c| c.pseudo) && !(side == Side::Dst && self.summary.final_dst.is_some());
        Ok(if covered { checksum::delta(0, old, new) } else { 0 })
    }

    /// Applies a delta to the transport checksum, following UDP's zero rule.
    fn apply_l4(&mut self, delta: u32) -> Result<()> {
        let Some(l4) = self.l4 else { return Ok(()) };
        let current = u16::from_be_bytes(read::<2>(self.packet, l4.at)?);
        let mut updated = checksum::apply_delta(current, delta);
        if l4.udp {
            updated = checksum::udp_wire(updated);
        }
        write(self.packet, l4.at, &updated.to_be_bytes())
    }

    /// Applies a delta to the IPv4 header checksum.
    fn apply_ipv4(&mut self, delta: u32) -> Result<()> {
        let at = self.summary.l3_offset.checked_add(V4_CHECKSUM).ok_or(Error::NotApplicable)?;
        let current = u16::from_be_bytes(read::<2>(self.packet, at)?);
        write(self.packet, at, &checksum::apply_delta(current, delta).to_be_bytes())
    }
}

/// Reads `N` bytes at `at`.
fn read<const N: usize>(packet: &[u8], at: usize) -> Result<[u8; N]> {
    let end = at.checked_add(N).ok_or(Error::NotApplicable)?;
    packet.get(at..end).and_then(|b| b.try_into().ok()).ok_or(Error::NotApplicable)
}

/// Writes `bytes` at `at`.
fn write(packet: &mut [u8], at: usize, bytes: &[u8]) -> Result<()> {
    let end = at.checked_add(bytes.len()).ok_or(Error::NotApplicable)?;
    packet.get_mut(at..end).ok_or(Error::NotApplicable)?.copy_from_slice(bytes);
    Ok(())
}
