//! Plain C values: addresses, service keys, counters, and their conversions.

use core::ffi::c_char;
use core::net::IpAddr;

use vs_proto::engine::{Counters, Rates, ServiceKey};
use vs_proto::wire::IpProtocol;

use crate::status::vs_status;

pub use vs_plugin::vs_addr;

// The header's copies of vs-plugin's constants (cbindgen prints this crate's constants only).
/// `vs_addr.family` of an IPv4 address (its 4 bytes first in `bytes`).
pub const VS_AF_INET: u8 = 4;
/// `vs_addr.family` of an IPv6 address.
pub const VS_AF_INET6: u8 = 6;
const _: () = assert!(VS_AF_INET == vs_plugin::VS_AF_INET && VS_AF_INET6 == vs_plugin::VS_AF_INET6);

/// The Rust address of a C one, or `VS_ERR_INVALID` for an unknown family.
pub(crate) fn ip_of(addr: vs_addr) -> Result<IpAddr, vs_status> {
    addr.to_ip().ok_or(vs_status::VS_ERR_INVALID)
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
        let addr = ip_of(self.addr)?;
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
