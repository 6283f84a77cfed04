//! Classic BPF programs, assembled at run time from the configuration: the socket filter that
//! copies up only the frames vsd handles, and the PACKET_FANOUT program that sends both
//! directions of a connection to the same packet thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// Opcodes (linux/filter.h, linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const LD_H_IND: u16 = 0x48;
const LDX_B_MSH: u16 = 0xb1;
const JEQ_K: u16 = 0x15;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;
const RET_A: u16 = 0x16;
const ALU_XOR_X: u16 = 0xac;
const ALU_MUL_K: u16 = 0x24;
const ALU_RSH_K: u16 = 0x74;
const TAX: u16 = 0x07;

/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: the skb's protocol (EtherType), in host order.
const SKF_AD_PROTOCOL: u32 = 0xffff_f000;

/// Bytes a frame may be copied up with: all of it.
const ACCEPT: u32 = 0x0004_0000;

/// Ethernet offsets (tags are stripped by the kernel before packet sockets see a frame).
const ETHERTYPE: u32 = 12;
const L3: u32 = 14;

/// An assembled program.
#[derive(Debug, Clone)]
pub(crate) struct Program(Vec<libc::sock_filter>);

impl Program {
    /// The instructions, as `SO_ATTACH_FILTER` takes them.
    pub(crate) fn instructions(&self) -> &[libc::sock_filter] {
        &self.0
    }
}

/// What the socket filter lets through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    /// Virtual service addresses: packets to them, and ARP / neighbour solicitations for them.
    pub(crate) vips: Vec<IpAddr>,
    /// NAT real servers: packets from them (replies to clients).
    pub(crate) nat_reals: Vec<IpAddr>,
}

/// A tiny assembler: forward jumps to labels, resolved when the program is finished.
#[derive(Default)]
struct Asm {
    code: Vec<(u16, Target, Target, u32)>,
    labels: Vec<Option<usize>>,
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Skip(u8),
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn place(&mut self, label: usize) {
        self.labels[label] = Some(self.code.len());
    }
    fn op(&mut self, code: u16, k: u32) {
        self.code.push((code, Target::Next, Target::Next, k));
    }
    fn jeq(&mut self, k: u32, t: Target, f: Target) {
        self.code.push((JEQ_K, t, f, k));
    }
    /// Jumps to `label` (at any distance) when A == k.
    fn jeq_far(&mut self, k: u32, label: usize) {
        self.jeq(k, Target::Next, Target::Skip(1));
        self.jump(label);
    }
    /// Jumps to `label` (at any distance) when A != k.
    fn jne_far(&mut self, k: u32, label: usize) {
        self.jeq(k, Target::Skip(1), Target::Next);
        self.jump(label);
    }
    fn jump(&mut self, label: usize) {
        self.code.push((JA, Target::Next, Target::Next, u32::MAX - u32::try_from(label).unwrap_or(0)));
    }
    /// Accept if the 4 words at `offset` are `addr` (falls through otherwise).
    fn accept_if_v6(&mut self, offset: u32, addr: Ipv6Addr) {
        let o = addr.octets();
        for (i, chunk) in o.chunks(4).enumerate() {
            let word = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            self.op(LD_W_ABS, offset + 4 * i as u32);
            // Skip the remaining loads and compares plus the return on a mismatch.
            let rest = u8::try_from(2 * (3 - i) + 1).unwrap_or(0);
            self.jeq(word, Target::Next, Target::Skip(rest));
        }
        self.op(RET_K, ACCEPT);
    }
    fn accept_if_v4(&mut self, offset: u32, addr: Ipv4Addr) {
        self.op(LD_W_ABS, offset);
        self.jeq(u32::from(addr), Target::Next, Target::Skip(1));
        self.op(RET_K, ACCEPT);
    }
    fn finish(self) -> Result<Program, String> {
        let mut out = Vec::with_capacity(self.code.len());
        for (at, (code, t, f, k)) in self.code.iter().enumerate() {
            let resolve = |target: &Target| -> Result<u32, String> {
                match *target {
                    Target::Next => Ok(0),
                    Target::Skip(n) => Ok(u32::from(n)),
                }
            };
            let (jt, jf) = (resolve(t)?, resolve(f)?);
            let k = if *code == JA {
                let label = (u32::MAX - k) as usize;
                let to = self.labels[label].ok_or("unplaced label")?;
                u32::try_from(to - at - 1).map_err(|_| "jump too far".to_owned())?
            } else {
                *k
            };
            out.push(libc::sock_filter {
                code: *code,
                jt: u8::try_from(jt).map_err(|_| "conditional jump too far")?,
                jf: u8::try_from(jf).map_err(|_| "conditional jump too far")?,
                k,
            });
        }
        if out.len() > 4096 {
            return Err(format!("filter of {} instructions exceeds the kernel's 4096", out.len()));
        }
        Ok(Program(out))
    }
}

