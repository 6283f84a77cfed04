//! Building frames: Ethernet / IPv4 or IPv6 / TCP or UDP with every length and checksum filled
//! in, written into a caller's buffer (no allocation). For hosts that answer or probe, for
//! tests, and for examples that should not hand-compute offsets and checksums.
//!
//! ```
//! use core::net::IpAddr;
//! use vs_proto::wire::{Frame, MacAddr, Segment, Summary, TcpFlags};
//!
//! let client: IpAddr = "198.18.0.1".parse().unwrap();
//! let vip: IpAddr = "198.18.0.100".parse().unwrap();
//! let mut buf = [0u8; 128];
//! let frame = Frame {
//!     src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
//!     dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
//!     src: (client, 40000),
//!     dst: (vip, 80),
//!     ttl: 64,
//! };
//! let len = frame.write(&mut buf, &Segment::Tcp { flags: TcpFlags::SYN, seq: 1, ack: 0, payload: &[] })?;
//! assert_eq!(len, 14 + 20 + 20);
//! let summary = Summary::from_ethernet(&buf[..len])?;
//! assert_eq!(summary.dst, Some(vip));
//! assert_eq!(summary.l4_checksum_ok(&buf[..len]), Some(true));
//! # Ok::<(), vs_proto::wire::Error>(())
//! ```
#![allow(clippy::arithmetic_side_effects)] // Lengths below are bounded by the buffer checks first.

use core::net::IpAddr;

use zerocopy::IntoBytes;

use super::checksum;
use super::error::{Error, Result};
use super::ipv4::Ipv4Header;
use super::ipv6::Ipv6Header;
use super::number::{EtherType, IpProtocol, MacAddr};
use super::tcp::TcpFlags;

/// The addresses of a frame to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IP source address and transport port.
    pub src: (IpAddr, u16),
    /// IP destination address and transport port (same family as the source).
    pub dst: (IpAddr, u16),
    /// TTL / hop limit.
    pub ttl: u8,
}

/// The transport segment of a frame to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'p> {
    /// A TCP segment without options (window 64240).
    Tcp {
        /// Flags.
        flags: TcpFlags,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
        /// Payload.
        payload: &'p [u8],
    },
    /// A UDP datagram.
    Udp {
        /// Payload.
        payload: &'p [u8],
    },
}

const ETH: usize = 14;

impl Frame {
    /// Writes the frame at the start of `out` and returns its length. IPv4 headers carry DF
    /// and identification 0.
    ///
    /// # Errors
    /// [`Error::NotApplicable`] for mixed address families, [`Error::TooLong`] when the packet
    /// would exceed 65535 bytes, [`Error::BadBounds`] when `out` is too short.
    pub fn write(&self, out: &mut [u8], segment: &Segment<'_>) -> Result<usize> {
        let (proto, header_len, payload) = match segment {
            Segment::Tcp { payload, .. } => (IpProtocol::TCP, 20, *payload),
            Segment::Udp { payload } => (IpProtocol::UDP, 8, *payload),
        };
        let l4_len = header_len + payload.len();
        let l4_len16 = u16::try_from(l4_len).map_err(|_| Error::TooLong)?;
        let ip_len = match self.src.0 {
            IpAddr::V4(_) => Ipv4Header::LEN,
            IpAddr::V6(_) => Ipv6Header::LEN,
        };
        let total = ETH + ip_len + l4_len;
        let frame = out.get_mut(..total).ok_or(Error::BadBounds)?;
        let (eth, rest) = frame.split_at_mut(ETH);
        let (ip, l4) = rest.split_at_mut(ip_len);
        let pseudo = match (self.src.0, self.dst.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut h = Ipv4Header::new(s, d, proto, self.ttl, l4_len16);
                h.set_dont_frag(true);
                h.fill_checksum();
                ip.copy_from_slice(h.as_bytes());
                eth_header(eth, self, EtherType::IPV4);
                checksum::pseudo_header_v4(s, d, proto, u32::from(l4_len16))
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                ip.copy_from_slice(Ipv6Header::new(s, d, proto, self.ttl, l4_len16).as_bytes());
                eth_header(eth, self, EtherType::IPV6);
                checksum::pseudo_header_v6(s, d, proto, u32::from(l4_len16))
            }
            _ => return Err(Error::NotApplicable),
        };
        l4.fill(0);
        let (header, body) = l4.split_at_mut(header_len);
        body.copy_from_slice(payload);
        put(header, 0, &self.src.1.to_be_bytes())?;
        put(header, 2, &self.dst.1.to_be_bytes())?;
        let check_at = match segment {
            Segment::Tcp { flags, seq, ack, .. } => {
                put(header, 4, &seq.to_be_bytes())?;
                put(header, 8, &ack.to_be_bytes())?;
                put(header, 12, &[5 << 4, flags.bits()])?;
                put(header, 14, &64240u16.to_be_bytes())?;
                16
            }
            Segment::Udp { .. } => {
                put(header, 4, &l4_len16.to_be_bytes())?;
                6
            }
        };
        let mut sum = !checksum::fold(checksum::sum(pseudo, l4));
        if proto == IpProtocol::UDP {
            sum = checksum::udp_wire(sum);
        }
        put(l4, check_at, &sum.to_be_bytes())?;
        Ok(total)
    }
}

