//! The C ABI from real C and C++ compilers: the C suite (`tests/c/test_vs.c`) linked against
//! the static and the shared library, a C++17 translation unit, and the header's declarations
//! against both libraries' exported symbols.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Where the C libraries are: `cargo test` builds this crate only as an rlib for its tests, so
/// the static and shared libraries are built here once, into a target directory of their own
/// (the outer cargo holds the lock on the main one).
fn lib_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ffi-build");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            run(Command::new(cargo)
                .args(["build", "--quiet", "--offline", "-p", "vs-ffi", "--target-dir"])
                .arg(&target)
                .current_dir(crate_dir()));
            target.join("debug")
        })
        .clone()
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn include_dir() -> PathBuf {
    crate_dir().join("../include")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{text}", out.status);
    text
}

const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"];

/// Builds the C suite against `link` (the library arguments) and runs it: every check passes.
fn c_suite(name: &str, link: &[String]) -> u32 {
    c_suite_with(name, &[], link, &[])
}

/// As [`c_suite`], with extra compiler flags, and the program run under `runner` (a command
/// that takes the program as its last argument, e.g. valgrind) when one is given.
fn c_suite_with(name: &str, cflags: &[&str], link: &[String], runner: &[&str]) -> u32 {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let exe = out_dir.join(name);
    run(Command::new("gcc")
        .args(C_FLAGS)
        .args(cflags)
        .arg("-I")
        .arg(include_dir())
        .arg(crate_dir().join("tests/c/test_vs.c"))
        .args(link)
        .arg("-o")
        .arg(&exe));
    let mut cmd = match runner.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    // cargo puts its own deps directories on LD_LIBRARY_PATH, which outranks the executable's
    // RUNPATH: without this the shared-library run could load a stale libvs_ffi.so from there.
    let output = run(cmd.env_remove("LD_LIBRARY_PATH"));
    eprintln!("{name}: {output}");
    let summary = output.lines().last().unwrap_or_default();
    assert!(summary.contains(" 0 failures"), "{name}: {output}");
    summary.split_whitespace().next().and_then(|n| n.parse().ok()).expect("check count")
}

#[test]
fn c_suite_against_the_static_library() {
    assert!(lib_dir().join("libvs_ffi.a").exists(), "libvs_ffi.a not built");
    let checks = c_suite("test_vs_static", &static_link());
    assert!(checks >= 250, "only {checks} checks ran");
}

#[test]
fn c_suite_against_the_shared_library() {
    let dir = lib_dir();
    assert!(dir.join("libvs_ffi.so").exists(), "libvs_ffi.so not built");
    let link = [format!("-L{}", dir.display()), "-lvs_ffi".into(), format!("-Wl,-rpath,{}", dir.display())];
    let checks = c_suite("test_vs_shared", &link);
    assert!(checks >= 250, "only {checks} checks ran");
}

/// The static library with its system libraries, as a C program links it.
fn static_link() -> Vec<String> {
    let lib = lib_dir().join("libvs_ffi.a");
    vec![lib.display().to_string(), "-lpthread".into(), "-ldl".into(), "-lm".into()]
}

/// The C suite (misuse included) built with AddressSanitizer and UndefinedBehaviorSanitizer:
/// any error they find in the C side's use of the library, or in memory the library reads and
/// writes for C (allocations are the sanitizer's), stops the program and fails the test.
#[test]
fn c_suite_under_address_and_undefined_behaviour_sanitizers() {
    let flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"];
    // Leak checking stays on: the suite frees what it allocates.
    let checks = c_suite_with("test_vs_sanitized", &flags, &static_link(), &[]);
    assert!(checks >= 250, "only {checks} checks ran");
}

/// The C suite under valgrind's memcheck, which sees every access the library itself makes
/// (reads past a caller's structure, uninitialised values, leaks): any error fails the run.
#[test]
fn c_suite_under_valgrind() {
    if std::process::Command::new("valgrind").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "valgrind is missing (.ci/run installs it)");
        eprintln!("SKIP: valgrind is not installed");
        return;
    }
    let runner = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite", "-q"];
    let checks = c_suite_with("test_vs_valgrind", &[], &static_link(), &runner);
    assert!(checks >= 250, "only {checks} checks ran");
}

#[test]
fn cpp17_translation_unit_compiles() {
    let obj = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("header_check.o");
    run(Command::new("g++")
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", "-I"])
        .arg(include_dir())
        .arg(crate_dir().join("tests/cpp/header_check.cpp"))
        .arg("-o")
        .arg(obj));
}

