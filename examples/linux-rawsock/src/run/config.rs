//! The director's configuration as a whole: services with their real servers in the order the
//! rules give them, built from a rules file and the health checks' verdicts, and applied to an
//! engine as the smallest set of IPVS operations (add, edit, delete), so that connections and
//! counters of what did not change are kept.

use std::collections::HashMap;
use std::net::IpAddr;

use vs_proto::conn::Forward;
use vs_proto::engine::{ConfigError, Engine, Persistence, RealConfig, ServiceConfig, ServiceKey, ServiceSlot};
use vs_sched::SchedFlags;

use crate::rules::{self, Rule};
use crate::run::health::CheckSpec;

/// One virtual service as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceSpec {
    pub(crate) key: ServiceKey,
    pub(crate) scheduler: String,
    pub(crate) flags: SchedFlags,
    pub(crate) one_packet: bool,
    pub(crate) persistence: Option<Persistence>,
    /// Real servers in the order they were added.
    pub(crate) reals: Vec<RealConfig>,
}

/// A health check attached to a real server of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckRule {
    pub(crate) service: ServiceKey,
    pub(crate) addr: IpAddr,
    pub(crate) port: u16,
    pub(crate) spec: CheckSpec,
    /// The rules-file line it came from (kept when the configuration is rewritten).
    pub(crate) line: String,
}

/// A whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) services: Vec<ServiceSpec>,
    pub(crate) checks: Vec<CheckRule>,
    /// The rules text it came from (what the control socket hands back).
    pub(crate) text: String,
}

/// What a health check decided about a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// Serving: the configured weight.
    Up,
    /// Failing, kept with weight 0 (IPVS's quiescing): no new connections, existing ones go on.
    Quiesced,
    /// Failing, taken out of the service.
    Removed,
}

impl Config {
    /// Parses a rules file; errors name the line.
    pub(crate) fn parse(text: &str) -> Result<Config, String> {
        let parsed = rules::parse(text).map_err(|e| e.to_string())?;
        let mut config = Config { text: text.to_owned(), ..Config::default() };
        for (line, rule) in parsed {
            match rule {
                Rule::Service { key, scheduler, flags, one_packet, persistence } => {
                    if config.services.iter().any(|s| s.key == key) {
                        return Err(format!("line {line}: service already exists"));
                    }
                    config.services.push(ServiceSpec { key, scheduler, flags, one_packet, persistence, reals: vec![] });
                }
                Rule::Real { key, real } => {
                    let service =
                        config.services.iter_mut().find(|s| s.key == key).ok_or_else(|| {
                            format!("line {line}: no such service (an -a line must follow its -A line)")
                        })?;
                    if service.reals.iter().any(|r| r.addr == real.addr && r.port == real.port) {
                        return Err(format!("line {line}: real server already exists"));
                    }
                    service.reals.push(real);
                }
                Rule::Check { key, addr, port, spec } => {
                    // Port 0 names the real server at that address, whatever its port.
                    let ports: Vec<u16> = config
                        .services
                        .iter()
                        .filter(|s| s.key == key)
                        .flat_map(|s| s.reals.iter())
                        .filter(|r| r.addr == addr && (r.port == port || port == 0))
                        .map(|r| r.port)
                        .collect();
                    let port = match ports[..] {
                        [] => return Err(format!("line {line}: check for a real server that is not configured")),
                        [port] => port,
                        _ => return Err(format!("line {line}: several real servers at {addr}: give the port")),
                    };
                    let text_line = text.lines().nth(line - 1).unwrap_or_default().trim().to_owned();
                    config.checks.push(CheckRule { service: key, addr, port, spec, line: text_line });
                }
            }
        }
        Ok(config)
    }

    /// The configuration with health verdicts applied: quiesced servers get weight 0, removed
    /// ones are left out.
    pub(crate) fn effective(&self, health: &HashMap<(ServiceKey, IpAddr, u16), Health>) -> Config {
        let mut out = self.clone();
        for service in &mut out.services {
            let key = service.key;
            service.reals.retain_mut(|r| match health.get(&(key, r.addr, r.port)) {
                Some(Health::Removed) => false,
                Some(Health::Quiesced) => {
                    r.weight = 0;
                    true
                }
                _ => true,
            });
        }
        out
    }

