//! `vsadm`: ipvsadm for vsd. The same command lines (ipvsadm 1.31's, parsed as popt does), the
//! same listings byte for byte, the same messages and exit statuses, carried out by a running
//! vsd over its control socket (`--control PATH`, `$VSADM_CONTROL`, else `/run/vsd.sock`).
//!
//! The `vsd` binary is vsadm when it is invoked under that name (the `vsadm` launcher, or a
//! link named `vsadm` or `ipvsadm`).
//!
//! Deliberate differences from ipvsadm: `-R` applies a whole file or nothing (ipvsadm applies
//! lines up to the first failure) and names the failing line; `-h` and `-v` describe vsadm;
//! `(size=N)` in the listing header is vsd's connection-table capacity.

pub(crate) mod format;
pub(crate) mod parse;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::run::control::{ConnRow, Report};
use crate::run::ipvs::{IpvsCommand, ServerArg, ServiceArg};
use parse::{Command, Method, Outcome, Parsed, Proto};

/// Where vsd listens, and the arguments without vsadm's own `--control`.
fn control_path(args: &mut Vec<String>) -> PathBuf {
    let mut path = std::env::var_os("VSADM_CONTROL").map(PathBuf::from);
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--control" && i + 1 < args.len() {
            path = Some(PathBuf::from(args.remove(i + 1)));
            args.remove(i);
        } else if let Some(p) = args[i].strip_prefix("--control=") {
            path = Some(PathBuf::from(p));
            args.remove(i);
        } else {
            i += 1;
        }
    }
    path.unwrap_or_else(|| PathBuf::from("/run/vsd.sock"))
}

/// What went wrong: the message for standard error and the exit status.
type Failure = (String, u8);

fn request(control: &Path, value: &serde_json::Value) -> Result<serde_json::Value, Failure> {
    crate::run::ctl::request(control, value).map_err(|e| (e, 255))
}

fn service_arg(p: &Parsed) -> ServiceArg {
    let s = &p.service;
    ServiceArg {
        proto: if s.proto == Proto::Udp { "udp".into() } else { "tcp".into() },
        addr: s.addr,
        port: s.port,
        fwmark: s.fwmark,
        ipv6: s.ipv6_fwmark,
        scheduler: s.scheduler.clone(),
        persistent: s.persistent,
        netmask: s.netmask,
        ops: s.ops,
        flags: s.sched_flags.clone(),
    }
}

fn server_arg(p: &Parsed) -> Option<ServerArg> {
    let r = &p.server;
    Some(ServerArg {
        addr: r.addr?,
        port: r.port,
        method: match r.method {
            Method::Masq => "masq",
            Method::Route => "route",
            Method::Tunnel => "tunnel",
        }
        .into(),
        weight: r.weight,
        u_threshold: r.u_threshold,
        l_threshold: r.l_threshold,
    })
}

/// The IPVS command a parsed line stands for (None: a listing or another local action).
fn ipvs_command(p: &Parsed) -> Option<IpvsCommand> {
    let service = service_arg(p);
    Some(match p.command {
        Command::AddService => IpvsCommand::AddService { service },
        Command::EditService => IpvsCommand::EditService { service },
        Command::DeleteService => IpvsCommand::DeleteService { service },
        Command::Flush => IpvsCommand::Flush {},
        Command::AddServer => IpvsCommand::AddServer { service, server: server_arg(p)? },
        Command::EditServer => IpvsCommand::EditServer { service, server: server_arg(p)? },
        Command::DeleteServer => IpvsCommand::DeleteServer { service, server: server_arg(p)? },
        Command::Zero => IpvsCommand::Zero { service: p.has(2).then_some(service) },
        Command::SetTimeouts => {
            let [tcp, tcpfin, udp] = p.timeouts?;
            IpvsCommand::SetTimeouts { tcp, tcpfin, udp }
        }
        _ => return None,
    })
}

fn send(control: &Path, commands: &[IpvsCommand]) -> Result<(), Failure> {
    let value = serde_json::json!({"op": "ipvs", "commands": commands});
    request(control, &value).map(|_| ())
}

