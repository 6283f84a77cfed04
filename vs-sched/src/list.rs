//! A service's destination list in IPVS order (newest first), with IPVS's add / edit / delete
//! rules and error cases, calling the scheduler's hooks.

use core::net::IpAddr;

use heapless::Vec;

use crate::dest::{ConnKind, Dest, DestId};
use crate::scheduler::{PacketInfo, SchedError, Scheduler};

/// Why a destination change was refused (the kernel's errno in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DestError {
    /// The (address, port) is already a destination of the service (EEXIST).
    Exists,
    /// No such destination (ENOENT).
    NotFound,
    /// Weight out of range, or lower threshold above the upper one (ERANGE).
    Range,
    /// The list is full (the fixed capacity chosen at start).
    Full,
    /// The scheduler cannot serve the new list (mh: more destinations than slots, EINVAL).
    Sched(SchedError),
}

impl core::fmt::Display for DestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DestError::Exists => f.write_str("the real server is already part of the service"),
            DestError::NotFound => f.write_str("no such real server in the service"),
            DestError::Range => f.write_str("weight out of range, or lower threshold above the upper one"),
            DestError::Full => f.write_str("the service has no room for another real server"),
            DestError::Sched(e) => write!(f, "the scheduler refused the change: {e}"),
        }
    }
}

impl core::error::Error for DestError {}

/// Weight and thresholds of a destination, as `ipvsadm -a` / `-e` give them (a threshold left
/// out is 0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DestConfig {
    /// Weight (0 quiesces).
    pub weight: u32,
    /// Upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub lower_threshold: u32,
}

/// The largest weight IPVS accepts (`int`, non-negative).
pub const MAX_WEIGHT: u32 = i32::MAX as u32;

impl DestConfig {
    fn check(&self) -> Result<(), DestError> {
        if self.weight > MAX_WEIGHT || self.lower_threshold > self.upper_threshold {
            return Err(DestError::Range);
        }
        Ok(())
    }
}

/// Up to `N` destinations in IPVS list order: index 0 is the most recently added.
#[derive(Debug, Clone, Default)]
pub struct DestList<const N: usize> {
    dests: Vec<Dest, N>,
    next_id: u32,
}

impl<const N: usize> DestList<N> {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        DestList { dests: Vec::new(), next_id: 0 }
    }

    /// The destinations, newest first.
    #[must_use]
    pub fn as_slice(&self) -> &[Dest] {
        &self.dests
    }

    /// Number of destinations.
    #[must_use]
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    /// True when there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }

    /// The position of (address, port).
    #[must_use]
    pub fn find(&self, addr: IpAddr, port: u16) -> Option<usize> {
        self.dests.iter().position(|d| d.addr == addr && d.port == port)
    }

    /// The position of a destination by id.
    #[must_use]
    pub fn position(&self, id: DestId) -> Option<usize> {
        self.dests.iter().position(|d| d.id == id)
    }

    /// A destination by id.
    #[must_use]
    pub fn get(&self, id: DestId) -> Option<&Dest> {
        self.dests.iter().find(|d| d.id == id)
    }

    /// A destination by id, for counters.
    pub fn get_mut(&mut self, id: DestId) -> Option<&mut Dest> {
        self.dests.iter_mut().find(|d| d.id == id)
    }

    /// Adds a destination at the head of the list and tells the scheduler.
    ///
    /// # Errors
    /// [`DestError::Exists`], [`DestError::Range`], [`DestError::Full`], or the scheduler's
    /// refusal (the list is then unchanged).
    pub fn add(
        &mut self,
        sched: &mut dyn Scheduler,
        addr: IpAddr,
        port: u16,
        config: DestConfig,
    ) -> Result<DestId, DestError> {
        config.check()?;
        if self.find(addr, port).is_some() {
            return Err(DestError::Exists);
        }
        if self.dests.is_full() {
            return Err(DestError::Full);
        }
        let id = DestId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        let mut dest = Dest::new(id, addr, port, config.weight);
        dest.upper_threshold = config.upper_threshold;
        dest.lower_threshold = config.lower_threshold;
        self.dests.insert(0, dest).map_err(|_| DestError::Full)?;
        if let Err(e) = sched.add_dest(&self.dests, 0) {
            let _ = self.dests.remove(0);
            // Let the scheduler see the list as it is again.
            let _ = sched.init_service(&self.dests);
            return Err(DestError::Sched(e));
        }
        Ok(id)
    }

    /// Edits weight and thresholds as `ipvsadm -e` does and tells the scheduler.
    ///
    /// # Errors
    /// [`DestError::NotFound`], [`DestError::Range`], or the scheduler's refusal.
    pub fn edit(
        &mut self,
        sched: &mut dyn Scheduler,
        addr: IpAddr,
        port: u16,
        config: DestConfig,
    ) -> Result<(), DestError> {
        config.check()?;
        let index = self.find(addr, port).ok_or(DestError::NotFound)?;
        let dest = self.dests.get_mut(index).ok_or(DestError::NotFound)?;
        dest.set_weight(config.weight);
        dest.set_thresholds(config.upper_threshold, config.lower_threshold);
        sched.upd_dest(&self.dests, index).map_err(DestError::Sched)
    }

    /// Removes a destination and tells the scheduler; returns it (no longer AVAILABLE) so that
    /// the owner can keep it while connections still refer to it.
    ///
    /// # Errors
    /// [`DestError::NotFound`].
    pub fn remove(&mut self, sched: &mut dyn Scheduler, addr: IpAddr, port: u16) -> Result<Dest, DestError> {
        let index = self.find(addr, port).ok_or(DestError::NotFound)?;
        let mut removed = self.dests.remove(index);
        removed.flags.remove(crate::dest::DestFlags::AVAILABLE);
        sched.del_dest(&self.dests, &removed, index);
        Ok(removed)
    }

    /// Schedules a new connection; returns the chosen destination's id.
    pub fn schedule(&mut self, sched: &mut dyn Scheduler, packet: &PacketInfo, now_ms: u64) -> Option<DestId> {
        let pick = sched.schedule(&self.dests, packet, now_ms)?;
        self.dests.get(pick).map(|d| d.id)
    }

    /// Binds a connection of `kind` to destination `id` (counters and overload flag).
    pub fn bind(&mut self, id: DestId, kind: ConnKind) -> bool {
        self.get_mut(id).map(|d| d.bind(kind)).is_some()
    }

    /// Unbinds a connection of `kind` from destination `id`.
    pub fn unbind(&mut self, id: DestId, kind: ConnKind) -> bool {
        self.get_mut(id).map(|d| d.unbind(kind)).is_some()
    }
}
