//! What [`export_scheduler!`](crate::export_scheduler) expands to: the plugin-side operations,
//! generic over the scheduler, each one stopping panics at the C boundary.

use std::boxed::Box;
use std::ffi::{CStr, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use vs_sched::{SchedFlags, Scheduler};

use crate::{
    VS_PLUGIN_ABI_MAJOR, VS_SCHED_BAD_PARAMETER, VS_SCHED_TOO_MANY, dests_from_c, sched_code, vs_sched_dest,
    vs_sched_ops, vs_sched_packet,
};

/// A Rust scheduler a plugin exports.
pub trait PluginScheduler: Scheduler + Sized + 'static {
    /// Its name (at most 15 bytes).
    const NAME: &'static CStr;
    /// An instance for a service with these flags and the engine's seed.
    fn create(flags: SchedFlags, seed: u64) -> Self;
}

/// Runs `f`, answering `fallback` if it panics (a panic must not unwind into C).
fn contained<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

unsafe extern "C-unwind" fn init<T: PluginScheduler>(
    state: *mut *mut c_void,
    dests: *const vs_sched_dest,
    count: usize,
    flags: u32,
    seed: u64,
) -> i32 {
    contained(VS_SCHED_BAD_PARAMETER, || {
        if state.is_null() {
            return VS_SCHED_BAD_PARAMETER;
        }
        let Some(flags) = SchedFlags::from_bits(flags) else { return VS_SCHED_BAD_PARAMETER };
        let mut sched = Box::new(T::create(flags, seed));
        // SAFETY: the host passes `count` destinations.
        let Some(dests) = (unsafe { dests_from_c(dests, count) }) else { return VS_SCHED_TOO_MANY };
        let code = sched_code(sched.init_service(&dests));
        if code == 0 {
            // SAFETY: checked non-null; the host provides the slot.
            unsafe { *state = Box::into_raw(sched).cast() };
        }
        code
    })
}

/// The scheduler behind a state pointer.
///
/// # Safety
/// `state` must come from `init::<T>` and not be done.
unsafe fn sched<'a, T>(state: *mut c_void) -> Option<&'a mut T> {
    // SAFETY: the caller's promise; NULL gives None.
    unsafe { state.cast::<T>().as_mut() }
}

unsafe extern "C-unwind" fn done<T: PluginScheduler>(state: *mut c_void) {
    contained((), || {
        if !state.is_null() {
            // SAFETY: made by Box::into_raw in init, released once.
            let mut s = unsafe { Box::from_raw(state.cast::<T>()) };
            s.done_service();
        }
    });
}

/// An operation on the scheduler with the destinations, as a plugin return code.
///
/// # Safety
/// `state` from `init::<T>`; `dests` holds `count` destinations.
unsafe fn with_dests<T: PluginScheduler>(
    state: *mut c_void,
    dests: *const vs_sched_dest,
    count: usize,
    op: impl FnOnce(&mut T, &[vs_sched::Dest]) -> Result<(), vs_sched::SchedError>,
) -> i32 {
    contained(VS_SCHED_BAD_PARAMETER, || {
        // SAFETY: the caller's promises.
        let Some(s) = (unsafe { sched::<T>(state) }) else { return VS_SCHED_BAD_PARAMETER };
        // SAFETY: the caller's promise.
        let Some(dests) = (unsafe { dests_from_c(dests, count) }) else { return VS_SCHED_TOO_MANY };
        sched_code(op(s, &dests))
    })
}

unsafe extern "C-unwind" fn add<T: PluginScheduler>(
    state: *mut c_void,
    dests: *const vs_sched_dest,
    count: usize,
    index: usize,
) -> i32 {
    // SAFETY: the host's state and array.
    unsafe { with_dests::<T>(state, dests, count, |s, d| s.add_dest(d, index)) }
}

unsafe extern "C-unwind" fn del<T: PluginScheduler>(
    state: *mut c_void,
    dests: *const vs_sched_dest,
    count: usize,
    removed: *const vs_sched_dest,
    index: usize,
) {
    contained((), || {
        // SAFETY: the host's state, array and removed destination.
        let (Some(s), Some(dests), Some(removed)) =
            (unsafe { sched::<T>(state) }, unsafe { dests_from_c(dests, count) }, unsafe { removed.as_ref() })
        else {
            return;
        };
        s.del_dest(&dests, &removed.to_dest(), index);
    });
}

unsafe extern "C-unwind" fn upd<T: PluginScheduler>(
    state: *mut c_void,
    dests: *const vs_sched_dest,
    count: usize,
    index: usize,
) -> i32 {
    // SAFETY: the host's state and array.
    unsafe { with_dests::<T>(state, dests, count, |s, d| s.upd_dest(d, index)) }
}

unsafe extern "C-unwind" fn schedule<T: PluginScheduler>(
    state: *mut c_void,
    dests: *const vs_sched_dest,
    count: usize,
    packet: *const vs_sched_packet,
    now_ms: u64,
) -> i64 {
    contained(-1, || {
        // SAFETY: the host's state, array and packet.
        let (Some(s), Some(dests), Some(packet)) =
            (unsafe { sched::<T>(state) }, unsafe { dests_from_c(dests, count) }, unsafe { packet.as_ref() })
        else {
            return -1;
        };
        s.schedule(&dests, &packet.to_info(), now_ms).and_then(|i| i64::try_from(i).ok()).unwrap_or(-1)
    })
}

/// The operations table for `T`.
#[must_use]
pub const fn ops<T: PluginScheduler>() -> vs_sched_ops {
    vs_sched_ops {
        abi_major: VS_PLUGIN_ABI_MAJOR,
        struct_size: size_of::<vs_sched_ops>() as u32,
        name: T::NAME.as_ptr(),
        init_service: Some(init::<T>),
        done_service: Some(done::<T>),
        add_dest: Some(add::<T>),
        del_dest: Some(del::<T>),
        upd_dest: Some(upd::<T>),
        schedule: Some(schedule::<T>),
        reserved: [core::ptr::null(); 8],
    }
}

/// Exports a [`PluginScheduler`] as this shared library's scheduler plugin: defines the
/// `vs_sched_plugin_v1` entry point returning its operations table.
#[macro_export]
macro_rules! export_scheduler {
    ($ty:ty) => {
        /// The plugin's entry point: its operations table, or NULL for a host of another ABI.
        #[unsafe(no_mangle)]
        pub extern "C" fn vs_sched_plugin_v1(host_abi_major: u32) -> *const $crate::vs_sched_ops {
            static OPS: $crate::StaticOps = $crate::StaticOps($crate::export::ops::<$ty>());
            if host_abi_major == $crate::VS_PLUGIN_ABI_MAJOR { &OPS.0 } else { ::core::ptr::null() }
        }
    };
}