fn eth_header(eth: &mut [u8], frame: &Frame, ethertype: EtherType) {
    if let Some(h) = eth.first_chunk_mut::<ETH>() {
        let (macs, ty) = h.split_at_mut(12);
        let (dst, src) = macs.split_at_mut(6);
        dst.copy_from_slice(&frame.dst_mac.0);
        src.copy_from_slice(&frame.src_mac.0);
        ty.copy_from_slice(&ethertype.0.to_be_bytes());
    }
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> Result<()> {
    buf.get_mut(at..at + bytes.len()).ok_or(Error::BadBounds)?.copy_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_etherparse_accepts_with_valid_checksums() {
        for (src, dst) in [("198.18.0.1", "198.18.0.100"), ("2001:db8::1", "2001:db8::100")] {
            let frame = Frame {
                src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
                dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
                src: (src.parse().unwrap(), 40000),
                dst: (dst.parse().unwrap(), 53),
                ttl: 64,
            };
            for segment in [
                Segment::Tcp { flags: TcpFlags::SYN | TcpFlags::ACK, seq: 7, ack: 9, payload: b"hello" },
                Segment::Udp { payload: b"query" },
            ] {
                let mut buf = [0u8; 128];
                let len = frame.write(&mut buf, &segment).unwrap();
                // An independent parser and checksum: etherparse.
                let sliced = etherparse::SlicedPacket::from_ethernet(&buf[..len]).unwrap();
                let payload = match (&sliced.net, &sliced.transport) {
                    (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) => {
                        assert_eq!(
                            t.to_header().calc_checksum_ipv4(&ip.header().to_header(), t.payload()).unwrap(),
                            t.checksum()
                        );
                        t.payload()
                    }
                    (Some(etherparse::NetSlice::Ipv6(ip)), Some(etherparse::TransportSlice::Tcp(t))) => {
                        assert_eq!(
                            t.to_header().calc_checksum_ipv6(&ip.header().to_header(), t.payload()).unwrap(),
                            t.checksum()
                        );
                        t.payload()
                    }
                    (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Udp(u))) => {
                        assert_eq!(
                            u.to_header().calc_checksum_ipv4(&ip.header().to_header(), u.payload()).unwrap(),
                            u.checksum()
                        );
                        u.payload()
                    }
                    (Some(etherparse::NetSlice::Ipv6(ip)), Some(etherparse::TransportSlice::Udp(u))) => {
                        assert_eq!(
                            u.to_header().calc_checksum_ipv6(&ip.header().to_header(), u.payload()).unwrap(),
                            u.checksum()
                        );
                        u.payload()
                    }
                    other => panic!("unexpected {other:?}"),
                };
                assert_eq!(payload.len(), 5);
                if let Some(etherparse::NetSlice::Ipv4(ip)) = &sliced.net {
                    assert_eq!(ip.header().to_header().calc_header_checksum(), ip.header().header_checksum());
                }
            }
        }
    }

    #[test]
    fn refuses_short_buffers_and_mixed_families() {
        let mut frame = Frame {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src: ("198.18.0.1".parse().unwrap(), 1),
            dst: ("198.18.0.2".parse().unwrap(), 2),
            ttl: 64,
        };
        let mut small = [0u8; 40];
        assert_eq!(frame.write(&mut small, &Segment::Udp { payload: &[] }), Err(Error::BadBounds));
        frame.dst.0 = "2001:db8::2".parse().unwrap();
        assert_eq!(frame.write(&mut [0u8; 128], &Segment::Udp { payload: &[] }), Err(Error::NotApplicable));
    }
}
