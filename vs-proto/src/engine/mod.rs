//! The engine: virtual services, real servers, the connection table, and the forwarding
//! decision for every packet (IPVS's in- and out-handlers, `ip_vs_in` / `ip_vs_out`).
//!
//! All memory is fixed at initialisation: the connection table lives in host-supplied bytes,
//! the services in a host-supplied slice of [`ServiceSlot`]s. Processing a packet allocates
//! nothing and does bounded work: one parse, one or two table lookups, a walk over at most the
//! service slice for new connections, one scheduling decision, one rewrite.
//!
//! Time is given with every call (monotonic milliseconds); the engine never reads a clock.
//! Connection timers are kept in ticks of 16 ms.
//!
//! Where things are: this file holds the engine's state, its settings and the entry points;
//! `fast.rs` the fast path for established flows (tried first for every packet); `inbound.rs`
//! the general path (lookups, scheduling, state, forwarding); `outbound.rs` sending (NAT
//! replies, link-layer addressing, tunnels, ICMP answers); `special.rs` fragments and ICMP
//! errors; `expiry.rs` timers, the sweep, flood defence and the rate estimator.
//!
//! The arithmetic here is on indices bounded at initialisation (services × real servers ≤ 2^16),
//! on wrapping counters and on tick values; the wire-layer lints against arithmetic and `as`
//! are relaxed for this module accordingly. Packet bytes are touched through `wire`, and by the
//! fast path (`fast.rs`), where the arithmetic lint is denied again.
#![allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::cast_possible_truncation)]

pub mod defence;
mod expiry;
mod fast;
mod fragments;
mod inbound;
mod outbound;
pub mod service;
mod special;
pub mod stats;
pub mod verdict;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vs_sched::{ConnKind, ExternalScheduler, PacketInfo};

use core::marker::PhantomData;

use crate::conn::{
    BorrowedMemory, ConnIndex, ConnState, Direction, Forward, NO_LINK, NewConn, OwnedMemory, Table, TableMemory,
    Timeouts, tcp_transition,
};
#[cfg(doc)]
use crate::conn::{ConnTable, buckets_for};
use crate::wire::{
    ChecksumCaps, IcmpError, IpProtocol, Ipv4Header, Ipv6Header, L3, MacAddr, PacketBuf, QuotedEnd, Rewriter, Summary,
    TcpFlags, TunnelHeader, encapsulate, icmp_error, rewrite_quoted,
};
pub use defence::Defence;
pub use service::{ConfigError, Persistence, RealConfig, RealServer, Service, ServiceConfig, ServiceKey, ServiceSlot};
pub use stats::{Counters, DROP_REASONS, DropReason, Estimator, GlobalStats, Rates};
pub use verdict::{Neighbour, Neighbours, Verdict};

/// Milliseconds per connection-timer tick.
pub const TICK_MS: u64 = 16;

/// Engine settings (the director's own identity and IPVS's sysctls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EngineConfig {
    /// Packets start with an Ethernet header (else they are bare IP packets).
    pub ethernet: bool,
    /// The director's MAC address, the source of every frame it sends.
    pub mac: MacAddr,
    /// Outer source address of IPv4 tunnels.
    pub tunnel_v4: Option<Ipv4Addr>,
    /// Outer source address of IPv6 tunnels.
    pub tunnel_v6: Option<Ipv6Addr>,
    /// Egress MTU (tunnelled packets must fit).
    pub mtu: u16,
    /// Checksum policy. The default computes on transmit and, like IPVS (which trusts the
    /// checksums of packets it only NATs), does not verify on receive.
    pub caps: ChecksumCaps,
    /// Use the secure_tcp state table.
    pub secure_tcp: bool,
    /// `expire_nodest_conn`: packets of a removed server's connections reschedule (else drop).
    pub expire_nodest_conn: bool,
    /// Later fragments that match no first fragment go to the host (true) or are dropped.
    pub pass_unmatched_fragments: bool,
    /// `expire_quiescent_template`: a template whose server was quiesced (weight 0) is not
    /// used any more (default: it is, until it expires).
    pub expire_quiescent_template: bool,
    /// `conn_reuse_mode` (default 1): a SYN reusing a TIME_WAIT / CLOSE entry reschedules;
    /// with bit 2 also a DR / TUN FIN_WAIT entry.
    pub conn_reuse_mode: u8,
    /// Seed for the schedulers that draw random numbers (and, with [`Engine::over_memory`],
    /// for the connection table's hash key too). Take it from the OS's random source: clients
    /// that know it can aim connections at one table bucket.
    pub seed: u64,
    /// Flood defence.
    pub defence: Defence,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ethernet: true,
            mac: MacAddr([0x02, 0, 0, 0, 0, 1]),
            tunnel_v4: None,
            tunnel_v6: None,
            mtu: 1500,
            caps: ChecksumCaps::all(crate::wire::Checksum::Tx),
            secure_tcp: false,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            pass_unmatched_fragments: true,
            conn_reuse_mode: 1,
            seed: 0,
            defence: Defence::default(),
        }
    }
}

