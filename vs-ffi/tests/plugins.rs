//! Scheduler plugins through the loader: the Rust `rdv` plugin (plugins/sched-rendezvous) and
//! the C `wrandom` plugin (plugins/sched-wrandom), built here, loaded with `vs_load_plugin`,
//! and judged by the real servers the engine sends new connections to.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use vs_ffi::*;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Rust plugin, built as the cdylib a user would ship.
fn rendezvous_plugin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = tmp().join("plugin-build");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            run(Command::new(cargo)
                .args(["build", "--quiet", "--offline", "-p", "vs-plugin-rendezvous", "--target-dir"])
                .arg(&target)
                .current_dir(root()));
            target.join("debug/libvs_plugin_rendezvous.so")
        })
        .clone()
}

/// The C plugin, built once per ABI `abi` (None: the header's); never rebuilt while loaded.
fn wrandom_plugin(abi: Option<u32>) -> PathBuf {
    static CURRENT: OnceLock<PathBuf> = OnceLock::new();
    static OTHER: OnceLock<PathBuf> = OnceLock::new();
    let cell = if abi.is_none() { &CURRENT } else { &OTHER };
    cell.get_or_init(|| build_wrandom(abi)).clone()
}

fn build_wrandom(abi: Option<u32>) -> PathBuf {
    let out = tmp().join(format!("libvs_sched_wrandom{}.so", abi.map_or(String::new(), |a| format!("-abi{a}"))));
    let mut cmd = Command::new("gcc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-fPIC", "-shared", "-I"])
        .arg(root().join("include"))
        .arg(root().join("plugins/sched-wrandom/wrandom.c"))
        .arg("-o")
        .arg(&out);
    if let Some(abi) = abi {
        cmd.arg(format!("-DWRANDOM_ABI={abi}"));
    }
    run(&mut cmd);
    out
}

struct Engine(*mut vs_engine);

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: made by vs_engine_new, not used after.
        assert_eq!(unsafe { vs_engine_free(self.0) }, vs_status::VS_OK);
    }
}

fn engine() -> Engine {
    let limits = vs_limits { struct_size: size_of::<vs_limits>() as u32, max_conns: 65536, max_services: 4 };
    let mut e = std::ptr::null_mut();
    // SAFETY: valid limits and out-pointer; no configuration (the defaults).
    assert_eq!(unsafe { vs_engine_new(&limits, std::ptr::null(), &mut e) }, vs_status::VS_OK);
    Engine(e)
}

fn load(e: &Engine, path: &std::path::Path) -> vs_status {
    let path = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path to a library built by this test.
    unsafe { vs_load_plugin(e.0, path.as_ptr()) }
}

fn key() -> vs_service_key {
    vs_service_key {
        protocol: 6,
        addr: std::net::IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)).into(),
        port: 80,
        fwmark: 0,
    }
}

fn add_service(e: &Engine, sched: &std::ffi::CStr, weights: &[u32]) {
    let mut sc = std::mem::MaybeUninit::uninit();
    // SAFETY: room for one configuration.
    assert_eq!(unsafe { vs_service_config_default(sc.as_mut_ptr()) }, vs_status::VS_OK);
    // SAFETY: initialised by the call above.
    let mut sc = unsafe { sc.assume_init() };
    sc.scheduler = sched.as_ptr();
    // SAFETY: a live engine, a key and a configuration naming a NUL-terminated scheduler.
    assert_eq!(unsafe { vs_service_add(e.0, &key(), &sc) }, vs_status::VS_OK);
    for (i, &w) in weights.iter().enumerate() {
        set_real(e, i as u8 + 1, Some(w));
    }
}

