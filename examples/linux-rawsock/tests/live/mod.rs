//! The harness of the live tests: network namespaces built by `scripts/topo.sh`, a running
//! `vsd run`, real HTTP and UDP servers, real clients (curl, Python sockets), the kernel's own
//! counters. Live tests need root, iproute2, nftables, iptables, curl and python3; without them
//! they print SKIP and pass (CI runs as root with all of them installed).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One live test at a time: the machine has two cores and the checks are timed.
static SERIAL: Mutex<()> = Mutex::new(());

/// Why live tests cannot run here, if they cannot.
pub(crate) fn unavailable() -> Option<String> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Some("not root".into());
    }
    for tool in ["ip", "nft", "iptables", "curl", "python3", "nstat", "ethtool"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
        if !found.is_ok_and(|o| o.status.success()) {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// Returns `None` (and prints SKIP) when live tests cannot run.
#[macro_export]
macro_rules! live_or_skip {
    ($name:expr) => {
        if let Some(why) = live::unavailable() {
            eprintln!("SKIP: live test {}: {why}", $name);
            return;
        }
    };
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A real server in a listing: ("addr:port", weight, conns, active, inactive).
pub(crate) type RealRow = (String, u64, u64, u64, u64);

/// A topology with its namespaces, work directory and (once started) vsd.
pub(crate) struct Topo {
    pub(crate) prefix: String,
    pub(crate) work: PathBuf,
    vsd: Option<Child>,
    helpers: Vec<Child>,
    _serial: MutexGuard<'static, ()>,
}

impl Topo {
    /// Builds `mode` (`nat` or `flat`) with HTTP servers on the real servers.
    pub(crate) fn up(mode: &str, prefix: &str) -> Topo {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let work = std::env::temp_dir().join(format!("vsd-live-{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        let topo = Topo { prefix: prefix.to_owned(), work, vsd: None, helpers: vec![], _serial: serial };
        topo.script(&format!("topo_up {mode} && topo_http {}", topo.work.display()));
        topo
    }

    /// Only the director's namespace, with loopback up (the test adds its interfaces).
    pub(crate) fn bare(prefix: &str) -> Topo {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let work = std::env::temp_dir().join(format!("vsd-live-{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        let topo = Topo { prefix: prefix.to_owned(), work, vsd: None, helpers: vec![], _serial: serial };
        topo.script("topo_down; ip netns add ${TOPO}dir; topo_ns dir ip link set lo up");
        topo
    }

    /// Runs bash with topo.sh sourced.
    pub(crate) fn script(&self, body: &str) -> Output {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("set -e; TOPO={}; source {}/scripts/topo.sh; {body}", self.prefix, repo().display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{body}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    fn ns_command(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("{}{ns}", self.prefix)]).args(args);
        c
    }

    /// Runs a command in a namespace and returns its output.
    pub(crate) fn ns(&self, ns: &str, args: &[&str]) -> Output {
        self.ns_command(ns, args).output().unwrap()
    }

    /// Runs a command in a namespace and returns its standard output, failing the test on error.
    pub(crate) fn ns_ok(&self, ns: &str, args: &[&str]) -> String {
        let out = self.ns(ns, args);
        assert!(out.status.success(), "{ns}: {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a background helper in a namespace.
    pub(crate) fn spawn(&mut self, ns: &str, args: &[&str]) {
        let child = self.ns_command(ns, args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        self.helpers.push(child);
    }

    pub(crate) fn control(&self) -> PathBuf {
        self.work.join("vsd.sock")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.work.join("vsd.log")).unwrap_or_default()
    }

    /// Writes the rules and starts `vsd run` in the director namespace with `args`.
    pub(crate) fn start_vsd(&mut self, rules: &str, args: &[&str]) {
        let rules_path = self.work.join("rules");
        std::fs::write(&rules_path, rules).unwrap();
        let log = std::fs::File::create(self.work.join("vsd.log")).unwrap();
        let mut full =
            vec![env!("CARGO_BIN_EXE_vsd"), "--log-format", "json", "run", "--rules", rules_path.to_str().unwrap()];
        let control = self.control();
        full.extend(["--control", control.to_str().unwrap()]);
        full.extend(args);
        let child = self.ns_command("dir", &full).env("VSD_LOG", "info").stderr(log).spawn().unwrap();
        self.vsd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.control().exists() {
                return;
            }
            if let Some(Ok(Some(status))) = self.vsd.as_mut().map(Child::try_wait) {
                panic!("vsd exited with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("vsd did not start: {}", self.log());
    }

    /// vsd's resident memory in KiB (`VmRSS`), while it runs.
    pub(crate) fn vsd_rss_kib(&self) -> Option<u64> {
        let pid = self.vsd.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()
    }

    /// Sends SIGHUP or SIGTERM to vsd.
    pub(crate) fn signal(&self, signal: i32) {
        if let Some(child) = &self.vsd {
            // SAFETY: sends a signal to our own child.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// Waits for vsd to exit and returns its status code.
    pub(crate) fn wait_vsd(&mut self) -> Option<i32> {
        let mut child = self.vsd.take()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        None
    }

    /// One control-socket request; panics unless it succeeds.
    pub(crate) fn ctl(&self, request: serde_json::Value) -> serde_json::Value {
        self.try_ctl(request).unwrap_or_else(|e| panic!("control socket: {e}\n{}", self.log()))
    }

    /// One control-socket request.
    pub(crate) fn try_ctl(&self, request: serde_json::Value) -> Result<serde_json::Value, String> {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::os::unix::net::UnixStream::connect(self.control()).map_err(|e| e.to_string())?;
        writeln!(s, "{request}").map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        if v["ok"] == true { Ok(v) } else { Err(v["error"].as_str().unwrap_or("?").to_owned()) }
    }

    /// Replaces the configuration through the control socket.
    pub(crate) fn set_rules(&self, rules: &str) -> Result<(), String> {
        self.try_ctl(serde_json::json!({"op": "set-config", "rules": rules})).map(|_| ())
    }

    /// The listing: service name -> its real servers in list order.
    pub(crate) fn listing(&self) -> BTreeMap<String, Vec<RealRow>> {
        let v = self.ctl(serde_json::json!({"op": "list"}));
        let mut out = BTreeMap::new();
        for s in v["report"]["services"].as_array().unwrap() {
            let reals = s["reals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let addr: std::net::IpAddr = r["addr"].as_str().unwrap().parse().unwrap();
                    (
                        std::net::SocketAddr::new(addr, r["port"].as_u64().unwrap() as u16).to_string(),
                        r["weight"].as_u64().unwrap(),
                        r["stats"]["conns"].as_u64().unwrap(),
                        r["active"].as_u64().unwrap(),
                        r["inactive"].as_u64().unwrap(),
                    )
                })
                .collect();
            out.insert(s["name"].as_str().unwrap().to_owned(), reals);
        }
        out
    }

    /// `count` HTTP GETs of `url` from the client (from `source` when given): the answers.
    pub(crate) fn http(&self, url: &str, count: usize, source: Option<&str>) -> Vec<String> {
        (0..count)
            .map(|_| {
                let mut args = vec!["curl", "-sS", "-m", "5", "--retry", "0"];
                if let Some(s) = source {
                    args.extend(["--interface", s]);
                }
                args.push(url);
                let out = self.ns("client", &args);
                assert!(
                    out.status.success(),
                    "curl {url}: {}\nvsd log:\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    self.log()
                );
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            })
            .collect()
    }

    /// Starts a UDP echo service on every real server (port 7 by default), answering with the
    /// server's name and the datagram.
    pub(crate) fn udp_echo(&mut self, port: u16) {
        self.udp_echo_on("::", port);
    }

    /// As `udp_echo`, bound to `addr` (the VIP for DR and TUN, so that answers come from it).
    pub(crate) fn udp_echo_on(&mut self, addr: &str, port: u16) {
        let script = self.work.join("udp_echo.py");
        std::fs::write(
            &script,
            "import socket, sys\n\
             v6 = ':' in sys.argv[3]\n\
             s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)\n\
             if v6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
             s.bind((sys.argv[3], int(sys.argv[2])))\n\
             while True:\n    data, peer = s.recvfrom(2048)\n    s.sendto(sys.argv[1].encode() + b' ' + data, peer)\n",
        )
        .unwrap();
        for i in 1..=3 {
            let name = format!("rs{i}");
            self.spawn(&name, &["python3", script.to_str().unwrap(), &name, &port.to_string(), addr]);
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    /// `count` UDP datagrams to `addr:port` from the client, each from its own socket (its own
    /// source port): the answers, in order ("" for a datagram that got none).
    pub(crate) fn udp(&self, addr: &str, port: u16, count: usize) -> Vec<String> {
        let script = self.work.join("udp_client.py");
        std::fs::write(
            &script,
            "import socket, sys\n\
             addr, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n\
             family = socket.AF_INET6 if ':' in addr else socket.AF_INET\n\
             for i in range(count):\n\
             \x20   s = socket.socket(family, socket.SOCK_DGRAM)\n\
             \x20   s.settimeout(2)\n\
             \x20   answer = ''\n\
             \x20   for attempt in range(3):\n\
             \x20       s.sendto(b'ping %d' % i, (addr, port))\n\
             \x20       try:\n\
             \x20           answer = s.recv(2048).decode(); break\n\
             \x20       except socket.timeout:\n\
             \x20           pass\n\
             \x20   print(answer, flush=True)\n",
        )
        .unwrap();
        let out =
            self.ns_ok("client", &["python3", script.to_str().unwrap(), addr, &port.to_string(), &count.to_string()]);
        out.lines().map(str::to_owned).collect()
    }

    /// A kernel counter of a namespace (`nstat -az NAME`).
    pub(crate) fn nstat(&self, ns: &str, name: &str) -> u64 {
        let out = self.ns_ok(ns, &["nstat", "-az", name]);
        out.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Kills the HTTP server of a real server; `restart_http` starts it again.
    pub(crate) fn stop_http(&self, rs: &str) {
        // Only that namespace's server: pkill would see every namespace's processes.
        self.script(&format!(
            "for p in $(ip netns pids {prefix}{rs}); do \
             if tr '\\0' ' ' </proc/$p/cmdline | grep -q 'http.server 80'; then kill $p; fi; done",
            prefix = self.prefix
        ));
    }

    pub(crate) fn restart_http(&self, rs: &str) {
        self.script(&format!(
            "topo_ns {rs} python3 -m http.server 80 --bind :: --directory {}/{rs} >/dev/null 2>&1 & \
             for _ in $(seq 50); do topo_ns {rs} bash -c 'exec 3<>/dev/tcp/127.0.0.1/80' 2>/dev/null && break; sleep 0.1; done",
            self.work.display()
        ));
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        if let Some(mut child) = self.vsd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for mut h in self.helpers.drain(..) {
            let _ = h.kill();
            let _ = h.wait();
        }
        let _ = Command::new("bash")
            .arg("-c")
            .arg(format!("TOPO={}; source {}/scripts/topo.sh; topo_down", self.prefix, repo().display()))
            .output();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// Opens a connection to the VIP that stays idle until `go` exists, then sends a request and
/// writes the answer's body to `out`.
pub(crate) fn held_connection(topo: &mut Topo, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let go = topo.work.join(format!("{name}.go"));
    let out = topo.work.join(format!("{name}.out"));
    let ready = topo.work.join(format!("{name}.ready"));
    let script = format!(
        "import socket, os, time\n\
         s = socket.create_connection(('198.18.0.100', 80), timeout=30)\n\
         open('{ready}', 'w').close()\n\
         while not os.path.exists('{go}'):\n    time.sleep(0.05)\n\
         s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n\
         data = b''\n\
         while True:\n    chunk = s.recv(4096)\n    if not chunk: break\n    data += chunk\n\
         open('{out}', 'w').write(data.split(b'\\r\\n\\r\\n', 1)[-1].decode().strip())\n",
        ready = ready.display(),
        go = go.display(),
        out = out.display()
    );
    topo.spawn("client", &["python3", "-c", &script]);
    for _ in 0..100 {
        if ready.exists() {
            return (go, out);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("held connection {name} did not open:\n{}", topo.log());
}

pub(crate) fn release(go: &std::path::Path, out: &std::path::Path) -> String {
    std::fs::write(go, "").unwrap();
    for _ in 0..100 {
        if let Ok(body) = std::fs::read_to_string(out)
            && !body.is_empty()
        {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    "(no answer)".to_owned()
}

/// Counts answers by value.
pub(crate) fn tally(answers: &[String]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for a in answers {
        *t.entry(a.split_whitespace().next().unwrap_or("").to_owned()).or_default() += 1;
    }
    t
}
