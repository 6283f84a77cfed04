//! The director's own link-layer duties for its VIPs on the client side: ARP replies and
//! neighbour advertisements for them, and gratuitous ARP / unsolicited neighbour
//! advertisements when a VIP appears (so that clients and routers learn its new home at once).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vs_proto::wire::{ArpOp, ArpPacket, IpProtocol, MacAddr, checksum};
use zerocopy::IntoBytes;

const ETH_ARP: [u8; 2] = [0x08, 0x06];
const ETH_IPV6: [u8; 2] = [0x86, 0xdd];
const ND_SOLICIT: u8 = 135;
const ND_ADVERT: u8 = 136;

fn ethernet(dst: MacAddr, src: MacAddr, ethertype: [u8; 2]) -> Vec<u8> {
    let mut f = Vec::with_capacity(90);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype);
    f
}

/// The answer to `frame` if it is an ARP request or a neighbour solicitation for one of `vips`.
pub(crate) fn answer(frame: &[u8], mac: MacAddr, vips: &[IpAddr]) -> Option<Vec<u8>> {
    match frame.get(12..14)? {
        [0x08, 0x06] => answer_arp(frame.get(14..)?, mac, vips),
        [0x86, 0xdd] => answer_ns(frame, mac, vips),
        _ => None,
    }
}

fn answer_arp(arp: &[u8], mac: MacAddr, vips: &[IpAddr]) -> Option<Vec<u8>> {
    let request = ArpPacket::parse(arp).ok()?;
    let target = request.target_ip();
    if request.op() != ArpOp::REQUEST || !vips.contains(&IpAddr::V4(target)) {
        return None;
    }
    let reply = ArpPacket::new(ArpOp::REPLY, mac, target, request.sha, request.sender_ip());
    let mut f = ethernet(request.sha, mac, ETH_ARP);
    f.extend_from_slice(reply.as_bytes());
    Some(f)
}

/// A gratuitous ARP announcing `vip` at `mac` (a broadcast request for its own address).
pub(crate) fn gratuitous_arp(vip: Ipv4Addr, mac: MacAddr) -> Vec<u8> {
    let packet = ArpPacket::new(ArpOp::REQUEST, mac, vip, MacAddr([0; 6]), vip);
    let mut f = ethernet(MacAddr::BROADCAST, mac, ETH_ARP);
    f.extend_from_slice(packet.as_bytes());
    f
}

fn answer_ns(frame: &[u8], mac: MacAddr, vips: &[IpAddr]) -> Option<Vec<u8>> {
    let ip = frame.get(14..54)?;
    // ICMPv6 straight after the fixed header, hop limit 255 (RFC 4861 §7.1.1).
    if ip[6] != 58 || ip[7] != 255 {
        return None;
    }
    let icmp = frame.get(54..)?;
    if icmp.first() != Some(&ND_SOLICIT) || icmp.len() < 24 {
        return None;
    }
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(icmp.get(8..24)?).ok()?);
    if !vips.contains(&IpAddr::V6(target)) {
        return None;
    }
    let source = Ipv6Addr::from(<[u8; 16]>::try_from(ip.get(8..24)?).ok()?);
    if source.is_unspecified() {
        // Duplicate address detection by someone else: not ours to answer.
        return None;
    }
    let asker = MacAddr(<[u8; 6]>::try_from(frame.get(6..12)?).ok()?);
    Some(advertisement(target, mac, source, asker, true))
}

/// An unsolicited neighbour advertisement of `vip` at `mac` to all nodes.
pub(crate) fn unsolicited_na(vip: Ipv6Addr, mac: MacAddr) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    advertisement(vip, mac, all_nodes, MacAddr([0x33, 0x33, 0, 0, 0, 1]), false)
}

fn advertisement(target: Ipv6Addr, mac: MacAddr, to: Ipv6Addr, to_mac: MacAddr, solicited: bool) -> Vec<u8> {
    let mut icmp = vec![ND_ADVERT, 0, 0, 0];
    // Override always; Solicited when answering.
    icmp.extend_from_slice(&[if solicited { 0x60 } else { 0x20 }, 0, 0, 0]);
    icmp.extend_from_slice(&target.octets());
    // Target link-layer address option.
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&mac.0);
    let length = icmp.len() as u32;
    let sum = checksum::sum(checksum::pseudo_header_v6(target, to, IpProtocol::ICMPV6, length), &icmp);
    icmp[2..4].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
    let mut f = ethernet(to_mac, mac, ETH_IPV6);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(length as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&target.octets());
    f.extend_from_slice(&to.octets());
    f.extend_from_slice(&icmp);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use vs_proto::wire::Summary;

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x10]);

    #[test]
    fn arp_for_a_vip_only() {
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        let client = MacAddr([2, 0, 0, 0, 0, 1]);
        let request = ArpPacket::new(ArpOp::REQUEST, client, Ipv4Addr::new(198, 18, 0, 1), MacAddr([0; 6]), vip);
        let mut frame = ethernet(MacAddr::BROADCAST, client, ETH_ARP);
        frame.extend_from_slice(request.as_bytes());
        let reply = answer(&frame, MAC, &[IpAddr::V4(vip)]).unwrap();
        assert_eq!(&reply[0..6], &client.0);
        let arp = ArpPacket::parse(&reply[14..]).unwrap();
        assert_eq!(
            (arp.op(), arp.sha, arp.sender_ip(), arp.target_ip()),
            (ArpOp::REPLY, MAC, vip, Ipv4Addr::new(198, 18, 0, 1))
        );
        assert!(answer(&frame, MAC, &[IpAddr::V4(Ipv4Addr::new(198, 18, 0, 101))]).is_none());
    }

    #[test]
    fn neighbour_advertisement_is_valid() {
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let na = unsolicited_na(vip, MAC);
        let s = Summary::from_ethernet(&na).unwrap();
        assert_eq!(s.l4_checksum_ok(&na), Some(true));
        assert_eq!(s.icmp.unwrap().ty, ND_ADVERT);
    }
}
