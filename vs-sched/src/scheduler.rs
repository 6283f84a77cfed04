//! The scheduler trait, modelled on IPVS's `struct ip_vs_scheduler` ops, and what a scheduler
//! is told about the packet it schedules.

use core::net::IpAddr;

use bitflags::bitflags;

use crate::dest::Dest;

bitflags! {
    /// Service scheduler flags (IPVS `IP_VS_SVC_F_SCHED1..3`, same bit values).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SchedFlags: u32 {
        /// `sh-fallback` / `mh-fallback`: look further when the hashed destination is unusable.
        const SCHED1 = 0x0008;
        /// `sh-port` / `mh-port`: hash the source port too.
        const SCHED2 = 0x0010;
        /// The third, unused scheduler flag.
        const SCHED3 = 0x0020;
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for SchedFlags {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "SchedFlags({=u32:#x})", self.bits());
    }
}

impl SchedFlags {
    /// The flag an ipvsadm `-b` name stands for (`sh-fallback`, `sh-port`, `mh-fallback`,
    /// `mh-port`, or the generic `flag-1` .. `flag-3`).
    #[must_use]
    pub fn from_ipvsadm_name(name: &str) -> Option<SchedFlags> {
        match name {
            "sh-fallback" | "mh-fallback" | "flag-1" => Some(SchedFlags::SCHED1),
            "sh-port" | "mh-port" | "flag-2" => Some(SchedFlags::SCHED2),
            "flag-3" => Some(SchedFlags::SCHED3),
            _ => None,
        }
    }
}

/// What a scheduler may look at in the packet that opens a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PacketInfo {
    /// Transport protocol number (6 TCP, 17 UDP, 132 SCTP, ...).
    pub proto: u8,
    /// Source address (the family is the packet's).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 when the protocol has none).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// True for "inverse" packets (an ICMP error about a reply): the hashing schedulers then
    /// use the destination where they would use the source.
    pub inverse: bool,
}

impl PacketInfo {
    /// The protocols whose first header bytes are ports (TCP, UDP, SCTP).
    #[must_use]
    pub fn has_ports(&self) -> bool {
        matches!(self.proto, 6 | 17 | 132)
    }

    /// The address sh and mh hash: the source, or the destination for inverse packets.
    #[must_use]
    pub fn hash_addr(&self) -> IpAddr {
        if self.inverse { self.dst } else { self.src }
    }

    /// The port sh-port / mh-port hash: the source port (destination port for inverse
    /// packets) of TCP, UDP and SCTP, 0 otherwise.
    #[must_use]
    pub fn hash_port(&self) -> u16 {
        match (self.has_ports(), self.inverse) {
            (false, _) => 0,
            (true, false) => self.sport,
            (true, true) => self.dport,
        }
    }
}

/// Why a scheduler refused a configuration change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SchedError {
    /// More destinations than the scheduler's table can hold (mh: more than its table size;
    /// the kernel answers EINVAL).
    TooManyDests,
    /// A parameter is out of range (for example an mh table size that is not one of the
    /// kernel's primes, or above the compiled capacity).
    BadParameter,
}

impl core::fmt::Display for SchedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SchedError::TooManyDests => "the scheduler's table cannot hold that many real servers",
            SchedError::BadParameter => "a scheduler parameter is out of range",
        })
    }
}

impl core::error::Error for SchedError {}

/// A scheduler, with IPVS's scheduler operations.
///
/// Every operation receives the service's destinations in IPVS list order: index 0 is the most
/// recently added destination. `schedule` returns an index into that slice. Schedulers keep
/// only fixed-size state and never allocate; `schedule` does work bounded by the number of
/// destinations (or by the table sizes fixed at compile time).
pub trait Scheduler {
    /// The scheduler's name (`rr`, `wlc`, ...).
    fn name(&self) -> &str;

    /// The service is created (or its scheduler changed) with these destinations.
    ///
    /// # Errors
    /// [`SchedError`] when the scheduler cannot serve these destinations.
    fn init_service(&mut self, dests: &[Dest]) -> Result<(), SchedError> {
        let _ = dests;
        Ok(())
    }

    /// The service is going away (or changing scheduler).
    fn done_service(&mut self) {}

    /// `dests[index]` was just added (at the head of the list).
    ///
    /// # Errors
    /// [`SchedError`] when the scheduler cannot serve the new set; the caller undoes the add.
    fn add_dest(&mut self, dests: &[Dest], index: usize) -> Result<(), SchedError> {
        let _ = (dests, index);
        Ok(())
    }