fn v4s(addrs: &[IpAddr]) -> impl Iterator<Item = Ipv4Addr> + '_ {
    addrs.iter().filter_map(|a| if let IpAddr::V4(v) = a { Some(*v) } else { None })
}

fn v6s(addrs: &[IpAddr]) -> impl Iterator<Item = Ipv6Addr> + '_ {
    addrs.iter().filter_map(|a| if let IpAddr::V6(v) = a { Some(*v) } else { None })
}

/// The socket filter: IPv4 and IPv6 packets to a VIP or from a NAT real server, ARP for a VIP,
/// and neighbour solicitations for an IPv6 VIP. Everything else stays with the kernel alone.
pub(crate) fn socket_filter(sel: &Selection) -> Result<Program, String> {
    let mut a = Asm::default();
    let (v4, v6, arp, reject) = (a.label(), a.label(), a.label(), a.label());
    a.op(LD_H_ABS, ETHERTYPE);
    a.jeq_far(0x0800, v4);
    a.jeq_far(0x86dd, v6);
    a.jeq_far(0x0806, arp);
    a.jump(reject);

    a.place(v4);
    for vip in v4s(&sel.vips) {
        a.accept_if_v4(L3 + 16, vip);
    }
    for real in v4s(&sel.nat_reals) {
        a.accept_if_v4(L3 + 12, real);
    }
    a.jump(reject);

    a.place(v6);
    for vip in v6s(&sel.vips) {
        a.accept_if_v6(L3 + 24, vip);
    }
    for real in v6s(&sel.nat_reals) {
        a.accept_if_v6(L3 + 8, real);
    }
    // Neighbour solicitation (ICMPv6 type 135 right after the fixed header) for a VIP.
    let not_ns = a.label();
    a.op(LD_B_ABS, L3 + 6);
    a.jne_far(58, not_ns);
    a.op(LD_B_ABS, L3 + 40);
    a.jne_far(135, not_ns);
    for vip in v6s(&sel.vips) {
        a.accept_if_v6(L3 + 48, vip);
    }
    a.place(not_ns);
    a.jump(reject);

    a.place(arp);
    for vip in v4s(&sel.vips) {
        a.accept_if_v4(L3 + 24, vip);
    }

    a.place(reject);
    a.op(RET_K, 0);
    a.finish()
}

