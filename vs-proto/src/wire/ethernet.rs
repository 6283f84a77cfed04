//! Ethernet II frames with up to two VLAN tags (802.1Q `0x8100`, 802.1ad `0x88A8`).

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{ByteSlice, ByteSliceMut, FromBytes, Immutable, IntoBytes, KnownLayout, Ref, SplitByteSlice, Unaligned};

use super::error::{Error, Result};
use super::number::{EtherType, MacAddr};

/// The most VLAN tags a frame may carry (an 802.1ad outer tag and an 802.1Q inner tag).
pub const MAX_VLAN_TAGS: usize = 2;

/// The 14-byte Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct EthernetHeader {
    /// Destination MAC address.
    pub dst: MacAddr,
    /// Source MAC address.
    pub src: MacAddr,
    /// EtherType of what follows (a VLAN TPID when tagged).
    pub ethertype: U16,
}

impl EthernetHeader {
    /// Header length in bytes.
    pub const LEN: usize = 14;

    /// The EtherType field.
    #[must_use]
    pub fn ethertype(&self) -> EtherType {
        EtherType(self.ethertype.get())
    }
}

/// A 4-byte VLAN tag as it follows a TPID: the tag control information and the next EtherType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct VlanTag {
    /// Priority (3 bits), drop eligible (1 bit) and VLAN id (12 bits).
    pub tci: U16,
    /// EtherType of what follows the tag.
    pub ethertype: U16,
}

impl VlanTag {
    /// Tag length in bytes.
    pub const LEN: usize = 4;

    /// The 12-bit VLAN identifier.
    #[must_use]
    pub fn vid(&self) -> u16 {
        self.tci.get() & 0x0FFF
    }

    /// The 3-bit priority code point.
    #[must_use]
    pub fn pcp(&self) -> u8 {
        self.tci.get().to_be_bytes()[0] >> 5
    }

    /// The EtherType after the tag.
    #[must_use]
    pub fn ethertype(&self) -> EtherType {
        EtherType(self.ethertype.get())
    }
}

/// The VLAN ids of a frame, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VlanIds {
    ids: [u16; MAX_VLAN_TAGS],
    count: u8,
}

impl VlanIds {
    /// The ids present, outermost first.
    #[must_use]
    pub fn as_slice(&self) -> &[u16] {
        self.ids.get(..usize::from(self.count)).unwrap_or(&[])
    }

    /// Number of tags.
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// True when the frame is untagged.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn push(&mut self, vid: u16) -> Result<()> {
        let slot = self.ids.get_mut(usize::from(self.count)).ok_or(Error::VlanTooMany)?;
        *slot = vid;
        self.count = self.count.saturating_add(1);
        Ok(())
    }
}

/// A checked, zero-copy view of an Ethernet II frame: header, VLAN tags and payload.
pub struct EthernetFrame<B> {
    header: Ref<B, EthernetHeader>,
    vlans: VlanIds,
    ethertype: EtherType,
    header_len: usize,
    payload: B,
}

impl<B: SplitByteSlice> EthernetFrame<B> {
    /// Checks the header and up to two VLAN tags; anything after them is the payload.
    ///
    /// # Errors
    /// [`Error::EthernetTruncated`], [`Error::VlanTruncated`] or [`Error::VlanTooMany`].
    pub fn new_checked(buffer: B) -> Result<Self> {
        let (header, mut rest) = Ref::<B, EthernetHeader>::from_prefix(buffer).map_err(|_| Error::EthernetTruncated)?;
        let mut ethertype = header.ethertype();
        let mut vlans = VlanIds::default();
        let mut header_len = EthernetHeader::LEN;
        while matches!(ethertype, EtherType::VLAN | EtherType::QINQ) {
            if vlans.len() == MAX_VLAN_TAGS {
                return Err(Error::VlanTooMany);
            }
            let (tag, after) = Ref::<B, VlanTag>::from_prefix(rest).map_err(|_| Error::VlanTruncated)?;
            vlans.push(tag.vid())?;
            ethertype = tag.ethertype();
            header_len = header_len.saturating_add(VlanTag::LEN);
            rest = after;
        }
        Ok(EthernetFrame { header, vlans, ethertype, header_len, payload: rest })
    }
}

impl<B: ByteSlice> EthernetFrame<B> {
    /// The fixed header (addresses and the outer EtherType).
    #[must_use]
    pub fn header(&self) -> &EthernetHeader {
        &self.header
    }

    /// The VLAN ids, outermost first.
    #[must_use]
    pub fn vlans(&self) -> VlanIds {
        self.vlans
    }

    /// The EtherType after any VLAN tags.
    #[must_use]
    pub fn ethertype(&self) -> EtherType {
        self.ethertype
    }

    /// Length of the header including VLAN tags.
    #[must_use]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The bytes after the header and tags.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

impl<B: ByteSliceMut> EthernetFrame<B> {
    /// The fixed header, for in-place changes to the MAC addresses.
    pub fn header_mut(&mut self) -> &mut EthernetHeader {
        &mut self.header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qinq_and_keeps_inner_ethertype() {
        let mut f = [0u8; 14 + 8 + 4];
        f[12..14].copy_from_slice(&0x88A8u16.to_be_bytes());
        f[14..16].copy_from_slice(&(0xA000u16 | 100).to_be_bytes());
        f[16..18].copy_from_slice(&0x8100u16.to_be_bytes());
        f[18..20].copy_from_slice(&200u16.to_be_bytes());
        f[20..22].copy_from_slice(&0x0800u16.to_be_bytes());
        let frame = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(frame.vlans().as_slice(), &[100, 200]);
        assert_eq!(frame.ethertype(), EtherType::IPV4);
        assert_eq!(frame.header_len(), 22);
        assert_eq!(frame.payload().len(), 4);
    }

    #[test]
    fn rejects_three_tags_and_truncation() {
        let mut f = [0u8; 30];
        for off in [12, 16, 20, 24] {
            f[off..off + 2].copy_from_slice(&0x8100u16.to_be_bytes());
        }
        assert_eq!(EthernetFrame::new_checked(&f[..]).err(), Some(Error::VlanTooMany));
        assert_eq!(EthernetFrame::new_checked(&f[..13]).err(), Some(Error::EthernetTruncated));
        assert_eq!(EthernetFrame::new_checked(&f[..16]).err(), Some(Error::VlanTruncated));
    }

    #[test]
    fn emit_parse_round_trip() {
        let hdr = EthernetHeader {
            dst: MacAddr([2, 0, 0, 0, 0, 1]),
            src: MacAddr([2, 0, 0, 0, 0, 2]),
            ethertype: U16::new(EtherType::IPV6.0),
        };
        let mut buf = [0u8; 20];
        hdr.write_to_prefix(&mut buf[..]).unwrap();
        let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(*frame.header(), hdr);
        assert_eq!(frame.ethertype(), EtherType::IPV6);
        assert!(frame.vlans().is_empty());
    }
}
