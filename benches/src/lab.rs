//! Engines loaded as users load them, for the criterion benches and callgrind: a 16-server
//! service per forwarding method and family, flows opened through the engine itself (SYN,
//! SYN-ACK, ACK), client keys spread over 198.18.0.0/15 (sequential addresses, 128 ports each),
//! and frames ready to replay in a random flow order. Large tables live in memory mapped with
//! transparent huge pages requested, as `vsd` maps its own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vs_proto::conn::{ConnTable, Forward};
use vs_proto::engine::{Engine, EngineConfig, RealConfig, ServiceConfig, ServiceKey, ServiceSlot, Verdict};
use vs_proto::wire::{IpProtocol, MacAddr, PacketBuf};

/// Headroom before each frame (room for a tunnel header).
pub const HEADROOM: usize = 64;
/// Bytes per frame slot in a burst buffer.
pub const SLOT: usize = 256;

/// What a bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Client → real server on a NAT connection.
    NatIn,
    /// Real server → client on a NAT connection.
    NatReply,
    /// Client → real server by direct routing.
    Dr,
    /// Client → real server through an IP tunnel.
    Tun,
}

/// Memory that stays put for the process (engines borrow it for `'static`).
fn leak_zeroed(bytes: usize) -> &'static mut [u8] {
    // Anonymous memory with transparent huge pages requested: page-table walks are what a
    // million-flow table pays for first.
    let len = bytes.next_multiple_of(2 << 20);
    // SAFETY: a fresh private anonymous mapping of `len` bytes, never unmapped; the slice is
    // the only reference to it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert!(p != libc::MAP_FAILED, "mmap of {len} bytes failed");
        libc::madvise(p, len, libc::MADV_HUGEPAGE);
        std::slice::from_raw_parts_mut(p.cast::<u8>(), len)
    }
}

/// The client of flow `i`: sequential addresses in 198.18.0.0/15, 128 ports each (2^24 flows).
pub fn client(i: usize, v6: bool) -> (IpAddr, u16) {
    let host = (i >> 7) as u32 & 0x1_FFFF;
    let port = 1024 + (i & 127) as u16;
    if v6 {
        (IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) | 0xc000_0000 | u128::from(host))), port)
    } else {
        (IpAddr::V4(Ipv4Addr::from(0xC612_0000 + host)), port)
    }
}

/// The virtual service's address.
pub fn vip(v6: bool) -> IpAddr {
    if v6 { "2001:db8::100".parse().unwrap() } else { IpAddr::V4(Ipv4Addr::new(198, 18, 255, 100)) }
}

/// Real server `n` (1..=256).
pub fn real(n: usize, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from((0x2001_0db8_0001u128 << 80) | n as u128))
    } else {
        IpAddr::V4(Ipv4Addr::from(0xC613_FE00 + n as u32))
    }
}

