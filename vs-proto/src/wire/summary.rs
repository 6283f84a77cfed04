//! The validated one-pass summary of a packet: layers, offsets, the flow 5-tuple, fragment and
//! ICMP information. This is what the engine looks at; the rewriters use its offsets.

use core::net::{IpAddr, Ipv6Addr};

use zerocopy::FromBytes;

use super::checksum;
use super::error::{Error, Result};
use super::ethernet::{EthernetFrame, VlanIds};
use super::icmp::{IcmpHeader, QuotedPacket, ports_of};
use super::ip::Fragment;
use super::ipv4::{Ipv4Header, Ipv4Packet};
use super::ipv6::{Ipv6Header, Ipv6Packet, walk_extensions};
use super::number::{EtherType, IcmpType, Icmpv6Type, IpProtocol};
use super::tcp::{TcpFlags, TcpHeader};
use super::udp::UdpHeader;

/// The network layer found in a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum L3 {
    /// Nothing parsed yet (or the frame ended before a network layer).
    #[default]
    None,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// ARP.
    Arp,
    /// Another EtherType, not parsed further.
    Other(EtherType),
}

/// ICMP type and code, for ICMPv4 or ICMPv6 (the protocol says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct IcmpInfo {
    /// Message type.
    pub ty: u8,
    /// Message code.
    pub code: u8,
    /// True for error messages that quote a packet.
    pub is_error: bool,
}

/// A validated summary of one packet, produced in one pass by [`Summary::parse_ethernet`] or
/// [`Summary::parse_ip`].
///
/// When parsing fails, the summary still holds everything parsed before the failure.
/// Offsets are from the start of the buffer that was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Summary {
    /// True when the buffer starts with an Ethernet header.
    pub has_ethernet: bool,
    /// VLAN ids, outermost first.
    pub vlans: VlanIds,
    /// The network layer.
    pub l3: L3,
    /// Offset of the network header.
    pub l3_offset: usize,
    /// End of the IP packet (its total length from `l3_offset`); Ethernet padding lies beyond.
    pub l3_end: usize,
    /// Source address of the (outermost) IP header.
    pub src: Option<IpAddr>,
    /// Destination address of the (outermost) IP header.
    pub dst: Option<IpAddr>,
    /// The final destination of an IPv6 Routing header with segments left.
    pub final_dst: Option<Ipv6Addr>,
    /// Transport protocol (after IPv6 extension headers).
    pub proto: Option<IpProtocol>,
    /// Offset of the transport header (or of the inner IP header for IP-in-IP / IPv6 tunnels).
    pub l4_offset: usize,
    /// Fragment information when the packet is a fragment.
    pub fragment: Option<Fragment>,
    /// Source and destination ports (TCP, UDP, SCTP).
    pub ports: Option<(u16, u16)>,
    /// TCP flags.
    pub tcp_flags: Option<TcpFlags>,
    /// ICMP or ICMPv6 type and code.
    pub icmp: Option<IcmpInfo>,
    /// The packet an ICMP error quotes, when it could be parsed.
    pub quoted: Option<QuotedPacket>,
}

impl Summary {
    /// Parses an Ethernet frame into a new summary.
    ///
    /// # Errors
    /// The first problem found; see [`Error`].
    pub fn from_ethernet(frame: &[u8]) -> Result<Summary> {
        let mut s = Summary::default();
        s.parse_ethernet(frame)?;
        Ok(s)
    }

    /// Parses a bare IPv4 or IPv6 packet into a new summary.
    ///
    /// # Errors
    /// The first problem found; see [`Error`].
    pub fn from_ip(packet: &[u8]) -> Result<Summary> {
        let mut s = Summary::default();
        s.parse_ip(packet)?;
        Ok(s)
    }