    /// `removed`, which stood at `index`, was just unlinked; `dests` is the list without it.
    fn del_dest(&mut self, dests: &[Dest], removed: &Dest, index: usize) {
        let _ = (dests, removed, index);
    }

    /// `dests[index]` was edited (weight or thresholds).
    ///
    /// # Errors
    /// [`SchedError`] when the scheduler cannot serve the new set.
    fn upd_dest(&mut self, dests: &[Dest], index: usize) -> Result<(), SchedError> {
        let _ = (dests, index);
        Ok(())
    }

    /// Host time passed (monotonic milliseconds): schedulers with timers (the lblc / lblcr
    /// cache GC) run them here. The owner calls it periodically, for example from its sweep.
    fn tick(&mut self, dests: &[Dest], now_ms: u64) {
        let _ = (dests, now_ms);
    }

    /// Chooses a destination for a new connection, or `None` ("no destination available").
    /// `now_ms` is the host's monotonic time (lblc / lblcr use it).
    fn schedule(&mut self, dests: &[Dest], packet: &PacketInfo, now_ms: u64) -> Option<usize>;
}

/// Implements [`Scheduler`] for an enum of schedulers by forwarding every operation to the
/// scheduler its `inner` / `inner_ref` methods return.
macro_rules! forward_scheduler {
    ($ty:ty) => {
        impl $crate::scheduler::Scheduler for $ty {
            fn name(&self) -> &str {
                self.inner_ref().name()
            }
            fn init_service(&mut self, dests: &[Dest]) -> Result<(), SchedError> {
                self.inner().init_service(dests)
            }
            fn done_service(&mut self) {
                self.inner().done_service();
            }
            fn add_dest(&mut self, dests: &[Dest], index: usize) -> Result<(), SchedError> {
                self.inner().add_dest(dests, index)
            }
            fn del_dest(&mut self, dests: &[Dest], removed: &Dest, index: usize) {
                self.inner().del_dest(dests, removed, index);
            }
            fn upd_dest(&mut self, dests: &[Dest], index: usize) -> Result<(), SchedError> {
                self.inner().upd_dest(dests, index)
            }
            fn tick(&mut self, dests: &[Dest], now_ms: u64) {
                self.inner().tick(dests, now_ms);
            }
            fn schedule(&mut self, dests: &[Dest], packet: &PacketInfo, now_ms: u64) -> Option<usize> {
                self.inner().schedule(dests, packet, now_ms)
            }
        }
    };
}
pub(crate) use forward_scheduler;

/// The position of the destination with this id, if it is still in the list.
pub(crate) fn position(dests: &[Dest], id: crate::dest::DestId) -> Option<usize> {
    dests.iter().position(|d| d.id == id)
}

/// `a/wa > b/wb`, without division, as the kernel's cross products (`loh * wD > doh * wL`).
pub(crate) fn more_loaded(load_a: u64, weight_a: u32, load_b: u64, weight_b: u32) -> bool {
    // Loads are below 2^41 and weights below 2^32: the products fit in u128, and in u64 in
    // every realistic case, which is the cheap path.
    match (load_a.checked_mul(u64::from(weight_b)), load_b.checked_mul(u64::from(weight_a))) {
        (Some(x), Some(y)) => x > y,
        _ => u128::from(load_a) * u128::from(weight_b) > u128::from(load_b) * u128::from(weight_a),
    }
}

/// The weighted-least-connection pick shared by wlc, sed, lblc and lblcr: the first
/// destination with weight > 0 that is not overloaded, then any later one (not overloaded)
/// whose `load/weight` is strictly lower. Ties keep the earlier destination.
pub(crate) fn weighted_least(dests: &[Dest], load: impl Fn(&Dest) -> u64) -> Option<usize> {
    let mut iter = dests.iter().enumerate();
    let (mut best, first) = iter.by_ref().find(|(_, d)| !d.is_overloaded() && d.weight > 0)?;
    let (mut best_load, mut best_weight) = (load(first), first.weight);
    for (i, d) in iter {
        if d.is_overloaded() {
            continue;
        }
        let dl = load(d);
        if more_loaded(best_load, best_weight, dl, d.weight) {
            best = i;
            best_load = dl;
            best_weight = d.weight;
        }
    }
    Some(best)
}
