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
            rewrite_quoted(buf.data_mut(), &mut summary, QuotedEnd::Src, real.0, real.1).ok()?;
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
            rewrite_quoted(buf.data_mut(), &mut summary, QuotedEnd::Dst, virt.0, virt.1).ok()?;
            return Some(self.send_to(buf, &mut summary, client, neighbours));
        }
        None
    }
}
