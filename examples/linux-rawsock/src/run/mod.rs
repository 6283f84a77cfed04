//! `vsd run`: the live director. AF_PACKET rings on one interface (one-armed) or two (the
//! first faces the clients, the second the real servers), packet threads each owning an
//! engine, the kernel's routes and neighbours over rtnetlink, health checks, a control socket,
//! Prometheus metrics, SIGHUP reloads and a clean SIGTERM.

pub(crate) mod bpf;
pub(crate) mod config;
pub(crate) mod control;
pub(crate) mod ctl;
pub(crate) mod health;
pub(crate) mod host;
pub(crate) mod ipvs;
pub(crate) mod memory;
pub(crate) mod metrics;
pub(crate) mod neigh;
pub(crate) mod offload;
pub(crate) mod responder;
pub(crate) mod ring;
pub(crate) mod worker;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vs_proto::engine::ServiceKey;

use config::{Config, Health, Steering};
use control::{ConnRow, Report};
use worker::{Command, Port};

/// `vsd run`'s options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunOptions {
    /// Interface to serve on; give it twice for a two-armed director (clients on the first,
    /// real servers on the second).
    #[arg(long = "iface", required = true)]
    pub(crate) ifaces: Vec<String>,
    /// Rules in ipvsadm-save format, plus `check` lines (reloaded on SIGHUP).
    #[arg(long)]
    pub(crate) rules: Option<PathBuf>,
    /// Control socket path.
    #[arg(long, default_value = "/run/vsd.sock")]
    pub(crate) control: PathBuf,
    /// Group allowed to use the control socket (default: root only).
    #[arg(long = "control-group")]
    pub(crate) control_group: Option<String>,
    /// Outer source address of IP tunnels (once per family).
    #[arg(long = "tun-src")]
    pub(crate) tun_src: Vec<IpAddr>,
    /// Connection table capacity of each packet thread.
    #[arg(long = "conn-capacity", default_value_t = 1 << 20)]
    pub(crate) conn_capacity: usize,
    /// Packet threads (`auto`: one per core). Each owns a share of the connections (PACKET_FANOUT
    /// by client), with its own scheduler state, as DPVS's per-core schedulers.
    #[arg(long, default_value = "1")]
    pub(crate) threads: String,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long)]
    pub(crate) metrics: Option<SocketAddr>,
    /// Seed of the connection hash (default: from the OS).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Flood defence as IPVS's sysctls of the same names: 0 never, 1 automatic (on while the
    /// table is above `--amemthresh`), 3 always. `drop_entry` drops random entries that are
    /// not established.
    #[arg(long = "drop-entry", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub(crate) drop_entry: u8,
    /// `drop_packet`: drops new-connection packets (one in `--am-droprate` with mode 3).
    #[arg(long = "drop-packet", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub(crate) drop_packet: u8,
    /// `secure_tcp`: the stricter TCP state table with shorter timeouts.
    #[arg(long = "secure-tcp", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub(crate) secure_tcp: u8,
    /// `am_droprate`.
    #[arg(long = "am-droprate", default_value_t = 10)]
    pub(crate) am_droprate: u32,
    /// Connections per packet thread above which the table counts as under pressure (the
    /// kernel's low-memory threshold; default 3/4 of `--conn-capacity`).
    #[arg(long)]
    pub(crate) amemthresh: Option<usize>,
}

impl RunOptions {
    /// The engine's defence settings from the options.
    pub(crate) fn defence(&self) -> vs_proto::engine::Defence {
        vs_proto::engine::Defence {
            threshold: self.amemthresh.unwrap_or(0),
            drop_entry: self.drop_entry,
            drop_packet: self.drop_packet,
            secure_tcp: self.secure_tcp,
            am_droprate: self.am_droprate,
            ..vs_proto::engine::Defence::default()
        }
    }
}