#[test]
fn firmware_declarations_compile_as_c() {
    // With VS_NO_STD the header declares the no_std build's functions instead of the std ones.
    let src = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nostd_header.c");
    std::fs::write(
        &src,
        "#include \"vs.h\"\nstatic void hook(const char *m, size_t n, void *u) { (void)m; (void)n; (void)u; }\n\
         void setup(void) { vs_set_panic_hook(hook, 0); }\n",
    )
    .expect("write");
    run(Command::new("gcc")
        .args(C_FLAGS)
        .args(["-DVS_NO_STD", "-c", "-I"])
        .arg(include_dir())
        .arg(&src)
        .arg("-o")
        .arg(src.with_extension("o")));
}

/// The functions the header declares without extra defines.
fn declared_functions() -> Vec<String> {
    let header = std::fs::read_to_string(include_dir().join("vs.h")).expect("read vs.h");
    let mut names = Vec::new();
    let mut nostd_block = false;
    for line in header.lines() {
        if line.starts_with("#if !defined(VS_STD)") {
            nostd_block = true;
        } else if line.starts_with("#endif") {
            nostd_block = false;
        } else if !nostd_block
            && !line.starts_with(' ')
            && !line.starts_with("typedef")
            && let Some(open) = line.find('(')
            && line.ends_with(");")
        {
            let name = line.get(..open).unwrap_or_default().rsplit([' ', '*']).next().unwrap_or_default();
            names.push(name.to_string());
        }
    }
    names
}

#[test]
fn every_declared_function_is_exported_by_both_libraries() {
    let declared = declared_functions();
    assert!(declared.len() >= 30, "found only {} declarations", declared.len());
    let dir = lib_dir();
    let shared = run(Command::new("nm").args(["-D", "--defined-only"]).arg(dir.join("libvs_ffi.so")));
    let archive = run(Command::new("nm").args(["-g", "--defined-only"]).arg(dir.join("libvs_ffi.a")));
    for name in &declared {
        let exported = |table: &str| table.lines().any(|l| l.ends_with(&format!(" T {name}")));
        assert!(exported(&shared), "{name} is not exported by libvs_ffi.so");
        assert!(exported(&archive), "{name} is not exported by libvs_ffi.a");
    }
}

#[test]
fn the_build_writes_a_pkg_config_file() {
    let pc = std::fs::read_to_string(lib_dir().join("vs.pc")).expect("vs.pc next to the libraries");
    assert!(pc.contains("Name: vs\n") && pc.contains("Libs: -L${libdir} -Wl,-rpath,${libdir} -lvs_ffi"), "{pc}");
    let includedir = pc.lines().find_map(|l| l.strip_prefix("includedir=")).expect("includedir");
    assert!(PathBuf::from(includedir).join("vs.h").exists(), "includedir {includedir} has no vs.h");
    assert!(pc.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))));
}

/// The C example (`examples/nat.c`) built the way the README says: flags from pkg-config, the
/// shared library found through the run path `vs.pc` gives (no `LD_LIBRARY_PATH`), and the
/// static library through `vs-static.pc`; both programs run and print the NAT decision (rr
/// starts with the most recently added server, as IPVS's list order has it).
#[test]
fn the_c_example_builds_with_pkg_config_and_runs() {
    let dir = lib_dir();
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for package in ["vs", "vs-static"] {
        let flags = run(Command::new("pkg-config").env("PKG_CONFIG_PATH", &dir).args(["--cflags", "--libs", package]));
        let exe = out_dir.join(format!("nat-{package}"));
        run(Command::new("gcc")
            .args(C_FLAGS)
            .arg(crate_dir().join("examples/nat.c"))
            .args(flags.split_whitespace())
            .arg("-o")
            .arg(&exe));
        let output = run(Command::new(&exe).env_remove("LD_LIBRARY_PATH"));
        assert!(
            output.contains("transmit to 198.18.1.2 on port 0: 198.18.0.1:40000 -> 198.18.1.2:8080"),
            "{package}: {output}"
        );
        assert!(output.contains("connection SYN_RECV, expires in 60 s"), "{package}: {output}");
        let dynamic = run(Command::new("readelf").arg("-d").arg(&exe));
        assert_eq!(dynamic.contains("libvs_ffi.so"), package == "vs", "{package}: {dynamic}");
    }
}
