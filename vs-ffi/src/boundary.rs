//! The boundary: pointer checks, the engine handle's checks, and panics kept from crossing
//! into C (caught under `std`; under `no_std`, reported to the host's hook before stopping).

use core::ffi::{c_char, c_void};

use crate::engine::vs_engine;
use crate::status::vs_status;

/// A shared reference from a C pointer: NULL gives `VS_ERR_NULL`, a misaligned pointer
/// `VS_ERR_INVALID`.
pub(crate) fn ref_in<'a, T>(p: *const T) -> Result<&'a T, vs_status> {
    if p.is_null() {
        return Err(vs_status::VS_ERR_NULL);
    }
    if !p.is_aligned() {
        return Err(vs_status::VS_ERR_INVALID);
    }
    // SAFETY: non-null and aligned; the C caller promises it points to a live, initialised T
    // for the call (the header documents every pointer argument).
    Ok(unsafe { &*p })
}

/// Writes `value` through a C out-pointer, checked like [`ref_in`]. The target may be
/// uninitialised memory, hence a write rather than a reference.
pub(crate) fn write_out<T>(p: *mut T, value: T) -> Result<(), vs_status> {
    if p.is_null() {
        return Err(vs_status::VS_ERR_NULL);
    }
    if !p.is_aligned() {
        return Err(vs_status::VS_ERR_INVALID);
    }
    // SAFETY: non-null and aligned; the caller provides room for a T.
    unsafe { p.write(value) };
    Ok(())
}

/// A C array as a mutable slice: `len` 0 accepts NULL; otherwise checked like [`ref_in`].
pub(crate) fn slice_out<'a, T>(p: *mut T, len: usize) -> Result<&'a mut [T], vs_status> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(vs_status::VS_ERR_NULL);
    }
    if !p.is_aligned() || len.checked_mul(size_of::<T>()).is_none_or(|n| n > isize::MAX as usize) {
        return Err(vs_status::VS_ERR_INVALID);
    }
    // SAFETY: non-null, aligned, the size fits; the caller promises `len` initialised,
    // exclusively lent elements.
    Ok(unsafe { core::slice::from_raw_parts_mut(p, len) })
}

/// Checks a configuration structure's `struct_size` against this build's.
pub(crate) fn check_size<T>(struct_size: u32) -> Result<(), vs_status> {
    if usize::try_from(struct_size).ok() == Some(size_of::<T>()) { Ok(()) } else { Err(vs_status::VS_ERR_STRUCT_SIZE) }
}

/// Runs `f` so that no panic leaves it: under `std` a panic becomes `VS_ERR_PANIC`.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), vs_status>) -> vs_status {
    #[cfg(feature = "std")]
    {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(result) => crate::status::status_of(result),
            Err(_) => vs_status::VS_ERR_PANIC,
        }
    }
    #[cfg(not(feature = "std"))]
    {
        crate::status::status_of(f())
    }
}

/// The handle behind a C pointer: NULL, a misaligned pointer and a pointer that is not a live
/// engine (or a freed one) are refused.
fn handle_of<'a>(engine: *mut vs_engine) -> Result<&'a mut vs_engine, vs_status> {
    if engine.is_null() {
        return Err(vs_status::VS_ERR_NULL);
    }
    if !engine.is_aligned() {
        return Err(vs_status::VS_ERR_INVALID);
    }
    // SAFETY: non-null and aligned; the C caller promises a handle from vs_engine_init /
    // vs_engine_new that no other thread uses at the same time.
    let handle = unsafe { &mut *engine };
    if handle.is_live() { Ok(handle) } else { Err(vs_status::VS_ERR_INVALID) }
}

/// Runs `f` on a live engine handle; a poisoned engine is refused and a panic inside poisons
/// the engine.
pub(crate) fn with_engine(
    engine: *mut vs_engine,
    f: impl FnOnce(&mut vs_engine) -> Result<(), vs_status>,
) -> vs_status {
    let status = guard(|| {
        let handle = handle_of(engine)?;
        if handle.poisoned {
            return Err(vs_status::VS_ERR_PANIC);
        }
        f(handle)
    });
    if status == vs_status::VS_ERR_PANIC
        && let Ok(handle) = handle_of(engine)
    {
        handle.poisoned = true;
    }
    status
}

/// As [`with_engine`] for calls a poisoned engine still answers (ending it).
pub(crate) fn with_engine_any(
    engine: *mut vs_engine,
    f: impl FnOnce(&mut vs_engine) -> Result<(), vs_status>,
) -> vs_status {
    guard(|| f(handle_of(engine)?))
}

/// The host's panic hook (no_std builds): it receives the panic message (not NUL-terminated)
/// and its length, and `user`; it should not return (reset, or stop the core). If it returns,
/// the library spins forever.
pub type vs_panic_hook = Option<unsafe extern "C" fn(message: *const c_char, len: usize, user: *mut c_void)>;

#[cfg(not(feature = "std"))]
mod nostd_panic {
    use core::ffi::{c_char, c_void};
    use core::sync::atomic::{AtomicPtr, Ordering};

    use super::vs_panic_hook;

    static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
    static USER: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

    /// Registers the function a panic calls before the library stops (no_std builds only;
    /// `std` builds return panics as `VS_ERR_PANIC` instead). NULL removes it.
    #[unsafe(no_mangle)]
    pub extern "C" fn vs_set_panic_hook(hook: vs_panic_hook, user: *mut c_void) {
        USER.store(user, Ordering::Release);
        HOOK.store(hook.map_or(core::ptr::null_mut(), |f| f as *mut ()), Ordering::Release);
    }

    /// A message buffer for `core::fmt` (truncates what does not fit).
    struct Message {
        bytes: [u8; 256],
        len: usize,
    }

    impl core::fmt::Write for Message {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for &b in s.as_bytes() {
                if let Some(slot) = self.bytes.get_mut(self.len) {
                    *slot = b;
                    self.len += 1;
                }
            }
            Ok(())
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let hook = HOOK.load(Ordering::Acquire);
        if !hook.is_null() {
            let mut message = Message { bytes: [0; 256], len: 0 };
            let _ = core::fmt::write(&mut message, format_args!("{info}"));
            // SAFETY: HOOK only ever holds a function pointer of the hook's type, stored by
            // vs_set_panic_hook.
            let hook: unsafe extern "C" fn(*const c_char, usize, *mut c_void) = unsafe { core::mem::transmute(hook) };
            // SAFETY: the host's function, called with a valid buffer and length.
            unsafe { hook(message.bytes.as_ptr().cast(), message.len, USER.load(Ordering::Acquire)) };
        }
        loop {
            core::hint::spin_loop();
        }
    }
}

#[cfg(not(feature = "std"))]
pub use nostd_panic::vs_set_panic_hook;

/// The unwinding personality the precompiled `core` refers to. Firmware builds abort on panic
/// (`profile.firmware`), so it is never called; defining it lets C firmware link the static
/// library without Rust's unwinder.
///
/// cbindgen:ignore
#[cfg(not(feature = "std"))]
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
