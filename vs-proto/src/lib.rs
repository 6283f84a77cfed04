//! `vs-proto`: the allocation-free packet core of the vs IPVS dataplane.
//!
//! Three modules, used in this order by a host (a raw-socket director, NIC firmware, a C
//! dataplane through `vs-ffi`):
//! - [`conn`]: the fixed-capacity connection table in memory the host gives once
//!   ([`conn::ConnTable::footprint`], [`conn::ConnTable::new`]), IPVS's TCP state machine and
//!   per-state timeouts;
//! - [`engine`]: virtual services and real servers (`ipvsadm -A` / `-a` as
//!   [`engine::Engine::add_service`] / [`engine::Engine::add_real`]), and the decision for every
//!   packet: [`engine::Engine::process`] rewrites the packet in place (NAT, direct routing, IP
//!   tunnel) and returns a [`engine::Verdict`] — transmit to a neighbour, pass to the host, or
//!   drop with a reason; [`engine::Engine::sweep`] expires connections with a work budget;
//! - [`wire`]: zero-copy views over Ethernet, VLAN, ARP, IPv4, IPv6, TCP, UDP and ICMP, the
//!   one-pass [`wire::Summary`] of a packet, checksums, in-place rewrites, encapsulation, and a
//!   frame builder ([`wire::Frame`]).
//!
//! Time is the host's (monotonic milliseconds passed to every call); the core never reads a
//! clock, never allocates, and never panics on a packet.
//!
//! # A NAT director in a few lines
//! ```
//! use core::net::IpAddr;
//! use vs_proto::conn::ConnTable;
//! use vs_proto::engine::{Engine, EngineConfig, RealConfig, ServiceConfig, ServiceKey, ServiceSlot, Verdict};
//! use vs_proto::wire::{Frame, IpProtocol, MacAddr, PacketBuf, Segment, Summary, TcpFlags};
//!
//! // Memory, sized once: the connection table in the host's bytes, and service slots (up to
//! // 16 real servers each). The seed keys the table's hash and the random schedulers; a real
//! // host takes it from the OS's random source.
//! let mut table_memory = vec![0u8; ConnTable::footprint(4096)];
//! let mut slots: Vec<ServiceSlot<16>> = (0..8).map(|_| ServiceSlot::default()).collect();
//! let config = EngineConfig { seed: 0x5eed_1234, ..EngineConfig::default() };
//! let mut engine = Engine::over_memory(&mut table_memory, 4096, &mut slots[..], config)?;
//!
//! // ipvsadm -A -t 198.18.0.100:80 -s rr; ipvsadm -a -t 198.18.0.100:80 -r 198.18.1.1:8080 -m
//! let vip: IpAddr = "198.18.0.100".parse()?;
//! let real: IpAddr = "198.18.1.1".parse()?;
//! let key = ServiceKey::new(IpProtocol::TCP, vip, 80);
//! engine.add_service(key, &ServiceConfig { scheduler: "rr", ..ServiceConfig::default() })?;
//! engine.add_real(&key, &RealConfig { addr: real, port: 8080, ..RealConfig::default() })?;
//!
//! // A client's SYN, received into a buffer with headroom (room for a tunnel header).
//! let client: IpAddr = "198.18.0.1".parse()?;
//! let frame = Frame {
//!     src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
//!     dst_mac: EngineConfig::default().mac,
//!     src: (client, 40000),
//!     dst: (vip, 80),
//!     ttl: 64,
//! };
//! let mut storage = [0u8; 256];
//! let len = frame.write(&mut storage[64..], &Segment::Tcp { flags: TcpFlags::SYN, seq: 1, ack: 0, payload: &[] })?;
//! let mut buf = PacketBuf::new(&mut storage, 64, len)?;
//!
//! // The host's neighbour table: where an address is on the link (and by which port).
//! let neighbours = |_: IpAddr| Some(MacAddr([2, 0, 0, 0, 0, 9]));
//! let verdict = engine.process(&mut buf, 0, &neighbours);
//! assert_eq!(verdict, Verdict::Transmit { next_hop: real, port: 0 });
//! let sent = Summary::from_ethernet(buf.data())?;
//! assert_eq!(engine.destination(&buf), Some((real, 8080)));
//! assert_eq!(sent.src, Some(client));
//!
//! // The connection, as `ipvsadm -L -c` lists it, and expiry with a work budget.
//! let (_, conn) = engine.connections().iter().next().ok_or("no connection")?;
//! assert_eq!((conn.client(), conn.virt(), conn.real()), ((client, 40000), (vip, 80), (real, 8080)));
//! assert_eq!(conn.state().name(), "SYN_RECV");
//! engine.sweep(61_000, 4096); // SYN_RECV times out after 60 s
//! assert!(engine.connections().is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The crate is `no_std`, links neither `std` nor `alloc`, contains no `unsafe` code, and is
//! written so that no input can make it panic: every slice access is checked (`clippy::indexing_slicing`
//! is denied), no value derived from a packet is unwrapped, and arithmetic on packet-derived numbers
//! is checked or explicitly wrapping.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs, clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects,
        clippy::as_conversions,
        clippy::cast_possible_truncation,
    )
)]

pub mod conn;
pub mod engine;
pub mod wire;
