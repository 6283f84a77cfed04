//! Links the firmware as a freestanding static executable: no C runtime start files, no libc,
//! no dynamic loader. Anything that pulls in libc or an allocator fails to link.

fn main() {
    // With defmt, gather the interned log strings into the `.defmt` section the decoder reads
    // from the ELF, inserted into the default layout.
    println!("cargo::rerun-if-changed=defmt-insert.x");
    if std::env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("defmt-insert.x");
        println!("cargo::rustc-link-arg-bins=-T{}", script.display());
    }
    for arg in ["-nostartfiles", "-nostdlib", "-static", "-Wl,--gc-sections", "-Wl,--build-id=none"] {
        println!("cargo::rustc-link-arg-bins={arg}");
    }
}
