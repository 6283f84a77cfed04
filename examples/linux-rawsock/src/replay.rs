//! `vsd replay`: run captured frames through the engine, as the director would, offline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use vs_proto::conn::{ConnTable, Forward};
use vs_proto::engine::{DropReason, Engine, EngineConfig, ServiceConfig, ServiceSlot, Verdict};
use vs_proto::wire::{MacAddr, PacketBuf};

use crate::capture::{Frame, Writer};
use crate::rules::Rule;
use crate::run::config::{endpoint_text, service_name};

/// Services the replay engine can hold.
const SERVICES: usize = 64;
/// Real servers per service.
const REALS: usize = 64;
/// Bytes of headroom before each frame (room for a tunnel header or an ICMP error).
const HEADROOM: usize = 64;

/// What the replay does, besides the rules.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) mac: MacAddr,
    pub(crate) tunnel_src: Vec<IpAddr>,
    pub(crate) mtu: u16,
    /// Neighbours given on the command line (they win over what the capture shows).
    pub(crate) neighbours: BTreeMap<IpAddr, MacAddr>,
    /// Where addresses that are no known neighbour go (a default gateway's MAC).
    pub(crate) gateway: Option<MacAddr>,
    pub(crate) capacity: usize,
    /// Print what `vsadm -L -n --stats` and `vsadm -L -c -n` would show at the last frame.
    pub(crate) list: bool,
}

/// What happened, for the summary.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) frames: u64,
    pub(crate) transmitted: u64,
    pub(crate) passed: u64,
    pub(crate) dropped: u64,
    pub(crate) skipped: u64,
    /// Frames dropped because no neighbour was known for their next hop, and those next hops.
    pub(crate) undelivered: u64,
    pub(crate) unknown_neighbours: Vec<IpAddr>,
    /// Per real server: (service, real address:port, forwarding, connections).
    pub(crate) reals: Vec<(String, String, Forward, u64)>,
    pub(crate) text: String,
}

