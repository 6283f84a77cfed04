//! `callgrind_parse_nat vs-proto|etherparse [ITERATIONS] [LEN]`: run one parse + NAT workload
//! in a loop, for instruction counts under `valgrind --tool=callgrind` (stable on a noisy VM,
//! unlike time). `scripts/callgrind.sh` runs both and prints instructions per packet.

use std::hint::black_box;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("");
    let iterations: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let len: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let work: fn(&mut [u8]) -> bool = match which {
        "vs-proto" => vs_benches::vs_proto_parse_nat,
        "etherparse" => vs_benches::etherparse_parse_nat,
        "copy-only" => |_| true,
        "vs-proto-parse" => |b| vs_proto::wire::Summary::from_ethernet(b).is_ok(),
        _ => {
            eprintln!("usage: callgrind_parse_nat vs-proto|vs-proto-parse|etherparse|copy-only [ITERATIONS] [LEN]");
            return ExitCode::from(2);
        }
    };
    let original = vs_benches::frame(len);
    let mut buf = original.clone();
    let mut ok = 0u64;
    for _ in 0..iterations {
        buf.copy_from_slice(&original);
        ok += u64::from(work(black_box(&mut buf)));
    }
    println!("{which}: {ok}/{iterations} rewritten");
    ExitCode::SUCCESS
}
