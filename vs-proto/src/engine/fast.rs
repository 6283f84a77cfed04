//! The fast path: packets of established connections, and packets that belong to no service.
//!
//! Most packets a director sees are the middle of connections it already knows: plain IPv4 or
//! IPv6 (no options, no extension headers, not fragmented) TCP segments with ACK and none of
//! SYN, FIN, RST, or UDP datagrams. For those the IPVS state machine does not move (ESTABLISHED
//! stays ESTABLISHED in every direction and table, UDP stays UDP), so the work is: read the few
//! fields the decision needs, one table probe, re-arm the timer, count, rewrite with one
//! checksum delta, address the frame from a per-destination neighbour cache.
//!
//! Anything else returns `None` before a byte is changed, and the general path (the rest of
//! this module) handles the packet from the start, so both paths give the same result. The
//! fast path also answers "not ours" early: an address filter over every virtual address and
//! real-server address says when a packet can match no connection and no service, and such a
//! packet is passed to the host after reading its two addresses.
//!
//! Unlike the rest of the engine, this file works on packet bytes and on values read from
//! them, so the crate's lint against unchecked arithmetic applies here again.
#![deny(clippy::arithmetic_side_effects)]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{DropReason, Engine, Flow, ServiceSlot, Verdict, defence, expired, ticks, timeout_ticks};
use crate::conn::table::{RawKey, addr_word, octets};
use crate::conn::{Conn, ConnIndex, ConnState, Direction, Forward, TableMemory};
use crate::wire::encap::encapsulate_at;
use crate::wire::{Checksum, ChecksumCaps, IpProtocol, MacAddr, PacketBuf, TcpFlags, checksum};

/// Where the fields of a plain TCP/UDP packet are.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plain {
    /// Offset of the IP header.
    l3: usize,
    /// IPv6 (else IPv4).
    v6: bool,
    /// End of the IP packet.
    end: usize,
    /// TCP or UDP.
    proto: u8,
    /// The TCP flags byte (0 for UDP).
    flags: u8,
    /// Source and destination addresses in the table's form (IPv4 in the first 4 bytes),
    /// read as little-endian numbers.
    src: u128,
    dst: u128,
    sport: u16,
    dport: u16,
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// An IPv4 address's 4 bytes in the table's form.
fn v4_word(bytes: [u8; 4]) -> u128 {
    u128::from(u32::from_le_bytes(bytes))
}

/// An address from the table's form.
fn word_addr(word: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(word.to_le_bytes()))
    } else {
        IpAddr::V4(Ipv4Addr::from((word as u32).to_le_bytes()))
    }
}

/// Reads a plain packet: Ethernet without VLAN tags (or bare IP), IPv4 without options or
/// IPv6 without extension headers, not a fragment, TTL above 1, a whole TCP or UDP header
/// within the packet. `None` for everything else (the general path takes it). Fixed-size views
/// are taken once, so the fields are read at constant offsets.
#[inline(always)]
pub(super) fn plain(data: &[u8], ethernet: bool) -> Option<Plain> {
    let l3 = if ethernet {
        let eth = data.first_chunk::<14>()?;
        match [eth[12], eth[13]] {
            [0x08, 0x00] | [0x86, 0xDD] => 14,
            _ => return None,
        }
    } else {
        0
    };
    let ip = data.get(l3..)?;
    let (v6, header_len, total, proto, src, dst) = if let Some(h) = ip.first_chunk::<20>()
        && h[0] == 0x45
    {
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        // Not a fragment (offset 0, no MF), TTL above 1.
        if (h[6] & 0x3F) | h[7] != 0 || h[8] <= 1 {
            return None;
        }
        (false, 20, total, h[9], v4_word([h[12], h[13], h[14], h[15]]), v4_word([h[16], h[17], h[18], h[19]]))
    } else {
        let h = ip.first_chunk::<40>()?;
        if h[0] >> 4 != 6 || h[7] <= 1 {
            return None;
        }
        let total = 40 + usize::from(u16::from_be_bytes([h[4], h[5]]));
        let word = |at: usize| ip.get(at..).and_then(|b| b.first_chunk::<16>()).map(|b| u128::from_le_bytes(*b));
        (true, 40, total, h[6], word(8)?, word(24)?)
    };
    if total > ip.len() {
        return None;
    }
    let segment = ip.get(header_len..total)?;
    let flags = match proto {
        6 => {
            let tcp = segment.first_chunk::<20>()?;
            let offset = usize::from(tcp[12] >> 4) * 4;
            if offset < 20 || offset > segment.len() {
                return None;
            }
            tcp[13]
        }
        17 => {
            let udp = segment.first_chunk::<8>()?;
            let length = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
            if length < 8 || length > segment.len() {
                return None;
            }
            0
        }
        _ => return None,
    };
    let ports = segment.first_chunk::<4>()?;
    Some(Plain {
        l3,
        v6,
        end: l3.saturating_add(total),
        proto,
        flags,
        src,
        dst,
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
    })
}

impl Plain {
    /// The key an in-lookup hashes (the client is the source).
    pub(super) fn source_key(&self) -> RawKey {
        RawKey { proto: self.proto, v6: self.v6, caddr: self.src, cport: self.sport }
    }

