//! Virtual services and real servers: add, edit, delete, list (`ipvsadm -A/-E/-D/-a/-e/-d/-L`).

use core::ffi::{CStr, c_char};

use vs_proto::conn::Forward;
use vs_proto::engine::{Persistence, RealConfig, ServiceConfig};
use vs_sched::SchedFlags;

use crate::boundary::{Versioned, ref_in, slice_out, versioned_in, with_engine, write_out};
use crate::engine::vs_engine;
use crate::status::vs_status;
use crate::types::{copy_name, vs_addr, vs_counters, vs_rates, vs_service_key};

/// Forwarding method: NAT / masquerading (`-m`).
pub const VS_FWD_NAT: u8 = 0;
/// Direct routing (`-g`).
pub const VS_FWD_DR: u8 = 1;
/// IP-in-IP tunnel (`-i`).
pub const VS_FWD_TUN: u8 = 2;

/// `vs_service_config.sched_flags`: sh-fallback / mh-fallback (IPVS's flag-1 bit).
pub const VS_SCHED_FLAG_1: u32 = 0x0008;
/// sh-port / mh-port (flag-2).
pub const VS_SCHED_FLAG_2: u32 = 0x0010;
/// flag-3.
pub const VS_SCHED_FLAG_3: u32 = 0x0020;

/// Length of name fields, NUL included.
pub const VS_NAME_LEN: usize = 16;
// One limit: the longest scheduler name (the registry's) and its NUL fill a name field.
const _: () = assert!(VS_NAME_LEN == vs_sched::registry::MAX_NAME_LEN + 1);

/// How a service schedules (`ipvsadm -A/-E`'s options).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vs_service_config {
    /// `sizeof(vs_service_config)`.
    pub struct_size: u32,
    /// Scheduler name, NUL-terminated (`rr`, `wlc`, ... or a registered one); NULL means wlc.
    pub scheduler: *const c_char,
    /// `VS_SCHED_FLAG_*` bits.
    pub sched_flags: u32,
    /// One-packet scheduling (`-o`): 0 off, anything else on.
    pub one_packet: u8,
    /// Persistent (`-p`): 0 off, anything else on.
    pub persistent: u8,
    /// Persistence timeout in seconds (ipvsadm's default is 360).
    pub persistence_timeout: u32,
    /// Client mask prefix length (`-M`): 32 / 128 = the client address alone.
    pub persistence_prefix: u8,
}

/// A real server (`ipvsadm -a/-e`'s options).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vs_real_config {
    /// `sizeof(vs_real_config)`.
    pub struct_size: u32,
    /// Address (another family than the service's only for tunnels).
    pub addr: vs_addr,
    /// Port, host byte order (DR and TUN use the service's port).
    pub port: u16,
    /// `VS_FWD_*`.
    pub forward: u8,
    /// Weight (0 quiesces).
    pub weight: u32,
    /// Upper connection threshold (0: none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0: none).
    pub lower_threshold: u32,
}

fn forward_from(code: u8) -> Result<Forward, vs_status> {
    match code {
        VS_FWD_NAT => Ok(Forward::Nat),
        VS_FWD_DR => Ok(Forward::DirectRoute),
        VS_FWD_TUN => Ok(Forward::Tunnel),
        _ => Err(vs_status::VS_ERR_INVALID),
    }
}

fn forward_code(f: Forward) -> u8 {
    match f {
        Forward::Nat => VS_FWD_NAT,
        Forward::DirectRoute => VS_FWD_DR,
        Forward::Tunnel => VS_FWD_TUN,
    }
}

