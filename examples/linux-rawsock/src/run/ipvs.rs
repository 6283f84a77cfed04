//! IPVS's configuration commands (what ipvsadm sends the kernel) carried out on the director's
//! whole configuration, with the kernel's answers: `vsadm` sends them over the control socket.
//! A batch (`vsadm -R`) is applied to a copy and only kept when every command succeeds.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use vs_proto::conn::Forward;
use vs_proto::engine::{Persistence, RealConfig, ServiceKey};
use vs_proto::wire::IpProtocol;
use vs_sched::SchedFlags;

use super::config::{Config, ServiceSpec};

/// A service as a command names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceArg {
    /// "tcp" or "udp" (ignored for firewall marks).
    pub(crate) proto: String,
    pub(crate) addr: Option<IpAddr>,
    pub(crate) port: u16,
    pub(crate) fwmark: u32,
    pub(crate) ipv6: bool,
    pub(crate) scheduler: String,
    /// Persistence timeout in seconds.
    pub(crate) persistent: Option<u32>,
    /// Persistence granularity: an IPv4 mask (as a number) or an IPv6 prefix length.
    pub(crate) netmask: Option<u32>,
    pub(crate) ops: bool,
    pub(crate) flags: Vec<String>,
}

/// A real server as a command names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerArg {
    pub(crate) addr: IpAddr,
    pub(crate) port: u16,
    /// "masq", "route" or "tunnel".
    pub(crate) method: String,
    pub(crate) weight: u32,
    pub(crate) u_threshold: u32,
    pub(crate) l_threshold: u32,
}

/// One IPVS command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum IpvsCommand {
    AddService { service: ServiceArg },
    EditService { service: ServiceArg },
    DeleteService { service: ServiceArg },
    // A struct variant, so that unknown fields beside the tag are refused as for the others.
    Flush {},
    AddServer { service: ServiceArg, server: ServerArg },
    EditServer { service: ServiceArg, server: ServerArg },
    DeleteServer { service: ServiceArg, server: ServerArg },
    Zero { service: Option<ServiceArg> },
    SetTimeouts { tcp: u32, tcpfin: u32, udp: u32 },
}

/// The kernel's answers, with the text ipvsadm prints for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum IpvsError {
    ServiceExists,
    NoService,
    ServiceNotDefined,
    DestExists,
    NoDest,
    NoScheduler,
    Range,
    Invalid,
    FamilyMismatch,
    NoRoom,
}

impl IpvsError {
    /// ipvsadm's message for it.
    pub(crate) fn message(self) -> &'static str {
        match self {
            IpvsError::ServiceExists => "Service already exists",
            IpvsError::NoService => "No such service",
            IpvsError::ServiceNotDefined => "Service not defined",
            IpvsError::DestExists => "Destination already exists",
            IpvsError::NoDest => "No such destination",
            IpvsError::NoScheduler => "Scheduler or persistence engine not found",
            IpvsError::Range => "Numerical result out of range",
            IpvsError::Invalid => "Invalid argument",
            IpvsError::FamilyMismatch => "Different address family is allowed only for tunneling servers",
            IpvsError::NoRoom => "Cannot allocate memory",
        }
    }
}

impl ServiceArg {
    /// The engine's key.
    pub(crate) fn key(&self) -> Option<ServiceKey> {
        if self.fwmark != 0 {
            return Some(ServiceKey::fwmark(self.fwmark, self.ipv6));
        }
        let proto = if self.proto == "udp" { IpProtocol::UDP } else { IpProtocol::TCP };
        Some(ServiceKey::new(proto, self.addr?, self.port))
    }

    fn is_ipv6(&self) -> bool {
        if self.fwmark != 0 { self.ipv6 } else { self.addr.is_some_and(|a| a.is_ipv6()) }
    }

    fn persistence(&self) -> Result<Option<Persistence>, IpvsError> {
        let Some(timeout_s) = self.persistent else { return Ok(None) };
        if self.is_ipv6() {
            let prefix_len = u8::try_from(self.netmask.unwrap_or(128)).map_err(|_| IpvsError::Invalid)?;
            return Ok(Some(Persistence { timeout_s, prefix_len, ipv4_mask: None }));
        }
        // IPv4: any mask, as the kernel takes it; a prefix when it is one.
        let mask = self.netmask.unwrap_or(u32::MAX);
        Ok(Some(if mask.leading_ones() + mask.trailing_zeros() == 32 {
            Persistence { timeout_s, prefix_len: u8::try_from(mask.leading_ones()).unwrap_or(32), ipv4_mask: None }
        } else {
            Persistence { timeout_s, prefix_len: 32, ipv4_mask: Some(mask) }
        }))
    }