/// The IPVS engine, with up to `D` real servers per service: by default over host-supplied
/// memory (a [`ConnTable`] in the host's bytes and a slice of service slots); [`OwnedEngine`]
/// owns both instead.
#[derive(Debug)]
pub struct Engine<'a, const D: usize = 64, M: TableMemory = BorrowedMemory<'a>, S = &'a mut [ServiceSlot<D>]> {
    conns: Table<M>,
    services: S,
    _memory: PhantomData<&'a mut ()>,
    timeouts: Timeouts,
    config: EngineConfig,
    stats: GlobalStats,
    ip_ident: u16,
    /// When the rate estimator runs next (every 2 s of host time).
    next_estimate: Option<u64>,
    /// Where later fragments go.
    fragments: fragments::FragmentCache,
    /// When the defence levels are re-evaluated next (every second of host time).
    next_defence: Option<u64>,
    drop_packet: defence::DropPacket,
    /// Entries by class: [TCP, other].
    class_entries: [usize; 2],
    /// Random state for drop_entry's starting point.
    rng: u64,
    /// Schedulers the host registered (C code, plugins), usable by name like the built-ins.
    externals: heapless::Vec<ExternalScheduler, MAX_EXTERNAL_SCHEDULERS>,
    /// Which packets the fast path may pass without a lookup.
    filters: fast::FastFilters,
    /// Real servers' neighbours, so that the fast path does not ask the host per packet.
    neighbour_cache: [fast::CachedNeighbour; fast::NEIGHBOUR_CACHE],
}

/// Why [`Engine::over_memory`] could not set an engine up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SetupError {
    /// The connection table does not fit the memory, or the capacity is unusable.
    Memory(crate::conn::MemoryError),
    /// The service slots and real servers per service exceed what a connection can name.
    Config(ConfigError),
}

impl core::fmt::Display for SetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SetupError::Memory(e) => write!(f, "connection table: {e}"),
            SetupError::Config(e) => write!(f, "engine: {e}"),
        }
    }
}

impl core::error::Error for SetupError {}

impl<'a, const D: usize> Engine<'a, D> {
    /// An engine over host memory in one call: a connection table of `capacity` entries in
    /// `memory` (at least [`ConnTable::footprint`]`(capacity)` bytes), keyed with
    /// `config.seed` — the one seed the engine needs — and `services.len()` service slots.
    ///
    /// # Errors
    /// [`SetupError`].
    pub fn over_memory(
        memory: &'a mut [u8],
        capacity: usize,
        services: &'a mut [ServiceSlot<D>],
        config: EngineConfig,
    ) -> Result<Self, SetupError> {
        let table = crate::conn::ConnTable::new(memory, capacity, config.seed).map_err(SetupError::Memory)?;
        Engine::new(table, services, config).map_err(SetupError::Config)
    }
}

/// How many external schedulers an engine can register.
pub const MAX_EXTERNAL_SCHEDULERS: usize = 8;

/// Ticks for a host time.
fn ticks(now_ms: u64) -> u32 {
    (now_ms / TICK_MS) as u32
}

/// Ticks for a timeout in seconds, rounded up.
fn timeout_ticks(seconds: u32) -> u32 {
    (u64::from(seconds) * 1000).div_ceil(TICK_MS) as u32
}

/// True when a timer set for `expires` has run out at `now` (wrap-safe for timers under a year).
fn expired(expires: u32, now: u32) -> bool {
    now.wrapping_sub(expires) as i32 >= 0
}

