//! twos: power of two choices (`ip_vs_twos.c`), with a generator the host seeds.

use crate::dest::Dest;
use crate::rng::Rng;
use crate::scheduler::{PacketInfo, Scheduler};

/// Power of two choices: two weighted random picks, then the less loaded of the two (by
/// `(active × 256 + inactive) / weight`), the first pick on a tie.
#[derive(Debug, Clone)]
pub struct TwoChoices {
    rng: Rng,
}

impl TwoChoices {
    /// A scheduler drawing from a generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        TwoChoices { rng: Rng::new(seed) }
    }
}

fn eligible(d: &Dest) -> bool {
    !d.is_overloaded() && d.weight > 0
}

impl Scheduler for TwoChoices {
    fn name(&self) -> &str {
        "twos"
    }

    fn schedule(&mut self, dests: &[Dest], _packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        let total: u64 = dests.iter().filter(|d| eligible(d)).map(|d| u64::from(d.weight)).sum();
        if total == 0 {
            return None;
        }
        // Random weights in [0, total], as the kernel's `prandom_u32() % (total + 1)`.
        let span = total + 1;
        let mut r1 = i128::from(u64::from(self.rng.next_u32()) % span);
        let mut r2 = i128::from(u64::from(self.rng.next_u32()) % span);
        let (mut c1, mut c2) = (None, None);
        for (i, d) in dests.iter().enumerate().filter(|(_, d)| eligible(d)) {
            r1 -= i128::from(d.weight);
            r2 -= i128::from(d.weight);
            if r1 <= 0 && c1.is_none() {
                c1 = Some((i, d.weight, d.overhead()));
            }
            if r2 <= 0 && c2.is_none() {
                c2 = Some((i, d.weight, d.overhead()));
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        let (i1, w1, o1) = c1?;
        match c2 {
            Some((i2, w2, o2)) if u128::from(w2) * u128::from(o1) > u128::from(w1) * u128::from(o2) => Some(i2),
            _ => Some(i1),
        }
    }
}
