//! ipvsadm's listings, byte for byte: `-L` in its views (default, `--stats`, `--rate`,
//! `--thresholds`, `--persistent-conn`, `--exact`), `-S`, `-L -c`, with names resolved unless
//! `-n`, services and servers sorted as ipvsadm sorts them unless `--nosort`.

use std::net::IpAddr;

use super::parse::{Parsed, Proto, service_port};
use crate::run::control::{ConnRow, RealReport, Report, ServiceReport};

/// How to print.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Format {
    pub(crate) numeric: bool,
    pub(crate) rule: bool,
    pub(crate) stats: bool,
    pub(crate) rate: bool,
    pub(crate) thresholds: bool,
    pub(crate) persistent_conn: bool,
    pub(crate) nosort: bool,
    pub(crate) exact: bool,
}

impl Format {
    /// The format a parsed command line asks for.
    pub(crate) fn of(p: &Parsed) -> Format {
        Format {
            numeric: p.has(0),
            rule: false,
            stats: p.has(14),
            rate: p.has(15),
            thresholds: p.has(16),
            persistent_conn: p.has(17),
            nosort: p.has(18),
            exact: p.has(20),
        }
    }
}

/// vsadm's usage.
pub(crate) fn usage(program: &str) -> String {
    format!(
        "{}Usage: {program} COMMAND [OPTIONS]   (ipvsadm's command line, for vsd)\n\
         Commands: -A|-E|-D virtual service; -a|-e|-d real server; -C clear; -R restore from stdin;\n\
         \x20 -S [-n] save; -L|-l [-n] [-c] [--stats|--rate|--thresholds|--persistent-conn] [--exact] list;\n\
         \x20 -Z zero counters; --set TCP TCPFIN UDP timeouts; -h help; -v version\n\
         Services: -t|-u ADDR:PORT, -f MARK [-6]; -s SCHED [-b FLAGS] [-p [SECS]] [-M MASK] [-o]\n\
         Servers: -r ADDR[:PORT] [-g|-i|-m] [-w WEIGHT] [-x UPPER] [-y LOWER]\n\
         vsd's control socket: --control PATH, $VSADM_CONTROL, else /run/vsd.sock\n",
        version()
    )
}

/// vsadm's version line.
pub(crate) fn version() -> String {
    format!("vsadm v{} (ipvsadm 1.31 command line, IPVS v1.2.1)\n", env!("CARGO_PKG_VERSION"))
}

/// An address as ipvsadm prints it (`[v6]` in brackets) with a port, the port by its
/// service name unless numeric.
fn addr_port(addr: IpAddr, port: u16, proto: Proto, numeric: bool) -> String {
    let name = if numeric { None } else { host_name(addr) };
    let a = match (name, addr) {
        (Some(n), _) => n,
        (None, IpAddr::V4(a)) => a.to_string(),
        (None, IpAddr::V6(a)) => format!("[{a}]"),
    };
    let p = if numeric { None } else { port_name(port, proto) };
    format!("{a}:{}", p.unwrap_or_else(|| port.to_string()))
}

/// The name /etc/hosts gives an address (ipvsadm asks the whole resolver; vsadm stays off
/// the network, where an offline director would only wait).
fn host_name(addr: IpAddr) -> Option<String> {
    let text = std::fs::read_to_string("/etc/hosts").ok()?;
    text.lines().find_map(|line| {
        let mut words = line.split('#').next()?.split_whitespace();
        let a: IpAddr = words.next()?.parse().ok()?;
        (a == addr).then(|| words.next().map(str::to_owned))?
    })
}

/// The /etc/services name of a port.
fn port_name(port: u16, proto: Proto) -> Option<String> {
    let text = std::fs::read_to_string("/etc/services").ok()?;
    let want = format!("{port}/{}", if proto == Proto::Tcp { "tcp" } else { "udp" });
    text.lines()
        .find_map(|line| {
            let line = line.split('#').next()?;
            let mut words = line.split_whitespace();
            let name = words.next()?;
            (words.next()? == want).then(|| name.to_owned())
        })
        .filter(|name| service_port(name, proto) == Some(port))
}

fn proto_of(s: &ServiceReport) -> Proto {
    if s.proto == "UDP" { Proto::Udp } else { Proto::Tcp }
}

