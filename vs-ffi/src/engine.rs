//! The engine handle: limits, its footprint, placing it in caller memory, and (with `std`) a
//! heap-allocating constructor.

use vs_proto::conn::ConnTable;
use vs_proto::engine::{Engine, ServiceSlot};

use crate::boundary::{Versioned, guard, versioned_in, write_out};
use crate::config::{engine_config_from, vs_engine_config};
use crate::status::vs_status;

/// Real servers per service (the compiled limit of every service slot).
pub const VS_MAX_REALS: u32 = 64;
// One limit: a service holds no more real servers than a plugin call can carry.
const _: () = assert!(VS_MAX_REALS as usize == vs_plugin::MAX_DESTS);

/// The cache-line alignment of everything placed in caller memory.
const LINE: usize = 64;

/// Marks a live handle, so that stale or foreign pointers are refused.
const LIVE: u64 = 0x7673_5f65_6e67_696e; // "vs_engin"

/// The engine as the C ABI holds it.
pub(crate) type Inner = Engine<'static, { VS_MAX_REALS as usize }>;

/// Sizes fixed for the engine's life.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vs_limits {
    /// `sizeof(vs_limits)`.
    pub struct_size: u32,
    /// Connection table entries (connections and persistence templates), 1..2^31.
    pub max_conns: u32,
    /// Virtual services, 1..1024 (each holds up to `VS_MAX_REALS` real servers).
    pub max_services: u32,
}

/// An engine: an opaque handle from `vs_engine_init` or `vs_engine_new`. One thread at a time.
/// (The header declares it opaque by hand: cbindgen would print its Rust fields.)
#[repr(C)]
pub struct vs_engine {
    /// First, so that checking a foreign pointer reads only its first 8 bytes.
    live: u64,
    pub(crate) poisoned: bool,
    /// Bytes allocated by vs_engine_new (0: the caller's memory).
    owned: usize,
    pub(crate) inner: Inner,
}

impl vs_engine {
    /// True when `engine` carries the live mark, read without a reference to the handle.
    ///
    /// # Safety
    /// `engine` is non-null, aligned and its first 8 bytes are readable.
    pub(crate) unsafe fn is_live_raw(engine: *const vs_engine) -> bool {
        // SAFETY: the caller's promise; `live` is the first field.
        unsafe { (&raw const (*engine).live).read() == LIVE }
    }

    /// Ends the engine: its services go, so that external schedulers release their state
    /// (skipped for a poisoned engine, whose state cannot be trusted: a leak beats a crash),
    /// and the handle is marked dead.
    fn release(&mut self) {
        if !self.poisoned {
            self.inner.close();
        }
        self.live = 0;
    }
}

/// Where the parts go in caller memory, from its 64-byte-aligned start.
struct Layout {
    services_at: usize,
    table_at: usize,
    table_len: usize,
    total: usize,
}

fn round_up(n: usize) -> Option<usize> {
    n.checked_next_multiple_of(LINE)
}

// SAFETY: `struct_size` first; integers only.
unsafe impl Versioned for vs_limits {
    // Version 1: the layout as first published.
    const FIRST_SIZE: usize = size_of::<vs_limits>();
    /// Limits have no defaults: a caller's structure too small to give one is out of range.
    fn defaults() -> Self {
        vs_limits { struct_size: size_of::<vs_limits>() as u32, max_conns: 0, max_services: 0 }
    }
}

fn layout(limits: &vs_limits) -> Result<Layout, vs_status> {
    let services = usize::try_from(limits.max_services).map_err(|_| vs_status::VS_ERR_RANGE)?;
    let conns = usize::try_from(limits.max_conns).map_err(|_| vs_status::VS_ERR_RANGE)?;
    if services == 0 || services > 1024 || conns == 0 || conns > 1 << 31 {
        return Err(vs_status::VS_ERR_RANGE);
    }
    let services_at = round_up(size_of::<vs_engine>()).ok_or(vs_status::VS_ERR_RANGE)?;
    let services_len = services.checked_mul(size_of::<ServiceSlot<{ VS_MAX_REALS as usize }>>());
    let table_at = services_len.and_then(|n| round_up(services_at + n)).ok_or(vs_status::VS_ERR_RANGE)?;
    let table_len = ConnTable::footprint(conns);
    let total = table_at.checked_add(table_len).ok_or(vs_status::VS_ERR_RANGE)?;
    Ok(Layout { services_at, table_at, table_len, total })
}

/// Bytes of memory `vs_engine_init` needs for `limits` (any alignment: the engine aligns
/// itself inside, which the count allows for). `limits` and `out_len` must not be NULL.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_engine_footprint(limits: *const vs_limits, out_len: *mut usize) -> vs_status {
    guard(|| {
        let l = layout(&versioned_in(limits)?)?;
        write_out(out_len, l.total + LINE - 1)
    })
}

/// Builds an engine in `len` bytes at `memory` (at least `vs_engine_footprint`), which stays
/// the caller's: it must outlive the engine and not be touched while the engine is in use.
/// Nothing is allocated. `config` may be NULL for the defaults of `vs_engine_config_default`.
/// On success `*out` is the handle (inside `memory`); there is nothing to free.
///
/// # Safety
/// `memory` must be valid for writes of `len` bytes and not be used otherwise while the engine
/// lives.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_engine_init(
    memory: *mut u8,
    len: usize,
    limits: *const vs_limits,
    config: *const vs_engine_config,
    out: *mut *mut vs_engine,
) -> vs_status {
    guard(|| {
        if memory.is_null() || out.is_null() {
            return Err(vs_status::VS_ERR_NULL);
        }
        let config = if config.is_null() { None } else { Some(versioned_in(config)?) };
        // SAFETY: the caller lends `len` bytes at `memory` (this function's contract).
        let engine = unsafe { place(memory, len, &versioned_in(limits)?, config, 0)? };
        write_out(out, engine)
    })
}

