//! The engine: virtual services, real servers, the connection table, and the forwarding
//! decision for every packet (IPVS's in- and out-handlers, §3.9 of the reference).
//!
//! All memory is fixed at initialisation: the connection table lives in host-supplied bytes,
//! the services in a host-supplied slice of [`ServiceSlot`]s. Processing a packet allocates
//! nothing and does bounded work: one parse, one or two table lookups, a walk over at most the
//! service slice for new connections, one scheduling decision, one rewrite.
//!
//! Time is given with every call (monotonic milliseconds); the engine never reads a clock.
//! Connection timers are kept in ticks of 16 ms.
//!
//! The arithmetic here is on indices bounded at initialisation (services × real servers ≤ 2^16),
//! on wrapping counters and on tick values; the wire-layer lints against arithmetic and `as`
//! are relaxed for this module accordingly. Packet bytes are only touched through `wire`.
#![allow(clippy::arithmetic_side_effects, clippy::as_conversions, clippy::cast_possible_truncation)]

pub mod defence;
mod fast;
mod fragments;
pub mod service;
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
    /// Seed for the connection hash and the schedulers that draw random numbers.
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
        if let Some(plain) = fast::plain(buf.data(), self.config.ethernet)
            && let Some(verdict) = self.fast_path(buf, &plain, now_ms, neighbours)
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
            let mut hashes = [(0u64, 0u64); CHUNK];
            for (hash, buf) in hashes.iter_mut().zip(chunk.iter()) {
                if let Some(plain) = fast::plain(buf.data(), self.config.ethernet) {
                    // The client's key: in-lookups hash the source, out-lookups the destination.
                    let (to_vip, from_real) = self.directions(&plain);
                    if to_vip {
                        hash.0 = self.conns.warm_raw(&plain.source_key());
                    }
                    if from_real {
                        hash.1 = self.conns.warm_raw(&plain.destination_key());
                    }
                }
            }
            for &(h_in, h_out) in hashes.iter().take(chunk.len()) {
                for h in [h_in, h_out].into_iter().filter(|h| *h != 0) {
                    self.conns.warm_entry(h);
                }
            }
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

    fn process_parsed(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: Option<Summary>,
        mark: u32,
        now_ms: u64,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let Some(summary) = summary else { return self.pass() };
        if summary.icmp.is_some_and(|i| i.is_error) && summary.fragment.is_none() {
            let now = ticks(now_ms);
            return match self.relay_icmp(buf, &summary, now, neighbours) {
                Some(verdict) => verdict,
                None => self.pass(),
            };
        }
        if summary.is_later_fragment() {
            return self.later_fragment(buf, &summary, now_ms, neighbours);
        }
        let (Some(proto), Some(src), Some(dst), Some((sport, dport))) =
            (summary.proto, summary.src, summary.dst, summary.ports)
        else {
            return self.pass();
        };
        if !matches!(proto, IpProtocol::TCP | IpProtocol::UDP) {
            return self.pass();
        }
        if self.config.caps.verify(&summary, buf.data()).is_err() {
            return self.drop(DropReason::BadChecksum);
        }
        let flow = Flow {
            proto,
            src: (src, sport),
            dst: (dst, dport),
            flags: summary.tcp_flags.unwrap_or_default(),
            length: summary.l3_end.saturating_sub(summary.l3_offset),
        };
        let now = ticks(now_ms);
        let opens =
            proto == IpProtocol::UDP || (flow.flags.contains(TcpFlags::SYN) && !flow.flags.contains(TcpFlags::RST));

        // 1. A packet of a known connection, client to real server.
        if let Some(index) = self.conns.lookup_in(proto, flow.src, flow.dst) {
            match self.classify_in(index, &flow, now, opens) {
                InHit::Forward => {
                    self.remember_fragment(&summary, index, true, now);
                    return self.forward_in(index, buf, &summary, &flow, now, neighbours);
                }
                InHit::Drop(reason) => return self.drop(reason),
                // Expired or released for reuse: the packet is a new connection.
                InHit::Gone => {}
            }
        }
        // 2. A reply, real server to client.
        if let Some(index) = self.conns.lookup_out(proto, flow.src, flow.dst) {
            if self.conns.get(index).is_some_and(|c| expired(c.expires(), now)) {
                self.expire(index, now, false);
            } else {
                self.remember_fragment(&summary, index, false, now);
                return self.forward_out(index, buf, &summary, &flow, now, neighbours);
            }
        }
        // 3. A new connection to a virtual service (a marked packet's firewall-mark service
        // first, as IPVS looks them up).
        let Some(service) = self.find_service(proto, flow.dst, mark) else {
            return self.pass();
        };
        if !opens {
            // Only SYN (without RST) opens a TCP connection; the rest goes to the host.
            return self.pass();
        }
        if defence::on(self.config.defence.drop_packet) && self.drop_packet.todrop() {
            return self.drop(DropReason::Defence);
        }
        match self.schedule(service, &flow, now, now_ms) {
            Ok(Scheduled::Conn(index)) => {
                self.remember_fragment(&summary, index, true, now);
                self.forward_in(index, buf, &summary, &flow, now, neighbours)
            }
            Ok(Scheduled::OnePacket { forward, real }) => {
                self.transmit_in(buf, &summary, &flow, forward, real, neighbours)
            }
            Err(DropReason::NoDestination) => {
                self.stats.count_drop(DropReason::NoDestination);
                // IPVS answers with ICMP port unreachable from the VIP (§3.8).
                match self.answer(buf, &summary, IcmpError::PortUnreachable, dst, neighbours) {
                    Some(v) => v,
                    None => Verdict::Drop(DropReason::NoDestination),
                }
            }
            Err(reason) => self.drop(reason),
        }
    }

    /// The service a new connection from this packet belongs to.
    fn find_service(&self, proto: IpProtocol, dst: (IpAddr, u16), mark: u32) -> Option<usize> {
        let matches = |key: &ServiceKey| {
            if key.is_fwmark() {
                mark != 0 && key.fwmark == mark && key.addr.is_ipv4() == dst.0.is_ipv4()
            } else {
                *key == ServiceKey::new(proto, dst.0, dst.1)
            }
        };
        let live = |s: &ServiceSlot<D>| s.0.as_ref().filter(|s| !s.deleted).map(|s| s.key);
        if mark != 0
            && let Some(i) =
                self.services.as_ref().iter().position(|s| live(s).is_some_and(|k| k.is_fwmark() && matches(&k)))
        {
            return Some(i);
        }
        if let Some(i) =
            self.services.as_ref().iter().position(|s| live(s).is_some_and(|k| !k.is_fwmark() && matches(&k)))
        {
            return Some(i);
        }
        // A persistent service on port 0 takes every port of its address (`ip_vs_service_find`).
        let any_port = ServiceKey::new(proto, dst.0, 0);
        self.services
            .as_ref()
            .iter()
            .position(|s| s.0.as_ref().is_some_and(|s| !s.deleted && s.key == any_port && s.persistence.is_some()))
    }

    /// A first fragment: its later fragments will follow connection `index`.
    fn remember_fragment(&mut self, summary: &Summary, index: ConnIndex, inbound: bool, now: u32) {
        let (Some(fragment), Some(src), Some(dst), Some(proto)) =
            (summary.fragment, summary.src, summary.dst, summary.proto)
        else {
            return;
        };
        let key = fragments::FragmentKey { src, dst, proto, ident: fragment.ident };
        let expires = now.wrapping_add(timeout_ticks(fragments::FRAGMENT_TIMEOUT_S));
        self.fragments.insert(key, index, inbound, expires, now);
    }

    /// A later fragment: it goes where its first fragment went, addresses rewritten for NAT
    /// (it holds no ports), or to the host (or nowhere) when no first fragment was seen.
    fn later_fragment(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        now_ms: u64,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let now = ticks(now_ms);
        let (Some(fragment), Some(src), Some(dst), Some(proto)) =
            (summary.fragment, summary.src, summary.dst, summary.proto)
        else {
            return self.pass();
        };
        let key = fragments::FragmentKey { src, dst, proto, ident: fragment.ident };
        let found = self
            .fragments
            .lookup(&key, now)
            .filter(|(i, _)| self.conns.get(*i).is_some_and(|c| !expired(c.expires(), now)));
        let Some((index, inbound)) = found else {
            return if self.config.pass_unmatched_fragments {
                self.pass()
            } else {
                self.drop(DropReason::UnmatchedFragment)
            };
        };
        let Some(conn) = self.conns.get(index).copied() else { return self.pass() };
        let length = summary.l3_end.saturating_sub(summary.l3_offset);
        self.count(index, length, inbound);
        let flow = Flow { proto, src: (src, 0), dst: (dst, 0), flags: TcpFlags::empty(), length };
        if !inbound {
            let mut summary = *summary;
            let mut rw = Rewriter::new(buf.data_mut(), &mut summary, self.config.caps);
            if rw.decrement_hop_limit().is_err() || rw.set_src_addr(conn.virt().0).is_err() {
                return self.drop(DropReason::TtlExceeded);
            }
            return self.send_to(buf, &mut summary, dst, neighbours);
        }
        match conn.forward() {
            Forward::Nat => {
                let mut summary = *summary;
                let mut rw = Rewriter::new(buf.data_mut(), &mut summary, self.config.caps);
                if rw.decrement_hop_limit().is_err() || rw.set_dst_addr(conn.real().0).is_err() {
                    return self.drop(DropReason::TtlExceeded);
                }
                self.send_to(buf, &mut summary, conn.real().0, neighbours)
            }
            forward => self.transmit_in(buf, summary, &flow, forward, conn.real(), neighbours),
        }
    }

    /// Relays an ICMP error about a known connection (§5.5 of the reference): from the client
    /// side on to the real server, from a NAT real server back to the client, with the outer
    /// and the quoted headers rewritten for NAT. `None` when no connection vouches for it (the
    /// host gets it).
    fn relay_icmp(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        now: u32,
        neighbours: &impl Neighbours,
    ) -> Option<Verdict> {
        let icmp = summary.icmp?;
        let quoted = summary.quoted?;
        let (qsport, qdport) = quoted.ports?;
        if !matches!(quoted.proto, IpProtocol::TCP | IpProtocol::UDP) {
            return None;
        }
        // IPVS relays ICMPv4 destination unreachable, source quench and time exceeded, and
        // every ICMPv6 error.
        if summary.proto == Some(IpProtocol::ICMP) && !matches!(icmp.ty, 3 | 4 | 11) {
            return None;
        }
        let length = summary.l3_end.saturating_sub(summary.l3_offset);
        let live = |t: &Table<M>, i: ConnIndex| t.get(i).is_some_and(|c| !expired(c.expires(), now));
        // From the client side: the quote is a packet the director sent, VIP → client.
        if let Some(index) = self.conns.lookup_in(quoted.proto, (quoted.dst, qdport), (quoted.src, qsport))
            && live(&self.conns, index)
        {
            let conn = *self.conns.get(index)?;
            let (service, slot) = self.decode(conn.dest());
            if !self.real(service, slot).is_some_and(|r| r.available) {
                return None;
            }
            self.count(index, length, true);
            let real = conn.real();
            if conn.forward() != Forward::Nat {
                // DR and TUN pass the error on unchanged (encapsulated for TUN).
                let flow = Flow {
                    proto: quoted.proto,
                    src: (quoted.dst, qdport),
                    dst: (quoted.src, qsport),
                    flags: TcpFlags::empty(),
                    length,
                };
                return Some(self.transmit_in(buf, summary, &flow, conn.forward(), real, neighbours));
            }
            let mut summary = *summary;
            let caps = self.config.caps;
            let mut rw = Rewriter::new(buf.data_mut(), &mut summary, caps);
            if rw.decrement_hop_limit().is_err() || rw.set_dst_addr(real.0).is_err() {
                return Some(self.drop(DropReason::TtlExceeded));
            }
            rewrite_quoted(buf.data_mut(), &mut summary, QuotedEnd::Src, real.0, real.1).ok()?;
            return Some(self.send_to(buf, &mut summary, real.0, neighbours));
        }
        // From a real server: the quote is a packet it got, client → real server.
        if let Some(index) = self.conns.lookup_out(quoted.proto, (quoted.dst, qdport), (quoted.src, qsport))
            && live(&self.conns, index)
        {
            let conn = *self.conns.get(index)?;
            if conn.forward() != Forward::Nat {
                return None;
            }
            self.count(index, length, false);
            let virt = conn.virt();
            let client = summary.dst?;
            let mut summary = *summary;
            let caps = self.config.caps;
            let mut rw = Rewriter::new(buf.data_mut(), &mut summary, caps);
            if rw.decrement_hop_limit().is_err() || rw.set_src_addr(virt.0).is_err() {
                return Some(self.drop(DropReason::TtlExceeded));
            }
            rewrite_quoted(buf.data_mut(), &mut summary, QuotedEnd::Dst, virt.0, virt.1).ok()?;
            return Some(self.send_to(buf, &mut summary, client, neighbours));
        }
        None
    }

    /// What to do with a packet that matched connection `index` (IPVS's in-handler checks):
    /// forward it, drop it, or — when the entry ran out, may be reused by a new SYN, or its
    /// server is gone or quiesced under `expire_nodest_conn` — expire the entry.
    fn classify_in(&mut self, index: ConnIndex, flow: &Flow, now: u32, opens: bool) -> InHit {
        let Some(conn) = self.conns.get(index).copied() else {
            return InHit::Gone;
        };
        let (service, slot) = self.decode(conn.dest());
        let available = self.real(service, slot).is_some_and(|r| r.available);
        let reuse = opens
            && flow.proto == IpProtocol::TCP
            && ((self.config.conn_reuse_mode & 1 != 0
                && matches!(conn.state(), ConnState::TimeWait | ConnState::Close))
                || (self.config.conn_reuse_mode & 2 != 0 && conn.state() == ConnState::FinWait && conn.no_output()));
        let quiesced = self.config.expire_nodest_conn && opens && self.weight_of(service, slot) == Some(0);
        let timed_out = expired(conn.expires(), now);
        if timed_out || reuse || quiesced || (!available && self.config.expire_nodest_conn) {
            self.expire(index, now, !timed_out);
            return InHit::Gone;
        }
        if !available {
            return InHit::Drop(DropReason::DestRemoved);
        }
        InHit::Forward
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

    /// Runs the service's scheduler for a new connection: the real server's slot and copy.
    fn pick(&mut self, service: usize, flow: &Flow, now_ms: u64) -> Result<(usize, RealServer), DropReason> {
        let svc =
            self.services.as_mut().get_mut(service).and_then(|s| s.0.as_mut()).ok_or(DropReason::NoDestination)?;
        let packet = PacketInfo {
            proto: flow.proto.0,
            src: flow.src.0,
            dst: flow.dst.0,
            sport: flow.src.1,
            dport: flow.dst.1,
            inverse: false,
        };
        let id = svc.dests.schedule(&mut svc.sched, &packet, now_ms).ok_or(DropReason::NoDestination)?;
        let slot = svc.slot_of(id).ok_or(DropReason::NoDestination)?;
        let real = svc.reals.get(slot).and_then(|r| *r).ok_or(DropReason::NoDestination)?;
        Ok((slot, real))
    }

    /// Opens a new connection on `service` (through its persistence template when it has
    /// persistence) and returns what to do with the packet.
    fn schedule(&mut self, service: usize, flow: &Flow, now: u32, now_ms: u64) -> Result<Scheduled, DropReason> {
        let svc = self.services.as_ref().get(service).and_then(|s| s.0.as_ref()).ok_or(DropReason::NoDestination)?;
        let (key, one_packet, persistence) = (svc.key, svc.one_packet, svc.persistence);
        if one_packet && flow.proto == IpProtocol::UDP {
            // One-packet scheduling keeps no connection: count the datagram and send it on.
            let (slot, real) = self.pick(service, flow, now_ms)?;
            self.count_new(service, slot);
            if let Some(Some(r)) = self.svc_mut(service).and_then(|s| s.reals.get_mut(slot)) {
                r.stats.count_in(flow.length);
            }
            if let Some(s) = self.svc_mut(service) {
                s.stats.count_in(flow.length);
            }
            self.stats.total.count_in(flow.length);
            let port = if real.port == 0 { flow.dst.1 } else { real.port };
            return Ok(Scheduled::OnePacket { forward: real.forward, real: (real.addr, port) });
        }
        let Some(persistence) = persistence else {
            let (slot, real) = self.pick(service, flow, now_ms)?;
            let port = if real.port == 0 { flow.dst.1 } else { real.port };
            return self.open(service, slot, (real.addr, port), real.forward, flow, now, None).map(Scheduled::Conn);
        };
        // The template: <proto, client network, 0, vaddr, vport> (IPPROTO_IP and the mark as
        // the address for firewall-mark services; port 0 for port-less services).
        let (tproto, tvirt) = if key.is_fwmark() {
            let mark_addr = match flow.src.0 {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(key.fwmark)),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(u128::from(key.fwmark))),
            };
            (IpProtocol(0), (mark_addr, 0))
        } else {
            (flow.proto, (flow.dst.0, key.port))
        };
        let cnet = persistence.mask(flow.src.0);
        let mut template = self.conns.lookup_template(tproto, cnet, tvirt);
        if let Some(t) = template
            && !self.template_usable(t)
        {
            if let Some(c) = self.conns.get_mut(t) {
                c.invalidate();
            }
            template = None;
        }
        let template = match template {
            Some(t) => t,
            None => {
                let (slot, real) = self.pick(service, flow, now_ms)?;
                // A template of a port-less or firewall-mark service names no port.
                let tport = if tvirt.1 == 0 { 0 } else { real.port };
                let new = NewConn {
                    proto: tproto,
                    client: (cnet, 0),
                    virt: tvirt,
                    real: (real.addr, tport),
                    forward: real.forward,
                    dest: u16::try_from(service * D + slot).map_err(|_| DropReason::NoDestination)?,
                    state: ConnState::None,
                    expires: now.wrapping_add(timeout_ticks(persistence.timeout_s)),
                    template: true,
                };
                let t = self.insert(&new)?;
                self.bind(service, slot, ConnKind::Template);
                t
            }
        };
        let tconn = *self.conns.get(template).ok_or(DropReason::NoDestination)?;
        let (_, slot) = self.decode(tconn.dest());
        let (raddr, rport) = tconn.real();
        let port = if rport == 0 { flow.dst.1 } else { rport };
        let index = self.open(service, slot, (raddr, port), tconn.forward(), flow, now, Some(template))?;
        // The template controls one more connection and lives on for its timeout.
        let controlled = self.conns.link(template).saturating_add(1);
        self.conns.set_link(template, controlled);
        if let Some(t) = self.conns.get_mut(template) {
            t.set_expires(now.wrapping_add(timeout_ticks(persistence.timeout_s)));
        }
        Ok(Scheduled::Conn(index))
    }

    /// Inserts an entry within its class's limit (TCP, or everything else).
    fn insert(&mut self, new: &NewConn) -> Result<ConnIndex, DropReason> {
        let class = usize::from(new.proto != IpProtocol::TCP);
        let limit = if class == 0 { self.config.defence.max_tcp } else { self.config.defence.max_other };
        if limit != 0 && self.class_entries.get(class).is_some_and(|n| *n >= limit) {
            return Err(DropReason::ClassFull);
        }
        let index = self.conns.insert(new).map_err(|_| DropReason::TableFull)?;
        if let Some(n) = self.class_entries.get_mut(class) {
            *n += 1;
        }
        Ok(index)
    }

    /// A template may be used while its server is in the service, and (with
    /// `expire_quiescent_template`) not quiesced (`ip_vs_check_template`).
    fn template_usable(&self, template: ConnIndex) -> bool {
        let Some(t) = self.conns.get(template) else { return false };
        let (service, slot) = self.decode(t.dest());
        let available = self.real(service, slot).is_some_and(|r| r.available);
        let quiesced = self.weight_of(service, slot) == Some(0);
        available && !(quiesced && self.config.expire_quiescent_template)
    }

    fn svc_mut(&mut self, service: usize) -> Option<&mut Service<D>> {
        self.services.as_mut().get_mut(service).and_then(|s| s.0.as_mut())
    }

    /// Counts a scheduled connection for the service, the real server and the totals.
    fn count_new(&mut self, service: usize, slot: usize) {
        if let Some(svc) = self.svc_mut(service) {
            svc.stats.conns = svc.stats.conns.wrapping_add(1);
            if let Some(Some(r)) = svc.reals.get_mut(slot) {
                r.stats.conns = r.stats.conns.wrapping_add(1);
            }
        }
        self.stats.total.conns = self.stats.total.conns.wrapping_add(1);
    }

    /// Binds a connection or template to a real server: counters, overload, references.
    fn bind(&mut self, service: usize, slot: usize, kind: ConnKind) {
        if let Some(svc) = self.svc_mut(service)
            && let Some(Some(r)) = svc.reals.get_mut(slot)
        {
            r.refs = r.refs.saturating_add(1);
            let id = r.id;
            if r.available {
                svc.dests.bind(id, kind);
            }
        }
    }

    /// Inserts a connection to `real` on `service`'s real server `slot`, bound and counted.
    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        service: usize,
        slot: usize,
        real: (IpAddr, u16),
        forward: Forward,
        flow: &Flow,
        now: u32,
        template: Option<ConnIndex>,
    ) -> Result<ConnIndex, DropReason> {
        let state = if flow.proto == IpProtocol::TCP { ConnState::None } else { ConnState::Udp };
        let new = NewConn {
            proto: flow.proto,
            client: flow.src,
            virt: flow.dst,
            real,
            forward,
            dest: u16::try_from(service * D + slot).map_err(|_| DropReason::NoDestination)?,
            state,
            expires: now.wrapping_add(timeout_ticks(crate::conn::timeout::NEW_CONN_TIMEOUT_S)),
            template: false,
        };
        let index = self.insert(&new)?;
        if let Some(t) = template {
            self.conns.set_link(index, t);
        }
        self.count_new(service, slot);
        // Every connection starts inactive (the first transition may activate it).
        self.bind(service, slot, ConnKind::Inactive);
        Ok(index)
    }

    /// Moves a connection to `state`, keeping the real server's active / inactive counts, and
    /// re-arms its timer.
    fn set_state(&mut self, index: ConnIndex, state: ConnState, now: u32) {
        let Some(conn) = self.conns.get(index).copied() else {
            return;
        };
        let old = conn.state();
        let (service, slot) = self.decode(conn.dest());
        if old.is_active() != state.is_active()
            && let Some(svc) = self.services.as_mut().get_mut(service).and_then(|s| s.0.as_mut())
        {
            let id = svc.reals.get(slot).and_then(|r| r.map(|r| r.id));
            if let Some(dest) = id.and_then(|id| svc.dests.get_mut(id)) {
                if state.is_active() {
                    dest.activate();
                } else {
                    dest.deactivate();
                }
            }
        }
        let timeout = timeout_ticks(self.timeouts.of(state));
        if let Some(c) = self.conns.get_mut(index) {
            c.set_state(state);
            c.set_expires(now.wrapping_add(timeout));
        }
        // A TCP connection reaching ESTABLISHED assures its template (`ip_vs_control_assure_ct`).
        let template = self.conns.link(index);
        if state == ConnState::Established
            && template != NO_LINK
            && let Some(t) = self.conns.get_mut(template)
        {
            t.assure();
        }
    }

    /// Removes a connection and unbinds it from its real server. A template that still
    /// controls connections is not removed but retried 60 s later (`ip_vs_conn_expire`). When
    /// a connection is `forced` out (reuse, a removed server) and its template is left
    /// controlling nothing without ever having been assured, the template goes too.
    fn expire(&mut self, index: ConnIndex, now: u32, forced: bool) {
        let Some(conn) = self.conns.get(index).copied() else { return };
        if conn.is_template() && self.conns.link(index) > 0 {
            if let Some(c) = self.conns.get_mut(index) {
                c.set_expires(now.wrapping_add(timeout_ticks(60)));
            }
            return;
        }
        let controller = if conn.is_template() { NO_LINK } else { self.conns.link(index) };
        self.conns.remove(index);
        if let Some(n) = self.class_entries.get_mut(usize::from(conn.proto() != IpProtocol::TCP)) {
            *n = n.saturating_sub(1);
        }
        self.stats.expired = self.stats.expired.wrapping_add(1);
        let kind = if conn.is_template() {
            ConnKind::Template
        } else if conn.state().is_active() {
            ConnKind::Active
        } else {
            ConnKind::Inactive
        };
        self.unbind(conn.dest(), kind);
        if controller != NO_LINK {
            let left = self.conns.link(controller).saturating_sub(1);
            self.conns.set_link(controller, left);
            if forced && left == 0 && self.conns.get(controller).is_some_and(|t| !t.is_assured()) {
                self.expire(controller, now, true);
            }
        }
    }

    /// Unbinds a connection or template from its real server (counters, overload, references)
    /// and frees slots nothing refers to any more.
    fn unbind(&mut self, dest: u16, kind: ConnKind) {
        let (service, slot) = self.decode(dest);
        let Some(entry) = self.services.as_mut().get_mut(service) else { return };
        let Some(svc) = entry.0.as_mut() else { return };
        if let Some(Some(real)) = svc.reals.get_mut(slot) {
            let id = real.id;
            real.refs = real.refs.saturating_sub(1);
            let gone = !real.available && real.refs == 0;
            if real.available {
                svc.dests.unbind(id, kind);
            }
            if gone && let Some(r) = svc.reals.get_mut(slot) {
                *r = None;
            }
        }
        if svc.deleted && svc.unused() {
            entry.0 = None;
        }
    }

    /// Expires connections whose timers ran out, visiting at most `budget` table slots from
    /// where the last sweep stopped; returns how many expired. Call it regularly (each slot is
    /// visited once per `capacity / budget` calls).
    pub fn sweep(&mut self, now_ms: u64, budget: usize) -> usize {
        let now = ticks(now_ms);
        let mut due: heapless::Vec<ConnIndex, 64> = heapless::Vec::new();
        let mut expired_count = 0;
        let mut remaining = budget;
        while remaining > 0 {
            let chunk = remaining.min(64);
            due.clear();
            self.conns.sweep(chunk, |t, i| {
                if t.get(i).is_some_and(|c| expired(c.expires(), now)) {
                    let _ = due.push(i);
                }
            });
            for &i in &due {
                let before = self.stats.expired;
                self.expire(i, now, false);
                expired_count += usize::from(self.stats.expired != before);
            }
            remaining -= chunk;
        }
        for svc in self.services.as_mut().iter_mut().filter_map(|s| s.0.as_mut()) {
            vs_sched::Scheduler::tick(&mut svc.sched, svc.dests.as_slice(), now_ms);
        }
        self.estimate(now_ms);
        expired_count + self.defend(now_ms)
    }

    /// Once a second of host time: re-evaluates the defence levels from the table's occupancy
    /// and, while drop_entry is on, drops a bounded number of entries that are not yet
    /// established. Returns how many were dropped.
    fn defend(&mut self, now_ms: u64) -> usize {
        let next = *self.next_defence.get_or_insert(now_ms.saturating_add(1000));
        if now_ms < next {
            return 0;
        }
        self.next_defence = Some(now_ms.saturating_add(1000));
        let d = self.config.defence;
        let capacity = self.conns.capacity();
        let threshold = if d.threshold == 0 { capacity / 4 * 3 } else { d.threshold.min(capacity) };
        let used = self.conns.len();
        let pressure = used > threshold;
        let secure_before = defence::on(d.secure_tcp);
        let modes = [d.drop_entry, d.drop_packet, d.secure_tcp].map(|m| defence::next_mode(m, pressure));
        self.config.defence.drop_entry = modes[0];
        self.config.defence.drop_packet = modes[1];
        self.config.defence.secure_tcp = modes[2];
        // secure_tcp switches the state table on level changes only.
        let secure_now = defence::on(modes[2]);
        if secure_now != secure_before || d.secure_tcp == 3 {
            self.config.secure_tcp = secure_now;
        }
        // drop_packet's rate: amemthresh / (amemthresh − available), with the free slots below
        // the threshold standing for memory; am_droprate when always on.
        self.drop_packet.rate = match modes[1] {
            3 => d.am_droprate,
            2 => {
                let amemthresh = capacity - threshold;
                let available = capacity - used;
                u32::try_from(amemthresh / amemthresh.saturating_sub(available).max(1)).unwrap_or(u32::MAX).max(1)
            }
            _ => 0,
        };
        if !defence::on(modes[0]) {
            return 0;
        }
        self.drop_entries(now_ms)
    }

    /// drop_entry: from a random place, looks at 1/32 of the table and drops TCP entries still
    /// in SYN_RECV or SYNACK and templates never assured that control nothing. (The kernel
    /// also drops some established entries by a rate rule on per-connection packet counts,
    /// which this table does not keep.)
    fn drop_entries(&mut self, now_ms: u64) -> usize {
        let capacity = self.conns.capacity();
        self.rng = self.rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let start = (self.rng >> 33) as usize % capacity.max(1);
        let budget = (capacity / 32).max(1);
        let now = ticks(now_ms);
        let mut dropped = 0;
        for k in 0..budget {
            let index = ((start + k) % capacity) as ConnIndex;
            let Some(conn) = self.conns.get(index).copied() else { continue };
            let victim = if conn.is_template() {
                !conn.is_assured() && self.conns.link(index) == 0
            } else {
                conn.proto() == IpProtocol::TCP && matches!(conn.state(), ConnState::SynRecv | ConnState::SynAck)
            };
            if victim {
                self.expire(index, now, true);
                dropped += 1;
            }
        }
        self.stats.defence_dropped = self.stats.defence_dropped.wrapping_add(dropped as u64);
        dropped
    }

    /// Runs the rate estimator for every 2-second period that has ended (a few at most: after
    /// a long gap the averages simply restart from the current counters).
    fn estimate(&mut self, now_ms: u64) {
        const PERIOD_MS: u64 = 2000;
        let next = *self.next_estimate.get_or_insert(now_ms.saturating_add(PERIOD_MS));
        if now_ms < next {
            return;
        }
        let periods = ((now_ms - next) / PERIOD_MS + 1).min(8);
        for _ in 0..periods {
            self.stats.rates.update(&self.stats.total);
            for svc in self.services.as_mut().iter_mut().filter_map(|s| s.0.as_mut()) {
                svc.estimate();
            }
        }
        self.next_estimate = Some(next.saturating_add(periods * PERIOD_MS).max(now_ms.saturating_add(1)));
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

    fn count(&mut self, index: ConnIndex, bytes: usize, inbound: bool) {
        let Some(conn) = self.conns.get(index) else { return };
        let (service, slot) = self.decode(conn.dest());
        let Some(svc) = self.services.as_mut().get_mut(service).and_then(|s| s.0.as_mut()) else {
            return;
        };
        let Some(Some(real)) = svc.reals.get_mut(slot) else {
            return;
        };
        if !real.available {
            return;
        }
        if inbound {
            real.stats.count_in(bytes);
            svc.stats.count_in(bytes);
            self.stats.total.count_in(bytes);
        } else {
            real.stats.count_out(bytes);
            svc.stats.count_out(bytes);
            self.stats.total.count_out(bytes);
        }
    }

    /// The state a packet of `flow` moves a connection in `current` to (UDP and the rest have
    /// one state).
    fn next_state(&self, current: ConnState, flow: &Flow, direction: Direction) -> ConnState {
        if flow.proto == IpProtocol::TCP {
            tcp_transition(current, flow.flags, direction, self.config.secure_tcp)
        } else {
            ConnState::Udp
        }
    }

    /// Client → real server on connection `index`.
    fn forward_in(
        &mut self,
        index: ConnIndex,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        flow: &Flow,
        now: u32,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let Some(conn) = self.conns.get(index).copied() else {
            return self.pass();
        };
        let direction = if conn.no_output() { Direction::InputOnly } else { Direction::Input };
        self.set_state(index, self.next_state(conn.state(), flow, direction), now);
        self.count(index, flow.length, true);
        self.transmit_in(buf, summary, flow, conn.forward(), conn.real(), neighbours)
    }

    /// Sends a client's packet on to real server `real` by `forward`.
    fn transmit_in(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        flow: &Flow,
        forward: Forward,
        real: (IpAddr, u16),
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let mut summary = *summary;
        let caps = self.config.caps;
        let mut rw = Rewriter::new(buf.data_mut(), &mut summary, caps);
        if rw.decrement_hop_limit().is_err() {
            self.stats.count_drop(DropReason::TtlExceeded);
            return self
                .answer(buf, &summary, IcmpError::TimeExceeded, flow.dst.0, neighbours)
                .unwrap_or(Verdict::Drop(DropReason::TtlExceeded));
        }
        match forward {
            Forward::Nat => {
                if rw.set_dst(real.0, real.1).is_err() {
                    return self.pass();
                }
                self.send_to(buf, &mut summary, real.0, neighbours)
            }
            Forward::DirectRoute => self.send_to(buf, &mut summary, real.0, neighbours),
            Forward::Tunnel => self.tunnel(buf, &summary, flow, real.0, neighbours),
        }
    }

    /// Real server → client on NAT connection `index`.
    fn forward_out(
        &mut self,
        index: ConnIndex,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        flow: &Flow,
        now: u32,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let Some(conn) = self.conns.get(index).copied() else {
            return self.pass();
        };
        if conn.forward() != Forward::Nat {
            // Replies of DR / TUN connections come from the VIP: the director's own traffic.
            return self.pass();
        }
        let state = self.next_state(conn.state(), flow, Direction::Output);
        if let Some(c) = self.conns.get_mut(index) {
            c.clear_no_output();
        }
        self.set_state(index, state, now);
        self.count(index, flow.length, false);
        let virt = conn.virt();
        let mut summary = *summary;
        let mut rw = Rewriter::new(buf.data_mut(), &mut summary, self.config.caps);
        if rw.decrement_hop_limit().is_err() {
            return self.drop(DropReason::TtlExceeded);
        }
        if rw.set_src(virt.0, virt.1).is_err() {
            return self.pass();
        }
        self.send_to(buf, &mut summary, flow.dst.0, neighbours)
    }

    /// Addresses the frame to `next_hop` (when there is a link layer) and transmits.
    fn send_to(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &mut Summary,
        next_hop: IpAddr,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let Some(neighbour) = neighbours.lookup(next_hop) else {
            return self.drop(DropReason::NoNeighbour);
        };
        if self.config.ethernet {
            let mut rw = Rewriter::new(buf.data_mut(), summary, self.config.caps);
            if rw.set_macs(self.config.mac, neighbour.mac).is_err() {
                return self.pass();
            }
        }
        Verdict::Transmit { next_hop, port: neighbour.port }
    }

    /// IP-in-IP / IPv6 encapsulation towards `real`, or "too big" back to the client.
    fn tunnel(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        flow: &Flow,
        real: IpAddr,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let outer_src: Option<IpAddr> = match real {
            IpAddr::V4(_) => self.config.tunnel_v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.config.tunnel_v6.map(IpAddr::V6),
        };
        let Some(outer_src) = outer_src else {
            return self.drop(DropReason::NoTunnelSource);
        };
        let outer_len = if real.is_ipv4() { Ipv4Header::LEN } else { Ipv6Header::LEN };
        let inner_len = summary.l3_end.saturating_sub(summary.l3_offset);
        let mtu = usize::from(self.config.mtu);
        let (ttl, tos, dont_frag) = inner_ttl_tos_df(buf.data(), summary);
        if inner_len + outer_len > mtu {
            // IPv6 never fragments on the way; IPv4 only without DF (not done here: dropped).
            if dont_frag || summary.l3 == L3::Ipv6 {
                self.stats.count_drop(DropReason::TooBig);
                let left = u32::try_from(mtu.saturating_sub(outer_len)).unwrap_or(0);
                return self
                    .answer(buf, summary, IcmpError::TooBig { mtu: left }, flow.dst.0, neighbours)
                    .unwrap_or(Verdict::Drop(DropReason::TooBig));
            }
            return self.drop(DropReason::TooBig);
        }
        self.ip_ident = self.ip_ident.wrapping_add(1);
        let outer = TunnelHeader {
            src: outer_src,
            dst: real,
            ttl,
            tos,
            dont_frag,
            ident: if dont_frag { 0 } else { self.ip_ident },
        };
        match encapsulate(buf, summary, &outer) {
            Ok(mut outer_summary) => self.send_to(buf, &mut outer_summary, real, neighbours),
            Err(_) => self.drop(DropReason::NoHeadroom),
        }
    }

    /// Replaces the packet by an ICMP error from `from` to its source and addresses it.
    fn answer(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        kind: IcmpError,
        from: IpAddr,
        neighbours: &impl Neighbours,
    ) -> Option<Verdict> {
        let client = summary.src?;
        let mut icmp = icmp_error(buf, summary, kind, from).ok()?;
        Some(self.send_to(buf, &mut icmp, client, neighbours))
    }
}

/// TTL / hop limit, TOS / traffic class and DF of the (already decremented) inner header.
fn inner_ttl_tos_df(packet: &[u8], summary: &Summary) -> (u8, u8, bool) {
    let header = packet.get(summary.l3_offset..).unwrap_or(&[]);
    match summary.l3 {
        L3::Ipv6 => {
            let tc = match header {
                [a, b, ..] => (a << 4) | (b >> 4),
                _ => 0,
            };
            (header.get(7).copied().unwrap_or(64), tc, false)
        }
        _ => {
            let df = header.get(6).is_some_and(|b| b & 0x40 != 0);
            (header.get(8).copied().unwrap_or(64), header.get(1).copied().unwrap_or(0), df)
        }
    }
}
