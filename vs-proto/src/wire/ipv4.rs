//! IPv4 (RFC 791): the header, a checked view with options and payload, and fragment fields.

use core::net::Ipv4Addr;

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{ByteSlice, ByteSliceMut, FromBytes, Immutable, IntoBytes, KnownLayout, Ref, SplitByteSlice, Unaligned};

use super::checksum;
use super::error::{Error, Result};
use super::number::IpProtocol;

/// The fixed 20-byte IPv4 header (options, if any, follow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ipv4Header {
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub version_ihl: u8,
    /// DSCP and ECN.
    pub tos: u8,
    /// Total length of header and payload.
    pub total_len: U16,
    /// Identification, shared by the fragments of one datagram.
    pub ident: U16,
    /// Flags (reserved, DF, MF) and the fragment offset in 8-byte units.
    pub flags_frag: U16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol of the payload.
    pub proto: u8,
    /// Header checksum.
    pub checksum: U16,
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
}

impl Ipv4Header {
    /// Length of the fixed header in bytes.
    pub const LEN: usize = 20;
    /// The don't-fragment flag in `flags_frag`.
    pub const DF: u16 = 0x4000;
    /// The more-fragments flag in `flags_frag`.
    pub const MF: u16 = 0x2000;
    const OFFSET_MASK: u16 = 0x1FFF;

    /// A header without options for a payload of `payload_len` bytes, checksum filled in.
    #[must_use]
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, ttl: u8, payload_len: u16) -> Ipv4Header {
        let mut h = Ipv4Header {
            version_ihl: 0x45,
            tos: 0,
            total_len: U16::new(payload_len.saturating_add(20)),
            ident: U16::ZERO,
            flags_frag: U16::ZERO,
            ttl,
            proto: proto.0,
            checksum: U16::ZERO,
            src: src.octets(),
            dst: dst.octets(),
        };
        h.fill_checksum();
        h
    }

    /// The version nibble.
    #[must_use]
    pub fn version(&self) -> u8 {
        self.version_ihl >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    #[must_use]
    pub fn header_len(&self) -> usize {
        usize::from(self.version_ihl & 0x0F) * 4
    }

    /// Total length field.
    #[must_use]
    pub fn total_len(&self) -> u16 {
        self.total_len.get()
    }

    /// Source address.
    #[must_use]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src)
    }

    /// Destination address.
    #[must_use]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst)
    }

    /// Payload protocol.
    #[must_use]
    pub fn proto(&self) -> IpProtocol {
        IpProtocol(self.proto)
    }

    /// The don't-fragment flag.
    #[must_use]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag.get() & Self::DF != 0
    }

    /// The more-fragments flag.
    #[must_use]
    pub fn more_frags(&self) -> bool {
        self.flags_frag.get() & Self::MF != 0
    }

    /// Fragment offset in bytes.
    #[must_use]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_frag.get() & Self::OFFSET_MASK) << 3
    }

    /// True when this packet is one fragment of a larger datagram (MF set or a non-zero offset).
    #[must_use]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag.get() & (Self::MF | Self::OFFSET_MASK) != 0
    }

    /// Sets the don't-fragment flag (the caller refreshes the checksum).
    pub fn set_dont_frag(&mut self, df: bool) {
        let v = self.flags_frag.get();
        self.flags_frag.set(if df { v | Self::DF } else { v & !Self::DF });
    }

    /// Recomputes the checksum over the fixed header only (no options).
    pub fn fill_checksum(&mut self) {
        self.checksum.set(0);
        self.checksum.set(checksum::checksum(self.as_bytes()));
    }
}

/// A checked, zero-copy view of an IPv4 packet: fixed header, options and payload.
///
/// The payload ends where the total length says; bytes after it (Ethernet padding) are not part
/// of the packet.
pub struct Ipv4Packet<B> {
    header: Ref<B, Ipv4Header>,
    options: B,
    payload: B,
}

