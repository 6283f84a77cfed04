//! `rdv`: weighted rendezvous (highest-random-weight) hashing, a scheduler IPVS does not have.
//!
//! Each client (its address, and its port with `VS_SCHED_FLAG_2` like sh-port) scores every
//! usable real server with a hash of (client, server address, server port), weighted by the
//! logarithmic method of Schindelhauer and Schomaker (score = -weight / ln(u), u the hash in
//! (0, 1)), and goes to the highest score. So a client keeps its server while that server
//! stays, adding or removing a server moves only the clients that win or lose it, and shares
//! follow the weights. Servers with weight 0 or over their upper threshold are skipped (a
//! client of a skipped server goes to its next-best server, as sh-fallback would).
//!
//! Unlike sh and mh it keeps no table: `schedule` is O(servers), nothing is rebuilt on
//! changes, and no state is kept per service.

use std::ffi::CStr;

use vs_plugin::export::PluginScheduler;
use vs_sched::{Dest, PacketInfo, SchedFlags, Scheduler};

/// The rendezvous scheduler.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    with_port: bool,
    seed: u64,
}

/// splitmix64's finaliser: a fast, well-mixed 64-bit hash step.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn addr_bits(addr: &std::net::IpAddr) -> u64 {
    match addr {
        std::net::IpAddr::V4(a) => u64::from(u32::from(*a)),
        std::net::IpAddr::V6(a) => {
            let v = u128::from(*a);
            mix((v >> 64) as u64) ^ (v as u64)
        }
    }
}

impl Rendezvous {
    /// A scheduler hashing the client address (and port when `with_port`), seeded.
    #[must_use]
    pub fn new(with_port: bool, seed: u64) -> Rendezvous {
        Rendezvous { with_port, seed }
    }

    /// The client's score for one server (higher wins).
    fn score(&self, client: u64, dest: &Dest) -> f64 {
        let h = mix(client ^ mix(addr_bits(&dest.addr) ^ (u64::from(dest.port) << 48) ^ self.seed));
        // u in (0, 1): the top 53 bits, shifted off zero.
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        -f64::from(dest.weight) / u.ln()
    }
}

impl Scheduler for Rendezvous {
    fn name(&self) -> &str {
        "rdv"
    }

    fn schedule(&mut self, dests: &[Dest], packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        let (addr, port) = if packet.inverse { (&packet.dst, packet.dport) } else { (&packet.src, packet.sport) };
        let mut client = mix(addr_bits(addr));
        if self.with_port {
            client = mix(client ^ u64::from(port));
        }
        dests
            .iter()
            .enumerate()
            .filter(|(_, d)| d.weight > 0 && !d.is_overloaded())
            .map(|(i, d)| (i, self.score(client, d)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }
}

impl PluginScheduler for Rendezvous {
    const NAME: &'static CStr = c"rdv";

    fn create(flags: SchedFlags, seed: u64) -> Self {
        Rendezvous::new(flags.contains(SchedFlags::SCHED2), seed)
    }
}

vs_plugin::export_scheduler!(Rendezvous);

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use vs_sched::DestId;

    fn dests(n: u32) -> Vec<Dest> {
        (0..n).map(|i| Dest::new(DestId(i), IpAddr::V4(Ipv4Addr::new(198, 18, 1, i as u8 + 1)), 80, 1)).collect()
    }

    fn client(i: u32) -> PacketInfo {
        let a = IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i));
        PacketInfo {
            proto: 6,
            src: a,
            dst: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)),
            sport: 1000,
            dport: 80,
            inverse: false,
        }
    }

    #[test]
    fn removing_a_server_moves_only_its_clients() {
        let mut r = Rendezvous::new(false, 7);
        let all = dests(5);
        let fewer: Vec<Dest> = all.iter().copied().filter(|d| d.id != DestId(2)).collect();
        for i in 0..2000 {
            let before = all[r.schedule(&all, &client(i), 0).unwrap()].id;
            let after = fewer[r.schedule(&fewer, &client(i), 0).unwrap()].id;
            if before != DestId(2) {
                assert_eq!(before, after, "client {i} moved although its server stayed");
            }
        }
    }

    #[test]
    fn shares_follow_weights() {
        let mut r = Rendezvous::new(false, 1);
        let mut d = dests(3);
        d[0].weight = 1;
        d[1].weight = 2;
        d[2].weight = 5;
        let mut counts = [0u32; 3];
        for i in 0..16000 {
            counts[r.schedule(&d, &client(i), 0).unwrap()] += 1;
        }
        // Expected 2000 / 4000 / 10000; allow 10 %.
        for (c, want) in counts.iter().zip([2000.0, 4000.0, 10000.0]) {
            assert!((f64::from(*c) - want).abs() < want * 0.1, "{counts:?}");
        }
    }
}
