//! Each scheduler's rule from the IPVS reference (§1.4, §2), on small hand-built services.

use std::net::{IpAddr, Ipv4Addr};

use vs_sched::sched::mh::Maglev;
use vs_sched::{
    Builtin, ConnKind, DestConfig, DestId, DestList, MAX_DESTS, PacketInfo, SchedFlags, SchedParams, Scheduler,
};

struct Service {
    sched: Builtin,
    list: DestList<MAX_DESTS>,
    ids: Vec<DestId>,
    now: u64,
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 1, last))
}

fn client(n: u32) -> PacketInfo {
    let src = IpAddr::V4(Ipv4Addr::from(0xC612_0000u32 + n));
    PacketInfo { proto: 6, src, dst: ip(200), sport: 1024 + (n % 60000) as u16, dport: 80, inverse: false }
}

impl Service {
    /// A service whose destinations are added in the order given; destination `i` (0-based)
    /// has address 198.18.1.(i+1) and is named by its index in `ids`.
    fn new(name: &str, weights: &[u32]) -> Service {
        Self::with_params(name, weights, SchedParams::default())
    }

    fn with_params(name: &str, weights: &[u32], params: SchedParams) -> Service {
        let mut sched = Builtin::by_name(name, &params).unwrap();
        let mut list = DestList::new();
        sched.init_service(list.as_slice()).unwrap();
        let mut ids = Vec::new();
        for (i, w) in weights.iter().enumerate() {
            let config = DestConfig { weight: *w, ..DestConfig::default() };
            ids.push(list.add(&mut sched, ip(i as u8 + 1), 80, config).unwrap());
        }
        Service { sched, list, ids, now: 0 }
    }

    /// The index (in adding order) of the destination picked for `packet`.
    fn pick_for(&mut self, packet: &PacketInfo) -> Option<usize> {
        let id = self.list.schedule(&mut self.sched, packet, self.now)?;
        self.ids.iter().position(|i| *i == id)
    }

    fn pick(&mut self) -> Option<usize> {
        self.pick_for(&client(1))
    }

    fn picks(&mut self, n: usize) -> Vec<Option<usize>> {
        (0..n).map(|_| self.pick()).collect()
    }

    fn bind(&mut self, dest: usize, kind: ConnKind, n: u32) {
        for _ in 0..n {
            assert!(self.list.bind(self.ids[dest], kind));
        }
    }

    fn unbind(&mut self, dest: usize, kind: ConnKind, n: u32) {
        for _ in 0..n {
            assert!(self.list.unbind(self.ids[dest], kind));
        }
    }

    fn edit(&mut self, dest: usize, config: DestConfig) {
        self.list.edit(&mut self.sched, ip(dest as u8 + 1), 80, config).unwrap();
    }

    fn remove(&mut self, dest: usize) {
        self.list.remove(&mut self.sched, ip(dest as u8 + 1), 80).unwrap();
    }
}

const A: Option<usize> = Some(0);
const B: Option<usize> = Some(1);
const C: Option<usize> = Some(2);

#[test]
fn rr_walks_newest_first() {
    let mut s = Service::new("rr", &[1, 1, 1]);
    assert_eq!(s.picks(6), [C, B, A, C, B, A]);
}

#[test]
fn rr_continues_after_the_removed_position() {
    let mut s = Service::new("rr", &[1, 1, 1]);
    assert_eq!(s.picks(2), [C, B]);
    s.remove(1); // B, the last pick, goes: the walk continues with its successor A.
    assert_eq!(s.picks(3), [A, C, A]);
}

#[test]
fn wrr_432_pattern_as_the_kernel() {
    let mut s = Service::new("wrr", &[4, 3, 2]);
    let expect = [C, B, A, A, B, A, C, B, A, C, B, A];
    assert_eq!(s.picks(12), expect);
}

