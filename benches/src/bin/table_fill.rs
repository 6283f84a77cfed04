//! `table_fill [CAPACITY...]`: the table-fill experiment. For each capacity (default 8,192 and
//! 1,048,576), client pattern and seed, TCP connections are inserted one by one until the first
//! failure; prints the share of the stated capacity reached (100 % is the promise) and the
//! bytes of memory per connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vs_proto::conn::{ConnState, ConnTable, Forward, NewConn};
use vs_proto::wire::IpProtocol;

/// The clients users bring: random, sequential IPv4 and IPv6 addresses, one address with
/// sequential ports, CGNAT-like (8 addresses, 512-port blocks at scattered offsets).
fn client(pattern: usize, i: u32, seed: u64) -> (IpAddr, u16) {
    let mix = |x: u64| {
        let z = (x ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z ^ (z >> 29)
    };
    match pattern {
        0 => {
            let r = mix(u64::from(i));
            (IpAddr::V4(Ipv4Addr::from((r >> 32) as u32)), r as u16)
        }
        1 => (IpAddr::V4(Ipv4Addr::from(0xC612_0000u32.wrapping_add(i))), 40000),
        2 => (IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(i))), 40000),
        3 => (IpAddr::V4(Ipv4Addr::new(198, 18, 7, (i >> 16) as u8)), (i as u16).wrapping_add(1024)),
        _ => {
            let (block, port) = (i / 512, i % 512);
            let addr = Ipv4Addr::new(198, 19, ((block / 8) >> 8) as u8, (block % 8) as u8 + 8 * (block / 8 % 32) as u8);
            let base = 1024 + (mix(u64::from(block)) % 100) as u16 * 512;
            (IpAddr::V4(addr), base + port as u16)
        }
    }
}

const PATTERNS: [&str; 5] = ["random", "sequential-v4", "sequential-v6", "ports-of-one-address", "cgnat"];

fn main() {
    let capacities: Vec<usize> = {
        let given: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
        if given.is_empty() { vec![8192, 1 << 20] } else { given }
    };
    let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 255, 100));
    for capacity in capacities {
        let mut memory = vec![0u8; ConnTable::footprint(capacity)];
        println!(
            "capacity {capacity}: {:.1} bytes per connection all in",
            ConnTable::footprint(capacity) as f64 / capacity as f64
        );
        for (pattern, name) in PATTERNS.iter().enumerate() {
            let mut reached = Vec::new();
            for seed in [1u64, 2, 3] {
                memory.fill(0);
                let mut table = ConnTable::new(&mut memory, capacity, seed).unwrap();
                let mut n = 0u32;
                for i in 0..capacity as u32 {
                    let conn = NewConn {
                        proto: IpProtocol::TCP,
                        client: client(pattern, i, seed),
                        virt: (vip, 80),
                        real: (IpAddr::V4(Ipv4Addr::new(198, 19, 254, 1)), 8080),
                        forward: Forward::Nat,
                        dest: 0,
                        state: ConnState::Established,
                        expires: 1000,
                        template: false,
                    };
                    if table.insert(&conn).is_err() {
                        break;
                    }
                    n += 1;
                }
                reached.push(100.0 * f64::from(n) / capacity as f64);
            }
            let shown: Vec<String> = reached.iter().map(|p| format!("{p:.1} %")).collect();
            println!("  {name:22} seeds 1-3: {}", shown.join(", "));
        }
    }
}