    /// The key an out-lookup hashes (the client is the destination).
    pub(super) fn destination_key(&self) -> RawKey {
        RawKey { proto: self.proto, v6: self.v6, caddr: self.dst, cport: self.dport }
    }

    /// The destination address.
    fn dst_addr(&self) -> IpAddr {
        word_addr(self.dst, self.v6)
    }

    /// True for a packet that opens a connection when it matches none: a TCP SYN without
    /// RST, or any UDP datagram.
    fn opens(&self) -> bool {
        self.proto == 17 || self.flags & (TCP_SYN | TCP_RST) == TCP_SYN
    }

    /// The source address.
    fn src_addr(&self) -> IpAddr {
        word_addr(self.src, self.v6)
    }

    /// The general path's view of the packet.
    fn flow(&self) -> Flow {
        Flow {
            proto: IpProtocol(self.proto),
            src: (self.src_addr(), self.sport),
            dst: (self.dst_addr(), self.dport),
            flags: TcpFlags::from_bits_retain(self.flags),
            length: self.end.saturating_sub(self.l3),
        }
    }

    /// True for a segment that cannot move an established connection's state: ACK without
    /// SYN, FIN or RST (or any UDP datagram).
    fn keeps_state(&self) -> bool {
        self.proto == 17 || self.flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK) == TCP_ACK
    }
}

/// A Bloom-style filter over addresses (one bit of 4,096 per address hash): no false
/// negatives, so an address whose bit is clear is certainly not in the set. With a few hundred
/// real servers about one stranger in twenty still takes the general path.
#[derive(Debug, Clone, Copy)]
pub(super) struct AddrFilter([u64; 64]);

impl Default for AddrFilter {
    fn default() -> Self {
        AddrFilter([0; 64])
    }
}

impl AddrFilter {
    fn bit(addr: u128) -> usize {
        let (w0, w1) = (addr as u64, (addr >> 64) as u64);
        ((w0 ^ w1.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize
    }

    pub(super) fn add(&mut self, addr: IpAddr) {
        let bit = Self::bit(addr_word(&octets(addr)));
        if let Some(word) = self.0.get_mut(bit / 64) {
            *word |= 1 << (bit % 64);
        }
    }

    fn may_hold(&self, addr: u128) -> bool {
        let bit = Self::bit(addr);
        self.0.get(bit / 64).is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }
}

/// What the fast path may skip for the current configuration.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FastFilters {
    /// Every service's virtual address (deleted services still draining included).
    vips: AddrFilter,
    /// Every real server's address (removed ones still referenced included).
    reals: AddrFilter,
    /// A firewall-mark service exists: its connections may have any virtual address.
    any_fwmark: bool,
}

/// Entries of the per-destination neighbour cache (direct-mapped by real-server slot).
pub(super) const NEIGHBOUR_CACHE: usize = 64;
/// How long a cached neighbour is used before the host is asked again (ticks of 16 ms: 1 s).
const NEIGHBOUR_TTL_TICKS: u32 = 64;

/// One cached neighbour: the destination slot it is for (+1; 0 = empty), its MAC and port, and
/// the tick until which it is used.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CachedNeighbour {
    dest: u32,
    mac: MacAddr,
    port: u16,
    until: u32,
}

/// Where a connection sends its client's packets: its real server and method.
struct Destination {
    /// The real server's slot (service × D + slot).
    dest: u16,
    forward: Forward,
    addr: IpAddr,
    /// The address in the table's form (IPv4 in the first 4 bytes).
    addr_bytes: [u8; 16],
    port: u16,
}

impl Destination {
    fn of(conn: &Conn) -> Destination {
        let (addr, port) = conn.real();
        Destination { dest: conn.dest(), forward: conn.forward(), addr, addr_bytes: *conn.daddr_bytes(), port }
    }
}

/// The next hop of a packet the fast path sends: MAC and port, and a tunnel's outer source.
struct Route {
    outer: Option<IpAddr>,
    mac: MacAddr,
    port: u16,
}

impl<'a, const D: usize, M: TableMemory, S: AsRef<[ServiceSlot<D>]> + AsMut<[ServiceSlot<D>]>> Engine<'a, D, M, S> {
    /// Recomputes the fast path's filters from the service slots, and empties the neighbour
    /// cache (a changed real server may have a new next hop). Called after every change.
    pub(super) fn refresh_fast_path(&mut self) {
        let mut filters = FastFilters::default();
        for service in self.services.as_ref().iter().filter_map(|s| s.0.as_ref()) {
            filters.any_fwmark |= service.key.is_fwmark();
            filters.vips.add(service.key.addr);
            for real in service.reals.iter().flatten() {
                filters.reals.add(real.addr);
            }
        }
        self.filters = filters;
        self.flush_neighbours();
    }

    /// Forgets the cached neighbours of real servers, so that the next packet to each asks the
    /// host's [`Neighbours`](super::Neighbours) again. Hosts call this when their neighbour or
    /// route table changes; otherwise a cached entry is used for at most one second.
    pub fn flush_neighbours(&mut self) {
        self.neighbour_cache = [CachedNeighbour::default(); NEIGHBOUR_CACHE];
    }

    /// True when the checksum policy lets the fast path run: software updates on transmit
    /// and nothing to verify on receive, for every protocol (the default policy).
    fn fast_checksums(&self) -> bool {
        self.config.caps == ChecksumCaps::all(Checksum::Tx)
    }

