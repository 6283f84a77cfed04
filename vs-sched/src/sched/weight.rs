//! The weight-ordered schedulers: fo (weighted failover, `ip_vs_fo.c`) and ovf (weighted
//! overflow, `ip_vs_ovf.c`).

use crate::dest::Dest;
use crate::scheduler::{PacketInfo, Scheduler};

/// The first destination of highest weight among those `usable`.
fn highest_weight(dests: &[Dest], usable: impl Fn(&Dest) -> bool) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for (i, d) in dests.iter().enumerate() {
        if usable(d) && best.is_none_or(|(_, w)| d.weight > w) {
            best = Some((i, d.weight));
        }
    }
    best.map(|(i, _)| i)
}

/// fo: the destination with the highest weight that is not overloaded; ties go to the first.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightedFailover;

impl Scheduler for WeightedFailover {
    fn name(&self) -> &str {
        "fo"
    }

    fn schedule(&mut self, dests: &[Dest], _packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        highest_weight(dests, |d| !d.is_overloaded() && d.weight > 0)
    }
}

/// ovf: the highest-weight destination whose active connections do not exceed its weight.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightedOverflow;

impl Scheduler for WeightedOverflow {
    fn name(&self) -> &str {
        "ovf"
    }

    fn schedule(&mut self, dests: &[Dest], _packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        highest_weight(dests, |d| !d.is_overloaded() && d.weight != 0 && d.active <= d.weight)
    }
}
