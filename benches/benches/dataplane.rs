//! Criterion: the engine as users load it, each case beside its baseline in the same run.
//!
//! - `established/…`: packets of established flows (NAT inbound, NAT reply, DR, TUN; IPv4 and
//!   IPv6) over 1 and 4,096 flows replayed in a random order, one `Engine::process` per packet,
//!   the frame copied into a buffer with headroom each time (as a host would receive it);
//!   `baseline/…`: the same NAT by etherparse + `HashMap` (see `vs_benches::lab::Baseline`).
//! - `large/…`: 1M flows (and 16M with `VS_BENCH_16M=1`: 1.5 GB, a minute to open) in a random
//!   order, single packets and `process_burst` of 32.
//! - `new_conn/…`: a SYN of a new client per packet, rr / wlc / sh / mh over 16 and 256 servers.
//! - `not_vip`: TCP to an address that is no service's.
//! - `sweep/per_entry`: the expiry sweep over a full table of live entries.
//!
//! Every iteration is one packet (or one entry): criterion's time per iteration is ns per packet.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vs_benches::lab::{Baseline, Burst, Case, HEADROOM, Lab, SLOT, client, frame, neighbours, vip};
use vs_proto::conn::Forward;
use vs_proto::engine::{Engine, Verdict};
use vs_proto::wire::PacketBuf;

/// Times `iters` calls of `each`, one per frame, cycling over `frames` (in their shuffled order).
fn each_frame(frames: &[Vec<u8>], iters: u64, mut each: impl FnMut(&[u8])) -> Duration {
    let mut k = 0;
    let start = Instant::now();
    for _ in 0..iters {
        each(&frames[k]);
        k = if k + 1 == frames.len() { 0 } else { k + 1 };
    }
    start.elapsed()
}

