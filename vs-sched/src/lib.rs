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
//!
//! # Using a built-in scheduler
//! ```
//! use vs_sched::{Builtin, DestConfig, DestList, PacketInfo, SchedParams, Scheduler};
//!
//! let mut sched = Builtin::by_name("wrr", &SchedParams::default())?;
//! let mut dests: DestList<8> = DestList::new();
//! sched.init_service(dests.as_slice())?;
//! for (n, weight) in [(1u8, 3u32), (2, 1)] {
//!     let addr = core::net::IpAddr::from([198, 18, 1, n]);
//!     dests.add(&mut sched, addr, 80, DestConfig { weight, ..DestConfig::default() })?;
//! }
//! let packet = PacketInfo { proto: 6, src: [198, 18, 0, 1].into(), dst: [198, 18, 0, 100].into(), sport: 40000, dport: 80, inverse: false };
//! let mut picks: Vec<u8> = (0..4)
//!     .map(|_| sched.schedule(dests.as_slice(), &packet, 0).map(|i| match dests.as_slice()[i].addr {
//!         core::net::IpAddr::V4(a) => a.octets()[3],
//!         _ => 0,
//!     }))
//!     .collect::<Option<_>>()
//!     .ok_or("no destination")?;
//! picks.sort();
//! assert_eq!(picks, [1, 1, 1, 2]); // weights 3:1 over one round (in the kernel's order)
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Writing a scheduler
//! A scheduler implements [`Scheduler::schedule`] (the other operations have defaults) and
//! returns an index into the destinations it is given, or `None` when none may take the
//! connection. Here: the least active connections, skipping quiesced (weight 0) and overloaded
//! servers, the first in list order on a tie.
//! ```
//! use vs_sched::{Dest, DestId, PacketInfo, Scheduler};
//!
//! struct FewestActive;
//!
//! impl Scheduler for FewestActive {
//!     fn name(&self) -> &str {
//!         "fewest"
//!     }
//!
//!     fn schedule(&mut self, dests: &[Dest], _: &PacketInfo, _now_ms: u64) -> Option<usize> {
//!         dests
//!             .iter()
//!             .enumerate()
//!             .filter(|(_, d)| d.weight > 0 && !d.is_overloaded())
//!             .min_by_key(|(_, d)| d.active)
//!             .map(|(i, _)| i)
//!     }
//! }
//!
//! let mut busy = Dest::new(DestId(0), [198, 18, 1, 1].into(), 80, 1);
//! busy.active = 5;
//! let idle = Dest::new(DestId(1), [198, 18, 1, 2].into(), 80, 1);
//! let packet = PacketInfo { proto: 6, src: [198, 18, 0, 1].into(), dst: [198, 18, 0, 100].into(), sport: 1, dport: 80, inverse: false };
//! assert_eq!(FewestActive.schedule(&[busy, idle], &packet, 0), Some(1));
//! ```
//! A host registers such a scheduler with the engine through `vs-proto`'s
//! `Engine::register_scheduler` (as an [`ExternalScheduler`]), or from C through `vs-ffi`.
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
