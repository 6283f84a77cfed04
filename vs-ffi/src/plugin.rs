//! External schedulers: C operation tables registered statically (firmware) or loaded from
//! plugin libraries, adapted to the engine's `Scheduler` trait. Only this module calls into
//! them.

use core::ffi::{CStr, c_void};

use vs_plugin::{MAX_DESTS, VS_PLUGIN_ABI_MAJOR, sched_result, vs_sched_dest, vs_sched_ops, vs_sched_packet};
use vs_sched::registry::MAX_NAME_LEN;
use vs_sched::{Dest, ExternalOps, ExternalScheduler, PacketInfo, SchedError, SchedParams};

use crate::boundary::with_engine;
use crate::engine::vs_engine;
use crate::status::vs_status;

// The header's copies of vs-plugin's constants (cbindgen prints this crate's constants only).
/// The plugin ABI's major version: plugins built for another are refused.
pub const VS_SCHED_ABI_MAJOR: u32 = 1;
/// A plugin operation succeeded.
pub const VS_SCHED_OK: i32 = 0;
/// The plugin cannot serve so many destinations.
pub const VS_SCHED_TOO_MANY: i32 = 1;
/// The plugin refuses a parameter (the service's flags).
pub const VS_SCHED_BAD_PARAMETER: i32 = 2;
/// `vs_sched_dest.flags`: linked in its service.
pub const VS_DEST_AVAILABLE: u32 = 0x1;
/// `vs_sched_dest.flags`: over its upper threshold (skip it).
pub const VS_DEST_OVERLOAD: u32 = 0x2;
const _: () = assert!(
    VS_SCHED_ABI_MAJOR == VS_PLUGIN_ABI_MAJOR
        && VS_SCHED_OK == vs_plugin::VS_SCHED_OK
        && VS_SCHED_TOO_MANY == vs_plugin::VS_SCHED_TOO_MANY
        && VS_SCHED_BAD_PARAMETER == vs_plugin::VS_SCHED_BAD_PARAMETER
        && VS_DEST_AVAILABLE == vs_plugin::VS_DEST_AVAILABLE
        && VS_DEST_OVERLOAD == vs_plugin::VS_DEST_OVERLOAD
);

/// A plugin's entry point: its operations table for a host of ABI `host_abi_major`, or NULL.
pub type vs_sched_plugin_entry = Option<unsafe extern "C" fn(host_abi_major: u32) -> *const vs_sched_ops>;

/// Checks an operations table: ABI major and size first, read through the raw pointer (a
/// table built for another ABI may be smaller than ours), then a valid name, `schedule`, NULL
/// reserved slots. A table that passes stays valid for the process (static, or in a
/// never-unloaded library), which the caller promises.
pub(crate) fn checked_ops(ops: *const vs_sched_ops) -> Result<&'static vs_sched_ops, vs_status> {
    if ops.is_null() {
        return Err(vs_status::VS_ERR_NULL);
    }
    if !ops.is_aligned() {
        return Err(vs_status::VS_ERR_INVALID);
    }
    // SAFETY: non-null and aligned; every version of the table starts with these two u32s.
    let (abi_major, struct_size) =
        unsafe { ((&raw const (*ops).abi_major).read(), (&raw const (*ops).struct_size).read()) };
    if abi_major != VS_PLUGIN_ABI_MAJOR || usize::try_from(struct_size).ok() != Some(size_of::<vs_sched_ops>()) {
        return Err(vs_status::VS_ERR_PLUGIN_ABI);
    }
    // SAFETY: a whole table of our size; the caller promises it lives for the process.
    let ops: &'static vs_sched_ops = unsafe { &*ops };
    if ops.name.is_null() || ops.schedule.is_none() || ops.reserved.iter().any(|p| !p.is_null()) {
        return Err(vs_status::VS_ERR_INVALID);
    }
    // SAFETY: non-null; the table's owner promises a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(ops.name) }.to_str().map_err(|_| vs_status::VS_ERR_UTF8)?;
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(vs_status::VS_ERR_INVALID);
    }
    Ok(ops)
}

