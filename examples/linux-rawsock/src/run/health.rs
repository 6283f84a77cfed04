//! Health checks in the manner of keepalived's TCP_CHECK and HTTP_GET: each real server with a
//! check is probed every interval; `fall` failures in a row take it out (quiesced to weight 0,
//! or removed, as configured) and `rise` successes in a row bring it back. Every change is
//! reported to the director, which applies it and logs it.
//!
//! Rules-file syntax (one line per checked real server, after its `-a` line):
//! `check -t|-u VIP:PORT -r RS[:PORT] tcp|http [path /P] [status N] [interval S] [timeout S]
//! [rise N] [fall N] [on-fail quiesce|remove]`.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use vs_proto::engine::ServiceKey;

use super::config::{CheckRule, Health};

/// What is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// TCP_CHECK: a connection opens.
    Tcp,
    /// HTTP_GET: `GET path` answers with `status`.
    Http { path: String, status: u16 },
}

/// One check's settings (keepalived's names and defaults where it has them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckSpec {
    pub(crate) probe: Probe,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) rise: u32,
    pub(crate) fall: u32,
    /// What a failed server becomes: `Quiesced` (weight 0) or `Removed`.
    pub(crate) on_fail: Health,
    /// Port to probe when it differs from the real server's.
    pub(crate) connect_port: Option<u16>,
}

impl CheckSpec {
    /// Parses the words after `tcp` / `http`.
    pub(crate) fn parse(kind: &str, words: &[&str]) -> Result<CheckSpec, String> {
        let mut spec = CheckSpec {
            probe: match kind {
                "tcp" => Probe::Tcp,
                "http" => Probe::Http { path: "/".into(), status: 200 },
                other => return Err(format!("unknown check `{other}` (tcp or http)")),
            },
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
            rise: 1,
            fall: 1,
            on_fail: Health::Quiesced,
            connect_port: None,
        };
        let seconds = |v: &str| -> Result<Duration, String> {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("bad duration `{v}`"))
        };
        let count = |v: &str| -> Result<u32, String> {
            v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| format!("bad count `{v}`"))
        };
        let mut it = words.iter();
        while let Some(word) = it.next() {
            let value = it.next().ok_or_else(|| format!("`{word}` needs a value"))?;
            match *word {
                "interval" => spec.interval = seconds(value)?,
                "timeout" => spec.timeout = seconds(value)?,
                "rise" => spec.rise = count(value)?,
                "fall" => spec.fall = count(value)?,
                "connect-port" => spec.connect_port = Some(value.parse().map_err(|_| format!("bad port `{value}`"))?),
                "on-fail" => {
                    spec.on_fail = match *value {
                        "quiesce" => Health::Quiesced,
                        "remove" => Health::Removed,
                        _ => return Err(format!("on-fail `{value}`: quiesce or remove")),
                    }
                }
                "path" | "status" => match &mut spec.probe {
                    Probe::Http { path, status } => {
                        if *word == "path" {
                            *path = (*value).to_owned();
                        } else {
                            *status = value.parse().map_err(|_| format!("bad status `{value}`"))?;
                        }
                    }
                    Probe::Tcp => return Err(format!("`{word}` is for http checks")),
                },
                other => return Err(format!("unknown check option `{other}`")),
            }
        }
        Ok(spec)
    }
}

/// Probes once.
fn probe_once(addr: SocketAddr, spec: &CheckSpec) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, spec.timeout).map_err(|e| format!("connect: {e}"))?;
    let Probe::Http { path, status } = &spec.probe else { return Ok(()) };
    stream.set_read_timeout(Some(spec.timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(spec.timeout)).map_err(|e| e.to_string())?;
    let host = match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    // The request keepalived's HTTP_GET sends.
    let request = format!("GET {path} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut head = [0u8; 64];
    let mut got = 0;
    let deadline = Instant::now() + spec.timeout;
    while got < 12 && Instant::now() < deadline {
        match stream.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head[..got]);
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if c == *status => Ok(()),
        Some(c) => Err(format!("status {c}, want {status}")),
        None => Err("no HTTP status line".into()),
    }
}

/// A change reported by a checker: the server and what it now is.
pub(crate) type Event = (ServiceKey, IpAddr, u16, Health);

/// Runs one check until `stop`: probes every interval and reports transitions.
pub(crate) fn run_check(rule: CheckRule, events: Sender<Event>, stop: Arc<AtomicBool>) {
    let port = rule.spec.connect_port.unwrap_or(rule.port);
    let target = SocketAddr::new(rule.addr, port);
    let (mut ok_run, mut fail_run) = (0u32, 0u32);
    let mut up = true;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        match probe_once(target, &rule.spec) {
            Ok(()) => {
                ok_run += 1;
                fail_run = 0;
                if !up && ok_run >= rule.spec.rise {
                    up = true;
                    tracing::info!(real = %target, check = ?rule.spec.probe, "health check: real server is up again");
                    let _ = events.send((rule.service, rule.addr, rule.port, Health::Up));
                }
            }
            Err(reason) => {
                fail_run += 1;
                ok_run = 0;
                if up && fail_run >= rule.spec.fall {
                    up = false;
                    tracing::warn!(real = %target, %reason, action = ?rule.spec.on_fail, "health check: real server failed");
                    let _ = events.send((rule.service, rule.addr, rule.port, rule.spec.on_fail));
                } else if !up {
                    tracing::debug!(real = %target, %reason, "health check still failing");
                }
            }
        }
        let next = started + rule.spec.interval;
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keepalived_like_options() {
        let s = CheckSpec::parse(
            "http",
            &["path", "/health", "status", "204", "interval", "0.5", "fall", "3", "on-fail", "remove"],
        )
        .unwrap();
        assert_eq!(s.probe, Probe::Http { path: "/health".into(), status: 204 });
        assert_eq!((s.interval, s.fall, s.rise, s.on_fail), (Duration::from_millis(500), 3, 1, Health::Removed));
        assert!(CheckSpec::parse("tcp", &["path", "/"]).is_err());
        assert!(CheckSpec::parse("icmp", &[]).is_err());
        assert!(CheckSpec::parse("tcp", &["fall", "0"]).is_err());
    }

    #[test]
    fn probes_a_real_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for answer in ["HTTP/1.0 200 OK\r\n\r\n", "HTTP/1.0 503 Busy\r\n\r\n"] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).unwrap();
                assert!(
                    String::from_utf8_lossy(&buf[..n])
                        .starts_with("GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\n")
                );
                s.write_all(answer.as_bytes()).unwrap();
            }
        });
        let spec = CheckSpec::parse("http", &["path", "/health", "timeout", "2"]).unwrap();
        assert_eq!(probe_once(addr, &spec), Ok(()));
        assert_eq!(probe_once(addr, &spec), Err("status 503, want 200".into()));
        server.join().unwrap();
        let tcp = CheckSpec::parse("tcp", &["timeout", "1"]).unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(probe_once(closed, &tcp).is_err(), "nothing listens there any more");
    }
}
