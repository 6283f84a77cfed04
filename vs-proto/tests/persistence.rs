//! Persistence as IPVS does it (§3.7): templates keyed by the masked client address, their
//! timeouts, their life while they control connections, quiescing and removal, assured
//! templates surviving a forced expiry.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::frame;
use vs_proto::conn::{ConnTable, Forward};
use vs_proto::engine::{
    Engine, EngineConfig, Persistence, RealConfig, ServiceConfig, ServiceKey, ServiceSlot, Verdict,
};
use vs_proto::wire::{IpProtocol, MacAddr, PacketBuf, Summary, TcpFlags};

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

const VIP: (u8, u8, u8, u8) = (198, 18, 0, 100);

fn vip(port: u16) -> (IpAddr, u16) {
    (v4(VIP.0, VIP.1, VIP.2, VIP.3), port)
}

fn rs(n: u8) -> IpAddr {
    v4(198, 18, 1, n)
}

struct Lab {
    engine: Engine<'static, 8>,
    key_tcp: ServiceKey,
    key_udp: ServiceKey,
}

impl Lab {
    fn new(persistence: Persistence) -> Lab {
        let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(256)].into_boxed_slice());
        let services: &'static mut [ServiceSlot<8>] =
            Box::leak((0..4).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
        let mut engine =
            Engine::new(ConnTable::new(memory, 256, 5).unwrap(), services, EngineConfig::default()).unwrap();
        let key_tcp = ServiceKey::new(IpProtocol::TCP, vip(80).0, 80);
        let key_udp = ServiceKey::new(IpProtocol::UDP, vip(53).0, 53);
        for (key, port) in [(key_tcp, 80), (key_udp, 53)] {
            let config = ServiceConfig { scheduler: "rr", persistence: Some(persistence), ..ServiceConfig::default() };
            engine.add_service(key, &config).unwrap();
            for n in 1..=3 {
                let real = RealConfig {
                    addr: rs(n),
                    port,
                    forward: Forward::Nat,
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                };
                engine.add_real(&key, &real).unwrap();
            }
        }
        Lab { engine, key_tcp, key_udp }
    }

    /// Sends a packet; returns the real server it went to (None if not transmitted to one).
    fn send(
        &mut self,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        proto: IpProtocol,
        flags: TcpFlags,
        now_s: u64,
    ) -> Option<IpAddr> {
        let f = frame(src, dst, proto, flags, b"");
        let mut storage = f.clone();
        let mut buf = PacketBuf::new(&mut storage, 0, f.len()).unwrap();
        match self.engine.process(&mut buf, now_s * 1000, &|_| Some(MacAddr([2, 0, 0, 0, 0, 7]))) {
            Verdict::Transmit { next_hop, .. } => Some(next_hop).filter(|_| Summary::from_ethernet(buf.data()).is_ok()),
            _ => None,
        }
    }

    fn syn(&mut self, client: (IpAddr, u16), now_s: u64) -> Option<IpAddr> {
        self.send(client, vip(80), IpProtocol::TCP, TcpFlags::SYN, now_s)
    }

    fn persistent(&self, key: &ServiceKey, real: IpAddr) -> u32 {
        self.engine.service(key).unwrap().reals().find(|(r, _)| r.addr == real).map(|(_, d)| d.persistent).unwrap()
    }

    fn edit(&mut self, real: IpAddr, weight: u32) {
        let config =
            RealConfig { addr: real, port: 80, forward: Forward::Nat, weight, upper_threshold: 0, lower_threshold: 0 };
        self.engine.edit_real(&self.key_tcp, &config).unwrap();
    }
}

fn c(n: u8, port: u16) -> (IpAddr, u16) {
    (v4(198, 18, 5, n), port)
}