    /// Whether a packet may be client → service (its destination may be a virtual address)
    /// and whether it may be a reply (its source may be a real server).
    pub(super) fn directions(&self, plain: &Plain) -> (bool, bool) {
        (self.filters.any_fwmark || self.filters.vips.may_hold(plain.dst), self.filters.reals.may_hold(plain.src))
    }

    /// The fast path for one packet. `Err` hands it, unchanged, to the general path, saying
    /// whether it may open a new connection that [`Engine::fast_new`] can take (the call is
    /// left to the caller: made from here, it costs the established path registers).
    pub(super) fn fast_path(
        &mut self,
        buf: &mut PacketBuf<'_>,
        plain: &Plain,
        mark: u32,
        now_ms: u64,
        neighbours: &impl super::Neighbours,
    ) -> Result<Verdict, bool> {
        if !self.fast_checksums() {
            return Err(false);
        }
        // The common case first: a client's packet on a known connection (the source filter
        // is only read when that fails).
        let to_vip = self.filters.any_fwmark || self.filters.vips.may_hold(plain.dst);
        let now = ticks(now_ms);
        let keeps_state = plain.keeps_state();
        if to_vip
            && keeps_state
            && let Some(index) = self.conns.lookup_in_raw(&plain.source_key(), plain.dst, plain.dport)
        {
            return self.fast_in(index, buf, plain, now, neighbours).ok_or(false);
        }
        let from_real = self.filters.reals.may_hold(plain.src);
        if !to_vip && !from_real {
            // No connection has this destination as its virtual address nor this source as
            // its real server, and no service has this destination: the host's packet.
            return Ok(self.pass());
        }
        if keeps_state
            && from_real
            && let Some(index) = self.conns.lookup_out_raw(&plain.destination_key(), plain.src, plain.sport)
        {
            return self.fast_out(index, buf, plain, now, neighbours).ok_or(false);
        }
        // Not a reply (its source is no real server's): perhaps a new connection.
        Err(to_vip && !from_real && plain.opens() && mark == 0)
    }

    /// Connection `index` with the state it keeps, if it is one `plain` cannot move
    /// (ESTABLISHED for TCP, UDP for UDP) and its timer has not run out.
    fn steady(&self, index: ConnIndex, plain: &Plain, now: u32) -> Option<(&Conn, ConnState)> {
        let conn = self.conns.get(index)?;
        let steady = if plain.proto == 6 { ConnState::Established } else { ConnState::Udp };
        (conn.state_index() == steady as u8 && !expired(conn.expires(), now)).then_some((conn, steady))
    }

    /// Client → real server on an established connection.
    fn fast_in(
        &mut self,
        index: ConnIndex,
        buf: &mut PacketBuf<'_>,
        plain: &Plain,
        now: u32,
        neighbours: &impl super::Neighbours,
    ) -> Option<Verdict> {
        let (conn, state) = self.steady(index, plain, now)?;
        let (dest, forward, real, real_addr, real_port) =
            (conn.dest(), conn.forward(), conn.real().0, *conn.daddr_bytes(), conn.real().1);
        let (service, slot) = self.decode(dest);
        if plain.proto == 17 && self.config.expire_nodest_conn && self.weight_of(service, slot) == Some(0) {
            // A datagram to a quiesced server reschedules (the general path does that).
            return None;
        }
        let outer_src = match forward {
            Forward::Tunnel => Some(self.tunnel_plan(buf, plain, real)?),
            _ => None,
        };
        let (mac, port) = self.cached_neighbour(dest, real, now, neighbours)?;
        // The server must be available; its counters move with the decision.
        let bytes = plain.end.saturating_sub(plain.l3);
        let svc = self.services.as_mut().get_mut(service)?.0.as_mut()?;
        let server = svc.reals.get_mut(slot)?.as_mut().filter(|r| r.available)?;
        // Decided: from here on the packet is changed and counted.
        server.stats.count_in(bytes);
        svc.stats.count_in(bytes);
        self.stats.total.count_in(bytes);
        let timeout = timeout_ticks(self.timeouts.of(state));
        if let Some(c) = self.conns.get_mut(index) {
            c.set_expires(now.wrapping_add(timeout));
        }
        let to = Destination { dest, forward, addr: real, addr_bytes: real_addr, port: real_port };
        Some(self.send_in(buf, plain, &to, Route { outer: outer_src, mac, port }))
    }