/// Runs `f` with the Rust view of a service configuration.
fn with_service_config<T>(
    c: &vs_service_config,
    f: impl FnOnce(&ServiceConfig<'_>) -> Result<T, vs_status>,
) -> Result<T, vs_status> {
    let scheduler = if c.scheduler.is_null() {
        "wlc"
    } else {
        // SAFETY: non-null; the caller promises a NUL-terminated string.
        unsafe { CStr::from_ptr(c.scheduler) }.to_str().map_err(|_| vs_status::VS_ERR_UTF8)?
    };
    let flags = SchedFlags::from_bits(c.sched_flags).ok_or(vs_status::VS_ERR_INVALID)?;
    let persistence = (c.persistent != 0).then_some(Persistence {
        timeout_s: c.persistence_timeout,
        prefix_len: c.persistence_prefix,
        ipv4_mask: None,
    });
    f(&ServiceConfig { scheduler, flags, one_packet: c.one_packet != 0, persistence })
}

fn real_from(c: &vs_real_config) -> Result<RealConfig, vs_status> {
    Ok(RealConfig {
        addr: crate::types::ip_of(c.addr)?,
        port: c.port,
        forward: forward_from(c.forward)?,
        weight: c.weight,
        upper_threshold: c.upper_threshold,
        lower_threshold: c.lower_threshold,
    })
}

/// Runs `f` on the engine with the Rust form of a C service key.
fn on_service(
    engine: *mut vs_engine,
    key: *const vs_service_key,
    f: impl FnOnce(&mut crate::engine::Inner, vs_proto::engine::ServiceKey) -> Result<(), vs_status>,
) -> vs_status {
    with_engine(engine, |e| f(&mut e.inner, ref_in(key)?.to_key()?))
}

// SAFETY: `struct_size` first; integers and a raw pointer only.
unsafe impl Versioned for vs_service_config {
    // Version 1: the layout as first published.
    const FIRST_SIZE: usize = size_of::<vs_service_config>();
    fn defaults() -> Self {
        vs_service_config {
            struct_size: size_of::<vs_service_config>() as u32,
            scheduler: c"wlc".as_ptr(),
            sched_flags: 0,
            one_packet: 0,
            persistent: 0,
            persistence_timeout: 360,
            persistence_prefix: 128,
        }
    }
}

// SAFETY: `struct_size` first; integers and byte arrays only.
unsafe impl Versioned for vs_real_config {
    // Version 1: the layout as first published.
    const FIRST_SIZE: usize = size_of::<vs_real_config>();
    fn defaults() -> Self {
        vs_real_config {
            struct_size: size_of::<vs_real_config>() as u32,
            addr: vs_addr::default(),
            port: 0,
            forward: VS_FWD_NAT,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }
}

/// Fills `out` with ipvsadm's defaults: wlc, no flags, not persistent (timeout 360 and a full
/// mask ready for `persistent = 1`).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_service_config_default(out: *mut vs_service_config) -> vs_status {
    crate::boundary::guard(|| write_out(out, vs_service_config::defaults()))
}

/// Fills `out` with ipvsadm's defaults for `-a`: NAT, weight 1, no thresholds, address
/// unspecified (set `addr` and `port`).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_real_config_default(out: *mut vs_real_config) -> vs_status {
    crate::boundary::guard(|| write_out(out, vs_real_config::defaults()))
}

/// Adds a virtual service (`ipvsadm -A`). `VS_ERR_EXISTS` when it exists,
/// `VS_ERR_UNKNOWN_SCHEDULER` for an unknown scheduler name, `VS_ERR_FULL` without a free slot.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_service_add(
    engine: *mut vs_engine,
    key: *const vs_service_key,
    config: *const vs_service_config,
) -> vs_status {
    on_service(engine, key, |e, key| with_service_config(&versioned_in(config)?, |c| Ok(e.add_service(key, c)?)))
}

/// Changes a service's scheduler, flags or persistence (`ipvsadm -E`).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_service_edit(
    engine: *mut vs_engine,
    key: *const vs_service_key,
    config: *const vs_service_config,
) -> vs_status {
    on_service(engine, key, |e, key| with_service_config(&versioned_in(config)?, |c| Ok(e.edit_service(&key, c)?)))
}

/// Deletes a service (`ipvsadm -D`); its connections drain.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_service_delete(engine: *mut vs_engine, key: *const vs_service_key) -> vs_status {
    on_service(engine, key, |e, key| Ok(e.delete_service(&key)?))
}

/// Adds a real server to a service (`ipvsadm -a`).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_real_add(
    engine: *mut vs_engine,
    key: *const vs_service_key,
    real: *const vs_real_config,
) -> vs_status {
    on_service(engine, key, |e, key| Ok(e.add_real(&key, &real_from(&versioned_in(real)?)?)?))
}

/// Changes a real server's weight, thresholds or method (`ipvsadm -e`).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_real_edit(
    engine: *mut vs_engine,
    key: *const vs_service_key,
    real: *const vs_real_config,
) -> vs_status {
    on_service(engine, key, |e, key| Ok(e.edit_real(&key, &real_from(&versioned_in(real)?)?)?))
}

/// Removes a real server (`ipvsadm -d`); its connections drain (or go, with
/// `expire_nodest_conn`).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_real_delete(
    engine: *mut vs_engine,
    key: *const vs_service_key,
    addr: *const vs_addr,
    port: u16,
) -> vs_status {
    on_service(engine, key, |e, key| Ok(e.delete_real(&key, crate::types::ip_of(*ref_in(addr)?)?, port)?))
}

