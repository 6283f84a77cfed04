//! vsadm without a vsd: ipvsadm's parse-time messages and statuses come first, and a missing
//! or forbidden control socket is said plainly.

use std::process::Command;

fn vsadm(args: &[&str], control: &str) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_vsadm")).args(args).env("VSADM_CONTROL", control).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn parse_errors_need_no_vsd() {
    let (_, err, code) = vsadm(&["-A"], "/nonexistent/vsd.sock");
    assert_eq!(
        (err.as_str(), code),
        ("You need to supply the 'service-address' option for the 'add-service' command\n", 2)
    );
    let (_, err, code) = vsadm(&["-Q"], "/nonexistent/vsd.sock");
    assert_eq!((err.as_str(), code), ("Try `vsadm -h' or 'vsadm --help' for more information.\n", 255));
    let (out, _, code) = vsadm(&["-v"], "/nonexistent/vsd.sock");
    assert!(out.starts_with("vsadm v") && code == 0, "{out}");
}

#[test]
fn a_missing_vsd_is_said_plainly() {
    let (_, err, code) = vsadm(&["-L", "-n"], "/nonexistent/vsd.sock");
    assert_eq!(code, 255);
    assert!(err.contains("vsd is not running"), "{err}");
    let (_, err, code) = vsadm(&["--control", "/nonexistent/other.sock", "-A", "-t", "198.18.0.100:80"], "/x");
    assert_eq!(code, 255);
    assert!(err.contains("/nonexistent/other.sock: vsd is not running"), "{err}");
}