fn report(control: &Path) -> Result<(Report, [u32; 3]), Failure> {
    let list = request(control, &serde_json::json!({"op": "list"}))?;
    let report: Report = serde_json::from_value(list["report"].clone()).map_err(|e| (e.to_string(), 255))?;
    let status = request(control, &serde_json::json!({"op": "status"}))?;
    let t: Vec<u32> = serde_json::from_value(status["timeouts"].clone()).unwrap_or_default();
    let timeouts =
        [t.first().copied().unwrap_or(900), t.get(1).copied().unwrap_or(120), t.get(2).copied().unwrap_or(300)];
    Ok((report, timeouts))
}

/// Splits a restore line as ipvsadm's config reader does: whitespace-separated words, a
/// leading program name dropped.
fn restore_words(line: &str) -> Vec<String> {
    let mut words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    if words.first().is_some_and(|w| w == "ipvsadm" || w == "vsadm") {
        words.remove(0);
    }
    words
}

fn restore(program: &str, control: &Path) -> Result<(), Failure> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|e| (e.to_string(), 255))?;
    let mut commands = Vec::new();
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let words = restore_words(line);
        if words.is_empty() {
            continue;
        }
        let parsed =
            parse::parse(program, &words).map_err(|r| (format!("line {}: {}", n + 1, r.message), status(r.status)))?;
        match parsed {
            Outcome::Run(p) => match ipvs_command(&p) {
                Some(c) => {
                    commands.push(c);
                    lines.push(n + 1);
                }
                None => return Err((format!("line {}: not a configuration command", n + 1), 2)),
            },
            _ => return Err((format!("line {}: not a configuration command", n + 1), 2)),
        }
    }
    let value = serde_json::json!({"op": "ipvs", "commands": commands});
    match crate::run::ctl::request_raw(control, &value) {
        Ok(answer) if answer["ok"] == true => Ok(()),
        Ok(answer) => {
            let index = answer["index"].as_u64().and_then(|i| usize::try_from(i).ok()).unwrap_or(0);
            let line = lines.get(index).copied().unwrap_or(0);
            Err((format!("line {line}: {}", answer["error"].as_str().unwrap_or("failed")), 255))
        }
        Err(e) => Err((e, 255)),
    }
}

fn status(code: i32) -> u8 {
    u8::try_from(code & 0xff).unwrap_or(255)
}

fn execute(program: &str, args: Vec<String>) -> Result<String, Failure> {
    let mut args = args;
    let control = control_path(&mut args);
    if args.is_empty() {
        let (r, _) = report(&control)?;
        return Ok(format::list_all(&r, &format::Format::default()));
    }
    let parsed = match parse::parse(program, &args) {
        Ok(o) => o,
        Err(r) => return Err((r.message, status(r.status))),
    };
    let p = match parsed {
        Outcome::Help => return Ok(format::usage(program)),
        Outcome::Version => return Ok(format::version()),
        Outcome::Run(p) => p,
    };
    let fmt = format::Format::of(&p);
    match p.command {
        Command::List => {
            let (r, timeouts) = report(&control)?;
            if p.has(1) {
                let conns = request(&control, &serde_json::json!({"op": "conns"}))?;
                let rows: Vec<ConnRow> = serde_json::from_value(conns["conns"].clone()).unwrap_or_default();
                Ok(format::list_conns(&rows, &fmt))
            } else if p.has(2) {
                format::list_one(&r, &p, &fmt).ok_or_else(|| ("No such service".to_owned(), 1))
            } else if p.has(12) {
                Ok(format!("Timeout (tcp tcpfin udp): {} {} {}\n", timeouts[0], timeouts[1], timeouts[2]))
            } else if p.has(13) {
                Ok(String::new())
            } else {
                Ok(format::list_all(&r, &fmt))
            }
        }
        Command::Save => {
            let (r, _) = report(&control)?;
            Ok(format::list_all(&r, &format::Format { rule: true, ..fmt }))
        }
        Command::Restore => restore(program, &control).map(|()| String::new()),
        Command::StartDaemon | Command::StopDaemon => {
            Err(("vsd has no connection synchronisation daemon".to_owned(), 255))
        }
        _ => match ipvs_command(&p) {
            Some(c) => send(&control, &[c]).map(|()| String::new()),
            None => Err(("unsupported command".to_owned(), 255)),
        },
    }
}

/// Runs vsadm as `program` with `args` (without the program name).
pub(crate) fn main(program: &str, args: Vec<String>) -> ExitCode {
    match execute(program, args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err((message, code)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}
