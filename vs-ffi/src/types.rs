//! Plain C values: addresses, service keys, counters, and their conversions.

use core::ffi::c_char;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vs_proto::engine::{Counters, Rates, ServiceKey};
use vs_proto::wire::IpProtocol;

use crate::status::vs_status;

/// `vs_addr.family` of an IPv4 address (its 4 bytes first in `bytes`).
pub const VS_AF_INET: u8 = 4;
/// `vs_addr.family` of an IPv6 address.
pub const VS_AF_INET6: u8 = 6;

/// An IPv4 or IPv6 address in network byte order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct vs_addr {
    /// `VS_AF_INET` or `VS_AF_INET6`.
    pub family: u8,
    /// The address: 4 bytes for IPv4 (the rest zero), 16 for IPv6.
    pub bytes: [u8; 16],
}

impl vs_addr {
    /// The Rust address, or `VS_ERR_INVALID` for an unknown family.
    pub(crate) fn to_ip(self) -> Result<IpAddr, vs_status> {
        match self.family {
            VS_AF_INET => {
                let [a, b, c, d, ..] = self.bytes;
                Ok(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
            }
            VS_AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(self.bytes))),
            _ => Err(vs_status::VS_ERR_INVALID),
        }
    }
}

impl From<IpAddr> for vs_addr {
    fn from(ip: IpAddr) -> Self {
        let mut bytes = [0; 16];
        match ip {
            IpAddr::V4(a) => {
                if let Some(head) = bytes.get_mut(..4) {
                    head.copy_from_slice(&a.octets());
                }
                vs_addr { family: VS_AF_INET, bytes }
            }
            IpAddr::V6(a) => vs_addr { family: VS_AF_INET6, bytes: a.octets() },
        }
    }
}

/// A virtual service's identity: protocol, address and port, or a firewall mark.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct vs_service_key {
    /// IP protocol: 6 (TCP) or 17 (UDP); ignored for firewall-mark services.
    pub protocol: u8,
    /// Virtual address; for a firewall-mark service only its family counts.
    pub addr: vs_addr,
    /// Virtual port in host byte order (0 for a persistent service taking every port).
    pub port: u16,
    /// Firewall mark (`-f`); 0 for an address-keyed service.
    pub fwmark: u32,
}

impl vs_service_key {
    pub(crate) fn to_key(self) -> Result<ServiceKey, vs_status> {
        let addr = self.addr.to_ip()?;
        if self.fwmark != 0 {
            return Ok(ServiceKey::fwmark(self.fwmark, addr.is_ipv6()));
        }
        Ok(ServiceKey::new(IpProtocol(self.protocol), addr, self.port))
    }
}

impl From<ServiceKey> for vs_service_key {
    fn from(k: ServiceKey) -> Self {
        vs_service_key { protocol: k.proto.0, addr: k.addr.into(), port: k.port, fwmark: k.fwmark }
    }
}

/// IPVS's five counters (`ipvsadm -L --stats`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct vs_counters {
    /// Connections scheduled.
    pub conns: u64,
    /// Client → real server packets.
    pub in_packets: u64,
    /// Real server → client packets.
    pub out_packets: u64,
    /// Client → real server bytes.
    pub in_bytes: u64,
    /// Real server → client bytes.
    pub out_bytes: u64,
}

impl From<&Counters> for vs_counters {
    fn from(c: &Counters) -> Self {
        vs_counters {
            conns: c.conns,
            in_packets: c.in_packets,
            out_packets: c.out_packets,
            in_bytes: c.in_bytes,
            out_bytes: c.out_bytes,
        }
    }
}

/// Rates per second (`ipvsadm -L --rate`), averaged like IPVS's estimator.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct vs_rates {
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub in_pps: u64,
    /// Outgoing packets per second.
    pub out_pps: u64,
    /// Incoming bytes per second.
    pub in_bps: u64,
    /// Outgoing bytes per second.
    pub out_bps: u64,
}

impl From<Rates> for vs_rates {
    fn from(r: Rates) -> Self {
        vs_rates { cps: r.cps, in_pps: r.in_pps, out_pps: r.out_pps, in_bps: r.in_bps, out_bps: r.out_bps }
    }
}

/// Copies `text` into a fixed C string field, truncated, always NUL-terminated.
pub(crate) fn copy_name<const N: usize>(text: &str) -> [c_char; N] {
    let mut out = [0; N];
    for (dst, &b) in out.iter_mut().take(N.saturating_sub(1)).zip(text.as_bytes()) {
        *dst = b as c_char;
    }
    out
}
