//! What the engine tells the host to do with a packet.

use core::net::IpAddr;

use super::stats::DropReason;
use crate::wire::MacAddr;

/// The engine's decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Verdict {
    /// Send the (rewritten) packet now held in the buffer out of `port`: `next_hop` is the
    /// address the link-layer destination was resolved for (a real server, or the client for
    /// replies and ICMP errors).
    Transmit {
        /// The neighbour the frame is addressed to.
        next_hop: IpAddr,
        /// The egress port the host's neighbour lookup named for it.
        port: u16,
    },
    /// Not for a virtual service (or for the director itself): hand it to the host unchanged.
    Pass,
    /// Dropped, with the reason (also counted).
    Drop(DropReason),
}

/// A neighbour as the host knows it: its link-layer address and the port that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Neighbour {
    /// Its MAC address.
    pub mac: MacAddr,
    /// The egress port (0 on a single-port host).
    pub port: u16,
}

/// The host's neighbour table (its ARP / NDP cache and routes, or static entries): where to
/// send a frame for a next hop.
pub trait Neighbours {
    /// The neighbour for `next_hop`, if known.
    fn lookup(&self, next_hop: IpAddr) -> Option<Neighbour>;
}

/// A single-port host: a function from address to MAC address; the port is 0.
impl<F: Fn(IpAddr) -> Option<MacAddr>> Neighbours for F {
    fn lookup(&self, next_hop: IpAddr) -> Option<Neighbour> {
        self(next_hop).map(|mac| Neighbour { mac, port: 0 })
    }
}