    /// The configuration as rules text: `ipvsadm -S -n` lines (services in order, real servers
    /// in the order they were added), then the health checks whose servers remain.
    pub(crate) fn save_text(&self) -> String {
        let mut out = String::new();
        for s in &self.services {
            let svc = save_service(&s.key);
            out.push_str(&format!("-A {svc} -s {}", s.scheduler));
            let names = flag_names(&s.scheduler, s.flags);
            if !names.is_empty() {
                out.push_str(&format!(" -b {}", names.join(",")));
            }
            if let Some(p) = s.persistence {
                out.push_str(&format!(" -p {}", p.timeout_s));
                if let Some(mask) = mask_text(&s.key, &p) {
                    out.push_str(&format!(" -M {mask}"));
                }
            }
            if s.one_packet {
                out.push_str(" -o");
            }
            out.push('\n');
            for r in &s.reals {
                let method = match r.forward {
                    Forward::Nat => "-m",
                    Forward::DirectRoute => "-g",
                    Forward::Tunnel => "-i",
                };
                out.push_str(&format!("-a {svc} -r {} {method} -w {}", endpoint_text(r.addr, r.port), r.weight));
                if r.upper_threshold != 0 {
                    out.push_str(&format!(" -x {}", r.upper_threshold));
                }
                if r.lower_threshold != 0 {
                    out.push_str(&format!(" -y {}", r.lower_threshold));
                }
                out.push('\n');
            }
        }
        for c in &self.checks {
            let still = self
                .services
                .iter()
                .any(|s| s.key == c.service && s.reals.iter().any(|r| r.addr == c.addr && r.port == c.port));
            if still {
                out.push_str(&c.line);
                out.push('\n');
            }
        }
        out
    }

    /// Virtual addresses (for ARP, the socket filter and the ingress drop).
    pub(crate) fn vips(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.services.iter().filter(|s| !s.key.is_fwmark()).map(|s| s.key.addr).collect();
        v.sort();
        v.dedup();
        v
    }

    /// NAT real servers as (service, address, port): their replies are vsd's.
    pub(crate) fn nat_reals(&self) -> Vec<(ServiceKey, IpAddr, u16)> {
        let mut v = Vec::new();
        for s in &self.services {
            for r in s.reals.iter().filter(|r| r.forward == Forward::Nat) {
                if !v.iter().any(|(k, a, p)| *k == s.key && *a == r.addr && *p == r.port) {
                    v.push((s.key, r.addr, r.port));
                }
            }
        }
        v
    }

    /// Every real server address with its forwarding method.
    pub(crate) fn reals(&self) -> Vec<(IpAddr, Forward)> {
        let mut v: Vec<(IpAddr, Forward)> =
            self.services.iter().flat_map(|s| s.reals.iter().map(|r| (r.addr, r.forward))).collect();
        v.sort_by_key(|(a, f)| (*a, *f as u8));
        v.dedup();
        v
    }
}

/// What must be steered to vsd (by the socket filter) and kept from the kernel (by the ingress
/// rules): the VIPs, and the NAT real servers' service ports whose packets are replies.
/// Computed from the configuration and from the engines, whose deleted services and removed
/// real servers keep their connections until they drain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Steering {
    pub(crate) vips: Vec<IpAddr>,
    pub(crate) nat: Vec<(vs_proto::wire::IpProtocol, IpAddr, u16)>,
}

impl Steering {
    /// What a configuration needs.
    pub(crate) fn of_config(config: &Config) -> Steering {
        let mut s = Steering {
            vips: config.vips(),
            nat: config.nat_reals().into_iter().map(|(k, a, p)| (k.proto, a, p)).collect(),
        };
        s.normalise();
        s
    }

    /// What an engine holds, draining services and servers included.
    pub(crate) fn of_engine<const D: usize>(engine: &Engine<'_, D>) -> Steering {
        let mut s = Steering::default();
        for service in engine.services_in_use() {
            let key = service.key();
            if !key.is_fwmark() {
                s.vips.push(key.addr);
            }
            for real in service.real_slots().filter(|r| r.forward == Forward::Nat) {
                s.nat.push((key.proto, real.addr, real.port));
            }
        }
        s.normalise();
        s
    }

