//! Time: connection expiry (lazy and by budgeted sweep), template retries, flood defence
//! levels and drop_entry, and the 2-second rate estimator.

use super::*;

impl<'a, const D: usize, M: TableMemory, S: AsRef<[ServiceSlot<D>]> + AsMut<[ServiceSlot<D>]>> Engine<'a, D, M, S> {
    /// Removes a connection and unbinds it from its real server. A template that still
    /// controls connections is not removed but retried 60 s later (`ip_vs_conn_expire`). When
    /// a connection is `forced` out (reuse, a removed server) and its template is left
    /// controlling nothing without ever having been assured, the template goes too.
    pub(super) fn expire(&mut self, index: ConnIndex, now: u32, forced: bool) {
        let Some(conn) = self.conns.get(index).copied() else { return };
        if conn.is_template() && self.conns.link(index) > 0 {
            if let Some(c) = self.conns.get_mut(index) {
                c.set_expires(now.wrapping_add(timeout_ticks(60)));
            }
            return;
        }
        let controller = if conn.is_template() { NO_LINK } else { self.conns.link(index) };
        self.conns.remove(index);
        if let Some(n) = self.class_entries.get_mut(usize::from(conn.proto() != IpProtocol::TCP)) {
            *n = n.saturating_sub(1);
        }
        self.stats.expired = self.stats.expired.wrapping_add(1);
        let kind = if conn.is_template() {
            ConnKind::Template
        } else if conn.state().is_active() {
            ConnKind::Active
        } else {
            ConnKind::Inactive
        };
        self.unbind(conn.dest(), kind);
        if controller != NO_LINK {
            let left = self.conns.link(controller).saturating_sub(1);
            self.conns.set_link(controller, left);
            if forced && left == 0 && self.conns.get(controller).is_some_and(|t| !t.is_assured()) {
                self.expire(controller, now, true);
            }
        }
    }

    /// Unbinds a connection or template from its real server (counters, overload, references)
    /// and frees slots nothing refers to any more.
    pub(super) fn unbind(&mut self, dest: u16, kind: ConnKind) {
        let (service, slot) = self.decode(dest);
        let Some(entry) = self.services.as_mut().get_mut(service) else { return };
        let Some(svc) = entry.0.as_mut() else { return };
        if let Some(Some(real)) = svc.reals.get_mut(slot) {
            let id = real.id;
            real.refs = real.refs.saturating_sub(1);
            let gone = !real.available && real.refs == 0;
            if real.available {
                svc.dests.unbind(id, kind);
            }
            if gone && let Some(r) = svc.reals.get_mut(slot) {
                *r = None;
            }
        }
        if svc.deleted && svc.unused() {
            entry.0 = None;
        }
    }

    /// Expires connections whose timers ran out, visiting at most `budget` table slots from
    /// where the last sweep stopped; returns how many expired. Call it regularly (each slot is
    /// visited once per `capacity / budget` calls).
    pub fn sweep(&mut self, now_ms: u64, budget: usize) -> usize {
        let now = ticks(now_ms);
        let mut due: heapless::Vec<ConnIndex, 64> = heapless::Vec::new();
        let mut expired_count = 0;
        let mut remaining = budget;
        while remaining > 0 {
            let chunk = remaining.min(64);
            due.clear();
            self.conns.sweep(chunk, |t, i| {
                if t.get(i).is_some_and(|c| expired(c.expires(), now)) {
                    let _ = due.push(i);
                }
            });
            for &i in &due {
                let before = self.stats.expired;
                self.expire(i, now, false);
                expired_count += usize::from(self.stats.expired != before);
            }
            remaining -= chunk;
        }
        for svc in self.services.as_mut().iter_mut().filter_map(|s| s.0.as_mut()) {
            vs_sched::Scheduler::tick(&mut svc.sched, svc.dests.as_slice(), now_ms);
        }
        self.estimate(now_ms);
        expired_count + self.defend(now_ms)
    }

