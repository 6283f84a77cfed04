//! The scenario language of `simulate` and its interpreter (shared with the tests).
//!
//! ```text
//! sched NAME [flags FLAG,FLAG]                 # once, first
//! dest NAME ADDR:PORT weight W [u U] [l L]     # add a destination (head of the list)
//! edit NAME weight W [u U] [l L]               # as ipvsadm -e: a threshold left out becomes 0
//! del NAME                                     # remove it
//! pick [proto tcp|udp] [src ADDR[:PORT]] [dst ADDR[:PORT]]   # schedule; counters unchanged
//! conn NAME active|inactive +N|-N              # bind (+) or unbind (-) N connections
//! tick SECONDS                                 # advance time (lblc / lblcr expiry)
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use vs_sched::{
    Builtin, ConnKind, DestConfig, DestId, DestList, MAX_DESTS, PacketInfo, SchedFlags, SchedParams, Scheduler,
};

/// A scenario error: the 1-based line number and what was wrong.
#[derive(Debug)]
pub(crate) struct ScenarioError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

struct State {
    sched: Builtin,
    dests: DestList<MAX_DESTS>,
    names: BTreeMap<String, (IpAddr, u16, DestId)>,
    now_ms: u64,
}

/// Runs a scenario and returns one line per `pick`: the chosen destination's name or `none`.
pub(crate) fn run(text: &str, seed: u64) -> Result<Vec<String>, ScenarioError> {
    let mut state: Option<State> = None;
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fail = |message: String| ScenarioError { line: n + 1, message };
        let words: Vec<&str> = line.split_whitespace().collect();
        let (cmd, args) = words.split_first().ok_or_else(|| fail("empty".into()))?;
        if *cmd == "sched" {
            if state.is_some() {
                return Err(fail("sched given twice".into()));
            }
            state = Some(sched_line(args, seed).map_err(fail)?);
            continue;
        }
        let st = state.as_mut().ok_or_else(|| fail("the first line must be `sched NAME`".into()))?;
        match *cmd {
            "dest" => dest_line(st, args).map_err(fail)?,
            "edit" => edit_line(st, args).map_err(fail)?,
            "del" => del_line(st, args).map_err(fail)?,
            "pick" => out.push(pick_line(st, args).map_err(fail)?),
            "conn" => conn_line(st, args).map_err(fail)?,
            "tick" => {
                let [secs] = args else {
                    return Err(fail("usage: tick SECONDS".into()));
                };
                let secs: u64 = secs.parse().map_err(|_| fail(format!("bad seconds `{secs}`")))?;
                st.now_ms += secs * 1000;
                st.sched.tick(st.dests.as_slice(), st.now_ms);
            }
            other => return Err(fail(format!("unknown command `{other}`"))),
        }
    }
    Ok(out)
}

fn sched_line(args: &[&str], seed: u64) -> Result<State, String> {
    let (name, rest) = args.split_first().ok_or("usage: sched NAME [flags FLAG,FLAG]")?;
    let mut params = SchedParams { seed, ..SchedParams::default() };
    match rest {
        [] => {}
        ["flags", list] => {
            for flag in list.split(',') {
                params.flags |= SchedFlags::from_ipvsadm_name(flag).ok_or(format!("unknown flag `{flag}`"))?;
            }
        }
        _ => return Err("usage: sched NAME [flags FLAG,FLAG]".into()),
    }
    let mut sched = Builtin::by_name(name, &params).map_err(|e| format!("scheduler `{name}`: {e:?}"))?;
    let dests = DestList::new();
    sched.init_service(dests.as_slice()).map_err(|e| format!("{e:?}"))?;
    Ok(State { sched, dests, names: BTreeMap::new(), now_ms: 0 })
}