    /// Adds another's entries.
    pub(crate) fn union(&mut self, other: &Steering) {
        self.vips.extend(&other.vips);
        self.nat.extend(&other.nat);
        self.normalise();
    }

    fn normalise(&mut self) {
        self.vips.sort();
        self.vips.dedup();
        self.nat.sort();
        self.nat.dedup();
    }

    /// The socket filter's selection.
    pub(crate) fn selection(&self) -> crate::run::bpf::Selection {
        let mut nat_reals: Vec<IpAddr> = self.nat.iter().map(|(_, a, _)| *a).collect();
        nat_reals.dedup();
        crate::run::bpf::Selection { vips: self.vips.clone(), nat_reals }
    }
}

fn describe(e: ConfigError) -> &'static str {
    match e {
        ConfigError::Exists => "already exists",
        ConfigError::NotFound => "no such service or real server",
        ConfigError::Range => "value out of range",
        ConfigError::Full => "no room left (services or real servers per service)",
        ConfigError::UnknownScheduler => "unknown scheduler",
        ConfigError::Scheduler(_) => "the scheduler refused the change",
        ConfigError::Invalid => "invalid (protocol, or a real server of another family that is not a tunnel)",
    }
}

/// Makes `engine` hold exactly `target`, with the fewest operations: services and real servers
/// that are gone are deleted (their connections drain as IPVS's do), new ones added, changed
/// ones edited. On an error the engine may hold part of the change: validate on a scratch
/// engine first (see [`validate`]).
pub(crate) fn apply<const D: usize>(engine: &mut Engine<'_, D>, target: &Config) -> Result<(), String> {
    let current: Vec<ServiceKey> = engine.services().map(|s| s.key()).collect();
    for key in current.iter().filter(|k| !target.services.iter().any(|s| s.key == **k)) {
        engine.delete_service(key).map_err(|e| format!("delete service: {}", describe(e)))?;
    }
    for spec in &target.services {
        let config = ServiceConfig {
            scheduler: &spec.scheduler,
            flags: spec.flags,
            one_packet: spec.one_packet,
            persistence: spec.persistence,
        };
        let name = service_name(&spec.key);
        match engine.service(&spec.key) {
            None => engine.add_service(spec.key, &config).map_err(|e| format!("{name}: {}", describe(e)))?,
            Some(s) => {
                let changed = s.scheduler() != spec.scheduler
                    || s.flags() != spec.flags
                    || s.one_packet() != spec.one_packet
                    || s.persistence() != spec.persistence;
                if changed {
                    engine.edit_service(&spec.key, &config).map_err(|e| format!("{name}: {}", describe(e)))?;
                }
            }
        }
        let existing: Vec<RealConfig> = engine
            .service(&spec.key)
            .map(|s| {
                s.reals()
                    .map(|(r, d)| RealConfig {
                        addr: r.addr,
                        port: r.port,
                        forward: r.forward,
                        weight: d.weight,
                        upper_threshold: d.upper_threshold,
                        lower_threshold: d.lower_threshold,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for old in existing.iter().filter(|o| !spec.reals.iter().any(|r| r.addr == o.addr && r.port == o.port)) {
            engine
                .delete_real(&spec.key, old.addr, old.port)
                .map_err(|e| format!("{name}: delete real {}: {}", old.addr, describe(e)))?;
        }
        for real in &spec.reals {
            match existing.iter().find(|o| o.addr == real.addr && o.port == real.port) {
                None => engine.add_real(&spec.key, real),
                Some(old) if old != real => engine.edit_real(&spec.key, real),
                Some(_) => Ok(()),
            }
            .map_err(|e| format!("{name}: real {}: {}", real.addr, describe(e)))?;
        }
    }
    Ok(())
}

/// Services and real servers per engine (the host's fixed limits).
pub(crate) const SERVICES: usize = 256;
/// Real servers per service.
pub(crate) const REALS: usize = 64;

/// Checks that `target` can be applied, on a scratch engine with a tiny table.
pub(crate) fn validate(target: &Config) -> Result<(), String> {
    let capacity = 64;
    let mut memory = vec![0u8; vs_proto::conn::ConnTable::footprint(capacity)];
    let table = vs_proto::conn::ConnTable::new(&mut memory, capacity, 1).map_err(|e| e.to_string())?;
    let mut slots: Vec<ServiceSlot<REALS>> = (0..SERVICES).map(|_| ServiceSlot::default()).collect();
    let mut engine: Engine<'_, REALS> =
        Engine::new(table, &mut slots[..], vs_proto::engine::EngineConfig::default()).map_err(|e| e.to_string())?;
    apply(&mut engine, target)
}

/// A persistence mask as ipvsadm shows it, `None` for a single client address: dotted for
/// IPv4 services, a prefix length for IPv6.
pub(crate) fn mask_text(key: &ServiceKey, p: &Persistence) -> Option<String> {
    if key.addr.is_ipv6() {
        return (p.prefix_len != 128).then(|| p.prefix_len.to_string());
    }
    let bits = u32::from(p.prefix_len.min(32));
    let mask = p.ipv4_mask.unwrap_or_else(|| u32::MAX.checked_shl(32 - bits).unwrap_or(0));
    (mask != u32::MAX).then(|| std::net::Ipv4Addr::from(mask).to_string())
}

/// `ADDR:PORT`, `[V6]:PORT`.
pub(crate) fn endpoint_text(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// A service as `-S` writes it: `-t ADDR:PORT`, `-u ...`, `-f MARK [-6]`.
pub(crate) fn save_service(key: &ServiceKey) -> String {
    if key.is_fwmark() {
        return format!("-f {}{}", key.fwmark, if key.addr.is_ipv6() { " -6" } else { "" });
    }
    let flag = if key.proto == vs_proto::wire::IpProtocol::TCP { "-t" } else { "-u" };
    format!("{flag} {}", endpoint_text(key.addr, key.port))
}

/// Scheduler flags by ipvsadm's names, which depend on the scheduler.
pub(crate) fn flag_names(scheduler: &str, flags: SchedFlags) -> Vec<&'static str> {
    let names: [&'static str; 3] = match scheduler {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    [SchedFlags::SCHED1, SchedFlags::SCHED2, SchedFlags::SCHED3]
        .iter()
        .zip(names)
        .filter(|(f, _)| flags.contains(**f))
        .map(|(_, n)| n)
        .collect()
}

/// `TCP 198.18.0.100:80`, `FWM 16 IPv6`, as ipvsadm names services.
pub(crate) fn service_name(key: &ServiceKey) -> String {
    if key.is_fwmark() {
        return format!("FWM {}{}", key.fwmark, if key.addr.is_ipv6() { " IPv6" } else { "" });
    }
    let proto = if key.proto == vs_proto::wire::IpProtocol::TCP { "TCP" } else { "UDP" };
    format!("{proto} {}", endpoint_text(key.addr, key.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "-A -t 198.18.0.100:80 -s wlc\n\
                         -a -t 198.18.0.100:80 -r 198.18.1.1:8080 -m\n\
                         check -t 198.18.0.100:80 -r 198.18.1.1 tcp\n";

    #[test]
    fn a_check_without_a_port_names_the_real_server_at_that_address() {
        // Found by the rules fuzz target: the check used to take the service's port (80),
        // naming no real server, and was lost when the configuration was saved.
        let config = Config::parse(RULES).unwrap();
        assert_eq!(config.checks.len(), 1);
        assert_eq!((config.checks[0].addr, config.checks[0].port), ("198.18.1.1".parse().unwrap(), 8080));
        let again = Config::parse(&config.save_text()).unwrap();
        assert_eq!(again.checks.len(), 1, "the check survives a save:\n{}", config.save_text());
        assert_eq!(again.checks[0].port, 8080);
    }

    #[test]
    fn a_check_without_a_port_on_an_address_with_several_real_servers_is_refused() {
        let text = RULES.replace("check", "-a -t 198.18.0.100:80 -r 198.18.1.1:8081 -m\ncheck");
        let error = Config::parse(&text).unwrap_err();
        assert!(error.contains("line 4") && error.contains("give the port"), "{error}");
    }
}