    /// Parses an Ethernet frame; on error `self` holds what was parsed before the failure.
    ///
    /// # Errors
    /// The first problem found; see [`Error`].
    pub fn parse_ethernet(&mut self, frame: &[u8]) -> Result<()> {
        *self = Summary { has_ethernet: true, ..Summary::default() };
        let eth = EthernetFrame::new_checked(frame)?;
        self.vlans = eth.vlans();
        self.l3_offset = eth.header_len();
        match eth.ethertype() {
            EtherType::IPV4 => self.parse_ipv4(frame),
            EtherType::IPV6 => self.parse_ipv6(frame),
            EtherType::ARP => {
                self.l3 = L3::Arp;
                super::arp::ArpPacket::parse(eth.payload()).map(|_| ())
            }
            other => {
                self.l3 = L3::Other(other);
                Ok(())
            }
        }
    }

    /// Parses a bare IP packet (the version nibble says which); on error `self` holds what was
    /// parsed before the failure.
    ///
    /// # Errors
    /// The first problem found; see [`Error`].
    pub fn parse_ip(&mut self, packet: &[u8]) -> Result<()> {
        *self = Summary::default();
        match packet.first().map(|b| b >> 4) {
            Some(4) => self.parse_ipv4(packet),
            Some(6) => self.parse_ipv6(packet),
            // Neither version: no network layer is named (l3 stays `None`).
            Some(_) => Err(Error::Ipv4BadVersion),
            None => Err(Error::Ipv4Truncated),
        }
    }

    fn parse_ipv4(&mut self, buf: &[u8]) -> Result<()> {
        self.l3 = L3::Ipv4;
        let bytes = buf.get(self.l3_offset..).ok_or(Error::Ipv4Truncated)?;
        let (ip, _) = Ipv4Header::ref_from_prefix(bytes).map_err(|_| Error::Ipv4Truncated)?;
        if ip.version() == 4 {
            self.src = Some(IpAddr::V4(ip.src()));
            self.dst = Some(IpAddr::V4(ip.dst()));
            self.proto = Some(ip.proto());
        }
        if ip.is_fragment() {
            self.fragment =
                Some(Fragment { ident: u32::from(ip.ident.get()), offset: ip.frag_offset(), more: ip.more_frags() });
        }
        Ipv4Packet::<&[u8]>::check_header(ip, bytes.len())?;
        let header_len = ip.header_len();
        let total_len = usize::from(ip.total_len());
        self.l3_end = self.l3_offset.saturating_add(total_len);
        self.l4_offset = self.l3_offset.saturating_add(header_len);
        // check_header proved header_len <= total_len <= bytes.len().
        let payload = bytes.get(header_len..total_len).unwrap_or(&[]);
        self.parse_transport(ip.proto(), payload)
    }

    fn parse_ipv6(&mut self, buf: &[u8]) -> Result<()> {
        self.l3 = L3::Ipv6;
        let bytes = buf.get(self.l3_offset..).ok_or(Error::Ipv6Truncated)?;
        let (ip, after) = Ipv6Header::ref_from_prefix(bytes).map_err(|_| Error::Ipv6Truncated)?;
        if ip.version() == 6 {
            self.src = Some(IpAddr::V6(ip.src()));
            self.dst = Some(IpAddr::V6(ip.dst()));
            self.proto = Some(ip.next_header());
        }
        let payload_len = match Ipv6Packet::<&[u8]>::payload_len_of(ip, after) {
            Ok(len) => len,
            Err(e) => {
                // Report what the extension headers that were captured say, then fail.
                if let Ok(chain) = walk_extensions(ip.next_header(), after) {
                    self.proto = Some(chain.proto);
                    self.fragment = chain.fragment;
                }
                return Err(e);
            }
        };
        let payload = after.get(..payload_len).ok_or(Error::Ipv6BadPayloadLen)?;
        self.l3_end = self.l3_offset.saturating_add(Ipv6Header::LEN).saturating_add(payload_len);
        let chain = walk_extensions(ip.next_header(), payload)?;
        self.proto = Some(chain.proto);
        self.final_dst = chain.final_dst;
        self.fragment = chain.fragment;
        self.l4_offset = self.l3_offset.saturating_add(Ipv6Header::LEN).saturating_add(chain.len);
        self.parse_transport(chain.proto, payload.get(chain.len..).unwrap_or(&[]))
    }

