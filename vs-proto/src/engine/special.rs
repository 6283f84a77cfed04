//! Packets that are not a plain segment: later fragments (following their first fragment's
//! connection) and ICMP errors about known connections (IPVS's `ip_vs_in_icmp` / `ip_vs_out_icmp`).

use super::*;

impl<'a, const D: usize, M: TableMemory, S: AsRef<[ServiceSlot<D>]> + AsMut<[ServiceSlot<D>]>> Engine<'a, D, M, S> {
    /// A first fragment: its later fragments will follow connection `index`.
    pub(super) fn remember_fragment(&mut self, summary: &Summary, index: ConnIndex, inbound: bool, now: u32) {
        let (Some(fragment), Some(src), Some(dst), Some(proto)) =
            (summary.fragment, summary.src, summary.dst, summary.proto)
        else {
            return;
        };
        let key = fragments::FragmentKey { src, dst, proto, ident: fragment.ident };
        let expires = now.wrapping_add(timeout_ticks(fragments::FRAGMENT_TIMEOUT_S));
        self.fragments.insert(key, index, inbound, expires, now);
    }

    /// A later fragment: it goes where its first fragment went, addresses rewritten for NAT
    /// (it holds no ports), or to the host (or nowhere) when no first fragment was seen.
    pub(super) fn later_fragment(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        now_ms: u64,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let now = ticks(now_ms);
        let (Some(fragment), Some(src), Some(dst), Some(proto)) =
            (summary.fragment, summary.src, summary.dst, summary.proto)
        else {
            return self.pass();
        };
        let key = fragments::FragmentKey { src, dst, proto, ident: fragment.ident };
        let found = self
            .fragments
            .lookup(&key, now)
            .filter(|(i, _)| self.conns.get(*i).is_some_and(|c| !expired(c.expires(), now)));
        let Some((index, inbound)) = found else {
            return if self.config.pass_unmatched_fragments {
                self.pass()
            } else {
                self.drop(DropReason::UnmatchedFragment)
            };
        };
        let Some(conn) = self.conns.get(index).copied() else { return self.pass() };
        let length = summary.l3_end.saturating_sub(summary.l3_offset);
        self.count(index, length, inbound);
        let flow = Flow { proto, src: (src, 0), dst: (dst, 0), flags: TcpFlags::empty(), length };
        if !inbound {
            let mut summary = *summary;
            let mut rw = Rewriter::new(buf.data_mut(), &mut summary, self.config.caps);
            if rw.decrement_hop_limit().is_err() || rw.set_src_addr(conn.virt().0).is_err() {
                return self.drop(DropReason::TtlExceeded);
            }
            return self.send_to(buf, &mut summary, dst, neighbours);
        }
        match conn.forward() {
            Forward::Nat => {
                let mut summary = *summary;
                let mut rw = Rewriter::new(buf.data_mut(), &mut summary, self.config.caps);
                if rw.decrement_hop_limit().is_err() || rw.set_dst_addr(conn.real().0).is_err() {
                    return self.drop(DropReason::TtlExceeded);
                }
                self.send_to(buf, &mut summary, conn.real().0, neighbours)
            }
            forward => self.transmit_in(buf, summary, &flow, forward, conn.real(), neighbours),
        }
    }

