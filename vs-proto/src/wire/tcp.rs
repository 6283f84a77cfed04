//! TCP (RFC 9293): the fixed header with its flags; options are left intact.

use bitflags::bitflags;
use zerocopy::byteorder::network_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::error::{Error, Result};

bitflags! {
    /// The eight TCP control flags (the byte after the data offset).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct TcpFlags: u8 {
        /// No more data from sender.
        const FIN = 0x01;
        /// Synchronize sequence numbers.
        const SYN = 0x02;
        /// Reset the connection.
        const RST = 0x04;
        /// Push function.
        const PSH = 0x08;
        /// Acknowledgment field is significant.
        const ACK = 0x10;
        /// Urgent pointer field is significant.
        const URG = 0x20;
        /// ECN echo.
        const ECE = 0x40;
        /// Congestion window reduced.
        const CWR = 0x80;
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for TcpFlags {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "TcpFlags({=u8:#x})", self.bits());
    }
}

/// The fixed 20-byte TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: U16,
    /// Destination port.
    pub dst_port: U16,
    /// Sequence number.
    pub seq: U32,
    /// Acknowledgment number.
    pub ack: U32,
    /// Data offset in 32-bit words (high nibble); the low nibble holds reserved bits and NS.
    pub data_offset: u8,
    /// Control flags.
    pub flags: u8,
    /// Receive window.
    pub window: U16,
    /// Checksum over the pseudo-header, header and data.
    pub checksum: U16,
    /// Urgent pointer.
    pub urgent: U16,
}

impl TcpHeader {
    /// Length of the fixed header in bytes.
    pub const LEN: usize = 20;
    /// Byte offset of the checksum field.
    pub const CHECKSUM_OFFSET: usize = 16;

    /// Parses the fixed header at the start of `segment` and checks the data offset against it.
    ///
    /// # Errors
    /// [`Error::TcpTruncated`] or [`Error::TcpBadDataOffset`].
    pub fn parse(segment: &[u8]) -> Result<&TcpHeader> {
        let (tcp, _) = TcpHeader::ref_from_prefix(segment).map_err(|_| Error::TcpTruncated)?;
        tcp.check_data_offset(segment.len())?;
        Ok(tcp)
    }

    /// Checks the data offset: at least five words and within `segment_len`.
    ///
    /// # Errors
    /// [`Error::TcpBadDataOffset`].
    pub fn check_data_offset(&self, segment_len: usize) -> Result<()> {
        let len = self.header_len();
        if len < Self::LEN || len > segment_len {
            return Err(Error::TcpBadDataOffset);
        }
        Ok(())
    }

    /// Source port.
    #[must_use]
    pub fn src_port(&self) -> u16 {
        self.src_port.get()
    }

    /// Destination port.
    #[must_use]
    pub fn dst_port(&self) -> u16 {
        self.dst_port.get()
    }

    /// Header length in bytes, options included.
    #[must_use]
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset >> 4) * 4
    }

    /// Control flags.
    #[must_use]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits_retain(self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_offset() {
        let mut seg = [0u8; 24];
        seg[0..2].copy_from_slice(&40000u16.to_be_bytes());
        seg[2..4].copy_from_slice(&80u16.to_be_bytes());
        seg[12] = 6 << 4;
        seg[13] = 0x12;
        let tcp = TcpHeader::parse(&seg).unwrap();
        assert_eq!(tcp.src_port(), 40000);
        assert_eq!(tcp.dst_port(), 80);
        assert_eq!(tcp.flags(), TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(tcp.header_len(), 24);
        assert_eq!(TcpHeader::parse(&seg[..19]).err(), Some(Error::TcpTruncated));
        assert_eq!(TcpHeader::parse(&seg[..22]).err(), Some(Error::TcpBadDataOffset));
        seg[12] = 4 << 4;
        assert_eq!(TcpHeader::parse(&seg).err(), Some(Error::TcpBadDataOffset));
    }

    #[test]
    fn emit_parse_round_trip() {
        let hdr = TcpHeader {
            src_port: U16::new(1),
            dst_port: U16::new(2),
            seq: U32::new(3),
            ack: U32::new(4),
            data_offset: 5 << 4,
            flags: TcpFlags::FIN.bits(),
            window: U16::new(5),
            checksum: U16::new(6),
            urgent: U16::new(7),
        };
        assert_eq!(*TcpHeader::parse(hdr.as_bytes()).unwrap(), hdr);
    }
}