    /// A new connection (a TCP SYN or a UDP datagram that matched no entry, from an address
    /// that is no real server's) to a service without persistence or one-packet scheduling:
    /// scheduled, opened, moved to its first state and counted as the general path does, then
    /// sent by the fast rewrite (or, when that cannot send it, by the general one).
    pub(super) fn fast_new(
        &mut self,
        buf: &mut PacketBuf<'_>,
        plain: &Plain,
        now: u32,
        now_ms: u64,
        neighbours: &impl super::Neighbours,
    ) -> Option<Verdict> {
        // A UDP datagram only gets here after `fast_path`'s in-lookup missed; a SYN was not
        // looked up there (it cannot take the established path).
        if plain.proto != 17 && self.conns.lookup_in_raw(&plain.source_key(), plain.dst, plain.dport).is_some() {
            // A SYN on a known connection (retransmitted, or reusing the entry).
            return None;
        }
        let flow = plain.flow();
        let Some(service) = self.find_service(flow.proto, flow.dst, 0) else {
            return Some(self.pass());
        };
        let svc = self.services.as_ref().get(service)?.0.as_ref()?;
        if svc.persistence.is_some()
            || (svc.one_packet && plain.proto == 17)
            || defence::on(self.config.defence.drop_packet)
        {
            return None;
        }
        // From here on the scheduler has moved: the packet is decided here, whatever comes.
        let opened = self.pick(service, &flow, now_ms).and_then(|(slot, real)| {
            let port = if real.port == 0 { flow.dst.1 } else { real.port };
            self.open(service, slot, (real.addr, port), real.forward, &flow, now, None)
        });
        let index = match opened {
            Ok(index) => index,
            Err(reason) => {
                let summary = self.parse(buf)?;
                return Some(self.refuse_new(buf, &summary, reason, neighbours));
            }
        };
        let conn = *self.conns.get(index)?;
        let direction = if conn.no_output() { Direction::InputOnly } else { Direction::Input };
        self.set_state(index, self.next_state(conn.state(), &flow, direction), now);
        self.count(index, flow.length, true);
        let to = Destination::of(&conn);
        if let Some(route) = self.route(buf, plain, &to, now, neighbours) {
            return Some(self.send_in(buf, plain, &to, route));
        }
        let summary = self.parse(buf)?;
        Some(self.transmit_in(buf, &summary, &flow, conn.forward(), conn.real(), neighbours))
    }

    /// How the fast rewrite sends a packet to `to`: the neighbour, and for a tunnel the outer
    /// source. `None` (nothing changed) when only the general path can send it: a tunnel
    /// without a source of the server's family or over the MTU, a NAT or route across
    /// address families, an unknown neighbour.
    #[inline(always)]
    fn route(
        &mut self,
        buf: &PacketBuf<'_>,
        plain: &Plain,
        to: &Destination,
        now: u32,
        neighbours: &impl super::Neighbours,
    ) -> Option<Route> {
        let outer = match to.forward {
            Forward::Tunnel => Some(self.tunnel_plan(buf, plain, to.addr)?),
            _ if to.addr.is_ipv6() != plain.v6 => return None,
            _ => None,
        };
        let (mac, port) = self.cached_neighbour(to.dest, to.addr, now, neighbours)?;
        Some(Route { outer, mac, port })
    }

    /// Rewrites a client's packet for `to` along `route` (planned by [`Engine::route`]).
    /// The rewrites cannot fail on a packet `plain` accepted; should one, the packet is
    /// dropped, never handed half-changed to the general path.
    #[inline(always)]
    fn send_in(&mut self, buf: &mut PacketBuf<'_>, plain: &Plain, to: &Destination, route: Route) -> Verdict {
        let (ethernet, mac_src) = (self.config.ethernet, self.config.mac);
        let data = buf.data_mut();
        let rewritten = match to.forward {
            Forward::Nat => nat_rewrite(data, plain, false, &to.addr_bytes, to.port),
            _ => decrement_ttl(data, plain),
        };
        if rewritten.is_none() {
            return self.drop(DropReason::NoHeadroom);
        }
        let Some(outer) = route.outer else {
            address_frame(data, ethernet, mac_src, route.mac);
            return Verdict::Transmit { next_hop: to.addr, port: route.port };
        };
        let header = self.outer_header(buf.data(), plain.l3, plain.v6, outer, to.addr);
        if encapsulate_at(buf, plain.l3, plain.end, plain.v6, ethernet, &header).is_err() {
            return self.drop(DropReason::NoHeadroom);
        }
        address_frame(buf.data_mut(), ethernet, mac_src, route.mac);
        Verdict::Transmit { next_hop: to.addr, port: route.port }
    }

    /// Real server → client on an established NAT connection.
    fn fast_out(
        &mut self,
        index: ConnIndex,
        buf: &mut PacketBuf<'_>,
        plain: &Plain,
        now: u32,
        neighbours: &impl super::Neighbours,
    ) -> Option<Verdict> {
        let (conn, state) = self.steady(index, plain, now)?;
        if conn.forward() != Forward::Nat {
            return None;
        }
        let (dest, virt_addr, virt_port) = (conn.dest(), *conn.vaddr_bytes(), conn.vport());
        let client = plain.dst_addr();
        let neighbour = neighbours.lookup(client)?;
        let (service, slot) = self.decode(dest);
        let timeout = timeout_ticks(self.timeouts.of(state));
        if let Some(c) = self.conns.get_mut(index) {
            c.clear_no_output();
            c.set_expires(now.wrapping_add(timeout));
        }
        self.count_fast(service, slot, plain.end.saturating_sub(plain.l3), false);
        if nat_rewrite(buf.data_mut(), plain, true, &virt_addr, virt_port).is_none() {
            return Some(self.drop(DropReason::NoHeadroom));
        }
        address_frame(buf.data_mut(), self.config.ethernet, self.config.mac, neighbour.mac);
        Some(Verdict::Transmit { next_hop: client, port: neighbour.port })
    }

