//! Properties of the weighted and hashing schedulers: shares proportional to weight, Maglev's
//! balance and minimal disruption, and determinism across instances.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use vs_sched::hash::gcd;
use vs_sched::sched::hashing::SourceHashing;
use vs_sched::sched::mh::Maglev;
use vs_sched::{Builtin, DestConfig, DestList, MAX_DESTS, PacketInfo, SchedFlags, SchedParams, Scheduler};

fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xC612_0100u32 + i as u32))
}

fn fill<S: Scheduler>(sched: &mut S, weights: &[u32]) -> DestList<MAX_DESTS> {
    let mut list = DestList::new();
    sched.init_service(list.as_slice()).unwrap();
    for (i, w) in weights.iter().enumerate() {
        list.add(sched, addr(i), 80, DestConfig { weight: *w, ..DestConfig::default() }).unwrap();
    }
    list
}

fn key(n: u32) -> PacketInfo {
    let src = IpAddr::V4(Ipv4Addr::from(n.wrapping_mul(2_654_435_761)));
    PacketInfo { proto: 6, src, dst: addr(999), sport: (n % 50000) as u16 + 1024, dport: 80, inverse: false }
}

/// Maglev minimal disruption, for every N in 3..20 and every destination removed: the keys
/// that were on it move, and at most 1% of the others with a 65521-slot table. With the default
/// 4093 slots the kernel's own tables move up to 2.1% of the others (measured over the same
/// cases; Maglev's disruption grows with N / M), so the bound there is 2.5%.
#[test]
fn mh_removal_moves_few_other_keys() {
    let (mut worst_small, mut worst_large) = (0.0f64, 0.0f64);
    for n in 3..20 {
        for victim in 0..n {
            worst_large = worst_large.max(moved_percent::<65521>(n, victim));
            worst_small = worst_small.max(moved_percent::<4093>(n, victim));
        }
    }
    eprintln!("mh disruption, worst over N = 3..19: {worst_large:.2}% (65521 slots), {worst_small:.2}% (4093 slots)");
    assert!(worst_large <= 1.0);
    assert!(worst_small <= 2.5);
}

/// Percentage of keys not on the removed destination that move when it is removed.
fn moved_percent<const M: usize>(n: usize, victim: usize) -> f64 {
    let mut mh = Maglev::<M>::new(M, SchedFlags::empty()).unwrap();
    let mut list = fill(&mut mh, &vec![1; n]);
    let keys: Vec<PacketInfo> = (0..5_000).map(key).collect();
    let before: Vec<_> = keys.iter().map(|k| list.schedule(&mut mh, k, 0).unwrap()).collect();
    let gone = list.as_slice().iter().find(|d| d.addr == addr(victim)).unwrap().id;
    list.remove(&mut mh, addr(victim), 80).unwrap();
    let (mut moved, mut others) = (0usize, 0usize);
    for (k, b) in keys.iter().zip(&before) {
        let after = list.schedule(&mut mh, k, 0).unwrap();
        assert_ne!(after, gone, "a key still goes to the removed destination");
        if *b != gone {
            others += 1;
            moved += usize::from(after != *b);
        }
    }
    moved as f64 * 100.0 / others as f64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Over one full period (Σw / gcd picks) every destination is picked w / gcd times.
    #[test]
    fn wrr_shares_are_exact_over_a_period(weights in proptest::collection::vec(1u32..=12, 1..8)) {
        let mut sched = Builtin::by_name("wrr", &SchedParams::default()).unwrap();
        let mut list = fill(&mut sched, &weights);
        let g = weights.iter().copied().fold(0, |g, w| if g == 0 { w } else { gcd(w, g) });
        let period: u32 = weights.iter().map(|w| w / g).sum();
        // Skip the first partial period (the state starts at the maximum weight).
        let mut counts = vec![0u32; weights.len()];
        let ids: Vec<_> = (0..weights.len()).map(|i| list.as_slice()[weights.len() - 1 - i].id).collect();
        for round in 0..(2 * period) {
            let id = list.schedule(&mut sched, &key(round), 0).unwrap();
            if round >= period {
                counts[ids.iter().position(|x| *x == id).unwrap()] += 1;
            }
        }
        for (i, w) in weights.iter().enumerate() {
            prop_assert_eq!(counts[i], w / g, "destination {} of {:?}", i, weights);
        }
    }

    /// sh fills its 256 buckets in turns of `weight`: each destination holds between
    /// w·⌊256/Σw⌋ and w·(⌊256/Σw⌋ + 1) buckets.
    #[test]
    fn sh_buckets_follow_weights(weights in proptest::collection::vec(1u32..=16, 1..10)) {
        let mut sched = SourceHashing::new(SchedFlags::empty());
        let _list = fill(&mut sched, &weights);
        let total: u32 = weights.iter().sum();
        let mut counts = vec![0u32; weights.len()];
        for owner in sched.buckets() {
            counts[owner.unwrap()] += 1;
        }
        // Positions are in list order (newest first).
        for (pos, count) in counts.iter().enumerate() {
            let w = weights[weights.len() - 1 - pos];
            let rounds = 256 / total;
            prop_assert!(*count >= w * rounds && *count <= w * (rounds + 1), "{count} buckets for weight {w} of {weights:?}");
        }
    }

    /// Maglev balance: every destination holds within 10% of M·w/Σw slots.
    #[test]
    fn mh_is_balanced(weights in proptest::collection::vec(1u32..=10, 2..16)) {
        let mut mh = Maglev::<4093>::new(4093, SchedFlags::empty()).unwrap();
        let _list = fill(&mut mh, &weights);
        let total: u32 = weights.iter().sum();
        let mut counts = vec![0usize; weights.len()];
        for owner in mh.slots() {
            counts[owner.unwrap()] += 1;
        }
        for (pos, count) in counts.iter().enumerate() {
            let w = weights[weights.len() - 1 - pos];
            let ideal = 4093.0 * f64::from(w) / f64::from(total);
            prop_assert!((*count as f64 - ideal).abs() <= ideal * 0.10, "{count} slots, ideal {ideal:.1}, weights {weights:?}");
        }
    }

    /// Two instances with the same configuration build identical tables.
    #[test]
    fn hashing_tables_are_deterministic(weights in proptest::collection::vec(0u32..=8, 1..12)) {
        let build_mh = || {
            let mut mh = Maglev::<4093>::new(4093, SchedFlags::empty()).unwrap();
            let _ = fill(&mut mh, &weights);
            mh.slots().collect::<Vec<_>>()
        };
        prop_assert_eq!(build_mh(), build_mh());
        let build_sh = || {
            let mut sh = SourceHashing::new(SchedFlags::empty());
            let _ = fill(&mut sh, &weights);
            sh.buckets().collect::<Vec<_>>()
        };
        prop_assert_eq!(build_sh(), build_sh());
    }
}