#[test]
fn a_client_sticks_to_its_server_and_others_are_spread() {
    let mut lab = Lab::new(Persistence { timeout_s: 300, prefix_len: 32, ipv4_mask: None });
    let first = lab.syn(c(1, 1000), 0).unwrap();
    for port in 1001..1006 {
        assert_eq!(lab.syn(c(1, port), 1), Some(first), "rr would have moved on without persistence");
    }
    let other = lab.syn(c(2, 1000), 1).unwrap();
    assert_ne!(other, first);
    assert_eq!(lab.persistent(&lab.key_tcp.clone(), first), 1, "one template per client");
    let svc = lab.engine.service(&lab.key_tcp).unwrap();
    assert_eq!(svc.stats().conns, 7, "templates are not counted as connections");
}

#[test]
fn the_netmask_groups_clients() {
    let mut lab = Lab::new(Persistence { timeout_s: 300, prefix_len: 24, ipv4_mask: None });
    let first = lab.syn(c(1, 1000), 0).unwrap();
    assert_eq!(lab.syn(c(200, 1000), 0), Some(first), "198.18.5.0/24 shares a template");
    assert_ne!(lab.syn((v4(198, 18, 6, 1), 1000), 0), Some(first));
}

#[test]
fn any_ipv4_mask_groups_clients_as_the_kernel_does() {
    // 255.0.255.0 (ipvsadm -M 255.0.255.0): 198.18.5.1 and 198.99.5.7 both mask to 198.0.5.0.
    let mut lab = Lab::new(Persistence { timeout_s: 300, prefix_len: 32, ipv4_mask: Some(0xff00_ff00) });
    let first = lab.syn(c(1, 1000), 0).unwrap();
    assert_eq!(lab.syn((v4(198, 99, 5, 7), 1000), 0), Some(first), "same masked client, same template");
    assert_ne!(lab.syn((v4(198, 18, 6, 1), 1000), 0), Some(first), "198.0.6.0 is another client network");
}

#[test]
fn templates_outlive_their_timeout_while_they_control_connections() {
    let mut lab = Lab::new(Persistence { timeout_s: 30, prefix_len: 32, ipv4_mask: None });
    let key_udp = lab.key_udp;
    lab.engine.timeouts_mut().set_ipvsadm(0, 0, 100).unwrap();
    let first = lab.send(c(1, 1000), vip(53), IpProtocol::UDP, TcpFlags::empty(), 0).unwrap();
    // At 60 s the template's 30 s are long over, but its UDP connection (100 s) lives.
    assert_eq!(lab.engine.sweep(60_000, 256), 0);
    assert_eq!(lab.send(c(1, 2000), vip(53), IpProtocol::UDP, TcpFlags::empty(), 60), Some(first));
    assert_eq!(lab.persistent(&key_udp, first), 1);
    // Both connections gone at 161 s (the second lasts to 160 s); the template, re-armed at
    // 60 s for 30 s and then retried every 60 s, goes at the first retry after that.
    lab.engine.sweep(161_000, 256);
    lab.engine.sweep(161_000, 256);
    assert_eq!(lab.engine.connections().iter().filter(|(_, c)| !c.is_template()).count(), 0);
    lab.engine.sweep(260_000, 256);
    assert!(lab.engine.connections().is_empty(), "the template expired once it controlled nothing");
    assert_eq!(lab.persistent(&key_udp, first), 0);
    assert_ne!(
        lab.send(c(1, 3000), vip(53), IpProtocol::UDP, TcpFlags::empty(), 261),
        Some(first),
        "rescheduled: rr moved on"
    );
}

#[test]
fn quiesced_servers_keep_their_clients_unless_told_otherwise() {
    let mut lab = Lab::new(Persistence { timeout_s: 300, prefix_len: 32, ipv4_mask: None });
    let first = lab.syn(c(1, 1000), 0).unwrap();
    lab.edit(first, 0);
    assert_eq!(lab.syn(c(1, 1001), 1), Some(first), "expire_quiescent_template = 0: the template is honoured");
    lab.engine.config_mut().expire_quiescent_template = true;
    let next = lab.syn(c(1, 1002), 2).unwrap();
    assert_ne!(next, first);
    assert_eq!(lab.syn(c(1, 1003), 3), Some(next), "a new template to the new server");
}

