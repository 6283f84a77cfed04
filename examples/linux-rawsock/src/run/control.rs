//! The control socket: a Unix stream socket speaking newline-delimited JSON, one request and
//! one answer per line (try it with `socat - UNIX-CONNECT:/run/vsd.sock`). Requests:
//!
//! - `{"op":"status"}`: version, interfaces, threads, table capacity and occupancy;
//! - `{"op":"get-config"}`: the rules in force, as text (`rules`);
//! - `{"op":"set-config","rules":"..."}`: replaces the whole configuration atomically: a rules
//!   text with an error changes nothing and the answer names the line;
//! - `{"op":"list"}`: services and real servers with counters and rates (`services`);
//! - `{"op":"conns"}`: the connection table (`conns`), as `ipvsadm -L -c` lists it;
//! - `{"op":"zero"}`: zeroes the counters (`ipvsadm -Z`);
//! - `{"op":"timeouts","tcp":S,"tcpfin":S,"udp":S}`: `ipvsadm --set` (0 keeps a value);
//! - `{"op":"ipvs","commands":[...]}`: IPVS's configuration commands as ipvsadm sends them
//!   (`{"command":"add-service","service":{...}}`, `add-server`, `edit-*`, `delete-*`, `flush`,
//!   `zero`, `set-timeouts`; see `run::ipvs`), all or none: a failure answers with the kernel's
//!   message and the `index` of the failing command, and nothing changes.
//!
//! Every answer has `"ok":true` or `"ok":false` with an `error` message.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::IpAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use vs_proto::conn::Forward;
use vs_proto::engine::{Counters, DropReason, Engine, Rates};

use super::Director;
use super::config::{REALS, endpoint_text, service_name};

/// Counters as the listing shows them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) conns: u64,
    pub(crate) inpkts: u64,
    pub(crate) outpkts: u64,
    pub(crate) inbytes: u64,
    pub(crate) outbytes: u64,
    pub(crate) cps: u64,
    pub(crate) inpps: u64,
    pub(crate) outpps: u64,
    pub(crate) inbps: u64,
    pub(crate) outbps: u64,
}

impl Stats {
    fn of(c: &Counters, r: Rates) -> Stats {
        Stats {
            conns: c.conns,
            inpkts: c.in_packets,
            outpkts: c.out_packets,
            inbytes: c.in_bytes,
            outbytes: c.out_bytes,
            cps: r.cps,
            inpps: r.in_pps,
            outpps: r.out_pps,
            inbps: r.in_bps,
            outbps: r.out_bps,
        }
    }
    fn add(&mut self, o: &Stats) {
        self.conns += o.conns;
        self.inpkts += o.inpkts;
        self.outpkts += o.outpkts;
        self.inbytes += o.inbytes;
        self.outbytes += o.outbytes;
        self.cps += o.cps;
        self.inpps += o.inpps;
        self.outpps += o.outpps;
        self.inbps += o.inbps;
        self.outbps += o.outbps;
    }
}

/// A real server in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RealReport {
    pub(crate) addr: IpAddr,
    pub(crate) port: u16,
    /// `Masq`, `Route` or `Tunnel`, as ipvsadm prints them.
    pub(crate) forward: String,
    pub(crate) weight: u32,
    pub(crate) active: u32,
    pub(crate) inactive: u32,
    /// Connections controlled by persistence templates on this server.
    #[serde(default)]
    pub(crate) persistent: u32,
    #[serde(default)]
    pub(crate) u_threshold: u32,
    #[serde(default)]
    pub(crate) l_threshold: u32,
    pub(crate) stats: Stats,
}

/// A service in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ServiceReport {
    /// `TCP 198.18.0.100:80`, `FWM 1`.
    pub(crate) name: String,
    /// "TCP" or "UDP" (firewall-mark services: "FWM").
    #[serde(default)]
    pub(crate) proto: String,
    #[serde(default)]
    pub(crate) addr: Option<IpAddr>,
    #[serde(default)]
    pub(crate) port: u16,
    #[serde(default)]
    pub(crate) fwmark: u32,
    #[serde(default)]
    pub(crate) ipv6: bool,
    pub(crate) scheduler: String,
    /// Scheduler flags by ipvsadm's names.
    #[serde(default)]
    pub(crate) flags: Vec<String>,
    pub(crate) persistent: Option<u32>,
    /// Persistence mask as ipvsadm shows it (dotted for IPv4, a prefix length for IPv6),
    /// `None` for single client addresses.
    #[serde(default)]
    pub(crate) netmask: Option<String>,
    #[serde(default)]
    pub(crate) ops: bool,
    pub(crate) stats: Stats,
    /// In IPVS list order (newest first).
    pub(crate) reals: Vec<RealReport>,
}