/// Adds (or, with `None`, removes) real server 198.18.1.`n`:80.
fn set_real(e: &Engine, n: u8, weight: Option<u32>) {
    let addr: vs_addr = std::net::IpAddr::V4(Ipv4Addr::new(198, 18, 1, n)).into();
    let status = match weight {
        Some(weight) => {
            let rc = vs_real_config {
                struct_size: size_of::<vs_real_config>() as u32,
                addr,
                port: 80,
                forward: VS_FWD_NAT,
                weight,
                upper_threshold: 0,
                lower_threshold: 0,
            };
            // SAFETY: a live engine, a key and a real server.
            unsafe { vs_real_add(e.0, &key(), &rc) }
        }
        // SAFETY: a live engine, a key and an address.
        None => unsafe { vs_real_delete(e.0, &key(), &addr, 80) },
    };
    assert_eq!(status, vs_status::VS_OK);
}

/// Sends a TCP SYN from `client`:`port` to the VIP (bare IPv4 is not configured: Ethernet) and
/// returns the last byte of the real server's address it was sent to.
fn connect(e: &Engine, client: Ipv4Addr, port: u16) -> Option<u8> {
    let mut frame = [0u8; 128];
    frame[12] = 0x08;
    let ip = &mut frame[14..54];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&client.octets());
    ip[16..20].copy_from_slice(&[198, 18, 0, 10]);
    ip[20..22].copy_from_slice(&port.to_be_bytes());
    ip[22..24].copy_from_slice(&80u16.to_be_bytes());
    ip[32] = 0x50;
    ip[33] = 0x02;
    let mut packet = vs_packet { data: frame.as_mut_ptr(), capacity: frame.len(), head: 0, len: 54, mark: 0 };
    let mut verdict = vs_verdict::default();
    unsafe extern "C" fn any_neighbour(_: *mut std::ffi::c_void, _: *const vs_addr, _: *mut u8, _: *mut u16) -> bool {
        true
    }
    // SAFETY: a valid packet in `frame`.
    let status = unsafe { vs_process(e.0, &mut packet, 1000, Some(any_neighbour), std::ptr::null_mut(), &mut verdict) };
    assert_eq!(status, vs_status::VS_OK);
    (verdict.action == VS_TRANSMIT).then(|| frame[14 + 19])
}

fn client(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xc613_0000 + i) // 198.19.x.y
}

#[test]
fn rendezvous_keeps_clients_put_when_servers_change() {
    let e = engine();
    assert_eq!(load(&e, &rendezvous_plugin()), vs_status::VS_OK);
    add_service(&e, c"rdv", &[1, 1, 1, 1]);
    let mut services = [std::mem::MaybeUninit::<vs_service_info>::uninit(); 1];
    let mut n = 0;
    // SAFETY: room for one entry and the count.
    assert_eq!(unsafe { vs_service_list(e.0, services[0].as_mut_ptr(), 1, &mut n) }, vs_status::VS_OK);
    // SAFETY: one entry written.
    let info = unsafe { services[0].assume_init() };
    // SAFETY: a NUL-terminated name field.
    assert_eq!(unsafe { std::ffi::CStr::from_ptr(info.scheduler.as_ptr()) }, c"rdv");

    let before: Vec<u8> = (0..1000).map(|i| connect(&e, client(i), 1000).expect("scheduled")).collect();
    // The same client from another port: the same server (the port is not hashed).
    for i in 0..1000 {
        assert_eq!(connect(&e, client(i), 2000), Some(before[i as usize]));
    }
    let mut counts = [0; 5];
    for &r in &before {
        counts[usize::from(r)] += 1;
    }
    assert!(counts[1..].iter().all(|&c| (180..=320).contains(&c)), "uneven: {counts:?}");

    // Remove server 3: only its clients move.
    set_real(&e, 3, None);
    for i in 0..1000 {
        let now = connect(&e, client(i), 3000).expect("scheduled");
        if before[i as usize] == 3 {
            assert_ne!(now, 3);
        } else {
            assert_eq!(now, before[i as usize], "client {i} moved");
        }
    }
    // Add server 5: clients move only to it.
    set_real(&e, 5, Some(1));
    let mut moved = 0;
    for i in 0..1000 {
        let now = connect(&e, client(i), 4000).expect("scheduled");
        let was = if before[i as usize] == 3 { now } else { before[i as usize] };
        if now != was {
            assert_eq!(now, 5);
            moved += 1;
        }
    }
    assert!((120..=280).contains(&moved), "{moved} clients moved to the new server");
}

