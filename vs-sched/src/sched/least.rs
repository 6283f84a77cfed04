//! The least-connection family: lc, wlc, sed and nq (`ip_vs_lc.c`, `ip_vs_wlc.c`,
//! `ip_vs_sed.c`, `ip_vs_nq.c`). Stateless: each pick is a walk over the list.

use crate::dest::Dest;
use crate::scheduler::{PacketInfo, Scheduler, more_loaded, weighted_least};

/// The expected delay of sed and nq: active connections + 1 (inactive ones are ignored).
fn expected_delay(d: &Dest) -> u64 {
    u64::from(d.active) + 1
}

/// lc: the smallest `active × 256 + inactive` among destinations that are not overloaded and
/// have a weight; weight does not otherwise matter; ties go to the first in list order.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastConnection;

impl Scheduler for LeastConnection {
    fn name(&self) -> &str {
        "lc"
    }

    fn schedule(&mut self, dests: &[Dest], _packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if d.is_overloaded() || d.weight == 0 {
                continue;
            }
            let load = d.overhead();
            if best.is_none_or(|(_, b)| load < b) {
                best = Some((i, load));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// wlc (the IPVS default): the smallest `(active × 256 + inactive) / weight`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightedLeastConnection;

impl Scheduler for WeightedLeastConnection {
    fn name(&self) -> &str {
        "wlc"
    }

    fn schedule(&mut self, dests: &[Dest], _packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        weighted_least(dests, Dest::overhead)
    }
}

/// sed: the smallest `(active + 1) / weight`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShortestExpectedDelay;

impl Scheduler for ShortestExpectedDelay {
    fn name(&self) -> &str {
        "sed"
    }

    fn schedule(&mut self, dests: &[Dest], _packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        weighted_least(dests, expected_delay)
    }
}

/// nq: the first idle destination (no active connections) in list order, else the sed pick.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverQueue;

impl Scheduler for NeverQueue {
    fn name(&self) -> &str {
        "nq"
    }

    fn schedule(&mut self, dests: &[Dest], _packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        let mut best: Option<(usize, u64, u32)> = None;
        for (i, d) in dests.iter().enumerate() {
            if d.is_overloaded() || d.weight == 0 {
                continue;
            }
            if d.active == 0 {
                return Some(i);
            }
            let load = expected_delay(d);
            if best.is_none_or(|(_, bl, bw)| more_loaded(bl, bw, load, d.weight)) {
                best = Some((i, load, d.weight));
            }
        }
        best.map(|(i, _, _)| i)
    }
}
