//! The real kernel is the judge: every scenario recorded from Linux 6.1's IPVS
//! (`../shared/reference/ipvs-traces/`) and every scenario kept in `tests/scenarios/` runs
//! through `simulate`'s interpreter and must print exactly the expected picks. The repository's
//! `oracle-*` scenarios were recorded from the kernel; `wrr-432` is the kernel's recorded wrr
//! period; `rr-basic` is hand-written (its header says why and what it rests on).

#[path = "../examples/simulate/scenario.rs"]
mod scenario;

use std::path::{Path, PathBuf};

/// Runs every `NAME.scenario` in `dir` against its `NAME.expected`; returns how many ran.
fn check_dir(dir: &Path) -> usize {
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "scenario"))
        .collect();
    scenarios.sort();
    let mut failures = Vec::new();
    for path in &scenarios {
        let text = std::fs::read_to_string(path).unwrap();
        let expected = std::fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|e| panic!("{}: no .expected: {e}", path.display()));
        let expected: Vec<&str> = expected.lines().collect();
        match scenario::run(&text, 0) {
            Ok(got) if got == expected => {}
            Ok(got) => {
                let first =
                    got.iter().zip(&expected).position(|(g, e)| g != e).unwrap_or(got.len().min(expected.len()));
                failures.push(format!(
                    "{}: pick {} differs: ours {:?}, kernel {:?} ({} picks vs {})",
                    path.display(),
                    first + 1,
                    got.get(first),
                    expected.get(first),
                    got.len(),
                    expected.len()
                ));
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    scenarios.len()
}

#[test]
fn recorded_kernel_traces() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/ipvs-traces");
    if !dir.is_dir() {
        eprintln!("SKIP: {} not found; the recorded kernel traces were not checked", dir.display());
        return;
    }
    let n = check_dir(&dir);
    eprintln!("{n} recorded kernel traces reproduced");
    assert!(n >= 15);
}

#[test]
fn scenarios_kept_in_the_repository() {
    let n = check_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios"));
    eprintln!("{n} repository scenarios reproduced");
    assert!(n > 0);
}

#[test]
fn unknown_lines_fail_with_their_number() {
    let err = scenario::run("sched rr\ndest A 198.18.0.1:80 weight 1\nfrobnicate\n", 0).unwrap_err();
    assert_eq!(err.line, 3);
    assert!(scenario::run("dest A 198.18.0.1:80 weight 1\n", 0).is_err(), "sched must come first");
    assert_eq!(scenario::run("sched nosuch\n", 0).unwrap_err().line, 1);
    let err = scenario::run(
        "sched wlc\n# comment\ndest A [2001:db8::1]:80 weight 1\npick src [2001:db8::9]:1000\nconn A active 1\n",
        0,
    )
    .unwrap_err();
    assert_eq!(err.line, 5, "counts need a sign");
}
