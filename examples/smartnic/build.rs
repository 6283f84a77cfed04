//! Links the firmware as a freestanding static executable: no C runtime start files, no libc,
//! no dynamic loader. Anything that pulls in libc or an allocator fails to link.

fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-Wl,--gc-sections", "-Wl,--build-id=none"] {
        println!("cargo::rustc-link-arg-bins={arg}");
    }
}
