//! ARP for IPv4 over Ethernet (RFC 826): the only ARP a director answers or learns from.

use core::net::Ipv4Addr;

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::error::{Error, Result};
use super::number::{EtherType, MacAddr};

/// ARP operation code (open newtype).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ArpOp(pub u16);

impl ArpOp {
    /// Request.
    pub const REQUEST: ArpOp = ArpOp(1);
    /// Reply.
    pub const REPLY: ArpOp = ArpOp(2);
}

/// The 28-byte ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ArpPacket {
    /// Hardware type (1 for Ethernet).
    pub htype: U16,
    /// Protocol type (0x0800 for IPv4).
    pub ptype: U16,
    /// Hardware address length (6).
    pub hlen: u8,
    /// Protocol address length (4).
    pub plen: u8,
    /// Operation.
    pub oper: U16,
    /// Sender hardware address.
    pub sha: MacAddr,
    /// Sender protocol address.
    pub spa: [u8; 4],
    /// Target hardware address.
    pub tha: MacAddr,
    /// Target protocol address.
    pub tpa: [u8; 4],
}

impl ArpPacket {
    /// Length in bytes.
    pub const LEN: usize = 28;

    /// Parses and checks that this is ARP for IPv4 over Ethernet.
    ///
    /// # Errors
    /// [`Error::ArpTruncated`] or [`Error::ArpUnsupported`].
    pub fn parse(bytes: &[u8]) -> Result<&ArpPacket> {
        let (arp, _) = ArpPacket::ref_from_prefix(bytes).map_err(|_| Error::ArpTruncated)?;
        if arp.htype.get() != 1 || arp.ptype.get() != EtherType::IPV4.0 || arp.hlen != 6 || arp.plen != 4 {
            return Err(Error::ArpUnsupported);
        }
        Ok(arp)
    }

    /// Operation.
    #[must_use]
    pub fn op(&self) -> ArpOp {
        ArpOp(self.oper.get())
    }

    /// Sender IPv4 address.
    #[must_use]
    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.spa)
    }

    /// Target IPv4 address.
    #[must_use]
    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.tpa)
    }

    /// A request or reply for IPv4 over Ethernet.
    #[must_use]
    pub fn new(op: ArpOp, sha: MacAddr, spa: Ipv4Addr, tha: MacAddr, tpa: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            htype: U16::new(1),
            ptype: U16::new(EtherType::IPV4.0),
            hlen: 6,
            plen: 4,
            oper: U16::new(op.0),
            sha,
            spa: spa.octets(),
            tha,
            tpa: tpa.octets(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let arp = ArpPacket::new(
            ArpOp::REQUEST,
            MacAddr([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::new(198, 18, 0, 1),
            MacAddr::default(),
            Ipv4Addr::new(198, 18, 0, 2),
        );
        let bytes = arp.as_bytes();
        let parsed = ArpPacket::parse(bytes).unwrap();
        assert_eq!(*parsed, arp);
        assert_eq!(parsed.op(), ArpOp::REQUEST);
        assert_eq!(parsed.target_ip(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(ArpPacket::parse(&bytes[..27]).err(), Some(Error::ArpTruncated));
        let mut bad = [0u8; 28];
        bad.copy_from_slice(bytes);
        bad[4] = 8;
        assert_eq!(ArpPacket::parse(&bad).err(), Some(Error::ArpUnsupported));
    }
}
