//! `vsd ctl`: a small client of the control socket for scripts and operators (ipvsadm's
//! commands and formats come with vsadm).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::control::{ConnRow, Report};

/// What to ask.
#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum CtlCommand {
    /// Services and real servers with their counters.
    List,
    /// The connection table.
    Conns,
    /// Version, interfaces, threads, table occupancy, health verdicts.
    Status,
    /// The rules in force.
    GetConfig,
    /// Replace the whole configuration with a rules file (all or nothing).
    SetConfig {
        /// The rules file.
        file: PathBuf,
    },
    /// Zero the counters.
    Zero,
    /// Send one JSON request line and print the answer.
    Raw {
        /// The request, e.g. '{"op":"status"}'.
        json: String,
    },
}

/// Sends one request and returns the answer, failing on `"ok": false`.
pub(crate) fn request(control: &Path, request: &serde_json::Value) -> Result<serde_json::Value, String> {
    let answer = request_raw(control, request)?;
    if answer["ok"] == serde_json::Value::Bool(true) {
        Ok(answer)
    } else {
        Err(answer["error"].as_str().unwrap_or("request failed").to_owned())
    }
}

/// Sends one request and returns the answer as it is.
pub(crate) fn request_raw(control: &Path, request: &serde_json::Value) -> Result<serde_json::Value, String> {
    let mut stream = UnixStream::connect(control).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            format!("{}: vsd is not running (no control socket)", control.display())
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("{}: permission denied (root, or vsd's --control-group, may use it)", control.display())
        }
        _ => format!("{}: {e}", control.display()),
    })?;
    writeln!(stream, "{request}").map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| format!("bad answer: {e}"))
}

/// Runs `vsd ctl`.
pub(crate) fn run(control: &Path, command: &CtlCommand) -> Result<(), String> {
    use serde_json::json;
    match command {
        CtlCommand::List => {
            let answer = request(control, &json!({"op": "list"}))?;
            let report: Report = serde_json::from_value(answer["report"].clone()).map_err(|e| e.to_string())?;
            for s in &report.services {
                let persistent = s.persistent.map(|p| format!(" persistent {p}")).unwrap_or_default();
                println!(
                    "{} {}{persistent}: conns {} inpkts {} outpkts {} inbytes {} outbytes {}",
                    s.name,
                    s.scheduler,
                    s.stats.conns,
                    s.stats.inpkts,
                    s.stats.outpkts,
                    s.stats.inbytes,
                    s.stats.outbytes
                );
                for r in &s.reals {
                    println!(
                        "  -> {} {} weight {} active {} inactive {}: conns {} inpkts {} outpkts {}",
                        super::config::endpoint_text(r.addr, r.port),
                        r.forward,
                        r.weight,
                        r.active,
                        r.inactive,
                        r.stats.conns,
                        r.stats.inpkts,
                        r.stats.outpkts
                    );
                }
            }
            println!("connections {} of {}", report.connections, report.capacity);
        }
        CtlCommand::Conns => {
            let answer = request(control, &json!({"op": "conns"}))?;
            let rows: Vec<ConnRow> = serde_json::from_value(answer["conns"].clone()).map_err(|e| e.to_string())?;
            println!("pro expire state       source                 virtual                destination");
            for c in rows {
                let secs = c.expires_ms / 1000;
                println!(
                    "{:<3} {:02}:{:02}  {:<11} {:<22} {:<22} {}",
                    c.proto,
                    secs / 60,
                    secs % 60,
                    c.state,
                    c.client,
                    c.virt,
                    c.real
                );
            }
        }
        CtlCommand::Status => println!("{}", request(control, &json!({"op": "status"}))?),
        CtlCommand::GetConfig => {
            print!("{}", request(control, &json!({"op": "get-config"}))?["rules"].as_str().unwrap_or(""));
        }
        CtlCommand::SetConfig { file } => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            request(control, &json!({"op": "set-config", "rules": text}))?;
        }
        CtlCommand::Zero => {
            request(control, &json!({"op": "zero"}))?;
        }
        CtlCommand::Raw { json } => {
            let value: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("request: {e}"))?;
            println!("{}", request(control, &value)?);
        }
    }
    Ok(())
}
