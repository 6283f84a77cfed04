//! `callgrind_engine CASE FAMILY ITERATIONS`: one engine workload in a loop, for instruction
//! counts under `valgrind --tool=callgrind` (stable on a noisy VM, unlike time).
//! `scripts/callgrind.sh` runs each case at two iteration counts and reports the difference per
//! packet, so that the set-up (opening 4,096 flows) cancels out.
//!
//! CASE: nat_in | nat_reply | dr | tun | new_wlc | new_mh | not_vip | copy_only; FAMILY: v4 | v6.

use std::hint::black_box;
use std::process::ExitCode;

use vs_benches::lab::{Case, HEADROOM, Lab, SLOT, client, frame, neighbours, vip};
use vs_proto::conn::Forward;
use vs_proto::wire::PacketBuf;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(case), Some(family), Some(iterations)) =
        (args.first(), args.get(1), args.get(2).and_then(|s| s.parse::<usize>().ok()))
    else {
        eprintln!("usage: callgrind_engine CASE v4|v6 ITERATIONS");
        return ExitCode::from(2);
    };
    let v6 = family == "v6";
    const FLOWS: usize = 4096;
    let (forward, kind, scheduler) = match case.as_str() {
        "nat_in" | "copy_only" | "not_vip" => (Forward::Nat, Some(Case::NatIn), "wlc"),
        "nat_reply" => (Forward::Nat, Some(Case::NatReply), "wlc"),
        "dr" => (Forward::DirectRoute, Some(Case::Dr), "wlc"),
        "tun" => (Forward::Tunnel, Some(Case::Tun), "wlc"),
        "new_wlc" => (Forward::Nat, None, "wlc"),
        "new_mh" => (Forward::Nat, None, "mh"),
        _ => {
            eprintln!("unknown case {case}");
            return ExitCode::from(2);
        }
    };
    let mut lab = Lab::new(forward, v6, 1 << 17, scheduler);
    let frames = match kind {
        Some(kind) => {
            let reals = lab.open(FLOWS);
            if case == "not_vip" {
                let other = if v6 { "2001:db8::200:1" } else { "198.18.200.1" };
                vec![frame(client(1, v6), (other.parse().unwrap(), 80), Some("A"), 6)]
            } else {
                lab.frames(kind, &reals)
            }
        }
        // New connections: a fresh client per packet (up to 2^16 iterations; the table holds 2^17).
        None => (0..1 << 16).map(|i| frame(client(i, v6), (vip(v6), 80), Some("S"), 0)).collect(),
    };
    let mut storage = vec![0u8; SLOT];
    let mut transmitted = 0usize;
    for i in 0..iterations {
        let f = &frames[i % frames.len()];
        storage[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
        let mut buf = PacketBuf::new(&mut storage, HEADROOM, f.len()).unwrap();
        if case == "copy_only" {
            black_box(&mut buf);
            continue;
        }
        let v = lab.engine.process(black_box(&mut buf), 1, &neighbours);
        transmitted += usize::from(matches!(v, vs_proto::engine::Verdict::Transmit { .. }));
    }
    println!("{case} {family}: {transmitted}/{iterations} transmitted");
    ExitCode::SUCCESS
}