/// Places the engine in `memory`. `owned` is the allocation size to record (0: the caller's).
///
/// # Safety
/// As for `vs_engine_init`.
unsafe fn place(
    memory: *mut u8,
    len: usize,
    limits: &vs_limits,
    config: Option<vs_engine_config>,
    owned: usize,
) -> Result<*mut vs_engine, vs_status> {
    let l = layout(limits)?;
    let config = engine_config_from(&config.unwrap_or_default())?;
    let skip = memory.align_offset(LINE);
    if skip == usize::MAX || len < skip.saturating_add(l.total) {
        return Err(vs_status::VS_ERR_TOO_SMALL);
    }
    // SAFETY: every offset stays inside the `len` bytes checked above, each part starts on a
    // 64-byte boundary (enough for its type), and the caller lends the memory exclusively for
    // the engine's life, which is why the borrows may be 'static.
    unsafe {
        let base = memory.add(skip);
        let services_ptr = base.add(l.services_at).cast::<ServiceSlot<{ VS_MAX_REALS as usize }>>();
        let count = usize::try_from(limits.max_services).map_err(|_| vs_status::VS_ERR_RANGE)?;
        for i in 0..count {
            services_ptr.add(i).write(ServiceSlot::default());
        }
        let services = core::slice::from_raw_parts_mut(services_ptr, count);
        let table_ptr = base.add(l.table_at);
        table_ptr.write_bytes(0, l.table_len);
        let table_bytes = core::slice::from_raw_parts_mut(table_ptr, l.table_len);
        let capacity = usize::try_from(limits.max_conns).map_err(|_| vs_status::VS_ERR_RANGE)?;
        let table = ConnTable::new(table_bytes, capacity, config.seed)?;
        let inner = Engine::new(table, services, config)?;
        let handle = base.cast::<vs_engine>();
        handle.write(vs_engine { live: LIVE, poisoned: false, owned, inner });
        Ok(handle)
    }
}

/// Ends an engine from `vs_engine_init`: every service goes (plugin schedulers release their
/// state) and the handle is refused afterwards; the memory is the caller's again. An engine
/// from `vs_engine_new` is refused with `VS_ERR_INVALID` (use `vs_engine_free`).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_engine_fini(engine: *mut vs_engine) -> vs_status {
    crate::boundary::with_engine_any(engine, |e| {
        if e.owned != 0 {
            return Err(vs_status::VS_ERR_INVALID);
        }
        e.release();
        Ok(())
    })
}

/// Allocates and builds an engine (`std` builds; firmware uses `vs_engine_init`). `config` may
/// be NULL for the defaults. Free it with `vs_engine_free`.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them.
#[cfg(feature = "std")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_engine_new(
    limits: *const vs_limits,
    config: *const vs_engine_config,
    out: *mut *mut vs_engine,
) -> vs_status {
    guard(|| {
        if out.is_null() {
            return Err(vs_status::VS_ERR_NULL);
        }
        let limits = &versioned_in(limits)?;
        let config = if config.is_null() { None } else { Some(versioned_in(config)?) };
        let total = layout(limits)?.total;
        let alloc_layout = std::alloc::Layout::from_size_align(total, LINE).map_err(|_| vs_status::VS_ERR_RANGE)?;
        // SAFETY: the layout has a non-zero size (the handle alone is).
        let memory = unsafe { std::alloc::alloc(alloc_layout) };
        if memory.is_null() {
            return Err(vs_status::VS_ERR_FULL);
        }
        // SAFETY: `memory` is a fresh allocation of `total` bytes owned by the engine.
        match unsafe { place(memory, total, limits, config, total) } {
            Ok(engine) => write_out(out, engine),
            Err(e) => {
                // SAFETY: allocated just above with this layout.
                unsafe { std::alloc::dealloc(memory, alloc_layout) };
                Err(e)
            }
        }
    })
}

/// Frees an engine from `vs_engine_new` (NULL is ignored). An engine from `vs_engine_init`
/// is refused with `VS_ERR_INVALID`: its memory is the caller's.
///
/// # Safety
/// `engine` must not be used afterwards.
#[cfg(feature = "std")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_engine_free(engine: *mut vs_engine) -> vs_status {
    if engine.is_null() {
        return vs_status::VS_OK;
    }
    let mut owned = 0;
    let status = crate::boundary::with_engine_any(engine, |e| {
        owned = e.owned;
        if owned == 0 {
            return Err(vs_status::VS_ERR_INVALID);
        }
        e.release();
        Ok(())
    });
    if status != vs_status::VS_OK {
        return status;
    }
    // SAFETY: a live handle from vs_engine_new: `owned` bytes allocated at its address with
    // 64-byte alignment (std::alloc gives aligned memory, so there was no skip).
    unsafe {
        std::alloc::dealloc(engine.cast(), std::alloc::Layout::from_size_align_unchecked(owned, LINE));
    }
    vs_status::VS_OK
}
