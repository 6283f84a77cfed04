//! wrr: weighted round robin (`ip_vs_wrr.c`), the interleaved gcd / max-weight stepping.

use crate::dest::{Dest, DestId};
use crate::hash::gcd;
use crate::scheduler::{PacketInfo, Scheduler, position};

/// Weighted round robin. Passes over the list test `weight >= cw`; after each pass `cw` drops
/// by the gcd of the weights and wraps to the maximum.
#[derive(Debug, Clone, Default)]
pub struct WeightedRoundRobin {
    /// Current position; `None` is the list head.
    cl: Option<DestId>,
    /// Current weight.
    cw: i64,
    /// Maximum weight less (gcd - 1), so that the last pass tests `weight >= 1`.
    mw: i64,
    /// Decreasing interval: the gcd of the positive weights.
    di: i64,
}

impl WeightedRoundRobin {
    /// A scheduler for an empty service.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn recompute(dests: &[Dest]) -> (i64, i64) {
        let g = dests.iter().filter(|d| d.weight > 0).fold(0, |g, d| if g == 0 { d.weight } else { gcd(d.weight, g) });
        let di = i64::from(g.max(1));
        let max = dests.iter().map(|d| i64::from(d.weight)).max().unwrap_or(0);
        (di, max - (di - 1))
    }

    fn dest_changed(&mut self, dests: &[Dest]) {
        self.cl = None;
        let (di, mw) = Self::recompute(dests);
        self.di = di;
        self.mw = mw;
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }
}

impl Scheduler for WeightedRoundRobin {
    fn name(&self) -> &str {
        "wrr"
    }

    fn init_service(&mut self, dests: &[Dest]) -> Result<(), crate::SchedError> {
        self.cl = None;
        let (di, mw) = Self::recompute(dests);
        self.di = di;
        self.mw = mw;
        self.cw = mw;
        Ok(())
    }

    fn add_dest(&mut self, dests: &[Dest], _index: usize) -> Result<(), crate::SchedError> {
        self.dest_changed(dests);
        Ok(())
    }

    fn del_dest(&mut self, dests: &[Dest], _removed: &Dest, _index: usize) {
        self.dest_changed(dests);
    }

    fn upd_dest(&mut self, dests: &[Dest], _index: usize) -> Result<(), crate::SchedError> {
        self.dest_changed(dests);
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], _packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        if self.mw == 0 {
            return None;
        }
        let n = dests.len();
        let last = self.cl.and_then(|id| position(dests, id));
        // The best weight any destination could match this time; passes with cw above it
        // cannot succeed and are skipped in one step below (same result as walking them).
        let best_weight = dests.iter().filter(|d| !d.is_overloaded()).map(|d| i64::from(d.weight)).max().unwrap_or(0);
        let mut start = last.map_or(0, |p| p + 1);
        let mut stop: Option<usize> = None;
        let (mut last_pass, mut restarted) = (false, false);
        loop {
            for i in start..n {
                let Some(d) = dests.get(i) else { break };
                if !d.is_overloaded() && i64::from(d.weight) >= self.cw {
                    self.cl = Some(d.id);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(d.id);
                    return None;
                }
            }
            start = 0;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
            // Fast-forward over whole passes that must fail: nothing reaches cw, no stop mark
            // is set, and the next decrement neither wraps nor starts the last pass.
            if stop.is_none() && self.cw > best_weight {
                let floor = best_weight.max(self.di);
                if self.cw - self.di > floor {
                    let steps = (self.cw - floor - 1) / self.di;
                    self.cw -= steps * self.di;
                }
            }
        }
    }
}
