//! The scheduler plugin ABI (major version [`VS_PLUGIN_ABI_MAJOR`]): a plugin is a shared
//! library exporting `vs_sched_plugin_v1`, a function of the host's ABI major returning a [`vs_sched_ops`] table with
//! IPVS's scheduler operations. The host (`vs-ffi`'s loader) checks the ABI version and the
//! table's size, then lets services name the plugin like a built-in scheduler.
//!
//! For a Rust plugin, implement [`vs_sched::Scheduler`] and call [`export_scheduler!`] (with
//! the `std` feature): it writes the table and the entry point, converts the C views, keeps the
//! per-service state in a `Box`, and stops panics at the boundary (a panicking `schedule`
//! answers "no destination").
#![cfg_attr(not(feature = "std"), no_std)]
#![allow(non_camel_case_types)] // C names.
#![allow(unsafe_code)] // The C boundary.

use core::ffi::{c_char, c_void};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vs_sched::{Dest, DestFlags, DestId, PacketInfo, SchedError};

/// The plugin ABI's major version: a plugin built for another is refused.
pub const VS_PLUGIN_ABI_MAJOR: u32 = 1;

/// The symbol every plugin exports: `const vs_sched_ops *vs_sched_plugin_v1(uint32_t
/// host_abi_major)`, which returns its table (NULL when it cannot serve that host ABI).
pub const VS_PLUGIN_ENTRY: &str = "vs_sched_plugin_v1";

/// An operation succeeded.
pub const VS_SCHED_OK: i32 = 0;
/// The scheduler cannot serve so many destinations.
pub const VS_SCHED_TOO_MANY: i32 = 1;
/// A parameter (flags) is not acceptable.
pub const VS_SCHED_BAD_PARAMETER: i32 = 2;

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
    /// The Rust address, or `None` for an unknown family.
    #[must_use]
    pub fn to_ip(self) -> Option<IpAddr> {
        match self.family {
            VS_AF_INET => {
                let [a, b, c, d, ..] = self.bytes;
                Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
            }
            VS_AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(self.bytes))),
            _ => None,
        }
    }
}

impl From<IpAddr> for vs_addr {
    fn from(ip: IpAddr) -> Self {
        let mut bytes = [0; 16];
        match ip {
            IpAddr::V4(a) => {
                for (dst, src) in bytes.iter_mut().zip(a.octets()) {
                    *dst = src;
                }
                vs_addr { family: VS_AF_INET, bytes }
            }
            IpAddr::V6(a) => vs_addr { family: VS_AF_INET6, bytes: a.octets() },
        }
    }
}

/// `vs_sched_dest.flags`: linked in its service.
pub const VS_DEST_AVAILABLE: u32 = 0x1;
/// `vs_sched_dest.flags`: over its upper threshold (skip it).
pub const VS_DEST_OVERLOAD: u32 = 0x2;

/// A destination (real server) as a scheduler sees it. The array a scheduler receives is in
/// IPVS list order (index 0 = the most recently added); `schedule` returns an index into it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vs_sched_dest {
    /// Stable handle (a slot and generation; never names another destination).
    pub id: u32,
    /// `VS_DEST_*` bits.
    pub flags: u32,
    /// Address.
    pub addr: vs_addr,
    /// Port, host byte order.
    pub port: u16,
    /// Weight (0: quiesced, no new connections).
    pub weight: u32,
    /// The last non-zero weight.
    pub last_weight: u32,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Persistence templates.
    pub persistent: u32,
    /// Upper connection threshold (0: none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0: none).
    pub lower_threshold: u32,
}

impl From<&Dest> for vs_sched_dest {
    fn from(d: &Dest) -> Self {
        vs_sched_dest {
            id: d.id.0,
            flags: u32::from(d.flags.bits()),
            addr: d.addr.into(),
            port: d.port,
            weight: d.weight,
            last_weight: d.last_weight,
            active: d.active,
            inactive: d.inactive,
            persistent: d.persistent,
            upper_threshold: d.upper_threshold,
            lower_threshold: d.lower_threshold,
        }
    }
}

impl vs_sched_dest {
    /// The Rust destination (an unknown address family reads as IPv4 0.0.0.0).
    #[must_use]
    pub fn to_dest(&self) -> Dest {
        let addr = self.addr.to_ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut d = Dest::new(DestId(self.id), addr, self.port, self.weight);
        d.last_weight = self.last_weight;
        d.active = self.active;
        d.inactive = self.inactive;
        d.persistent = self.persistent;
        d.upper_threshold = self.upper_threshold;
        d.lower_threshold = self.lower_threshold;
        d.flags = DestFlags::from_bits_truncate(u8::try_from(self.flags & 0xff).unwrap_or(0));
        d
    }
}

/// The packet a new connection starts with.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vs_sched_packet {
    /// IP protocol.
    pub protocol: u8,
    /// An ICMP error about a reply: hash the destination where you would hash the source.
    pub inverse: bool,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Source address.
    pub src: vs_addr,
    /// Destination address.
    pub dst: vs_addr,
}

impl From<&PacketInfo> for vs_sched_packet {
    fn from(p: &PacketInfo) -> Self {
        vs_sched_packet {
            protocol: p.proto,
            inverse: p.inverse,
            sport: p.sport,
            dport: p.dport,
            src: p.src.into(),
            dst: p.dst.into(),
        }
    }
}

impl vs_sched_packet {
    /// The Rust view.
    #[must_use]
    pub fn to_info(&self) -> PacketInfo {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        PacketInfo {
            proto: self.protocol,
            src: self.src.to_ip().unwrap_or(any),
            dst: self.dst.to_ip().unwrap_or(any),
            sport: self.sport,
            dport: self.dport,
            inverse: self.inverse,
        }
    }
}