impl<B: SplitByteSlice> Ipv4Packet<B> {
    /// Checks version, header length and total length against the buffer.
    ///
    /// # Errors
    /// [`Error::Ipv4Truncated`], [`Error::Ipv4BadVersion`], [`Error::Ipv4BadHeaderLen`] or
    /// [`Error::Ipv4BadTotalLen`].
    pub fn new_checked(buffer: B) -> Result<Self> {
        let available = buffer.len();
        let (header, rest) = Ref::<B, Ipv4Header>::from_prefix(buffer).map_err(|_| Error::Ipv4Truncated)?;
        Self::check_header(&header, available)?;
        let options_len = header.header_len().saturating_sub(Ipv4Header::LEN);
        let payload_len = usize::from(header.total_len()).saturating_sub(header.header_len());
        let (options, rest) = rest.split_at(options_len).map_err(|_| Error::Ipv4Truncated)?;
        let (payload, _padding) = rest.split_at(payload_len).map_err(|_| Error::Ipv4BadTotalLen)?;
        Ok(Ipv4Packet { header, options, payload })
    }

    /// The checks of [`Ipv4Packet::new_checked`] on a header already in hand.
    pub(crate) fn check_header(header: &Ipv4Header, available: usize) -> Result<()> {
        if header.version() != 4 {
            return Err(Error::Ipv4BadVersion);
        }
        let hlen = header.header_len();
        if hlen < Ipv4Header::LEN {
            return Err(Error::Ipv4BadHeaderLen);
        }
        if hlen > available {
            return Err(Error::Ipv4Truncated);
        }
        let total = usize::from(header.total_len());
        if total < hlen || total > available {
            return Err(Error::Ipv4BadTotalLen);
        }
        Ok(())
    }
}

impl<B: ByteSlice> Ipv4Packet<B> {
    /// The fixed header.
    #[must_use]
    pub fn header(&self) -> &Ipv4Header {
        &self.header
    }

    /// The option bytes (empty without options).
    #[must_use]
    pub fn options(&self) -> &[u8] {
        &self.options
    }

    /// The payload, up to the total length.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// True when the header checksum (options included) is correct.
    #[must_use]
    pub fn checksum_ok(&self) -> bool {
        let acc = checksum::sum(0, Ref::bytes(&self.header));
        checksum::is_valid(checksum::sum(acc, &self.options))
    }
}

impl<B: ByteSliceMut> Ipv4Packet<B> {
    /// The fixed header, for in-place changes.
    pub fn header_mut(&mut self) -> &mut Ipv4Header {
        &mut self.header
    }

    /// The payload, for in-place changes.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.payload
    }

    /// Recomputes the header checksum over the header and options.
    pub fn fill_checksum(&mut self) {
        self.header.checksum.set(0);
        let acc = checksum::sum(0, Ref::bytes(&self.header));
        let sum = checksum::fold(checksum::sum(acc, &self.options));
        self.header.checksum.set(!sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; 28] {
        let h = Ipv4Header::new(Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 19, 0, 2), IpProtocol::UDP, 64, 8);
        let mut b = [0u8; 28];
        h.write_to_prefix(&mut b[..]).unwrap();
        b
    }

    #[test]
    fn emit_parse_round_trip() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header().src(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(p.header().dst(), Ipv4Addr::new(198, 19, 0, 2));
        assert_eq!(p.header().proto(), IpProtocol::UDP);
        assert_eq!(p.payload().len(), 8);
        assert!(p.checksum_ok());
        assert!(!p.header().is_fragment());
    }

    #[test]
    fn padding_is_not_payload_and_overlong_is_rejected() {
        let mut b = [0u8; 40];
        b[..28].copy_from_slice(&sample());
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap().payload().len(), 8);
        assert_eq!(Ipv4Packet::new_checked(&b[..27]).err(), Some(Error::Ipv4BadTotalLen));
        assert_eq!(Ipv4Packet::new_checked(&b[..19]).err(), Some(Error::Ipv4Truncated));
    }

    #[test]
    fn bad_version_and_header_len() {
        let mut b = sample();
        b[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).err(), Some(Error::Ipv4BadVersion));
        b[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).err(), Some(Error::Ipv4BadHeaderLen));
        b[0] = 0x4f;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).err(), Some(Error::Ipv4Truncated));
    }

    #[test]
    fn fragment_fields() {
        let mut b = sample();
        b[6..8].copy_from_slice(&(Ipv4Header::MF | 3).to_be_bytes());
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.header().more_frags());
        assert_eq!(p.header().frag_offset(), 24);
        assert!(p.header().is_fragment());
    }

    #[test]
    fn options_are_kept_and_checksummed() {
        let mut b = [0u8; 32];
        b[0] = 0x46;
        b[3] = 32;
        b[9] = 17;
        b[20..24].copy_from_slice(&[1, 1, 1, 0]);
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.checksum_ok());
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 8);
    }
}
