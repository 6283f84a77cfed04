//! Criterion: the cost of one scheduling decision per IPVS scheduler, with 16 and 256 real
//! servers carrying uneven weights and connection counts. Two baselines run beside them: the
//! `maglev` crate's lookup table (Google's Maglev, the algorithm of IPVS's mh) hashing the same
//! packets' source address, and a plain `Vec` round robin (an index increment), the least work
//! a scheduler can do.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vs_sched::{BUILTIN_NAMES, Builtin, ConnKind, DestConfig, DestList, MAX_DESTS, PacketInfo, SchedParams, Scheduler};

fn service(name: &str, n: usize) -> (Builtin, DestList<MAX_DESTS>) {
    let mut sched = Builtin::by_name(name, &SchedParams { seed: 7, ..SchedParams::default() }).unwrap();
    let mut list = DestList::new();
    sched.init_service(list.as_slice()).unwrap();
    for i in 0..n {
        let addr = IpAddr::V4(Ipv4Addr::from(0xC612_0100u32 + i as u32));
        let weight = 1 + (i as u32 * 7) % 10;
        let id = list.add(&mut sched, addr, 80, DestConfig { weight, ..DestConfig::default() }).unwrap();
        for _ in 0..(i * 13) % 40 {
            list.bind(id, ConnKind::Active);
        }
        for _ in 0..(i * 29) % 100 {
            list.bind(id, ConnKind::Inactive);
        }
    }
    (sched, list)
}

fn packets() -> Vec<PacketInfo> {
    (0..1024u32)
        .map(|n| PacketInfo {
            proto: 6,
            src: IpAddr::V4(Ipv4Addr::from(0xC613_0000 + n.wrapping_mul(40_503))),
            dst: IpAddr::V4(Ipv4Addr::from(0xC613_8000 + n % 64)),
            sport: 1024 + (n % 60_000) as u16,
            dport: 80,
            inverse: false,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let packets = packets();
    for n in [16usize, 256] {
        let mut group = c.benchmark_group(format!("schedule_{n}_dests"));
        let mut next = 0usize;
        group.bench_function("baseline-maglev-crate", |b| {
            use maglev::ConsistentHasher;
            let table = maglev::Maglev::new((0..n as u32).collect::<Vec<_>>());
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(table.get(&packets[i].src).copied())
            });
        });
        group.bench_function("baseline-vec-rr", |b| {
            let dests: Vec<u32> = (0..n as u32).collect();
            b.iter(|| {
                next = (next + 1) % dests.len();
                black_box(dests[next])
            });
        });
        for name in BUILTIN_NAMES {
            let (mut sched, mut list) = service(name, n);
            let mut i = 0usize;
            group.bench_with_input(BenchmarkId::from_parameter(name), &name, |b, _| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    black_box(list.schedule(&mut sched, &packets[i], 0))
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
