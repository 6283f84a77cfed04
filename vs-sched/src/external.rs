//! Schedulers implemented outside this crate (C code linked into firmware, or plugins loaded at
//! run time), reached through a host dispatcher. The scheduler is named by an opaque `ops`
//! value and keeps an opaque per-service `state` that the dispatcher's `init_service` returns;
//! only the dispatcher knows what they point to (this crate has no `unsafe` and never
//! dereferences them).

use core::fmt;

use crate::dest::Dest;
use crate::registry::{Builtin, SchedParams};
use crate::scheduler::{PacketInfo, SchedError, Scheduler};

/// The host's dispatcher: IPVS's scheduler operations for every external scheduler it knows,
/// told apart by `ops`. Each method mirrors the [`Scheduler`] method of the same name.
pub trait ExternalOps: Sync {
    /// The name of scheduler `ops`.
    fn name(&self, ops: usize) -> &str;
    /// Creates the per-service state for these destinations and returns it.
    ///
    /// # Errors
    /// [`SchedError`] when the scheduler cannot serve the service.
    fn init_service(&self, ops: usize, dests: &[Dest], params: &SchedParams) -> Result<usize, SchedError>;
    /// Releases a state `init_service` returned.
    fn done_service(&self, ops: usize, state: usize);
    /// `dests[index]` was just added.
    ///
    /// # Errors
    /// [`SchedError`] to refuse the new set.
    fn add_dest(&self, ops: usize, state: usize, dests: &[Dest], index: usize) -> Result<(), SchedError>;
    /// `removed` (at `index`) was just unlinked.
    fn del_dest(&self, ops: usize, state: usize, dests: &[Dest], removed: &Dest, index: usize);
    /// `dests[index]` was edited.
    ///
    /// # Errors
    /// [`SchedError`] to refuse the new set.
    fn upd_dest(&self, ops: usize, state: usize, dests: &[Dest], index: usize) -> Result<(), SchedError>;
    /// Chooses a destination index, or `None`.
    fn schedule(&self, ops: usize, state: usize, dests: &[Dest], packet: &PacketInfo, now_ms: u64) -> Option<usize>;
}

/// A registered external scheduler: a dispatcher and the scheduler it names.
#[derive(Clone, Copy)]
pub struct ExternalScheduler {
    dispatch: &'static dyn ExternalOps,
    ops: usize,
}

impl ExternalScheduler {
    /// Scheduler `ops` of `dispatch`.
    #[must_use]
    pub fn new(dispatch: &'static dyn ExternalOps, ops: usize) -> ExternalScheduler {
        ExternalScheduler { dispatch, ops }
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.dispatch.name(self.ops)
    }

    /// An instance for one service (not yet initialised: call `init_service`).
    #[must_use]
    pub fn instance(&self, params: SchedParams) -> External {
        External { sched: *self, params, state: None }
    }
}

impl fmt::Debug for ExternalScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalScheduler").field("name", &self.name()).field("ops", &self.ops).finish()
    }
}

/// An external scheduler serving one service: its state lives from `init_service` to
/// `done_service`, or until it is dropped. Not `Clone`: two owners would release one state twice.
#[derive(Debug)]
pub struct External {
    sched: ExternalScheduler,
    params: SchedParams,
    state: Option<usize>,
}

impl Drop for External {
    fn drop(&mut self) {
        self.done_service();
    }
}

impl Scheduler for External {
    fn name(&self) -> &str {
        self.sched.name()
    }

    fn init_service(&mut self, dests: &[Dest]) -> Result<(), SchedError> {
        let state = self.sched.dispatch.init_service(self.sched.ops, dests, &self.params)?;
        self.done_service();
        self.state = Some(state);
        Ok(())
    }

    fn done_service(&mut self) {
        if let Some(state) = self.state.take() {
            self.sched.dispatch.done_service(self.sched.ops, state);
        }
    }

    fn add_dest(&mut self, dests: &[Dest], index: usize) -> Result<(), SchedError> {
        match self.state {
            Some(state) => self.sched.dispatch.add_dest(self.sched.ops, state, dests, index),
            None => Ok(()),
        }
    }

    fn del_dest(&mut self, dests: &[Dest], removed: &Dest, index: usize) {
        if let Some(state) = self.state {
            self.sched.dispatch.del_dest(self.sched.ops, state, dests, removed, index);
        }
    }

    fn upd_dest(&mut self, dests: &[Dest], index: usize) -> Result<(), SchedError> {
        match self.state {
            Some(state) => self.sched.dispatch.upd_dest(self.sched.ops, state, dests, index),
            None => Ok(()),
        }
    }

    fn schedule(&mut self, dests: &[Dest], packet: &PacketInfo, now_ms: u64) -> Option<usize> {
        let state = self.state?;
        self.sched.dispatch.schedule(self.sched.ops, state, dests, packet, now_ms)
    }
}

/// A service's scheduler: built in, or external.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // Sized once per service slot.
pub enum AnyScheduler {
    /// One of IPVS's schedulers.
    Builtin(Builtin),
    /// A scheduler the host registered.
    External(External),
}

impl AnyScheduler {
    fn inner(&mut self) -> &mut dyn Scheduler {
        match self {
            AnyScheduler::Builtin(b) => b,
            AnyScheduler::External(e) => e,
        }
    }

    fn inner_ref(&self) -> &dyn Scheduler {
        match self {
            AnyScheduler::Builtin(b) => b,
            AnyScheduler::External(e) => e,
        }
    }
}

crate::scheduler::forward_scheduler!(AnyScheduler);