    /// Reads the transport header in `l4` (the IP payload after extension headers).
    fn parse_transport(&mut self, proto: IpProtocol, l4: &[u8]) -> Result<()> {
        let fragment = self.fragment;
        if fragment.is_some_and(|f| !f.is_first()) {
            // A non-first fragment carries no transport header.
            return Ok(());
        }
        let whole = fragment.is_none();
        match proto {
            IpProtocol::TCP => {
                let (tcp, _) = TcpHeader::ref_from_prefix(l4).map_err(|_| Error::TcpTruncated)?;
                self.ports = Some((tcp.src_port(), tcp.dst_port()));
                self.tcp_flags = Some(tcp.flags());
                tcp.check_data_offset(l4.len())
            }
            IpProtocol::UDP => {
                let (udp, _) = UdpHeader::ref_from_prefix(l4).map_err(|_| Error::UdpTruncated)?;
                self.ports = Some((udp.src_port(), udp.dst_port()));
                // A first fragment holds only part of the datagram the length describes.
                if whole { udp.check_length(l4.len()) } else { Ok(()) }
            }
            IpProtocol::ICMP | IpProtocol::ICMPV6 => {
                let icmp = IcmpHeader::parse(l4)?;
                let is_error = if proto == IpProtocol::ICMP {
                    IcmpType(icmp.ty).is_error()
                } else {
                    Icmpv6Type(icmp.ty).is_error()
                };
                self.icmp = Some(IcmpInfo { ty: icmp.ty, code: icmp.code, is_error });
                if is_error {
                    self.quoted = l4.get(IcmpHeader::LEN..).and_then(|q| QuotedPacket::parse(q).ok());
                }
                Ok(())
            }
            other => {
                self.ports = ports_of(other, l4);
                Ok(())
            }
        }
    }

    /// The flow's source port (0 when the protocol has none).
    #[must_use]
    pub fn src_port(&self) -> u16 {
        self.ports.map_or(0, |p| p.0)
    }

    /// The flow's destination port (0 when the protocol has none).
    #[must_use]
    pub fn dst_port(&self) -> u16 {
        self.ports.map_or(0, |p| p.1)
    }