/// A scheduling decision: a new connection, or a one-packet datagram that keeps none.
enum Scheduled {
    Conn(ConnIndex),
    OnePacket { forward: Forward, real: (IpAddr, u16) },
}

/// The outcome of an in-lookup hit.
enum InHit {
    Forward,
    Drop(DropReason),
    Gone,
}

/// What a packet offers to scheduling and lookups.
struct Flow {
    proto: IpProtocol,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    flags: TcpFlags,
    length: usize,
}

/// An engine that owns its memory: a table of `CAP` connections (`BUCKETS` =
/// [`buckets_for`]`(CAP)`) and `S` services of `D` real servers. It is large: keep it in a
/// `static` or a `Box`.
pub type OwnedEngine<const CAP: usize, const BUCKETS: usize, const S: usize, const D: usize> =
    Engine<'static, D, OwnedMemory<CAP, BUCKETS>, [ServiceSlot<D>; S]>;

impl<'a, const D: usize, M: TableMemory, S: AsRef<[ServiceSlot<D>]> + AsMut<[ServiceSlot<D>]>> Engine<'a, D, M, S> {
    /// An engine over a connection table and `services.len()` service slots.
    ///
    /// # Errors
    /// [`ConfigError::Range`] when services × `D` exceeds the 65536 real-server slots a
    /// connection can name.
    pub fn new(conns: Table<M>, services: S, config: EngineConfig) -> Result<Self, ConfigError> {
        if services.as_ref().len().saturating_mul(D) > 1 << 16 || D == 0 {
            return Err(ConfigError::Range);
        }
        let mut engine = Engine {
            conns,
            services,
            _memory: PhantomData,
            timeouts: Timeouts::default(),
            config,
            stats: GlobalStats::default(),
            ip_ident: 0,
            next_estimate: None,
            fragments: fragments::FragmentCache::default(),
            next_defence: None,
            drop_packet: defence::DropPacket::default(),
            class_entries: [0, 0],
            rng: config.seed ^ 0x5DEE_CE66_D1CE_5EED,
            externals: heapless::Vec::new(),
            filters: fast::FastFilters::default(),
            neighbour_cache: [fast::CachedNeighbour::default(); fast::NEIGHBOUR_CACHE],
        };
        engine.refresh_fast_path();
        Ok(engine)
    }

