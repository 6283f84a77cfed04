//! `vsd`: the vs director. `vsd run` serves live traffic on AF_PACKET sockets; `vsd replay`
//! runs captures through the engine offline; `vsd rs-decap` is the real-server side of IP
//! tunnels where the kernel has no ipip module; `vsd demo` replays a sample offline.
//!
//! The binaries (`vsd`, `vsadm`) are thin: everything is in this library, whose only public
//! items are [`main`] and the [`fuzzing`] entry points.

mod capture;
mod decap;
pub mod fuzzing;
mod replay;
mod rules;
mod run;
mod sample;
mod vsadm;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vs_proto::wire::MacAddr;

#[derive(Parser)]
#[command(name = "vsd", version, about = "The vs IPVS director")]
struct Cli {
    /// Log format on standard error: `text` or `json` (one object per event). The level
    /// filter comes from `VSD_LOG` (default `info`).
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process the frames of a capture through rules in ipvsadm-save format, offline.
    Replay {
        /// Rules in ipvsadm-save format (-A / -a lines).
        #[arg(long)]
        rules: PathBuf,
        /// Input capture (pcap or pcapng, Ethernet).
        #[arg(long = "in")]
        input: PathBuf,
        /// Output capture of every frame the engine transmits.
        #[arg(long = "out")]
        output: PathBuf,
        /// The director's own MAC address.
        #[arg(long, default_value = "02:00:00:00:00:01")]
        mac: String,
        /// Outer source address for IP tunnels (once per family).
        #[arg(long = "tun-src")]
        tun_src: Vec<IpAddr>,
        /// Egress MTU.
        #[arg(long, default_value_t = 1500)]
        mtu: u16,
        /// MAC address of a real server or next hop: ADDR=MAC. Without it, each address's MAC
        /// is learnt from the capture (the source MAC of the frames it sent).
        #[arg(long = "neigh")]
        neigh: Vec<String>,
        /// MAC address for every next hop neither given nor seen in the capture (a default
        /// gateway).
        #[arg(long)]
        gateway: Option<String>,
        /// Capture of the frames handed back to the host.
        #[arg(long = "pass-out")]
        pass_out: Option<PathBuf>,
        /// Connection table capacity.
        #[arg(long, default_value_t = 65536)]
        capacity: usize,
        /// After the capture, print what `vsadm -L -n --stats` and `vsadm -L -c -n` would show at
        /// its last timestamp.
        #[arg(long)]
        list: bool,
    },
    /// Run the director on live interfaces (AF_PACKET), until SIGTERM.
    Run(run::RunOptions),
    /// Ask a running vsd through its control socket.
    Ctl {
        /// Control socket path.
        #[arg(long, default_value = "/run/vsd.sock")]
        control: PathBuf,
        #[command(subcommand)]
        what: run::ctl::CtlCommand,
    },
    /// Real-server side of IP tunnels on hosts without an ipip module: receive IP-in-IP
    /// packets on an interface and hand the inner packets to the kernel through a TUN device.
    RsDecap(decap::DecapOptions),
    /// Write a sample capture of HTTP clients and the classic LVS-NAT rules, replay it, and
    /// show each real server's share.
    Demo {
        /// Directory for the sample capture, the rules and the replayed capture.
        #[arg(long, default_value = "target/demo")]
        dir: PathBuf,
        /// Number of client connections.
        #[arg(long, default_value_t = 30)]
        clients: u16,
    },
}

fn parse_mac(text: &str) -> Result<MacAddr, String> {
    let parts: Vec<u8> = text
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("bad MAC `{text}`"))?;
    let bytes: [u8; 6] = parts.try_into().map_err(|_| format!("bad MAC `{text}`"))?;
    Ok(MacAddr(bytes))
}

fn parse_neigh(entries: &[String]) -> Result<BTreeMap<IpAddr, MacAddr>, String> {
    entries
        .iter()
        .map(|e| {
            let (addr, mac) = e.split_once('=').ok_or_else(|| format!("--neigh `{e}`: want ADDR=MAC"))?;
            Ok((addr.parse().map_err(|_| format!("--neigh `{e}`: bad address"))?, parse_mac(mac)?))
        })
        .collect()
}