/// A frame built by etherparse: TCP with `flags` ("S", "SA", "A") or UDP, `payload` bytes.
pub fn frame(src: (IpAddr, u16), dst: (IpAddr, u16), tcp: Option<&str>, payload: usize) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]);
    let ip = match (src.0, dst.0) {
        (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    let data = vec![0x5au8; payload];
    let mut out = Vec::new();
    match tcp {
        Some(flags) => {
            let mut t = ip.tcp(src.1, dst.1, 1000, 64240);
            if flags.contains('S') {
                t = t.syn();
            }
            if flags.contains('A') {
                t = t.ack(1);
            }
            t.write(&mut out, &data).unwrap();
        }
        None => ip.udp(src.1, dst.1).write(&mut out, &data).unwrap(),
    }
    out
}

/// A neighbour table that knows everyone (a constant MAC), as a host's would after warm-up.
pub fn neighbours(_: IpAddr) -> Option<MacAddr> {
    Some(MacAddr([2, 0, 0, 0, 0, 9]))
}

/// An engine with one 16-server TCP service for `forward` (and a 256-server one on port 81),
/// over a table of `capacity` connections.
pub struct Lab {
    /// The engine.
    pub engine: Engine<'static, 256>,
    /// The service's key.
    pub key: ServiceKey,
    v6: bool,
    forward: Forward,
}

impl Lab {
    /// A fresh engine; `scheduler` for both services.
    pub fn new(forward: Forward, v6: bool, capacity: usize, scheduler: &str) -> Lab {
        let memory = leak_zeroed(ConnTable::footprint(capacity));
        let table = ConnTable::new(memory, capacity, 0x5eed).unwrap();
        let slots: &'static mut [ServiceSlot<256>] = Box::leak((0..2).map(|_| ServiceSlot::default()).collect());
        let config = EngineConfig {
            tunnel_v4: Some(Ipv4Addr::new(198, 18, 255, 1)),
            tunnel_v6: Some("2001:db8::1".parse().unwrap()),
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(table, slots, config).unwrap();
        let key = ServiceKey::new(IpProtocol::TCP, vip(v6), 80);
        for (port, servers) in [(80, 16), (81, 256)] {
            let k = ServiceKey::new(IpProtocol::TCP, vip(v6), port);
            engine.add_service(k, &ServiceConfig { scheduler, ..ServiceConfig::default() }).unwrap();
            for n in 1..=servers {
                let port = if forward == Forward::Nat { 8080 } else { port };
                let r = RealConfig {
                    addr: real(n, v6),
                    port,
                    forward,
                    weight: 1 + (n % 3) as u32,
                    ..RealConfig::default()
                };
                engine.add_real(&k, &r).unwrap();
            }
        }
        Lab { engine, key, v6, forward }
    }

    /// Processes one frame (copied into a buffer with headroom) at `now_ms`.
    pub fn send(&mut self, frame: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
        let mut storage = vec![0u8; HEADROOM + frame.len() + 64];
        storage[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let mut buf = PacketBuf::new(&mut storage, HEADROOM, frame.len()).unwrap();
        let v = self.engine.process(&mut buf, now_ms, &neighbours);
        (v, buf.data().to_vec())
    }

    /// Opens flows `0..n` to port 80 and brings each to ESTABLISHED (SYN, and for NAT the
    /// server's SYN-ACK, then the client's ACK); returns each flow's real server.
    pub fn open(&mut self, n: usize) -> Vec<(IpAddr, u16)> {
        let v6 = self.v6;
        let mut reals = Vec::with_capacity(n);
        for i in 0..n {
            let c = client(i, v6);
            let (v, out) = self.send(&frame(c, (vip(v6), 80), Some("S"), 0), 0);
            assert!(matches!(v, Verdict::Transmit { .. }), "flow {i}: {v:?}");
            let Verdict::Transmit { next_hop, .. } = v else { unreachable!() };
            // NAT: the rewritten destination port; DR and TUN keep the service's.
            let port = if self.forward == Forward::Nat {
                vs_proto::wire::Summary::from_ethernet(&out).unwrap().ports.map_or(80, |p| p.1)
            } else {
                80
            };
            let real = (next_hop, port);
            if self.forward == Forward::Nat {
                self.send(&frame(real, c, Some("SA"), 0), 0);
            }
            self.send(&frame(c, (vip(v6), 80), Some("A"), 0), 0);
            reals.push(real);
        }
        reals
    }

    /// The frames of `case` for flows `0..n` (6 payload bytes: a 64-byte IPv4 frame), in a
    /// random order (a fixed shuffle) so that consecutive packets hit unrelated table lines.
    pub fn frames(&self, case: Case, reals: &[(IpAddr, u16)]) -> Vec<Vec<u8>> {
        let v6 = self.v6;
        let mut order: Vec<usize> = (0..reals.len()).collect();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        order
            .into_iter()
            .map(|i| match case {
                Case::NatReply => frame(reals[i], client(i, v6), Some("A"), 6),
                _ => frame(client(i, v6), (vip(v6), 80), Some("A"), 6),
            })
            .collect()
    }
}

/// Frames laid out one per [`SLOT`] with headroom, for `process_burst`.
pub struct Burst {
    storage: Vec<u8>,
    lens: Vec<usize>,
}

impl Burst {
    /// Room for `n` frames.
    pub fn new(n: usize) -> Burst {
        Burst { storage: vec![0; n * SLOT], lens: vec![0; n] }
    }

    /// Copies `frames` in and processes them as one burst.
    pub fn run(&mut self, engine: &mut Engine<'static, 256>, frames: &[Vec<u8>], verdicts: &mut [Verdict]) -> usize {
        for ((chunk, f), len) in self.storage.chunks_exact_mut(SLOT).zip(frames).zip(self.lens.iter_mut()) {
            chunk[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            *len = f.len();
        }
        let mut bufs: heapless::Vec<PacketBuf<'_>, 64> = heapless::Vec::new();
        for (chunk, len) in self.storage.chunks_exact_mut(SLOT).zip(&self.lens).take(frames.len()) {
            let _ = bufs.push(PacketBuf::new(chunk, HEADROOM, *len).unwrap());
        }
        engine.process_burst(&mut bufs, 1, &neighbours, verdicts)
    }
}

/// The baseline: the same NAT done the straightforward way with well-known crates — the flow
/// found in a `std::collections::HashMap` keyed by the 5-tuple, the frame decoded and the
/// headers re-encoded by etherparse with both checksums recomputed in full.
pub struct Baseline {
    flows: std::collections::HashMap<FiveTuple, (IpAddr, u16)>,
}

/// Protocol, source address and port, destination address and port.
type FiveTuple = (u8, IpAddr, u16, IpAddr, u16);

impl Baseline {
    /// The flows of a lab (client i → its real server).
    pub fn new(reals: &[(IpAddr, u16)], v6: bool) -> Baseline {
        let flows =
            reals.iter().enumerate().map(|(i, r)| ((6u8, client(i, v6).0, client(i, v6).1, vip(v6), 80), *r)).collect();
        Baseline { flows }
    }

    /// NAT one IPv4 frame in place; false when it is not a known flow's.
    pub fn nat(&self, buf: &mut [u8]) -> bool {
        let (key, ip_len, total) = {
            let Ok(sliced) = etherparse::SlicedPacket::from_ethernet(buf) else { return false };
            let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(tcp))) =
                (sliced.net, sliced.transport)
            else {
                return false;
            };
            let key = (
                6u8,
                IpAddr::V4(ip.header().source_addr()),
                tcp.source_port(),
                IpAddr::V4(ip.header().destination_addr()),
                tcp.destination_port(),
            );
            (key, ip.header().slice().len(), usize::from(ip.header().total_len()))
        };
        let Some(&(IpAddr::V4(real), port)) = self.flows.get(&key) else { return false };
        let (ip_start, tcp_start, end) = (14, 14 + ip_len, 14 + total);
        let Ok((mut ip, _)) = etherparse::Ipv4Header::from_slice(&buf[ip_start..]) else { return false };
        let Ok((mut tcp, _)) = etherparse::TcpHeader::from_slice(&buf[tcp_start..end]) else { return false };
        let payload_start = tcp_start + tcp.header_len();
        ip.destination = real.octets();
        ip.time_to_live -= 1;
        ip.header_checksum = ip.calc_header_checksum();
        tcp.destination_port = port;
        let Ok(ck) = tcp.calc_checksum_ipv4(&ip, &buf[payload_start..end]) else { return false };
        tcp.checksum = ck;
        let ip_bytes = ip.to_bytes();
        buf[ip_start..ip_start + ip_bytes.len()].copy_from_slice(&ip_bytes);
        let tcp_bytes = tcp.to_bytes();
        buf[tcp_start..tcp_start + tcp_bytes.len()].copy_from_slice(&tcp_bytes);
        buf[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        buf[6..12].copy_from_slice(&EngineConfig::default().mac.0);
        true
    }
}
