//! Criterion: parse + NAT rewrite of an Ethernet / IPv4 / TCP frame, vs-proto against
//! etherparse in the same run (see `vs_benches` for the two workloads).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vs_benches::{etherparse_parse_nat, frame, vs_proto_parse_nat};

fn bench(c: &mut Criterion) {
    // Both must produce the same, valid bytes.
    for len in [64, 1500] {
        let mut a = frame(len);
        let mut b = a.clone();
        assert!(vs_proto_parse_nat(&mut a) && etherparse_parse_nat(&mut b));
        assert_eq!(a, b, "vs-proto and etherparse disagree on the rewritten frame");
    }
    for len in [64usize, 1500] {
        let mut group = c.benchmark_group(format!("parse_nat_ipv4_tcp_{len}B"));
        group.throughput(Throughput::Elements(1));
        let original = frame(len);
        let mut buf = original.clone();
        group.bench_function("vs-proto", |b| {
            b.iter(|| {
                buf.copy_from_slice(&original);
                black_box(vs_proto_parse_nat(black_box(&mut buf)))
            });
        });
        group.bench_function("etherparse", |b| {
            b.iter(|| {
                buf.copy_from_slice(&original);
                black_box(etherparse_parse_nat(black_box(&mut buf)))
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
