//! Connection states and timers against the real kernel: `tests/oracle/conn-states.txt` holds
//! `ipvsadm -L -c -n` after each step of NAT conversations run on Linux 6.1
//! (`scripts/record-states.sh`); the same conversations, packet by packet, go through the
//! engine here, and the connection each step touched must show the same state and timer.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use common::frame;
use vs_proto::conn::{ConnTable, Forward};
use vs_proto::engine::{Engine, EngineConfig, RealConfig, ServiceConfig, ServiceKey, ServiceSlot, TICK_MS};
use vs_proto::wire::{IpProtocol, MacAddr, PacketBuf, TcpFlags};

const RECORDED: &str = include_str!("oracle/conn-states.txt");

fn a(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// STEP name → [(proto, remaining seconds, state, client)].
fn recorded() -> BTreeMap<String, Vec<(String, u32, String, String)>> {
    let mut steps = BTreeMap::new();
    let mut current = None;
    for line in RECORDED.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["STEP", name] => {
                current = Some(name.to_string());
                steps.insert(name.to_string(), Vec::new());
            }
            [proto @ ("TCP" | "UDP"), expire, state, source, _virt, _dest] => {
                let (m, s) = expire.split_once(':').unwrap();
                let secs = m.parse::<u32>().unwrap() * 60 + s.parse::<u32>().unwrap();
                steps.get_mut(current.as_ref().unwrap()).unwrap().push((
                    proto.to_string(),
                    secs,
                    state.to_string(),
                    source.to_string(),
                ));
            }
            _ => {}
        }
    }
    steps
}

struct Lab {
    engine: Engine<'static, 4>,
    now: u64,
}

impl Lab {
    fn new() -> Lab {
        let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(64)].into_boxed_slice());
        let services: &'static mut [ServiceSlot<4>] =
            Box::leak((0..8).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
        let mut engine =
            Engine::new(ConnTable::new(memory, 64, 1).unwrap(), services, EngineConfig::default()).unwrap();
        for (proto, vip, port, rs) in [
            (IpProtocol::TCP, "198.19.1.10", 80, "192.188.4.1"),
            (IpProtocol::TCP, "198.19.1.11", 80, "198.51.100.7"),
            (IpProtocol::UDP, "198.19.1.10", 53, "192.188.4.1"),
            (IpProtocol::TCP, "198.19.1.12", 80, "192.188.4.1"),
            (IpProtocol::TCP, "198.19.1.13", 80, "192.188.4.1"),
        ] {
            let key = ServiceKey::new(proto, a(vip), port);
            engine.add_service(key, &ServiceConfig { scheduler: "rr", ..ServiceConfig::default() }).unwrap();
            let real = RealConfig {
                addr: a(rs),
                port,
                forward: Forward::Nat,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
            };
            engine.add_real(&key, &real).unwrap();
        }
        Lab { engine, now: 1_000 }
    }

    fn send(&mut self, src: (&str, u16), dst: (&str, u16), proto: IpProtocol, flags: TcpFlags, payload: &[u8]) {
        let f = frame((a(src.0), src.1), (a(dst.0), dst.1), proto, flags, payload);
        let mut storage = vec![0u8; 64 + f.len()];
        storage[64..].copy_from_slice(&f);
        let mut buf = PacketBuf::new(&mut storage, 64, f.len()).unwrap();
        let v = self.engine.process(&mut buf, self.now, &|_| Some(MacAddr([2, 0, 0, 0, 0, 9])));
        assert!(matches!(v, vs_proto::engine::Verdict::Transmit { .. }), "{v:?} for {src:?} -> {dst:?} {flags:?}");
        self.now += 20;
    }

    fn handshake(&mut self, client: (&str, u16), vip: &str, rs: &str) {
        self.send(client, (vip, 80), IpProtocol::TCP, TcpFlags::SYN, b"");
        self.send((rs, 80), client, IpProtocol::TCP, TcpFlags::SYN | TcpFlags::ACK, b"");
        self.send(client, (vip, 80), IpProtocol::TCP, TcpFlags::ACK, b"");
    }

    /// (state name, remaining whole seconds) of the connection from `client`.
    fn show(&self, client: (&str, u16)) -> (String, u32) {
        let table = self.engine.connections();
        let (_, conn) = table.iter().find(|(_, c)| c.client() == (a(client.0), client.1)).expect("connection exists");
        let now_ticks = (self.now / TICK_MS) as u32;
        let left_ms = u64::from(conn.expires().wrapping_sub(now_ticks)) * TICK_MS;
        (conn.state().name().to_owned(), (left_ms / 1000) as u32)
    }
}