    /// The outer source of a tunnelled packet, if it can be sent whole (a tunnel source of
    /// the real server's family, the MTU, headroom); `None` lets the general path answer.
    fn tunnel_plan(&self, buf: &PacketBuf<'_>, plain: &Plain, real: IpAddr) -> Option<IpAddr> {
        let (outer, outer_len) = match real {
            IpAddr::V4(_) => (self.config.tunnel_v4.map(IpAddr::V4)?, 20),
            IpAddr::V6(_) => (self.config.tunnel_v6.map(IpAddr::V6)?, 40),
        };
        let fits = plain.end.saturating_sub(plain.l3).saturating_add(outer_len) <= usize::from(self.config.mtu)
            && buf.headroom() >= outer_len;
        fits.then_some(outer)
    }

    /// The neighbour for a real server: from the cache while fresh, else from the host.
    fn cached_neighbour(
        &mut self,
        dest: u16,
        addr: IpAddr,
        now: u32,
        neighbours: &impl super::Neighbours,
    ) -> Option<(MacAddr, u16)> {
        let key = u32::from(dest) + 1;
        let entry = self.neighbour_cache.get_mut(usize::from(dest) % NEIGHBOUR_CACHE)?;
        if entry.dest == key && !expired(entry.until, now) {
            return Some((entry.mac, entry.port));
        }
        let found = neighbours.lookup(addr)?;
        *entry = CachedNeighbour {
            dest: key,
            mac: found.mac,
            port: found.port,
            until: now.wrapping_add(NEIGHBOUR_TTL_TICKS),
        };
        Some((found.mac, found.port))
    }

    /// IPVS's per-real-server, per-service and global counters for one packet (nothing for a
    /// server that was removed: IPVS stops counting it).
    pub(super) fn count_fast(&mut self, service: usize, slot: usize, bytes: usize, inbound: bool) {
        let Some(svc) = self.services.as_mut().get_mut(service).and_then(|s| s.0.as_mut()) else {
            return;
        };
        let Some(Some(real)) = svc.reals.get_mut(slot) else { return };
        if !real.available {
            return;
        }
        if inbound {
            real.stats.count_in(bytes);
            svc.stats.count_in(bytes);
            self.stats.total.count_in(bytes);
        } else {
            real.stats.count_out(bytes);
            svc.stats.count_out(bytes);
            self.stats.total.count_out(bytes);
        }
    }
}

/// Sets the frame's MAC addresses (nothing for bare IP packets).
fn address_frame(data: &mut [u8], ethernet: bool, from: MacAddr, to: MacAddr) {
    if ethernet && let Some(macs) = data.first_chunk_mut::<12>() {
        let (dst, src) = macs.split_at_mut(6);
        dst.copy_from_slice(&to.0);
        src.copy_from_slice(&from.0);
    }
}

/// Decrements the TTL (with the IPv4 header checksum) or the hop limit; `plain` proved it is
/// above 1.
fn decrement_ttl(data: &mut [u8], plain: &Plain) -> Option<()> {
    let ip = data.get_mut(plain.l3..)?;
    if plain.v6 {
        let hops = ip.get_mut(7)?;
        *hops = hops.wrapping_sub(1);
    } else {
        let head = ip.first_chunk_mut::<20>()?;
        head[8] = head[8].wrapping_sub(1);
        let check = u16::from_be_bytes([head[10], head[11]]);
        // The TTL is the high byte of its 16-bit word: the word drops by 0x0100.
        [head[10], head[11]] = add_to_checksum(check, u64::from(!0x0100u16)).to_be_bytes();
    }
    Some(())
}

/// `~(~check + delta)` in one's-complement arithmetic; `delta` is a sum of `!old + new` words
/// of any width (16-bit words summed as 32- or 64-bit ones fold to the same value).
fn add_to_checksum(check: u16, delta: u64) -> u16 {
    // `delta` is a sum of at most a dozen 32-bit words (below 2^36). Fold 64 bits to 32 with
    // the carry added back, then 32 to 16 by adding the word to itself rotated: the high half
    // of that sum is the one's-complement sum of the two halves, end-around carry included.
    let sum = u64::from(!check).wrapping_add(delta);
    let (low, carry) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let folded = low.wrapping_add(u32::from(carry));
    !((folded.wrapping_add(folded.rotate_left(16)) >> 16) as u16)
}

/// The one's-complement change from `old` to `new` 4-byte words.
fn delta32(old: &[u8; 4], new: &[u8; 4]) -> u64 {
    u64::from(!u32::from_be_bytes(*old)).wrapping_add(u64::from(u32::from_be_bytes(*new)))
}

/// Replaces a 4-byte field with `new` and returns the change.
fn swap32(field: &mut [u8; 4], new: &[u8; 4]) -> u64 {
    let d = delta32(field, new);
    *field = *new;
    d
}

