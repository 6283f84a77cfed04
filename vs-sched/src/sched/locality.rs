//! lblc and lblcr: locality-based least connection, without and with replication
//! (`ip_vs_lblc.c`, `ip_vs_lblcr.c`). A cache maps a packet's destination address to a real
//! server (lblc) or a set of them (lblcr); misses and overloaded entries fall back to wlc.
//!
//! The kernel's cache is a chained hash table that grows without bound and is trimmed by a
//! 60-second timer. Here it has a fixed capacity (`SETS` × 4 ways): when a set is full the
//! least recently used entry makes room. The timer's rules are kept, driven by host time
//! through [`Scheduler::tick`]: every 60 s, entries unused for 6 minutes are collected while
//! the cache is above its soft limit (3/4 of the capacity here, 16 × buckets in the kernel),
//! and every 30th run removes every entry unused for the expiration time (24 h by default,
//! the `lblc_expiration` / `lblcr_expiration` sysctls).

use core::net::IpAddr;

use heapless::Vec;

use crate::dest::{Dest, DestId};
use crate::hash::{fold_addr, hash_32};
use crate::scheduler::{PacketInfo, Scheduler, position, weighted_least};

/// Ways per cache set.
pub const WAYS: usize = 4;
/// Default number of cache sets (512 entries).
pub const DEFAULT_SETS: usize = 128;
/// Most destinations in one lblcr set.
pub const SET_CAPACITY: usize = 8;
/// GC period (`CHECK_EXPIRE_INTERVAL`).
pub const CHECK_INTERVAL_MS: u64 = 60_000;
/// Idle time after which an entry may be collected when over the soft limit (`ENTRY_TIMEOUT`).
pub const ENTRY_TIMEOUT_MS: u64 = 6 * 60_000;
/// Default expiration of the full check (`DEFAULT_EXPIRATION`, 24 h).
pub const DEFAULT_EXPIRATION_MS: u64 = 24 * 3_600_000;
/// Every this many GC runs is a full expiration check (`COUNT_FOR_FULL_EXPIRATION`).
const FULL_CHECK_EVERY: u32 = 30;
/// At most this many missed GC periods are caught up in one tick (a full-check cycle).
const MAX_CATCH_UP: u32 = FULL_CHECK_EVERY + 1;

/// The cached destinations for one address: one for lblc, a set (newest first) for lblcr.
#[derive(Debug, Clone, Default)]
struct Targets {
    dests: Vec<DestId, SET_CAPACITY>,
    /// When the set last changed (lblcr).
    modified: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    addr: IpAddr,
    last_use: u64,
    targets: Targets,
}

/// The fixed-capacity destination-address cache with the kernel's expiry rules.
#[derive(Debug, Clone)]
struct Cache<const SETS: usize> {
    sets: [[Option<Entry>; WAYS]; SETS],
    entries: usize,
    expiration_ms: u64,
    next_check: Option<u64>,
    counter: u32,
    rover: usize,
}

impl<const SETS: usize> Cache<SETS> {
    fn new() -> Self {
        Cache {
            sets: core::array::from_fn(|_| core::array::from_fn(|_| None)),
            entries: 0,
            expiration_ms: DEFAULT_EXPIRATION_MS,
            next_check: None,
            counter: 1,
            rover: 0,
        }
    }

    fn capacity() -> usize {
        SETS * WAYS
    }

    fn soft_limit() -> usize {
        Self::capacity() * 3 / 4
    }

    fn set_index(addr: IpAddr) -> usize {
        let bits = usize::BITS - SETS.max(1).leading_zeros() - 1;
        usize::try_from(hash_32(fold_addr(addr), bits)).unwrap_or(0) % SETS.max(1)
    }

    fn get(&self, addr: IpAddr) -> Option<&Entry> {
        let set = self.sets.get(Self::set_index(addr))?;
        set.iter().flatten().find(|e| e.addr == addr)
    }

    fn get_mut(&mut self, addr: IpAddr) -> Option<&mut Entry> {
        let set = self.sets.get_mut(Self::set_index(addr))?;
        set.iter_mut().flatten().find(|e| e.addr == addr)
    }

    /// Inserts a new entry for `addr` (which must be absent), evicting the least recently used
    /// entry of its set when the set is full.
    fn insert(&mut self, addr: IpAddr, targets: Targets, now: u64) {
        let Some(set) = self.sets.get_mut(Self::set_index(addr)) else {
            return;
        };
        let slot = match set.iter().position(Option::is_none) {
            Some(free) => {
                self.entries += 1;
                free
            }
            None => {
                set.iter().enumerate().min_by_key(|(_, e)| e.as_ref().map_or(0, |e| e.last_use)).map_or(0, |(i, _)| i)
            }
        };
        if let Some(way) = set.get_mut(slot) {
            *way = Some(Entry { addr, last_use: now, targets });
        }
    }

