//! The judge of vsadm: every command sequence recorded from the real ipvsadm 1.31 on Linux 6.1
//! IPVS (`tests/ipvsadm/recorded.txt`, made by `scripts/record-ipvsadm.sh`) is run again through
//! vsadm against a live vsd, and each command's standard output, standard error and exit status
//! must be the same bytes. The sequences listed in `DIFFERENT` differ on purpose or for a reason
//! given there; they are run too and reported. Needs root (vsd runs in a network namespace).

mod live;

use std::path::Path;
use std::process::Command;

/// Sequences whose output differs from ipvsadm's, and why.
const DIFFERENT: &[(&str, &str)] = &[
    ("version-and-help", "vsadm's -v and -h describe vsadm (ipvsadm's text is its own)"),
    ("help-long", "vsadm's help text is its own"),
    ("restore-error", "vsadm -R applies a file atomically and names the failing line"),
    ("restore-parse-error-line", "vsadm -R applies a file atomically and names the failing line"),
    ("hostnames", "localhost resolves to 127.0.0.1, an address of this host, which vsd refuses as a VIP"),
    ("leading-ipvsadm-restore", "vsadm -R applies a file atomically: the bad line stops the whole file"),
    ("unknown-scheduler", "vsd has twos, which Linux 6.1 has not"),
    ("tunnel-types", "vsd tunnels in IP-in-IP only: gue and gre are refused"),
];

struct Recorded {
    command: String,
    stdout: String,
    stderr: String,
    status: i32,
}

fn sequences() -> Vec<(String, Vec<Recorded>)> {
    let text = include_str!("ipvsadm/recorded.txt");
    let mut out: Vec<(String, Vec<Recorded>)> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("## ") {
            out.push((name.to_owned(), Vec::new()));
            continue;
        }
        let Some(command) = line.strip_prefix("=== $ ") else { continue };
        let (mut stdout, mut stderr, mut section, mut status) = (String::new(), String::new(), 0, 0);
        for l in lines.by_ref() {
            match l {
                "--- stdout" => section = 1,
                "--- stderr" => section = 2,
                "\\ no newline at end" => {
                    let buf = if section == 1 { &mut stdout } else { &mut stderr };
                    buf.pop();
                }
                _ if l.starts_with("--- exit ") => {
                    status = l["--- exit ".len()..].parse().unwrap();
                    break;
                }
                _ => {
                    let buf = if section == 1 { &mut stdout } else { &mut stderr };
                    buf.push_str(l);
                    buf.push('\n');
                }
            }
        }
        out.last_mut().unwrap().1.push(Recorded { command: command.to_owned(), stdout, stderr, status });
    }
    out
}

fn run(line: &str, bin: &Path, control: &Path, work: &Path) -> (String, String, i32) {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(work)
        .env("PATH", path)
        .env("VSADM_CONTROL", control)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn recorded_ipvsadm_sequences_through_vsadm_and_vsd() {
    live_or_skip!("recorded_ipvsadm_sequences_through_vsadm_and_vsd");
    let mut topo = live::Topo::bare("vsj-");
    // One interface on which every recorded address is on-link; tunnel sources for both families.
    // (This kernel has no dummy driver: a veth pair whose other end stays in the namespace.)
    topo.ns_ok("dir", &["ip", "link", "add", "vsa0", "type", "veth", "peer", "name", "vsa1"]);
    topo.ns_ok("dir", &["ip", "link", "set", "vsa0", "up"]);
    topo.ns_ok("dir", &["ip", "link", "set", "vsa1", "up"]);
    topo.ns_ok("dir", &["ip", "addr", "add", "198.18.255.254/15", "dev", "vsa0"]);
    topo.ns_ok("dir", &["ip", "addr", "add", "2001:db8:ffff::fe/32", "dev", "vsa0", "nodad"]);
    topo.start_vsd(
        "",
        &[
            "--iface",
            "vsa0",
            "--tun-src",
            "198.18.255.254",
            "--tun-src",
            "2001:db8:ffff::fe",
            "--conn-capacity",
            "4096",
        ],
    );
    // `ipvsadm` on the PATH is vsd under that name.
    let bin = topo.work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_vsd"), bin.join("ipvsadm")).unwrap();
    let control = topo.control();
    let (mut matched, mut total) = (0, 0);
    let mut failures = Vec::new();
    let mut reported = Vec::new();
    for (name, commands) in sequences() {
        let work = topo.work.join(format!("seq-{name}"));
        std::fs::create_dir_all(&work).unwrap();
        let reset = run("ipvsadm -C && ipvsadm --set 900 120 300", &bin, &control, &work);
        assert_eq!(reset.2, 0, "reset before {name}: {reset:?}");
        let mut first_difference = None;
        for c in &commands {
            let got = run(&c.command, &bin, &control, &work);
            if first_difference.is_none() && (got.0 != c.stdout || got.1 != c.stderr || got.2 != c.status) {
                first_difference = Some(format!(
                    "$ {}\n--- ipvsadm (exit {}):\n{}{}--- vsadm (exit {}):\n{}{}",
                    c.command, c.status, c.stdout, c.stderr, got.2, got.0, got.1
                ));
            }
        }
        total += 1;
        let expected_different = DIFFERENT.iter().any(|(n, _)| *n == name);
        match (first_difference, expected_different) {
            (None, _) => matched += 1,
            (Some(d), true) => reported.push(format!("## {name} (differs on purpose)\n{d}")),
            (Some(d), false) => failures.push(format!("## {name}\n{d}")),
        }
    }
    eprintln!("{matched} of {total} recorded sequences match byte for byte");
    for r in &reported {
        eprintln!("{r}");
    }
    assert!(failures.is_empty(), "{} sequences differ:\n{}", failures.len(), failures.join("\n"));
}