#[test]
fn a_removed_server_invalidates_its_templates() {
    let mut lab = Lab::new(Persistence { timeout_s: 300, prefix_len: 32, ipv4_mask: None });
    let key = lab.key_tcp;
    let first = lab.syn(c(1, 1000), 0).unwrap();
    lab.engine.delete_real(&key, first, 80).unwrap();
    let next = lab.syn(c(1, 1001), 1).unwrap();
    assert_ne!(next, first);
}

#[test]
fn only_assured_templates_survive_a_forced_expiry() {
    // Not assured: the server refuses the SYN (its RST moves SYN_RECV to CLOSE); a new SYN on
    // the CLOSE entry forces it out (conn_reuse_mode 1) and the template with it.
    let mut lab = Lab::new(Persistence { timeout_s: 300, prefix_len: 32, ipv4_mask: None });
    let cl = c(1, 1000);
    let first = lab.syn(cl, 0).unwrap();
    lab.send((first, 80), cl, IpProtocol::TCP, TcpFlags::RST | TcpFlags::ACK, 1);
    let again = lab.syn(cl, 2).unwrap();
    assert_ne!(again, first, "the unassured template went with its connection");
    // Assured: the handshake completes first; after the RST and the reused SYN, the client
    // still goes to the same server.
    let mut lab = Lab::new(Persistence { timeout_s: 300, prefix_len: 32, ipv4_mask: None });
    let first = lab.syn(cl, 0).unwrap();
    lab.send((first, 80), cl, IpProtocol::TCP, TcpFlags::SYN | TcpFlags::ACK, 0);
    lab.send(cl, vip(80), IpProtocol::TCP, TcpFlags::ACK, 0);
    lab.send(cl, vip(80), IpProtocol::TCP, TcpFlags::RST | TcpFlags::ACK, 1);
    assert_eq!(lab.syn(cl, 2), Some(first));
}

#[test]
fn a_persistent_port_zero_service_takes_every_port() {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(64)].into_boxed_slice());
    let services: &'static mut [ServiceSlot<8>] =
        Box::leak((0..2).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
    let mut engine = Engine::new(ConnTable::new(memory, 64, 5).unwrap(), services, EngineConfig::default()).unwrap();
    let key = ServiceKey::new(IpProtocol::TCP, vip(0).0, 0);
    let config = ServiceConfig {
        scheduler: "rr",
        persistence: Some(Persistence { timeout_s: 300, prefix_len: 32, ipv4_mask: None }),
        ..ServiceConfig::default()
    };
    engine.add_service(key, &config).unwrap();
    for n in 1..=2 {
        let real = RealConfig {
            addr: rs(n),
            port: 0,
            forward: Forward::DirectRoute,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
        };
        engine.add_real(&key, &real).unwrap();
    }
    let mut to = vec![];
    for port in [80u16, 443, 8080] {
        let f = frame(c(1, 1000 + port), vip(port), IpProtocol::TCP, TcpFlags::SYN, b"");
        let mut storage = f.clone();
        let mut buf = PacketBuf::new(&mut storage, 0, f.len()).unwrap();
        match engine.process(&mut buf, 0, &|_| Some(MacAddr([2, 0, 0, 0, 0, 7]))) {
            Verdict::Transmit { next_hop, .. } => to.push(next_hop),
            v => panic!("port {port}: {v:?}"),
        }
    }
    assert!(to.windows(2).all(|w| w[0] == w[1]), "every port of the client goes to one server: {to:?}");
    // The template names no port: the connections keep the ports they were made to.
    let ports: Vec<u16> =
        engine.connections().iter().filter(|(_, c)| !c.is_template()).map(|(_, c)| c.real().1).collect();
    assert_eq!(ports.len(), 3);
    assert!(ports.contains(&443) && ports.contains(&8080));
}