    /// Forgets a destination that left the service.
    fn forget(&mut self, id: DestId) {
        for way in self.sets.iter_mut().flatten() {
            if let Some(e) = way {
                e.targets.dests.retain(|d| *d != id);
                if e.targets.dests.is_empty() {
                    *way = None;
                    self.entries -= 1;
                }
            }
        }
    }

    /// Runs the GC for every 60-second period that has passed (at most a full cycle's worth).
    fn tick(&mut self, now: u64) {
        let next = *self.next_check.get_or_insert(now.saturating_add(CHECK_INTERVAL_MS));
        if now < next {
            return;
        }
        let mut due = next;
        let mut runs = 0;
        while due <= now && runs < MAX_CATCH_UP {
            self.check_expire(now);
            due = due.saturating_add(CHECK_INTERVAL_MS);
            runs += 1;
        }
        self.next_check = Some(if due <= now { now.saturating_add(CHECK_INTERVAL_MS) } else { due });
    }

    /// One run of the kernel's `check_expire` timer.
    fn check_expire(&mut self, now: u64) {
        if self.counter.is_multiple_of(FULL_CHECK_EVERY) {
            let expiration = self.expiration_ms;
            self.collect(now, expiration, usize::MAX);
            self.counter = 1;
            return;
        }
        let limit = Self::soft_limit();
        if self.entries <= limit {
            self.counter += 1;
            return;
        }
        let goal = ((self.entries - limit) * 4 / 3).min(limit / 2);
        self.collect(now, ENTRY_TIMEOUT_MS, goal);
    }

    /// Removes entries idle for at least `idle_ms`, set by set from after the rover, until
    /// `goal` entries are gone (checked after each set, as the kernel checks per bucket).
    fn collect(&mut self, now: u64, idle_ms: u64, goal: usize) {
        let mut removed = 0usize;
        let mut j = self.rover;
        for _ in 0..SETS {
            j = (j + 1) % SETS.max(1);
            if let Some(set) = self.sets.get_mut(j) {
                for way in set.iter_mut() {
                    if way.as_ref().is_some_and(|e| now >= e.last_use.saturating_add(idle_ms)) {
                        *way = None;
                        self.entries -= 1;
                        removed += 1;
                    }
                }
            }
            if removed >= goal {
                break;
            }
        }
        self.rover = j;
    }
}

/// lblc's and lblcr's "overloaded": more active connections than weight while some
/// destination of the service has active × 2 below its weight.
fn locally_overloaded(d: &Dest, dests: &[Dest]) -> bool {
    d.active > d.weight && dests.iter().any(|o| u64::from(o.active) * 2 < u64::from(o.weight))
}

/// lblc: the cached server for the destination address while it is usable, else wlc.
#[derive(Debug, Clone)]
pub struct Lblc<const SETS: usize = DEFAULT_SETS> {
    cache: Cache<SETS>,
}

impl<const SETS: usize> Default for Lblc<SETS> {
    fn default() -> Self {
        Lblc { cache: Cache::new() }
    }
}

impl<const SETS: usize> Lblc<SETS> {
    /// A scheduler with an empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `lblc_expiration` (default 24 h).
    pub fn set_expiration_ms(&mut self, ms: u64) {
        self.cache.expiration_ms = ms;
    }

    /// Number of cached addresses.
    #[must_use]
    pub fn cached(&self) -> usize {
        self.cache.entries
    }

    /// The server cached for a destination address.
    #[must_use]
    pub fn cached_for(&self, addr: IpAddr) -> Option<DestId> {
        self.cache.get(addr).and_then(|e| e.targets.dests.first().copied())
    }
}

impl<const SETS: usize> Scheduler for Lblc<SETS> {
    fn name(&self) -> &str {
        "lblc"
    }

    fn del_dest(&mut self, _dests: &[Dest], removed: &Dest, _index: usize) {
        self.cache.forget(removed.id);
    }

    fn tick(&mut self, _dests: &[Dest], now_ms: u64) {
        self.cache.tick(now_ms);
    }

