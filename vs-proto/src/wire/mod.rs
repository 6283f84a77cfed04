//! Packet views, the one-pass [`Summary`], checksums, rewrites and encapsulation.
//!
//! # The no-panic contract
//! Following smoltcp's `wire` module:
//! - every `new_checked` / `parse` constructor validates lengths before any access, and no
//!   accessor of a value it returned can panic;
//! - [`Summary::parse_ethernet`] and [`Summary::parse_ip`] accept any byte string and either
//!   succeed or return an [`Error`]; they never panic and do bounded work (at most two VLAN tags,
//!   at most [`ipv6::MAX_EXTENSION_HEADERS`] IPv6 extension headers);
//! - the [`Rewriter`] and [`encapsulate`] / [`decapsulate`] check every offset they use and
//!   return [`Error::NotApplicable`] or a buffer error rather than panic when handed a summary
//!   that does not match the buffer.
//!
//! Wire numbers are open newtypes ([`EtherType`], [`IpProtocol`], [`IcmpType`], [`Icmpv6Type`]).

pub mod arp;
pub mod buffer;
pub mod build;
pub mod caps;
pub mod checksum;
pub mod cooked;
pub mod encap;
pub mod error;
pub mod ethernet;
pub mod icmp;
pub mod icmp_error;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod number;
pub mod rewrite;
pub mod summary;
pub mod tcp;
pub mod udp;

pub use arp::{ArpOp, ArpPacket};
pub use buffer::PacketBuf;
pub use build::{Frame, Segment};
pub use caps::{Checksum, ChecksumCaps};
pub use cooked::{CookedRecord, cooked_as_ethernet};
pub use encap::{TunnelHeader, decapsulate, encapsulate};
pub use error::{Error, Layer, Result};
pub use ethernet::{EthernetFrame, EthernetHeader, VlanIds, VlanTag};
pub use icmp::{IcmpHeader, QuotedPacket};
pub use icmp_error::{IcmpError, QuotedEnd, icmp_error, rewrite_quoted};
pub use ip::Fragment;
pub use ipv4::{Ipv4Header, Ipv4Packet};
pub use ipv6::{ExtensionChain, Ipv6Header, Ipv6Packet};
pub use number::{EtherType, IcmpType, Icmpv6Type, IpProtocol, MacAddr};
pub use rewrite::Rewriter;
pub use summary::{IcmpInfo, L3, Summary};
pub use tcp::{TcpFlags, TcpHeader};
pub use udp::UdpHeader;