#[test]
fn wrr_with_a_common_divisor_and_all_overloaded() {
    let mut s = Service::new("wrr", &[4, 2]);
    // gcd 2: A A B per period of (4 + 2) / 2 = 3.
    let picks = s.picks(6);
    assert_eq!(picks.iter().filter(|p| **p == A).count(), 4);
    assert_eq!(picks.iter().filter(|p| **p == B).count(), 2);
    s.edit(0, DestConfig { weight: 4, upper_threshold: 1, lower_threshold: 0 });
    s.edit(1, DestConfig { weight: 2, upper_threshold: 1, lower_threshold: 0 });
    s.bind(0, ConnKind::Active, 1);
    s.bind(1, ConnKind::Active, 1);
    assert_eq!(s.pick(), None, "every destination overloaded");
    s.unbind(1, ConnKind::Active, 1);
    assert_eq!(s.pick(), B);
}

#[test]
fn wrr_with_huge_weights_stays_cheap_when_all_are_overloaded() {
    let mut s = Service::new("wrr", &[65535, 1]);
    for d in 0..2 {
        s.edit(d, DestConfig { weight: if d == 0 { 65535 } else { 1 }, upper_threshold: 1, lower_threshold: 0 });
        s.bind(d, ConnKind::Inactive, 1);
    }
    assert_eq!(s.picks(3), [None, None, None]);
}

#[test]
fn lc_ignores_weight_but_not_zero_and_ties_go_to_the_newest() {
    let mut s = Service::new("lc", &[1, 100, 1]);
    assert_eq!(s.pick(), C, "all idle: the newest");
    s.bind(2, ConnKind::Inactive, 1);
    assert_eq!(s.pick(), B);
    s.bind(1, ConnKind::Active, 1); // B: 256
    s.bind(0, ConnKind::Inactive, 200); // A: 200
    assert_eq!(s.pick(), C, "C has overhead 1");
    s.edit(2, DestConfig { weight: 0, ..DestConfig::default() });
    assert_eq!(s.pick(), A, "weight 0 is skipped; A (200) beats B (256)");
}

#[test]
fn wlc_uses_weighted_cross_products() {
    let mut s = Service::new("wlc", &[1, 3]);
    s.bind(0, ConnKind::Active, 1); // A: 256 / 1
    s.bind(1, ConnKind::Active, 3); // B: 768 / 3
    assert_eq!(s.pick(), B, "equal ratios: the earlier in the list (B, the newest) keeps it");
    s.bind(1, ConnKind::Inactive, 1); // B: 769 / 3 > 256 / 1
    assert_eq!(s.pick(), A);
    s.edit(0, DestConfig { weight: 0, ..DestConfig::default() });
    assert_eq!(s.pick(), B, "weight 0 never wins");
}

#[test]
fn sed_counts_active_plus_one_and_nq_prefers_idle() {
    let mut s = Service::new("sed", &[1, 2]);
    s.bind(1, ConnKind::Active, 1); // B: (1+1)/2 = 1, A: 1/1 = 1 -> tie, B first
    assert_eq!(s.pick(), B);
    s.bind(1, ConnKind::Inactive, 50); // inactive ignored
    assert_eq!(s.pick(), B);
    s.bind(1, ConnKind::Active, 1); // B: 3/2 > 1/1
    assert_eq!(s.pick(), A);

    let mut s = Service::new("nq", &[1, 5, 1]);
    s.bind(2, ConnKind::Active, 1);
    s.bind(1, ConnKind::Active, 1);
    assert_eq!(s.pick(), A, "the idle server wins at once");
    s.bind(0, ConnKind::Active, 1); // A: 2/1, B: 2/5, C: 2/1
    assert_eq!(s.pick(), B);
}

#[test]
fn fo_and_ovf_take_the_highest_weight() {
    let mut s = Service::new("fo", &[5, 10, 10]);
    assert_eq!(s.pick(), C, "tie between B and C: the first in list order");
    s.edit(2, DestConfig { weight: 10, upper_threshold: 1, lower_threshold: 0 });
    s.bind(2, ConnKind::Inactive, 1);
    assert_eq!(s.pick(), B);

    let mut s = Service::new("ovf", &[2, 1]);
    assert_eq!(s.pick(), A);
    s.bind(0, ConnKind::Active, 2);
    assert_eq!(s.pick(), A, "active 2 does not exceed weight 2");
    s.bind(0, ConnKind::Active, 1);
    assert_eq!(s.pick(), B);
    s.bind(1, ConnKind::Active, 2);
    assert_eq!(s.pick(), None);
}

