//! Link the freestanding binary without the C runtime's start files and statically: libc only
//! supplies `memcpy`, `memset` and friends that `core` calls (with libgcc, which static libc needs). rustc asks for a PIE; `-no-pie`
//! and `-Wl,-Bstatic` (both after rustc's own arguments) turn that into a plain static link.
fn main() {
    for arg in [
        "-nostartfiles",
        "-no-pie",
        "-static",
        "-Wl,-Bstatic",
        "-Wl,--start-group",
        "-lc",
        "-lgcc",
        "-lgcc_eh",
        "-Wl,--end-group",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
