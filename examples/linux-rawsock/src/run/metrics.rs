//! `--metrics ADDR`: the counters and rates of every service and real server in the
//! Prometheus text format (prometheus-client's encoder), read from the packet threads at
//! scrape time, served by a small HTTP listener (`GET /metrics`).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Director;
use super::control::Report;

type Labels = Vec<(String, String)>;

fn counter(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    registry.register(name, help, f.clone());
    f
}

fn gauge(registry: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    registry.register(name, help, f.clone());
    f
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The text exposition of a listing.
pub(crate) fn render(report: &Report) -> String {
    let mut r = Registry::with_prefix("vsd");
    let conns = counter(&mut r, "connections", "Connections scheduled");
    let packets = counter(&mut r, "packets", "Packets forwarded");
    let bytes = counter(&mut r, "bytes", "Bytes forwarded");
    let cps = gauge(&mut r, "rate_connections_per_second", "Connection rate (IPVS's 2 s estimator)");
    let pps = gauge(&mut r, "rate_packets_per_second", "Packet rate (IPVS's 2 s estimator)");
    let bps = gauge(&mut r, "rate_bytes_per_second", "Byte rate (IPVS's 2 s estimator)");
    let active = gauge(&mut r, "real_active_connections", "Active connections of a real server");
    let inactive = gauge(&mut r, "real_inactive_connections", "Inactive connections of a real server");
    let weight = gauge(&mut r, "real_weight", "Weight of a real server (0: quiesced)");
    let table = gauge(&mut r, "table_connections", "Entries in the connection tables");
    let capacity = gauge(&mut r, "table_capacity", "Capacity of the connection tables");
    let drops = counter(&mut r, "dropped_packets", "Packets dropped, by reason");
    for s in &report.services {
        for (real, stats, real_info) in std::iter::once((String::new(), s.stats, None))
            .chain(s.reals.iter().map(|x| (super::config::endpoint_text(x.addr, x.port), x.stats, Some(x))))
        {
            let base: Vec<(&str, &str)> = if real.is_empty() {
                vec![("service", s.name.as_str())]
            } else {
                vec![("service", s.name.as_str()), ("real", real.as_str())]
            };
            conns.get_or_create(&labels(&base)).inc_by(stats.conns);
            for (dir, p, b, pr, br) in [
                ("in", stats.inpkts, stats.inbytes, stats.inpps, stats.inbps),
                ("out", stats.outpkts, stats.outbytes, stats.outpps, stats.outbps),
            ] {
                let mut l = base.clone();
                l.push(("direction", dir));
                packets.get_or_create(&labels(&l)).inc_by(p);
                bytes.get_or_create(&labels(&l)).inc_by(b);
                pps.get_or_create(&labels(&l)).set(as_i64(pr));
                bps.get_or_create(&labels(&l)).set(as_i64(br));
            }
            cps.get_or_create(&labels(&base)).set(as_i64(stats.cps));
            if let Some(x) = real_info {
                active.get_or_create(&labels(&base)).set(i64::from(x.active));
                inactive.get_or_create(&labels(&base)).set(i64::from(x.inactive));
                weight.get_or_create(&labels(&base)).set(i64::from(x.weight));
            }
        }
    }
    table.get_or_create(&vec![]).set(as_i64(report.connections as u64));
    capacity.get_or_create(&vec![]).set(as_i64(report.capacity as u64));
    for (reason, n) in &report.drops {
        drops.get_or_create(&labels(&[("reason", reason)])).inc_by(*n);
    }
    let mut out = String::new();
    let _ = encode(&mut out, &r);
    out
}

fn answer(stream: &mut TcpStream, director: &Mutex<Director>) -> std::io::Result<()> {
    let mut line = String::new();
    BufReader::new(stream.try_clone()?).read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path == "/metrics" {
        match director.lock().map_err(|_| "poisoned".to_owned()).and_then(|d| d.report()) {
            Ok(report) => ("200 OK", render(&report)),
            Err(e) => ("503 Service Unavailable", format!("{e}\n")),
        }
    } else {
        ("404 Not Found", "try /metrics\n".to_owned())
    };
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Serves scrapes until the process ends.
pub(crate) fn serve(listener: TcpListener, director: Arc<Mutex<Director>>) {
    for mut stream in listener.incoming().flatten() {
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let _ = answer(&mut stream, &director);
    }
}