#[test]
fn overload_only_changes_on_bind_and_unbind() {
    let mut s = Service::new("rr", &[1, 1]);
    s.edit(1, DestConfig { weight: 1, upper_threshold: 2, lower_threshold: 1 });
    s.bind(1, ConnKind::Inactive, 2);
    assert_eq!(s.picks(3), [A, A, A], "B overloaded at 2 connections");
    // A connection of B becoming active does not touch the flag.
    s.list.get_mut(s.ids[1]).unwrap().activate();
    assert_eq!(s.pick(), A);
    s.unbind(1, ConnKind::Active, 1);
    assert_eq!(s.pick(), A, "1 connection is not below the lower threshold 1");
    s.unbind(1, ConnKind::Inactive, 1);
    assert_eq!(s.pick(), B);
}

#[test]
fn sh_fills_by_weight_and_falls_back_when_asked() {
    let mut s = Service::new("sh", &[1, 3]);
    let mut counts = [0usize; 2];
    for n in 0..4000 {
        counts[s.pick_for(&client(n)).unwrap()] += 1;
    }
    // 256 buckets, weights 1:3 filled in turn: B gets 192 buckets, A 64.
    let share = counts[1] as f64 / 4000.0;
    assert!((0.70..0.80).contains(&share), "B's share {share}");
    // The same client always lands on the same server.
    let first = s.pick_for(&client(7));
    assert_eq!(s.pick_for(&client(7)), first);
    // Quiesce B: its keys get no server without sh-fallback...
    let key_on_b = (0..4000).find(|n| s.pick_for(&client(*n)) == B).unwrap();
    s.edit(1, DestConfig { weight: 0, ..DestConfig::default() });
    assert_eq!(s.pick_for(&client(key_on_b)), None);
    // ...and A with it.
    let mut f =
        Service::with_params("sh", &[1, 3], SchedParams { flags: SchedFlags::SCHED1, ..SchedParams::default() });
    f.edit(1, DestConfig { weight: 0, ..DestConfig::default() });
    assert_eq!(f.pick_for(&client(key_on_b)), A);
}

#[test]
fn sh_port_flag_hashes_the_source_port() {
    let mut plain = Service::new("sh", &[1, 1, 1, 1]);
    let mut port =
        Service::with_params("sh", &[1, 1, 1, 1], SchedParams { flags: SchedFlags::SCHED2, ..SchedParams::default() });
    let from = |sport: u16| PacketInfo { sport, ..client(3) };
    let plain_picks: std::collections::BTreeSet<_> = (0..64).map(|p| plain.pick_for(&from(1000 + p))).collect();
    let port_picks: std::collections::BTreeSet<_> = (0..64).map(|p| port.pick_for(&from(1000 + p))).collect();
    assert_eq!(plain_picks.len(), 1, "without sh-port the port does not matter");
    assert!(port_picks.len() > 1, "with sh-port it does");
}

#[test]
fn dh_hashes_the_destination_and_rejects_unusable() {
    let mut s = Service::new("dh", &[1, 1, 1]);
    let to = |n: u8| PacketInfo { dst: IpAddr::V4(Ipv4Addr::new(203, 0, 113, n)), ..client(1) };
    let first = s.pick_for(&to(5));
    assert!(first.is_some());
    for n in 0..20 {
        assert_eq!(s.pick_for(&PacketInfo { src: ip(n), ..to(5) }), first, "the source does not matter");
    }
    let d = first.unwrap();
    s.edit(d, DestConfig { weight: 0, ..DestConfig::default() });
    assert_eq!(s.pick_for(&to(5)), None);
}

