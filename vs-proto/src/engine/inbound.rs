//! The general inbound path: a packet from a client (or a reply from a real server, which
//! arrives on the same interface) is looked up, classified, scheduled when it opens a new
//! connection, and forwarded by the connection's method; the connection's state and counters
//! move with it (IPVS's `ip_vs_in`, schedule and state handling).

use super::*;

impl<'a, const D: usize, M: TableMemory, S: AsRef<[ServiceSlot<D>]> + AsMut<[ServiceSlot<D>]>> Engine<'a, D, M, S> {
    pub(super) fn process_parsed(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: Option<Summary>,
        mark: u32,
        now_ms: u64,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let Some(summary) = summary else { return self.pass() };
        if summary.icmp.is_some_and(|i| i.is_error) && summary.fragment.is_none() {
            let now = ticks(now_ms);
            return match self.relay_icmp(buf, &summary, now, neighbours) {
                Some(verdict) => verdict,
                None => self.pass(),
            };
        }
        if summary.is_later_fragment() {
            return self.later_fragment(buf, &summary, now_ms, neighbours);
        }
        let (Some(proto), Some(src), Some(dst), Some((sport, dport))) =
            (summary.proto, summary.src, summary.dst, summary.ports)
        else {
            return self.pass();
        };
        if !matches!(proto, IpProtocol::TCP | IpProtocol::UDP) {
            return self.pass();
        }
        if self.config.caps.verify(&summary, buf.data()).is_err() {
            return self.drop(DropReason::BadChecksum);
        }
        let flow = Flow {
            proto,
            src: (src, sport),
            dst: (dst, dport),
            flags: summary.tcp_flags.unwrap_or_default(),
            length: summary.l3_end.saturating_sub(summary.l3_offset),
        };
        let now = ticks(now_ms);
        let opens =
            proto == IpProtocol::UDP || (flow.flags.contains(TcpFlags::SYN) && !flow.flags.contains(TcpFlags::RST));

        // 1. A packet of a known connection, client to real server.
        if let Some(index) = self.conns.lookup_in(proto, flow.src, flow.dst) {
            match self.classify_in(index, &flow, now, opens) {
                InHit::Forward => {
                    self.remember_fragment(&summary, index, true, now);
                    return self.forward_in(index, buf, &summary, &flow, now, neighbours);
                }
                InHit::Drop(reason) => return self.drop(reason),
                // Expired or released for reuse: the packet is a new connection.
                InHit::Gone => {}
            }
        }
        // 2. A reply, real server to client.
        if let Some(index) = self.conns.lookup_out(proto, flow.src, flow.dst) {
            if self.conns.get(index).is_some_and(|c| expired(c.expires(), now)) {
                self.expire(index, now, false);
            } else {
                self.remember_fragment(&summary, index, false, now);
                return self.forward_out(index, buf, &summary, &flow, now, neighbours);
            }
        }
        // 3. A new connection to a virtual service (a marked packet's firewall-mark service
        // first, as IPVS looks them up).
        let Some(service) = self.find_service(proto, flow.dst, mark) else {
            return self.pass();
        };
        if !opens {
            // Only SYN (without RST) opens a TCP connection; the rest goes to the host.
            return self.pass();
        }
        if defence::on(self.config.defence.drop_packet) && self.drop_packet.todrop() {
            return self.drop(DropReason::Defence);
        }
        match self.schedule(service, &flow, now, now_ms) {
            Ok(Scheduled::Conn(index)) => {
                self.remember_fragment(&summary, index, true, now);
                self.forward_in(index, buf, &summary, &flow, now, neighbours)
            }
            Ok(Scheduled::OnePacket { forward, real }) => {
                self.transmit_in(buf, &summary, &flow, forward, real, neighbours)
            }
            Err(reason) => self.refuse_new(buf, &summary, reason, neighbours),
        }
    }