/// ipvsadm's service name column: `TCP  addr:port`, `FWM  mark[ IPv6]`.
fn service_name(s: &ServiceReport, numeric: bool) -> String {
    match s.addr {
        Some(addr) if s.fwmark == 0 => format!("{}  {}", s.proto, addr_port(addr, s.port, proto_of(s), numeric)),
        _ => format!("FWM  {}{}", s.fwmark, if s.ipv6 { " IPv6" } else { "" }),
    }
}

/// `-S`'s service option: `-t addr:port`, `-f mark [-6]`.
fn rule_service(s: &ServiceReport, numeric: bool) -> String {
    match s.addr {
        Some(addr) if s.fwmark == 0 => {
            format!("{} {}", if s.proto == "UDP" { "-u" } else { "-t" }, addr_port(addr, s.port, proto_of(s), numeric))
        }
        _ => format!("-f {}{}", s.fwmark, if s.ipv6 { " -6" } else { "" }),
    }
}

/// A persistence mask as ipvsadm shows it (vsd reports it so).
fn mask_text(s: &ServiceReport) -> Option<String> {
    s.netmask.clone()
}

/// ipvsadm's large numbers: nine columns, K / M / G / T above 10^8 unless exact.
fn number(n: u64, exact: bool) -> String {
    if exact {
        let digits = n.to_string();
        let width = if digits.len() <= 8 { 9 } else { digits.len() + 1 };
        return format!("{n:>width$}");
    }
    match n {
        0..100_000_000 => format!("{n:>9}"),
        100_000_000..1_000_000_000 => format!("{:>8}K", n / 1000),
        1_000_000_000..100_000_000_000 => format!("{:>8}M", n / 1_000_000),
        100_000_000_000..100_000_000_000_000 => format!("{:>8}G", n / 1_000_000_000),
        _ => format!("{:>8}T", n / 1_000_000_000_000),
    }
}

fn sort_key(s: &ServiceReport) -> (u32, bool, u8, Option<IpAddr>, u16) {
    (s.fwmark, s.ipv6, if s.proto == "UDP" { 17 } else { 6 }, s.addr, s.port)
}

fn sorted(report: &Report, fmt: &Format) -> Vec<ServiceReport> {
    let mut services = report.services.clone();
    if !fmt.nosort {
        services.sort_by_key(sort_key);
        for s in &mut services {
            s.reals.sort_by_key(|r| (r.addr, r.port));
        }
    }
    services
}

fn header(report: &Report, fmt: &Format) -> String {
    let mut out = format!("IP Virtual Server version 1.2.1 (size={})\n", report.capacity);
    out.push_str(if fmt.stats {
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n"
    } else if fmt.rate {
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\n"
    } else if fmt.thresholds {
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n  -> RemoteAddress:Port\n"
    } else if fmt.persistent_conn {
        "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n  -> RemoteAddress:Port\n"
    } else {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    });
    out
}

fn service_lines(s: &ServiceReport, fmt: &Format, out: &mut String) {
    let name = service_name(s, fmt.numeric);
    if fmt.rule {
        let mut line = format!("-A {} -s {}", rule_service(s, fmt.numeric), s.scheduler);
        if let Some(p) = s.persistent {
            line.push_str(&format!(" -p {p}"));
            if let Some(m) = mask_text(s) {
                line.push_str(&format!(" -M {m}"));
            }
        }
        if !s.flags.is_empty() {
            line.push_str(&format!(" -b {}", s.flags.join(",")));
        }
        if s.ops {
            line.push_str(" -o");
        }
        out.push_str(&line);
        out.push('\n');
        for r in &s.reals {
            let method = match r.forward.as_str() {
                "Masq" => "-m",
                "Tunnel" => "-i",
                _ => "-g",
            };
            out.push_str(&format!(
                "-a {} -r {} {method} -w {}{}\n",
                rule_service(s, fmt.numeric),
                addr_port(r.addr, r.port, proto_of(s), fmt.numeric || s.fwmark != 0),
                r.weight,
                if method == "-i" { " --tun-type ipip" } else { "" }
            ));
        }
        return;
    }
    if fmt.stats || fmt.rate {
        let values = |st: &crate::run::control::Stats| -> [u64; 5] {
            if fmt.stats {
                [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes]
            } else {
                [st.cps, st.inpps, st.outpps, st.inbps, st.outbps]
            }
        };
        let cols = |v: [u64; 5]| v.iter().map(|n| number(*n, fmt.exact)).collect::<String>();
        out.push_str(&format!("{name:<33}{}\n", cols(values(&s.stats))));
        for r in &s.reals {
            let a = addr_port(r.addr, r.port, proto_of(s), fmt.numeric || s.fwmark != 0);
            out.push_str(&format!("  -> {a:<28}{}\n", cols(values(&r.stats))));
        }
        return;
    }
    let mut line = format!("{name} {}", s.scheduler);
    if !s.flags.is_empty() {
        line.push_str(&format!(" ({})", s.flags.join(",")));
    }
    if let Some(p) = s.persistent {
        line.push_str(&format!(" persistent {p}"));
        if let Some(m) = mask_text(s) {
            line.push_str(&format!(" mask {m}"));
        }
    }
    if s.ops {
        line.push_str(" ops");
    }
    out.push_str(&line);
    out.push('\n');
    for r in &s.reals {
        out.push_str(&real_line(s, r, fmt));
    }
}

