//! IPv6 (RFC 8200): the fixed header, a checked view, and a bounded, allow-listed walk of the
//! extension-header chain that fails closed.
//!
//! Only hop-by-hop options (first only), routing, fragment and destination options headers are
//! walked. Any other extension header (AH, mobility, HIP, shim6, the experimental numbers) is
//! refused, as is a chain of more than [`MAX_EXTENSION_HEADERS`] headers: a director must not guess
//! where ports are (the lesson of Nebula's fail-open walk). Every other next-header value is the
//! upper-layer protocol and ends the walk.

use core::net::Ipv6Addr;

use zerocopy::byteorder::network_endian::{U16, U32};
use zerocopy::{ByteSlice, ByteSliceMut, FromBytes, Immutable, IntoBytes, KnownLayout, Ref, SplitByteSlice, Unaligned};

use super::error::{Error, Result};
use super::ip::Fragment;
use super::number::IpProtocol;

/// The longest extension-header chain the walk accepts.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// The fixed 40-byte IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ipv6Header {
    /// Version (4 bits), traffic class (8 bits) and flow label (20 bits).
    pub version_tc_flow: U32,
    /// Length of everything after the fixed header.
    pub payload_len: U16,
    /// Type of the first extension header or of the upper-layer header.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
}

impl Ipv6Header {
    /// Length of the fixed header in bytes.
    pub const LEN: usize = 40;

    /// A header for a payload of `payload_len` bytes.
    #[must_use]
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, next: IpProtocol, hop_limit: u8, payload_len: u16) -> Ipv6Header {
        Ipv6Header {
            version_tc_flow: U32::new(6 << 28),
            payload_len: U16::new(payload_len),
            next_header: next.0,
            hop_limit,
            src: src.octets(),
            dst: dst.octets(),
        }
    }

    /// The version nibble.
    #[must_use]
    pub fn version(&self) -> u8 {
        self.version_tc_flow.get().to_be_bytes()[0] >> 4
    }

    /// The traffic class.
    #[must_use]
    pub fn traffic_class(&self) -> u8 {
        let v = self.version_tc_flow.get() >> 20;
        v.to_be_bytes()[3]
    }

    /// The 20-bit flow label.
    #[must_use]
    pub fn flow_label(&self) -> u32 {
        self.version_tc_flow.get() & 0x000F_FFFF
    }

    /// Source address.
    #[must_use]
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src)
    }

    /// Destination address.
    #[must_use]
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst)
    }

    /// The first next-header value.
    #[must_use]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.next_header)
    }
}

/// The 8-byte Fragment extension header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ipv6FragmentHeader {
    /// Next header.
    pub next_header: u8,
    /// Reserved.
    pub reserved: u8,
    /// Fragment offset in 8-byte units (13 bits), two reserved bits and the M flag.
    pub offset_flags: U16,
    /// Identification.
    pub ident: U32,
}

/// The start of every other allowed extension header: next header and length in 8-byte units
/// beyond the first eight bytes; routing headers continue with routing type and segments left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Ipv6ExtensionHeader {
    /// Next header.
    pub next_header: u8,
    /// Length in 8-byte units, not counting the first eight bytes.
    pub ext_len: u8,
    /// Routing type (routing header) or option bytes.
    pub routing_type: u8,
    /// Segments left (routing header) or option bytes.
    pub segments_left: u8,
}

/// What the extension-header walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ExtensionChain {
    /// The upper-layer protocol (for a non-first fragment: the fragment header's next header).
    pub proto: IpProtocol,
    /// Bytes of extension headers, i.e. the offset of the upper layer after the fixed header.
    pub len: usize,
    /// Number of extension headers walked.
    pub count: u8,
    /// Fragment header contents, when there is one.
    pub fragment: Option<Fragment>,
    /// The final destination named by a Routing header with segments left (RFC 8200 §8.1).
    pub final_dst: Option<Ipv6Addr>,
}

