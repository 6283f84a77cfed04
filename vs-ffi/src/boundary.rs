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

/// A structure C hands in that carries its own size, so that the layout can grow by appending
/// fields: callers built against an older header pass a smaller `struct_size`.
///
/// # Safety
/// Implementors start with `struct_size: u32`, and every field accepts any bit pattern
/// (integers, byte arrays, raw pointers, optional function pointers; no `bool`, enum or
/// reference), so that a value assembled from a caller's bytes over the defaults is valid.
pub(crate) unsafe trait Versioned: Copy {
    /// The size of the first published layout: no caller's structure is smaller.
    const FIRST_SIZE: usize;
    /// The value of every field a caller's (older) structure does not reach.
    fn defaults() -> Self;
}

/// Reads a [`Versioned`] structure the way versioned C APIs do (Linux's
/// `copy_struct_from_user`): `struct_size` is read first and nothing beyond it; a smaller
/// structure (an older caller, at least [`Versioned::FIRST_SIZE`]) is read as far as it goes
/// over [`Versioned::defaults`]; a larger one (a newer caller) is accepted only when every byte
/// this library does not know is zero. Other sizes are `VS_ERR_STRUCT_SIZE`.
pub(crate) fn versioned_in<T: Versioned>(p: *const T) -> Result<T, vs_status> {
    if p.is_null() {
        return Err(vs_status::VS_ERR_NULL);
    }
    if !p.is_aligned() {
        return Err(vs_status::VS_ERR_INVALID);
    }
    // SAFETY: non-null and aligned for T, hence for its leading u32 (the Versioned contract);
    // every version of the structure has that field.
    let size = usize::try_from(unsafe { p.cast::<u32>().read() }).map_err(|_| vs_status::VS_ERR_STRUCT_SIZE)?;
    let ours = size_of::<T>();
    if size < T::FIRST_SIZE.max(size_of::<u32>()) || size > isize::MAX as usize {
        return Err(vs_status::VS_ERR_STRUCT_SIZE);
    }
    let bytes = p.cast::<u8>();
    if size > ours {
        // SAFETY: the caller promises `struct_size` readable bytes.
        let unknown = unsafe { core::slice::from_raw_parts(bytes.add(ours), size - ours) };
        if unknown.iter().any(|b| *b != 0) {
            return Err(vs_status::VS_ERR_STRUCT_SIZE);
        }
    }
    let mut value = T::defaults();
    // SAFETY: at most `struct_size` bytes the caller promises readable, into `value`, whose
    // fields accept any bytes (the Versioned contract); the regions cannot overlap.
    unsafe { core::ptr::copy_nonoverlapping(bytes, (&raw mut value).cast::<u8>(), size.min(ours)) };
    Ok(value)
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
    // The live mark is read through the raw pointer first: a foreign or freed pointer is
    // refused after reading its first 8 bytes, before any reference to the whole handle exists.
    // SAFETY: non-null and aligned; the caller promises at least a readable handle-sized
    // object (a handle from vs_engine_init / vs_engine_new, live or ended).
    if !unsafe { vs_engine::is_live_raw(engine) } {
        return Err(vs_status::VS_ERR_INVALID);
    }
    // SAFETY: a live handle, which the caller promises no other thread uses at the same time.
    Ok(unsafe { &mut *engine })
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
    ///
    /// # Safety
    /// Pointer arguments are NULL or valid for the call as the header describes them.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn vs_set_panic_hook(hook: vs_panic_hook, user: *mut c_void) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A structure in its second version: `b` was appended to a first version of 8 bytes.
    #[repr(C)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Grown {
        struct_size: u32,
        a: u32,
        b: u32,
    }

    // SAFETY: `struct_size` first; integers only.
    unsafe impl Versioned for Grown {
        const FIRST_SIZE: usize = 8;
        fn defaults() -> Self {
            Grown { struct_size: 12, a: 1, b: 7 }
        }
    }

    /// Reads a caller's structure given as words (the first is its size in bytes), from memory
    /// holding exactly those words.
    fn read(words: &[u32]) -> Result<Grown, vs_status> {
        let caller = words.to_vec().into_boxed_slice();
        versioned_in(caller.as_ptr().cast::<Grown>())
    }

    #[test]
    fn versioned_structures_are_read_as_far_as_their_size_says() {
        // An older caller: `b` takes its default, and nothing past 8 bytes is read.
        assert_eq!(read(&[8, 5]), Ok(Grown { struct_size: 8, a: 5, b: 7 }));
        assert_eq!(read(&[12, 5, 6]), Ok(Grown { struct_size: 12, a: 5, b: 6 }));
        // A newer caller that leaves its new fields zero, or not.
        assert_eq!(read(&[16, 5, 6, 0]), Ok(Grown { struct_size: 16, a: 5, b: 6 }));
        assert_eq!(read(&[16, 5, 6, 1]), Err(vs_status::VS_ERR_STRUCT_SIZE));
        // Smaller than any version, or than the size field.
        assert_eq!(read(&[4, 5]), Err(vs_status::VS_ERR_STRUCT_SIZE));
        assert_eq!(read(&[0]), Err(vs_status::VS_ERR_STRUCT_SIZE));
        assert_eq!(versioned_in::<Grown>(core::ptr::null()), Err(vs_status::VS_ERR_NULL));
        let words = [0u32; 8];
        let misaligned = words.as_ptr().cast::<u8>().wrapping_add(1).cast::<Grown>();
        assert_eq!(versioned_in(misaligned), Err(vs_status::VS_ERR_INVALID));
    }
}