/// One packet thread's (or, summed, the director's) listing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) services: Vec<ServiceReport>,
    pub(crate) connections: usize,
    pub(crate) capacity: usize,
    pub(crate) total: Stats,
    pub(crate) passed: u64,
    pub(crate) drops: BTreeMap<String, u64>,
    /// Frames the rings received and the kernel dropped for want of ring space.
    pub(crate) ring_packets: u64,
    pub(crate) ring_drops: u64,
    /// Connections scheduled by each packet thread.
    pub(crate) thread_conns: Vec<u64>,
    /// Frames longer than the ring's snap length; frames the kernel refused to send.
    pub(crate) truncated: u64,
    pub(crate) tx_errors: u64,
}

/// ipvsadm's word for a forwarding method.
pub(crate) fn forward_name(f: Forward) -> &'static str {
    match f {
        Forward::Nat => "Masq",
        Forward::DirectRoute => "Route",
        Forward::Tunnel => "Tunnel",
    }
}

impl Report {
    /// One engine's listing.
    pub(crate) fn of(engine: &Engine<'_, REALS>) -> Report {
        let services = engine
            .services()
            .map(|s| ServiceReport {
                name: service_name(&s.key()),
                proto: if s.key().is_fwmark() {
                    "FWM".to_owned()
                } else if s.key().proto == vs_proto::wire::IpProtocol::TCP {
                    "TCP".to_owned()
                } else {
                    "UDP".to_owned()
                },
                addr: (!s.key().is_fwmark()).then_some(s.key().addr),
                port: s.key().port,
                fwmark: s.key().fwmark,
                ipv6: s.key().addr.is_ipv6(),
                scheduler: s.scheduler().to_owned(),
                flags: super::config::flag_names(s.scheduler(), s.flags()).into_iter().map(str::to_owned).collect(),
                persistent: s.persistence().map(|p| p.timeout_s),
                netmask: s.persistence().and_then(|p| super::config::mask_text(&s.key(), &p)),
                ops: s.one_packet(),
                stats: Stats::of(s.stats(), s.rates()),
                reals: s
                    .reals()
                    .map(|(r, d)| RealReport {
                        addr: r.addr,
                        port: r.port,
                        forward: forward_name(r.forward).to_owned(),
                        weight: d.weight,
                        active: d.active,
                        inactive: d.inactive,
                        persistent: d.persistent,
                        u_threshold: d.upper_threshold,
                        l_threshold: d.lower_threshold,
                        stats: Stats::of(&r.stats, r.rates.rates()),
                    })
                    .collect(),
            })
            .collect();
        let global = engine.stats();
        let drops = DropReason::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), global.drops_for(*r)))
            .filter(|(_, n)| *n > 0)
            .collect();
        Report {
            services,
            connections: engine.connections().len(),
            capacity: engine.connections().capacity(),
            total: Stats::of(&global.total, global.rates.rates()),
            passed: global.passed,
            drops,
            thread_conns: vec![global.total.conns],
            ..Report::default()
        }
    }

    /// Adds another thread's listing (same services, in the same order).
    pub(crate) fn merge(&mut self, other: Report) {
        if self.services.is_empty() && self.capacity == 0 {
            *self = other;
            return;
        }
        for (mine, theirs) in self.services.iter_mut().zip(other.services) {
            mine.stats.add(&theirs.stats);
            for (a, b) in mine.reals.iter_mut().zip(theirs.reals) {
                a.active += b.active;
                a.inactive += b.inactive;
                a.persistent += b.persistent;
                a.stats.add(&b.stats);
            }
        }
        self.connections += other.connections;
        self.capacity += other.capacity;
        self.total.add(&other.total);
        self.passed += other.passed;
        self.thread_conns.extend(other.thread_conns);
        self.ring_packets += other.ring_packets;
        self.ring_drops += other.ring_drops;
        self.truncated += other.truncated;
        self.tx_errors += other.tx_errors;
        for (k, v) in other.drops {
            *self.drops.entry(k).or_default() += v;
        }
    }
}

/// A connection as `ipvsadm -L -c -n` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ConnRow {
    pub(crate) proto: String,
    /// Milliseconds until it expires.
    pub(crate) expires_ms: u64,
    pub(crate) state: String,
    pub(crate) client: String,
    pub(crate) virt: String,
    pub(crate) real: String,
}