/// One packet per iteration through `Engine::process`, copied into a buffer with headroom.
fn process_each(engine: &mut Engine<'static, 256>, frames: &[Vec<u8>], iters: u64) -> Duration {
    let mut storage = vec![0u8; SLOT];
    each_frame(frames, iters, |f| {
        storage[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
        let mut buf = PacketBuf::new(&mut storage, HEADROOM, f.len()).unwrap();
        black_box(engine.process(black_box(&mut buf), 1, &neighbours));
    })
}

/// Bursts of 32 through `Engine::process_burst`; the time is for `iters` packets.
fn process_bursts(engine: &mut Engine<'static, 256>, frames: &[Vec<u8>], iters: u64) -> Duration {
    let mut burst = Burst::new(32);
    let mut verdicts = [Verdict::Pass; 32];
    let mut k = 0;
    let bursts = iters.div_ceil(32);
    let start = Instant::now();
    for _ in 0..bursts {
        if k + 32 > frames.len() {
            k = 0;
        }
        black_box(burst.run(engine, &frames[k..k + 32], &mut verdicts));
        k += 32;
    }
    start.elapsed().mul_f64(iters as f64 / (bursts * 32) as f64)
}

fn check_transmits(lab: &mut Lab, frames: &[Vec<u8>]) {
    for f in frames.iter().take(64) {
        let (v, _) = lab.send(f, 1);
        assert!(matches!(v, Verdict::Transmit { .. }), "{v:?}");
    }
}

fn established(c: &mut Criterion) {
    let mut group = c.benchmark_group("established");
    for (case, forward, name) in [
        (Case::NatIn, Forward::Nat, "nat_in"),
        (Case::NatReply, Forward::Nat, "nat_reply"),
        (Case::Dr, Forward::DirectRoute, "dr"),
        (Case::Tun, Forward::Tunnel, "tun"),
    ] {
        for v6 in [false, true] {
            for flows in [1usize, 4096] {
                let mut lab = Lab::new(forward, v6, 8192, "wlc");
                let reals = lab.open(flows);
                let frames = lab.frames(case, &reals);
                check_transmits(&mut lab, &frames);
                let family = if v6 { "v6" } else { "v4" };
                group.bench_function(BenchmarkId::new(format!("vs/{name}/{family}"), flows), |b| {
                    b.iter_custom(|iters| process_each(&mut lab.engine, &frames, iters));
                });
                if case == Case::NatIn && !v6 {
                    let baseline = Baseline::new(&reals, v6);
                    group.bench_function(BenchmarkId::new("baseline/nat_in/v4", flows), |b| {
                        b.iter_custom(|iters| baseline_each(&baseline, &frames, iters));
                    });
                }
            }
        }
    }
    group.finish();
}

fn baseline_each(baseline: &Baseline, frames: &[Vec<u8>], iters: u64) -> Duration {
    let mut storage = vec![0u8; SLOT];
    each_frame(frames, iters, |f| {
        let buf = &mut storage[..f.len()];
        buf.copy_from_slice(f);
        assert!(baseline.nat(black_box(buf)));
    })
}

fn large(c: &mut Criterion) {
    let mut group = c.benchmark_group("large");
    group.sample_size(20);
    let mut sizes = vec![(1usize << 20, 4usize << 20)];
    if std::env::var_os("VS_BENCH_16M").is_some() {
        sizes.push((16 << 20, 17 << 20));
    }
    for (flows, capacity) in sizes {
        let mut lab = Lab::new(Forward::Nat, false, capacity, "wlc");
        let reals = lab.open(flows);
        let frames = lab.frames(Case::NatIn, &reals);
        check_transmits(&mut lab, &frames);
        group.bench_function(BenchmarkId::new("vs/nat_in/v4/single", flows), |b| {
            b.iter_custom(|iters| process_each(&mut lab.engine, &frames, iters));
        });
        group.bench_function(BenchmarkId::new("vs/nat_in/v4/burst32", flows), |b| {
            b.iter_custom(|iters| process_bursts(&mut lab.engine, &frames, iters));
        });
        if flows == 1 << 20 {
            let baseline = Baseline::new(&reals, false);
            group.bench_function(BenchmarkId::new("baseline/nat_in/v4", flows), |b| {
                b.iter_custom(|iters| baseline_each(&baseline, &frames, iters));
            });
        }
    }
    group.finish();
}

fn new_conn(c: &mut Criterion) {
    let mut group = c.benchmark_group("new_conn");
    const CHUNK: u64 = 1 << 16;
    let syns: Vec<Vec<u8>> =
        (0..CHUNK as usize).map(|i| frame(client(i, false), (vip(false), 80), Some("S"), 0)).collect();
    for scheduler in ["rr", "wlc", "sh", "mh"] {
        for (servers, port) in [(16, 80u16), (256, 81)] {
            let syns: Vec<Vec<u8>> = syns
                .iter()
                .map(|f| {
                    let mut f = f.clone();
                    // Same frame to the other service: the port and the checksum move together.
                    let old = u16::from_be_bytes([f[36], f[37]]);
                    f[36..38].copy_from_slice(&port.to_be_bytes());
                    let ck = u16::from_be_bytes([f[50], f[51]]);
                    let ck = vs_proto::wire::checksum::update16(ck, old, port);
                    f[50..52].copy_from_slice(&ck.to_be_bytes());
                    f
                })
                .collect();
            group.bench_function(BenchmarkId::new(format!("vs/{scheduler}/nat/v4"), servers), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let n = (iters - done).min(CHUNK);
                        let mut lab = Lab::new(Forward::Nat, false, CHUNK as usize, scheduler);
                        total += process_each(&mut lab.engine, &syns[..n as usize], n);
                        assert_eq!(lab.engine.connections().len(), n as usize, "every SYN opened a connection");
                        done += n;
                    }
                    total
                });
            });
        }
    }
    group.finish();
}

fn not_vip(c: &mut Criterion) {
    let mut group = c.benchmark_group("not_vip");
    let mut lab = Lab::new(Forward::Nat, false, 8192, "wlc");
    lab.open(16);
    let other: IpAddr = "198.18.200.1".parse().unwrap();
    let frames = vec![frame(client(1, false), (other, 80), Some("A"), 6)];
    assert_eq!(lab.send(&frames[0], 1).0, Verdict::Pass);
    group.bench_function("vs/tcp/v4", |b| b.iter_custom(|iters| process_each(&mut lab.engine, &frames, iters)));
    let baseline = Baseline::new(&[], false);
    group.bench_function("baseline/tcp/v4", |b| {
        b.iter_custom(|iters| {
            let mut storage = frames[0].clone();
            let start = Instant::now();
            for _ in 0..iters {
                storage.copy_from_slice(&frames[0]);
                assert!(!baseline.nat(black_box(&mut storage)));
            }
            start.elapsed()
        });
    });
    group.finish();
}

fn sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("sweep");
    let flows = 1 << 20;
    let mut lab = Lab::new(Forward::Nat, false, flows, "wlc");
    lab.open(flows);
    group.bench_function(BenchmarkId::new("vs/per_entry", flows), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters as usize;
            while left > 0 {
                // The budget is entries visited. Nothing has expired at 1 s: every visit checks
                // a live entry and keeps it.
                let chunk = left.min(1 << 16);
                lab.engine.sweep(1000, chunk);
                left -= chunk;
            }
            start.elapsed()
        });
    });
    assert_eq!(lab.engine.connections().len(), flows);
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = established, large, new_conn, not_vip, sweep }
criterion_main!(benches);