/// Walks the extension headers in `bytes` (everything after the fixed header), starting with
/// `first`. The walk stops at the upper-layer header, or after a Fragment header with a
/// non-zero offset (the rest is not a header).
///
/// # Errors
/// [`Error::Ipv6ExtTruncated`], [`Error::Ipv6ExtUnsupported`] or [`Error::Ipv6ExtChain`].
pub fn walk_extensions(first: IpProtocol, bytes: &[u8]) -> Result<ExtensionChain> {
    let mut chain = ExtensionChain { proto: first, len: 0, count: 0, fragment: None, final_dst: None };
    loop {
        let here = bytes.get(chain.len..).ok_or(Error::Ipv6ExtTruncated)?;
        let header_len = match chain.proto {
            IpProtocol::HOPOPT if chain.count != 0 => return Err(Error::Ipv6ExtChain),
            IpProtocol::HOPOPT | IpProtocol::IPV6_OPTS => generic_len(here)?,
            IpProtocol::IPV6_ROUTE => {
                let len = generic_len(here)?;
                chain.final_dst = routing_final_destination(here.get(..len).unwrap_or(&[])).or(chain.final_dst);
                len
            }
            IpProtocol::IPV6_FRAG => {
                let (frag, _) = Ipv6FragmentHeader::ref_from_prefix(here).map_err(|_| Error::Ipv6ExtTruncated)?;
                let fragment = Fragment {
                    ident: frag.ident.get(),
                    offset: frag.offset_flags.get() & 0xFFF8,
                    more: frag.offset_flags.get() & 1 != 0,
                };
                chain.fragment = Some(fragment);
                if !fragment.is_first() {
                    if usize::from(chain.count) == MAX_EXTENSION_HEADERS {
                        return Err(Error::Ipv6ExtChain);
                    }
                    // What follows is the middle of a datagram, not a header.
                    chain.proto = IpProtocol(frag.next_header);
                    chain.count = chain.count.saturating_add(1);
                    chain.len = chain.len.saturating_add(8);
                    return Ok(chain);
                }
                8
            }
            IpProtocol::AH
            | IpProtocol::MOBILITY
            | IpProtocol::HIP
            | IpProtocol::SHIM6
            | IpProtocol::EXPERIMENT1
            | IpProtocol::EXPERIMENT2 => return Err(Error::Ipv6ExtUnsupported),
            _ => return Ok(chain),
        };
        if usize::from(chain.count) == MAX_EXTENSION_HEADERS {
            return Err(Error::Ipv6ExtChain);
        }
        let next = here.first().copied().ok_or(Error::Ipv6ExtTruncated)?;
        chain.proto = IpProtocol(next);
        chain.count = chain.count.saturating_add(1);
        chain.len = chain.len.saturating_add(header_len);
        if chain.len > bytes.len() {
            return Err(Error::Ipv6ExtTruncated);
        }
    }
}

/// Length of a hop-by-hop, routing or destination-options header whose bytes start `here`.
fn generic_len(here: &[u8]) -> Result<usize> {
    let (ext, _) = Ipv6ExtensionHeader::ref_from_prefix(here).map_err(|_| Error::Ipv6ExtTruncated)?;
    let len = usize::from(ext.ext_len).saturating_add(1).saturating_mul(8);
    if len > here.len() {
        return Err(Error::Ipv6ExtTruncated);
    }
    Ok(len)
}

/// The final destination of a routing header with segments left: the last address of a type 0
/// or type 2 header, or segment list entry 0 of a segment routing header (type 4, RFC 8754).
fn routing_final_destination(header: &[u8]) -> Option<Ipv6Addr> {
    let (ext, rest) = Ipv6ExtensionHeader::ref_from_prefix(header).ok()?;
    if ext.segments_left == 0 {
        return None;
    }
    // Types 0 and 2 have 4 reserved bytes then addresses; type 4 has 4 bytes of fields then
    // the segment list.
    let addresses = rest.get(4..)?;
    let index = match ext.routing_type {
        0 | 2 => (addresses.len() / 16).checked_sub(1)?,
        4 => 0,
        _ => return None,
    };
    let start = index.checked_mul(16)?;
    let octets: [u8; 16] = addresses.get(start..start.checked_add(16)?)?.try_into().ok()?;
    Some(Ipv6Addr::from(octets))
}

