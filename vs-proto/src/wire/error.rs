//! The one error type of the wire layer: a small `Copy` enum whose variants name the layer and
//! what was wrong, with stable numeric codes for the C ABI.

use core::fmt;

/// The protocol layer an [`Error`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Layer {
    /// Ethernet II and VLAN tags.
    Ethernet,
    /// ARP.
    Arp,
    /// IPv4 header.
    Ipv4,
    /// IPv6 header and its extension headers.
    Ipv6,
    /// TCP header.
    Tcp,
    /// UDP header.
    Udp,
    /// ICMPv4 / ICMPv6 header, or the packet an ICMP error quotes.
    Icmp,
    /// The packet buffer itself (headroom, room for a rewrite).
    Buffer,
}

macro_rules! errors {
    ( $( $(#[$meta:meta])* $variant:ident = $code:literal, $layer:ident, $text:literal; )* ) => {
        /// Why a packet could not be parsed or rewritten.
        ///
        /// Every variant has a stable code ([`Error::code`]) that maps one-to-one to a C status code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[non_exhaustive]
        pub enum Error {
            $( $(#[$meta])* $variant, )*
        }

        impl Error {
            /// Every error, in code order.
            pub const ALL: &'static [Error] = &[ $( Error::$variant, )* ];

            /// The stable numeric code (1..), never reused for another meaning.
            #[must_use]
            pub const fn code(self) -> u16 {
                match self { $( Error::$variant => $code, )* }
            }

            /// The error with this code, if there is one.
            #[must_use]
            pub const fn from_code(code: u16) -> Option<Error> {
                match code { $( $code => Some(Error::$variant), )* _ => None }
            }

            /// The layer the error belongs to.
            #[must_use]
            pub const fn layer(self) -> Layer {
                match self { $( Error::$variant => Layer::$layer, )* }
            }

            /// A short human-readable reason, such as "ipv4: total length exceeds buffer".
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $( Error::$variant => $text, )* }
            }
        }
    };
}

errors! {
    /// Fewer bytes than an Ethernet header.
    EthernetTruncated = 1, Ethernet, "ethernet: truncated header";
    /// A VLAN tag is cut short.
    VlanTruncated = 2, Ethernet, "vlan: truncated tag";
    /// More than two stacked VLAN tags.
    VlanTooMany = 3, Ethernet, "vlan: more than two tags";
    /// Fewer bytes than an ARP packet for IPv4 over Ethernet.
    ArpTruncated = 4, Arp, "arp: truncated";
    /// ARP for something other than IPv4 over Ethernet.
    ArpUnsupported = 5, Arp, "arp: not ipv4 over ethernet";
    /// Fewer bytes than the IPv4 header needs.
    Ipv4Truncated = 6, Ipv4, "ipv4: truncated header";
    /// The version nibble is not 4.
    Ipv4BadVersion = 7, Ipv4, "ipv4: version is not 4";
    /// The header length is below 20 bytes.
    Ipv4BadHeaderLen = 8, Ipv4, "ipv4: header length below 20";
    /// The total length is shorter than the header or longer than the buffer.
    Ipv4BadTotalLen = 9, Ipv4, "ipv4: total length exceeds buffer or is below header length";
    /// Fewer bytes than the fixed IPv6 header.
    Ipv6Truncated = 10, Ipv6, "ipv6: truncated header";
    /// The version nibble is not 6.
    Ipv6BadVersion = 11, Ipv6, "ipv6: version is not 6";
    /// The payload length is longer than the buffer (or zero without a jumbo option).
    Ipv6BadPayloadLen = 12, Ipv6, "ipv6: payload length exceeds buffer";
    /// An extension header is cut short.
    Ipv6ExtTruncated = 13, Ipv6, "ipv6: truncated extension header";
    /// An extension header outside the allow-list (hop-by-hop, routing, fragment, destination options).
    Ipv6ExtUnsupported = 14, Ipv6, "ipv6: extension header not allowed";
    /// More than eight extension headers, or hop-by-hop not first.
    Ipv6ExtChain = 15, Ipv6, "ipv6: extension header chain too long or misordered";
    /// Fewer bytes than a TCP header.
    TcpTruncated = 16, Tcp, "tcp: truncated header";
    /// Data offset below 5 words or beyond the segment.
    TcpBadDataOffset = 17, Tcp, "tcp: bad data offset";
    /// Fewer bytes than a UDP header.
    UdpTruncated = 18, Udp, "udp: truncated header";
    /// The UDP length is below 8 or beyond the IP payload.
    UdpBadLength = 19, Udp, "udp: bad length";
    /// Fewer bytes than an ICMP header.
    IcmpTruncated = 20, Icmp, "icmp: truncated header";
    /// An ICMP error quotes too little of the offending IP header.
    IcmpQuoteTruncated = 21, Icmp, "icmp: quoted packet truncated";
    /// The quoted packet is not a well-formed IP header.
    IcmpQuoteMalformed = 22, Icmp, "icmp: quoted packet malformed";
    /// Not enough headroom before the packet for an outer header.
    NoHeadroom = 23, Buffer, "buffer: not enough headroom";
    /// The operation does not apply to this packet (for example a port rewrite on ICMP).
    NotApplicable = 24, Buffer, "buffer: rewrite does not apply to this packet";
    /// The buffer's head or length lies outside its storage.
    BadBounds = 25, Buffer, "buffer: head or length out of range";
    /// The result would exceed 65535 bytes.
    TooLong = 26, Buffer, "buffer: packet would exceed 65535 bytes";
    /// The TTL or hop limit would reach zero: the packet must not be forwarded.
    HopLimitExceeded = 27, Ipv4, "ip: ttl or hop limit exceeded";
    /// The IPv4 header checksum is wrong.
    Ipv4BadChecksum = 28, Ipv4, "ipv4: bad header checksum";
    /// The TCP checksum is wrong.
    TcpBadChecksum = 29, Tcp, "tcp: bad checksum";
    /// The UDP checksum is wrong.
    UdpBadChecksum = 30, Udp, "udp: bad checksum";
    /// The ICMP or ICMPv6 checksum is wrong.
    IcmpBadChecksum = 31, Icmp, "icmp: bad checksum";
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for Error {}

/// The wire layer's result type.
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(usize::from(e.code()), i + 1, "codes are dense and ordered");
            assert_eq!(Error::from_code(e.code()), Some(*e));
        }
        assert_eq!(Error::from_code(0), None);
    }
}