#[test]
fn mh_keeps_quiesced_slots_and_falls_back() {
    let mut s = Service::new("mh", &[1, 1, 1]);
    let key_on = |s: &mut Service, d: usize| (0..10_000).find(|n| s.pick_for(&client(*n)) == Some(d)).unwrap();
    let k = key_on(&mut s, 1);
    s.edit(1, DestConfig { weight: 0, ..DestConfig::default() });
    assert_eq!(s.pick_for(&client(k)), None, "the slot still names B, which takes no new connections");
    let mut f =
        Service::with_params("mh", &[1, 1, 1], SchedParams { flags: SchedFlags::SCHED1, ..SchedParams::default() });
    let k = key_on(&mut f, 1);
    f.edit(1, DestConfig { weight: 0, ..DestConfig::default() });
    assert!(matches!(f.pick_for(&client(k)), A | C));
}

#[test]
fn mh_refuses_more_destinations_than_slots() {
    let mut sched = Builtin::by_name("mh", &SchedParams { mh_size: 251, ..SchedParams::default() }).unwrap();
    let mut list = DestList::<MAX_DESTS>::new();
    sched.init_service(list.as_slice()).unwrap();
    for i in 0..251u32 {
        let addr = IpAddr::V4(Ipv4Addr::from(0xC612_0000 + i));
        list.add(&mut sched, addr, 80, DestConfig { weight: 1, ..DestConfig::default() }).unwrap();
    }
    let extra = list.add(&mut sched, ip(250), 81, DestConfig { weight: 1, ..DestConfig::default() });
    assert!(matches!(extra, Err(vs_sched::DestError::Sched(vs_sched::SchedError::TooManyDests))));
    assert_eq!(list.len(), 251, "the refused destination is not kept");
    assert!(Maglev::<4093>::new(4000, SchedFlags::empty()).is_err(), "not one of the kernel's primes");
    assert!(Maglev::<4093>::new(8191, SchedFlags::empty()).is_err(), "above the compiled capacity");
    assert_eq!(Maglev::<8191>::new(8191, SchedFlags::empty()).unwrap().size(), 8191);
}

#[test]
fn lblc_sticks_to_the_cached_server_until_it_is_overloaded() {
    let mut s = Service::new("lblc", &[2, 2]);
    let p = client(1);
    assert_eq!(s.pick_for(&p), B, "wlc on a miss");
    s.bind(1, ConnKind::Active, 2);
    assert_eq!(s.pick_for(&p), B, "cached, even though wlc would now choose A");
    s.bind(1, ConnKind::Active, 1); // B: 3 active > weight 2, and A has 0*2 < 2
    assert_eq!(s.pick_for(&p), A);
    s.unbind(1, ConnKind::Active, 3);
    assert_eq!(s.pick_for(&p), A, "the cache now names A");
}

#[test]
fn lblc_entries_expire_by_host_time() {
    let mut s = Service::new("lblc", &[1, 1]);
    let p = client(1);
    assert_eq!(s.pick_for(&p), B);
    s.bind(1, ConnKind::Active, 1);
    s.bind(0, ConnKind::Active, 2);
    // 23 hours later the entry is still there (only the 24 h full check removes it).
    for _ in 0..(23 * 60) {
        s.now += 60_000;
        s.sched.tick(s.list.as_slice(), s.now);
    }
    assert_eq!(s.pick_for(&p), B);
    // A day without use (and the 30-minute full-check cycle) removes it: wlc chooses again.
    for _ in 0..(25 * 60) {
        s.now += 60_000;
        s.sched.tick(s.list.as_slice(), s.now);
    }
    s.unbind(0, ConnKind::Active, 2);
    assert_eq!(s.pick_for(&p), A);
}

#[test]
fn lblcr_grows_its_set_and_sheds_after_expiration() {
    let mut s = Service::new("lblcr", &[1, 1, 4]);
    let p = client(1);
    assert_eq!(s.pick_for(&p), C);
    s.bind(2, ConnKind::Active, 5); // C: 5 > 4, A and B idle
    let second = s.pick_for(&p);
    assert!(matches!(second, A | B), "the set grows with the wlc pick");
    s.unbind(2, ConnKind::Active, 5);
    s.bind(second.unwrap(), ConnKind::Active, 1);
    assert_eq!(s.pick_for(&p), C, "the least loaded member of the set");
    let set = |s: &Service| match &s.sched {
        Builtin::Lblcr(l) => l.cached_set(p.dst).unwrap().to_vec(),
        _ => unreachable!(),
    };
    assert_eq!(set(&s), vec![s.ids[second.unwrap()], s.ids[2]], "newest member first");
    // Used every hour, the entry lives; once the set has been unchanged for the expiration
    // (24 h) the weighted most loaded member (`second`, 1/1 against C's 0/4) is shed.
    for _ in 0..24 {
        s.now += 3_600_000;
        assert_eq!(s.pick_for(&p), C);
    }
    assert_eq!(set(&s).len(), 2, "exactly 24 h is not yet past the expiration");
    s.now += 3_600_000;
    assert_eq!(s.pick_for(&p), C);
    assert_eq!(set(&s), vec![s.ids[2]]);
}

