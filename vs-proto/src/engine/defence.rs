//! Defence against connection floods, after IPVS's `drop_entry`, `drop_packet` and
//! `secure_tcp` (the kernel's `update_defense_level`), for a fixed-size table: an occupancy threshold takes the
//! place of the kernel's free-memory threshold (`amemthresh`).
//!
//! Each strategy has IPVS's mode: 0 off; 1 automatic, currently off (switches to 2 when the
//! table is above the threshold); 2 automatic, currently on (back to 1 below it); 3 always on.
//! The levels are re-evaluated once a second of host time, from the engine's sweep.

/// Defence settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Defence {
    /// Connections in the table above which the table counts as under pressure (the
    /// kernel's "low memory"). Default: 3/4 of the capacity (0 here means that default).
    pub threshold: usize,
    /// `drop_entry` mode (0..3).
    pub drop_entry: u8,
    /// `drop_packet` mode (0..3).
    pub drop_packet: u8,
    /// `secure_tcp` mode (0..3).
    pub secure_tcp: u8,
    /// `am_droprate`: with `drop_packet` 3, drop one of this many new-connection packets.
    pub am_droprate: u32,
    /// Most entries (connections and templates) of protocols other than TCP; 0 = no limit.
    /// Keeps a UDP flood from taking the slots TCP needs.
    pub max_other: usize,
    /// Most TCP entries; 0 = no limit.
    pub max_tcp: usize,
}

impl Default for Defence {
    fn default() -> Self {
        Defence {
            threshold: 0,
            drop_entry: 0,
            drop_packet: 0,
            secure_tcp: 0,
            am_droprate: 10,
            max_other: 0,
            max_tcp: 0,
        }
    }
}

/// The next level of a strategy in `mode` (as the kernel keeps it: the mode itself moves
/// between 1 and 2), given whether the table is under pressure.
pub(crate) fn next_mode(mode: u8, pressure: bool) -> u8 {
    match (mode, pressure) {
        (1, true) => 2,
        (2, false) => 1,
        (m, _) => m,
    }
}

/// True when a strategy in this mode is currently on.
pub(crate) fn on(mode: u8) -> bool {
    mode >= 2
}

/// The state the engine keeps for `drop_packet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) struct DropPacket {
    /// Drop one of every `rate` new-connection packets (0: none).
    pub(crate) rate: u32,
    pub(crate) counter: u32,
}

impl DropPacket {
    /// `ip_vs_todrop`: true for one packet in every `rate`.
    pub(crate) fn todrop(&mut self) -> bool {
        if self.rate == 0 {
            return false;
        }
        self.counter = self.counter.saturating_sub(1);
        if self.counter > 0 {
            return false;
        }
        self.counter = self.rate;
        true
    }
}