fn real_line(s: &ServiceReport, r: &RealReport, fmt: &Format) -> String {
    // A firewall-mark service has no protocol to name its servers' ports by.
    let a = addr_port(r.addr, r.port, proto_of(s), fmt.numeric || s.fwmark != 0);
    if fmt.thresholds {
        format!("  -> {a:<28} {:<10} {:<10} {:<10} {:<10}\n", r.u_threshold, r.l_threshold, r.active, r.inactive)
    } else if fmt.persistent_conn {
        format!("  -> {a:<28} {:<9} {:<11} {:<10} {:<10}\n", r.weight, r.persistent, r.active, r.inactive)
    } else {
        format!("  -> {a:<28} {:<7} {:<6} {:<10} {:<10}\n", r.forward, r.weight, r.active, r.inactive)
    }
}

/// `-L` / `-S` of every service.
pub(crate) fn list_all(report: &Report, fmt: &Format) -> String {
    let mut out = if fmt.rule { String::new() } else { header(report, fmt) };
    for s in sorted(report, fmt) {
        service_lines(&s, fmt, &mut out);
    }
    out
}

/// `-L -t ...`: one service, or `None` when it does not exist.
pub(crate) fn list_one(report: &Report, p: &Parsed, fmt: &Format) -> Option<String> {
    let want_proto = if p.service.proto == Proto::Udp { "UDP" } else { "TCP" };
    let s = sorted(report, fmt).into_iter().find(|s| {
        if p.service.fwmark != 0 {
            s.fwmark == p.service.fwmark && s.ipv6 == p.service.ipv6_fwmark
        } else {
            s.fwmark == 0 && s.proto == want_proto && s.addr == p.service.addr && s.port == p.service.port
        }
    })?;
    // (ipvsadm prints no version line for one service.)
    let full = header(report, fmt);
    let mut out = full.split_once('\n').map(|(_, rest)| rest.to_owned()).unwrap_or(full);
    service_lines(&s, fmt, &mut out);
    Some(out)
}

/// `-L -c`: the connection table.
pub(crate) fn list_conns(rows: &[ConnRow], fmt: &Format) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if fmt.persistent_conn {
        out.push_str("pro expire state       source             virtual            destination        pe name          pe_data\n");
    } else {
        out.push_str("pro expire state       source             virtual            destination\n");
    }
    let name = |endpoint: &str, proto: Proto| -> String {
        if fmt.numeric {
            return endpoint.to_owned();
        }
        match endpoint.rsplit_once(':') {
            Some((addr, port)) => match port.parse().ok().and_then(|p| port_name(p, proto)) {
                Some(n) => format!("{addr}:{n}"),
                None => endpoint.to_owned(),
            },
            None => endpoint.to_owned(),
        }
    };
    for c in rows {
        let secs = c.expires_ms / 1000;
        let proto = if c.proto == "UDP" { Proto::Udp } else { Proto::Tcp };
        out.push_str(&format!(
            "{:<3} {:02}:{:02}  {:<11} {:<18} {:<18} {}\n",
            c.proto,
            secs / 60,
            secs % 60,
            c.state,
            name(&c.client, proto),
            name(&c.virt, proto),
            name(&c.real, proto)
        ));
    }
    out
}
