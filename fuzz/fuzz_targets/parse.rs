//! Fuzz the packet parser from both entry points, then the rewriters and the tunnel code on
//! whatever parses: nothing may panic, and rewrites must keep valid checksums valid.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vs_proto::wire::{ChecksumCaps, L3, PacketBuf, Rewriter, Summary, TunnelHeader, decapsulate, encapsulate};

fn exercise(data: &[u8], ethernet: bool) {
    let mut summary = Summary::default();
    let parsed = if ethernet { summary.parse_ethernet(data) } else { summary.parse_ip(data) };
    let _ = summary.l4_checksum_ok(data);
    let _ = summary.ipv4_checksum_ok(data);
    let _ = ChecksumCaps::software().verify(&summary, data);
    if parsed.is_err() {
        return;
    }
    let l4_ok = summary.l4_checksum_ok(data);
    let (src, dst): (IpAddr, IpAddr) = match summary.l3 {
        L3::Ipv4 => (Ipv4Addr::new(198, 18, 0, 1).into(), Ipv4Addr::new(198, 19, 0, 1).into()),
        L3::Ipv6 => (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1).into(),
        ),
        _ => return,
    };
    let mut storage = vec![0u8; 64 + data.len()];
    storage[64..].copy_from_slice(data);
    let Ok(mut buf) = PacketBuf::new(&mut storage, 64, data.len()) else {
        return;
    };
    let mut rewritten = summary;
    {
        let mut rw = Rewriter::new(buf.data_mut(), &mut rewritten, ChecksumCaps::software());
        rw.set_src_addr(src).expect("family matches");
        rw.set_dst_addr(dst).expect("family matches");
        let _ = rw.set_src_port(1);
        let _ = rw.set_dst_port(2);
        let _ = rw.decrement_hop_limit();
    }
    if l4_ok == Some(true) {
        assert_eq!(rewritten.l4_checksum_ok(buf.data()), Some(true), "rewrite broke a valid checksum");
    }
    let outer = TunnelHeader { src, dst, ttl: 64, tos: 0, dont_frag: true, ident: 1 };
    if let Ok(tunnelled) = encapsulate(&mut buf, &rewritten, &outer) {
        let _ = decapsulate(&mut buf, &tunnelled);
    }
    let _ = decapsulate(&mut buf, &rewritten);
}

fuzz_target!(|data: &[u8]| {
    exercise(data, true);
    exercise(data, false);
});