/// The control plane's view of the running director.
pub(crate) struct Director {
    ports: Arc<Vec<Port>>,
    workers: Vec<Sender<Command>>,
    /// The rules as configured (before health verdicts).
    config: Config,
    /// Health verdicts that differ from "up".
    health: HashMap<(ServiceKey, IpAddr, u16), Health>,
    /// What the workers hold now.
    effective: Arc<Config>,
    neigh_view: Arc<neigh::Shared>,
    requests: neigh::Requests,
    tun: (bool, bool),
    started: Instant,
    checks: Vec<(config::CheckRule, Arc<AtomicBool>)>,
    health_events: Sender<health::Event>,
    announcer: Option<ring::TxSocket>,
    /// What the ingress rules cover now.
    steering: Steering,
    /// The timeouts last set (`ipvsadm --set`): TCP, TCP FIN, UDP seconds.
    timeouts: [u32; 3],
}

impl Director {
    fn ask<T>(&self, make: impl Fn(Sender<T>) -> Command) -> Result<Vec<T>, String> {
        let mut answers = Vec::new();
        for w in &self.workers {
            let (tx, rx) = mpsc::channel();
            w.send(make(tx)).map_err(|_| "a packet thread has stopped".to_owned())?;
            answers.push(rx);
        }
        answers
            .into_iter()
            .map(|rx| rx.recv_timeout(Duration::from_secs(5)).map_err(|_| "a packet thread did not answer".to_owned()))
            .collect()
    }

    /// Makes the packet threads, the ingress rules, the health checks and the announcements
    /// follow `config` with the current health verdicts.
    fn push(&mut self) -> Result<(), String> {
        let effective = Arc::new(self.config.effective(&self.health));
        config::validate(&effective)?;
        // The kernel is kept off the new VIPs before the engines take them; what the engines
        // still drain stays covered until `refresh_ingress` finds it gone.
        let mut steering = self.steering.clone();
        steering.union(&Steering::of_config(&effective));
        self.install_ingress(steering)?;
        let results = self.ask(|tx| Command::Apply(Arc::clone(&effective), tx))?;
        results.into_iter().collect::<Result<Vec<()>, String>>()?;
        self.refresh_ingress()?;
        let new_vips: Vec<IpAddr> =
            effective.vips().into_iter().filter(|v| !self.effective.vips().contains(v)).collect();
        self.announce(&new_vips);
        for (addr, _) in effective.reals() {
            if let Some((hop, ifindex)) = self.neigh_view.snapshot().next_hop(addr) {
                let _ = self.requests.send((hop, ifindex));
            }
        }
        self.effective = effective;
        Ok(())
    }

    fn install_ingress(&mut self, steering: Steering) -> Result<(), String> {
        if steering != self.steering {
            host::install_ingress(&steering, &self.ports)?;
            self.steering = steering;
        }
        Ok(())
    }

    /// Shrinks (or grows) the ingress rules to what the engines hold.
    fn refresh_ingress(&mut self) -> Result<(), String> {
        let mut steering = Steering::default();
        for s in self.ask(Command::Steering)? {
            steering.union(&s);
        }
        self.install_ingress(steering)
    }

    /// Gratuitous ARP / unsolicited NA for VIPs that just appeared, on the client side.
    fn announce(&mut self, vips: &[IpAddr]) {
        let Some(tx) = self.announcer.as_mut() else { return };
        let mac = self.ports[0].mac;
        for vip in vips {
            let frame = match vip {
                IpAddr::V4(a) => responder::gratuitous_arp(*a, mac),
                IpAddr::V6(a) => responder::unsolicited_na(*a, mac),
            };
            tx.push(&frame);
            tracing::info!(%vip, iface = %self.ports[0].name, "announced VIP");
        }
        tx.flush();
    }

    /// Replaces the whole configuration: parsed, checked against the host and validated before
    /// anything changes; an error leaves the old configuration in force.
    pub(crate) fn set_rules(&mut self, text: &str, origin: &str) -> Result<(), String> {
        let new = Config::parse(text)?;
        host::check(&new, &self.ports, &self.neigh_view.snapshot(), self.tun)?;
        config::validate(&new.effective(&HashMap::new()))?;
        let old = std::mem::replace(&mut self.config, new);
        self.health
            .retain(|(k, a, p), _| self.config.checks.iter().any(|c| c.service == *k && c.addr == *a && c.port == *p));
        if let Err(e) = self.push() {
            self.config = old;
            let _ = self.push();
            return Err(e);
        }
        self.restart_checks();
        tracing::info!(
            origin,
            services = self.config.services.len(),
            reals = self.config.reals().len(),
            checks = self.config.checks.len(),
            "configuration applied"
        );
        Ok(())
    }