/// The dispatcher for C tables: `ops` is the address of a table `check_ops` accepted.
struct CTables;

static C_TABLES: CTables = CTables;

/// The table behind an `ops` value.
fn table(ops: usize) -> &'static vs_sched_ops {
    // SAFETY: `ops` values are only ever made from checked tables that live for the process
    // (vs_register_scheduler's contract, or a library that is never unloaded).
    unsafe { &*(ops as *const vs_sched_ops) }
}

/// The destinations as the C table sees them.
fn c_dests(dests: &[Dest]) -> Result<heapless::Vec<vs_sched_dest, MAX_DESTS>, SchedError> {
    if dests.len() > MAX_DESTS {
        return Err(SchedError::TooManyDests);
    }
    Ok(dests.iter().map(vs_sched_dest::from).collect())
}

impl ExternalOps for CTables {
    fn name(&self, ops: usize) -> &str {
        // SAFETY: checked at registration: NUL-terminated UTF-8.
        unsafe { CStr::from_ptr(table(ops).name) }.to_str().unwrap_or("?")
    }

    fn init_service(&self, ops: usize, dests: &[Dest], params: &SchedParams) -> Result<usize, SchedError> {
        let c = c_dests(dests)?;
        let mut state: *mut c_void = core::ptr::null_mut();
        if let Some(f) = table(ops).init_service {
            // SAFETY: the plugin's function with a valid array and state slot.
            sched_result(unsafe { f(&mut state, c.as_ptr(), c.len(), params.flags.bits(), params.seed) })?;
        }
        Ok(state as usize)
    }

    fn done_service(&self, ops: usize, state: usize) {
        if let Some(f) = table(ops).done_service {
            // SAFETY: the state its init_service produced, released once.
            unsafe { f(state as *mut c_void) };
        }
    }

    fn add_dest(&self, ops: usize, state: usize, dests: &[Dest], index: usize) -> Result<(), SchedError> {
        let c = c_dests(dests)?;
        match table(ops).add_dest {
            // SAFETY: the plugin's function with its state and a valid array.
            Some(f) => sched_result(unsafe { f(state as *mut c_void, c.as_ptr(), c.len(), index) }),
            None => Ok(()),
        }
    }

    fn del_dest(&self, ops: usize, state: usize, dests: &[Dest], removed: &Dest, index: usize) {
        let (Ok(c), Some(f)) = (c_dests(dests), table(ops).del_dest) else { return };
        let removed = vs_sched_dest::from(removed);
        // SAFETY: the plugin's function with its state and valid pointers.
        unsafe { f(state as *mut c_void, c.as_ptr(), c.len(), &removed, index) };
    }

    fn upd_dest(&self, ops: usize, state: usize, dests: &[Dest], index: usize) -> Result<(), SchedError> {
        let c = c_dests(dests)?;
        match table(ops).upd_dest {
            // SAFETY: the plugin's function with its state and a valid array.
            Some(f) => sched_result(unsafe { f(state as *mut c_void, c.as_ptr(), c.len(), index) }),
            None => Ok(()),
        }
    }

    fn schedule(&self, ops: usize, state: usize, dests: &[Dest], packet: &PacketInfo, now_ms: u64) -> Option<usize> {
        let c = c_dests(dests).ok()?;
        let f = table(ops).schedule?;
        let packet = vs_sched_packet::from(packet);
        // SAFETY: the plugin's function with its state and valid pointers.
        let index = unsafe { f(state as *mut c_void, c.as_ptr(), c.len(), &packet, now_ms) };
        usize::try_from(index).ok().filter(|&i| i < dests.len())
    }
}

/// The engine-side scheduler for a checked table.
pub(crate) fn external(ops: &'static vs_sched_ops) -> ExternalScheduler {
    ExternalScheduler::new(&C_TABLES, core::ptr::from_ref(ops) as usize)
}

