//! The demo's sample capture: clients opening HTTP connections to the classic LVS-NAT example
//! service (VIP port 80, rr over three real servers), with the real servers' answers.
//!
//! The real servers' frames come from the servers rr will pick; the generator knows which by
//! running vs-sched's rr over the same three servers, so the capture is what a director would
//! have seen on the wire.

use std::net::{IpAddr, Ipv4Addr};

use vs_proto::wire::checksum::{self, pseudo_header_v4};
use vs_proto::wire::{IpProtocol, Ipv4Header, MacAddr, TcpFlags};
use vs_sched::{Builtin, DestConfig, DestList, PacketInfo, SchedParams, Scheduler};
use zerocopy::IntoBytes;

use crate::capture::Frame;

/// The director's MAC.
pub(crate) const DIRECTOR_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
/// The clients' router MAC.
pub(crate) const ROUTER_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x05, 0x01]);
/// The virtual service.
pub(crate) const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// The real servers.
pub(crate) const REALS: [Ipv4Addr; 3] =
    [Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 1, 3)];

/// The MAC of real server `i` (0-based).
pub(crate) fn real_mac(i: usize) -> MacAddr {
    MacAddr([0x02, 0x00, 0x00, 0x00, 0x01, i as u8 + 1])
}

/// The demo's rules, in ipvsadm syntax.
pub(crate) fn rules() -> String {
    let mut text = String::from(
        "# the classic LVS-NAT example: ipvsadm -A -t VIP:http -s rr; ipvsadm -a -t VIP:http -r RS:http -m -w 1\n",
    );
    text.push_str(&format!("-A -t {VIP}:http -s rr\n"));
    for r in REALS {
        text.push_str(&format!("-a -t {VIP}:http -r {r}:http -m -w 1\n"));
    }
    text
}

struct Segment {
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    payload: &'static [u8],
}

fn tcp_frame(seg: &Segment, from_mac: MacAddr) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&seg.src.1.to_be_bytes());
    tcp[2..4].copy_from_slice(&seg.dst.1.to_be_bytes());
    tcp[4..8].copy_from_slice(&seg.seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&seg.ack.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = seg.flags.bits();
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    tcp.extend_from_slice(seg.payload);
    let len = tcp.len() as u16;
    let pseudo = pseudo_header_v4(seg.src.0, seg.dst.0, IpProtocol::TCP, u32::from(len));
    let c = !checksum::fold(checksum::sum(pseudo, &tcp));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = Ipv4Header::new(seg.src.0, seg.dst.0, IpProtocol::TCP, 64, len);
    ip.set_dont_frag(true);
    ip.fill_checksum();
    let mut f = Vec::with_capacity(14 + 20 + tcp.len());
    f.extend_from_slice(&DIRECTOR_MAC.0);
    f.extend_from_slice(&from_mac.0);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(ip.as_bytes());
    f.extend_from_slice(&tcp);
    f
}

/// `clients` HTTP conversations, one starting every 10 ms from t = 1 s.
pub(crate) fn capture(clients: u16) -> Vec<Frame> {
    let mut rr = Builtin::by_name("rr", &SchedParams::default()).expect("rr exists");
    let mut list = DestList::<3>::new();
    rr.init_service(list.as_slice()).expect("rr takes any list");
    for r in REALS {
        list.add(&mut rr, IpAddr::V4(r), 80, DestConfig { weight: 1, ..DestConfig::default() })
            .expect("three servers fit");
    }
    let mut frames = Vec::new();
    for i in 0..clients {
        let client = (Ipv4Addr::new(198, 18, 5, (i % 250) as u8 + 1), 40000 + i);
        let packet = PacketInfo {
            proto: 6,
            src: IpAddr::V4(client.0),
            dst: IpAddr::V4(VIP),
            sport: client.1,
            dport: 80,
            inverse: false,
        };
        let id = list.schedule(&mut rr, &packet, 0).expect("rr always picks");
        let index = list.as_slice().iter().position(|d| d.id == id).map_or(0, |p| 2 - p);
        let server = (REALS[index], 80);
        let vip = (VIP, 80);
        let (c, s) = (1000u32 + u32::from(i), 5000u32 + u32::from(i));
        let request: &'static [u8] = b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n";
        let response: &'static [u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        let steps: [(bool, Segment); 8] = [
            (true, Segment { src: client, dst: vip, seq: c, ack: 0, flags: TcpFlags::SYN, payload: b"" }),
            (
                false,
                Segment {
                    src: server,
                    dst: client,
                    seq: s,
                    ack: c + 1,
                    flags: TcpFlags::SYN | TcpFlags::ACK,
                    payload: b"",
                },
            ),
            (true, Segment { src: client, dst: vip, seq: c + 1, ack: s + 1, flags: TcpFlags::ACK, payload: b"" }),
            (
                true,
                Segment {
                    src: client,
                    dst: vip,
                    seq: c + 1,
                    ack: s + 1,
                    flags: TcpFlags::PSH | TcpFlags::ACK,
                    payload: request,
                },
            ),
            (
                false,
                Segment {
                    src: server,
                    dst: client,
                    seq: s + 1,
                    ack: c + 1 + request.len() as u32,
                    flags: TcpFlags::PSH | TcpFlags::ACK,
                    payload: response,
                },
            ),
            (
                true,
                Segment {
                    src: client,
                    dst: vip,
                    seq: c + 1 + request.len() as u32,
                    ack: s + 1 + response.len() as u32,
                    flags: TcpFlags::FIN | TcpFlags::ACK,
                    payload: b"",
                },
            ),
            (
                false,
                Segment {
                    src: server,
                    dst: client,
                    seq: s + 1 + response.len() as u32,
                    ack: c + 2 + request.len() as u32,
                    flags: TcpFlags::FIN | TcpFlags::ACK,
                    payload: b"",
                },
            ),
            (
                true,
                Segment {
                    src: client,
                    dst: vip,
                    seq: c + 2 + request.len() as u32,
                    ack: s + 2 + response.len() as u32,
                    flags: TcpFlags::ACK,
                    payload: b"",
                },
            ),
        ];
        for (k, (from_client, seg)) in steps.iter().enumerate() {
            let mac = if *from_client { ROUTER_MAC } else { real_mac(index) };
            let ts_us = 1_000_000 + u64::from(i) * 10_000 + k as u64 * 500;
            frames.push(Frame { ts_us, linktype: 1, data: tcp_frame(seg, mac) });
        }
    }
    frames.sort_by_key(|f| f.ts_us);
    frames
}