#[test]
fn twos_is_seeded_and_respects_eligibility() {
    let run = |seed| {
        let mut s = Service::with_params("twos", &[1, 2, 3, 0], SchedParams { seed, ..SchedParams::default() });
        s.edit(2, DestConfig { weight: 3, upper_threshold: 1, lower_threshold: 0 });
        s.bind(2, ConnKind::Inactive, 1);
        s.picks(300)
    };
    let a = run(42);
    assert_eq!(a, run(42), "same seed, same picks");
    assert_ne!(a, run(43));
    assert!(a.iter().all(|p| *p == A || *p == B), "C is overloaded, D has weight 0");
    let bs = a.iter().filter(|p| **p == B).count();
    assert!(bs > 150, "B (weight 2, idle like A) is drawn more often: {bs}/300");
}

#[test]
fn every_builtin_is_created_by_name() {
    for name in vs_sched::BUILTIN_NAMES {
        let s = Builtin::by_name(name, &SchedParams::default()).unwrap();
        assert_eq!(s.name(), name);
    }
    assert!(Builtin::by_name("nosuch", &SchedParams::default()).is_err());
    let mut reg = vs_sched::Registry::<4>::new();
    assert_eq!(reg.lookup("wlc"), Some(vs_sched::SchedulerKind::Builtin(3)));
    assert_eq!(reg.register("hrw"), Ok(0));
    assert_eq!(reg.register("hrw"), Err(vs_sched::RegistryError::Exists));
    assert_eq!(reg.register("rr"), Err(vs_sched::RegistryError::Exists));
    assert_eq!(reg.register("a-name-far-too-long-for-ipvs"), Err(vs_sched::RegistryError::Full));
    assert_eq!(reg.lookup("hrw"), Some(vs_sched::SchedulerKind::Plugin(0)));
    assert_eq!(SchedFlags::from_ipvsadm_name("mh-port"), Some(SchedFlags::SCHED2));
}

#[test]
fn destination_list_errors() {
    let mut sched = Builtin::by_name("wlc", &SchedParams::default()).unwrap();
    let mut list = DestList::<2>::new();
    let c = |w, u, l| DestConfig { weight: w, upper_threshold: u, lower_threshold: l };
    list.add(&mut sched, ip(1), 80, c(1, 0, 0)).unwrap();
    assert_eq!(list.add(&mut sched, ip(1), 80, c(1, 0, 0)), Err(vs_sched::DestError::Exists));
    assert_eq!(list.add(&mut sched, ip(2), 80, c(1, 5, 6)), Err(vs_sched::DestError::Range));
    assert_eq!(list.add(&mut sched, ip(2), 80, c(u32::MAX, 0, 0)), Err(vs_sched::DestError::Range));
    list.add(&mut sched, ip(2), 80, c(1, 0, 0)).unwrap();
    assert_eq!(list.add(&mut sched, ip(3), 80, c(1, 0, 0)), Err(vs_sched::DestError::Full));
    assert_eq!(list.edit(&mut sched, ip(3), 80, c(1, 0, 0)), Err(vs_sched::DestError::NotFound));
    assert_eq!(list.remove(&mut sched, ip(3), 80).err(), Some(vs_sched::DestError::NotFound));
    let removed = list.remove(&mut sched, ip(1), 80).unwrap();
    assert!(!removed.is_available());
    assert_eq!(list.as_slice()[0].addr, ip(2));
}
