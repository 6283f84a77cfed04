//! Rules in `ipvsadm-save` / `ipvsadm -R` form: `-A` lines add virtual services, `-a` lines add
//! real servers. A malformed line is an error naming its line number, and no rule applies.

use std::net::{IpAddr, SocketAddr};

use vs_proto::conn::Forward;
use vs_proto::engine::{Persistence, RealConfig, ServiceKey};

/// ipvsadm's persistence timeout when `-p` has no value (checked on Linux 6.1).
const DEFAULT_PERSISTENCE_S: u32 = 360;

/// `-M` as ipvsadm reads it: for IPv6 services a prefix length (1..128); for IPv4 an address
/// as `inet_aton` reads one (dotted, or a single 32-bit number: `-M 24` is 0.0.0.24), any
/// mask, contiguous or not.
fn persistence_for(timeout_s: u32, netmask: Option<&str>, ipv6: bool) -> Result<Persistence, String> {
    let Some(text) = netmask else {
        return Ok(Persistence { timeout_s, prefix_len: if ipv6 { 128 } else { 32 }, ipv4_mask: None });
    };
    if ipv6 {
        let len = text
            .parse::<u8>()
            .ok()
            .filter(|l| (1..=128).contains(l))
            .ok_or_else(|| format!("bad IPv6 netmask `{text}`"))?;
        return Ok(Persistence { timeout_s, prefix_len: len, ipv4_mask: None });
    }
    let mask = match text.parse::<std::net::Ipv4Addr>() {
        Ok(a) => u32::from(a),
        Err(_) => text.parse::<u32>().map_err(|_| format!("bad netmask `{text}`"))?,
    };
    Ok(if mask.leading_ones() + mask.trailing_zeros() == 32 {
        Persistence { timeout_s, prefix_len: u8::try_from(mask.leading_ones()).unwrap_or(32), ipv4_mask: None }
    } else {
        Persistence { timeout_s, prefix_len: 32, ipv4_mask: Some(mask) }
    })
}
use vs_proto::wire::IpProtocol;
use vs_sched::SchedFlags;

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rule {
    /// `-A`: a virtual service with its scheduler and flags.
    Service {
        key: ServiceKey,
        scheduler: String,
        flags: SchedFlags,
        one_packet: bool,
        persistence: Option<Persistence>,
    },
    /// `-a`: a real server of a service.
    Real { key: ServiceKey, real: RealConfig },
    /// `check`: vsd's health check of a real server (port 0: the real server's port).
    Check { key: ServiceKey, addr: IpAddr, port: u16, spec: crate::run::health::CheckSpec },
}

/// A rule file error: line number (1-based) and message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RuleError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A port number or a service name from /etc/services (as ipvsadm resolves it).
fn port_number(text: &str) -> Option<u16> {
    use crate::vsadm::parse::{Proto, service_port};
    text.parse().ok().or_else(|| service_port(text, Proto::Tcp)).or_else(|| service_port(text, Proto::Udp))
}

/// `ADDR:PORT`, `[V6]:PORT`, with a numeric or well-known port.
fn endpoint(text: &str) -> Result<(IpAddr, u16), String> {
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Ok((sock.ip(), sock.port()));
    }
    let (addr, port) = match text.strip_prefix('[') {
        Some(rest) => rest.split_once("]:").ok_or_else(|| format!("bad address `{text}`"))?,
        None => text.rsplit_once(':').ok_or_else(|| format!("`{text}` needs a port"))?,
    };
    let addr: IpAddr = addr.parse().map_err(|_| format!("bad address `{addr}`"))?;
    let port = port_number(port).ok_or_else(|| format!("bad port `{port}`"))?;
    Ok((addr, port))
}

/// Parses a whole rule file into (line number, rule) pairs.
pub(crate) fn parse(text: &str) -> Result<Vec<(usize, Rule)>, RuleError> {
    let mut rules = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let rule = if words.first() == Some(&"check") { parse_check(&words[1..]) } else { parse_line(&words) };
        let rule = rule.map_err(|message| RuleError { line: n + 1, message })?;
        rules.push((n + 1, rule));
    }
    Ok(rules)
}

/// `check -t|-u VIP:PORT -r RS[:PORT] KIND OPTIONS...` (see `run::health`).
fn parse_check(words: &[&str]) -> Result<Rule, String> {
    let [flag, service, r, real, kind, options @ ..] = words else {
        return Err("check needs -t|-u VIP:PORT -r RS[:PORT] tcp|http [options]".into());
    };
    let proto = match *flag {
        "-t" | "--tcp-service" => IpProtocol::TCP,
        "-u" | "--udp-service" => IpProtocol::UDP,
        other => return Err(format!("check: `{other}`: want -t or -u")),
    };
    if !matches!(*r, "-r" | "--real-server") {
        return Err(format!("check: `{r}`: want -r"));
    }
    let (addr, port) = endpoint(service)?;
    let key = ServiceKey::new(proto, addr, port);
    let (addr, port) = endpoint(real).or_else(|_| {
        real.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(|a| (a, 0))
            .map_err(|_| format!("bad real server `{real}`"))
    })?;
    let spec = crate::run::health::CheckSpec::parse(kind, options)?;
    Ok(Rule::Check { key, addr, port, spec })
}

