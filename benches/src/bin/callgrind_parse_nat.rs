//! `callgrind_parse_nat vs-proto|etherparse [ITERATIONS] [LEN]`: run one parse + NAT workload
//! in a loop, for instruction counts under `valgrind --tool=callgrind` (stable on a noisy VM,
//! unlike time). `scripts/callgrind.sh` runs both and prints instructions per packet.

use std::hint::black_box;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("");
    let iterations: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let len: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    if which == "engine-nat" {
        return engine_nat(iterations);
    }
    let work: fn(&mut [u8]) -> bool = match which {
        "vs-proto" => vs_benches::vs_proto_parse_nat,
        "etherparse" => vs_benches::etherparse_parse_nat,
        "copy-only" => |_| true,
        "vs-proto-parse" => |b| vs_proto::wire::Summary::from_ethernet(b).is_ok(),
        _ => {
            eprintln!(
                "usage: callgrind_parse_nat vs-proto|vs-proto-parse|etherparse|copy-only|engine-nat [ITERATIONS] [LEN]"
            );
            return ExitCode::from(2);
        }
    };
    let original = vs_benches::frame(len);
    let mut buf = original.clone();
    let mut ok = 0u64;
    for _ in 0..iterations {
        buf.copy_from_slice(&original);
        ok += u64::from(work(black_box(&mut buf)));
    }
    println!("{which}: {ok}/{iterations} rewritten");
    ExitCode::SUCCESS
}

/// The engine's established-flow path: 4096 NAT connections are opened, then ACKs of those
/// flows go through `Engine::process` (parse, lookup, state, NAT rewrite, MACs), round robin.
/// Setup instructions are the same for every iteration count, so two runs give the per-packet
/// cost by difference (`scripts/callgrind.sh` does this).
fn engine_nat(iterations: u64) -> ExitCode {
    use std::net::{IpAddr, Ipv4Addr};
    use vs_proto::conn::{ConnTable, Forward};
    use vs_proto::engine::{Engine, EngineConfig, RealConfig, ServiceConfig, ServiceKey, ServiceSlot, Verdict};
    use vs_proto::wire::{IpProtocol, MacAddr, PacketBuf, TcpFlags};
    const FLOWS: usize = 4096;
    let mut memory = vec![0u8; ConnTable::footprint(FLOWS)];
    let table = ConnTable::new(&mut memory, FLOWS, 1).expect("memory fits");
    let mut slots: Vec<ServiceSlot<16>> = (0..4).map(|_| ServiceSlot::default()).collect();
    let mut engine: Engine<'_, 16> = Engine::new(table, &mut slots[..], EngineConfig::default()).expect("limits fit");
    let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
    let key = ServiceKey::new(IpProtocol::TCP, vip, 80);
    engine.add_service(key, &ServiceConfig { scheduler: "wlc", ..ServiceConfig::default() }).expect("service");
    for n in 1..=16u8 {
        let real = RealConfig {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 1, n)),
            port: 8080,
            forward: Forward::Nat,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
        };
        engine.add_real(&key, &real).expect("real");
    }
    let neighbours = |_: IpAddr| Some(MacAddr([2, 0, 0, 0, 0, 9]));
    let client = |i: usize| (IpAddr::V4(Ipv4Addr::from(0xC613_0000u32 + i as u32)), 1024 + (i % 60000) as u16);
    let syns: Vec<Vec<u8>> =
        (0..FLOWS).map(|i| vs_benches::tcp_frame(client(i), (vip, 80), TcpFlags::SYN, 0)).collect();
    let acks: Vec<Vec<u8>> =
        (0..FLOWS).map(|i| vs_benches::tcp_frame(client(i), (vip, 80), TcpFlags::ACK, 6)).collect();
    let mut storage = vec![0u8; 256];
    for f in &syns {
        storage[64..64 + f.len()].copy_from_slice(f);
        let mut buf = PacketBuf::new(&mut storage, 64, f.len()).expect("fits");
        engine.process(&mut buf, 0, &neighbours);
    }
    let mut ok = 0u64;
    for i in 0..iterations as usize {
        let f = &acks[i % FLOWS];
        storage[64..64 + f.len()].copy_from_slice(f);
        let mut buf = PacketBuf::new(&mut storage, 64, f.len()).expect("fits");
        ok += u64::from(matches!(engine.process(black_box(&mut buf), 1, &neighbours), Verdict::Transmit { .. }));
    }
    println!("engine-nat: {ok}/{iterations} transmitted, {} connections", engine.connections().len());
    ExitCode::SUCCESS
}