    /// A new connection that could not be opened: with no destination IPVS answers with ICMP
    /// port unreachable from the virtual address (`ip_vs_leave`); anything else is dropped.
    pub(super) fn refuse_new(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        reason: DropReason,
        neighbours: &impl Neighbours,
    ) -> Verdict {
        if reason != DropReason::NoDestination {
            return self.drop(reason);
        }
        self.stats.count_drop(reason);
        let Some(vip) = summary.dst else { return Verdict::Drop(reason) };
        self.answer(buf, summary, IcmpError::PortUnreachable, vip, neighbours).unwrap_or(Verdict::Drop(reason))
    }

    /// The service a new connection from this packet belongs to.
    pub(super) fn find_service(&self, proto: IpProtocol, dst: (IpAddr, u16), mark: u32) -> Option<usize> {
        let matches = |key: &ServiceKey| {
            if key.is_fwmark() {
                mark != 0 && key.fwmark == mark && key.addr.is_ipv4() == dst.0.is_ipv4()
            } else {
                *key == ServiceKey::new(proto, dst.0, dst.1)
            }
        };
        let live = |s: &ServiceSlot<D>| s.0.as_ref().filter(|s| !s.deleted).map(|s| s.key);
        if mark != 0
            && let Some(i) =
                self.services.as_ref().iter().position(|s| live(s).is_some_and(|k| k.is_fwmark() && matches(&k)))
        {
            return Some(i);
        }
        if let Some(i) =
            self.services.as_ref().iter().position(|s| live(s).is_some_and(|k| !k.is_fwmark() && matches(&k)))
        {
            return Some(i);
        }
        // A persistent service on port 0 takes every port of its address (`ip_vs_service_find`).
        let any_port = ServiceKey::new(proto, dst.0, 0);
        self.services
            .as_ref()
            .iter()
            .position(|s| s.0.as_ref().is_some_and(|s| !s.deleted && s.key == any_port && s.persistence.is_some()))
    }

    /// What to do with a packet that matched connection `index` (IPVS's in-handler checks):
    /// forward it, drop it, or — when the entry ran out, may be reused by a new SYN, or its
    /// server is gone or quiesced under `expire_nodest_conn` — expire the entry.
    pub(super) fn classify_in(&mut self, index: ConnIndex, flow: &Flow, now: u32, opens: bool) -> InHit {
        let Some(conn) = self.conns.get(index).copied() else {
            return InHit::Gone;
        };
        let (service, slot) = self.decode(conn.dest());
        let available = self.real(service, slot).is_some_and(|r| r.available);
        let reuse = opens
            && flow.proto == IpProtocol::TCP
            && ((self.config.conn_reuse_mode & 1 != 0
                && matches!(conn.state(), ConnState::TimeWait | ConnState::Close))
                || (self.config.conn_reuse_mode & 2 != 0 && conn.state() == ConnState::FinWait && conn.no_output()));
        let quiesced = self.config.expire_nodest_conn && opens && self.weight_of(service, slot) == Some(0);
        let timed_out = expired(conn.expires(), now);
        if timed_out || reuse || quiesced || (!available && self.config.expire_nodest_conn) {
            self.expire(index, now, !timed_out);
            return InHit::Gone;
        }
        if !available {
            return InHit::Drop(DropReason::DestRemoved);
        }
        InHit::Forward
    }

    /// Runs the service's scheduler for a new connection: the real server's slot and copy.
    pub(super) fn pick(&mut self, service: usize, flow: &Flow, now_ms: u64) -> Result<(usize, RealServer), DropReason> {
        let svc =
            self.services.as_mut().get_mut(service).and_then(|s| s.0.as_mut()).ok_or(DropReason::NoDestination)?;
        let packet = PacketInfo {
            proto: flow.proto.0,
            src: flow.src.0,
            dst: flow.dst.0,
            sport: flow.src.1,
            dport: flow.dst.1,
            inverse: false,
        };
        let id = svc.dests.schedule(&mut svc.sched, &packet, now_ms).ok_or(DropReason::NoDestination)?;
        let slot = svc.slot_of(id).ok_or(DropReason::NoDestination)?;
        let real = svc.reals.get(slot).and_then(|r| *r).ok_or(DropReason::NoDestination)?;
        Ok((slot, real))
    }

