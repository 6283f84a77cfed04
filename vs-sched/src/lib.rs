//! `vs-sched`: every Linux IPVS scheduler behind one trait, reproducing the kernel's selection
//! rules decision for decision (list order, tie-breaks, weights, the overload flag and
//! thresholds), checked against decisions recorded from Linux 6.1.
//!
//! - [`Scheduler`] mirrors IPVS's scheduler operations (`init_service`, `add_dest`, `del_dest`,
//!   `upd_dest`, `schedule`), over the destinations in IPVS list order (newest first).
//! - [`Dest`] carries what schedulers read, and [`Dest::bind`] / [`Dest::unbind`] keep the
//!   connection counters and the OVERLOAD flag as `ip_vs_bind_dest` / `ip_vs_unbind_dest` do.
//! - [`DestList`] keeps a service's destinations with IPVS's add / edit / delete rules.
//! - [`Builtin`] holds any of the fourteen schedulers by value; [`Registry`] resolves names,
//!   including plugin names the host registers.
//!
//! The crate is `no_std`, uses no allocator and no `unsafe`, and depends on no other vs crate:
//! addresses are `core::net` types. All state is fixed-size.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs, clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod dest;
pub mod external;
pub mod hash;
pub mod list;
pub mod registry;
pub mod rng;
pub mod sched;
pub mod scheduler;

/// The most destinations one service can have (the size of per-destination scheduler state,
/// such as mh's permutation setup).
pub const MAX_DESTS: usize = 1024;

pub use dest::{ConnKind, Dest, DestFlags, DestId};
pub use external::{AnyScheduler, External, ExternalOps, ExternalScheduler};
pub use list::{DestConfig, DestError, DestList};
pub use registry::{BUILTIN_NAMES, Builtin, Registry, RegistryError, SchedParams, SchedulerKind};
pub use rng::Rng;
pub use scheduler::{PacketInfo, SchedError, SchedFlags, Scheduler};
