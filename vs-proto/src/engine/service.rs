//! Virtual services and their real servers, with IPVS's configuration rules.

use core::net::IpAddr;

use vs_sched::{
    AnyScheduler, Builtin, DestConfig, DestError, DestId, DestList, ExternalScheduler, SchedError, SchedFlags,
    SchedParams, Scheduler,
};

use super::stats::{Counters, Estimator, Rates};
use crate::conn::Forward;
use crate::wire::IpProtocol;

/// What identifies a virtual service: protocol, virtual address and port — or, for a
/// firewall-mark service, the mark the host gives packets (`fwmark` non-zero; then `proto` is
/// 0, `addr` the unspecified address of the service's family and `port` 0, as IPVS keeps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServiceKey {
    /// TCP or UDP (0 for a firewall-mark service).
    pub proto: IpProtocol,
    /// Virtual IP address.
    pub addr: IpAddr,
    /// Virtual port.
    pub port: u16,
    /// Firewall mark (0: an address-keyed service).
    pub fwmark: u32,
}

impl ServiceKey {
    /// An address-keyed service (`-t` / `-u`).
    #[must_use]
    pub fn new(proto: IpProtocol, addr: IpAddr, port: u16) -> ServiceKey {
        ServiceKey { proto, addr, port, fwmark: 0 }
    }

    /// A firewall-mark service (`-f MARK`, with `-6` for IPv6).
    #[must_use]
    pub fn fwmark(mark: u32, ipv6: bool) -> ServiceKey {
        let addr = if ipv6 {
            IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED)
        };
        ServiceKey { proto: IpProtocol(0), addr, port: 0, fwmark: mark }
    }

    /// True for a firewall-mark service.
    #[must_use]
    pub fn is_fwmark(&self) -> bool {
        self.fwmark != 0
    }
}

/// How a service schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServiceConfig<'n> {
    /// Scheduler name (`rr`, `wlc`, ...).
    pub scheduler: &'n str,
    /// Scheduler flags (`sh-port`, ...).
    pub flags: SchedFlags,
    /// One-packet scheduling (`-o`): every UDP datagram is scheduled on its own and no
    /// connection is kept (ignored for TCP, as IPVS does).
    pub one_packet: bool,
    /// Persistence (`-p [timeout] [-M netmask]`).
    pub persistence: Option<Persistence>,
}

impl Default for ServiceConfig<'_> {
    fn default() -> Self {
        ServiceConfig { scheduler: "wlc", flags: SchedFlags::empty(), one_packet: false, persistence: None }
    }
}

/// Persistence: connections of a client (its address masked to `prefix_len` bits) go to the
/// same real server while the client's template lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Persistence {
    /// Template timeout in seconds (`-p` without a value gives 360 in ipvsadm, checked on Linux 6.1).
    pub timeout_s: u32,
    /// Prefix length of the client mask (`-M`): 32 / 128 = the client address itself.
    pub prefix_len: u8,
    /// An IPv4 client mask that is not a prefix (`-M 255.0.255.0`: the kernel takes any
    /// mask for IPv4 services). When set it replaces `prefix_len` for IPv4 clients.
    pub ipv4_mask: Option<u32>,
}