    /// Opens a new connection on `service` (through its persistence template when it has
    /// persistence) and returns what to do with the packet.
    pub(super) fn schedule(
        &mut self,
        service: usize,
        flow: &Flow,
        now: u32,
        now_ms: u64,
    ) -> Result<Scheduled, DropReason> {
        let svc = self.services.as_ref().get(service).and_then(|s| s.0.as_ref()).ok_or(DropReason::NoDestination)?;
        let (key, one_packet, persistence) = (svc.key, svc.one_packet, svc.persistence);
        if one_packet && flow.proto == IpProtocol::UDP {
            // One-packet scheduling keeps no connection: count the datagram and send it on.
            let (slot, real) = self.pick(service, flow, now_ms)?;
            self.count_new(service, slot);
            if let Some(Some(r)) = self.svc_mut(service).and_then(|s| s.reals.get_mut(slot)) {
                r.stats.count_in(flow.length);
            }
            if let Some(s) = self.svc_mut(service) {
                s.stats.count_in(flow.length);
            }
            self.stats.total.count_in(flow.length);
            let port = if real.port == 0 { flow.dst.1 } else { real.port };
            return Ok(Scheduled::OnePacket { forward: real.forward, real: (real.addr, port) });
        }
        let Some(persistence) = persistence else {
            let (slot, real) = self.pick(service, flow, now_ms)?;
            let port = if real.port == 0 { flow.dst.1 } else { real.port };
            return self.open(service, slot, (real.addr, port), real.forward, flow, now, None).map(Scheduled::Conn);
        };
        // The template: <proto, client network, 0, vaddr, vport> (IPPROTO_IP and the mark as
        // the address for firewall-mark services; port 0 for port-less services).
        let (tproto, tvirt) = if key.is_fwmark() {
            let mark_addr = match flow.src.0 {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(key.fwmark)),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(u128::from(key.fwmark))),
            };
            (IpProtocol(0), (mark_addr, 0))
        } else {
            (flow.proto, (flow.dst.0, key.port))
        };
        let cnet = persistence.mask(flow.src.0);
        let mut template = self.conns.lookup_template(tproto, cnet, tvirt);
        if let Some(t) = template
            && !self.template_usable(t)
        {
            if let Some(c) = self.conns.get_mut(t) {
                c.invalidate();
            }
            template = None;
        }
        let template = match template {
            Some(t) => t,
            None => {
                let (slot, real) = self.pick(service, flow, now_ms)?;
                // A template of a port-less or firewall-mark service names no port.
                let tport = if tvirt.1 == 0 { 0 } else { real.port };
                let new = NewConn {
                    proto: tproto,
                    client: (cnet, 0),
                    virt: tvirt,
                    real: (real.addr, tport),
                    forward: real.forward,
                    dest: u16::try_from(service * D + slot).map_err(|_| DropReason::NoDestination)?,
                    state: ConnState::None,
                    expires: now.wrapping_add(timeout_ticks(persistence.timeout_s)),
                    template: true,
                };
                let t = self.insert(&new)?;
                self.bind(service, slot, ConnKind::Template);
                t
            }
        };
        let tconn = *self.conns.get(template).ok_or(DropReason::NoDestination)?;
        let (_, slot) = self.decode(tconn.dest());
        let (raddr, rport) = tconn.real();
        let port = if rport == 0 { flow.dst.1 } else { rport };
        let index = self.open(service, slot, (raddr, port), tconn.forward(), flow, now, Some(template))?;
        // The template controls one more connection and lives on for its timeout.
        let controlled = self.conns.link(template).saturating_add(1);
        self.conns.set_link(template, controlled);
        if let Some(t) = self.conns.get_mut(template) {
            t.set_expires(now.wrapping_add(timeout_ticks(persistence.timeout_s)));
        }
        Ok(Scheduled::Conn(index))
    }

    /// Inserts an entry within its class's limit (TCP, or everything else).
    pub(super) fn insert(&mut self, new: &NewConn) -> Result<ConnIndex, DropReason> {
        let class = usize::from(new.proto != IpProtocol::TCP);
        let limit = if class == 0 { self.config.defence.max_tcp } else { self.config.defence.max_other };
        if limit != 0 && self.class_entries.get(class).is_some_and(|n| *n >= limit) {
            return Err(DropReason::ClassFull);
        }
        let index = self.conns.insert(new).map_err(|_| DropReason::TableFull)?;
        if let Some(n) = self.class_entries.get_mut(class) {
            *n += 1;
        }
        Ok(index)
    }

    /// A template may be used while its server is in the service, and (with
    /// `expire_quiescent_template`) not quiesced (`ip_vs_check_template`).
    pub(super) fn template_usable(&self, template: ConnIndex) -> bool {
        let Some(t) = self.conns.get(template) else { return false };
        let (service, slot) = self.decode(t.dest());
        let available = self.real(service, slot).is_some_and(|r| r.available);
        let quiesced = self.weight_of(service, slot) == Some(0);
        available && !(quiesced && self.config.expire_quiescent_template)
    }

    pub(super) fn svc_mut(&mut self, service: usize) -> Option<&mut Service<D>> {
        self.services.as_mut().get_mut(service).and_then(|s| s.0.as_mut())
    }

    /// Counts a scheduled connection for the service, the real server and the totals.
    pub(super) fn count_new(&mut self, service: usize, slot: usize) {
        if let Some(svc) = self.svc_mut(service) {
            svc.stats.conns = svc.stats.conns.wrapping_add(1);
            if let Some(Some(r)) = svc.reals.get_mut(slot) {
                r.stats.conns = r.stats.conns.wrapping_add(1);
            }
        }
        self.stats.total.conns = self.stats.total.conns.wrapping_add(1);
    }

    /// Binds a connection or template to a real server: counters, overload, references.
    pub(super) fn bind(&mut self, service: usize, slot: usize, kind: ConnKind) {
        if let Some(svc) = self.svc_mut(service)
            && let Some(Some(r)) = svc.reals.get_mut(slot)
        {
            r.refs = r.refs.saturating_add(1);
            let id = r.id;
            if r.available {
                svc.dests.bind(id, kind);
            }
        }
    }

    /// Inserts a connection to `real` on `service`'s real server `slot`, bound and counted.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open(
        &mut self,
        service: usize,
        slot: usize,
        real: (IpAddr, u16),
        forward: Forward,
        flow: &Flow,
        now: u32,
        template: Option<ConnIndex>,
    ) -> Result<ConnIndex, DropReason> {
        let state = if flow.proto == IpProtocol::TCP { ConnState::None } else { ConnState::Udp };
        let new = NewConn {
            proto: flow.proto,
            client: flow.src,
            virt: flow.dst,
            real,
            forward,
            dest: u16::try_from(service * D + slot).map_err(|_| DropReason::NoDestination)?,
            state,
            expires: now.wrapping_add(timeout_ticks(crate::conn::timeout::NEW_CONN_TIMEOUT_S)),
            template: false,
        };
        let index = self.insert(&new)?;
        if let Some(t) = template {
            self.conns.set_link(index, t);
        }
        self.count_new(service, slot);
        // Every connection starts inactive (the first transition may activate it).
        self.bind(service, slot, ConnKind::Inactive);
        Ok(index)
    }

    /// Moves a connection to `state`, keeping the real server's active / inactive counts, and
    /// re-arms its timer.
    pub(super) fn set_state(&mut self, index: ConnIndex, state: ConnState, now: u32) {
        let Some(conn) = self.conns.get(index).copied() else {
            return;
        };
        let old = conn.state();
        let (service, slot) = self.decode(conn.dest());
        if old.is_active() != state.is_active()
            && let Some(svc) = self.services.as_mut().get_mut(service).and_then(|s| s.0.as_mut())
        {
            let id = svc.reals.get(slot).and_then(|r| r.map(|r| r.id));
            if let Some(dest) = id.and_then(|id| svc.dests.get_mut(id)) {
                if state.is_active() {
                    dest.activate();
                } else {
                    dest.deactivate();
                }
            }
        }
        let timeout = timeout_ticks(self.timeouts.of(state));
        if let Some(c) = self.conns.get_mut(index) {
            c.set_state(state);
            c.set_expires(now.wrapping_add(timeout));
        }
        // A TCP connection reaching ESTABLISHED assures its template (`ip_vs_control_assure_ct`).
        let template = self.conns.link(index);
        if state == ConnState::Established
            && template != NO_LINK
            && let Some(t) = self.conns.get_mut(template)
        {
            t.assure();
        }
    }

    pub(super) fn count(&mut self, index: ConnIndex, bytes: usize, inbound: bool) {
        let Some(conn) = self.conns.get(index) else { return };
        let (service, slot) = self.decode(conn.dest());
        self.count_fast(service, slot, bytes, inbound);
    }

    /// The state a packet of `flow` moves a connection in `current` to (UDP and the rest have
    /// one state).
    pub(super) fn next_state(&self, current: ConnState, flow: &Flow, direction: Direction) -> ConnState {
        if flow.proto == IpProtocol::TCP {
            tcp_transition(current, flow.flags, direction, self.config.secure_tcp)
        } else {
            ConnState::Udp
        }
    }

    /// Client → real server on connection `index`.
    pub(super) fn forward_in(
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
        let direction = if conn.no_output() { Direction::InputOnly } else { Direction::Input };
        self.set_state(index, self.next_state(conn.state(), flow, direction), now);
        self.count(index, flow.length, true);
        self.transmit_in(buf, summary, flow, conn.forward(), conn.real(), neighbours)
    }

    /// Sends a client's packet on to real server `real` by `forward`.
    pub(super) fn transmit_in(
        &mut self,
        buf: &mut PacketBuf<'_>,
        summary: &Summary,
        flow: &Flow,
        forward: Forward,
        real: (IpAddr, u16),
        neighbours: &impl Neighbours,
    ) -> Verdict {
        let mut summary = *summary;
        let caps = self.config.caps;
        let saved = HopSnapshot::take(buf.data(), &summary);
        let mut rw = Rewriter::new(buf.data_mut(), &mut summary, caps);
        if rw.decrement_hop_limit().is_err() {
            self.stats.count_drop(DropReason::TtlExceeded);
            return self
                .answer(buf, &summary, IcmpError::TimeExceeded, flow.dst.0, neighbours)
                .unwrap_or(Verdict::Drop(DropReason::TtlExceeded));
        }
        match forward {
            Forward::Nat => {
                if rw.set_dst(real.0, real.1).is_err() {
                    // set_dst checks before it writes: only the hop limit changed. The host
                    // gets the packet as it arrived.
                    saved.restore(buf.data_mut());
                    return self.pass();
                }
                self.send_to(buf, &mut summary, real.0, neighbours)
            }
            Forward::DirectRoute => self.send_to(buf, &mut summary, real.0, neighbours),
            Forward::Tunnel => self.tunnel(buf, &summary, flow, real.0, neighbours),
        }
    }
}

/// The bytes of an IP header that a hop-limit decrement changes (IPv4: TTL and header
/// checksum; IPv6: the hop limit), kept so that a packet handed to the host after a later step
/// refused can be given back as it arrived.
pub(super) struct HopSnapshot {
    at: usize,
    bytes: [u8; 8],
}

impl HopSnapshot {
    /// Bytes 4..12 of the IP header (covering TTL, protocol and checksum, or the hop limit).
    pub(super) fn take(data: &[u8], summary: &Summary) -> HopSnapshot {
        let at = summary.l3_offset + 4;
        let bytes = data.get(at..).and_then(|b| b.first_chunk::<8>()).copied().unwrap_or_default();
        HopSnapshot { at, bytes }
    }

    /// Puts them back.
    pub(super) fn restore(&self, data: &mut [u8]) {
        if let Some(b) = data.get_mut(self.at..).and_then(|b| b.first_chunk_mut::<8>()) {
            *b = self.bytes;
        }
    }
}