/// Registers a scheduler implemented in C (statically linked, as firmware does): services of
/// this engine may then name it. The table must stay valid and unchanged while the engine
/// lives. `VS_ERR_PLUGIN_ABI` for another ABI major or table size, `VS_ERR_EXISTS` for a name
/// taken (built-in or registered), `VS_ERR_FULL` beyond 8 registrations.
///
/// # Safety
/// `ops` must point to a table that outlives the engine.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_register_scheduler(engine: *mut vs_engine, ops: *const vs_sched_ops) -> vs_status {
    with_engine(engine, |e| Ok(e.inner.register_scheduler(external(checked_ops(ops)?))?))
}

#[cfg(feature = "std")]
mod loader {
    use std::ffi::{CStr, c_char};
    use std::path::Path;
    use std::sync::Mutex;

    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW, Symbol};
    use vs_plugin::{VS_PLUGIN_ABI_MAJOR, vs_sched_ops};

    use super::checked_ops;
    use crate::boundary::with_engine;
    use crate::engine::vs_engine;
    use crate::status::vs_status;

    /// Libraries loaded so far, kept for the life of the process: unloading a library whose
    /// code a table points into (or a Rust cdylib with thread-local destructors) is unsound.
    /// (The tables are kept as addresses: raw pointers inside them are not `Sync`.)
    static LOADED: Mutex<Vec<(std::path::PathBuf, usize)>> = Mutex::new(Vec::new());

    /// Loads a scheduler plugin (`RTLD_NOW | RTLD_LOCAL`, never unloaded; loading the same path
    /// again gives the same table) and checks its table.
    ///
    /// # Errors
    /// `VS_ERR_PLUGIN_LOAD` when the library or its `vs_sched_plugin_v1` symbol is missing,
    /// `VS_ERR_PLUGIN_ABI` when it serves another ABI, others from the table's checks.
    pub fn load_plugin(path: &Path) -> Result<&'static vs_sched_ops, vs_status> {
        let mut loaded = LOADED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&(_, ops)) = loaded.iter().find(|(p, _)| p == path) {
            return Ok(super::table(ops));
        }
        // SAFETY: loading runs the library's initialisers: the operator chose to trust it.
        let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
            eprintln!("vs: cannot load plugin {}: {e}", path.display());
            vs_status::VS_ERR_PLUGIN_LOAD
        })?;
        // SAFETY: the plugin ABI fixes the entry point's type.
        let entry: Symbol<unsafe extern "C" fn(u32) -> *const vs_sched_ops> =
            unsafe { library.get(c"vs_sched_plugin_v1") }.map_err(|e| {
                eprintln!("vs: {} is not a scheduler plugin: {e}", path.display());
                vs_status::VS_ERR_PLUGIN_LOAD
            })?;
        // SAFETY: calling the entry point as the ABI defines it.
        let ops = unsafe { entry(VS_PLUGIN_ABI_MAJOR) };
        // Never unloaded: the table and its functions live as long as the process.
        std::mem::forget(library);
        if ops.is_null() {
            return Err(vs_status::VS_ERR_PLUGIN_ABI);
        }
        // The library stays loaded: its table lives for the process.
        let ops = checked_ops(ops)?;
        loaded.push((path.to_path_buf(), core::ptr::from_ref(ops) as usize));
        Ok(ops)
    }

    /// Loads a scheduler plugin from the shared library at `path` (`std` builds) and registers
    /// it in `engine` under its own name. The library is never unloaded.
    ///
    /// # Safety
    /// `path` must be NULL or a NUL-terminated string; loading runs the library's initialisers.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn vs_load_plugin(engine: *mut vs_engine, path: *const c_char) -> vs_status {
        with_engine(engine, |e| {
            if path.is_null() {
                return Err(vs_status::VS_ERR_NULL);
            }
            // SAFETY: non-null; the caller promises a NUL-terminated path.
            let path = unsafe { CStr::from_ptr(path) }.to_str().map_err(|_| vs_status::VS_ERR_UTF8)?;
            let ops = load_plugin(Path::new(path))?;
            Ok(e.inner.register_scheduler(super::external(ops))?)
        })
    }
}

#[cfg(feature = "std")]
pub use loader::{load_plugin, vs_load_plugin};
