//! Scheduler names: the built-in IPVS schedulers as one enum, created by name, and room for
//! plugin schedulers that the host registers at run time.

use heapless::Vec;

use crate::dest::Dest;
use crate::sched::hashing::{DestinationHashing, SourceHashing};
use crate::sched::least::{LeastConnection, NeverQueue, ShortestExpectedDelay, WeightedLeastConnection};
use crate::sched::locality::{Lblc, Lblcr};
use crate::sched::mh::{DEFAULT_SIZE, Maglev};
use crate::sched::rr::RoundRobin;
use crate::sched::twos::TwoChoices;
use crate::sched::weight::{WeightedFailover, WeightedOverflow};
use crate::sched::wrr::WeightedRoundRobin;
use crate::scheduler::{PacketInfo, SchedError, SchedFlags, Scheduler};

/// The names of the built-in schedulers, as IPVS spells them.
pub const BUILTIN_NAMES: [&str; 14] =
    ["rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc", "lblcr", "mh", "fo", "ovf", "twos"];

/// Options that some schedulers take when they are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SchedParams {
    /// Service scheduler flags (`sh-port`, `mh-fallback`, ...).
    pub flags: SchedFlags,
    /// mh table size: one of the kernel's primes (default 4093).
    pub mh_size: usize,
    /// Seed for twos' generator (supplied by the host).
    pub seed: u64,
}

impl Default for SchedParams {
    fn default() -> Self {
        SchedParams { flags: SchedFlags::empty(), mh_size: DEFAULT_SIZE, seed: 0 }
    }
}

/// Any built-in scheduler, by value: fixed size, no allocation.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // Sized once per service, in memory set aside at start.
pub enum Builtin {
    /// Round robin.
    Rr(RoundRobin),
    /// Weighted round robin.
    Wrr(WeightedRoundRobin),
    /// Least connection.
    Lc(LeastConnection),
    /// Weighted least connection.
    Wlc(WeightedLeastConnection),
    /// Shortest expected delay.
    Sed(ShortestExpectedDelay),
    /// Never queue.
    Nq(NeverQueue),
    /// Source hashing.
    Sh(SourceHashing),
    /// Destination hashing.
    Dh(DestinationHashing),
    /// Locality-based least connection.
    Lblc(Lblc),
    /// Locality-based least connection with replication.
    Lblcr(Lblcr),
    /// Maglev hashing.
    Mh(Maglev),
    /// Weighted failover.
    Fo(WeightedFailover),
    /// Weighted overflow.
    Ovf(WeightedOverflow),
    /// Power of two choices.
    Twos(TwoChoices),
}

/// `match` over every built-in scheduler, binding the scheduler to `$s` in `$e` (one list of
/// variants for every by-reference view).
macro_rules! each_builtin {
    ($value:expr, $s:ident => $e:expr) => {
        match $value {
            Builtin::Rr($s) => $e,
            Builtin::Wrr($s) => $e,
            Builtin::Lc($s) => $e,
            Builtin::Wlc($s) => $e,
            Builtin::Sed($s) => $e,
            Builtin::Nq($s) => $e,
            Builtin::Sh($s) => $e,
            Builtin::Dh($s) => $e,
            Builtin::Lblc($s) => $e,
            Builtin::Lblcr($s) => $e,
            Builtin::Mh($s) => $e,
            Builtin::Fo($s) => $e,
            Builtin::Ovf($s) => $e,
            Builtin::Twos($s) => $e,
        }
    };
}