/// NAT: replaces one side's address and port (the destination towards a real server, the
/// source on a reply) and decrements the TTL, with both checksums updated by one delta each.
/// Every field is reached through fixed-size views taken once, so the offsets are constants.
#[inline(always)]
fn nat_rewrite(data: &mut [u8], plain: &Plain, source: bool, addr: &[u8; 16], port: u16) -> Option<()> {
    let ip = data.get_mut(plain.l3..plain.end)?;
    let (mut delta, l4) = if plain.v6 {
        let (head, l4) = ip.split_first_chunk_mut::<40>()?;
        head[7] = head[7].wrapping_sub(1);
        let field = if source { head.get_mut(8..24)? } else { head.get_mut(24..40)? };
        let field = field.first_chunk_mut::<16>()?;
        // The 128-bit change as four 32-bit words: their one's-complement sum folds to the
        // same 16-bit value as the eight 16-bit words'.
        let words =
            |x: u128| [x >> 96, x >> 64, x >> 32, x].iter().fold(0u64, |sum, w| sum.wrapping_add(u64::from(*w as u32)));
        let delta = words(!u128::from_be_bytes(*field)).wrapping_add(words(u128::from_be_bytes(*addr)));
        *field = *addr;
        (delta, l4)
    } else {
        let (head, l4) = ip.split_first_chunk_mut::<20>()?;
        let field = if source { head.get_mut(12..16)? } else { head.get_mut(16..20)? };
        let delta = swap32(field.first_chunk_mut::<4>()?, addr.first_chunk::<4>()?);
        head[8] = head[8].wrapping_sub(1);
        let check = u16::from_be_bytes([head[10], head[11]]);
        // The header checksum: the address and the TTL word (down by 0x0100).
        [head[10], head[11]] = add_to_checksum(check, delta.wrapping_add(u64::from(!0x0100u16))).to_be_bytes();
        (delta, l4)
    };
    let ports = l4.first_chunk_mut::<8>()?;
    let field = if source { ports.first_chunk_mut::<2>()? } else { ports.get_mut(2..)?.first_chunk_mut::<2>()? };
    let old_port = u16::from_be_bytes(*field);
    *field = port.to_be_bytes();
    delta = delta.wrapping_add(u64::from(!old_port)).wrapping_add(u64::from(port));
    if plain.proto == 6 {
        let tcp = l4.first_chunk_mut::<20>()?;
        let check = u16::from_be_bytes([tcp[16], tcp[17]]);
        [tcp[16], tcp[17]] = add_to_checksum(check, delta).to_be_bytes();
    } else {
        let check = u16::from_be_bytes([ports[6], ports[7]]);
        // IPv4 UDP without a checksum stays without one; a computed zero is sent as 0xFFFF.
        if check != 0 || plain.v6 {
            [ports[6], ports[7]] = checksum::udp_wire(add_to_checksum(check, delta)).to_be_bytes();
        }
    }
    Some(())
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // Tests compute addresses and expected values freely.
mod tests {
    extern crate std;
    use super::*;
    use crate::conn::{ConnTable, Direction, tcp_transition};
    use crate::engine::{EngineConfig, RealConfig, ServiceConfig, ServiceKey};
    use crate::wire::{IpProtocol, Summary, TcpFlags};
    use std::format;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn segments_the_fast_path_takes_never_move_an_established_connection() {
        // ACK with any of PSH, URG, ECE, CWR, and without SYN, FIN, RST.
        for extra in 0..16u8 {
            let flags = TcpFlags::from_bits_retain(TCP_ACK | (extra & 1) << 3 | (extra >> 1) << 5);
            for direction in [Direction::Input, Direction::Output, Direction::InputOnly] {
                for secure in [false, true] {
                    let next = tcp_transition(ConnState::Established, flags, direction, secure);
                    assert_eq!(next, ConnState::Established, "{flags:?} {direction:?} secure={secure}");
                }
            }
        }
    }

    proptest::proptest! {
        /// The folded checksum update equals the textbook one: add the 16-bit words of the
        /// change to the complemented checksum one at a time with end-around carry.
        #[test]
        fn checksum_updates_fold_as_word_by_word_addition(
            check: u16,
            words in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..12),
        ) {
            let delta: u64 = words.iter().map(|w| u64::from(*w)).sum();
            let mut sum = u32::from(!check);
            for w in &words {
                for half in [*w >> 16, *w & 0xFFFF] {
                    sum += half;
                    sum = (sum & 0xFFFF) + (sum >> 16);
                }
            }
            proptest::prop_assert_eq!(add_to_checksum(check, delta), !(sum as u16));
        }
    }

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];

    fn v4(d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, d))
    }

    fn v6(d: u8) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(d)))
    }

    /// A frame built by etherparse (an implementation independent of ours).
    fn frame(src: (IpAddr, u16), dst: (IpAddr, u16), tcp: Option<u8>, payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2(MAC, [2, 0, 0, 0, 0, 0xd1]);
        let ip = match (src.0, dst.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => b.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => b.ipv6(s.octets(), d.octets(), 64),
            _ => unreachable!(),
        };
        let mut out = Vec::new();
        match tcp {
            Some(flags) => {
                let mut t = ip.tcp(src.1, dst.1, 1000, 64240);
                if flags & TCP_SYN != 0 {
                    t = t.syn();
                }
                if flags & TCP_ACK != 0 {
                    t = t.ack(1);
                }
                if flags & TCP_FIN != 0 {
                    t = t.fin();
                }
                if flags & TCP_RST != 0 {
                    t = t.rst();
                }
                if flags & 0x08 != 0 {
                    t = t.psh();
                }
                t.write(&mut out, payload).unwrap();
            }
            None => ip.udp(src.1, dst.1).write(&mut out, payload).unwrap(),
        }
        out
    }

    type Lab = (vec::Vec<u8>, vec::Vec<crate::engine::ServiceSlot<4>>);

    fn lab() -> Lab {
        (vec![0u8; ConnTable::footprint(256)], (0..8).map(|_| crate::engine::ServiceSlot::default()).collect())
    }

    fn engine(lab: &mut Lab) -> Engine<'_, 4> {
        let table = ConnTable::new(&mut lab.0, 256, 7).unwrap();
        let config = EngineConfig {
            tunnel_v4: Some(Ipv4Addr::new(198, 18, 0, 250)),
            tunnel_v6: Some("2001:db8::250".parse().unwrap()),
            seed: 3,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(table, &mut lab.1[..], config).unwrap();
        for (i, (proto, vip, forward)) in SERVICES.iter().enumerate() {
            let key = ServiceKey::new(*proto, vip(100 + i as u8), 80);
            // Service 6 is persistent and service 7 has no real server: new connections to
            // them are left to the general path, or refused as it refuses them.
            let persistence =
                (i == 6).then_some(crate::engine::Persistence { timeout_s: 300, prefix_len: 128, ipv4_mask: None });
            e.add_service(key, &ServiceConfig { scheduler: "rr", persistence, ..ServiceConfig::default() }).unwrap();
            for r in 0..if i == 7 { 0 } else { 2u8 } {
                let addr = vip(10 + 2 * i as u8 + r);
                let real = RealConfig { addr, port: 8080, forward: *forward, weight: 1, ..RealConfig::default() };
                e.add_real(&key, &real).unwrap();
            }
        }
        e
    }

    /// A service of the test: protocol, address family (by constructor), forwarding method.
    type TestService = (IpProtocol, fn(u8) -> IpAddr, Forward);

    const SERVICES: [TestService; 8] = [
        (IpProtocol::TCP, v4, Forward::Nat),
        (IpProtocol::UDP, v4, Forward::Nat),
        (IpProtocol::TCP, v4, Forward::DirectRoute),
        (IpProtocol::UDP, v4, Forward::Tunnel),
        (IpProtocol::TCP, v6, Forward::Nat),
        (IpProtocol::TCP, v6, Forward::Tunnel),
        (IpProtocol::TCP, v4, Forward::Nat),
        (IpProtocol::UDP, v4, Forward::Nat),
    ];

    fn listing(e: &Engine<'_, 4>) -> String {
        let mut out = format!("{:?}\n", e.stats());
        for (i, c) in e.connections().iter() {
            out += &format!("{i} {c:?}\n");
        }
        for s in e.services() {
            out += &format!("{:?} {:?}\n", s.stats, s.reals.iter().flatten().map(|r| r.stats).collect::<Vec<_>>());
        }
        out
    }

    /// Runs one frame through the engine the way `process` does, saying whether the fast path
    /// decided it.
    fn run(e: &mut Engine<'_, 4>, frame: &[u8], now: u64) -> (Verdict, bool, Vec<u8>) {
        let neighbours = |_: IpAddr| Some(MacAddr([2, 0, 0, 0, 0, 9]));
        let mut storage = vec![0u8; 64 + frame.len() + 64];
        storage[64..64 + frame.len()].copy_from_slice(frame);
        let mut buf = PacketBuf::new(&mut storage, 64, frame.len()).unwrap();
        let fast = plain(buf.data(), true).and_then(|p| match e.fast_path(&mut buf, &p, 0, now, &neighbours) {
            Ok(v) => Some(v),
            Err(true) => e.fast_new(&mut buf, &p, ticks(now), now, &neighbours),
            Err(false) => None,
        });
        let verdict = match fast {
            Some(v) => v,
            None => {
                let summary = e.parse(&buf);
                e.process_parsed(&mut buf, summary, 0, now, &neighbours)
            }
        };
        (verdict, fast.is_some(), buf.data().to_vec())
    }

    #[test]
    fn established_packets_of_every_method_and_family_take_the_fast_path() {
        let mut l = lab();
        let mut e = engine(&mut l);
        for (service, (proto, vip, forward)) in SERVICES.iter().enumerate().take(6) {
            let client = (vip(200), 41000);
            let to_vip = (vip(100 + service as u8), 80);
            let tcp = *proto == IpProtocol::TCP;
            let first = frame(client, to_vip, tcp.then_some(TCP_SYN), b"");
            let (v, fast, _) = run(&mut e, &first, 0);
            assert!(matches!(v, Verdict::Transmit { .. }) && fast, "service {service}: a new connection is fast");
            if tcp {
                let real =
                    e.connections().iter().find(|(_, c)| c.client() == client && c.virt() == to_vip).unwrap().1.real();
                if *forward == Forward::Nat {
                    run(&mut e, &frame(real, client, Some(TCP_SYN | TCP_ACK), b""), 1);
                }
                let (_, fast, _) = run(&mut e, &frame(client, to_vip, Some(TCP_ACK), b""), 2);
                assert!(!fast, "service {service}: the ACK that establishes is general");
            }
            let data = frame(client, to_vip, tcp.then_some(TCP_ACK | 0x08), b"data");
            let (v, fast, _) = run(&mut e, &data, 3);
            assert!(matches!(v, Verdict::Transmit { .. }) && fast, "service {service}: established data is fast");
            if *forward == Forward::Nat {
                let real =
                    e.connections().iter().find(|(_, c)| c.client() == client && c.virt() == to_vip).unwrap().1.real();
                let (v, fast, out) = run(&mut e, &frame(real, client, tcp.then_some(TCP_ACK), b"reply"), 4);
                assert!(matches!(v, Verdict::Transmit { .. }) && fast, "service {service}: a reply is fast");
                let reparsed = Summary::from_ethernet(&out).unwrap();
                assert_eq!(reparsed.src, Some(to_vip.0));
                assert_eq!(reparsed.ports.map(|p| p.0), Some(80));
            }
        }
        // Not a service's, not a real server's: passed on the fast path.
        let (v, fast, _) = run(&mut e, &frame((v4(200), 1), (v4(99), 80), Some(TCP_SYN), b""), 5);
        assert_eq!((v, fast), (Verdict::Pass, true));
    }

    #[test]
    fn a_packet_passed_after_a_refused_rewrite_is_the_packet_that_arrived() {
        // NAT towards a server of the other family cannot be written: the general path hands
        // the packet back, with its hop limit restored.
        let mut l = lab();
        let mut e = engine(&mut l);
        let neighbours = |_: IpAddr| Some(MacAddr([2, 0, 0, 0, 0, 9]));
        let original = frame((v4(200), 40000), (v4(100), 80), Some(TCP_ACK), b"data");
        let mut storage = vec![0u8; 64 + original.len() + 64];
        storage[64..64 + original.len()].copy_from_slice(&original);
        let mut buf = PacketBuf::new(&mut storage, 64, original.len()).unwrap();
        let summary = Summary::from_ethernet(buf.data()).unwrap();
        let flow = crate::engine::Flow {
            proto: IpProtocol::TCP,
            src: (v4(200), 40000),
            dst: (v4(100), 80),
            flags: TcpFlags::ACK,
            length: original.len() - 14,
        };
        let verdict = e.transmit_in(&mut buf, &summary, &flow, Forward::Nat, (v6(9), 8080), &neighbours);
        assert_eq!(verdict, Verdict::Pass);
        assert_eq!(buf.data(), &original[..]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The fast path decides exactly as the general path: the same verdicts, bytes,
        /// counters and connection entries, over random conversations on NAT, DR and TUN
        /// services (IPv4, IPv6, TCP, UDP), replies from real servers, strangers, and time.
        #[test]
        fn the_fast_path_and_the_general_path_agree(
            events in proptest::collection::vec((0usize..8, 0u16..4, 0u8..7, 0u64..40_000), 1..120),
        ) {
            let neighbours = |a: IpAddr| (a != v4(13)).then_some(MacAddr([2, 0, 0, 0, 0, 9]));
            let (mut la, mut lb) = (lab(), lab());
            let (mut fast, mut general) = (engine(&mut la), engine(&mut lb));
            let mut now = 0u64;
            for (service, client, kind, step) in events {
                now += step;
                let (proto, vip, _) = SERVICES[service];
                let client = (vip(200), 40000 + client);
                let tcp = |flags| (proto == IpProtocol::TCP).then_some(flags);
                let frame = match kind {
                    0 => frame(client, (vip(100 + service as u8), 80), tcp(TCP_SYN), &[]),
                    1 | 2 => frame(client, (vip(100 + service as u8), 80), tcp(TCP_ACK | 0x08), b"GET / HTTP/1.0\r\n\r\n"),
                    3 => frame(client, (vip(100 + service as u8), 80), tcp(TCP_FIN | TCP_ACK), &[]),
                    4 => frame(client, (vip(99), 80), tcp(TCP_ACK), b"stranger"),
                    _ => {
                        // A reply from the real server the connection went to (if any).
                        let real = fast
                            .connections()
                            .iter()
                            .find(|(_, c)| c.client() == client && c.proto() == proto && !c.is_template())
                            .map_or((vip(10), 8080), |(_, c)| c.real());
                        let flags = if kind == 5 { TCP_ACK } else { TCP_SYN | TCP_ACK };
                        frame(real, client, tcp(flags), b"HTTP/1.0 200 OK\r\n")
                    }
                };
                let mut sa = vec![0u8; 64 + frame.len() + 64];
                let mut sb = sa.clone();
                sa[64..64 + frame.len()].copy_from_slice(&frame);
                sb[64..64 + frame.len()].copy_from_slice(&frame);
                let mut a = PacketBuf::new(&mut sa, 64, frame.len()).unwrap();
                let mut b = PacketBuf::new(&mut sb, 64, frame.len()).unwrap();
                let va = fast.process(&mut a, now, &neighbours);
                let summary = general.parse(&b);
                let vb = general.process_parsed(&mut b, summary, 0, now, &neighbours);
                proptest::prop_assert_eq!(va, vb);
                proptest::prop_assert_eq!(a.data(), b.data());
                if va == Verdict::Pass {
                    // A packet handed to the host is the packet that arrived.
                    proptest::prop_assert_eq!(a.data(), &frame[..]);
                }
                proptest::prop_assert_eq!(listing(&fast), listing(&general));
            }
        }
    }
}
