//! The fragment cache: later fragments of a datagram follow its first fragment to the same
//! connection. Fixed size (`SETS` × 4 ways), keyed by (source, destination, protocol,
//! identification), with a short timeout; the oldest way of a full set makes room.

use core::net::IpAddr;

use crate::conn::ConnIndex;
use crate::wire::IpProtocol;

/// Ways per set.
const WAYS: usize = 4;
/// Sets (256 entries in all).
const SETS: usize = 64;
/// How long a first fragment's mapping lasts, in connection ticks (30 s, Linux's
/// `ipfrag_time`).
pub(crate) const FRAGMENT_TIMEOUT_S: u32 = 30;

/// A datagram's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) struct FragmentKey {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) proto: IpProtocol,
    pub(crate) ident: u32,
}

#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Entry {
    key: FragmentKey,
    conn: ConnIndex,
    /// The datagram travels client → real server (else a NAT reply).
    inbound: bool,
    expires: u32,
}

/// The cache.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) struct FragmentCache {
    sets: [[Option<Entry>; WAYS]; SETS],
}

impl Default for FragmentCache {
    fn default() -> Self {
        FragmentCache { sets: [[None; WAYS]; SETS] }
    }
}

fn set_of(key: &FragmentKey) -> usize {
    let fold = |a: IpAddr| match a {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let x = u128::from(a);
            (x as u32) ^ ((x >> 32) as u32) ^ ((x >> 64) as u32) ^ ((x >> 96) as u32)
        }
    };
    let h = fold(key.src) ^ fold(key.dst).rotate_left(16) ^ key.ident ^ u32::from(key.proto.0);
    (h.wrapping_mul(0x9E37_79B9) >> 26) as usize % SETS
}

fn live(expires: u32, now: u32) -> bool {
    (now.wrapping_sub(expires) as i32) < 0
}

impl FragmentCache {
    /// Remembers that the datagram `key` belongs to `conn`.
    pub(crate) fn insert(&mut self, key: FragmentKey, conn: ConnIndex, inbound: bool, expires: u32, now: u32) {
        let Some(set) = self.sets.get_mut(set_of(&key)) else { return };
        let slot = set
            .iter()
            .position(|w| w.is_some_and(|e| e.key == key))
            .or_else(|| set.iter().position(|w| w.is_none_or(|e| !live(e.expires, now))))
            .or_else(|| {
                set.iter().enumerate().min_by_key(|(_, w)| w.map_or(0, |e| e.expires.wrapping_sub(now))).map(|(i, _)| i)
            });
        if let Some(way) = slot.and_then(|i| set.get_mut(i)) {
            *way = Some(Entry { key, conn, inbound, expires });
        }
    }

    /// The connection (and direction) of a later fragment of `key`.
    pub(crate) fn lookup(&self, key: &FragmentKey, now: u32) -> Option<(ConnIndex, bool)> {
        let set = self.sets.get(set_of(key))?;
        set.iter().flatten().find(|e| e.key == *key && live(e.expires, now)).map(|e| (e.conn, e.inbound))
    }
}