/// `weight W [u U] [l L]`
fn config(args: &[&str]) -> Result<DestConfig, String> {
    let mut config = DestConfig::default();
    let mut weight = None;
    let mut it = args.iter();
    while let Some(key) = it.next() {
        let value: u32 = it
            .next()
            .ok_or(format!("`{key}` needs a value"))?
            .parse()
            .map_err(|_| format!("bad number after `{key}`"))?;
        match *key {
            "weight" => weight = Some(value),
            "u" => config.upper_threshold = value,
            "l" => config.lower_threshold = value,
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    config.weight = weight.ok_or("`weight W` is required")?;
    Ok(config)
}

fn dest_line(st: &mut State, args: &[&str]) -> Result<(), String> {
    let [name, addr, rest @ ..] = args else {
        return Err("usage: dest NAME ADDR:PORT weight W [u U] [l L]".into());
    };
    let sock: SocketAddr = addr.parse().map_err(|_| format!("bad address `{addr}`"))?;
    if st.names.contains_key(*name) {
        return Err(format!("destination `{name}` exists"));
    }
    let id = st.dests.add(&mut st.sched, sock.ip(), sock.port(), config(rest)?).map_err(|e| format!("{e:?}"))?;
    st.names.insert((*name).to_owned(), (sock.ip(), sock.port(), id));
    Ok(())
}

fn named<'a>(st: &'a State, name: &str) -> Result<&'a (IpAddr, u16, DestId), String> {
    st.names.get(name).ok_or(format!("no destination `{name}`"))
}

fn edit_line(st: &mut State, args: &[&str]) -> Result<(), String> {
    let [name, rest @ ..] = args else {
        return Err("usage: edit NAME weight W [u U] [l L]".into());
    };
    let (addr, port, _) = *named(st, name)?;
    st.dests.edit(&mut st.sched, addr, port, config(rest)?).map_err(|e| format!("{e:?}"))
}

fn del_line(st: &mut State, args: &[&str]) -> Result<(), String> {
    let [name] = args else {
        return Err("usage: del NAME".into());
    };
    let (addr, port, _) = *named(st, name)?;
    st.dests.remove(&mut st.sched, addr, port).map_err(|e| format!("{e:?}"))?;
    st.names.remove(*name);
    Ok(())
}

/// `ADDR[:PORT]`, IPv6 with a port in brackets.
fn endpoint(text: &str) -> Result<(IpAddr, u16), String> {
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Ok((sock.ip(), sock.port()));
    }
    text.parse::<IpAddr>().map(|a| (a, 0)).map_err(|_| format!("bad address `{text}`"))
}

fn pick_line(st: &mut State, args: &[&str]) -> Result<String, String> {
    let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let mut packet = PacketInfo { proto: 6, src: unspecified, dst: unspecified, sport: 0, dport: 0, inverse: false };
    let mut it = args.iter();
    while let Some(key) = it.next() {
        let value = it.next().ok_or(format!("`{key}` needs a value"))?;
        match *key {
            "proto" => {
                packet.proto = match *value {
                    "tcp" => 6,
                    "udp" => 17,
                    other => return Err(format!("unknown protocol `{other}`")),
                }
            }
            "src" => (packet.src, packet.sport) = endpoint(value)?,
            "dst" => (packet.dst, packet.dport) = endpoint(value)?,
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    let Some(id) = st.dests.schedule(&mut st.sched, &packet, st.now_ms) else {
        return Ok("none".into());
    };
    Ok(st.names.iter().find(|(_, v)| v.2 == id).map(|(k, _)| k.clone()).unwrap_or_else(|| "none".into()))
}

fn conn_line(st: &mut State, args: &[&str]) -> Result<(), String> {
    let [name, kind, count] = args else {
        return Err("usage: conn NAME active|inactive +N|-N".into());
    };
    let (_, _, id) = *named(st, name)?;
    let kind = match *kind {
        "active" => ConnKind::Active,
        "inactive" => ConnKind::Inactive,
        other => return Err(format!("unknown connection kind `{other}`")),
    };
    let (bind, n) = match (count.strip_prefix('+'), count.strip_prefix('-')) {
        (Some(n), _) => (true, n),
        (_, Some(n)) => (false, n),
        _ => return Err(format!("count `{count}` must start with + or -")),
    };
    let n: u32 = n.parse().map_err(|_| format!("bad count `{count}`"))?;
    for _ in 0..n {
        if bind {
            st.dests.bind(id, kind)
        } else {
            st.dests.unbind(id, kind)
        };
    }
    Ok(())
}