/// A scheduler plugin's table. Every function pointer but `schedule` may be NULL (nothing to
/// do). `state` is what `init_service` stored for the service. The functions are declared
/// `C-unwind`: a plugin must not throw, but if a C++ plugin's exception (or a Rust plugin's
/// panic) escapes one, the host's library stops the process (abort) instead of unwinding
/// through frames that cannot be unwound, which would be undefined behaviour.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vs_sched_ops {
    /// `VS_PLUGIN_ABI_MAJOR` of the header the plugin was built with.
    pub abi_major: u32,
    /// `sizeof(vs_sched_ops)` as the plugin was built.
    pub struct_size: u32,
    /// The scheduler's name (at most 15 bytes, not a built-in's), NUL-terminated.
    pub name: *const c_char,
    /// A service starts using the scheduler with these destinations: store the per-service
    /// state in `*state`. `flags` are the service's `VS_SCHED_FLAG_*`, `seed` the engine's.
    pub init_service: Option<
        unsafe extern "C-unwind" fn(
            state: *mut *mut c_void,
            dests: *const vs_sched_dest,
            count: usize,
            flags: u32,
            seed: u64,
        ) -> i32,
    >,
    /// The service stops using it: release `state`.
    pub done_service: Option<unsafe extern "C-unwind" fn(state: *mut c_void)>,
    /// `dests[index]` was just added.
    pub add_dest: Option<
        unsafe extern "C-unwind" fn(state: *mut c_void, dests: *const vs_sched_dest, count: usize, index: usize) -> i32,
    >,
    /// `removed` (which stood at `index`) was just removed; `dests` no longer holds it.
    pub del_dest: Option<
        unsafe extern "C-unwind" fn(
            state: *mut c_void,
            dests: *const vs_sched_dest,
            count: usize,
            removed: *const vs_sched_dest,
            index: usize,
        ),
    >,
    /// `dests[index]` was edited (weight, thresholds).
    pub upd_dest: Option<
        unsafe extern "C-unwind" fn(state: *mut c_void, dests: *const vs_sched_dest, count: usize, index: usize) -> i32,
    >,
    /// Chooses the destination for a new connection: its index, or -1 for none.
    pub schedule: Option<
        unsafe extern "C-unwind" fn(
            state: *mut c_void,
            dests: *const vs_sched_dest,
            count: usize,
            packet: *const vs_sched_packet,
            now_ms: u64,
        ) -> i64,
    >,
    /// Reserved for later minor versions: NULL.
    pub reserved: [*const c_void; 8],
}

/// A table in a `static`: the raw pointers in it are to static data, so sharing is sound.
#[repr(transparent)]
#[derive(Debug)]
pub struct StaticOps(pub vs_sched_ops);

// SAFETY: the table is immutable and points only to static data and functions.
unsafe impl Sync for StaticOps {}

/// A scheduler error as the plugin ABI returns it.
#[must_use]
pub fn sched_code(result: Result<(), SchedError>) -> i32 {
    match result {
        Ok(()) => VS_SCHED_OK,
        Err(SchedError::TooManyDests) => VS_SCHED_TOO_MANY,
        Err(SchedError::BadParameter) => VS_SCHED_BAD_PARAMETER,
    }
}

/// The scheduler error for a plugin's return code.
///
/// # Errors
/// The error the code stands for (unknown codes read as a bad parameter).
pub fn sched_result(code: i32) -> Result<(), SchedError> {
    match code {
        VS_SCHED_OK => Ok(()),
        VS_SCHED_TOO_MANY => Err(SchedError::TooManyDests),
        _ => Err(SchedError::BadParameter),
    }
}

/// Most destinations a plugin call carries (`VS_MAX_REALS`).
pub const MAX_DESTS: usize = 64;

/// Rust destinations from a C array (for the plugin side); `None` for more than
/// [`MAX_DESTS`] (a host that broke the limit gets an error, not a shortened list) or a NULL
/// array with a count.
///
/// # Safety
/// `dests` must point to `count` destinations (or `count` be 0).
#[must_use]
pub unsafe fn dests_from_c(dests: *const vs_sched_dest, count: usize) -> Option<heapless::Vec<Dest, MAX_DESTS>> {
    let mut out = heapless::Vec::new();
    if count == 0 {
        return Some(out);
    }
    if dests.is_null() || count > MAX_DESTS {
        return None;
    }
    // SAFETY: the caller's promise.
    let slice = unsafe { core::slice::from_raw_parts(dests, count) };
    for d in slice {
        out.push(d.to_dest()).ok()?;
    }
    Some(out)
}

/// The Rust plugin side (`std`): [`export::PluginScheduler`] and the macro's operations.
#[cfg(feature = "std")]
pub mod export;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_list_beyond_the_limit_is_refused_not_shortened() {
        let dest =
            vs_sched_dest::from(&Dest::new(vs_sched::DestId(1), core::net::Ipv4Addr::new(198, 18, 1, 1).into(), 80, 1));
        let many = [dest; MAX_DESTS + 1];
        // SAFETY: the arrays hold the counts given.
        unsafe {
            assert!(dests_from_c(many.as_ptr(), MAX_DESTS + 1).is_none());
            assert_eq!(dests_from_c(many.as_ptr(), MAX_DESTS).map(|d| d.len()), Some(MAX_DESTS));
            assert_eq!(dests_from_c(core::ptr::null(), 0).map(|d| d.len()), Some(0));
            assert!(dests_from_c(core::ptr::null(), 1).is_none());
        }
    }
}
