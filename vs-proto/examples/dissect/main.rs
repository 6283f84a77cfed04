//! `dissect FILE`: parse every frame of a pcap or pcapng capture with `vs-proto` and print one
//! JSON object per frame (keys: frame, l3, vlan, src, dst, proto, frag, sport, dport, tcp_flags,
//! l4_csum_ok, icmp_type, icmp_code, inner, error).

mod capture;

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: dissect FILE   (a pcap or pcapng capture)");
        return ExitCode::from(2);
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut unknown = BTreeSet::new();
    let mut write_error = None;
    let result = capture::for_each_frame(path, |frame, link, data| match link {
        Ok(link) => {
            if write_error.is_none()
                && let Err(e) = writeln!(out, "{}", capture::dissect(frame, link, data))
            {
                write_error = Some(e);
            }
        }
        Err(linktype) => {
            if unknown.insert(linktype.0) {
                eprintln!("dissect: {path}: unsupported link type {} (frames skipped)", linktype.0);
            }
        }
    });
    if let Some(e) = write_error.or_else(|| out.flush().err()) {
        eprintln!("dissect: write error: {e}");
        return ExitCode::FAILURE;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dissect: {e}");
            ExitCode::FAILURE
        }
    }
}
