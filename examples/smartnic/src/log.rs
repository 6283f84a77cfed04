//! defmt logging into a static ring: the firmware's log stays in its memory, as on a NIC
//! without a console, for the host (or a debugger) to read out and decode with the firmware's
//! ELF. Single-threaded firmware: no critical section is needed beyond the acquire flag.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::Static;

/// Bytes of log kept (the oldest are overwritten).
pub(crate) const LOG_BYTES: usize = 16 * 1024;

/// The ring and how many bytes were ever written (the write position is that modulo the size).
#[unsafe(no_mangle)]
pub(crate) static DEFMT_RING: Static<[u8; LOG_BYTES]> = Static::new([0; LOG_BYTES]);
#[unsafe(no_mangle)]
pub static DEFMT_WRITTEN: AtomicUsize = AtomicUsize::new(0);

static TAKEN: AtomicBool = AtomicBool::new(false);
static ENCODER: Static<defmt::Encoder> = Static::new(defmt::Encoder::new());

#[defmt::global_logger]
struct RingLogger;

fn put(bytes: &[u8]) {
    for &b in bytes {
        let at = DEFMT_WRITTEN.fetch_add(1, Ordering::Relaxed) % LOG_BYTES;
        // SAFETY: single-threaded firmware; the ring is only written here.
        unsafe { (*DEFMT_RING.get())[at] = b };
    }
}

// SAFETY: acquire/release bracket every frame and the flag refuses nesting, as defmt requires.
unsafe impl defmt::Logger for RingLogger {
    fn acquire() {
        if TAKEN.swap(true, Ordering::Acquire) {
            crate::bsp::exit(71);
        }
        // SAFETY: exclusive while TAKEN is held.
        unsafe { (*ENCODER.get()).start_frame(put) };
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // SAFETY: exclusive while TAKEN is held.
        unsafe { (*ENCODER.get()).end_frame(put) };
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: exclusive while TAKEN is held.
        unsafe { (*ENCODER.get()).write(bytes, put) };
    }
}

/// Packets seen so far: the log's timestamp (the firmware has no clock of its own).
pub(crate) static PACKETS: AtomicUsize = AtomicUsize::new(0);

defmt::timestamp!("{=usize}", PACKETS.load(Ordering::Relaxed));

/// Bytes logged so far.
pub(crate) fn written() -> usize {
    DEFMT_WRITTEN.load(Ordering::Relaxed)
}

/// Writes the ring's contents, oldest first, to file descriptor `fd` (the host's read-out;
/// nothing happens when the descriptor is not open).
pub(crate) fn dump(fd: usize) {
    let written = written();
    // SAFETY: single-threaded firmware; nothing logs while the ring is read.
    let ring = unsafe { &*DEFMT_RING.get() };
    if written > LOG_BYTES {
        let start = written % LOG_BYTES;
        let (older, newer) = ring.split_at(start);
        let _ = crate::bsp::write_all(fd, newer) && crate::bsp::write_all(fd, older);
    } else {
        crate::bsp::write_all(fd, ring.get(..written).unwrap_or(&[]));
    }
}
