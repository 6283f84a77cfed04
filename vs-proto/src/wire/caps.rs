//! Checksum policy for hosts with checksum offload (after smoltcp's `ChecksumCapabilities`).

use super::error::{Error, Result};
use super::number::IpProtocol;
use super::summary::{L3, Summary};

/// What software does with one kind of checksum, per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Checksum {
    /// Verify on receive and compute (update) on transmit.
    #[default]
    Both,
    /// Verify on receive; transmit is left to hardware.
    Rx,
    /// Compute on transmit; receive was verified by hardware (or must not be, as for Linux
    /// packets marked `TP_STATUS_CSUMNOTREADY`).
    Tx,
    /// Leave both directions to hardware.
    None,
}

impl Checksum {
    /// True when received packets are verified in software.
    #[must_use]
    pub const fn rx(self) -> bool {
        matches!(self, Checksum::Both | Checksum::Rx)
    }

    /// True when rewrites update this checksum in software. When false the field is left
    /// untouched for the hardware to fill in.
    #[must_use]
    pub const fn tx(self) -> bool {
        matches!(self, Checksum::Both | Checksum::Tx)
    }
}

/// The checksum policy per protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChecksumCaps {
    /// The IPv4 header checksum.
    pub ipv4: Checksum,
    /// TCP.
    pub tcp: Checksum,
    /// UDP.
    pub udp: Checksum,
    /// ICMPv4.
    pub icmpv4: Checksum,
    /// ICMPv6.
    pub icmpv6: Checksum,
}

impl ChecksumCaps {
    /// Everything in software (the default).
    #[must_use]
    pub const fn software() -> ChecksumCaps {
        ChecksumCaps::all(Checksum::Both)
    }

    /// The same policy for every protocol.
    #[must_use]
    pub const fn all(policy: Checksum) -> ChecksumCaps {
        ChecksumCaps { ipv4: policy, tcp: policy, udp: policy, icmpv4: policy, icmpv6: policy }
    }

    /// The policy for a transport protocol (`None` for protocols without a checksum we handle).
    #[must_use]
    pub fn for_l4(&self, proto: IpProtocol) -> Option<Checksum> {
        match proto {
            IpProtocol::TCP => Some(self.tcp),
            IpProtocol::UDP => Some(self.udp),
            IpProtocol::ICMP => Some(self.icmpv4),
            IpProtocol::ICMPV6 => Some(self.icmpv6),
            _ => None,
        }
    }

    /// Verifies the checksums the policy asks software to verify on receive, on a packet that
    /// [`Summary`] parsed successfully. Fragments' transport checksums cannot be checked and pass.
    ///
    /// # Errors
    /// [`Error::Ipv4BadChecksum`], [`Error::TcpBadChecksum`], [`Error::UdpBadChecksum`] or
    /// [`Error::IcmpBadChecksum`].
    pub fn verify(&self, summary: &Summary, packet: &[u8]) -> Result<()> {
        if summary.l3 == L3::Ipv4 && self.ipv4.rx() && summary.ipv4_checksum_ok(packet) == Some(false) {
            return Err(Error::Ipv4BadChecksum);
        }
        let Some(proto) = summary.proto else { return Ok(()) };
        if !self.for_l4(proto).is_some_and(Checksum::rx) || summary.l4_checksum_ok(packet) != Some(false) {
            return Ok(());
        }
        Err(match proto {
            IpProtocol::TCP => Error::TcpBadChecksum,
            IpProtocol::UDP => Error::UdpBadChecksum,
            _ => Error::IcmpBadChecksum,
        })
    }
}