    /// Relays an ICMP error about a known connection (IPVS's `ip_vs_in_icmp` / `ip_vs_out_icmp`): from the client
    /// side on to the real server, from a NAT real server back to the client, with the outer
    /// and the quoted headers rewritten for NAT. `None` when no connection vouches for it (the
    /// host gets it).
    pub(super) fn relay_icmp(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        now: u32,
        neighbours: &impl Neighbours,
    ) -> Option<Verdict> {
        let icmp = summary.icmp?;
        let quoted = summary.quoted?;
        let (qsport, qdport) = quoted.ports?;
        if !matches!(quoted.proto, IpProtocol::TCP | IpProtocol::UDP) {
            return None;
        }
        // IPVS relays ICMPv4 destination unreachable, source quench and time exceeded, and
        // every ICMPv6 error.
        if summary.proto == Some(IpProtocol::ICMP) && !matches!(icmp.ty, 3 | 4 | 11) {
            return None;
        }
        let length = summary.l3_end.saturating_sub(summary.l3_offset);
        let live = |t: &Table<M>, i: ConnIndex| t.get(i).is_some_and(|c| !expired(c.expires(), now));
        // From the client side: the quote is a packet the director sent, VIP → client.
        if let Some(index) = self.conns.lookup_in(quoted.proto, (quoted.dst, qdport), (quoted.src, qsport))
            && live(&self.conns, index)
        {
            let conn = *self.conns.get(index)?;
            let (service, slot) = self.decode(conn.dest());
            if !self.real(service, slot).is_some_and(|r| r.available) {
                return None;
            }
            self.count(index, length, true);
            let real = conn.real();
            if conn.forward() != Forward::Nat {
                // DR and TUN pass the error on unchanged (encapsulated for TUN).
                let flow = Flow {
                    proto: quoted.proto,
                    src: (quoted.dst, qdport),
                    dst: (quoted.src, qsport),
                    flags: TcpFlags::empty(),
                    length,
                };
                return Some(self.transmit_in(buf, summary, &flow, conn.forward(), real, neighbours));
            }
            if quoted.src.is_ipv4() != real.0.is_ipv4() || summary.dst.map(|a| a.is_ipv4()) != Some(real.0.is_ipv4()) {
                // Decided before any byte changes: a quote of the other family cannot be
                // rewritten, and the host gets the error as it arrived.
                return None;
            }
            let mut summary = *summary;
            let caps = self.config.caps;
            let mut rw = Rewriter::new(buf.data_mut(), &mut summary, caps);
            if rw.decrement_hop_limit().is_err() || rw.set_dst_addr(real.0).is_err() {
                return Some(self.drop(DropReason::TtlExceeded));
            }
            if rewrite_quoted(buf.data_mut(), &mut summary, QuotedEnd::Src, real.0, real.1).is_err() {
                // The outer header already changed: never hand this packet to the host.
                return Some(self.drop(DropReason::BadQuote));
            }
            return Some(self.send_to(buf, &mut summary, real.0, neighbours));
        }
        // From a real server: the quote is a packet it got, client → real server.
        if let Some(index) = self.conns.lookup_out(quoted.proto, (quoted.dst, qdport), (quoted.src, qsport))
            && live(&self.conns, index)
        {
            let conn = *self.conns.get(index)?;
            if conn.forward() != Forward::Nat {
                return None;
            }
            self.count(index, length, false);
            let virt = conn.virt();
            let client = summary.dst?;
            if quoted.src.is_ipv4() != virt.0.is_ipv4() || client.is_ipv4() != virt.0.is_ipv4() {
                // As above: decided before any byte changes.
                return None;
            }
            let mut summary = *summary;
            let caps = self.config.caps;
            let mut rw = Rewriter::new(buf.data_mut(), &mut summary, caps);
            if rw.decrement_hop_limit().is_err() || rw.set_src_addr(virt.0).is_err() {
                return Some(self.drop(DropReason::TtlExceeded));
            }
            if rewrite_quoted(buf.data_mut(), &mut summary, QuotedEnd::Dst, virt.0, virt.1).is_err() {
                // As above.
                return Some(self.drop(DropReason::BadQuote));
            }
            return Some(self.send_to(buf, &mut summary, client, neighbours));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::conn::ConnTable;
    use crate::engine::{RealConfig, ServiceConfig, ServiceKey, ServiceSlot};
    use crate::wire::{Frame, IcmpError, MacAddr, Segment, icmp_error};

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn frame(src: (IpAddr, u16), dst: (IpAddr, u16), flags: TcpFlags) -> Vec<u8> {
        let f = Frame { src_mac: MacAddr([2, 0, 0, 0, 0, 1]), dst_mac: MacAddr([2, 0, 0, 0, 0, 2]), src, dst, ttl: 64 };
        let mut out = vec![0u8; 128];
        let n = f.write(&mut out, &Segment::Tcp { flags, seq: 1, ack: 1, payload: &[] }).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn a_quote_that_cannot_be_rewritten_after_the_outer_header_was_is_dropped_not_passed() {
        let mut memory = vec![0u8; ConnTable::footprint(16)];
        let mut slots: Vec<ServiceSlot<4>> = (0..2).map(|_| ServiceSlot::default()).collect();
        let table = ConnTable::new(&mut memory, 16, 1).unwrap();
        let mut e: Engine<'_, 4> = Engine::new(table, &mut slots[..], crate::engine::EngineConfig::default()).unwrap();
        let (vip, real, client) = (addr("198.18.0.100"), addr("198.18.1.1"), (addr("198.18.5.1"), 40000));
        let key = ServiceKey::new(IpProtocol::TCP, vip, 80);
        e.add_service(key, &ServiceConfig::default()).unwrap();
        e.add_real(
            &key,
            &RealConfig { addr: real, port: 8080, forward: Forward::Nat, weight: 1, ..RealConfig::default() },
        )
        .unwrap();
        let neighbours = |_: IpAddr| Some(MacAddr([2, 0, 0, 0, 0, 5]));
        let syn = frame(client, (vip, 80), TcpFlags::SYN);
        let mut storage = vec![0u8; 64 + 256];
        storage[64..64 + syn.len()].copy_from_slice(&syn);
        let mut buf = PacketBuf::new(&mut storage, 64, syn.len()).unwrap();
        assert!(matches!(e.process(&mut buf, 0, &neighbours), Verdict::Transmit { .. }));
        // A router's "too big" about a reply VIP -> client: the director relays it to the real
        // server, rewriting the outer destination, then the quote.
        let reply = frame((vip, 80), client, TcpFlags::ACK);
        let mut storage = vec![0u8; 64 + 256];
        storage[64..64 + reply.len()].copy_from_slice(&reply);
        let mut buf = PacketBuf::new(&mut storage, 64, reply.len()).unwrap();
        let about = Summary::from_ethernet(buf.data()).unwrap();
        icmp_error(&mut buf, &about, IcmpError::TooBig { mtu: 1400 }, addr("198.18.9.1")).unwrap();
        let mut summary = Summary::from_ethernet(buf.data()).unwrap();
        // A quote whose header length runs past the packet (the parser would not produce it:
        // this stands for any failure of the quote's rewrite after the outer one).
        if let Some(q) = summary.quoted.as_mut() {
            q.l4_offset = 4096;
        }
        let verdict = e.relay_icmp(&mut buf, &summary, 0, &neighbours);
        assert_eq!(verdict, Some(Verdict::Drop(DropReason::BadQuote)), "never passed half-rewritten");
    }
}
