//! What a NIC or veth leaves undone when offloads are on, finished in software before the
//! engine sees a frame: transport checksums left partial (`TP_STATUS_CSUMNOTREADY`) and TCP
//! segments larger than the link (GSO / GRO super-frames), cut into segments that fit.

use vs_proto::wire::{IpProtocol, L3, Summary, checksum};

/// Completes the transport checksum of a frame the kernel marked CSUMNOTREADY.
pub(crate) fn complete_checksum(frame: &mut [u8]) -> bool {
    let mut summary = Summary::default();
    if summary.parse_ethernet(frame).is_err() {
        return false;
    }
    summary.fill_l4_checksum(frame)
}

/// If `frame` is a TCP segment whose IP packet exceeds `mtu`, cuts it into segments of at most
/// `mtu` bytes of IP packet each and calls `emit` with every segment frame, with lengths,
/// sequence numbers, flags, IPv4 identifications and every checksum set as a sender that did
/// the segmentation itself would. Returns false (and emits nothing) when the frame needs no
/// cutting or cannot be cut (not TCP, fragments, IPv6 extension headers).
pub(crate) fn segment(frame: &[u8], mtu: usize, mut emit: impl FnMut(&[u8])) -> bool {
    let mut s = Summary::default();
    if s.parse_ethernet(frame).is_err() || s.proto != Some(IpProtocol::TCP) || s.fragment.is_some() {
        return false;
    }
    let ip_len = s.l3_end.saturating_sub(s.l3_offset);
    if ip_len <= mtu {
        return false;
    }
    let ip_header_len = s.l4_offset - s.l3_offset;
    if s.l3 == L3::Ipv6 && ip_header_len != 40 {
        return false;
    }
    let Some(&offset_byte) = frame.get(s.l4_offset + 12) else { return false };
    let tcp_header_len = usize::from(offset_byte >> 4) * 4;
    let payload_start = s.l4_offset + tcp_header_len;
    let Some(payload) = frame.get(payload_start..s.l3_end) else { return false };
    let Some(headers) = frame.get(..payload_start) else { return false };
    let Some(mss) = mtu.checked_sub(ip_header_len + tcp_header_len).filter(|m| *m >= 8) else { return false };
    let Some(seq_bytes) = frame.get(s.l4_offset + 4..s.l4_offset + 8) else { return false };
    let seq = u32::from_be_bytes([seq_bytes[0], seq_bytes[1], seq_bytes[2], seq_bytes[3]]);
    let flags = frame.get(s.l4_offset + 13).copied().unwrap_or(0);
    let ident = frame.get(s.l3_offset + 4..s.l3_offset + 6).map(|b| u16::from_be_bytes([b[0], b[1]])).unwrap_or(0);
    let chunks = payload.chunks(mss);
    let count = chunks.len();
    let mut out = Vec::with_capacity(payload_start + mss);
    for (i, chunk) in chunks.enumerate() {
        out.clear();
        out.extend_from_slice(headers);
        out.extend_from_slice(chunk);
        let l3 = s.l3_offset;
        let l4 = s.l4_offset;
        let ip_total = ip_header_len + tcp_header_len + chunk.len();
        if s.l3 == L3::Ipv4 {
            out[l3 + 2..l3 + 4].copy_from_slice(&(ip_total as u16).to_be_bytes());
            out[l3 + 4..l3 + 6].copy_from_slice(&ident.wrapping_add(i as u16).to_be_bytes());
            out[l3 + 10..l3 + 12].fill(0);
            let sum = !checksum::fold(checksum::sum(0, &out[l3..l4]));
            out[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
        } else {
            out[l3 + 4..l3 + 6].copy_from_slice(&((ip_total - 40) as u16).to_be_bytes());
        }
        let this_seq = seq.wrapping_add((i * mss) as u32);
        out[l4 + 4..l4 + 8].copy_from_slice(&this_seq.to_be_bytes());
        let mut f = flags;
        if i + 1 < count {
            f &= !(0x01 | 0x08); // FIN and PSH only on the last segment
        }
        if i > 0 {
            f &= !0x80; // CWR only on the first
        }
        out[l4 + 13] = f;
        let mut seg = Summary::default();
        if seg.parse_ethernet(&out).is_err() || !seg.fill_l4_checksum(&mut out) {
            return false;
        }
        emit(&out);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_frame(payload_len: usize) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = 20 + 20 + payload_len;
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&[198, 18, 1, 1, 198, 18, 0, 1]);
        f.extend_from_slice(&[0, 80, 0x9c, 0x40, 0, 0, 0, 100, 0, 0, 0, 1, 0x50, 0x19, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend((0..payload_len).map(|i| i as u8));
        f
    }

    #[test]
    fn a_super_frame_becomes_valid_segments() {
        let frame = tcp_frame(4000);
        let mut segs = Vec::new();
        assert!(segment(&frame, 1500, |s| segs.push(s.to_vec())));
        assert_eq!(segs.len(), 3);
        let mut next_seq = 100u32;
        let mut data = Vec::new();
        for (i, seg) in segs.iter().enumerate() {
            let s = Summary::from_ethernet(seg).unwrap();
            assert!(seg.len() - 14 <= 1500);
            assert_eq!(s.ipv4_checksum_ok(seg), Some(true));
            assert_eq!(s.l4_checksum_ok(seg), Some(true));
            assert_eq!(u32::from_be_bytes(seg[38..42].try_into().unwrap()), next_seq);
            let fin = seg[47] & 1 != 0;
            assert_eq!(fin, i == 2, "FIN only on the last segment");
            data.extend_from_slice(&seg[54..]);
            next_seq += (seg.len() - 54) as u32;
        }
        assert_eq!(data, frame[54..]);
        assert!(!segment(&tcp_frame(1000), 1500, |_| {}), "a frame that fits is left alone");
    }

    #[test]
    fn partial_checksums_are_completed() {
        let mut frame = tcp_frame(10);
        assert!(complete_checksum(&mut frame));
        assert_eq!(Summary::from_ethernet(&frame).unwrap().l4_checksum_ok(&frame), Some(true));
    }
}