impl Builtin {
    /// Creates the built-in scheduler with this IPVS name.
    ///
    /// # Errors
    /// [`RegistryError::Unknown`] for another name; [`RegistryError::Sched`] for bad parameters.
    pub fn by_name(name: &str, params: &SchedParams) -> Result<Builtin, RegistryError> {
        Ok(match name {
            "rr" => Builtin::Rr(RoundRobin::new()),
            "wrr" => Builtin::Wrr(WeightedRoundRobin::new()),
            "lc" => Builtin::Lc(LeastConnection),
            "wlc" => Builtin::Wlc(WeightedLeastConnection),
            "sed" => Builtin::Sed(ShortestExpectedDelay),
            "nq" => Builtin::Nq(NeverQueue),
            "sh" => Builtin::Sh(SourceHashing::new(params.flags)),
            "dh" => Builtin::Dh(DestinationHashing::new()),
            "lblc" => Builtin::Lblc(Lblc::new()),
            "lblcr" => Builtin::Lblcr(Lblcr::new()),
            "mh" => Builtin::Mh(Maglev::new(params.mh_size, params.flags).map_err(RegistryError::Sched)?),
            "fo" => Builtin::Fo(WeightedFailover),
            "ovf" => Builtin::Ovf(WeightedOverflow),
            "twos" => Builtin::Twos(TwoChoices::new(params.seed)),
            _ => return Err(RegistryError::Unknown),
        })
    }

    fn inner(&mut self) -> &mut dyn Scheduler {
        each_builtin!(self, s => s)
    }

    fn inner_ref(&self) -> &dyn Scheduler {
        each_builtin!(self, s => s)
    }
}

crate::scheduler::forward_scheduler!(Builtin);

/// Why a name could not be resolved or registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RegistryError {
    /// No scheduler of that name (the kernel: ENOENT after failing to load `ip_vs_<name>`).
    Unknown,
    /// The name is taken (a built-in or an already registered plugin).
    Exists,
    /// The plugin table is full.
    Full,
    /// The scheduler rejected its parameters.
    Sched(SchedError),
}

impl core::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RegistryError::Unknown => f.write_str("no scheduler of that name"),
            RegistryError::Exists => f.write_str("a scheduler of that name exists already"),
            RegistryError::Full => f.write_str("no room to register another scheduler"),
            RegistryError::Sched(e) => write!(f, "the scheduler rejected its parameters: {e}"),
        }
    }
}

impl core::error::Error for RegistryError {}

/// What a scheduler name resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SchedulerKind {
    /// A built-in scheduler (index into [`BUILTIN_NAMES`]).
    Builtin(usize),
    /// A plugin registered by the host (index in registration order).
    Plugin(usize),
}

/// Longest plugin name (IPVS's `IP_VS_SCHEDNAME_MAXLEN` is 16 including the terminator).
pub const MAX_NAME_LEN: usize = 15;

/// Resolves scheduler names: the built-ins, and up to `P` plugin names the host registers at
/// run time (their implementations live with the host, for example behind the C ABI).
#[derive(Debug, Clone, Default)]
pub struct Registry<const P: usize = 16> {
    plugins: Vec<heapless::String<MAX_NAME_LEN>, P>,
}

impl<const P: usize> Registry<P> {
    /// A registry with only the built-ins.
    #[must_use]
    pub fn new() -> Self {
        Registry { plugins: Vec::new() }
    }

    /// Registers a plugin name and returns its index.
    ///
    /// # Errors
    /// [`RegistryError::Exists`] for a taken name, [`RegistryError::Full`] when the table is
    /// full or the name is empty or longer than [`MAX_NAME_LEN`] bytes.
    pub fn register(&mut self, name: &str) -> Result<usize, RegistryError> {
        if self.lookup(name).is_some() {
            return Err(RegistryError::Exists);
        }
        let owned = heapless::String::try_from(name).map_err(|_| RegistryError::Full)?;
        if owned.is_empty() {
            return Err(RegistryError::Full);
        }
        self.plugins.push(owned).map_err(|_| RegistryError::Full)?;
        Ok(self.plugins.len() - 1)
    }

    /// What `name` stands for.
    #[must_use]
    pub fn lookup(&self, name: &str) -> Option<SchedulerKind> {
        if let Some(i) = BUILTIN_NAMES.iter().position(|n| *n == name) {
            return Some(SchedulerKind::Builtin(i));
        }
        self.plugins.iter().position(|n| n.as_str() == name).map(SchedulerKind::Plugin)
    }

    /// The registered plugin names, in registration order.
    pub fn plugin_names(&self) -> impl Iterator<Item = &str> {
        self.plugins.iter().map(heapless::String::as_str)
    }
}
