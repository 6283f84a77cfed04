//! A packet thread: its own receive rings (one per interface, in the fanout group when there
//! are several threads), its own engine and connection table, transmit sockets, and a command
//! channel from the control plane. Frames are copied from the ring into buffers with headroom
//! (room for a tunnel header), finished where offloads left them undone, and processed in
//! bursts through `Engine::process_burst`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use vs_proto::conn::ConnTable;
use vs_proto::engine::{Engine, EngineConfig, ServiceSlot, Verdict};
use vs_proto::wire::{MacAddr, PacketBuf};

use super::bpf;
use super::config::{self, Config, REALS, SERVICES, Steering};
use super::control::{ConnRow, Report};
use super::memory::Mapped;
use super::neigh::{Lookup, NeighView, Requests, Shared};
use super::ring::{Geometry, RxRing, TxSocket, VNET_NEEDS_CSUM, VnetHdr, attach_filter};
use super::{offload, responder};

/// Bytes before each frame: room for an outer IPv6 header and more.
const HEADROOM: usize = 128;
/// The largest frame a ring hands over (a 64 KiB GSO packet with its link header).
const SLOT: usize = HEADROOM + 65_536 + 64;
/// Frames per burst.
const BURST: usize = 32;
/// Sweep the connection table this often.
const SWEEP_MS: u64 = 16;
/// Connections the sweep looks at per run.
const SWEEP_BUDGET: usize = 1024;
/// Clients remembered from their own frames (until the kernel resolves them).
const LEARNED_MAX: usize = 65_536;

/// A frame waiting in a slot.
#[derive(Debug, Clone, Copy)]
struct Pending {
    len: usize,
    /// Its offload state as received, when it is passed on to the kernel to finish (a partial
    /// checksum, a GSO super-frame).
    offload: Option<VnetHdr>,
}

/// One of vsd's interfaces.
#[derive(Debug, Clone)]
pub(crate) struct Port {
    pub(crate) name: String,
    pub(crate) ifindex: u32,
    pub(crate) mac: MacAddr,
    pub(crate) mtu: usize,
}

/// What the control plane asks a packet thread.
pub(crate) enum Command {
    /// Make the engine hold this configuration.
    Apply(Arc<Config>, Sender<Result<(), String>>),
    /// Counters and rates of every service and real server.
    Report(Sender<Report>),
    /// The connection table, as `ipvsadm -L -c` lists it.
    Conns(Sender<Vec<ConnRow>>),
    /// Zero the counters: of one service, or all.
    Zero(Option<vs_proto::engine::ServiceKey>, Sender<()>),
    /// What this thread's engine holds (draining services and servers included).
    Steering(Sender<Steering>),
    /// `ipvsadm --set TCP TCPFIN UDP` (seconds; 0 keeps a value).
    Timeouts([u32; 3], Sender<Result<(), String>>),
}

/// Everything a packet thread starts from.
pub(crate) struct Setup {
    pub(crate) index: usize,
    pub(crate) ports: Arc<Vec<Port>>,
    pub(crate) capacity: usize,
    pub(crate) defence: vs_proto::engine::Defence,
    pub(crate) seed: u64,
    pub(crate) tunnel: (Option<std::net::Ipv4Addr>, Option<std::net::Ipv6Addr>),
    /// PACKET_FANOUT group ids, one per port, when there are several threads.
    pub(crate) fanout: Option<Vec<u16>>,
    pub(crate) neigh: Arc<Shared>,
    pub(crate) requests: Requests,
    pub(crate) commands: Receiver<Command>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) epoch: Instant,
    pub(crate) config: Arc<Config>,
}