    fn flags(&self) -> SchedFlags {
        self.flags.iter().filter_map(|f| SchedFlags::from_ipvsadm_name(f)).fold(SchedFlags::empty(), |a, b| a | b)
    }
}

impl ServerArg {
    fn real(&self) -> RealConfig {
        RealConfig {
            addr: self.addr,
            port: self.port,
            forward: match self.method.as_str() {
                "masq" => Forward::Nat,
                "tunnel" => Forward::Tunnel,
                _ => Forward::DirectRoute,
            },
            weight: self.weight,
            upper_threshold: self.u_threshold,
            lower_threshold: self.l_threshold,
        }
    }
}

/// The real server a command names, with the port ipvsadm would have sent: for direct
/// routing and tunnels on an address-and-port service the service's (packets keep their port).
/// vsd keeps its configuration as ipvsadm rules, which say the same, so a command from a
/// client other than vsadm saves and reloads as it was applied.
fn real_of(server: &ServerArg, key: &ServiceKey) -> RealConfig {
    let mut real = server.real();
    if real.forward != Forward::Nat && !key.is_fwmark() {
        real.port = key.port;
    }
    real
}

fn find(config: &mut Config, key: &ServiceKey) -> Option<usize> {
    config.services.iter().position(|s| s.key == *key)
}

/// Carries out one command on `config`; what happened to timeouts and counters is returned for
/// the caller to pass on (the configuration does not hold them).
pub(crate) fn apply(config: &mut Config, command: &IpvsCommand) -> Result<(), IpvsError> {
    match command {
        IpvsCommand::AddService { service } => {
            let key = service.key().ok_or(IpvsError::Invalid)?;
            if find(config, &key).is_some() {
                return Err(IpvsError::ServiceExists);
            }
            config.services.push(ServiceSpec {
                key,
                scheduler: service.scheduler.clone(),
                flags: service.flags(),
                one_packet: service.ops,
                persistence: service.persistence()?,
                reals: vec![],
            });
        }
        IpvsCommand::EditService { service } => {
            let key = service.key().ok_or(IpvsError::Invalid)?;
            let i = find(config, &key).ok_or(IpvsError::NoService)?;
            let spec = &mut config.services[i];
            spec.scheduler = service.scheduler.clone();
            spec.flags = service.flags();
            spec.one_packet = service.ops;
            spec.persistence = service.persistence()?;
        }
        IpvsCommand::DeleteService { service } => {
            let key = service.key().ok_or(IpvsError::Invalid)?;
            let i = find(config, &key).ok_or(IpvsError::NoService)?;
            config.services.remove(i);
        }
        IpvsCommand::Flush {} => config.services.clear(),
        IpvsCommand::AddServer { service, server } => {
            let key = service.key().ok_or(IpvsError::Invalid)?;
            let i = find(config, &key).ok_or(IpvsError::ServiceNotDefined)?;
            let real = real_of(server, &key);
            if real.addr.is_ipv6() != service.is_ipv6() && real.forward != Forward::Tunnel {
                return Err(IpvsError::FamilyMismatch);
            }
            check_thresholds(&real)?;
            let spec = &mut config.services[i];
            if spec.reals.iter().any(|r| r.addr == real.addr && r.port == real.port) {
                return Err(IpvsError::DestExists);
            }
            spec.reals.push(real);
        }
        IpvsCommand::EditServer { service, server } => {
            let key = service.key().ok_or(IpvsError::Invalid)?;
            let i = find(config, &key).ok_or(IpvsError::ServiceNotDefined)?;
            let real = real_of(server, &key);
            if real.addr.is_ipv6() != service.is_ipv6() && real.forward != Forward::Tunnel {
                return Err(IpvsError::FamilyMismatch);
            }
            let spec = &mut config.services[i];
            let slot =
                spec.reals.iter_mut().find(|r| r.addr == real.addr && r.port == real.port).ok_or(IpvsError::NoDest)?;
            check_thresholds(&real)?;
            *slot = real;
        }
        IpvsCommand::DeleteServer { service, server } => {
            let key = service.key().ok_or(IpvsError::Invalid)?;
            let i = find(config, &key).ok_or(IpvsError::ServiceNotDefined)?;
            let spec = &mut config.services[i];
            let port = real_of(server, &key).port;
            let before = spec.reals.len();
            spec.reals.retain(|r| !(r.addr == server.addr && r.port == port));
            if spec.reals.len() == before {
                return Err(IpvsError::NoDest);
            }
        }
        IpvsCommand::Zero { service } => {
            if let Some(service) = service {
                let key = service.key().ok_or(IpvsError::Invalid)?;
                find(config, &key).ok_or(IpvsError::NoService)?;
            }
        }
        IpvsCommand::SetTimeouts { .. } => {}
    }
    Ok(())
}

