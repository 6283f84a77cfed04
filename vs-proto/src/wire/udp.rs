//! UDP (RFC 768).

use zerocopy::byteorder::network_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::error::{Error, Result};

/// The 8-byte UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct UdpHeader {
    /// Source port.
    pub src_port: U16,
    /// Destination port.
    pub dst_port: U16,
    /// Length of header and data.
    pub length: U16,
    /// Checksum (zero over IPv4 means none was computed).
    pub checksum: U16,
}

impl UdpHeader {
    /// Header length in bytes.
    pub const LEN: usize = 8;
    /// Byte offset of the checksum field.
    pub const CHECKSUM_OFFSET: usize = 6;

    /// Parses the header at the start of `datagram` (the IP payload) and checks its length field.
    ///
    /// # Errors
    /// [`Error::UdpTruncated`] or [`Error::UdpBadLength`].
    pub fn parse(datagram: &[u8]) -> Result<&UdpHeader> {
        let (udp, _) = UdpHeader::ref_from_prefix(datagram).map_err(|_| Error::UdpTruncated)?;
        udp.check_length(datagram.len())?;
        Ok(udp)
    }

    /// Checks the length field: at least the header and at most the IP payload.
    ///
    /// # Errors
    /// [`Error::UdpBadLength`].
    pub fn check_length(&self, ip_payload_len: usize) -> Result<()> {
        let len = usize::from(self.length.get());
        if len < Self::LEN || len > ip_payload_len {
            return Err(Error::UdpBadLength);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_length_checks() {
        let hdr =
            UdpHeader { src_port: U16::new(53), dst_port: U16::new(4000), length: U16::new(12), checksum: U16::ZERO };
        let mut buf = [0u8; 12];
        hdr.write_to_prefix(&mut buf[..]).unwrap();
        assert_eq!(*UdpHeader::parse(&buf).unwrap(), hdr);
        assert_eq!(UdpHeader::parse(&buf[..7]).err(), Some(Error::UdpTruncated));
        assert_eq!(UdpHeader::parse(&buf[..10]).err(), Some(Error::UdpBadLength));
        buf[5] = 4;
        assert_eq!(UdpHeader::parse(&buf).err(), Some(Error::UdpBadLength));
    }
}