fn path(p: &std::path::Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| format!("{}: not UTF-8", p.display()))
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Run(options) => run::run(options),
        Command::RsDecap(options) => decap::run(&options),
        Command::Ctl { control, what } => run::ctl::run(&control, &what),
        Command::Replay { rules, input, output, mac, tun_src, mtu, neigh, gateway, pass_out, capacity, list } => {
            let text = std::fs::read_to_string(&rules).map_err(|e| format!("{}: {e}", rules.display()))?;
            let parsed = rules::parse(&text).map_err(|e| format!("{}: {e}", rules.display()))?;
            let options = replay::Options {
                mac: parse_mac(&mac)?,
                tunnel_src: tun_src,
                mtu,
                neighbours: parse_neigh(&neigh)?,
                gateway: gateway.as_deref().map(parse_mac).transpose()?,
                capacity,
                list,
            };
            let frames = capture::read(path(&input)?)?;
            let mut out = capture::Writer::create(path(&output)?)?;
            let mut pass = pass_out.as_deref().map(|p| path(p).and_then(capture::Writer::create)).transpose()?;
            let report = replay::run(&parsed, &options, &frames, &mut out, pass.as_mut())?;
            out.finish()?;
            if let Some(p) = pass {
                p.finish()?;
            }
            eprint!("{}", report.text);
            if report.undelivered > 0 {
                let unknown: Vec<String> = report.unknown_neighbours.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "{} frames could not be delivered: no MAC address known for {} (give --neigh ADDR=MAC or --gateway MAC)",
                    report.undelivered,
                    unknown.join(", ")
                ));
            }
            Ok(())
        }
        Command::Demo { dir, clients } => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let rules_text = sample::rules();
            let rules_path = dir.join("rules.txt");
            std::fs::write(&rules_path, &rules_text).map_err(|e| format!("{}: {e}", rules_path.display()))?;
            let frames = sample::capture(clients);
            let sample_path = dir.join("sample.pcap");
            let mut w = capture::Writer::create(path(&sample_path)?)?;
            for f in &frames {
                w.write(f.ts_us, &f.data)?;
            }
            w.finish()?;
            let mut neighbours = BTreeMap::new();
            for (i, r) in sample::REALS.iter().enumerate() {
                neighbours.insert(IpAddr::V4(*r), sample::real_mac(i));
            }
            for n in 1..=250u8 {
                neighbours.insert(IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 5, n)), sample::ROUTER_MAC);
            }
            let options = replay::Options {
                mac: sample::DIRECTOR_MAC,
                tunnel_src: vec![],
                mtu: 1500,
                neighbours,
                gateway: None,
                capacity: 4096,
                list: false,
            };
            let parsed = rules::parse(&rules_text).map_err(|e| format!("demo rules: {e}"))?;
            let out_path = dir.join("replayed.pcap");
            let mut out = capture::Writer::create(path(&out_path)?)?;
            let report = replay::run(&parsed, &options, &capture::read(path(&sample_path)?)?, &mut out, None)?;
            out.finish()?;
            println!("rules ({}):\n{rules_text}", rules_path.display());
            println!("sample capture: {} ({} frames, {clients} HTTP connections)", sample_path.display(), frames.len());
            println!("real server shares:");
            for (_, real, fwd, conns) in &report.reals {
                println!("  {real} ({}): {conns} connections", run::control::forward_name(*fwd));
            }
            print!("{}", report.text);
            println!("replayed capture: {} (open it with tshark -r or Wireshark)", out_path.display());
            Ok(())
        }
    }
}

/// vsd's (and vsadm's) `main`: the command line of the process, its exit status.
#[must_use]
pub fn main() -> ExitCode {
    // One binary, several names: invoked as `vsadm` (or `ipvsadm`) it is ipvsadm for vsd.
    let mut args = std::env::args();
    let program = args.next().unwrap_or_default();
    let name = std::path::Path::new(&program).file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == "vsadm" || name == "ipvsadm" {
        return vsadm::main(name, args.collect());
    }
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("VSD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vsd: {e}");
            ExitCode::FAILURE
        }
    }
}
