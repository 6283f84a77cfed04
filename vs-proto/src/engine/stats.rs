//! Counters: per service and per real server (IPVS's conns, packets and bytes each way) and a
//! global counter for every drop reason.
#![allow(clippy::as_conversions)] // usize → u64 lengths and enum discriminants as indices.

/// IPVS's five counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Connections scheduled.
    pub conns: u64,
    /// Client → real server packets.
    pub in_packets: u64,
    /// Real server → client packets (NAT replies).
    pub out_packets: u64,
    /// Client → real server bytes (IP packet length).
    pub in_bytes: u64,
    /// Real server → client bytes.
    pub out_bytes: u64,
}

impl Counters {
    pub(crate) fn count_in(&mut self, bytes: usize) {
        self.in_packets = self.in_packets.wrapping_add(1);
        self.in_bytes = self.in_bytes.wrapping_add(bytes as u64);
    }

    pub(crate) fn count_out(&mut self, bytes: usize) {
        self.out_packets = self.out_packets.wrapping_add(1);
        self.out_bytes = self.out_bytes.wrapping_add(bytes as u64);
    }
}

macro_rules! drop_reasons {
    ( $( $(#[$m:meta])* $name:ident = $text:literal, )* ) => {
        /// Why the engine dropped a packet.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$m])* $name, )*
        }

        impl DropReason {
            /// Every reason, in order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$name, )* ];

            /// A short description.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self { $( DropReason::$name => $text, )* }
            }

            /// The description as a NUL-terminated string, for C.
            #[must_use]
            pub const fn as_cstr(self) -> &'static core::ffi::CStr {
                match self {
                    $( DropReason::$name => match core::ffi::CStr::from_bytes_with_nul(concat!($text, "\0").as_bytes()) {
                        Ok(c) => c,
                        Err(_) => c"",
                    }, )*
                }
            }
        }
    };
}

drop_reasons! {
    /// A checksum the policy verifies was wrong.
    BadChecksum = "bad checksum",
    /// The scheduler found no real server ("no destination available"); an ICMP port
    /// unreachable went back when possible.
    NoDestination = "no destination available",
    /// The connection table is full: the new connection was refused.
    TableFull = "connection table full",
    /// The packet belongs to a connection whose real server was removed (expire_nodest_conn 0).
    DestRemoved = "real server removed",
    /// TTL / hop limit exhausted (an ICMP time exceeded went back when possible).
    TtlExceeded = "ttl exceeded",
    /// The tunnelled packet would exceed the MTU with DF set (an ICMP went back).
    TooBig = "packet too big",
    /// No link-layer address for the next hop.
    NoNeighbour = "no neighbour",
    /// No tunnel source address configured for the real server's family.
    NoTunnelSource = "no tunnel source address",
    /// The buffer had no room for the headers to add.
    NoHeadroom = "no headroom",
    /// A later fragment whose first fragment was not seen (when such fragments are dropped).
    UnmatchedFragment = "unmatched fragment",
    /// drop_packet: a new-connection packet dropped while the table is under pressure.
    Defence = "dropped by defence (drop_packet)",
    /// The protocol class (TCP or other) reached its share of the table.
    ClassFull = "protocol class full",
    /// An ICMP error's quoted packet could not be rewritten after its outer header was (the
    /// half-changed packet is not handed to the host).
    BadQuote = "unwritable icmp quote",
}

/// Number of drop reasons.
pub const DROP_REASONS: usize = DropReason::ALL.len();

/// Engine-wide counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GlobalStats {
    /// Totals over every service.
    pub total: Counters,
    /// Rates of the totals.
    pub rates: Estimator,
    /// Packets dropped, per [`DropReason`].
    pub drops: [u64; DROP_REASONS],
    /// Packets handed back to the host.
    pub passed: u64,
    /// Connections expired.
    pub expired: u64,
    /// Entries dropped by drop_entry.
    pub defence_dropped: u64,
}

impl GlobalStats {
    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        if let Some(d) = self.drops.get_mut(reason as usize) {
            *d = d.wrapping_add(1);
        }
    }

    /// Drops counted for one reason.
    #[must_use]
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops.get(reason as usize).copied().unwrap_or(0)
    }
}

/// Rates as `ipvsadm --rate` shows them: per second, averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub in_pps: u64,
    /// Outgoing packets per second.
    pub out_pps: u64,
    /// Incoming bytes per second.
    pub in_bps: u64,
    /// Outgoing bytes per second.
    pub out_bps: u64,
}

/// IPVS's rate estimator (`ip_vs_est.c`): every 2 s each counter's rate over the interval
/// enters an exponentially weighted average with weight 1/4, in fixed point (conns and packets
/// scaled by 2^10, bytes by 2^5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Estimator {
    last: Counters,
    /// conns, in packets, out packets (× 2^10); in bytes, out bytes (× 2^5).
    avg: [i64; 5],
}

impl Estimator {
    /// Folds in the counters at the end of a 2-second interval.
    pub fn update(&mut self, now: &Counters) {
        let delta = |new: u64, old: u64| i64::try_from(new.wrapping_sub(old)).unwrap_or(i64::MAX);
        let rates = [
            delta(now.conns, self.last.conns) << 9,
            delta(now.in_packets, self.last.in_packets) << 9,
            delta(now.out_packets, self.last.out_packets) << 9,
            delta(now.in_bytes, self.last.in_bytes) << 4,
            delta(now.out_bytes, self.last.out_bytes) << 4,
        ];
        for (avg, rate) in self.avg.iter_mut().zip(rates) {
            *avg = avg.wrapping_add(rate.wrapping_sub(*avg) >> 2);
        }
        self.last = *now;
    }

    /// The averages, rounded as ipvsadm reads them.
    #[must_use]
    pub fn rates(&self) -> Rates {
        let read = |v: i64, round: i64, shift: u32| u64::try_from(v.wrapping_add(round) >> shift).unwrap_or(0);
        let [c, ip, op, ib, ob] = self.avg;
        Rates {
            cps: read(c, 0x1FF, 10),
            in_pps: read(ip, 0x1FF, 10),
            out_pps: read(op, 0x1FF, 10),
            in_bps: read(ib, 0xF, 5),
            out_bps: read(ob, 0xF, 5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimator_follows_ipvs_arithmetic() {
        let mut e = Estimator::default();
        let mut c = Counters { conns: 100, in_bytes: 20_000, ..Counters::default() };
        e.update(&c);
        // (100 << 9) / 4 = 12800 -> (12800 + 511) >> 10 = 12; bytes (20000 << 4) / 4 = 80000 -> 2500.
        assert_eq!(e.rates().cps, 12);
        assert_eq!(e.rates().in_bps, 2500);
        for _ in 0..40 {
            c.conns += 100;
            c.in_bytes += 20_000;
            e.update(&c);
        }
        assert_eq!(e.rates().cps, 50, "100 connections every 2 s");
        assert_eq!(e.rates().in_bps, 10_000);
    }
}