    /// Once a second of host time: re-evaluates the defence levels from the table's occupancy
    /// and, while drop_entry is on, drops a bounded number of entries that are not yet
    /// established. Returns how many were dropped.
    pub(super) fn defend(&mut self, now_ms: u64) -> usize {
        let next = *self.next_defence.get_or_insert(now_ms.saturating_add(1000));
        if now_ms < next {
            return 0;
        }
        self.next_defence = Some(now_ms.saturating_add(1000));
        let d = self.config.defence;
        let capacity = self.conns.capacity();
        let threshold = if d.threshold == 0 { capacity / 4 * 3 } else { d.threshold.min(capacity) };
        let used = self.conns.len();
        let pressure = used > threshold;
        let secure_before = defence::on(d.secure_tcp);
        let modes = [d.drop_entry, d.drop_packet, d.secure_tcp].map(|m| defence::next_mode(m, pressure));
        self.config.defence.drop_entry = modes[0];
        self.config.defence.drop_packet = modes[1];
        self.config.defence.secure_tcp = modes[2];
        // secure_tcp switches the state table on level changes only.
        let secure_now = defence::on(modes[2]);
        if secure_now != secure_before || d.secure_tcp == 3 {
            self.config.secure_tcp = secure_now;
        }
        // drop_packet's rate: amemthresh / (amemthresh − available), with the free slots below
        // the threshold standing for memory; am_droprate when always on.
        self.drop_packet.rate = match modes[1] {
            3 => d.am_droprate,
            2 => {
                let amemthresh = capacity - threshold;
                let available = capacity - used;
                u32::try_from(amemthresh / amemthresh.saturating_sub(available).max(1)).unwrap_or(u32::MAX).max(1)
            }
            _ => 0,
        };
        if !defence::on(modes[0]) {
            return 0;
        }
        self.drop_entries(now_ms)
    }

    /// drop_entry: from a random place, looks at 1/32 of the table and drops TCP entries still
    /// in SYN_RECV or SYNACK and templates never assured that control nothing. (The kernel
    /// also drops some established entries by a rate rule on per-connection packet counts,
    /// which this table does not keep.)
    pub(super) fn drop_entries(&mut self, now_ms: u64) -> usize {
        let capacity = self.conns.capacity();
        self.rng = self.rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let start = (self.rng >> 33) as usize % capacity.max(1);
        let budget = (capacity / 32).max(1);
        let now = ticks(now_ms);
        let mut dropped = 0;
        for k in 0..budget {
            let index = ((start + k) % capacity) as ConnIndex;
            let Some(conn) = self.conns.get(index).copied() else { continue };
            let victim = if conn.is_template() {
                !conn.is_assured() && self.conns.link(index) == 0
            } else {
                conn.proto() == IpProtocol::TCP && matches!(conn.state(), ConnState::SynRecv | ConnState::SynAck)
            };
            if victim {
                self.expire(index, now, true);
                dropped += 1;
            }
        }
        self.stats.defence_dropped = self.stats.defence_dropped.wrapping_add(dropped as u64);
        dropped
    }

    /// Runs the rate estimator for every 2-second period that has ended (a few at most: after
    /// a long gap the averages simply restart from the current counters).
    pub(super) fn estimate(&mut self, now_ms: u64) {
        const PERIOD_MS: u64 = 2000;
        let next = *self.next_estimate.get_or_insert(now_ms.saturating_add(PERIOD_MS));
        if now_ms < next {
            return;
        }
        let periods = ((now_ms - next) / PERIOD_MS + 1).min(8);
        for _ in 0..periods {
            self.stats.rates.update(&self.stats.total);
            for svc in self.services.as_mut().iter_mut().filter_map(|s| s.0.as_mut()) {
                svc.estimate();
            }
        }
        self.next_estimate = Some(next.saturating_add(periods * PERIOD_MS).max(now_ms.saturating_add(1)));
    }
}
