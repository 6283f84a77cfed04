//! rr: round robin (`ip_vs_rr.c`).

use crate::dest::{Dest, DestId};
use crate::scheduler::{PacketInfo, Scheduler, position};

/// Round robin: walk on from the last pick, wrapping, to the first destination that is not
/// overloaded and has a weight; the last pick is examined last.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    /// The last pick; `None` is the list head.
    last: Option<DestId>,
}

impl RoundRobin {
    /// A scheduler positioned at the list head.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &str {
        "rr"
    }

    fn init_service(&mut self, _dests: &[Dest]) -> Result<(), crate::SchedError> {
        self.last = None;
        Ok(())
    }

    fn del_dest(&mut self, dests: &[Dest], removed: &Dest, index: usize) {
        // The kernel steps the position back to the removed entry's predecessor, so that the
        // walk continues with its successor.
        if self.last == Some(removed.id) {
            self.last = index.checked_sub(1).and_then(|i| dests.get(i)).map(|d| d.id);
        }
    }

    fn schedule(&mut self, dests: &[Dest], _packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        let n = dests.len();
        let start = self.last.and_then(|id| position(dests, id)).map_or(0, |p| p + 1);
        let pick = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| dests.get(i).is_some_and(|d| !d.is_overloaded() && d.weight > 0))?;
        self.last = dests.get(pick).map(|d| d.id);
        Some(pick)
    }
}
