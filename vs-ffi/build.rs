//! Generates `vs.pc` and `vs-static.pc` (pkg-config) next to the built libraries, pointing at
//! them and at the committed header: `pkg-config --cflags --libs vs` links the shared library
//! with a run path to its directory (the program runs without `LD_LIBRARY_PATH`),
//! `pkg-config --cflags --libs vs-static` links the static library and the system libraries it
//! needs. Set `VS_PREFIX` to generate them for an installed layout (`$VS_PREFIX/lib`,
//! `$VS_PREFIX/include`, no run path: run `ldconfig` after installing) instead.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-env-changed=VS_PREFIX");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/vs-ffi-<hash>/out: the libraries land in <target>/<profile>.
    let Some(profile_dir) = out_dir.ancestors().nth(3) else { return };
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let include = manifest.parent().unwrap_or(&manifest).join("include");
    let (libdir, includedir) = match env::var("VS_PREFIX") {
        Ok(prefix) => (format!("{prefix}/lib"), format!("{prefix}/include")),
        Err(_) => (display(profile_dir), display(&include)),
    };
    let version = env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let rpath = if env::var("VS_PREFIX").is_ok() { String::new() } else { " -Wl,-rpath,${libdir}".to_owned() };
    // What a static Rust library with std needs from the system when it is linked into C
    // (`rustc --print native-static-libs` for this target).
    let system = "-ldl -lgcc_s -lutil -lrt -lpthread -lm -lc";
    let head = format!("libdir={libdir}\nincludedir={includedir}\n\n");
    let shared = format!(
        "{head}Name: vs\nDescription: Embeddable IPVS dataplane (C ABI)\nVersion: {version}\n\
         Libs: -L${{libdir}}{rpath} -lvs_ffi\nLibs.private: {system}\nCflags: -I${{includedir}}\n"
    );
    let fixed = format!(
        "{head}Name: vs-static\nDescription: Embeddable IPVS dataplane (C ABI), static library\n\
         Version: {version}\nLibs: ${{libdir}}/libvs_ffi.a {system}\nCflags: -I${{includedir}}\n"
    );
    for dir in [out_dir.as_path(), profile_dir] {
        let _ = fs::write(dir.join("vs.pc"), &shared);
        let _ = fs::write(dir.join("vs-static.pc"), &fixed);
    }
}

fn display(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