/// Opens the rings and sockets and maps the table; reports how it went through `ready`, then
/// runs until `stop`.
pub(crate) fn run(setup: Setup, ready: Sender<Result<String, String>>) {
    let started = prepare(&setup);
    let (mut rings, txs, memory) = match started {
        Ok(parts) => parts,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut memory = memory;
    let backing = memory.backing;
    let memory_len = memory.bytes().len();
    let capacity = setup.capacity;
    let table = match ConnTable::new(memory.bytes(), capacity, setup.seed) {
        Ok(t) => t,
        Err(e) => {
            let _ = ready.send(Err(format!("connection table: {e}")));
            return;
        }
    };
    let mut slots: Vec<ServiceSlot<REALS>> = (0..SERVICES).map(|_| ServiceSlot::default()).collect();
    let engine_config = EngineConfig {
        mac: setup.ports[0].mac,
        mtu: setup.ports.iter().map(|p| p.mtu).min().unwrap_or(1500).min(usize::from(u16::MAX)) as u16,
        tunnel_v4: setup.tunnel.0,
        tunnel_v6: setup.tunnel.1,
        seed: setup.seed ^ (setup.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        defence: setup.defence,
        ..EngineConfig::default()
    };
    let mut engine: Engine<'_, REALS> = match Engine::new(table, &mut slots[..], engine_config) {
        Ok(e) => e,
        Err(e) => {
            let _ = ready.send(Err(format!("engine: {e}")));
            return;
        }
    };
    if let Err(e) = config::apply(&mut engine, &setup.config) {
        let _ = ready.send(Err(e));
        return;
    }
    let _ = ready.send(Ok(format!("{capacity} connections in {} MiB of {backing}", memory_len >> 20)));
    let mut thread = Thread {
        ports: Arc::clone(&setup.ports),
        txs,
        slots: (0..BURST).map(|_| vec![0u8; SLOT]).collect(),
        lens: Vec::with_capacity(BURST),
        verdicts: vec![Verdict::Pass; BURST],
        vips: setup.config.vips(),
        learned: HashMap::new(),
        view: setup.neigh.snapshot(),
        view_generation: setup.neigh.generation(),
        requests: setup.requests.clone(),
        epoch: setup.epoch,
        truncated: 0,
        ring_packets: 0,
        ring_drops: 0,
        steering: Steering::of_config(&setup.config),
        passthrough: !has_tunnels(&engine),
        mtu: setup.ports.iter().map(|p| p.mtu).min().unwrap_or(1500),
    };
    let mut last_sweep = 0u64;
    let mut last_steer = 0u64;
    while !setup.stop.load(Ordering::Relaxed) {
        while let Ok(command) = setup.commands.try_recv() {
            thread.command(command, &mut engine, &rings);
        }
        if setup.neigh.generation() != thread.view_generation {
            thread.view_generation = setup.neigh.generation();
            thread.view = setup.neigh.snapshot();
        }
        let mut busy = false;
        for (port, ring) in rings.iter_mut().enumerate() {
            // A few blocks per ring per turn, so that one busy interface cannot starve another.
            for _ in 0..4 {
                let mut frames = 0;
                ring.drain_block(|frame| {
                    frames += 1;
                    thread.receive(&mut engine, port, frame);
                });
                if frames == 0 {
                    break;
                }
                busy = true;
            }
        }
        thread.process(&mut engine);
        thread.flush();
        let now = thread.now_ms();
        if now >= last_sweep + SWEEP_MS {
            engine.sweep(now, SWEEP_BUDGET);
            last_sweep = now;
        }
        if now >= last_steer + 1000 {
            if let Err(e) = thread.steer(&engine, &rings) {
                tracing::error!(error = %e, "updating the socket filter failed");
            }
            last_steer = now;
        }
        if !busy {
            wait_any(&rings, 20);
        }
    }
    engine.close();
}

type Prepared = (Vec<RxRing>, Vec<TxSocket>, Mapped);

fn prepare(setup: &Setup) -> Result<Prepared, String> {
    let filter = bpf::socket_filter(&Steering::of_config(&setup.config).selection())?;
    let fanout_program = match &setup.fanout {
        Some(_) => Some(bpf::fanout_program(&setup.config.vips())?),
        None => None,
    };
    let mut rings = Vec::new();
    for (i, port) in setup.ports.iter().enumerate() {
        // PACKET_FANOUT_CBPF (6): the program picks the thread.
        let fanout = setup.fanout.as_ref().map(|ids| (ids[i], libc::PACKET_FANOUT_CBPF));
        let ring = RxRing::open(port.ifindex, Geometry::default(), &filter, fanout, fanout_program.as_ref(), true)
            .map_err(|e| format!("{}: receive ring: {e}", port.name))?;
        rings.push(ring);
    }
    let txs = setup
        .ports
        .iter()
        .map(|p| TxSocket::open(p.ifindex, true, p.mtu).map_err(|e| format!("{}: transmit socket: {e}", p.name)))
        .collect::<Result<Vec<_>, _>>()?;
    let memory =
        Mapped::new(ConnTable::footprint(setup.capacity)).map_err(|e| format!("connection table memory: {e}"))?;
    // (The kernel keeps its own copies of the filter and fanout programs.)
    Ok((rings, txs, memory))
}

fn wait_any(rings: &[RxRing], timeout_ms: i32) {
    let mut fds: Vec<libc::pollfd> =
        rings.iter().map(|r| libc::pollfd { fd: r.raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `fds` holds `fds.len()` valid pollfd entries.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
}

/// A packet thread's state besides its engine.
struct Thread {
    ports: Arc<Vec<Port>>,
    txs: Vec<TxSocket>,
    slots: Vec<Vec<u8>>,
    /// The frames waiting in `slots`.
    lens: Vec<Pending>,
    /// Partial checksums and super-frames go through whole and the kernel finishes them on
    /// transmit; off while tunnel servers exist (an encapsulated super-frame cannot be
    /// described to the kernel), when vsd finishes them itself before the engine.
    passthrough: bool,
    verdicts: Vec<Verdict>,
    vips: Vec<IpAddr>,
    learned: HashMap<IpAddr, (MacAddr, u16)>,
    view: Arc<NeighView>,
    view_generation: u64,
    requests: Requests,
    epoch: Instant,
    truncated: u64,
    ring_packets: u64,
    ring_drops: u64,
    /// What the socket filter lets through now.
    steering: Steering,
    /// The smallest MTU of vsd's interfaces: larger TCP frames are segments to cut.
    mtu: usize,
}

impl Thread {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn command(&mut self, command: Command, engine: &mut Engine<'_, REALS>, rings: &[RxRing]) {
        match command {
            Command::Apply(config, reply) => {
                let result = config::apply(engine, &config).and_then(|()| self.steer(engine, rings));
                self.vips = config.vips();
                self.passthrough = !has_tunnels(engine);
                let _ = reply.send(result);
            }
            Command::Steering(reply) => {
                let _ = reply.send(Steering::of_engine(engine));
            }
            Command::Report(reply) => {
                let mut report = Report::of(engine);
                for ring in rings {
                    let (packets, drops) = ring.take_stats();
                    self.ring_packets += packets;
                    self.ring_drops += drops;
                }
                report.ring_packets = self.ring_packets;
                report.ring_drops = self.ring_drops;
                report.truncated = self.truncated;
                report.tx_errors = self.txs.iter().map(|t| t.errors).sum();
                let _ = reply.send(report);
            }
            Command::Conns(reply) => {
                let _ = reply.send(ConnRow::list(engine, self.now_ms()));
            }
            Command::Zero(service, reply) => {
                let _ = engine.zero_stats(service.as_ref());
                let _ = reply.send(());
            }
            Command::Timeouts([tcp, tcpfin, udp], reply) => {
                let result = engine.timeouts_mut().set_ipvsadm(tcp, tcpfin, udp).map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
        }
    }

    /// Points the socket filter at what the engine holds now; a no-op when nothing changed
    /// (run after every change and on the sweep, as draining services and servers go away).
    fn steer(&mut self, engine: &Engine<'_, REALS>, rings: &[RxRing]) -> Result<(), String> {
        let steering = Steering::of_engine(engine);
        if steering == self.steering {
            return Ok(());
        }
        let filter = bpf::socket_filter(&steering.selection())?;
        for ring in rings {
            attach_filter(ring.raw_fd(), &filter).map_err(|e| e.to_string())?;
        }
        self.steering = steering;
        Ok(())
    }

    /// Takes one frame from a ring: answers ARP / ND for the VIPs, learns the client's link
    /// address, finishes offloaded work and queues the frame for the engine.
    fn receive(&mut self, engine: &mut Engine<'_, REALS>, port: usize, frame: super::ring::RxFrame<'_>) {
        if frame.truncated {
            self.truncated += 1;
            return;
        }
        let data = frame.data;
        let ethertype = data.get(12..14);
        if ethertype == Some(&[0x08, 0x06]) || is_neighbour_solicitation(data) {
            // VIPs live on the client side: the first interface.
            if port == 0
                && let Some(answer) = responder::answer(data, self.ports[0].mac, &self.vips)
                && let Some(tx) = self.txs.get_mut(0)
            {
                tx.push(&answer);
            }
            return;
        }
        self.learn(port, data);
        if self.passthrough {
            let offload = (frame.csum_not_ready || frame.vnet.is_gso()).then_some(frame.vnet);
            self.queue(engine, data, offload, false);
            return;
        }
        let mtu = self.mtu;
        if data.len() > mtu + 14 {
            let mut whole = data.to_vec();
            if frame.csum_not_ready {
                offload::complete_checksum(&mut whole);
            }
            let mut pieces = Vec::new();
            if offload::segment(&whole, mtu, |seg| pieces.push(seg.to_vec())) {
                for piece in pieces {
                    self.queue(engine, &piece, None, false);
                }
                return;
            }
        }
        self.queue(engine, data, None, frame.csum_not_ready);
    }

    fn queue(&mut self, engine: &mut Engine<'_, REALS>, data: &[u8], offload: Option<VnetHdr>, csum_not_ready: bool) {
        if self.lens.len() == BURST {
            self.process(engine);
        }
        let i = self.lens.len();
        let Some(slot) = self.slots.get_mut(i).and_then(|s| s.get_mut(HEADROOM..HEADROOM + data.len())) else {
            return;
        };
        slot.copy_from_slice(data);
        if csum_not_ready {
            offload::complete_checksum(slot);
        }
        self.lens.push(Pending { len: data.len(), offload });
    }

    /// A client's frames to a VIP tell its (or its router's) link address: kept until the
    /// kernel's neighbour table has it, so that the first reply need not wait for ARP.
    fn learn(&mut self, port: usize, data: &[u8]) {
        learn(&mut self.learned, &self.vips, port, data);
    }

    /// Runs the queued frames through the engine and queues what it transmits.
    fn process(&mut self, engine: &mut Engine<'_, REALS>) {
        if self.lens.is_empty() {
            return;
        }
        let now = self.now_ms();
        let lookup = Lookup { view: &self.view, learned: &self.learned, misses: RefCell::new(Vec::new()) };
        // A fixed-capacity list: no allocation per burst.
        let mut bufs: heapless::Vec<PacketBuf<'_>, BURST> = self
            .slots
            .iter_mut()
            .zip(&self.lens)
            .filter_map(|(slot, pending)| PacketBuf::new(slot, HEADROOM, pending.len).ok())
            .collect();
        let n = engine.process_burst(&mut bufs, now, &lookup, &mut self.verdicts);
        for ((buf, verdict), pending) in bufs.iter_mut().zip(&self.verdicts).zip(&self.lens).take(n) {
            if let Verdict::Transmit { port, .. } = *verdict
                && let (Some(tx), Some(p)) = (self.txs.get_mut(usize::from(port)), self.ports.get(usize::from(port)))
            {
                if let Some(src) = buf.data_mut().get_mut(6..12) {
                    src.copy_from_slice(&p.mac.0);
                }
                let offload = pending.offload.map(|rx| finish_offload(buf.data_mut(), rx)).unwrap_or_default();
                tx.push_offloaded(buf.data(), offload);
            }
        }
        for (addr, ifindex) in lookup.misses.into_inner() {
            let _ = self.requests.send((addr, ifindex));
        }
        self.lens.clear();
    }

    fn flush(&mut self) {
        for tx in &mut self.txs {
            tx.flush();
        }
    }
}

/// Whether the engine holds tunnel servers (draining ones included).
fn has_tunnels(engine: &Engine<'_, REALS>) -> bool {
    engine.services_in_use().any(|s| s.real_slots().any(|r| r.forward == vs_proto::conn::Forward::Tunnel))
}

/// The offload state to send a rewritten frame with, when the kernel is to finish it: its
/// transport checksum field set to the partial form for the new addresses, and the
/// segmentation of a super-frame carried over. Frames that are no longer plain TCP or UDP
/// (an ICMP error the engine wrote instead) go as they are.
fn finish_offload(frame: &mut [u8], rx: VnetHdr) -> VnetHdr {
    let mut s = vs_proto::wire::Summary::default();
    if s.parse_ethernet(frame).is_err() {
        return VnetHdr::default();
    }
    let Some(field) = s.fill_partial_l4_checksum(frame) else { return VnetHdr::default() };
    let (Ok(csum_start), Ok(csum_offset)) = (u16::try_from(s.l4_offset), u16::try_from(field)) else {
        return VnetHdr::default();
    };
    let header_len = match frame.get(s.l4_offset + 12) {
        Some(b) if field == 16 => usize::from(b >> 4) * 4,
        _ => 8,
    };
    VnetHdr {
        flags: VNET_NEEDS_CSUM,
        gso_type: rx.gso_type,
        hdr_len: u16::try_from(s.l4_offset + header_len).unwrap_or(rx.hdr_len),
        gso_size: rx.gso_size,
        csum_start,
        csum_offset,
    }
}

fn is_neighbour_solicitation(data: &[u8]) -> bool {
    data.get(12..14) == Some(&[0x86, 0xdd]) && data.get(20) == Some(&58) && data.get(54) == Some(&135)
}

/// Learns a client's link address from its frame to a VIP into `learned`, which holds at most
/// `LEARNED_MAX` addresses (it starts over when full: a flood of spoofed sources cannot grow it).
fn learn(learned: &mut HashMap<IpAddr, (MacAddr, u16)>, vips: &[IpAddr], port: usize, data: &[u8]) {
    let (src, dst) = match data.get(12..14) {
        Some([0x08, 0x00]) => match (data.get(26..30), data.get(30..34)) {
            (Some(s), Some(d)) => (
                IpAddr::from(<[u8; 4]>::try_from(s).unwrap_or_default()),
                IpAddr::from(<[u8; 4]>::try_from(d).unwrap_or_default()),
            ),
            _ => return,
        },
        Some([0x86, 0xdd]) => match (data.get(22..38), data.get(38..54)) {
            (Some(s), Some(d)) => (
                IpAddr::from(<[u8; 16]>::try_from(s).unwrap_or_default()),
                IpAddr::from(<[u8; 16]>::try_from(d).unwrap_or_default()),
            ),
            _ => return,
        },
        _ => return,
    };
    if !vips.contains(&dst) || learned.contains_key(&src) {
        return;
    }
    let Some(mac) = data.get(6..12).and_then(|m| <[u8; 6]>::try_from(m).ok()) else { return };
    if learned.len() >= LEARNED_MAX {
        learned.clear();
    }
    learned.insert(src, (MacAddr(mac), port as u16));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learnt_client_addresses_are_bounded_and_only_from_frames_to_a_vip() {
        let vip: IpAddr = "198.18.0.100".parse().unwrap();
        let mut learned = HashMap::new();
        let mut frame = [0u8; 34];
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 7]);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[30..34].copy_from_slice(&[198, 18, 0, 100]);
        // A flood from more spoofed sources than the map holds.
        for i in 0..(LEARNED_MAX as u32 + 10_000) {
            frame[26..30].copy_from_slice(&(0xC613_0000u32.wrapping_add(i)).to_be_bytes());
            learn(&mut learned, &[vip], 0, &frame);
            assert!(learned.len() <= LEARNED_MAX);
        }
        assert!(!learned.is_empty());
        // A frame to an address that is no VIP teaches nothing.
        learned.clear();
        frame[30..34].copy_from_slice(&[198, 18, 0, 77]);
        learn(&mut learned, &[vip], 0, &frame);
        assert!(learned.is_empty());
    }
}