    /// True when this packet is a fragment other than the first.
    #[must_use]
    pub fn is_later_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| !f.is_first())
    }

    /// The transport segment of a successfully parsed packet (from the transport header to the
    /// end of the IP packet).
    #[must_use]
    pub fn l4_bytes<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet.get(self.l4_offset..self.l3_end).unwrap_or(&[])
    }

    /// Verifies the transport checksum of a successfully parsed, unfragmented TCP, UDP, ICMP or
    /// ICMPv6 packet. `None` when it does not apply (other protocols, fragments).
    ///
    /// IPv4 UDP with checksum 0 has none and counts as valid; IPv6 UDP with checksum 0 is
    /// invalid (RFC 8200 §8.1). With a Routing header the IPv6 pseudo-header uses the final
    /// destination.
    #[must_use]
    pub fn l4_checksum_ok(&self, packet: &[u8]) -> Option<bool> {
        if self.fragment.is_some() {
            return None;
        }
        let proto = self.proto?;
        let mut segment = self.l4_bytes(packet);
        if proto == IpProtocol::UDP {
            let udp = UdpHeader::parse(segment).ok()?;
            if udp.checksum.get() == 0 {
                return Some(matches!(self.src, Some(IpAddr::V4(_))));
            }
            segment = segment.get(..usize::from(udp.length.get()))?;
        }
        let length = u32::try_from(segment.len()).ok()?;
        let pseudo = match (proto, self.src?, self.dst?) {
            (IpProtocol::ICMP, IpAddr::V4(_), _) => 0,
            (IpProtocol::TCP | IpProtocol::UDP, IpAddr::V4(s), IpAddr::V4(d)) => {
                checksum::pseudo_header_v4(s, d, proto, length)
            }
            (IpProtocol::TCP | IpProtocol::UDP | IpProtocol::ICMPV6, IpAddr::V6(s), IpAddr::V6(d)) => {
                checksum::pseudo_header_v6(s, self.final_dst.unwrap_or(d), proto, length)
            }
            _ => return None,
        };
        Some(checksum::is_valid(checksum::sum(pseudo, segment)))
    }

    /// Computes and writes the transport checksum of a parsed, unfragmented TCP or UDP packet,
    /// whatever the field held before: for packets a NIC or a veth left with only the
    /// pseudo-header sum in it (Linux's `CHECKSUM_PARTIAL`, which AF_PACKET reports as
    /// `TP_STATUS_CSUMNOTREADY`), before they are rewritten and sent on. Returns `false`, with
    /// nothing written, when it does not apply (other protocols, fragments, a short segment).
    pub fn fill_l4_checksum(&self, packet: &mut [u8]) -> bool {
        if self.fragment.is_some() {
            return false;
        }
        let (proto, field) = match self.proto {
            Some(p @ IpProtocol::TCP) => (p, 16usize),
            Some(p @ IpProtocol::UDP) => (p, 6),
            _ => return false,
        };
        let Some(segment) = packet.get_mut(self.l4_offset..self.l3_end) else { return false };
        let Ok(length) = u32::try_from(segment.len()) else { return false };
        let pseudo = match (self.src, self.dst) {
            (Some(IpAddr::V4(s)), Some(IpAddr::V4(d))) => checksum::pseudo_header_v4(s, d, proto, length),
            (Some(IpAddr::V6(s)), Some(IpAddr::V6(d))) => {
                checksum::pseudo_header_v6(s, self.final_dst.unwrap_or(d), proto, length)
            }
            _ => return false,
        };
        let Some(slot) = segment.get_mut(field..field.saturating_add(2)) else { return false };
        slot.fill(0);
        let mut value = !checksum::fold(checksum::sum(pseudo, segment));
        if proto == IpProtocol::UDP {
            value = checksum::udp_wire(value);
        }
        match segment.get_mut(field..field.saturating_add(2)) {
            Some(slot) => {
                slot.copy_from_slice(&value.to_be_bytes());
                true
            }
            None => false,
        }
    }

    /// Writes the transport checksum field of a parsed TCP or UDP packet in the form a
    /// checksum-offloading transmitter completes (Linux's `CHECKSUM_PARTIAL`, virtio's
    /// `NEEDS_CSUM`): the folded pseudo-header sum, not complemented, for the packet's current
    /// addresses and transport length. The sender then sums the segment from the transport
    /// header on. Returns the field's offset within the transport header (16 for TCP, 6 for
    /// UDP), or `None` with nothing written when it does not apply.
    pub fn fill_partial_l4_checksum(&self, packet: &mut [u8]) -> Option<usize> {
        if self.fragment.is_some() {
            return None;
        }
        let (proto, field) = match self.proto {
            Some(p @ IpProtocol::TCP) => (p, 16usize),
            Some(p @ IpProtocol::UDP) => (p, 6usize),
            _ => return None,
        };
        let length = u32::try_from(self.l3_end.checked_sub(self.l4_offset)?).ok()?;
        let pseudo = match (self.src?, self.dst?) {
            (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header_v4(s, d, proto, length),
            (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_header_v6(s, self.final_dst.unwrap_or(d), proto, length),
            _ => return None,
        };
        let at = self.l4_offset.checked_add(field)?;
        let slot = packet.get_mut(at..at.checked_add(2)?)?;
        slot.copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
        Some(field)
    }

    /// True when the IPv4 header checksum is correct (`None` for IPv6 and non-IP).
    #[must_use]
    pub fn ipv4_checksum_ok(&self, packet: &[u8]) -> Option<bool> {
        if self.l3 != L3::Ipv4 {
            return None;
        }
        let header = packet.get(self.l3_offset..self.l4_offset)?;
        Some(checksum::is_valid(checksum::sum(0, header)))
    }
}
