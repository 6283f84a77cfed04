//! The benchmarks' workloads checked against each other as tests (criterion runs them only as
//! benchmarks): vs-proto's in-place NAT rewrite and the engine's fast path must produce exactly
//! the bytes etherparse produces when it decodes, changes and re-encodes the same headers with
//! checksums computed from scratch.

use vs_benches::lab::{Baseline, Case, HEADROOM, Lab, SLOT, neighbours};
use vs_benches::{etherparse_parse_nat, frame, vs_proto_parse_nat};
use vs_proto::conn::Forward;
use vs_proto::engine::Verdict;
use vs_proto::wire::PacketBuf;

#[test]
fn the_rewrite_matches_etherparse() {
    for len in [54, 64, 200, 1500] {
        let mut ours = frame(len);
        let mut theirs = ours.clone();
        assert!(vs_proto_parse_nat(&mut ours) && etherparse_parse_nat(&mut theirs));
        assert_eq!(ours, theirs, "{len}-byte frame");
    }
}

#[test]
fn the_engines_fast_path_matches_the_etherparse_and_hashmap_baseline() {
    let mut lab = Lab::new(Forward::Nat, false, 8192, "wlc");
    let reals = lab.open(4096);
    let baseline = Baseline::new(&reals, false);
    let frames = lab.frames(Case::NatIn, &reals);
    let mut storage = vec![0u8; SLOT];
    for (i, f) in frames.iter().enumerate() {
        storage[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
        let mut buf = PacketBuf::new(&mut storage, HEADROOM, f.len()).unwrap();
        assert!(matches!(lab.engine.process(&mut buf, 1, &neighbours), Verdict::Transmit { .. }));
        let mut expected = f.clone();
        assert!(baseline.nat(&mut expected), "flow {i}");
        assert_eq!(buf.data(), &expected[..], "flow {i}");
    }
}