impl ConnRow {
    /// Every connection of one engine.
    pub(crate) fn list(engine: &Engine<'_, REALS>, now_ms: u64) -> Vec<ConnRow> {
        let now = (now_ms / vs_proto::engine::TICK_MS) as u32;
        engine
            .connections()
            .iter()
            .map(|(_, c)| {
                let left = i64::from(c.expires().wrapping_sub(now) as i32).max(0) as u64;
                ConnRow {
                    proto: if c.proto() == vs_proto::wire::IpProtocol::TCP { "TCP" } else { "UDP" }.to_owned(),
                    expires_ms: left * vs_proto::engine::TICK_MS,
                    state: if c.is_template() { "NONE".to_owned() } else { c.state().name().to_owned() },
                    client: endpoint_text(c.client().0, c.client().1),
                    virt: endpoint_text(c.virt().0, c.virt().1),
                    real: endpoint_text(c.real().0, c.real().1),
                }
            })
            .collect()
    }
}

/// A request line. Fields it does not know are refused, not ignored: a misspelt or foreign
/// request must not be carried out as some other one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Request {
    pub(crate) op: String,
    #[serde(default)]
    pub(crate) rules: Option<String>,
    #[serde(default)]
    pub(crate) tcp: u32,
    #[serde(default)]
    pub(crate) tcpfin: u32,
    #[serde(default)]
    pub(crate) udp: u32,
    #[serde(default)]
    pub(crate) commands: Vec<super::ipvs::IpvsCommand>,
}

/// The longest request line accepted (a whole rules file fits many times over); a longer one
/// is answered with an error and the connection is closed.
pub(crate) const MAX_REQUEST: usize = 1 << 20;

/// Decodes a request line; the message for one that is not a request.
pub(crate) fn decode(line: &str) -> Result<Request, String> {
    serde_json::from_str(line).map_err(|e| format!("bad request: {e}"))
}

/// Answers one request line.
pub(crate) fn handle(director: &Mutex<Director>, line: &str) -> serde_json::Value {
    let request = match decode(line) {
        Ok(r) => r,
        Err(e) => return serde_json::json!({"ok": false, "error": e}),
    };
    let Ok(mut d) = director.lock() else { return serde_json::json!({"ok": false, "error": "director poisoned"}) };
    let result: Result<serde_json::Value, String> = match request.op.as_str() {
        "status" => Ok(d.status()),
        "get-config" => Ok(serde_json::json!({"rules": d.rules_text()})),
        "set-config" => match request.rules {
            Some(text) => d.set_rules(&text, "control socket").map(|()| serde_json::json!({})),
            None => Err("set-config needs `rules`".into()),
        },
        "list" => d.report().map(|r| serde_json::json!({"report": r})),
        "conns" => d.conns().map(|c| serde_json::json!({"conns": c})),
        "zero" => d.zero().map(|()| serde_json::json!({})),
        "timeouts" => d.timeouts([request.tcp, request.tcpfin, request.udp]).map(|()| serde_json::json!({})),
        "ipvs" => match d.ipvs(&request.commands) {
            Ok(()) => Ok(serde_json::json!({})),
            Err((index, e)) => {
                return serde_json::json!({"ok": false, "error": e, "index": index});
            }
        },
        other => Err(format!("unknown op `{other}`")),
    };
    match result {
        Ok(mut v) => {
            v["ok"] = serde_json::Value::Bool(true);
            v
        }
        Err(e) => serde_json::json!({"ok": false, "error": e}),
    }
}

fn serve_client(director: &Mutex<Director>, stream: UnixStream) {
    let Ok(reader) = stream.try_clone() else { return };
    let mut writer = stream;
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        // At most one byte past the limit is read, so that an endless line costs no memory.
        match reader.by_ref().take(MAX_REQUEST as u64 + 1).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.len() > MAX_REQUEST {
            let answer = serde_json::json!({"ok": false, "error": format!("request longer than {MAX_REQUEST} bytes")});
            let _ = writeln!(writer, "{answer}");
            return;
        }
        let answer = match std::str::from_utf8(&line) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => handle(director, text.trim_end_matches(['\n', '\r'])),
            Err(_) => serde_json::json!({"ok": false, "error": "bad request: not UTF-8"}),
        };
        if writeln!(writer, "{answer}").is_err() {
            return;
        }
    }
}

/// Serves the socket until the process ends (one thread per client).
pub(crate) fn serve(listener: UnixListener, director: Arc<Mutex<Director>>) {
    for stream in listener.incoming().flatten() {
        let d = Arc::clone(&director);
        std::thread::spawn(move || serve_client(&d, stream));
    }
}
