//! `simulate SCENARIO`: run a scheduler scenario (see `scenario.rs` for the language) and print,
//! for every `pick`, the chosen destination's name or `none`.
//!
//! `VS_SEED` sets the seed of the random generator that twos draws from (default 0).

mod scenario;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: simulate SCENARIO");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("simulate: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let seed = std::env::var("VS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    match scenario::run(&text, seed) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("simulate: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