/// Runs `frames` through an engine configured by `rules`; transmitted frames go to `out`,
/// frames handed back to the host to `pass_out`.
pub(crate) fn run(
    rules: &[(usize, Rule)],
    options: &Options,
    frames: &[Frame],
    out: &mut Writer,
    mut pass_out: Option<&mut Writer>,
) -> Result<Report, String> {
    let mut memory = vec![0u8; ConnTable::footprint(options.capacity)];
    let table = ConnTable::new(&mut memory, options.capacity, 0x5eed).map_err(|e| format!("connection table: {e}"))?;
    let mut slots: Vec<ServiceSlot<REALS>> = (0..SERVICES).map(|_| ServiceSlot::default()).collect();
    let mut config = EngineConfig { mac: options.mac, mtu: options.mtu, ..EngineConfig::default() };
    for addr in &options.tunnel_src {
        match addr {
            IpAddr::V4(a) => config.tunnel_v4 = Some(*a),
            IpAddr::V6(a) => config.tunnel_v6 = Some(*a),
        }
    }
    let mut engine: Engine<'_, REALS> =
        Engine::new(table, &mut slots[..], config).map_err(|e| format!("engine: {e}"))?;
    for (line, rule) in rules {
        let result = match rule {
            Rule::Service { key, scheduler, flags, one_packet, persistence } => {
                let config =
                    ServiceConfig { scheduler, flags: *flags, one_packet: *one_packet, persistence: *persistence };
                engine.add_service(*key, &config)
            }
            Rule::Real { key, real } => engine.add_real(key, real),
            // Health checks need live servers; a replay has none.
            Rule::Check { .. } => Ok(()),
        };
        result.map_err(|e| format!("rules line {line}: {e}"))?;
    }
    // Neighbours: the command line's, then what the capture shows (each frame's source MAC for
    // its source address: the real servers' own frames, the clients' router), then the gateway.
    let learned = learn_neighbours(frames);
    let unknown = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let neighbours = |addr: IpAddr| {
        let found = options.neighbours.get(&addr).or_else(|| learned.get(&addr)).copied().or(options.gateway);
        if found.is_none() {
            unknown.borrow_mut().insert(addr);
        }
        found
    };
    let mut report = Report::default();
    let mut storage = vec![0u8; HEADROOM + 70_000];
    for frame in frames {
        report.frames += 1;
        if frame.linktype != 1 || frame.data.len() > 65_535 {
            report.skipped += 1;
            continue;
        }
        let now_ms = frame.ts_us / 1000;
        let len = frame.data.len();
        storage[HEADROOM..HEADROOM + len].copy_from_slice(&frame.data);
        let mut buf = PacketBuf::new(&mut storage, HEADROOM, len).map_err(|e| format!("{e}"))?;
        match engine.process(&mut buf, now_ms, &neighbours) {
            Verdict::Transmit { .. } => {
                report.transmitted += 1;
                out.write(frame.ts_us, buf.data())?;
            }
            Verdict::Pass => {
                report.passed += 1;
                if let Some(w) = pass_out.as_deref_mut() {
                    w.write(frame.ts_us, &frame.data)?;
                }
            }
            Verdict::Drop(reason) => {
                report.dropped += 1;
                report.undelivered += u64::from(reason == DropReason::NoNeighbour);
            }
        }
        engine.sweep(now_ms, 16);
    }
    report.unknown_neighbours = unknown.into_inner().into_iter().collect();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "frames {}: transmitted {}, passed to host {}, dropped {}, skipped (not Ethernet) {}",
        report.frames, report.transmitted, report.passed, report.dropped, report.skipped
    );
    for service in engine.services() {
        let name = service_name(&service.key());
        let s = service.stats();
        let persistent = match service.persistence() {
            Some(p) => format!(" persistent {}", p.timeout_s),
            None => String::new(),
        };
        let _ = writeln!(
            text,
            "{name} {}{persistent}: conns {} inpkts {} outpkts {} inbytes {} outbytes {}",
            service.scheduler(),
            s.conns,
            s.in_packets,
            s.out_packets,
            s.in_bytes,
            s.out_bytes
        );
        for (real, dest) in service.reals() {
            let share = if s.conns == 0 { 0.0 } else { 100.0 * real.stats.conns as f64 / s.conns as f64 };
            let _ = writeln!(
                text,
                "  -> {} {} weight {}: conns {} ({share:.0}%) inpkts {} outpkts {} active {} inactive {}",
                endpoint_text(real.addr, real.port),
                crate::run::control::forward_name(real.forward),
                dest.weight,
                real.stats.conns,
                real.stats.in_packets,
                real.stats.out_packets,
                dest.active,
                dest.inactive
            );
            report.reals.push((name.clone(), endpoint_text(real.addr, real.port), real.forward, real.stats.conns));
        }
    }
    for reason in DropReason::ALL {
        let n = engine.stats().drops_for(*reason);
        if n > 0 {
            let _ = writeln!(text, "dropped ({}): {n}", reason.as_str());
        }
    }
    if options.list {
        // What vsadm would show of this engine at the capture's last timestamp.
        let last_ms = frames.last().map_or(0, |f| f.ts_us / 1000);
        let listing = crate::run::control::Report::of(&engine);
        let stats = crate::vsadm::format::Format { numeric: true, stats: true, ..Default::default() };
        let _ = writeln!(text, "$ vsadm -L -n --stats");
        text.push_str(&crate::vsadm::format::list_all(&listing, &stats));
        let _ = writeln!(text, "$ vsadm -L -c -n");
        let rows = crate::run::control::ConnRow::list(&engine, last_ms);
        let conns = crate::vsadm::format::Format { numeric: true, ..Default::default() };
        text.push_str(&crate::vsadm::format::list_conns(&rows, &conns));
    }
    report.text = text;
    Ok(report)
}

/// Each Ethernet frame's source MAC for its source IP address (the last one seen wins).
fn learn_neighbours(frames: &[Frame]) -> BTreeMap<IpAddr, MacAddr> {
    let mut learned = BTreeMap::new();
    for frame in frames.iter().filter(|f| f.linktype == 1) {
        if let Ok(summary) = vs_proto::wire::Summary::from_ethernet(&frame.data)
            && let (Some(src), Some(mac)) = (summary.src, frame.data.get(6..12))
            && let Ok(mac) = <[u8; 6]>::try_from(mac)
        {
            learned.insert(src, MacAddr(mac));
        }
    }
    learned
}
