//! Statistics, the connection table (`ipvsadm -L -c -n`), and the library's version.

use core::ffi::c_char;

use vs_proto::engine::{DropReason, TICK_MS};

use crate::boundary::{slice_out, with_engine, write_out};
use crate::engine::vs_engine;
use crate::service::VS_NAME_LEN;
use crate::status::vs_status;
use crate::types::{copy_name, vs_addr, vs_counters, vs_rates};

/// Number of drop reasons (`vs_global_stats.drops`).
pub const VS_DROP_REASONS: usize = 13;
const _: () = assert!(VS_DROP_REASONS == vs_proto::engine::DROP_REASONS);

/// Engine-wide statistics.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vs_global_stats {
    /// Totals over every service.
    pub total: vs_counters,
    /// Rates of the totals.
    pub rates: vs_rates,
    /// Packets dropped, per reason (`vs_drop_reason_name`).
    pub drops: [u64; VS_DROP_REASONS],
    /// Packets handed back to the host.
    pub passed: u64,
    /// Connections expired.
    pub expired: u64,
    /// Entries dropped by drop_entry.
    pub defence_dropped: u64,
    /// Entries in the connection table (connections and templates).
    pub conns: u64,
    /// The table's capacity.
    pub capacity: u64,
}

/// Reads the engine-wide statistics.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_engine_stats(engine: *mut vs_engine, out: *mut vs_global_stats) -> vs_status {
    with_engine(engine, |e| {
        let s = e.inner.stats();
        let table = e.inner.connections();
        write_out(
            out,
            vs_global_stats {
                total: (&s.total).into(),
                rates: s.rates.rates().into(),
                drops: s.drops,
                passed: s.passed,
                expired: s.expired,
                defence_dropped: s.defence_dropped,
                conns: table.len() as u64,
                capacity: table.capacity() as u64,
            },
        )
    })
}

/// The name of drop reason `reason` (a static NUL-terminated string; NULL when out of range).
#[unsafe(no_mangle)]
pub extern "C" fn vs_drop_reason_name(reason: u8) -> *const c_char {
    DropReason::ALL.get(usize::from(reason)).map_or(core::ptr::null(), |r| r.as_cstr().as_ptr())
}

/// A connection-table entry, as `ipvsadm -L -c -n` lists it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vs_conn_info {
    /// IP protocol (6, 17; 0 for a firewall-mark template).
    pub protocol: u8,
    /// IPVS's state number (1 ESTABLISHED ... 11 UDP; 0 NONE for templates).
    pub state: u8,
    /// `VS_FWD_*`.
    pub forward: u8,
    /// A persistence template.
    pub is_template: bool,
    /// State name as ipvsadm prints it, NUL-terminated.
    pub state_name: [c_char; VS_NAME_LEN],
    /// Client address and port.
    pub client: vs_addr,
    /// Client port.
    pub client_port: u16,
    /// Virtual address.
    pub virt: vs_addr,
    /// Virtual port.
    pub virt_port: u16,
    /// Real server address.
    pub real: vs_addr,
    /// Real server port.
    pub real_port: u16,
    /// Milliseconds until the entry expires (from the `now_ms` given).
    pub expires_in_ms: u64,
}

/// Lists connection-table entries from `*cursor` (start with 0): writes up to `capacity` into
/// `out`, sets `*count` to how many were written and advances `*cursor`; a count of 0 means the
/// end. `now_ms` is the host time the expiry countdowns are taken from.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_conn_list(
    engine: *mut vs_engine,
    cursor: *mut u32,
    now_ms: u64,
    out: *mut vs_conn_info,
    capacity: usize,
    count: *mut usize,
) -> vs_status {
    with_engine(engine, |e| {
        let start = *crate::boundary::ref_in(cursor.cast_const())?;
        let out = slice_out(out, capacity)?;
        let now = (now_ms / TICK_MS) as u32;
        let mut n = 0;
        let mut next = start;
        for (index, c) in e.inner.connections().iter().skip_while(|(i, _)| *i < start) {
            let Some(slot) = out.get_mut(n) else { break };
            let (client, virt, real) = (c.client(), c.virt(), c.real());
            let left = c.expires().wrapping_sub(now) as i32;
            *slot = vs_conn_info {
                protocol: c.proto().0,
                state: c.state() as u8,
                forward: c.forward() as u8,
                is_template: c.is_template(),
                state_name: copy_name(c.state().name()),
                client: client.0.into(),
                client_port: client.1,
                virt: virt.0.into(),
                virt_port: virt.1,
                real: real.0.into(),
                real_port: real.1,
                expires_in_ms: u64::try_from(left).unwrap_or(0) * TICK_MS,
            };
            n += 1;
            next = index.saturating_add(1);
        }
        write_out(cursor, next)?;
        write_out(count, n)
    })
}

/// The library's version as `(major << 16) | (minor << 8) | patch` (compare with
/// `VS_VERSION_NUMBER` from the header you compiled against).
#[unsafe(no_mangle)]
pub extern "C" fn vs_version_number() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0);
    (part(env!("CARGO_PKG_VERSION_MAJOR")) << 16)
        | (part(env!("CARGO_PKG_VERSION_MINOR")) << 8)
        | part(env!("CARGO_PKG_VERSION_PATCH"))
}

/// The library's version as a static NUL-terminated string ("0.1.0").
#[unsafe(no_mangle)]
pub extern "C" fn vs_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ffi::CStr;

    #[test]
    fn drop_reason_names_match_the_engine() {
        for &r in DropReason::ALL {
            let name = vs_drop_reason_name(r as u8);
            // SAFETY: a static string from the table.
            let name = unsafe { CStr::from_ptr(name) };
            assert_eq!(name.to_str().unwrap(), r.as_str());
        }
        assert!(vs_drop_reason_name(VS_DROP_REASONS as u8).is_null());
    }
}