    fn restart_checks(&mut self) {
        for (_, stop) in self.checks.drain(..) {
            stop.store(true, Ordering::Relaxed);
        }
        for rule in self.config.checks.clone() {
            let stop = Arc::new(AtomicBool::new(false));
            let events = self.health_events.clone();
            let (r, s) = (rule.clone(), Arc::clone(&stop));
            std::thread::spawn(move || health::run_check(r, events, s));
            self.checks.push((rule, stop));
        }
    }

    fn health_changed(&mut self, (service, addr, port, health): health::Event) {
        if health == Health::Up {
            self.health.remove(&(service, addr, port));
        } else {
            self.health.insert((service, addr, port), health);
        }
        match self.push() {
            Ok(()) => tracing::info!(
                service = %config::service_name(&service),
                real = %addr,
                port,
                state = ?health,
                "real server changed by its health check"
            ),
            Err(e) => tracing::error!(error = %e, "applying a health change failed"),
        }
    }

    /// The rules text in force.
    pub(crate) fn rules_text(&self) -> String {
        self.config.text.clone()
    }

    /// Version, interfaces, threads, table.
    pub(crate) fn status(&self) -> serde_json::Value {
        let report = self.report().unwrap_or_default();
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": self.started.elapsed().as_secs(),
            "interfaces": self.ports.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
            "threads": self.workers.len(),
            "timeouts": self.timeouts,
            "connections": report.connections,
            "capacity": report.capacity,
            "health": self.health.iter().map(|((k, a, p), h)| {
                serde_json::json!({"service": config::service_name(k), "real": a, "port": p, "state": format!("{h:?}")})
            }).collect::<Vec<_>>(),
        })
    }

    /// The merged listing of every packet thread.
    pub(crate) fn report(&self) -> Result<Report, String> {
        let mut merged = Report::default();
        for r in self.ask(Command::Report)? {
            merged.merge(r);
        }
        Ok(merged)
    }

    /// Every connection.
    pub(crate) fn conns(&self) -> Result<Vec<ConnRow>, String> {
        Ok(self.ask(Command::Conns)?.into_iter().flatten().collect())
    }

    /// `ipvsadm -Z`.
    pub(crate) fn zero(&self) -> Result<(), String> {
        self.ask(|tx| Command::Zero(None, tx)).map(|_| ())
    }

    /// `ipvsadm --set`.
    pub(crate) fn timeouts(&mut self, t: [u32; 3]) -> Result<(), String> {
        self.ask(|tx| Command::Timeouts(t, tx))?.into_iter().collect::<Result<Vec<()>, String>>()?;
        for (slot, v) in self.timeouts.iter_mut().zip(t) {
            if v != 0 {
                *slot = v;
            }
        }
        Ok(())
    }

    /// IPVS commands (vsadm's), all or none: on a copy of the configuration first.
    pub(crate) fn ipvs(&mut self, commands: &[ipvs::IpvsCommand]) -> Result<(), (usize, String)> {
        if let Some(next) = ipvs::plan(&self.config, commands)? {
            let index = commands.len().saturating_sub(1);
            self.set_rules(&next.text, "vsadm").map_err(|e| (index, ipvs::kernel_message(&e)))?;
        }
        for c in commands {
            match c {
                ipvs::IpvsCommand::Zero { service } => {
                    let key = service.as_ref().and_then(ipvs::ServiceArg::key);
                    self.ask(|tx| Command::Zero(key, tx)).map_err(|e| (0, e))?;
                }
                ipvs::IpvsCommand::SetTimeouts { tcp, tcpfin, udp } => {
                    self.timeouts([*tcp, *tcpfin, *udp]).map_err(|e| (0, e))?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn thread_count(text: &str) -> Result<usize, String> {
    if text == "auto" {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    text.parse::<usize>()
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or_else(|| format!("--threads {text}: 1..64 or auto"))
}

/// A group's id through the system's group database (NSS: files, LDAP...).
fn group_id(name: &str) -> Result<u32, String> {
    let cname = std::ffi::CString::new(name).map_err(|_| format!("--control-group {name}: bad name"))?;
    let mut buf = vec![0u8; 16_384];
    // SAFETY: group is plain old data; getgrnam_r fills it and points into `buf`, which
    // outlives the call; `result` is set to null or to `&group`.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf.len()` bytes are writable.
    let rc = unsafe {
        libc::getgrnam_r(cname.as_ptr(), &raw mut group, buf.as_mut_ptr().cast(), buf.len(), &raw mut result)
    };
    if rc != 0 || result.is_null() {
        return Err(format!("--control-group {name}: no such group"));
    }
    Ok(group.gr_gid)
}

/// Binds the control socket under a temporary name, sets its mode (0600, or 0660 with a group)
/// and group, then renames it into place: no client ever sees it with other permissions.
fn bind_control(path: &PathBuf, group: Option<&str>) -> Result<std::os::unix::net::UnixListener, String> {
    let gid = group.map(group_id).transpose()?;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("{}: another vsd is running (its control socket answers)", path.display()));
        }
        std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut staging = path.clone().into_os_string();
    staging.push(format!(".{}", std::process::id()));
    let staging = PathBuf::from(staging);
    let _ = std::fs::remove_file(&staging);
    let listener = std::os::unix::net::UnixListener::bind(&staging)
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    let mode = if gid.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
        .and_then(|()| std::os::unix::fs::chown(&staging, None, gid))
        .and_then(|()| std::fs::rename(&staging, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&staging);
            format!("control socket {}: {e}", path.display())
        })?;
    Ok(listener)
}

/// Runs the director until SIGTERM or SIGINT.
pub(crate) fn run(options: RunOptions) -> Result<(), String> {
    let threads = thread_count(&options.threads)?;
    let ports: Vec<Port> = options.ifaces.iter().map(|i| host::port(i)).collect::<Result<_, _>>()?;
    if ports.len() > 2 {
        return Err("at most two --iface (clients, real servers)".into());
    }
    let ports = Arc::new(ports);
    let text = match &options.rules {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => String::new(),
    };
    let initial = Config::parse(&text).map_err(|e| format!("rules: {e}"))?;
    let ifindexes: Vec<u32> = ports.iter().map(|p| p.ifindex).collect();
    let neigh_shared = neigh::start(&ifindexes).map_err(|e| format!("rtnetlink: {e}"))?;
    let mut tunnel = (None, None);
    for a in &options.tun_src {
        match a {
            IpAddr::V4(v) => tunnel.0 = Some(*v),
            IpAddr::V6(v) => tunnel.1 = Some(*v),
        }
    }
    let tun = (tunnel.0.is_some(), tunnel.1.is_some());
    host::check(&initial, &ports, &neigh_shared.snapshot(), tun)?;
    config::validate(&initial)?;
    for change in host::set_sysctls(&ports)? {
        tracing::info!(setting = %change, "host setting changed");
    }
    if !initial.nat_reals().is_empty() && !host::ip_forward() {
        tracing::warn!(
            "net.ipv4.ip_forward is 0: vsd handles the virtual services, but the real servers' own traffic through \
             this host (their gateway) needs `sysctl -w net.ipv4.ip_forward=1`"
        );
    }
    host::install_ingress(&Steering::of_config(&initial), &ports)?;
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|e| format!("signal: {e}"))?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .map_err(|e| format!("signal: {e}"))?;

    let (req_tx, req_rx) = mpsc::channel();
    let resolver = {
        let (shared, stop, ports) = (Arc::clone(&neigh_shared), Arc::clone(&stop), ifindexes.clone());
        std::thread::Builder::new()
            .name("vsd-neigh".into())
            .spawn(move || neigh::run_resolver(&shared, &ports, &req_rx, &stop))
            .map_err(|e| e.to_string())?
    };
    let epoch = Instant::now();
    // The table's hash key: unknown to clients, so that they cannot aim connections at one
    // bucket. Without the OS's random source vsd refuses to start rather than use a known key.
    let seed = match options.seed {
        Some(seed) => seed,
        None => {
            let mut b = [0u8; 8];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
                .map_err(|e| format!("cannot read /dev/urandom for the connection table's hash key: {e}"))?;
            u64::from_le_bytes(b)
        }
    };
    let fanout = (threads > 1).then(|| {
        // One group per interface; ids from the process id so that two vsd never share one.
        let base = (std::process::id() as u16).wrapping_mul(2);
        (0..ports.len()).map(|i| base.wrapping_add(i as u16)).collect::<Vec<u16>>()
    });
    let initial = Arc::new(initial);
    let mut workers = Vec::new();
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    for index in 0..threads {
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let setup = worker::Setup {
            index,
            ports: Arc::clone(&ports),
            capacity: options.conn_capacity,
            defence: options.defence(),
            seed,
            tunnel,
            fanout: fanout.clone(),
            neigh: Arc::clone(&neigh_shared),
            requests: req_tx.clone(),
            commands: cmd_rx,
            stop: Arc::clone(&stop),
            epoch,
            config: Arc::clone(&initial),
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("vsd-packets-{index}"))
                .spawn(move || worker::run(setup, ready_tx))
                .map_err(|e| e.to_string())?,
        );
        match ready_rx.recv() {
            Ok(Ok(memory)) => tracing::info!(thread = index, table = %memory, "packet thread started"),
            Ok(Err(e)) => {
                stop.store(true, Ordering::Relaxed);
                host::remove_ingress();
                return Err(e);
            }
            Err(_) => return Err("a packet thread failed to start".into()),
        }
        workers.push(cmd_tx);
    }
    let (health_tx, health_rx): (Sender<health::Event>, Receiver<health::Event>) = mpsc::channel();
    let announcer = ring::TxSocket::open(ports[0].ifindex, false, ports[0].mtu).ok();
    let director = Arc::new(Mutex::new(Director {
        ports: Arc::clone(&ports),
        workers,
        config: (*initial).clone(),
        health: HashMap::new(),
        effective: Arc::new(Config::default()),
        neigh_view: Arc::clone(&neigh_shared),
        requests: req_tx,
        tun,
        started: Instant::now(),
        checks: Vec::new(),
        health_events: health_tx,
        announcer,
        steering: Steering::of_config(&initial),
        timeouts: [900, 120, 300],
    }));
    {
        let mut d = director.lock().map_err(|_| "poisoned")?;
        d.push()?;
        d.restart_checks();
    }
    let listener = bind_control(&options.control, options.control_group.as_deref())?;
    {
        let d = Arc::clone(&director);
        std::thread::Builder::new()
            .name("vsd-control".into())
            .spawn(move || control::serve(listener, d))
            .map_err(|e| e.to_string())?;
    }
    if let Some(addr) = options.metrics {
        let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("--metrics {addr}: {e}"))?;
        let d = Arc::clone(&director);
        std::thread::Builder::new()
            .name("vsd-metrics".into())
            .spawn(move || metrics::serve(listener, d))
            .map_err(|e| e.to_string())?;
        tracing::info!(%addr, "metrics on /metrics");
    }
    tracing::info!(
        interfaces = ?ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        threads,
        control = %options.control.display(),
        services = initial.services.len(),
        "vsd running"
    );
    let mut last_refresh = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if reload.swap(false, Ordering::Relaxed)
            && let Some(path) = &options.rules
        {
            let result = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|text| director.lock().map_err(|_| "poisoned".to_owned())?.set_rules(&text, "SIGHUP"));
            if let Err(e) = result {
                tracing::error!(rules = %path.display(), error = %e, "reload refused; the previous configuration stays");
            }
        }
        while let Ok(event) = health_rx.try_recv() {
            if let Ok(mut d) = director.lock() {
                d.health_changed(event);
            }
        }
        if last_refresh.elapsed() >= Duration::from_secs(1) {
            if let Ok(mut d) = director.lock()
                && let Err(e) = d.refresh_ingress()
            {
                tracing::error!(error = %e, "updating the ingress rules failed");
            }
            last_refresh = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("stopping");
    for h in handles {
        let _ = h.join();
    }
    let _ = resolver.join();
    host::remove_ingress();
    let _ = std::fs::remove_file(&options.control);
    tracing::info!("stopped");
    Ok(())
}
