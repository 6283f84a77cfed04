//! Linux "cooked" capture records (LINKTYPE_LINUX_SLL 113 and LINKTYPE_LINUX_SLL2 276, what
//! `tcpdump -i any` writes) read as the Ethernet frames they stand for, so that tools built on
//! the Ethernet parser can take them: the sender's address when it is a MAC, no destination
//! (the record does not carry one), the protocol as the EtherType.

/// LINKTYPE_LINUX_SLL.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// LINKTYPE_LINUX_SLL2.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;
/// The packet type of a frame the capturing host sent (PACKET_OUTGOING).
const OUTGOING: u16 = 4;

/// A cooked record's link layer as Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookedRecord {
    /// The Ethernet header standing for the cooked one.
    pub ethernet: [u8; 14],
    /// Where the network-layer packet starts in the record.
    pub payload_at: usize,
    /// The capturing host sent the frame (it did not receive it).
    pub outgoing: bool,
}

/// Reads a cooked record's header; `None` for other link types and records too short.
#[must_use]
pub fn cooked_as_ethernet(linktype: u32, record: &[u8]) -> Option<CookedRecord> {
    let be16 = |at: usize| record.get(at..)?.first_chunk::<2>().map(|b| u16::from_be_bytes(*b));
    let (pkttype, halen, addr, protocol, payload_at) = match linktype {
        LINKTYPE_LINUX_SLL => (be16(0)?, be16(4)?, record.get(6..14)?, be16(14)?, 16),
        LINKTYPE_LINUX_SLL2 => {
            (u16::from(*record.get(10)?), u16::from(*record.get(11)?), record.get(12..20)?, be16(0)?, 20)
        }
        _ => return None,
    };
    if record.len() < payload_at {
        return None;
    }
    let mut ethernet = [0u8; 14];
    if halen == 6
        && let (Some(src), Some(mac)) = (ethernet.get_mut(6..12), addr.get(..6))
    {
        src.copy_from_slice(mac);
    }
    if let Some(ty) = ethernet.get_mut(12..14) {
        ty.copy_from_slice(&protocol.to_be_bytes());
    }
    Some(CookedRecord { ethernet, payload_at, outgoing: pkttype == OUTGOING })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sll_and_sll2_records_read_as_ethernet() {
        // SLL: packet type 0 (to us), ARPHRD_ETHER, address length 6, the MAC, IPv4.
        let mut sll = [0u8; 20];
        sll[2..4].copy_from_slice(&1u16.to_be_bytes());
        sll[4..6].copy_from_slice(&6u16.to_be_bytes());
        sll[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 7]);
        sll[14..16].copy_from_slice(&0x0800u16.to_be_bytes());
        let r = cooked_as_ethernet(LINKTYPE_LINUX_SLL, &sll).unwrap();
        assert_eq!(r.ethernet, [0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 7, 0x08, 0x00]);
        assert_eq!((r.payload_at, r.outgoing), (16, false));
        // SLL2: protocol first, packet type 4 (outgoing) at 10, address length 6 at 11.
        let mut sll2 = [0u8; 24];
        sll2[0..2].copy_from_slice(&0x86DDu16.to_be_bytes());
        sll2[10] = 4;
        sll2[11] = 6;
        sll2[12..18].copy_from_slice(&[2, 0, 0, 0, 0, 8]);
        let r = cooked_as_ethernet(LINKTYPE_LINUX_SLL2, &sll2).unwrap();
        assert_eq!(r.ethernet, [0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 8, 0x86, 0xDD]);
        assert_eq!((r.payload_at, r.outgoing), (20, true));
        // A non-MAC address is left out; short records and other link types are refused.
        sll[5] = 4;
        assert_eq!(cooked_as_ethernet(LINKTYPE_LINUX_SLL, &sll).unwrap().ethernet[6..12], [0; 6]);
        assert_eq!(cooked_as_ethernet(LINKTYPE_LINUX_SLL, &sll[..15]), None);
        assert_eq!(cooked_as_ethernet(LINKTYPE_LINUX_SLL2, &sll2[..19]), None);
        assert_eq!(cooked_as_ethernet(1, &sll), None);
    }
}
