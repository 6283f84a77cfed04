//! The connection table's memory: mapped once at start, from huge pages when the host has
//! them reserved (`vm.nr_hugepages`), else ordinary pages with transparent huge pages asked
//! for; either way locked in when the limits allow, and never resized.

use std::io;

/// 2 MiB, the x86-64 huge page.
const HUGE_PAGE: usize = 2 << 20;

/// Where the memory came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// Reserved huge pages (MAP_HUGETLB).
    HugePages,
    /// Ordinary pages (transparent huge pages requested with madvise).
    Pages,
}

impl std::fmt::Display for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backing::HugePages => f.write_str("2 MiB huge pages"),
            Backing::Pages => f.write_str(
                "ordinary pages (too few huge pages reserved: raise vm.nr_hugepages to use them; transparent huge pages requested)",
            ),
        }
    }
}

/// An anonymous mapping, zeroed, of at least the requested size.
#[derive(Debug)]
pub(crate) struct Mapped {
    ptr: *mut u8,
    len: usize,
    /// What backs it.
    pub(crate) backing: Backing,
}

// SAFETY: the mapping is owned by this value alone and only reached through it.
unsafe impl Send for Mapped {}

impl Mapped {
    /// Maps `len` bytes (rounded up to a huge page).
    pub(crate) fn new(len: usize) -> io::Result<Mapped> {
        let len = len.max(1).div_ceil(HUGE_PAGE) * HUGE_PAGE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        // SAFETY: an anonymous mapping with no address hint; checked below.
        let huge = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags | libc::MAP_HUGETLB, -1, 0)
        };
        if huge != libc::MAP_FAILED {
            return Ok(Mapped { ptr: huge.cast(), len, backing: Backing::HugePages });
        }
        // SAFETY: as above, ordinary pages.
        let plain = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if plain == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: advice on our own fresh mapping; failure only means no transparent huge pages.
        unsafe { libc::madvise(plain, len, libc::MADV_HUGEPAGE) };
        Ok(Mapped { ptr: plain.cast(), len, backing: Backing::Pages })
    }

    /// The bytes.
    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
