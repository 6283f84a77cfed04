//! The hashes the kernel's hashing schedulers use, bit for bit: the golden-ratio `hash_32`
//! (sh, dh) and the 64-bit kernel's `hsiphash` (SipHash-1-3, output truncated to 32 bits) with
//! mh's fixed keys.

use core::net::IpAddr;

/// The kernel's `GOLDEN_RATIO_32`.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// `hash_32(val, bits)`: multiply by the golden ratio and keep the top `bits` bits.
#[must_use]
pub fn hash_32(val: u32, bits: u32) -> u32 {
    let product = val.wrapping_mul(GOLDEN_RATIO_32);
    product.checked_shr(32u32.saturating_sub(bits)).unwrap_or(0)
}

/// An address as the hashing schedulers fold it into 32 bits (host order): IPv4 as is, IPv6 as
/// the XOR of its four 32-bit words.
#[must_use]
pub fn fold_addr(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            let word = |i: usize| {
                let mut w = [0u8; 4];
                if let Some(src) = o.get(i..i + 4) {
                    w.copy_from_slice(src);
                }
                u32::from_be_bytes(w)
            };
            word(0) ^ word(4) ^ word(8) ^ word(12)
        }
    }
}

/// A 128-bit SipHash key as two 64-bit words (the kernel's `hsiphash_key_t` on 64-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipKey(pub u64, pub u64);

/// mh's first key (`offset` and lookup): both words 2654435761.
pub const MH_KEY1: SipKey = SipKey(2_654_435_761, 2_654_435_761);
/// mh's second key (`skip`): both words 2654446892.
pub const MH_KEY2: SipKey = SipKey(2_654_446_892, 2_654_446_892);

/// The kernel's `hsiphash(&v, 4, key)` on a 64-bit kernel: SipHash-1-3 over the four bytes of
/// `v` in little-endian (x86 memory) order, the 64-bit result truncated to 32 bits.
#[must_use]
pub fn hsiphash_u32(v: u32, key: SipKey) -> u32 {
    let mut s = [
        0x736f_6d65_7073_6575 ^ key.0,
        0x646f_7261_6e64_6f6d ^ key.1,
        0x6c79_6765_6e65_7261 ^ key.0,
        0x7465_6462_7974_6573 ^ key.1,
    ];
    // Four bytes of input: no full 8-byte block; the last block is the length in the top byte
    // and the bytes below it.
    let last = (4u64 << 56) | u64::from(v);
    s[3] ^= last;
    sip_round(&mut s);
    s[0] ^= last;
    s[2] ^= 0xff;
    sip_round(&mut s);
    sip_round(&mut s);
    sip_round(&mut s);
    let out = s[0] ^ s[1] ^ s[2] ^ s[3];
    // The kernel's function returns u32: the low half.
    u32::try_from(out & 0xFFFF_FFFF).unwrap_or(0)
}

fn sip_round(s: &mut [u64; 4]) {
    let [mut v0, mut v1, mut v2, mut v3] = *s;
    v0 = v0.wrapping_add(v1);
    v1 = v1.rotate_left(13) ^ v0;
    v0 = v0.rotate_left(32);
    v2 = v2.wrapping_add(v3);
    v3 = v3.rotate_left(16) ^ v2;
    v0 = v0.wrapping_add(v3);
    v3 = v3.rotate_left(21) ^ v0;
    v2 = v2.wrapping_add(v1);
    v1 = v1.rotate_left(17) ^ v2;
    v2 = v2.rotate_left(32);
    *s = [v0, v1, v2, v3];
}

/// Greatest common divisor.
#[must_use]
pub fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn hash_32_keeps_top_bits() {
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(hash_32(2, 32), 0xC391_0C8E);
    }

    #[test]
    fn ipv6_fold_is_word_xor() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(fold_addr(IpAddr::V6(a)), 0x2001_0db8 ^ 1);
        assert_eq!(fold_addr(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))), 0x0102_0304);
    }

    #[test]
    fn siphash13_matches_an_independent_implementation() {
        use core::hash::Hasher;
        for (k0, k1, v) in
            [(0u64, 0u64, 0u32), (MH_KEY1.0, MH_KEY1.1, 0x0a01_0001), (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908, 7)]
        {
            let mut h = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
            h.write(&v.to_le_bytes());
            let expected = h.finish() & 0xFFFF_FFFF;
            assert_eq!(u64::from(hsiphash_u32(v, SipKey(k0, k1))), expected);
        }
    }

    #[test]
    fn gcd_works() {
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(5, 0), 5);
        assert_eq!(gcd(0, 7), 7);
    }
}
