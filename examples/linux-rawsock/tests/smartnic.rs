//! examples/smartnic, the freestanding firmware: built here, checked to be a static binary
//! with no allocator and no libc in it, run on a capture that exercises every compiled-in
//! service (NAT, DR and TUN; IPv4 and IPv6; TCP and UDP; replies, strangers, an expiry gap),
//! and compared byte for byte with `vsd replay` given the options and rules the firmware
//! prints at start.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vs_proto::wire::{Frame, MacAddr, Segment, TcpFlags};

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the firmware (release, its own workspace and target directory).
fn firmware(features: &[&str]) -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("smartnic{}", features.join("-")));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--offline", "--release", "--manifest-path"])
        .arg(repo().join("examples/smartnic/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    run(&mut cmd);
    target.join("release/vs-firmware")
}

/// A classic pcap (microseconds, Ethernet) of `frames`.
fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0];
    for (ts_us, f) in frames {
        out.extend_from_slice(&u32::try_from(ts_us / 1_000_000).unwrap().to_le_bytes());
        out.extend_from_slice(&u32::try_from(ts_us % 1_000_000).unwrap().to_le_bytes());
        out.extend_from_slice(&u32::try_from(f.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&u32::try_from(f.len()).unwrap().to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

const ROUTER: MacAddr = MacAddr([2, 0, 0, 0, 0x0f, 0xfe]);
const DIRECTOR: MacAddr = MacAddr([2, 0, 0, 0, 0x0f, 0x01]);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn frame(src: (IpAddr, u16), dst: (IpAddr, u16), segment: &Segment<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let f = Frame { src_mac: ROUTER, dst_mac: DIRECTOR, src, dst, ttl: 64 };
    let len = f.write(&mut buf, segment).unwrap();
    buf.truncate(len);
    buf
}

/// Conversations on every service of the firmware's configuration (see its config.rs).
fn capture() -> Vec<(u64, Vec<u8>)> {
    let tcp = |flags, payload: &'static [u8]| Segment::Tcp { flags, seq: 1, ack: 1, payload };
    let syn = tcp(TcpFlags::SYN, b"");
    let ack = tcp(TcpFlags::ACK, b"");
    let data = tcp(TcpFlags::ACK | TcpFlags::PSH, b"GET / HTTP/1.0\r\n\r\n");
    let fin = tcp(TcpFlags::FIN | TcpFlags::ACK, b"");
    let udp = Segment::Udp { payload: b"query" };
    let mut frames = Vec::new();
    let mut t = 1_700_000_000_000_000u64;
    fn push(frames: &mut Vec<(u64, Vec<u8>)>, t: &mut u64, f: Vec<u8>, step: u64) {
        *t += step;
        frames.push((*t, f));
    }
    for round in 0..2u64 {
        for c in 1..=6u16 {
            let client4 = (ip(&format!("198.18.5.{c}")), 40000 + c);
            let client6 = (ip(&format!("2001:db8:5::{c}")), 40000 + c);
            // NAT, IPv4 TCP: a conversation with replies from both real servers (one matches).
            let vip = (ip("198.18.0.100"), 80);
            for s in [&syn, &ack, &data] {
                push(&mut frames, &mut t, frame(client4, vip, s), 1000);
            }
            for real in ["198.18.1.1", "198.18.1.2"] {
                push(
                    &mut frames,
                    &mut t,
                    frame((ip(real), 8080), client4, &tcp(TcpFlags::SYN | TcpFlags::ACK, b"")),
                    500,
                );
                push(&mut frames, &mut t, frame((ip(real), 8080), client4, &data), 500);
            }
            push(&mut frames, &mut t, frame(client4, vip, &fin), 1000);
            // DR, IPv4 UDP.
            push(&mut frames, &mut t, frame(client4, (ip("198.18.0.100"), 53), &udp), 700);
            // TUN, IPv4 TCP.
            for s in [&syn, &ack, &data] {
                push(&mut frames, &mut t, frame(client4, (ip("198.18.0.101"), 443), s), 300);
            }
            // NAT, IPv6 TCP.
            let vip6 = (ip("2001:db8::100"), 80);
            for s in [&syn, &data] {
                push(&mut frames, &mut t, frame(client6, vip6, s), 400);
            }
            for real in ["2001:db8:1::1", "2001:db8:2::1"] {
                push(&mut frames, &mut t, frame((ip(real), 8080), client6, &data), 400);
            }
            // TUN, IPv6 UDP.
            push(&mut frames, &mut t, frame(client6, (ip("2001:db8::101"), 4789), &udp), 200);
            // Strangers: not a service's.
            push(&mut frames, &mut t, frame(client4, (ip("198.18.0.99"), 80), &syn), 100);
        }
        // A gap longer than every timeout: the sweep expires everything before round two.
        t += (round + 1) * 1000 * 1_000_000;
    }
    frames
}

#[test]
fn the_firmware_is_freestanding_and_decides_as_vsd_replay_does() {
    let fw = firmware(&[]);
    // Static, no interpreter, no libc or allocator symbols.
    let dynamic = String::from_utf8(run(Command::new("readelf").arg("-lW").arg(&fw)).stdout).unwrap();
    assert!(!dynamic.contains("INTERP") && !dynamic.contains("DYNAMIC"), "not a static binary:\n{dynamic}");
    let symbols = String::from_utf8(run(Command::new("nm").arg(&fw)).stdout).unwrap();
    for bad in ["malloc", "free", "calloc", "realloc", "__libc_start_main", "printf", "__rust_alloc", "__rdl_alloc"] {
        assert!(
            !symbols.lines().any(|l| l.split_whitespace().last() == Some(bad)),
            "{bad} in the firmware:\n{symbols}"
        );
    }
    assert!(!symbols.contains("GLIBC"), "glibc symbols in the firmware");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("smartnic-run");
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.pcap");
    let frames = capture();
    write_pcap(&input, &frames);

    // The firmware: no arguments, the capture on stdin, a capture on stdout, exit 0.
    let fw_out = dir.join("firmware.pcap");
    let status = Command::new(&fw)
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(std::fs::File::create(&fw_out).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8(status.stderr).unwrap();
    assert!(status.status.success(), "firmware failed: {stderr}");
    let options: Vec<&str> =
        stderr.lines().next().and_then(|l| l.strip_prefix("# vsd replay ")).expect("first line").split(' ').collect();
    let rules = dir.join("rules.txt");
    std::fs::write(&rules, stderr.lines().filter(|l| l.starts_with('-')).collect::<Vec<_>>().join("\n")).unwrap();

    // The host run with the same options and rules.
    let host_out = dir.join("host.pcap");
    let replay = run(Command::new(env!("CARGO_BIN_EXE_vsd"))
        .args(["replay", "--rules", rules.to_str().unwrap(), "--in", input.to_str().unwrap()])
        .args(["--out", host_out.to_str().unwrap()])
        .args(&options));
    let report = String::from_utf8(replay.stderr).unwrap();
    let firmware_bytes = std::fs::read(&fw_out).unwrap();
    assert_eq!(firmware_bytes, std::fs::read(&host_out).unwrap(), "firmware and vsd replay differ\n{stderr}\n{report}");

    // Every service and method was exercised.
    for line in report.lines().filter(|l| l.starts_with("TCP") || l.starts_with("UDP")) {
        assert!(!line.contains("conns 0 "), "a service saw no connection: {line}\n{report}");
    }
    for method in ["Masq", "Route", "Tunnel"] {
        assert!(report.contains(method), "{method} missing:\n{report}");
    }
    let transmitted = report.lines().next().unwrap_or_default().to_owned();
    let size = std::fs::metadata(&fw).unwrap().len();
    let memory = stderr.lines().find(|l| l.starts_with("# static memory")).unwrap_or_default().to_owned();
    eprintln!("firmware: {size} bytes; {memory}; {} input frames; vsd replay: {transmitted}", frames.len());
    eprintln!("{}", stderr.lines().last().unwrap_or_default());
}

/// The defmt build: same decisions, and its log ring, read out through descriptor 3, decodes
/// with defmt's own decoder (`defmt-print`, installed by .ci/run) against the firmware's ELF.
#[test]
fn the_defmt_build_logs_into_its_ring_and_the_log_decodes() {
    let plain = firmware(&[]);
    let fw = {
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("smartnic-defmt");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run(Command::new(cargo)
            .env("DEFMT_LOG", "debug")
            .args(["build", "--quiet", "--offline", "--release", "--features", "defmt", "--manifest-path"])
            .arg(repo().join("examples/smartnic/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target));
        target.join("release/vs-firmware")
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("smartnic-defmt-run");
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.pcap");
    let frames = capture();
    write_pcap(&input, &frames);
    let script = format!(
        "'{fw}' < '{i}' > '{d}/defmt.pcap' 2> '{d}/defmt.err' 3> '{d}/defmt.log' && '{plain}' < '{i}' > '{d}/plain.pcap' 2>/dev/null",
        fw = fw.display(),
        plain = plain.display(),
        i = input.display(),
        d = dir.display()
    );
    run(Command::new("sh").args(["-c", &script]));
    assert_eq!(std::fs::read(dir.join("defmt.pcap")).unwrap(), std::fs::read(dir.join("plain.pcap")).unwrap());
    let log = std::fs::read(dir.join("defmt.log")).unwrap();
    assert!(!log.is_empty(), "the log ring is empty");
    let decoder = Command::new("defmt-print")
        .arg("-e")
        .arg(&fw)
        .stdin(std::fs::File::open(dir.join("defmt.log")).unwrap())
        .output();
    let Ok(decoded) = decoder else {
        assert!(std::env::var_os("CI").is_none(), "defmt-print is missing in CI");
        eprintln!("SKIP: defmt-print not installed (`cargo install defmt-print`); the ring holds {} bytes", log.len());
        return;
    };
    let text = String::from_utf8_lossy(&decoded.stdout);
    assert!(text.contains("INFO  firmware up: 5 services, 4096 connections"), "{text}");
    assert_eq!(text.matches("DEBUG packet at").count(), frames.len(), "{text}");
    assert!(text.contains(&format!("INFO  done: rx {}", frames.len())), "{text}");
    eprintln!("defmt: {} bytes logged, {} lines decoded", log.len(), text.lines().count());
}