    fn schedule(&mut self, dests: &[Dest], packet: &PacketInfo, now_ms: u64) -> Option<usize> {
        self.cache.tick(now_ms);
        let addr = packet.dst;
        if let Some(entry) = self.cache.get_mut(addr) {
            entry.last_use = now_ms;
            let cached = entry.targets.dests.first().and_then(|id| position(dests, *id));
            if let Some(i) =
                cached.filter(|&i| dests.get(i).is_some_and(|d| d.weight > 0 && !locally_overloaded(d, dests)))
            {
                return Some(i);
            }
            let pick = weighted_least(dests, Dest::overhead)?;
            let id = dests.get(pick)?.id;
            if entry.targets.dests.first() != Some(&id) {
                entry.targets.dests.clear();
                let _ = entry.targets.dests.push(id);
                entry.last_use = now_ms;
            }
            return Some(pick);
        }
        let pick = weighted_least(dests, Dest::overhead)?;
        let mut targets = Targets { dests: Vec::new(), modified: now_ms };
        let _ = targets.dests.push(dests.get(pick)?.id);
        self.cache.insert(addr, targets, now_ms);
        Some(pick)
    }
}

/// lblcr: the least loaded server of the cached set for the destination address; the set grows
/// when its best is overloaded and sheds its most loaded member when unchanged for the
/// expiration time.
#[derive(Debug, Clone)]
pub struct Lblcr<const SETS: usize = DEFAULT_SETS> {
    cache: Cache<SETS>,
}

impl<const SETS: usize> Default for Lblcr<SETS> {
    fn default() -> Self {
        Lblcr { cache: Cache::new() }
    }
}

impl<const SETS: usize> Lblcr<SETS> {
    /// A scheduler with an empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `lblcr_expiration` (default 24 h).
    pub fn set_expiration_ms(&mut self, ms: u64) {
        self.cache.expiration_ms = ms;
    }

    /// The server set cached for a destination address, newest first.
    #[must_use]
    pub fn cached_set(&self, addr: IpAddr) -> Option<&[DestId]> {
        self.cache.get(addr).map(|e| e.targets.dests.as_slice())
    }
}

/// The weighted least loaded member of a set (`ip_vs_dest_set_min`).
fn set_min(set: &[DestId], dests: &[Dest]) -> Option<usize> {
    let mut members = set.iter().filter_map(|id| position(dests, *id));
    let mut least = members.by_ref().find(|&i| dests.get(i).is_some_and(|d| !d.is_overloaded() && d.weight > 0))?;
    for i in members {
        let (Some(d), Some(l)) = (dests.get(i), dests.get(least)) else {
            continue;
        };
        if !d.is_overloaded() && crate::scheduler::more_loaded(l.overhead(), l.weight, d.overhead(), d.weight) {
            least = i;
        }
    }
    Some(least)
}

/// The weighted most loaded member of a set (`ip_vs_dest_set_max`).
fn set_max(set: &[DestId], dests: &[Dest]) -> Option<DestId> {
    let mut members = set.iter().filter_map(|id| position(dests, *id));
    let mut most = members.by_ref().find(|&i| dests.get(i).is_some_and(|d| d.weight > 0))?;
    for i in members {
        let (Some(d), Some(m)) = (dests.get(i), dests.get(most)) else {
            continue;
        };
        if d.weight > 0 && crate::scheduler::more_loaded(d.overhead(), d.weight, m.overhead(), m.weight) {
            most = i;
        }
    }
    dests.get(most).map(|d| d.id)
}

impl<const SETS: usize> Scheduler for Lblcr<SETS> {
    fn name(&self) -> &str {
        "lblcr"
    }

    fn del_dest(&mut self, _dests: &[Dest], removed: &Dest, _index: usize) {
        self.cache.forget(removed.id);
    }

    fn tick(&mut self, _dests: &[Dest], now_ms: u64) {
        self.cache.tick(now_ms);
    }

    fn schedule(&mut self, dests: &[Dest], packet: &PacketInfo, now_ms: u64) -> Option<usize> {
        self.cache.tick(now_ms);
        let addr = packet.dst;
        let expiration = self.cache.expiration_ms;
        if let Some(entry) = self.cache.get_mut(addr) {
            entry.last_use = now_ms;
            let best = set_min(&entry.targets.dests, dests);
            let set = &mut entry.targets;
            if set.dests.len() > 1
                && now_ms > set.modified.saturating_add(expiration)
                && let Some(most) = set_max(&set.dests, dests)
            {
                set.dests.retain(|d| *d != most);
                set.modified = now_ms;
            }
            if let Some(i) = best.filter(|&i| dests.get(i).is_some_and(|d| !locally_overloaded(d, dests))) {
                return Some(i);
            }
            let pick = weighted_least(dests, Dest::overhead)?;
            let id = dests.get(pick)?.id;
            if !set.dests.contains(&id) && set.dests.insert(0, id).is_ok() {
                set.modified = now_ms;
            }
            return Some(pick);
        }
        let pick = weighted_least(dests, Dest::overhead)?;
        let mut targets = Targets { dests: Vec::new(), modified: now_ms };
        let _ = targets.dests.push(dests.get(pick)?.id);
        self.cache.insert(addr, targets, now_ms);
        Some(pick)
    }
}
