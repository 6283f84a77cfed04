//! The Internet checksum (RFC 1071): full computation, pseudo-headers, and RFC 1624 incremental
//! updates for 16-, 32- and 128-bit field changes.
//!
//! Sums are carried as a `u32` running sum of 16-bit big-endian words. [`sum`] adds in a 64-bit
//! accumulator and returns its result folded to 16 bits, so a caller can add a few more words
//! to it (pseudo-header fields, another buffer) without losing a carry.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::number::IpProtocol;

/// Adds `data` to a running one's-complement sum, as big-endian 16-bit words (an odd final byte
/// is padded with zero). The result is not folded or complemented.
#[must_use]
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    // Four bytes at a time into a 64-bit accumulator: no carries can be lost before folding.
    let mut wide = u64::from(acc);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut word = [0u8; 4];
        word.copy_from_slice(chunk);
        wide = wide.wrapping_add(u64::from(u32::from_be_bytes(word)));
    }
    let mut rest = chunks.remainder().chunks(2);
    for pair in &mut rest {
        let hi = pair.first().copied().unwrap_or(0);
        let lo = pair.get(1).copied().unwrap_or(0);
        wide = wide.wrapping_add(u64::from(u16::from_be_bytes([hi, lo])));
    }
    // Fold to 16 bits (end-around carry) so that callers can keep adding words to the result
    // without losing carries.
    while wide > 0xFFFF {
        wide = (wide & 0xFFFF).wrapping_add(wide >> 16);
    }
    u32::try_from(wide).unwrap_or(0xFFFF)
}

/// Folds a running sum into 16 bits (end-around carry), without complementing.
#[must_use]
#[inline]
pub const fn fold(acc: u32) -> u16 {
    // Two end-around carries fold any u32: the first leaves at most 0x1FFFE, the second at
    // most 0xFFFF. Branch-free on purpose: this runs several times per rewritten packet.
    let once = (acc & 0xFFFF).wrapping_add(acc >> 16);
    let twice = (once & 0xFFFF).wrapping_add(once >> 16);
    #[allow(clippy::cast_possible_truncation, clippy::as_conversions)]
    let folded = twice as u16;
    folded
}

/// The checksum of `data` alone: the complement of its folded sum (as in the IPv4 header).
#[must_use]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// The running sum of the IPv4 pseudo-header for a transport segment of `length` bytes.
#[must_use]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, length: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc = acc.wrapping_add(u32::from(proto.0));
    acc.wrapping_add(length >> 16).wrapping_add(length & 0xFFFF)
}

/// The running sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an upper-layer packet of
/// `length` bytes; `dst` is the final destination when a Routing header is present.
#[must_use]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: IpProtocol, length: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc = acc.wrapping_add(u32::from(proto.0));
    acc.wrapping_add(length >> 16).wrapping_add(length & 0xFFFF)
}

/// RFC 1624 equation 3 for one 16-bit word: the new checksum after a field changes from `old`
/// to `new`, given the current checksum `check` (as stored in the packet).
#[must_use]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    // HC' = ~(~HC + ~m + m')
    let acc = u32::from(!check).wrapping_add(u32::from(!old)).wrapping_add(u32::from(new));
    !fold(acc)
}

/// RFC 1624 update for a 32-bit field change (for example an IPv4 address).
#[must_use]
pub fn update32(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    update_words(check, old, new)
}

/// RFC 1624 update for a 128-bit field change (an IPv6 address).
#[must_use]
pub fn update128(check: u16, old: [u8; 16], new: [u8; 16]) -> u16 {
    update_words(check, old, new)
}

/// RFC 1624 update for a fixed-size field change; the loop has a constant trip count and
/// unrolls, so the per-packet cost is a handful of additions.
#[must_use]
#[inline]
pub fn update_words<const N: usize>(check: u16, old: [u8; N], new: [u8; N]) -> u16 {
    apply_delta(check, delta(0, old, new))
}

/// Adds the change of one field to a running checksum delta: the sum of the complements of the
/// old words and of the new words (RFC 1624 equation 3). Several changes covered by the same
/// checksum can be added up and applied once with [`apply_delta`].
#[must_use]
#[inline]
pub fn delta<const N: usize>(mut acc: u32, old: [u8; N], new: [u8; N]) -> u32 {
    // N is even for every field this is used on; with N known the loop unrolls and the
    // conversions cannot fail.
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        let word = |b: &[u8]| u16::from_be_bytes(b.try_into().unwrap_or([0, 0]));
        acc = acc.wrapping_add(u32::from(!word(o))).wrapping_add(u32::from(word(n)));
    }
    // Keep the running value small so that many deltas can be added without overflow.
    u32::from(fold(acc))
}

/// Applies a delta from [`delta`] to a stored checksum: `~(~HC + delta)`.
#[must_use]
#[inline]
pub fn apply_delta(check: u16, delta: u32) -> u16 {
    !fold(u32::from(!check).wrapping_add(delta))
}

/// RFC 1624 update for any even-length field change: `old` and `new` must be the same length.
#[must_use]
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    // Adding ~m for every old word is the same as adding (0xFFFF * n - sum(old)): fold the
    // complement of the old sum instead of complementing word by word.
    let old_sum = fold(sum(0, old));
    let new_sum = sum(0, new);
    let acc = u32::from(!check).wrapping_add(u32::from(!old_sum)).wrapping_add(new_sum);
    !fold(acc)
}

/// Verifies data whose checksum field is included: the folded sum of everything must be 0xFFFF.
#[must_use]
pub const fn is_valid(acc: u32) -> bool {
    fold(acc) == 0xFFFF
}

/// The transmitted form of a UDP checksum: a computed zero is sent as 0xFFFF, because zero means
/// "no checksum" (RFC 768; RFC 8200 §8.1 for IPv6).
#[must_use]
pub const fn udp_wire(check: u16) -> u16 {
    if check == 0 { 0xFFFF } else { check }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn known_ipv4_header() {
        // A header from Wikipedia's IPv4 checksum example; its checksum is b861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
        let mut with = hdr;
        with[10] = 0xb8;
        with[11] = 0x61;
        assert!(is_valid(sum(0, &with)));
    }

    #[test]
    fn update16_matches_recompute() {
        let mut data = [0x45u8, 0x00, 0x12, 0x34, 0xab, 0xcd, 0x00, 0x00];
        let c0 = checksum(&data);
        data[2] = 0xfe;
        data[3] = 0xdc;
        assert_eq!(update16(c0, 0x1234, 0xfedc), checksum(&data));
    }

    #[test]
    fn udp_zero_is_sent_as_ffff() {
        assert_eq!(udp_wire(0), 0xFFFF);
        assert_eq!(udp_wire(0x1234), 0x1234);
    }
}
