//! The board-support shim: the only code that touches the host. Here the "board" is a Linux
//! process: raw system calls, a `_start` that sets up nothing but the stack alignment, and the
//! memory primitives a C runtime would provide.
#![allow(unsafe_code)]

use core::arch::{asm, global_asm};

// The entry point: the kernel leaves the stack 16-byte aligned at _start; keep it so and call
// into Rust, then exit with its status.
global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call firmware_main",
    "mov edi, eax",
    "mov eax, 231", // exit_group
    "syscall",
    "ud2",
);

const SYS_READ: usize = 0;
const SYS_WRITE: usize = 1;
const SYS_EXIT_GROUP: usize = 231;

/// read(2): bytes read, 0 at end of input, or a negative errno.
pub(crate) fn read(fd: usize, buf: &mut [u8]) -> isize {
    let ret: isize;
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    unsafe {
        asm!("syscall", inlateout("rax") SYS_READ => ret, in("rdi") fd, in("rsi") buf.as_mut_ptr(), in("rdx") buf.len(),
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

/// write(2).
pub(crate) fn write(fd: usize, buf: &[u8]) -> isize {
    let ret: isize;
    // SAFETY: the kernel reads at most buf.len() bytes from buf.
    unsafe {
        asm!("syscall", inlateout("rax") SYS_WRITE => ret, in("rdi") fd, in("rsi") buf.as_ptr(), in("rdx") buf.len(),
             lateout("rcx") _, lateout("r11") _, options(nostack, readonly));
    }
    ret
}

/// Writes everything (retrying short writes); false when the descriptor refuses.
pub(crate) fn write_all(fd: usize, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        let n = write(fd, buf);
        if n <= 0 {
            return false;
        }
        buf = buf.get(n as usize..).unwrap_or(&[]);
    }
    true
}

/// exit_group(2).
pub(crate) fn exit(status: i32) -> ! {
    // SAFETY: ends the process.
    unsafe {
        asm!("syscall", in("rax") SYS_EXIT_GROUP, in("rdi") status as isize, options(noreturn, nostack));
    }
}

// Memory primitives (a C runtime's job; the compiler and the engine call them).
#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract (non-overlapping, valid for n bytes).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack, preserves_flags))
    };
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: no overlap in the forward direction.
        return unsafe { memcpy(dst, src, n) };
    }
    // Overlapping with dst after src: copy backwards.
    // SAFETY: the caller's contract; std/cld bracket the backward copy.
    unsafe {
        asm!("std", "rep movsb", "cld", inout("rcx") n => _, inout("rdi") dst.add(n).wrapping_sub(1) => _,
             inout("rsi") src.add(n).wrapping_sub(1) => _, options(nostack));
    }
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memset(dst: *mut u8, value: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") value as u8, options(nostack, preserves_flags))
    };
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller's contract; volatile keeps the loop from being turned into a call
        // to memcmp itself.
        let (x, y) = unsafe { (core::ptr::read_volatile(a.add(i)), core::ptr::read_volatile(b.add(i))) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller's contract: a NUL-terminated string.
    while unsafe { core::ptr::read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}