    /// Where a packet the engine transmitted now goes: its outermost IP destination and, for
    /// TCP and UDP, the destination port (0 for a tunnelled packet, whose outer header has
    /// none). `None` for a buffer that holds no IP packet.
    ///
    /// ```
    /// # use vs_proto::wire::{Frame, MacAddr, PacketBuf, Segment};
    /// # use vs_proto::engine::{Engine, EngineConfig, ServiceSlot};
    /// # use vs_proto::conn::ConnTable;
    /// # let mut memory = vec![0u8; ConnTable::footprint(16)];
    /// # let mut slots = [ServiceSlot::<4>::default()];
    /// # let engine = Engine::over_memory(&mut memory, 16, &mut slots[..], EngineConfig::default())?;
    /// let mut storage = [0u8; 128];
    /// let frame = Frame { src_mac: MacAddr([2, 0, 0, 0, 0, 1]), dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
    ///     src: ("198.18.0.1".parse()?, 40000), dst: ("198.18.1.1".parse()?, 8080), ttl: 64 };
    /// let len = frame.write(&mut storage[64..], &Segment::Udp { payload: b"hi" })?;
    /// let buf = PacketBuf::new(&mut storage, 64, len)?;
    /// assert_eq!(engine.destination(&buf), Some(("198.18.1.1".parse()?, 8080)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn destination(&self, buf: &PacketBuf<'_>) -> Option<(IpAddr, u16)> {
        let summary = self.parse(buf)?;
        let port = match summary.proto {
            Some(IpProtocol::TCP | IpProtocol::UDP) => summary.dst_port(),
            _ => 0,
        };
        Some((summary.dst?, port))
    }

    /// Settings.
    #[must_use]
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Settings, to change at run time (secure_tcp, expire_nodest_conn, ...).
    pub fn config_mut(&mut self) -> &mut EngineConfig {
        &mut self.config
    }

    /// Timeouts.
    pub fn timeouts_mut(&mut self) -> &mut Timeouts {
        &mut self.timeouts
    }

    /// Engine-wide counters.
    #[must_use]
    pub fn stats(&self) -> &GlobalStats {
        &self.stats
    }

    /// The connection table (for listing, `ipvsadm -L -c`).
    #[must_use]
    pub fn connections(&self) -> &Table<M> {
        &self.conns
    }

    /// The services in use.
    pub fn services(&self) -> impl Iterator<Item = &Service<D>> {
        self.services.as_ref().iter().filter_map(|s| s.0.as_ref()).filter(|s| !s.deleted)
    }

    /// Every service slot in use, deleted services whose connections still drain included
    /// (see [`Service::is_deleted`]): what a host must keep steering to the engine.
    pub fn services_in_use(&self) -> impl Iterator<Item = &Service<D>> {
        self.services.as_ref().iter().filter_map(|s| s.0.as_ref())
    }

    fn service_index(&self, key: &ServiceKey) -> Option<usize> {
        self.services.as_ref().iter().position(|s| s.0.as_ref().is_some_and(|s| !s.deleted && s.key == *key))
    }

    /// A service by key.
    #[must_use]
    pub fn service(&self, key: &ServiceKey) -> Option<&Service<D>> {
        self.service_index(key).and_then(|i| self.services.as_ref().get(i)).and_then(|s| s.0.as_ref())
    }

    fn service_mut(&mut self, key: &ServiceKey) -> Result<&mut Service<D>, ConfigError> {
        let i = self.service_index(key).ok_or(ConfigError::NotFound)?;
        self.services.as_mut().get_mut(i).and_then(|s| s.0.as_mut()).ok_or(ConfigError::NotFound)
    }

    /// Deletes every service at once, connections or not, so that their schedulers release
    /// what they hold (external schedulers free their per-service state). For a host about to
    /// discard the engine; it is empty afterwards but usable.
    pub fn close(&mut self) {
        let capacity = self.conns.capacity();
        self.conns.sweep(capacity, |table, i| {
            let _ = table.remove(i);
        });
        self.class_entries = [0, 0];
        for slot in self.services.as_mut() {
            slot.0 = None;
        }
    }

    /// Registers a scheduler implemented outside (C code, a plugin): services may then name it
    /// like a built-in scheduler.
    ///
    /// # Errors
    /// [`ConfigError::Exists`] when the name is a built-in or already registered,
    /// [`ConfigError::Invalid`] for an empty name or one longer than 15 bytes (IPVS's limit),
    /// [`ConfigError::Full`] beyond [`MAX_EXTERNAL_SCHEDULERS`].
    pub fn register_scheduler(&mut self, scheduler: ExternalScheduler) -> Result<(), ConfigError> {
        let name = scheduler.name();
        if name.is_empty() || name.len() > vs_sched::registry::MAX_NAME_LEN {
            return Err(ConfigError::Invalid);
        }
        if vs_sched::BUILTIN_NAMES.contains(&name) || self.externals.iter().any(|e| e.name() == name) {
            return Err(ConfigError::Exists);
        }
        self.externals.push(scheduler).map_err(|_| ConfigError::Full)
    }

    /// Adds a virtual service (`ipvsadm -A`).
    ///
    /// # Errors
    /// [`ConfigError::Exists`], [`ConfigError::Invalid`] (not TCP/UDP), [`ConfigError::Full`],
    /// [`ConfigError::UnknownScheduler`].
    pub fn add_service(&mut self, key: ServiceKey, config: &ServiceConfig<'_>) -> Result<(), ConfigError> {
        if !key.is_fwmark() && !matches!(key.proto, IpProtocol::TCP | IpProtocol::UDP) {
            return Err(ConfigError::Invalid);
        }
        if self.service_index(&key).is_some() {
            return Err(ConfigError::Exists);
        }
        let free = self.services.as_ref().iter().position(|s| s.0.is_none()).ok_or(ConfigError::Full)?;
        let service = Service::new(key, config, self.config.seed, &self.externals)?;
        if let Some(slot) = self.services.as_mut().get_mut(free) {
            slot.0 = Some(service);
        }
        self.refresh_fast_path();
        Ok(())
    }

    /// Changes a service's scheduler (`ipvsadm -E`); its real servers are kept.
    ///
    /// # Errors
    /// [`ConfigError::NotFound`], [`ConfigError::UnknownScheduler`].
    pub fn edit_service(&mut self, key: &ServiceKey, config: &ServiceConfig<'_>) -> Result<(), ConfigError> {
        let seed = self.config.seed;
        let mut fresh = service::scheduler_for(config, seed, &self.externals)?;
        let service = self.service_mut(key)?;
        vs_sched::Scheduler::init_service(&mut fresh, service.dests.as_slice()).map_err(ConfigError::Scheduler)?;
        // The old scheduler is dropped here (an external one releases its state).
        service.sched = fresh;
        service.flags = config.flags;
        service.one_packet = config.one_packet;
        service.persistence = config.persistence;
        self.refresh_fast_path();
        Ok(())
    }

    /// Deletes a service (`ipvsadm -D`): it stops matching at once; its connections drain.
    ///
    /// # Errors
    /// [`ConfigError::NotFound`].
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<(), ConfigError> {
        let i = self.service_index(key).ok_or(ConfigError::NotFound)?;
        if let Some(slot) = self.services.as_mut().get_mut(i)
            && let Some(service) = slot.0.as_mut()
        {
            service.deleted = true;
            for real in service.reals.iter_mut() {
                match real {
                    Some(r) if r.refs > 0 => r.available = false,
                    _ => *real = None,
                }
            }
            if service.unused() {
                slot.0 = None;
            }
        }
        self.refresh_fast_path();
        Ok(())
    }

    /// Adds a real server (`ipvsadm -a`).
    ///
    /// # Errors
    /// [`ConfigError::NotFound`] (service), [`ConfigError::Exists`], [`ConfigError::Range`],
    /// [`ConfigError::Full`], [`ConfigError::Invalid`], or the scheduler's refusal.
    pub fn add_real(&mut self, key: &ServiceKey, real: &RealConfig) -> Result<(), ConfigError> {
        self.service_mut(key)?.add_real(real)?;
        self.refresh_fast_path();
        Ok(())
    }

    /// Edits a real server (`ipvsadm -e`): weight, thresholds, forwarding method.
    ///
    /// # Errors
    /// [`ConfigError::NotFound`], [`ConfigError::Range`].
    pub fn edit_real(&mut self, key: &ServiceKey, real: &RealConfig) -> Result<(), ConfigError> {
        self.service_mut(key)?.edit_real(real)?;
        self.refresh_fast_path();
        Ok(())
    }

    /// Removes a real server (`ipvsadm -d`): no new connections; existing ones follow
    /// `expire_nodest_conn`.
    ///
    /// # Errors
    /// [`ConfigError::NotFound`].
    pub fn delete_real(&mut self, key: &ServiceKey, addr: IpAddr, port: u16) -> Result<(), ConfigError> {
        self.service_mut(key)?.remove_real(addr, port)?;
        self.refresh_fast_path();
        Ok(())
    }

    /// Processes one packet held in `buf` at host time `now_ms`, rewriting it in place, and
    /// says what to do with it.
    pub fn process(&mut self, buf: &mut PacketBuf<'_>, now_ms: u64, neighbours: &impl Neighbours) -> Verdict {
        self.process_marked(buf, 0, now_ms, neighbours)
    }

    /// As [`Engine::process`], for a packet the host gave firewall mark `mark` (0: none), which
    /// firewall-mark services match.
    pub fn process_marked(
        &mut self,
        buf: &mut PacketBuf<'_>,
        mark: u32,
        now_ms: u64,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let mut maybe_new = None;
        if let Some(plain) = fast::plain(buf.data(), self.config.ethernet) {
            match self.fast_path(buf, &plain, mark, now_ms, neighbours) {
                Ok(verdict) => return verdict,
                Err(new) => maybe_new = new.then_some(plain),
            }
        }
        self.process_general(buf, maybe_new, mark, now_ms, neighbours)
    }

    /// The packets the established fast path did not decide: a new connection the fast path
    /// can open (`maybe_new`, the packet's fields), or the general path. Kept out of line so that the established
    /// path, inlined into the host's loop, keeps its registers.
    #[inline(never)]
    fn process_general(
        &mut self,
        buf: &mut PacketBuf<'_>,
        maybe_new: Option<fast::Plain>,
        mark: u32,
        now_ms: u64,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        if let Some(plain) = maybe_new
            && let Some(verdict) = self.fast_new(buf, &plain, ticks(now_ms), now_ms, neighbours)
        {
            return verdict;
        }
        let summary = self.parse(buf);
        self.process_parsed(buf, summary, mark, now_ms, neighbours)
    }

    /// Processes a burst in three passes over up to 32 packets at a time, so that the cache
    /// misses of a large table overlap instead of queueing (DPDK's bulk lookup): first every
    /// packet's table bucket is loaded, then every entry its tags point at, then the packets
    /// are processed in order. `verdicts[i]` receives packet `i`'s verdict; returns how many
    /// were processed (the shorter of the two slices).
    pub fn process_burst(
        &mut self,
        packets: &mut [PacketBuf<'_>],
        now_ms: u64,
        neighbours: &impl Neighbours,
        verdicts: &mut [Verdict],
    ) -> usize {
        const CHUNK: usize = 32;
        let n = packets.len().min(verdicts.len());
        let mut done = 0;
        while done < n {
            let end = (done + CHUNK).min(n);
            let chunk = packets.get_mut(done..end).unwrap_or_default();
            // In-lookups hash the client as source, out-lookups as destination: a packet may
            // need either (the address filters say which), so each has two hash slots.
            let mut hashes = [0u64; 2 * CHUNK];
            for (pair, buf) in hashes.chunks_exact_mut(2).zip(chunk.iter()) {
                if let Some(plain) = fast::plain(buf.data(), self.config.ethernet)
                    && let [h_in, h_out] = pair
                {
                    let (to_vip, from_real) = self.directions(&plain);
                    if to_vip {
                        *h_in = self.conns.key_hash(&plain.source_key());
                    }
                    if from_real {
                        *h_out = self.conns.key_hash(&plain.destination_key());
                    }
                }
            }
            let hashes = hashes.get(..2 * chunk.len()).unwrap_or_default();
            self.conns.touch_buckets(hashes);
            self.conns.touch_entries(hashes);
            for (buf, verdict) in chunk.iter_mut().zip(verdicts.get_mut(done..end).unwrap_or_default()) {
                *verdict = self.process_marked(buf, 0, now_ms, neighbours);
            }
            done = end;
        }
        n
    }

    /// Parses a packet; `None` when it is not one the engine handles (the host gets it).
    fn parse(&self, buf: &PacketBuf<'_>) -> Option<Summary> {
        let mut summary = Summary::default();
        let parsed =
            if self.config.ethernet { summary.parse_ethernet(buf.data()) } else { summary.parse_ip(buf.data()) };
        (parsed.is_ok() && matches!(summary.l3, L3::Ipv4 | L3::Ipv6)).then_some(summary)
    }

    fn decode(&self, dest: u16) -> (usize, usize) {
        (usize::from(dest) / D, usize::from(dest) % D)
    }

    fn real(&self, service: usize, slot: usize) -> Option<&RealServer> {
        self.services.as_ref().get(service)?.0.as_ref()?.reals.get(slot)?.as_ref()
    }

    fn weight_of(&self, service: usize, slot: usize) -> Option<u32> {
        let svc = self.services.as_ref().get(service)?.0.as_ref()?;
        let real = svc.reals.get(slot)?.as_ref()?;
        svc.dests.get(real.id).map(|d| d.weight)
    }

    /// Zeroes counters and rates (`ipvsadm -Z`): of one service and its real servers, or of
    /// everything including the totals. Connection counts stay.
    ///
    /// # Errors
    /// [`ConfigError::NotFound`] for an unknown service.
    pub fn zero_stats(&mut self, service: Option<&ServiceKey>) -> Result<(), ConfigError> {
        match service {
            Some(key) => self.service_mut(key)?.zero(),
            None => {
                for svc in self.services.as_mut().iter_mut().filter_map(|s| s.0.as_mut()) {
                    svc.zero();
                }
                let drops = self.stats.drops;
                self.stats = GlobalStats { drops, ..GlobalStats::default() };
            }
        }
        Ok(())
    }

    fn pass(&mut self) -> Verdict {
        self.stats.passed = self.stats.passed.wrapping_add(1);
        Verdict::Pass
    }

    fn drop(&mut self, reason: DropReason) -> Verdict {
        self.stats.count_drop(reason);
        Verdict::Drop(reason)
    }
}
