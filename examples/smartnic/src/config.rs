//! The firmware's compiled-in configuration: the director's identity, its neighbours, and the
//! virtual services with their real servers (NAT, direct routing and IP tunnels, IPv4 and
//! IPv6). At start the firmware writes it to standard error in the form a host can replay:
//! `# vsd replay OPTIONS`, then the services in `ipvsadm-save -n` form.

use core::fmt::Write;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vs_ffi::{VS_FWD_DR, VS_FWD_NAT, VS_FWD_TUN};

/// The director's MAC address.
pub(crate) const MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0f, 0x01];
/// Outer source addresses of IPv4 and IPv6 tunnels.
pub(crate) const TUNNEL_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 250);
pub(crate) const TUNNEL_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x250);
/// Egress MTU.
pub(crate) const MTU: u16 = 1500;
/// Connection table entries and service slots.
pub(crate) const MAX_CONNS: u32 = 4096;
pub(crate) const MAX_SERVICES: u32 = 8;
/// What `vs_engine_footprint` answers for these limits: the engine's static buffer. The
/// firmware checks it at every start and refuses to run on a mismatch (a library built with
/// other limits or layouts), printing the right value.
pub(crate) const ENGINE_FOOTPRINT: usize = 810_814;
/// The MAC of every next hop not in [`NEIGHBOURS`] (the clients' router).
pub(crate) const GATEWAY: [u8; 6] = [0x02, 0, 0, 0, 0x0f, 0xfe];

const fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

const fn v6(tail: u16, subnet: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, subnet, 0, 0, 0, 0, tail))
}

/// Real servers' MAC addresses (the next hops the firmware knows by name).
pub(crate) const NEIGHBOURS: [(IpAddr, [u8; 6]); 9] = [
    (v4(198, 18, 1, 1), [2, 0, 0, 0, 1, 1]),
    (v4(198, 18, 1, 2), [2, 0, 0, 0, 1, 2]),
    (v4(198, 18, 1, 3), [2, 0, 0, 0, 1, 3]),
    (v4(198, 18, 1, 4), [2, 0, 0, 0, 1, 4]),
    (v4(198, 18, 2, 1), [2, 0, 0, 0, 2, 1]),
    (v4(198, 18, 2, 2), [2, 0, 0, 0, 2, 2]),
    (v6(1, 1), [2, 0, 0, 0, 6, 1]),
    (v6(2, 1), [2, 0, 0, 0, 6, 2]),
    (v6(1, 2), [2, 0, 0, 0, 6, 3]),
];

/// A virtual service.
pub(crate) struct Service {
    pub(crate) tcp: bool,
    pub(crate) vip: IpAddr,
    pub(crate) port: u16,
    pub(crate) scheduler: &'static str,
    /// NUL-terminated for the C ABI.
    pub(crate) scheduler_c: &'static [u8],
    pub(crate) reals: &'static [Real],
}

/// A real server.
pub(crate) struct Real {
    pub(crate) addr: IpAddr,
    pub(crate) port: u16,
    pub(crate) forward: u8,
    pub(crate) weight: u32,
}

/// The services: NAT, DR and TUN, over IPv4 and IPv6, TCP and UDP.
pub(crate) const SERVICES: [Service; 5] = [
    Service {
        tcp: true,
        vip: v4(198, 18, 0, 100),
        port: 80,
        scheduler: "rr",
        scheduler_c: b"rr\0",
        reals: &[
            Real { addr: v4(198, 18, 1, 1), port: 8080, forward: VS_FWD_NAT, weight: 1 },
            Real { addr: v4(198, 18, 1, 2), port: 8080, forward: VS_FWD_NAT, weight: 2 },
        ],
    },
    Service {
        tcp: false,
        vip: v4(198, 18, 0, 100),
        port: 53,
        scheduler: "wlc",
        scheduler_c: b"wlc\0",
        reals: &[
            Real { addr: v4(198, 18, 1, 3), port: 53, forward: VS_FWD_DR, weight: 1 },
            Real { addr: v4(198, 18, 1, 4), port: 53, forward: VS_FWD_DR, weight: 1 },
        ],
    },
    Service {
        tcp: true,
        vip: v4(198, 18, 0, 101),
        port: 443,
        scheduler: "sh",
        scheduler_c: b"sh\0",
        reals: &[
            Real { addr: v4(198, 18, 2, 1), port: 443, forward: VS_FWD_TUN, weight: 1 },
            Real { addr: v4(198, 18, 2, 2), port: 443, forward: VS_FWD_TUN, weight: 1 },
        ],
    },
    Service {
        tcp: true,
        vip: v6(0x100, 0),
        port: 80,
        scheduler: "rr",
        scheduler_c: b"rr\0",
        reals: &[
            Real { addr: v6(1, 1), port: 8080, forward: VS_FWD_NAT, weight: 1 },
            Real { addr: v6(1, 2), port: 8080, forward: VS_FWD_NAT, weight: 1 },
        ],
    },
    Service {
        tcp: false,
        vip: v6(0x101, 0),
        port: 4789,
        scheduler: "wrr",
        scheduler_c: b"wrr\0",
        reals: &[Real { addr: v6(2, 1), port: 4789, forward: VS_FWD_TUN, weight: 1 }],
    },
];

/// `ADDR:PORT`, IPv6 in brackets.
struct Endpoint(IpAddr, u16);

impl core::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

struct Mac([u8; 6]);

impl core::fmt::Display for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Writes the configuration as `# vsd replay OPTIONS` and `ipvsadm-save -n` lines.
pub(crate) fn describe(out: &mut impl Write) -> core::fmt::Result {
    write!(out, "# vsd replay --mac {} --tun-src {TUNNEL_V4} --tun-src {TUNNEL_V6} --mtu {MTU}", Mac(MAC))?;
    write!(out, " --capacity {MAX_CONNS}")?;
    for (addr, mac) in NEIGHBOURS {
        write!(out, " --neigh {addr}={}", Mac(mac))?;
    }
    writeln!(out, " --gateway {}", Mac(GATEWAY))?;
    for s in &SERVICES {
        let flag = if s.tcp { "-t" } else { "-u" };
        writeln!(out, "-A {flag} {} -s {}", Endpoint(s.vip, s.port), s.scheduler)?;
        for r in s.reals {
            let method = match r.forward {
                VS_FWD_NAT => "-m",
                VS_FWD_DR => "-g",
                _ => "-i",
            };
            writeln!(
                out,
                "-a {flag} {} -r {} {method} -w {}",
                Endpoint(s.vip, s.port),
                Endpoint(r.addr, r.port),
                r.weight
            )?;
        }
    }
    Ok(())
}
