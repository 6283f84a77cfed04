//! Helpers shared by the test files of this crate.
#![allow(dead_code)]

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