/// The fanout program (`PACKET_FANOUT_CBPF`): hashes the client's address and port, which a packet to a VIP carries
/// as its source and a NAT reply as its destination, so both directions of a connection reach
/// the packet thread that owns it. The kernel takes the result modulo the group's size.
pub(crate) fn fanout_program(vips: &[IpAddr]) -> Result<Program, String> {
    let mut a = Asm::default();
    let (v4, v6, other) = (a.label(), a.label(), a.label());
    // The fanout program runs before the link header is pushed back: offsets start at the IP
    // header and the EtherType comes from the skb (an ancillary load).
    const L3: u32 = 0;
    a.op(LD_W_ABS, SKF_AD_PROTOCOL);
    a.jeq_far(0x0800, v4);
    a.jeq_far(0x86dd, v6);
    a.jump(other);

    // IPv4: the client is the source of a packet to a VIP, the destination of anything else
    // (a NAT reply).
    a.place(v4);
    let (v4_src, v4_dst) = (a.label(), a.label());
    a.op(LD_W_ABS, L3 + 16);
    for vip in v4s(vips) {
        a.jeq_far(u32::from(vip), v4_src);
    }
    a.jump(v4_dst);
    a.place(v4_src);
    hash_client(&mut a, Port::AfterHeader(L3), L3 + 12);
    a.place(v4_dst);
    hash_client(&mut a, Port::AfterHeader(L3 + 2), L3 + 16);

    a.place(v6);
    let (v6_src, v6_dst) = (a.label(), a.label());
    // Only the destination's last word is compared: enough to tell VIPs apart in practice,
    // and a wrong guess costs only a less even spread, never a wrong thread for a connection
    // (the same rule applies to both of its directions).
    a.op(LD_W_ABS, L3 + 36);
    for vip in v6s(vips) {
        let o = vip.octets();
        a.jeq_far(u32::from_be_bytes([o[12], o[13], o[14], o[15]]), v6_src);
    }
    a.jump(v6_dst);
    // The last word of the address ^ the port (straight after the fixed header).
    a.place(v6_src);
    hash_client(&mut a, Port::At(L3 + 40), L3 + 20);
    a.place(v6_dst);
    hash_client(&mut a, Port::At(L3 + 42), L3 + 36);

    a.place(other);
    a.op(RET_K, 0);
    a.finish()
}

/// Where a client's port is: after the IPv4 header (its length from the first byte), or at a
/// fixed offset.
enum Port {
    AfterHeader(u32),
    At(u32),
}

/// Returns a hash of the client: the address word at `addr` XOR the port.
fn hash_client(a: &mut Asm, port: Port, addr: u32) {
    match port {
        Port::AfterHeader(offset) => {
            a.op(LDX_B_MSH, 0);
            a.op(LD_H_IND, offset);
        }
        Port::At(offset) => a.op(LD_H_ABS, offset),
    }
    a.op(TAX, 0);
    a.op(LD_W_ABS, addr);
    a.op(ALU_XOR_X, 0);
    mix(a);
}

