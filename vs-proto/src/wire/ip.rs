//! What IPv4 and IPv6 share: fragment information and the IP version of a packet.

/// Fragment information of an IPv4 packet or of an IPv6 Fragment extension header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Fragment {
    /// The datagram identification (16 bits for IPv4, 32 for IPv6).
    pub ident: u32,
    /// Offset of this fragment's data in the original datagram, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

impl Fragment {
    /// True for the first fragment, which carries the transport header.
    #[must_use]
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}
