//! sh (source hashing, `ip_vs_sh.c`) and dh (destination hashing, `ip_vs_dh.c`): 256-bucket
//! tables filled in list order, indexed by the kernel's golden-ratio `hash_32`.

use crate::dest::Dest;
use crate::hash::{fold_addr, hash_32};
use crate::scheduler::{PacketInfo, SchedFlags, Scheduler};

/// Table size: `CONFIG_IP_VS_SH_TAB_BITS` / `CONFIG_IP_VS_DH_TAB_BITS`, 8 by default.
pub const TAB_BITS: u32 = 8;
/// Buckets in an sh or dh table.
pub const TAB_SIZE: usize = 1 << TAB_BITS;
/// An empty bucket.
const EMPTY: u16 = u16::MAX;

/// A bucket table of destination positions in list order.
#[derive(Debug, Clone)]
struct Buckets([u16; TAB_SIZE]);

impl Default for Buckets {
    fn default() -> Self {
        Buckets([EMPTY; TAB_SIZE])
    }
}

impl Buckets {
    /// Fills the buckets walking the list round robin; destination `i` takes `turns(i)`
    /// consecutive buckets (at least one).
    fn fill(&mut self, dests: &[Dest], turns: impl Fn(&Dest) -> u32) {
        if dests.is_empty() {
            self.0 = [EMPTY; TAB_SIZE];
            return;
        }
        let (mut pos, mut taken) = (0usize, 0u32);
        for bucket in &mut self.0 {
            let Some(d) = dests.get(pos) else { break };
            *bucket = u16::try_from(pos).unwrap_or(EMPTY);
            taken += 1;
            if taken >= turns(d) {
                pos = (pos + 1) % dests.len();
                taken = 0;
            }
        }
    }

    fn owners(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        self.0.iter().map(|&s| (s != EMPTY).then_some(usize::from(s)))
    }

    fn get(&self, index: u32) -> Option<usize> {
        let slot = *self.0.get(usize::try_from(index).ok()? % TAB_SIZE)?;
        (slot != EMPTY).then_some(usize::from(slot))
    }
}

/// Unusable for a new connection: weight 0 or overloaded.
fn unusable(d: &Dest) -> bool {
    d.weight == 0 || d.is_overloaded()
}

/// sh: the source address (and with `sh-port` the source port) picks one of 256 buckets,
/// which destinations fill in proportion to their weights. With `sh-fallback` an unusable
/// destination sends the search on through rehashed offsets.
#[derive(Debug, Clone, Default)]
pub struct SourceHashing {
    buckets: Buckets,
    flags: SchedFlags,
}

impl SourceHashing {
    /// A scheduler with the service's scheduler flags.
    #[must_use]
    pub fn new(flags: SchedFlags) -> Self {
        SourceHashing { buckets: Buckets::default(), flags }
    }

    /// The bucket for a key and a probe offset: `(offset + hash_32(port + addr, 8)) & 255`.
    fn bucket(key: u32, offset: u32) -> u32 {
        offset.wrapping_add(hash_32(key, TAB_BITS)) & (TAB_SIZE as u32 - 1)
    }

    /// The destination position in each bucket (for tests and inspection).
    pub fn buckets(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        self.buckets.owners()
    }

    fn reassign(&mut self, dests: &[Dest]) {
        self.buckets.fill(dests, |d| d.weight);
    }
}

impl Scheduler for SourceHashing {
    fn name(&self) -> &str {
        "sh"
    }

    fn init_service(&mut self, dests: &[Dest]) -> Result<(), crate::SchedError> {
        self.reassign(dests);
        Ok(())
    }

    fn add_dest(&mut self, dests: &[Dest], _index: usize) -> Result<(), crate::SchedError> {
        self.reassign(dests);
        Ok(())
    }

    fn del_dest(&mut self, dests: &[Dest], _removed: &Dest, _index: usize) {
        self.reassign(dests);
    }

    fn upd_dest(&mut self, dests: &[Dest], _index: usize) -> Result<(), crate::SchedError> {
        self.reassign(dests);
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        let port = if self.flags.contains(SchedFlags::SCHED2) { packet.hash_port() } else { 0 };
        let key = u32::from(port).wrapping_add(fold_addr(packet.hash_addr()));
        let first = Self::bucket(key, 0);
        let pick = self.buckets.get(first)?;
        if !unusable(dests.get(pick)?) {
            return Some(pick);
        }
        if !self.flags.contains(SchedFlags::SCHED1) {
            return None;
        }
        for offset in 0..TAB_SIZE as u32 {
            let roffset = (offset + first) % TAB_SIZE as u32;
            let pick = self.buckets.get(Self::bucket(key, roffset))?;
            if !unusable(dests.get(pick)?) {
                return Some(pick);
            }
        }
        None
    }
}

/// dh: the destination address picks one of 256 buckets, one per destination in turn.
#[derive(Debug, Clone, Default)]
pub struct DestinationHashing {
    buckets: Buckets,
}

impl DestinationHashing {
    /// A scheduler for an empty service.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The destination position in each bucket (for tests and inspection).
    pub fn buckets(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        self.buckets.owners()
    }
}

impl Scheduler for DestinationHashing {
    fn name(&self) -> &str {
        "dh"
    }

    fn init_service(&mut self, dests: &[Dest]) -> Result<(), crate::SchedError> {
        self.buckets.fill(dests, |_| 1);
        Ok(())
    }

    fn add_dest(&mut self, dests: &[Dest], _index: usize) -> Result<(), crate::SchedError> {
        self.buckets.fill(dests, |_| 1);
        Ok(())
    }

    fn del_dest(&mut self, dests: &[Dest], _removed: &Dest, _index: usize) {
        self.buckets.fill(dests, |_| 1);
    }

    // No upd_dest: the kernel does not rebuild dh on an edit, and an edit moves nothing.

    fn schedule(&mut self, dests: &[Dest], packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        let pick = self.buckets.get(hash_32(fold_addr(packet.dst), TAB_BITS))?;
        let d = dests.get(pick)?;
        (d.is_available() && !unusable(d)).then_some(pick)
    }
}
