//! Destinations (real servers) as the schedulers see them, with IPVS's connection accounting and
//! overload flag (`ip_vs_bind_dest` / `ip_vs_unbind_dest`).

use core::net::IpAddr;

use bitflags::bitflags;

bitflags! {
    /// Destination state flags (IPVS `IP_VS_DEST_F_*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct DestFlags: u8 {
        /// Linked in a service (cleared when the destination is removed).
        const AVAILABLE = 0x1;
        /// The upper connection threshold was reached; schedulers skip the destination.
        const OVERLOAD = 0x2;
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for DestFlags {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "DestFlags({=u8:#x})", self.bits());
    }
}

/// A stable handle for a destination: a slot and a generation, so that a handle kept by a
/// scheduler (rr's position, an lblc cache entry) never names a later destination that reused
/// the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DestId(pub u32);

/// The kind of connection being bound to or unbound from a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConnKind {
    /// Counted in `activeconns` (TCP SYN_RECV / ESTABLISHED).
    Active,
    /// Counted in `inactconns` (every other state, and UDP).
    Inactive,
    /// A persistence template, counted in `persistconns`.
    Template,
}

/// A destination (real server) with everything a scheduler reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dest {
    /// Stable handle.
    pub id: DestId,
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
    /// Weight (0 = quiesced: no new connections).
    pub weight: u32,
    /// The last non-zero weight (kept when the weight is set to 0; mh uses it).
    pub last_weight: u32,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Persistence templates pointing here.
    pub persistent: u32,
    /// Upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub lower_threshold: u32,
    /// AVAILABLE / OVERLOAD.
    pub flags: DestFlags,
}

impl Dest {
    /// A new, available destination with no connections.
    #[must_use]
    pub fn new(id: DestId, addr: IpAddr, port: u16, weight: u32) -> Dest {
        Dest {
            id,
            addr,
            port,
            weight,
            last_weight: weight,
            active: 0,
            inactive: 0,
            persistent: 0,
            upper_threshold: 0,
            lower_threshold: 0,
            flags: DestFlags::AVAILABLE,
        }
    }

    /// True when the upper threshold has tripped.
    #[must_use]
    pub fn is_overloaded(&self) -> bool {
        self.flags.contains(DestFlags::OVERLOAD)
    }

    /// True when the destination is linked in its service.
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.flags.contains(DestFlags::AVAILABLE)
    }

    /// The lc family's load: `activeconns × 256 + inactconns` (`ip_vs_dest_conn_overhead`).
    #[must_use]
    pub fn overhead(&self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }

    /// Total connections, as the thresholds count them.
    #[must_use]
    pub fn total_conns(&self) -> u64 {
        u64::from(self.active) + u64::from(self.inactive)
    }

    /// Sets the weight as `ipvsadm -e` does, keeping the last non-zero weight.
    pub fn set_weight(&mut self, weight: u32) {
        self.weight = weight;
        if weight != 0 {
            self.last_weight = weight;
        }
    }

    /// Sets the thresholds as an edit does: the overload flag is cleared when the new upper
    /// threshold is 0 or larger than before (`__ip_vs_update_dest`).
    pub fn set_thresholds(&mut self, upper: u32, lower: u32) {
        if upper == 0 || upper > self.upper_threshold {
            self.flags.remove(DestFlags::OVERLOAD);
        }
        self.upper_threshold = upper;
        self.lower_threshold = lower;
    }

    /// Binds a connection or template: counts it, then sets OVERLOAD when the total reaches the
    /// upper threshold.
    pub fn bind(&mut self, kind: ConnKind) {
        match kind {
            ConnKind::Active => self.active = self.active.saturating_add(1),
            ConnKind::Inactive => self.inactive = self.inactive.saturating_add(1),
            ConnKind::Template => self.persistent = self.persistent.saturating_add(1),
        }
        if self.upper_threshold != 0 && self.total_conns() >= u64::from(self.upper_threshold) {
            self.flags.insert(DestFlags::OVERLOAD);
        }
    }

    /// Unbinds a connection or template: uncounts it, then clears OVERLOAD below the lower
    /// threshold, or below 3/4 of the upper one when there is no lower threshold, or at once
    /// when there is neither.
    pub fn unbind(&mut self, kind: ConnKind) {
        match kind {
            ConnKind::Active => self.active = self.active.saturating_sub(1),
            ConnKind::Inactive => self.inactive = self.inactive.saturating_sub(1),
            ConnKind::Template => self.persistent = self.persistent.saturating_sub(1),
        }
        let total = self.total_conns();
        let clear = if self.lower_threshold != 0 {
            total < u64::from(self.lower_threshold)
        } else if self.upper_threshold != 0 {
            total * 4 < u64::from(self.upper_threshold) * 3
        } else {
            true
        };
        if clear {
            self.flags.remove(DestFlags::OVERLOAD);
        }
    }

    /// A connection moved from inactive to active (TCP reached ESTABLISHED): counters only,
    /// the overload flag is left alone as in IPVS.
    pub fn activate(&mut self) {
        self.inactive = self.inactive.saturating_sub(1);
        self.active = self.active.saturating_add(1);
    }

    /// A connection moved from active to inactive (TCP left ESTABLISHED): counters only.
    pub fn deactivate(&mut self) {
        self.active = self.active.saturating_sub(1);
        self.inactive = self.inactive.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn dest() -> Dest {
        Dest::new(DestId(1), IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 80, 1)
    }

    #[test]
    fn overload_set_at_upper_cleared_below_lower() {
        let mut d = dest();
        d.set_thresholds(4, 2);
        for _ in 0..3 {
            d.bind(ConnKind::Active);
        }
        assert!(!d.is_overloaded());
        d.bind(ConnKind::Inactive);
        assert!(d.is_overloaded(), "set when active + inactive reaches the upper threshold");
        d.unbind(ConnKind::Active);
        d.unbind(ConnKind::Active);
        assert!(d.is_overloaded(), "2 is not below the lower threshold 2");
        d.unbind(ConnKind::Active);
        assert!(!d.is_overloaded());
    }

    #[test]
    fn without_lower_threshold_clears_below_three_quarters() {
        let mut d = dest();
        d.set_thresholds(8, 0);
        for _ in 0..8 {
            d.bind(ConnKind::Active);
        }
        assert!(d.is_overloaded());
        d.unbind(ConnKind::Active); // 7: 28 < 24? no
        d.unbind(ConnKind::Active); // 6: 24 < 24? no
        assert!(d.is_overloaded());
        d.unbind(ConnKind::Active); // 5: 20 < 24
        assert!(!d.is_overloaded());
    }

    #[test]
    fn moving_between_active_and_inactive_keeps_the_flag() {
        let mut d = dest();
        d.set_thresholds(1, 0);
        d.bind(ConnKind::Inactive);
        assert!(d.is_overloaded());
        d.activate();
        d.deactivate();
        assert!(d.is_overloaded());
        assert_eq!((d.active, d.inactive), (0, 1));
    }

    #[test]
    fn weight_zero_keeps_last_weight_and_edit_clears_overload() {
        let mut d = dest();
        d.set_weight(5);
        d.set_weight(0);
        assert_eq!((d.weight, d.last_weight), (0, 5));
        d.set_thresholds(1, 0);
        d.bind(ConnKind::Active);
        assert!(d.is_overloaded());
        d.set_thresholds(1, 0);
        assert!(d.is_overloaded(), "same upper threshold keeps the flag");
        d.set_thresholds(2, 0);
        assert!(!d.is_overloaded(), "a larger upper threshold clears it");
    }
}