/// The payload length of a jumbogram (RFC 2675), from the hop-by-hop header in `ext`.
fn jumbo_payload_len(ext: &[u8]) -> Option<u32> {
    let len = generic_len(ext).ok()?;
    let mut options = ext.get(2..len)?;
    // Bounded by the header length (at most 2 KiB).
    while let [kind, rest @ ..] = options {
        if *kind == 0 {
            options = rest;
            continue;
        }
        let [opt_len, body @ ..] = rest else { return None };
        let value = body.get(..usize::from(*opt_len))?;
        if *kind == 0xC2 {
            let bytes: [u8; 4] = value.try_into().ok()?;
            return Some(u32::from_be_bytes(bytes));
        }
        options = body.get(usize::from(*opt_len)..)?;
    }
    None
}

/// A checked, zero-copy view of an IPv6 packet: fixed header and payload (extension headers
/// included), trimmed to the payload length.
pub struct Ipv6Packet<B> {
    header: Ref<B, Ipv6Header>,
    payload: B,
}

impl<B: SplitByteSlice> Ipv6Packet<B> {
    /// Checks the version and the payload length against the buffer (jumbograms included).
    ///
    /// # Errors
    /// [`Error::Ipv6Truncated`], [`Error::Ipv6BadVersion`] or [`Error::Ipv6BadPayloadLen`].
    pub fn new_checked(buffer: B) -> Result<Self> {
        let (header, rest) = Ref::<B, Ipv6Header>::from_prefix(buffer).map_err(|_| Error::Ipv6Truncated)?;
        let len = Self::payload_len_of(&header, &rest)?;
        let (payload, _padding) = rest.split_at(len).map_err(|_| Error::Ipv6BadPayloadLen)?;
        Ok(Ipv6Packet { header, payload })
    }

    /// The checks of [`Ipv6Packet::new_checked`] on a header in hand: the payload length, which
    /// a jumbogram carries in its hop-by-hop header.
    pub(crate) fn payload_len_of(header: &Ipv6Header, after: &[u8]) -> Result<usize> {
        if header.version() != 6 {
            return Err(Error::Ipv6BadVersion);
        }
        let mut len = usize::from(header.payload_len.get());
        if len == 0 && header.next_header() == IpProtocol::HOPOPT {
            let jumbo = jumbo_payload_len(after).ok_or(Error::Ipv6BadPayloadLen)?;
            len = usize::try_from(jumbo).map_err(|_| Error::Ipv6BadPayloadLen)?;
        }
        if len > after.len() {
            return Err(Error::Ipv6BadPayloadLen);
        }
        Ok(len)
    }
}

impl<B: ByteSlice> Ipv6Packet<B> {
    /// The fixed header.
    #[must_use]
    pub fn header(&self) -> &Ipv6Header {
        &self.header
    }

    /// Everything after the fixed header, extension headers included.
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Walks the extension headers.
    ///
    /// # Errors
    /// As [`walk_extensions`].
    pub fn extensions(&self) -> Result<ExtensionChain> {
        walk_extensions(self.header.next_header(), &self.payload)
    }
}