fn parse_line(words: &[&str]) -> Result<Rule, String> {
    let mut command = None;
    let mut key = None;
    let mut scheduler = "wlc".to_owned();
    let mut flags = SchedFlags::empty();
    let mut one_packet = false;
    let mut persistence: Option<u32> = None;
    let mut netmask: Option<&str> = None;
    let mut ipv6 = false;
    let mut mark = None;
    let mut real = None;
    let mut forward = Forward::DirectRoute;
    let (mut weight, mut upper, mut lower) = (1u32, 0u32, 0u32);
    let mut it = words.iter().copied().peekable();
    let number = |v: Option<&str>, what: &str| -> Result<u32, String> {
        let v = v.ok_or_else(|| format!("{what} needs a value"))?;
        v.parse().map_err(|_| format!("bad {what} `{v}`"))
    };
    while let Some(word) = it.next() {
        match word {
            "-A" | "--add-service" => command = Some('A'),
            "-a" | "--add-server" => command = Some('a'),
            "-t" | "--tcp-service" | "-u" | "--udp-service" => {
                let proto =
                    if word.starts_with("-t") || word == "--tcp-service" { IpProtocol::TCP } else { IpProtocol::UDP };
                let (addr, port) = endpoint(it.next().ok_or("service address missing")?)?;
                key = Some(ServiceKey::new(proto, addr, port));
            }
            "-f" | "--fwmark-service" => {
                let v = it.next().ok_or("firewall mark missing")?;
                let m = if let Some(hex) = v.strip_prefix("0x") {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    v.parse().ok()
                };
                mark = Some(m.filter(|m| *m != 0).ok_or_else(|| format!("bad firewall mark `{v}`"))?);
            }
            "-6" | "--ipv6" => ipv6 = true,
            "-o" | "--ops" => one_packet = true,
            "-s" | "--scheduler" => scheduler = it.next().ok_or("scheduler name missing")?.to_owned(),
            "-p" | "--persistent" => {
                // popt's optional value: taken only when the next word is not an option.
                let timeout = match it.peek() {
                    Some(v) if !v.starts_with('-') => {
                        let v = it.next().unwrap_or_default();
                        v.parse().map_err(|_| format!("bad persistence timeout `{v}`"))?
                    }
                    _ => DEFAULT_PERSISTENCE_S,
                };
                persistence = Some(timeout);
            }
            "-M" | "--netmask" => {
                let v = it.next().ok_or("netmask missing")?;
                netmask = Some(v);
            }
            "-b" | "--sched-flags" => {
                for f in it.next().ok_or("scheduler flags missing")?.split(',') {
                    flags |= SchedFlags::from_ipvsadm_name(f).ok_or_else(|| format!("unknown scheduler flag `{f}`"))?;
                }
            }
            "-r" | "--real-server" => real = Some(it.next().ok_or("real server address missing")?),
            "-m" | "--masquerading" => forward = Forward::Nat,
            "-g" | "--gatewaying" => forward = Forward::DirectRoute,
            "-i" | "--ipip" => forward = Forward::Tunnel,
            "-w" | "--weight" => weight = number(it.next(), "weight")?,
            "-x" | "--u-threshold" => upper = number(it.next(), "upper threshold")?,
            "-y" | "--l-threshold" => lower = number(it.next(), "lower threshold")?,
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    let key = match (key, mark) {
        (Some(k), None) => k,
        (None, Some(m)) => ServiceKey::fwmark(m, ipv6),
        (Some(_), Some(_)) => return Err("-f cannot be combined with -t or -u".into()),
        (None, None) => return Err("no service (-t, -u or -f)".into()),
    };
    match command {
        Some('A') => {
            let persistence = match (persistence, netmask) {
                (Some(timeout_s), mask) => Some(persistence_for(timeout_s, mask, key.addr.is_ipv6())?),
                (None, Some(_)) => return Err("-M needs -p".into()),
                (None, None) => None,
            };
            Ok(Rule::Service { key, scheduler, flags, one_packet, persistence })
        }
        Some('a') => {
            let text = real.ok_or("-a needs -r ADDR[:PORT]")?;
            // A real server without a port takes the service's; DR and TUN always use it.
            let (addr, port) = endpoint(text).or_else(|_| {
                text.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .map(|a| (a, key.port))
                    .map_err(|_| format!("bad real server `{text}`"))
            })?;
            // DR and TUN servers listen on the service's port; a firewall-mark service has
            // none, so the given port stays (as the kernel keeps it).
            let port = if forward == Forward::Nat || key.is_fwmark() { port } else { key.port };
            // ipvsadm 1.31 and the kernel take any non-negative int.
            if weight > vs_sched::list::MAX_WEIGHT {
                return Err(format!("weight {weight} out of range (0..{})", vs_sched::list::MAX_WEIGHT));
            }
            Ok(Rule::Real {
                key,
                real: RealConfig { addr, port, forward, weight, upper_threshold: upper, lower_threshold: lower },
            })
        }
        _ => Err("a rule starts with -A or -a".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_format_lines() {
        let rules = parse(
            "# the classic LVS-NAT example\n-A -t 198.18.0.100:http -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.1:http -m -w 1\n\
             -A -u [2001:db8::1]:53 -s sh -b sh-port,sh-fallback -o\n-a -u [2001:db8::1]:53 -r [2001:db8:1::1]:5353 -i -w 3 -x 10 -y 5\n",
        )
        .unwrap();
        assert_eq!(rules.len(), 4);
        let rules: Vec<Rule> = rules.into_iter().map(|(_, r)| r).collect();
        let Rule::Service { key, scheduler, .. } = &rules[0] else { panic!() };
        assert_eq!((key.port, scheduler.as_str()), (80, "rr"));
        let Rule::Real { real, .. } = &rules[1] else { panic!() };
        assert_eq!((real.port, real.forward, real.weight), (80, Forward::Nat, 1));
        let Rule::Service { flags, .. } = &rules[2] else { panic!() };
        assert_eq!(*flags, SchedFlags::SCHED1 | SchedFlags::SCHED2);
        let Rule::Real { real, .. } = &rules[3] else { panic!() };
        assert_eq!(
            (real.port, real.forward, real.upper_threshold, real.lower_threshold),
            (53, Forward::Tunnel, 10, 5),
            "TUN takes the service port"
        );
    }

    #[test]
    fn persistence_as_ipvsadm_saves_it() {
        let rules = parse(
            "-A -t 198.18.0.1:80 -s rr -p\n-A -t 198.18.0.2:80 -s rr -p 60 -M 255.255.255.0\n-A -t [2001:db8::1]:80 -p -M 64 -s rr\n",
        )
        .unwrap();
        let p = |i: usize| match &rules[i].1 {
            Rule::Service { persistence, .. } => persistence.unwrap(),
            _ => panic!(),
        };
        assert_eq!((p(0).timeout_s, p(0).prefix_len), (360, 32));
        assert_eq!((p(1).timeout_s, p(1).prefix_len), (60, 24));
        assert_eq!((p(2).timeout_s, p(2).prefix_len), (360, 64));
    }

    #[test]
    fn firewall_mark_services() {
        let rules = parse("-A -f 0x10 -6 -s mh\n-a -f 16 -6 -r [2001:db8:1::1] -m -w 2\n").unwrap();
        let Rule::Service { key, .. } = &rules[0].1 else { panic!() };
        assert_eq!(*key, ServiceKey::fwmark(16, true));
        let Rule::Real { key, real } = &rules[1].1 else { panic!() };
        assert!(key.is_fwmark());
        assert_eq!((real.port, real.weight), (0, 2));
    }

    #[test]
    fn health_check_lines() {
        let rules = parse(
            "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.1:80 -m\n\
             check -t 198.18.0.100:80 -r 198.18.1.1 http path /health interval 0.5 fall 2\n",
        )
        .unwrap();
        let Rule::Check { key, addr, port, spec } = &rules[2].1 else { panic!() };
        assert_eq!((key.port, addr.to_string(), *port, spec.fall), (80, "198.18.1.1".to_owned(), 0, 2));
        assert_eq!(parse("check -t 198.18.0.100:80 -r 198.18.1.1 ping\n").unwrap_err().line, 1);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r nonsense -m\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(parse("-A -t 198.18.0.100:80 -s rr -q\n").unwrap_err().line, 1);
        assert!(parse("-A -t 198.18.0.100 -s rr\n").is_err(), "a service needs a port");
        assert!(parse("-A -t 198.18.0.100:80 -M 255.255.255.0\n").unwrap_err().message.contains("-p"));
        let Rule::Service { persistence, .. } = &parse("-A -t 198.18.0.100:80 -p -M 255.0.255.0\n").unwrap()[0].1
        else {
            panic!()
        };
        assert_eq!(persistence.unwrap().ipv4_mask, Some(0xff00_ff00), "the kernel takes any IPv4 mask");
        assert!(parse("-A -t [2001:db8::1]:80 -p -M 129\n").is_err());
    }
}