impl Persistence {
    /// The client network a template is keyed by.
    #[must_use]
    pub fn mask(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(a) => {
                let bits = u32::from(self.prefix_len.min(32));
                let mask = self.ipv4_mask.unwrap_or_else(|| u32::MAX.checked_shl(32 - bits).unwrap_or(0));
                IpAddr::V4(core::net::Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let bits = u32::from(self.prefix_len.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6(core::net::Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }
}

/// A real server as `ipvsadm -a` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RealConfig {
    /// Real server address (another family than the service only for tunnels).
    pub addr: IpAddr,
    /// Real server port (DR and TUN use the service port, as ipvsadm forces).
    pub port: u16,
    /// Forwarding method.
    pub forward: Forward,
    /// Weight.
    pub weight: u32,
    /// Upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub lower_threshold: u32,
}

/// ipvsadm's defaults for `-a`: NAT (`-m`; ipvsadm's own default is `-g`, but a director
/// built on this core is most often a NAT one), weight 1, no thresholds; the address
/// (0.0.0.0) and port (0) are to be set.
impl Default for RealConfig {
    fn default() -> Self {
        RealConfig {
            addr: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            port: 0,
            forward: Forward::Nat,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }
}

/// Why a configuration change was refused (the kernel's errno in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// The service or real server exists (EEXIST).
    Exists,
    /// No such service or real server (ENOENT; ESRCH for services in ipvsadm's wording).
    NotFound,
    /// A value is out of range (ERANGE).
    Range,
    /// No room left (the limits fixed at initialisation).
    Full,
    /// No scheduler of that name (ENOENT).
    UnknownScheduler,
    /// The scheduler refused the change (EINVAL).
    Scheduler(SchedError),
    /// Only TCP and UDP services; a real server of another family only for tunnels (EINVAL).
    Invalid,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::Exists => f.write_str("the service or real server exists already"),
            ConfigError::NotFound => f.write_str("no such service or real server"),
            ConfigError::Range => f.write_str("a value is out of range"),
            ConfigError::Full => f.write_str("no room left (the limits fixed when the engine was made)"),
            ConfigError::UnknownScheduler => f.write_str("no scheduler of that name"),
            ConfigError::Scheduler(e) => write!(f, "the scheduler refused the change: {e}"),
            ConfigError::Invalid => f.write_str(
                "only TCP and UDP services, and real servers of another address family only by tunnel, are possible",
            ),
        }
    }
}

impl core::error::Error for ConfigError {}

impl From<DestError> for ConfigError {
    fn from(e: DestError) -> Self {
        match e {
            DestError::Exists => ConfigError::Exists,
            DestError::NotFound => ConfigError::NotFound,
            DestError::Range => ConfigError::Range,
            DestError::Full => ConfigError::Full,
            DestError::Sched(s) => ConfigError::Scheduler(s),
        }
    }
}

/// A real server's slot: stable while connections refer to it, even after it is removed
/// (IPVS's destination trash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RealServer {
    /// The scheduler-side handle.
    pub id: DestId,
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Forwarding method.
    pub forward: Forward,
    /// Still in the service (false once removed; the slot lives while connections use it).
    pub available: bool,
    /// Connections (and templates) bound to it.
    pub refs: u32,
    /// Counters.
    pub stats: Counters,
    /// Rates.
    pub rates: Estimator,
}

/// A virtual service with up to `D` real servers.
#[derive(Debug)]
pub struct Service<const D: usize> {
    pub(crate) key: ServiceKey,
    pub(crate) sched: AnyScheduler,
    pub(crate) flags: SchedFlags,
    pub(crate) one_packet: bool,
    pub(crate) persistence: Option<Persistence>,
    pub(crate) dests: DestList<D>,
    pub(crate) reals: [Option<RealServer>; D],
    pub(crate) stats: Counters,
    pub(crate) rates: Estimator,
    /// Deleted: no longer matched; the slot is freed once its last connection expires.
    pub(crate) deleted: bool,
}

impl<const D: usize> Service<D> {
    /// A service with no real servers, its scheduler initialised.
    pub(crate) fn new(
        key: ServiceKey,
        config: &ServiceConfig<'_>,
        seed: u64,
        externals: &[ExternalScheduler],
    ) -> Result<Self, ConfigError> {
        let mut sched = scheduler_for(config, seed, externals)?;
        let dests = DestList::new();
        sched.init_service(dests.as_slice()).map_err(ConfigError::Scheduler)?;
        Ok(Service {
            key,
            sched,
            flags: config.flags,
            one_packet: config.one_packet,
            persistence: config.persistence,
            dests,
            reals: core::array::from_fn(|_| None),
            stats: Counters::default(),
            rates: Estimator::default(),
            deleted: false,
        })
    }

    /// The service's key.
    #[must_use]
    pub fn key(&self) -> ServiceKey {
        self.key
    }

    /// The scheduler's name.
    #[must_use]
    pub fn scheduler(&self) -> &str {
        self.sched.name()
    }

    /// Scheduler flags.
    #[must_use]
    pub fn flags(&self) -> SchedFlags {
        self.flags
    }

    /// One-packet scheduling.
    #[must_use]
    pub fn one_packet(&self) -> bool {
        self.one_packet
    }