/// Spreads sequential clients over the group: Fibonacci hashing of the 32-bit value in A.
fn mix(a: &mut Asm) {
    a.op(ALU_MUL_K, 0x9e37_79b1);
    a.op(ALU_RSH_K, 16);
    a.op(RET_A, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic BPF interpreter for the opcodes assembled here (out-of-bounds loads end the
    /// program with 0, as the kernel's do). `protocol` is the skb's EtherType.
    fn run(p: &Program, packet: &[u8], protocol: u16) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let load = |at: u32, n: usize| -> Option<u32> {
            if at == SKF_AD_PROTOCOL {
                return Some(u32::from(protocol));
            }
            let b = packet.get(at as usize..at as usize + n)?;
            Some(b.iter().fold(0u32, |acc, v| acc << 8 | u32::from(*v)))
        };
        loop {
            let i = p.instructions()[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    a = match load(i.k, 4) {
                        Some(v) => v,
                        None => return 0,
                    }
                }
                LD_H_ABS => {
                    a = match load(i.k, 2) {
                        Some(v) => v,
                        None => return 0,
                    }
                }
                LD_B_ABS => {
                    a = match load(i.k, 1) {
                        Some(v) => v,
                        None => return 0,
                    }
                }
                LD_H_IND => {
                    a = match load(x + i.k, 2) {
                        Some(v) => v,
                        None => return 0,
                    }
                }
                LDX_B_MSH => {
                    x = match load(i.k, 1) {
                        Some(v) => (v & 0xf) * 4,
                        None => return 0,
                    }
                }
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                JA => pc += i.k as usize,
                RET_K => return i.k,
                RET_A => return a,
                ALU_XOR_X => a ^= x,
                ALU_MUL_K => a = a.wrapping_mul(i.k),
                ALU_RSH_K => a >>= i.k,
                TAX => x = a,
                other => panic!("opcode {other:#x} not interpreted"),
            }
        }
    }

    fn ipv4_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0; 16]);
        f
    }

    fn arp_for(target: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 198, 18, 0, 1]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f
    }

    fn ipv6_frame(src: Ipv6Addr, dst: Ipv6Addr, next: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0];
        f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        f.extend_from_slice(&[next, 255]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(l4);
        f
    }

    fn selection() -> Selection {
        Selection {
            vips: vec![IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)), "2001:db8::100".parse().unwrap()],
            nat_reals: vec![IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)), "2001:db8:1::1".parse().unwrap()],
        }
    }

    #[test]
    fn the_filter_takes_exactly_what_vsd_handles() {
        let f = socket_filter(&selection()).unwrap();
        let take = |frame: &[u8]| run(&f, frame, 0) != 0;
        assert!(take(&ipv4_frame([198, 18, 0, 1], [198, 18, 0, 100], 40000, 80)), "to the VIP");
        assert!(take(&ipv4_frame([198, 18, 1, 1], [198, 18, 0, 1], 80, 40000)), "a NAT reply");
        assert!(!take(&ipv4_frame([198, 18, 0, 1], [198, 18, 0, 254], 40000, 22)), "to the director itself");
        assert!(!take(&ipv4_frame([198, 18, 1, 2], [198, 18, 0, 1], 80, 40000)), "from another host");
        assert!(take(&arp_for([198, 18, 0, 100])), "ARP for the VIP");
        assert!(!take(&arp_for([198, 18, 0, 254])), "ARP for the director");
        let vip6: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let client6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert!(take(&ipv6_frame(client6, vip6, 6, &[0; 20])), "to the IPv6 VIP");
        assert!(take(&ipv6_frame("2001:db8:1::1".parse().unwrap(), client6, 6, &[0; 20])), "an IPv6 NAT reply");
        assert!(!take(&ipv6_frame(client6, "2001:db8::fe".parse().unwrap(), 6, &[0; 20])), "to the director");
        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
        ns.extend_from_slice(&vip6.octets());
        let solicited: Ipv6Addr = "ff02::1:ff00:100".parse().unwrap();
        assert!(take(&ipv6_frame(client6, solicited, 58, &ns)), "a solicitation for the VIP");
        ns[8..24].copy_from_slice(&client6.octets());
        assert!(!take(&ipv6_frame(client6, solicited, 58, &ns)), "a solicitation for someone else");
        assert!(!take(&[0u8; 10]), "a runt");
    }

    #[test]
    fn fanout_sends_both_directions_of_a_connection_to_one_thread() {
        let p = fanout_program(&selection().vips).unwrap();
        let mut threads = std::collections::BTreeSet::new();
        for port in 40000..40064u16 {
            // The program sees the packet from its IP header on.
            let request = ipv4_frame([198, 18, 0, 1], [198, 18, 0, 100], port, 80);
            let reply = ipv4_frame([198, 18, 1, 1], [198, 18, 0, 1], 80, port);
            let (a, b) = (run(&p, &request[14..], 0x0800) % 4, run(&p, &reply[14..], 0x0800) % 4);
            assert_eq!(a, b, "port {port}");
            threads.insert(a);
        }
        assert_eq!(threads.len(), 4, "64 client ports spread over 4 threads");
        let vip6: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let client6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let ports = |s: u16, d: u16| [s.to_be_bytes(), d.to_be_bytes()].concat();
        let request = ipv6_frame(client6, vip6, 6, &ports(40001, 80));
        let reply = ipv6_frame("2001:db8:1::1".parse().unwrap(), client6, 6, &ports(80, 40001));
        assert_eq!(run(&p, &request[14..], 0x86dd), run(&p, &reply[14..], 0x86dd));
    }

    #[test]
    fn filter_assembles_within_jump_ranges() {
        let sel = Selection {
            vips: (0..40)
                .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 0, i)))
                .chain(["2001:db8::1".parse().unwrap()])
                .collect(),
            nat_reals: (0..200).map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i))).collect(),
        };
        let p = socket_filter(&sel).unwrap();
        assert!(p.instructions().len() > 700);
        assert!(run(&p, &ipv4_frame([198, 18, 1, 199], [198, 18, 0, 1], 80, 1), 0) != 0, "the last real server");
        assert!(fanout_program(&sel.vips).is_ok());
    }
}
