//! Captures and tshark for tests, shared by the test crates that judge packets with tshark
//! (included by path where another crate's tests need it).
#![allow(dead_code)]

/// Writes Ethernet frames to a classic pcap file (for tshark).
pub(crate) fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

/// tshark's fields for every frame of a capture (all occurrences, comma-separated), or None
/// when tshark is not installed (see [`run_tshark`]).
pub(crate) fn tshark_fields(path: &std::path::Path, fields: &[&str]) -> Option<Vec<Vec<String>>> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.args(["-n", "-r", path.to_str().unwrap(), "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"]);
    cmd.args([
        "-o",
        "udp.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = run_tshark(&mut cmd)?;
    Some(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('\t').map(str::to_owned).collect()).collect())
}

/// Runs tshark: its output, or `None` when tshark is not installed — which only a run outside CI
/// may accept (`.ci/run` installs it; with `CI` set a missing tshark fails). A tshark that runs
/// and fails on the capture fails the test.
pub(crate) fn run_tshark(cmd: &mut std::process::Command) -> Option<std::process::Output> {
    match cmd.output() {
        Ok(out) => {
            assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
            Some(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(std::env::var_os("CI").is_none(), "tshark is not installed, and CI must not skip");
            None
        }
        Err(e) => panic!("cannot run tshark: {e}"),
    }
}