/// A batch of commands on a copy of `config`, all or none: the configuration they make (its
/// rules text rewritten, checked by an engine, which judges schedulers and limits), or `None`
/// when they change nothing (counters and timeouts only), or the index of the failing command
/// and the kernel's message.
pub(crate) fn plan(config: &Config, commands: &[IpvsCommand]) -> Result<Option<Config>, (usize, String)> {
    let mut next = config.clone();
    for (i, c) in commands.iter().enumerate() {
        apply(&mut next, c).map_err(|e| (i, e.message().to_owned()))?;
    }
    let changes = commands.iter().any(|c| !matches!(c, IpvsCommand::Zero { .. } | IpvsCommand::SetTimeouts { .. }));
    if !changes {
        return Ok(None);
    }
    next.text = next.save_text();
    let index = commands.len().saturating_sub(1);
    super::config::validate(&next.effective(&std::collections::HashMap::new()))
        .map_err(|e| (index, kernel_message(&e)))?;
    Ok(Some(next))
}

/// The kernel's message for an engine refusal (what ipvsadm would print).
pub(crate) fn kernel_message(e: &str) -> String {
    if e.contains("unknown scheduler") {
        IpvsError::NoScheduler.message().to_owned()
    } else if e.contains("out of range") {
        IpvsError::Range.message().to_owned()
    } else {
        e.to_owned()
    }
}

/// The kernel refuses a lower threshold above the upper one (ERANGE).
fn check_thresholds(real: &RealConfig) -> Result<(), IpvsError> {
    if real.lower_threshold > real.upper_threshold {
        return Err(IpvsError::Range);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> ServiceArg {
        ServiceArg {
            proto: "tcp".into(),
            addr: Some("198.18.0.100".parse().unwrap()),
            port: 80,
            fwmark: 0,
            ipv6: false,
            scheduler: "rr".into(),
            persistent: None,
            netmask: None,
            ops: false,
            flags: vec![],
        }
    }

    fn server(method: &str, port: u16) -> ServerArg {
        ServerArg {
            addr: "198.18.1.9".parse().unwrap(),
            port,
            method: method.into(),
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        }
    }

    #[test]
    fn requests_with_fields_nobody_defined_are_refused() {
        use super::super::control::decode;
        assert!(decode(r#"{"op":"ipvs","commands":[{"command":"flush"}]}"#).is_ok());
        // An unknown field beside a command (even one without fields), in a service, or in
        // the request: refused rather than carried out as a different request.
        assert!(decode(r#"{"op":"ipvs","commands":[{"command":"flush","service":1}]}"#).is_err());
        let mut service = serde_json::to_value(service()).unwrap();
        service["weight"] = 3.into();
        let request = serde_json::json!({"op": "ipvs", "commands": [{"command": "add-service", "service": service}]});
        assert!(decode(&request.to_string()).is_err());
        assert!(decode(r#"{"op":"zero","rule":"x"}"#).is_err());
    }

    #[test]
    fn a_direct_routing_server_takes_the_service_port_as_ipvsadm_sends_it() {
        // Found by the control fuzz target: a raw command's DR server kept port 8080, which
        // the saved rules (ipvsadm's form) turn into 80 on the next reload.
        let commands = [
            IpvsCommand::AddService { service: service() },
            IpvsCommand::AddServer { service: service(), server: server("route", 8080) },
        ];
        let next = plan(&Config::default(), &commands).unwrap().unwrap();
        assert_eq!(next.services[0].reals[0].port, 80);
        assert_eq!(Config::parse(&next.save_text()).unwrap().services, next.services);
        let deleted = plan(&next, &[IpvsCommand::DeleteServer { service: service(), server: server("route", 8080) }]);
        assert!(deleted.unwrap().unwrap().services[0].reals.is_empty());
    }
}
