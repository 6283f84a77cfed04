//! Sending: NAT replies back to the client, link-layer addressing, IP-in-IP / IPv6
//! encapsulation towards tunnel servers, and ICMP answers from the director.

use super::*;

impl<'a, const D: usize, M: TableMemory, S: AsRef<[ServiceSlot<D>]> + AsMut<[ServiceSlot<D>]>> Engine<'a, D, M, S> {
    /// Real server → client on NAT connection `index`.
    pub(super) fn forward_out(
        &mut self,
        index: ConnIndex,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        flow: &Flow,
        now: u32,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let Some(conn) = self.conns.get(index).copied() else {
            return self.pass();
        };
        if conn.forward() != Forward::Nat {
            // Replies of DR / TUN connections come from the VIP: the director's own traffic.
            return self.pass();
        }
        let state = self.next_state(conn.state(), flow, Direction::Output);
        if let Some(c) = self.conns.get_mut(index) {
            c.clear_no_output();
        }
        self.set_state(index, state, now);
        self.count(index, flow.length, false);
        let virt = conn.virt();
        let mut summary = *summary;
        let saved = super::inbound::HopSnapshot::take(buf.data(), &summary);
        let mut rw = Rewriter::new(buf.data_mut(), &mut summary, self.config.caps);
        if rw.decrement_hop_limit().is_err() {
            return self.drop(DropReason::TtlExceeded);
        }
        if rw.set_src(virt.0, virt.1).is_err() {
            // set_src checks before it writes: only the hop limit changed.
            saved.restore(buf.data_mut());
            return self.pass();
        }
        self.send_to(buf, &mut summary, flow.dst.0, neighbours)
    }

    /// Addresses the frame to `next_hop` (when there is a link layer) and transmits.
    pub(super) fn send_to(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &mut Summary,
        next_hop: IpAddr,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let Some(neighbour) = neighbours.lookup(next_hop) else {
            return self.drop(DropReason::NoNeighbour);
        };
        if self.config.ethernet {
            let mut rw = Rewriter::new(buf.data_mut(), summary, self.config.caps);
            if rw.set_macs(self.config.mac, neighbour.mac).is_err() {
                return self.pass();
            }
        }
        Verdict::Transmit { next_hop, port: neighbour.port }
    }

    /// IP-in-IP / IPv6 encapsulation towards `real`, or "too big" back to the client.
    pub(super) fn tunnel(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        flow: &Flow,
        real: IpAddr,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let outer_src: Option<IpAddr> = match real {
            IpAddr::V4(_) => self.config.tunnel_v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.config.tunnel_v6.map(IpAddr::V6),
        };
        let Some(outer_src) = outer_src else {
            return self.drop(DropReason::NoTunnelSource);
        };
        let outer_len = if real.is_ipv4() { Ipv4Header::LEN } else { Ipv6Header::LEN };
        let inner_len = summary.l3_end.saturating_sub(summary.l3_offset);
        let mtu = usize::from(self.config.mtu);
        let v6 = summary.l3 == L3::Ipv6;
        let (_, _, dont_frag) = inner_ttl_tos_df(buf.data(), summary.l3_offset, v6);
        if inner_len + outer_len > mtu {
            // IPv6 never fragments on the way; IPv4 only without DF (not done here: dropped).
            if dont_frag || summary.l3 == L3::Ipv6 {
                self.stats.count_drop(DropReason::TooBig);
                let left = u32::try_from(mtu.saturating_sub(outer_len)).unwrap_or(0);
                return self
                    .answer(buf, summary, IcmpError::TooBig { mtu: left }, flow.dst.0, neighbours)
                    .unwrap_or(Verdict::Drop(DropReason::TooBig));
            }
            return self.drop(DropReason::TooBig);
        }
        // The identification advances only for packets that go out.
        let outer = self.outer_header(buf.data(), summary.l3_offset, v6, outer_src, real);
        match encapsulate(buf, summary, &outer) {
            Ok(mut outer_summary) => self.send_to(buf, &mut outer_summary, real, neighbours),
            Err(_) => self.drop(DropReason::NoHeadroom),
        }
    }

    /// Replaces the packet by an ICMP error from `from` to its source and addresses it.
    pub(super) fn answer(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        kind: IcmpError,
        from: IpAddr,
        neighbours: &impl Neighbours,
    ) -> Option<Verdict> {
        let client = summary.src?;
        let mut icmp = icmp_error(buf, summary, kind, from).ok()?;
        Some(self.send_to(buf, &mut icmp, client, neighbours))
    }

    /// The outer header of a tunnelled packet whose inner header (at `l3`, its hop limit
    /// already decremented) gives TTL, TOS and DF; a new IPv4 identification when DF is clear.
    pub(super) fn outer_header(
        &mut self,
        packet: &[u8],
        l3: usize,
        v6: bool,
        src: IpAddr,
        dst: IpAddr,
    ) -> TunnelHeader {
        let (ttl, tos, dont_frag) = inner_ttl_tos_df(packet, l3, v6);
        self.ip_ident = self.ip_ident.wrapping_add(1);
        TunnelHeader { src, dst, ttl, tos, dont_frag, ident: if dont_frag { 0 } else { self.ip_ident } }
    }
}

/// TTL / hop limit, TOS / traffic class and DF of the (already decremented) inner header that
/// starts at `l3`.
fn inner_ttl_tos_df(packet: &[u8], l3: usize, v6: bool) -> (u8, u8, bool) {
    let header = packet.get(l3..).unwrap_or(&[]);
    if v6 {
        let tc = match header {
            [a, b, ..] => (a << 4) | (b >> 4),
            _ => 0,
        };
        (header.get(7).copied().unwrap_or(64), tc, false)
    } else {
        let df = header.get(6).is_some_and(|b| b & 0x40 != 0);
        (header.get(8).copied().unwrap_or(64), header.get(1).copied().unwrap_or(0), df)
    }
}
