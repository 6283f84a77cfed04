//! Open newtypes for wire numbers (EtherType, IP protocol, ICMP types).
//!
//! A wire field can hold any value, so these are never closed Rust enums: every value
//! round-trips, and the well-known values are associated constants.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

macro_rules! wire_number {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty) {
            $( $(#[$cmeta:meta])* $konst:ident = $value:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr(transparent)]
        pub struct $name(pub $repr);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: $name = $name($value); )*

            /// The well-known name of this value, if it has one.
            #[must_use]
            pub const fn name(self) -> Option<&'static str> {
                match self {
                    $( $name::$konst => Some(stringify!($konst)), )*
                    _ => None,
                }
            }
        }

        impl From<$repr> for $name {
            fn from(value: $repr) -> Self {
                $name(value)
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{}({})", name, self.0),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }
    };
}

wire_number! {
    /// An EtherType (IEEE 802 / IANA "ETHER TYPES").
    EtherType(u16) {
        /// Internet Protocol version 4.
        IPV4 = 0x0800,
        /// Address Resolution Protocol.
        ARP = 0x0806,
        /// IEEE 802.1Q customer VLAN tag.
        VLAN = 0x8100,
        /// IEEE 802.1ad service VLAN tag (QinQ outer tag).
        QINQ = 0x88A8,
        /// Internet Protocol version 6.
        IPV6 = 0x86DD,
    }
}

wire_number! {
    /// An IP protocol / IPv6 next-header number (IANA "Assigned Internet Protocol Numbers").
    IpProtocol(u8) {
        /// IPv6 hop-by-hop options extension header.
        HOPOPT = 0,
        /// Internet Control Message Protocol (IPv4).
        ICMP = 1,
        /// IPv4 encapsulated in IP (IP-in-IP).
        IPIP = 4,
        /// Transmission Control Protocol.
        TCP = 6,
        /// User Datagram Protocol.
        UDP = 17,
        /// IPv6 encapsulated in IP.
        IPV6 = 41,
        /// IPv6 routing extension header.
        IPV6_ROUTE = 43,
        /// IPv6 fragment extension header.
        IPV6_FRAG = 44,
        /// Encapsulating Security Payload.
        ESP = 50,
        /// Authentication Header.
        AH = 51,
        /// Internet Control Message Protocol for IPv6.
        ICMPV6 = 58,
        /// IPv6 "no next header".
        IPV6_NONXT = 59,
        /// IPv6 destination options extension header.
        IPV6_OPTS = 60,
        /// Stream Control Transmission Protocol.
        SCTP = 132,
        /// IPv6 mobility extension header.
        MOBILITY = 135,
        /// Host Identity Protocol extension header.
        HIP = 139,
        /// Shim6 extension header.
        SHIM6 = 140,
        /// Experimental extension header (RFC 3692).
        EXPERIMENT1 = 253,
        /// Experimental extension header (RFC 3692).
        EXPERIMENT2 = 254,
    }
}

impl IpProtocol {
    /// True for the transport protocols whose first four bytes are a source and a destination port.
    #[must_use]
    pub const fn has_ports(self) -> bool {
        matches!(self, IpProtocol::TCP | IpProtocol::UDP | IpProtocol::SCTP)
    }
}

wire_number! {
    /// An ICMPv4 message type (RFC 792).
    IcmpType(u8) {
        /// Echo reply.
        ECHO_REPLY = 0,
        /// Destination unreachable (incl. fragmentation needed, code 4).
        DEST_UNREACHABLE = 3,
        /// Source quench.
        SOURCE_QUENCH = 4,
        /// Redirect.
        REDIRECT = 5,
        /// Echo request.
        ECHO_REQUEST = 8,
        /// Time exceeded.
        TIME_EXCEEDED = 11,
        /// Parameter problem.
        PARAMETER_PROBLEM = 12,
    }
}

impl IcmpType {
    /// True for the error messages that quote the offending packet (types 3, 4, 11 and 12).
    #[must_use]
    pub const fn is_error(self) -> bool {
        matches!(
            self,
            IcmpType::DEST_UNREACHABLE
                | IcmpType::SOURCE_QUENCH
                | IcmpType::TIME_EXCEEDED
                | IcmpType::PARAMETER_PROBLEM
        )
    }
}

wire_number! {
    /// An ICMPv6 message type (RFC 4443).
    Icmpv6Type(u8) {
        /// Destination unreachable.
        DEST_UNREACHABLE = 1,
        /// Packet too big.
        PACKET_TOO_BIG = 2,
        /// Time exceeded.
        TIME_EXCEEDED = 3,
        /// Parameter problem.
        PARAMETER_PROBLEM = 4,
        /// Echo request.
        ECHO_REQUEST = 128,
        /// Echo reply.
        ECHO_REPLY = 129,
    }
}

impl Icmpv6Type {
    /// True for the error messages that quote the offending packet (types 1 to 4).
    #[must_use]
    pub const fn is_error(self) -> bool {
        matches!(self.0, 1..=4)
    }
}

/// A 48-bit IEEE 802 MAC address.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}
