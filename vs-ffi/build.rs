//! Generates `vs.pc` (pkg-config) next to the built libraries, pointing at them and at the
//! committed header, so that C builds can use `pkg-config --cflags --libs vs`. Set `VS_PREFIX`
//! to generate one for an installed layout (`$VS_PREFIX/lib`, `$VS_PREFIX/include`) instead.

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
    // A static Rust library with std needs these system libraries when it is linked into C.
    let pc = format!(
        "libdir={libdir}\nincludedir={includedir}\n\nName: vs\nDescription: Embeddable IPVS dataplane (C ABI)\n\
         Version: {version}\nLibs: -L${{libdir}} -lvs_ffi\nLibs.private: -lpthread -ldl -lm -lgcc_s -lc\n\
         Cflags: -I${{includedir}}\n"
    );
    let _ = fs::write(out_dir.join("vs.pc"), &pc);
    let _ = fs::write(profile_dir.join("vs.pc"), &pc);
}

fn display(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
