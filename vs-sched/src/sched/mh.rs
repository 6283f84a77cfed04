//! mh: Maglev hashing (`ip_vs_mh.c`) with the kernel's hsiphash and fixed keys, its weight
//! scaling and its population order, so that tables match the kernel's slot for slot.

use crate::MAX_DESTS;
use crate::dest::Dest;
use crate::hash::{MH_KEY1, MH_KEY2, SipKey, fold_addr, gcd, hsiphash_u32};
use crate::scheduler::{PacketInfo, SchedError, SchedFlags, Scheduler};

/// The table sizes the kernel offers (`CONFIG_IP_VS_MH_TAB_INDEX` 8..17 picks one).
pub const PRIMES: [usize; 10] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];
/// The kernel's default table size (index 12).
pub const DEFAULT_SIZE: usize = 4093;
/// An empty slot.
const EMPTY: u16 = u16::MAX;

/// Per-destination permutation state while populating.
#[derive(Debug, Clone, Copy, Default)]
struct Setup {
    skip: usize,
    perm: usize,
    turns: u32,
}

/// Maglev hashing over a table of `size` slots, `size` one of [`PRIMES`] not above the
/// compiled capacity `CAP` (the kernel's choice is compile-time too, by Kconfig).
#[derive(Debug, Clone)]
pub struct Maglev<const CAP: usize = DEFAULT_SIZE> {
    table: [u16; CAP],
    size: usize,
    /// `IP_VS_MH_TAB_BITS`: half the Kconfig index of the size.
    tab_bits: u32,
    flags: SchedFlags,
    setup: [Setup; MAX_DESTS],
}

impl<const CAP: usize> Maglev<CAP> {
    /// A scheduler with a table of `size` slots.
    ///
    /// # Errors
    /// [`SchedError::BadParameter`] when `size` is not one of the kernel's primes or exceeds `CAP`.
    pub fn new(size: usize, flags: SchedFlags) -> Result<Self, SchedError> {
        let index = PRIMES.iter().position(|&p| p == size).ok_or(SchedError::BadParameter)?;
        if size > CAP {
            return Err(SchedError::BadParameter);
        }
        let kconfig_index = u32::try_from(index + 8).map_err(|_| SchedError::BadParameter)?;
        Ok(Maglev {
            table: [EMPTY; CAP],
            size,
            tab_bits: kconfig_index / 2,
            flags,
            setup: [Setup::default(); MAX_DESTS],
        })
    }

    /// The table size.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }

    /// The destination position in each slot (for tests and inspection).
    pub fn slots(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        self.table.iter().take(self.size).map(|&s| (s != EMPTY).then_some(usize::from(s)))
    }

    fn size_u32(&self) -> u32 {
        u32::try_from(self.size).unwrap_or(u32::MAX)
    }

    /// `hsiphash(offset + port + addr)`: the kernel's `ip_vs_mh_hashkey`.
    fn hash_key(addr: core::net::IpAddr, port: u16, key: SipKey, offset: u32) -> u32 {
        let v = offset.wrapping_add(u32::from(port)).wrapping_add(fold_addr(addr));
        hsiphash_u32(v, key)
    }

    fn rebuild(&mut self, dests: &[Dest]) -> Result<(), SchedError> {
        if dests.len() > self.size || dests.len() > MAX_DESTS {
            return Err(SchedError::TooManyDests);
        }
        let g = dests
            .iter()
            .filter(|d| d.last_weight > 0)
            .fold(0, |g, d| if g == 0 { d.last_weight } else { gcd(d.last_weight, g) });
        if g == 0 {
            // No destination has ever had a weight: the kernel empties the table.
            self.table = [EMPTY; CAP];
            return Ok(());
        }
        let max = dests.iter().map(|d| d.last_weight).max().unwrap_or(0) / g;
        let fls = u32::BITS - max.leading_zeros();
        let rshift = fls.saturating_sub(self.tab_bits);
        let m = self.size_u32();
        for (setup, d) in self.setup.iter_mut().zip(dests) {
            let offset = Self::hash_key(d.addr, d.port, MH_KEY1, 0) % m;
            let skip = Self::hash_key(d.addr, d.port, MH_KEY2, 0) % (m - 1) + 1;
            let scaled = (d.last_weight / g) >> rshift;
            let turns = if scaled != 0 { scaled } else { u32::from(d.last_weight != 0) };
            *setup = Setup { skip: skip as usize, perm: offset as usize, turns };
        }
        self.populate(dests.len());
        Ok(())
    }

    /// Maglev population: destinations in list order take turns; each places `turns` entries
    /// per round at the next free slot of its permutation, until every slot is filled.
    fn populate(&mut self, n: usize) {
        let m = self.size;
        // Every slot gets written, so the table itself marks what this population has taken
        // (the kernel keeps a separate bitmap; the result is the same).
        self.table = [EMPTY; CAP];
        let mut filled = 0usize;
        while filled < m {
            let mut i = 0usize;
            let mut placed_for_current = 0u32;
            while i < n {
                let Some(setup) = self.setup.get_mut(i) else { break };
                if setup.turns < 1 {
                    i += 1;
                    continue;
                }
                while self.table.get(setup.perm).is_some_and(|&s| s != EMPTY) {
                    setup.perm += setup.skip;
                    if setup.perm >= m {
                        setup.perm -= m;
                    }
                }
                if let Some(slot) = self.table.get_mut(setup.perm) {
                    *slot = u16::try_from(i).unwrap_or(EMPTY);
                }
                filled += 1;
                if filled == m {
                    return;
                }
                placed_for_current += 1;
                if placed_for_current >= setup.turns {
                    placed_for_current = 0;
                    i += 1;
                }
            }
        }
    }
}

/// Unusable for a new connection: weight 0 or overloaded.
fn unusable(d: &Dest) -> bool {
    d.weight == 0 || d.is_overloaded()
}

impl<const CAP: usize> Scheduler for Maglev<CAP> {
    fn name(&self) -> &str {
        "mh"
    }

    fn init_service(&mut self, dests: &[Dest]) -> Result<(), SchedError> {
        self.rebuild(dests)
    }

    fn add_dest(&mut self, dests: &[Dest], _index: usize) -> Result<(), SchedError> {
        self.rebuild(dests)
    }

    fn del_dest(&mut self, dests: &[Dest], _removed: &Dest, _index: usize) {
        // Fewer destinations always fit.
        let _ = self.rebuild(dests);
    }

    fn upd_dest(&mut self, dests: &[Dest], _index: usize) -> Result<(), SchedError> {
        self.rebuild(dests)
    }

    fn schedule(&mut self, dests: &[Dest], packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        let port = if self.flags.contains(SchedFlags::SCHED2) { packet.hash_port() } else { 0 };
        let addr = packet.hash_addr();
        let m = self.size_u32();
        let slot_of = |offset: u32| Self::hash_key(addr, port, MH_KEY1, offset) % m;
        let first = slot_of(0);
        let lookup = |slot: u32| {
            self.table
                .get(usize::try_from(slot).unwrap_or(usize::MAX))
                .copied()
                .filter(|&s| s != EMPTY)
                .map(usize::from)
        };
        let pick = lookup(first)?;
        if !unusable(dests.get(pick)?) {
            return Some(pick);
        }
        if !self.flags.contains(SchedFlags::SCHED1) {
            return None;
        }
        for offset in 0..m {
            let roffset = (offset + first) % m;
            let pick = lookup(slot_of(roffset))?;
            if !unusable(dests.get(pick)?) {
                return Some(pick);
            }
        }
        None
    }
}
