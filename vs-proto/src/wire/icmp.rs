//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) headers, and the lax parse of the packet an ICMP error
//! quotes (its IP header and the first eight bytes of its transport header).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::error::{Error, Result};
use super::ipv4::Ipv4Header;
use super::ipv6::{Ipv6Header, walk_extensions};
use super::number::IpProtocol;

/// The 8-byte ICMP / ICMPv6 header; `rest` is the type-specific word (identifier and sequence,
/// next-hop MTU, pointer, unused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct IcmpHeader {
    /// Message type.
    pub ty: u8,
    /// Message code.
    pub code: u8,
    /// Checksum (ICMPv6's covers the IPv6 pseudo-header too).
    pub checksum: U16,
    /// The type-specific word.
    pub rest: [u8; 4],
}

impl IcmpHeader {
    /// Header length in bytes; an error's quoted packet starts here.
    pub const LEN: usize = 8;
    /// Byte offset of the checksum field.
    pub const CHECKSUM_OFFSET: usize = 2;

    /// Parses the header at the start of `message`.
    ///
    /// # Errors
    /// [`Error::IcmpTruncated`].
    pub fn parse(message: &[u8]) -> Result<&IcmpHeader> {
        IcmpHeader::ref_from_prefix(message).map(|(h, _)| h).map_err(|_| Error::IcmpTruncated)
    }

    /// The MTU word of "fragmentation needed" (low 16 bits) or of ICMPv6 "packet too big".
    #[must_use]
    pub fn mtu(&self) -> u32 {
        u32::from_be_bytes(self.rest)
    }
}

/// What an ICMP error tells about the packet it quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QuotedPacket {
    /// Source address of the quoted packet.
    pub src: IpAddr,
    /// Destination address of the quoted packet.
    pub dst: IpAddr,
    /// Its transport protocol (after any IPv6 extension headers that fit).
    pub proto: IpProtocol,
    /// Source and destination ports, when the transport has ports and they were quoted.
    pub ports: Option<(u16, u16)>,
    /// Offset of the quoted transport header from the start of the quoted IP header.
    pub l4_offset: usize,
}

impl QuotedPacket {
    /// Lax parse of the quoted packet: the IP header must be whole, its lengths are not checked
    /// against what was quoted, and ports are read only when four transport bytes were quoted
    /// and the quoted packet is not a non-first fragment.
    ///
    /// # Errors
    /// [`Error::IcmpQuoteTruncated`] or [`Error::IcmpQuoteMalformed`].
    pub fn parse(quoted: &[u8]) -> Result<QuotedPacket> {
        match quoted.first().map(|b| b >> 4) {
            Some(4) => Self::parse_v4(quoted),
            Some(6) => Self::parse_v6(quoted),
            Some(_) => Err(Error::IcmpQuoteMalformed),
            None => Err(Error::IcmpQuoteTruncated),
        }
    }

    fn parse_v4(quoted: &[u8]) -> Result<QuotedPacket> {
        let (ip, _) = Ipv4Header::ref_from_prefix(quoted).map_err(|_| Error::IcmpQuoteTruncated)?;
        let hlen = ip.header_len();
        if hlen < Ipv4Header::LEN {
            return Err(Error::IcmpQuoteMalformed);
        }
        let transport = quoted.get(hlen..).ok_or(Error::IcmpQuoteTruncated)?;
        let first_fragment = ip.frag_offset() == 0;
        Ok(QuotedPacket {
            src: IpAddr::V4(ip.src()),
            dst: IpAddr::V4(ip.dst()),
            proto: ip.proto(),
            ports: if first_fragment { ports_of(ip.proto(), transport) } else { None },
            l4_offset: hlen,
        })
    }

    fn parse_v6(quoted: &[u8]) -> Result<QuotedPacket> {
        let (ip, rest) = Ipv6Header::ref_from_prefix(quoted).map_err(|_| Error::IcmpQuoteTruncated)?;
        let src = IpAddr::V6(Ipv6Addr::from(ip.src));
        let dst = IpAddr::V6(Ipv6Addr::from(ip.dst));
        // A chain cut short by the quote still names the addresses; it just has no ports.
        let Ok(chain) = walk_extensions(ip.next_header(), rest) else {
            return Ok(QuotedPacket { src, dst, proto: ip.next_header(), ports: None, l4_offset: Ipv6Header::LEN });
        };
        let l4_offset = Ipv6Header::LEN.saturating_add(chain.len);
        let first_fragment = chain.fragment.is_none_or(|f| f.is_first());
        let transport = rest.get(chain.len..).unwrap_or(&[]);
        Ok(QuotedPacket {
            src,
            dst,
            proto: chain.proto,
            ports: if first_fragment { ports_of(chain.proto, transport) } else { None },
            l4_offset,
        })
    }

    /// The quoted source as IPv4, if it is one (used for ICMPv4 errors).
    #[must_use]
    pub fn src_v4(&self) -> Option<Ipv4Addr> {
        match self.src {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
}

/// The two ports at the start of a transport header that has them.
pub(crate) fn ports_of(proto: IpProtocol, transport: &[u8]) -> Option<(u16, u16)> {
    if !proto.has_ports() {
        return None;
    }
    match transport {
        [a, b, c, d, ..] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_ipv4_udp_with_ports() {
        let h = Ipv4Header::new(Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2), IpProtocol::UDP, 1, 500);
        let mut q = [0u8; 28];
        h.write_to_prefix(&mut q[..]).unwrap();
        q[20..24].copy_from_slice(&[0x30, 0x39, 0x00, 0x35]);
        let p = QuotedPacket::parse(&q).unwrap();
        assert_eq!(p.src, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(p.proto, IpProtocol::UDP);
        assert_eq!(p.ports, Some((12345, 53)));
        // Lax: the total length (520) is far beyond the 28 quoted bytes; ports need 4 bytes.
        assert_eq!(QuotedPacket::parse(&q[..22]).unwrap().ports, None);
        assert_eq!(QuotedPacket::parse(&q[..19]).err(), Some(Error::IcmpQuoteTruncated));
        assert_eq!(QuotedPacket::parse(&[0x50; 20]).err(), Some(Error::IcmpQuoteMalformed));
    }

    #[test]
    fn quoted_ipv6_tcp() {
        let h =
            Ipv6Header::new("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap(), IpProtocol::TCP, 1, 1000);
        let mut q = [0u8; 48];
        h.write_to_prefix(&mut q[..]).unwrap();
        q[40..44].copy_from_slice(&[0, 80, 0x9c, 0x40]);
        let p = QuotedPacket::parse(&q).unwrap();
        assert_eq!(p.ports, Some((80, 40000)));
        assert_eq!(p.l4_offset, 40);
    }
}