#[test]
fn conversations_match_the_kernel() {
    let steps = recorded();
    assert_eq!(steps.len(), 9, "every recorded step is checked");
    let mut lab = Lab::new();
    let vip = "198.19.1.10";
    let rs = "192.188.4.1";
    let check = |lab: &Lab, step: &str, client: (&str, u16)| {
        let rows = &steps[step];
        let source = format!("{}:{}", client.0, client.1);
        let (_, secs, state, _) =
            rows.iter().find(|r| r.3 == source).unwrap_or_else(|| panic!("{step}: no row for {source}"));
        let (ours, left) = lab.show(client);
        assert_eq!(&ours, state, "step {step}");
        assert!(left >= *secs && left <= secs + 2, "step {step}: {left} s left here, kernel showed {secs} s");
    };

    let c1 = ("198.18.3.1", 41001);
    lab.handshake(c1, vip, rs);
    check(&lab, "handshake", c1);
    lab.send(c1, (vip, 80), IpProtocol::TCP, TcpFlags::PSH | TcpFlags::ACK, &[b'x'; 100]);
    lab.send((rs, 80), c1, IpProtocol::TCP, TcpFlags::ACK, b"");
    check(&lab, "data", c1);
    lab.send(c1, (vip, 80), IpProtocol::TCP, TcpFlags::FIN | TcpFlags::ACK, b"");
    lab.send((rs, 80), c1, IpProtocol::TCP, TcpFlags::ACK, b"");
    lab.send((rs, 80), c1, IpProtocol::TCP, TcpFlags::FIN | TcpFlags::ACK, b"");
    lab.send(c1, (vip, 80), IpProtocol::TCP, TcpFlags::ACK, b"");
    check(&lab, "client-fin", c1);

    let c2 = ("198.18.3.2", 41002);
    lab.handshake(c2, vip, rs);
    lab.send(c2, (vip, 80), IpProtocol::TCP, TcpFlags::RST | TcpFlags::ACK, b"");
    check(&lab, "rst", c2);

    let c3 = ("198.18.3.3", 41003);
    lab.send(c3, ("198.19.1.11", 80), IpProtocol::TCP, TcpFlags::SYN, b"");
    check(&lab, "lost-synack", c3);

    let c4 = ("198.18.3.4", 41004);
    lab.send(c4, (vip, 53), IpProtocol::UDP, TcpFlags::empty(), b"ping");
    check(&lab, "udp", c4);

    lab.engine.config_mut().secure_tcp = true;
    let c5 = ("198.18.3.5", 41005);
    lab.handshake(c5, "198.19.1.12", rs);
    check(&lab, "secure-handshake", c5);
    lab.send(c5, ("198.19.1.12", 80), IpProtocol::TCP, TcpFlags::PSH | TcpFlags::ACK, &[b'x'; 100]);
    lab.send((rs, 80), c5, IpProtocol::TCP, TcpFlags::ACK, b"");
    check(&lab, "secure-data", c5);

    lab.engine.config_mut().secure_tcp = false;
    lab.engine.timeouts_mut().set_ipvsadm(100, 50, 30).unwrap();
    let c6 = ("198.18.3.6", 41006);
    lab.handshake(c6, "198.19.1.13", rs);
    check(&lab, "set-timeouts", c6);
    // Running timers were not rewritten by --set: the first connection's TIME_WAIT stays.
    assert_eq!(lab.show(c1).0, "TIME_WAIT");
}