/// A service as `ipvsadm -L -n` lists it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vs_service_info {
    /// Its key.
    pub key: vs_service_key,
    /// Scheduler name, NUL-terminated.
    pub scheduler: [c_char; VS_NAME_LEN],
    /// `VS_SCHED_FLAG_*` bits.
    pub sched_flags: u32,
    /// One-packet scheduling.
    pub one_packet: bool,
    /// Persistent.
    pub persistent: bool,
    /// Persistence timeout in seconds.
    pub persistence_timeout: u32,
    /// Persistence mask prefix length.
    pub persistence_prefix: u8,
    /// Real servers in the service.
    pub reals: u32,
    /// Counters.
    pub stats: vs_counters,
    /// Rates.
    pub rates: vs_rates,
}

/// A real server as `ipvsadm -L -n` lists it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vs_real_info {
    /// Address.
    pub addr: vs_addr,
    /// Port.
    pub port: u16,
    /// `VS_FWD_*`.
    pub forward: u8,
    /// Weight.
    pub weight: u32,
    /// Upper threshold.
    pub upper_threshold: u32,
    /// Lower threshold.
    pub lower_threshold: u32,
    /// Active connections (ActiveConn).
    pub active_conns: u32,
    /// Inactive connections (InActConn).
    pub inactive_conns: u32,
    /// Persistence templates (PersistConn).
    pub persistent_conns: u32,
    /// Over its upper threshold.
    pub overloaded: bool,
    /// Counters.
    pub stats: vs_counters,
    /// Rates.
    pub rates: vs_rates,
}

/// Lists the services into `out` (room for `capacity`, which may be 0 to count): writes up to
/// `capacity` entries in service-slot order and sets `*count` to the number of services.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_service_list(
    engine: *mut vs_engine,
    out: *mut vs_service_info,
    capacity: usize,
    count: *mut usize,
) -> vs_status {
    with_engine(engine, |e| {
        let out = slice_out(out, capacity)?;
        let mut n = 0;
        for s in e.inner.services() {
            if let Some(slot) = out.get_mut(n) {
                let p = s.persistence();
                *slot = vs_service_info {
                    key: s.key().into(),
                    scheduler: copy_name(s.scheduler()),
                    sched_flags: s.flags().bits(),
                    one_packet: s.one_packet(),
                    persistent: p.is_some(),
                    persistence_timeout: p.map_or(0, |p| p.timeout_s),
                    persistence_prefix: p.map_or(0, |p| p.prefix_len),
                    reals: s.reals().count() as u32,
                    stats: s.stats().into(),
                    rates: s.rates().into(),
                };
            }
            n += 1;
        }
        write_out(count, n)
    })
}

/// Lists a service's real servers (newest first, as ipvsadm does) into `out`, like
/// `vs_service_list`.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_real_list(
    engine: *mut vs_engine,
    key: *const vs_service_key,
    out: *mut vs_real_info,
    capacity: usize,
    count: *mut usize,
) -> vs_status {
    with_engine(engine, |e| {
        let key = ref_in(key)?.to_key()?;
        let out = slice_out(out, capacity)?;
        let service = e.inner.service(&key).ok_or(vs_status::VS_ERR_NOT_FOUND)?;
        let mut n = 0;
        for (real, dest) in service.reals() {
            if let Some(slot) = out.get_mut(n) {
                *slot = vs_real_info {
                    addr: real.addr.into(),
                    port: real.port,
                    forward: forward_code(real.forward),
                    weight: dest.weight,
                    upper_threshold: dest.upper_threshold,
                    lower_threshold: dest.lower_threshold,
                    active_conns: dest.active,
                    inactive_conns: dest.inactive,
                    persistent_conns: dest.persistent,
                    overloaded: dest.flags.contains(vs_sched::DestFlags::OVERLOAD),
                    stats: (&real.stats).into(),
                    rates: real.rates.rates().into(),
                };
            }
            n += 1;
        }
        write_out(count, n)
    })
}

/// Zeroes counters and rates (`ipvsadm -Z`): of one service when `key` is non-NULL, else of
/// every service and the totals.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_zero_stats(engine: *mut vs_engine, key: *const vs_service_key) -> vs_status {
    with_engine(engine, |e| {
        let key = if key.is_null() { None } else { Some(ref_in(key)?.to_key()?) };
        e.inner.zero_stats(key.as_ref()).map_err(Into::into)
    })
}