impl<B: ByteSliceMut> Ipv6Packet<B> {
    /// The fixed header, for in-place changes.
    pub fn header_mut(&mut self) -> &mut Ipv6Header {
        &mut self.header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(next: IpProtocol, ext: &[u8], upper: usize) -> [u8; 128] {
        let mut b = [0u8; 128];
        let payload = u16::try_from(ext.len() + upper).unwrap();
        let h = Ipv6Header::new("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap(), next, 64, payload);
        h.write_to_prefix(&mut b[..]).unwrap();
        b[40..40 + ext.len()].copy_from_slice(ext);
        b
    }

    #[test]
    fn round_trip_without_extensions() {
        let b = packet(IpProtocol::UDP, &[], 8);
        let p = Ipv6Packet::new_checked(&b[..48]).unwrap();
        assert_eq!(p.header().src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.header().version(), 6);
        assert_eq!(p.payload().len(), 8);
        let chain = p.extensions().unwrap();
        assert_eq!(chain.proto, IpProtocol::UDP);
        assert_eq!(chain.len, 0);
        assert_eq!(Ipv6Packet::new_checked(&b[..47]).err(), Some(Error::Ipv6BadPayloadLen));
    }

    #[test]
    fn walks_hbh_dest_opts_and_fragment() {
        let ext = [
            60, 0, 1, 4, 0, 0, 0, 0, // hop-by-hop: padN, next = destination options
            44, 0, 1, 4, 0, 0, 0, 0, // destination options, next = fragment
            6, 0, 0, 1, 0, 0, 0x12, 0x34, // fragment: offset 0, M = 1, id 0x1234, next = TCP
        ];
        let b = packet(IpProtocol::HOPOPT, &ext, 20);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        let chain = p.extensions().unwrap();
        assert_eq!(chain.proto, IpProtocol::TCP);
        assert_eq!(chain.len, 24);
        assert_eq!(chain.count, 3);
        assert_eq!(chain.fragment, Some(Fragment { ident: 0x1234, offset: 0, more: true }));
    }

    #[test]
    fn non_first_fragment_stops_the_walk() {
        let ext = [17, 0, 0x00, 0x10, 0, 0, 0, 7];
        let b = packet(IpProtocol::IPV6_FRAG, &ext, 8);
        let chain = Ipv6Packet::new_checked(&b[..]).unwrap().extensions().unwrap();
        assert_eq!(chain.proto, IpProtocol::UDP);
        assert_eq!(chain.fragment.unwrap().offset, 16);
    }

    #[test]
    fn fails_closed() {
        // AH is not on the allow-list.
        let b = packet(IpProtocol::AH, &[6, 4, 0, 0, 0, 0, 0, 0], 16);
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap().extensions().err(), Some(Error::Ipv6ExtUnsupported));
        // Hop-by-hop after another header.
        let b = packet(IpProtocol::IPV6_OPTS, &[0, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0], 0);
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap().extensions().err(), Some(Error::Ipv6ExtChain));
        // Nine destination-options headers.
        let mut ext = [0u8; 72];
        for (i, chunk) in ext.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&[if i == 8 { 6 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
        }
        let b = packet(IpProtocol::IPV6_OPTS, &ext, 0);
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap().extensions().err(), Some(Error::Ipv6ExtChain));
        // A header longer than the packet.
        let b = packet(IpProtocol::IPV6_OPTS, &[6, 3, 0, 0, 0, 0, 0, 0], 0);
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap().extensions().err(), Some(Error::Ipv6ExtTruncated));
    }

    #[test]
    fn routing_header_names_final_destination() {
        let mut ext = [0u8; 40];
        ext[..4].copy_from_slice(&[17, 4, 0, 2]);
        ext[8..24].copy_from_slice(&"2001:db8::a".parse::<Ipv6Addr>().unwrap().octets());
        ext[24..40].copy_from_slice(&"2001:db8::b".parse::<Ipv6Addr>().unwrap().octets());
        let b = packet(IpProtocol::IPV6_ROUTE, &ext, 8);
        let chain = Ipv6Packet::new_checked(&b[..]).unwrap().extensions().unwrap();
        assert_eq!(chain.final_dst, Some("2001:db8::b".parse().unwrap()));
        assert_eq!(chain.proto, IpProtocol::UDP);
    }

    #[test]
    fn jumbogram_length_comes_from_hop_by_hop() {
        let ext = [6, 0, 0xC2, 4, 0, 0, 0, 28];
        let mut b = packet(IpProtocol::HOPOPT, &ext, 20);
        b[4] = 0;
        b[5] = 0;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 28);
    }
}
