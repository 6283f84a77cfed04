//! What the engine tells the host to do with a packet.

use core::net::IpAddr;

use super::stats::DropReason;
use crate::wire::MacAddr;

/// The engine's decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Verdict {
    /// Send the (rewritten) packet now held in the buffer: `next_hop` is the address the L2
    /// destination was resolved for (a real server, or the client for replies and ICMP errors).
    Transmit {
        /// The neighbour the frame is addressed to.
        next_hop: IpAddr,
    },
    /// Not for a virtual service (or for the director itself): hand it to the host unchanged.
    Pass,
    /// Dropped, with the reason (also counted).
    Drop(DropReason),
}

/// The host's neighbour table: the MAC address to use for a next hop (its own ARP / NDP
/// cache, or static entries).
pub trait Neighbours {
    /// The link-layer address for `next_hop`, if known.
    fn lookup(&self, next_hop: IpAddr) -> Option<MacAddr>;
}

impl<F: Fn(IpAddr) -> Option<MacAddr>> Neighbours for F {
    fn lookup(&self, next_hop: IpAddr) -> Option<MacAddr> {
        self(next_hop)
    }
}
