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
}

/// Number of drop reasons.
pub const DROP_REASONS: usize = DropReason::ALL.len();

/// Engine-wide counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GlobalStats {
    /// Totals over every service.
    pub total: Counters,
    /// Packets dropped, per [`DropReason`].
    pub drops: [u64; DROP_REASONS],
    /// Packets handed back to the host.
    pub passed: u64,
    /// Connections expired.
    pub expired: u64,
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