    /// Persistence.
    #[must_use]
    pub fn persistence(&self) -> Option<Persistence> {
        self.persistence
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &Counters {
        &self.stats
    }

    /// Rates (updated every 2 s by the engine's sweep).
    #[must_use]
    pub fn rates(&self) -> Rates {
        self.rates.rates()
    }

    /// Zeroes the counters and rates of the service and its real servers (`ipvsadm -Z -t ...`);
    /// connection counts are not touched.
    pub(crate) fn zero(&mut self) {
        self.stats = Counters::default();
        self.rates = Estimator::default();
        for real in self.reals.iter_mut().flatten() {
            real.stats = Counters::default();
            real.rates = Estimator::default();
        }
    }

    pub(crate) fn estimate(&mut self) {
        self.rates.update(&self.stats);
        for real in self.reals.iter_mut().flatten() {
            real.rates.update(&real.stats);
        }
    }

    /// Deleted (`ipvsadm -D`): matched by no new packet, kept until its last connection expires.
    #[must_use]
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// Every real server slot in use: the configured servers and removed ones that connections
    /// still refer to (IPVS's destination trash), whose replies the host must keep handing to
    /// the engine until they drain.
    pub fn real_slots(&self) -> impl Iterator<Item = &RealServer> {
        self.reals.iter().flatten()
    }

    /// The real servers in IPVS list order (newest first), with their scheduler state.
    pub fn reals(&self) -> impl Iterator<Item = (&RealServer, &vs_sched::Dest)> {
        self.dests.as_slice().iter().filter_map(|d| self.reals.iter().flatten().find(|r| r.id == d.id).map(|r| (r, d)))
    }

    pub(crate) fn slot_of(&self, id: DestId) -> Option<usize> {
        self.reals.iter().position(|r| r.is_some_and(|r| r.id == id))
    }

    pub(crate) fn find_real(&self, addr: IpAddr, port: u16) -> Option<usize> {
        self.reals.iter().position(|r| r.is_some_and(|r| r.available && r.addr == addr && r.port == port))
    }

    /// Only a tunnel may cross address families (ipvsadm refuses the rest).
    fn check_family(&self, config: &RealConfig) -> Result<(), ConfigError> {
        if config.addr.is_ipv4() != self.key.addr.is_ipv4() && config.forward != Forward::Tunnel {
            return Err(ConfigError::Invalid);
        }
        Ok(())
    }

    pub(crate) fn add_real(&mut self, config: &RealConfig) -> Result<(), ConfigError> {
        self.check_family(config)?;
        // A removed server still draining keeps its slot; re-adding it is a new server here.
        let free = self.reals.iter().position(Option::is_none).ok_or(ConfigError::Full)?;
        let dest_config = DestConfig {
            weight: config.weight,
            upper_threshold: config.upper_threshold,
            lower_threshold: config.lower_threshold,
        };
        let id = self.dests.add(&mut self.sched, config.addr, config.port, dest_config)?;
        if let Some(slot) = self.reals.get_mut(free) {
            *slot = Some(RealServer {
                id,
                addr: config.addr,
                port: config.port,
                forward: config.forward,
                available: true,
                refs: 0,
                stats: Counters::default(),
                rates: Estimator::default(),
            });
        }
        Ok(())
    }

    pub(crate) fn edit_real(&mut self, config: &RealConfig) -> Result<(), ConfigError> {
        let slot = self.find_real(config.addr, config.port).ok_or(ConfigError::NotFound)?;
        // The same rule as add_real: editing a v6 tunnel server of a v4 service to NAT would
        // leave a server no packet of the service can be rewritten to.
        self.check_family(config)?;
        let dest_config = DestConfig {
            weight: config.weight,
            upper_threshold: config.upper_threshold,
            lower_threshold: config.lower_threshold,
        };
        self.dests.edit(&mut self.sched, config.addr, config.port, dest_config)?;
        if let Some(Some(real)) = self.reals.get_mut(slot) {
            real.forward = config.forward;
        }
        Ok(())
    }

    pub(crate) fn remove_real(&mut self, addr: IpAddr, port: u16) -> Result<(), ConfigError> {
        let slot = self.find_real(addr, port).ok_or(ConfigError::NotFound)?;
        self.dests.remove(&mut self.sched, addr, port)?;
        if let Some(entry) = self.reals.get_mut(slot) {
            match entry {
                Some(real) if real.refs > 0 => real.available = false,
                _ => *entry = None,
            }
        }
        Ok(())
    }

    /// True when nothing refers to the service any more.
    pub(crate) fn unused(&self) -> bool {
        self.reals.iter().flatten().all(|r| r.refs == 0)
    }
}

/// A scheduler by name, built in or registered by the host, not yet initialised.
pub(crate) fn scheduler_for(
    config: &ServiceConfig<'_>,
    seed: u64,
    externals: &[ExternalScheduler],
) -> Result<AnyScheduler, ConfigError> {
    let params = SchedParams { flags: config.flags, seed, ..SchedParams::default() };
    match Builtin::by_name(config.scheduler, &params) {
        Ok(b) => Ok(AnyScheduler::Builtin(b)),
        Err(vs_sched::RegistryError::Sched(s)) => Err(ConfigError::Scheduler(s)),
        Err(_) => externals
            .iter()
            .find(|e| e.name() == config.scheduler)
            .map(|e| AnyScheduler::External(e.instance(params)))
            .ok_or(ConfigError::UnknownScheduler),
    }
}

/// Storage for one service, supplied by the host as a slice (its length is the service limit).
#[derive(Debug)]
pub struct ServiceSlot<const D: usize>(pub(crate) Option<Service<D>>);

impl<const D: usize> Default for ServiceSlot<D> {
    fn default() -> Self {
        ServiceSlot(None)
    }
}