#[test]
fn wrandom_draws_by_weight() {
    let e = engine();
    assert_eq!(load(&e, &wrandom_plugin(None)), vs_status::VS_OK);
    add_service(&e, c"wrandom", &[1, 3, 0]);
    let mut counts = [0u32; 4];
    for i in 0..4000 {
        counts[usize::from(connect(&e, client(i), 1000).expect("scheduled"))] += 1;
    }
    assert_eq!(counts[3], 0, "weight 0 drawn: {counts:?}");
    assert!((850..=1150).contains(&counts[1]) && (2850..=3150).contains(&counts[2]), "{counts:?}");
    // Flags it does not know are refused at service creation.
    let mut sc = std::mem::MaybeUninit::uninit();
    // SAFETY: room for one configuration.
    unsafe { vs_service_config_default(sc.as_mut_ptr()) };
    // SAFETY: initialised above.
    let mut sc = unsafe { sc.assume_init() };
    sc.scheduler = c"wrandom".as_ptr();
    sc.sched_flags = VS_SCHED_FLAG_1;
    let mut other = key();
    other.port = 81;
    // SAFETY: a live engine, a key and a configuration naming a NUL-terminated scheduler.
    assert_eq!(unsafe { vs_service_add(e.0, &other, &sc) }, vs_status::VS_ERR_SCHED_PARAMETER);
}

#[test]
fn the_loader_refuses_what_is_not_a_current_plugin() {
    let e = engine();
    assert_eq!(load(&e, &wrandom_plugin(Some(99))), vs_status::VS_ERR_PLUGIN_ABI);
    assert_eq!(load(&e, &tmp().join("no-such-plugin.so")), vs_status::VS_ERR_PLUGIN_LOAD);
    // A shared library without the entry symbol.
    let other = tmp().join("libnot_a_plugin.so");
    std::fs::write(tmp().join("not_a_plugin.c"), "int answer(void) { return 42; }\n").unwrap();
    run(Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&other).arg(tmp().join("not_a_plugin.c")));
    assert_eq!(load(&e, &other), vs_status::VS_ERR_PLUGIN_LOAD);
    // Loading one twice into an engine: the name is taken.
    assert_eq!(load(&e, &wrandom_plugin(None)), vs_status::VS_OK);
    assert_eq!(load(&e, &wrandom_plugin(None)), vs_status::VS_ERR_EXISTS);
    // SAFETY: NULL is allowed (and refused).
    assert_eq!(unsafe { vs_load_plugin(e.0, std::ptr::null()) }, vs_status::VS_ERR_NULL);
}

/// The C++ plugin whose `schedule` throws.
fn thrower_plugin() -> PathBuf {
    let out = tmp().join("libvs_sched_thrower.so");
    run(Command::new("g++")
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-I"])
        .arg(root().join("include"))
        .arg(root().join("vs-ffi/tests/cpp/thrower.cpp"))
        .arg("-o")
        .arg(&out));
    out
}

/// A plugin that throws (C++) stops the process with an abort: its functions are `C-unwind`,
/// so the exception reaches the library's panic guard, which aborts, instead of unwinding
/// through frames declared not to unwind (undefined behaviour: with plain `C` declarations
/// this run happened to abort too, so the test pins the promise rather than catching the old
/// declarations). Run in a child process.
#[test]
fn a_plugin_that_throws_stops_the_process() {
    const CHILD: &str = "VS_THROWING_PLUGIN_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let e = engine();
        assert_eq!(load(&e, &tmp().join("libvs_sched_thrower.so")), vs_status::VS_OK);
        add_service(&e, c"thrower", &[1]);
        let verdict = connect(&e, client(1), 1000);
        eprintln!("survived the exception: {verdict:?}");
        std::process::exit(0);
    }
    thrower_plugin();
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "a_plugin_that_throws_stops_the_process", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(6), "not stopped by SIGABRT: {:?}\n{stderr}", out.status);
    assert!(!stderr.contains("survived"), "{stderr}");
}
