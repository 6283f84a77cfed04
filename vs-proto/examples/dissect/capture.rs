//! Reading pcap and pcapng files (with `pcap-parser`) and turning each frame into the JSON object
//! `dissect` prints. Shared by the `dissect` example and the corpus test.

use std::fs::File;
use std::net::IpAddr;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{Linktype, PcapBlockOwned, PcapError, create_reader};
use serde_json::{Map, Value, json};
use vs_proto::wire::{L3, Summary};

/// The link layers `dissect` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Ethernet II.
    Ethernet,
    /// Bare IPv4 or IPv6 (the version nibble says which).
    RawIp,
}

impl Link {
    /// The link for a pcap link type, if supported.
    pub(crate) fn from_linktype(linktype: Linktype) -> Option<Link> {
        match linktype.0 {
            1 => Some(Link::Ethernet),
            // LINKTYPE_RAW, the DLT_RAW values 12 and 14 some systems write, IPV4 and IPV6.
            101 | 12 | 14 | 228 | 229 => Some(Link::RawIp),
            _ => None,
        }
    }
}

/// A cooked-capture record as an Ethernet frame (see [`vs_proto::wire::cooked`]).
fn cooked_frame(linktype: Linktype, data: &[u8]) -> Option<Vec<u8>> {
    let record = vs_proto::wire::cooked_as_ethernet(u32::try_from(linktype.0).ok()?, data)?;
    Some([&record.ethernet[..], data.get(record.payload_at..)?].concat())
}

/// Calls `each(frame_number, link, bytes)` for every packet record of a pcap or pcapng file, in
/// order, numbered from 1; `link` is `Err(linktype)` for unsupported link types.
pub(crate) fn for_each_frame(
    path: &str,
    mut each: impl FnMut(u64, Result<Link, Linktype>, &[u8]),
) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut capacity = 1 << 16;
    let mut reader = create_reader(capacity, file).map_err(|e| format!("{path}: not a pcap or pcapng file: {e:?}"))?;
    let mut legacy_link = Linktype(0);
    // Bytes of frame check sequence ending every frame of a pcap file, when its header says
    // so: the link-type field's lower 16 bits are the link type; with the P bit (0x04000000)
    // set, bits 28-31 give the FCS length in 16-bit units (pcap-savefile(5)).
    let mut legacy_fcs = 0usize;
    let mut interfaces: Vec<Linktype> = Vec::new();
    let mut frame = 0u64;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                let record: Option<(Linktype, &[u8])> = match &block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        let field = h.network.0 as u32;
                        legacy_link = Linktype((field & 0xffff) as i32);
                        legacy_fcs = if field & 0x0400_0000 != 0 { (field >> 28) as usize * 2 } else { 0 };
                        None
                    }
                    PcapBlockOwned::Legacy(b) => {
                        Some((legacy_link, b.data.get(..b.data.len().saturating_sub(legacy_fcs)).unwrap_or(&[])))
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        interfaces.clear();
                        None
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(idb.linktype);
                        None
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let link = usize::try_from(epb.if_id).ok().and_then(|i| interfaces.get(i)).copied();
                        Some((link.unwrap_or(Linktype(-1)), epb.packet_data()))
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        Some((interfaces.first().copied().unwrap_or(Linktype(-1)), spb.packet_data()))
                    }
                    PcapBlockOwned::NG(_) => None,
                };
                if let Some((linktype, data)) = record {
                    frame += 1;
                    match cooked_frame(linktype, data) {
                        Some(ethernet) => each(frame, Ok(Link::Ethernet), &ethernet),
                        None => each(frame, Link::from_linktype(linktype).ok_or(linktype), data),
                    }
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                reader.refill().map_err(|e| format!("{path}: read error: {e:?}"))?;
            }
            Err(PcapError::BufferTooSmall) => {
                // Records larger than the buffer (BIG TCP, jumbograms): grow and retry.
                capacity *= 2;
                if capacity > 1 << 26 || !reader.grow(capacity) {
                    return Err(format!("{path}: record too large"));
                }
            }
            Err(e) => return Err(format!("{path}: frame {}: {e:?}", frame + 1)),
        }
    }
    Ok(())
}

/// Parses one frame and builds its JSON object (see the key list).
pub(crate) fn dissect(frame: u64, link: Link, data: &[u8]) -> Value {
    let mut summary = Summary::default();
    let result = match link {
        Link::Ethernet => summary.parse_ethernet(data),
        Link::RawIp => summary.parse_ip(data),
    };
    let mut out = Map::new();
    out.insert("frame".into(), json!(frame));
    let l3 = match summary.l3 {
        L3::Ipv4 => "ipv4",
        L3::Ipv6 => "ipv6",
        L3::Arp => "arp",
        L3::Other(_) | L3::None => "other",
    };
    out.insert("l3".into(), json!(l3));
    if !summary.vlans.is_empty() {
        out.insert("vlan".into(), json!(summary.vlans.as_slice()));
    }
    if let Some(src) = summary.src {
        out.insert("src".into(), json!(src.to_string()));
    }
    if let Some(dst) = summary.dst {
        out.insert("dst".into(), json!(dst.to_string()));
    }
    if let Some(proto) = summary.proto {
        out.insert("proto".into(), json!(proto.0));
    }
    if matches!(summary.l3, L3::Ipv4 | L3::Ipv6) && summary.src.is_some() {
        out.insert("frag".into(), json!(summary.fragment.is_some()));
    }
    if let Some((sport, dport)) = summary.ports {
        out.insert("sport".into(), json!(sport));
        out.insert("dport".into(), json!(dport));
    }
    if let Some(flags) = summary.tcp_flags {
        out.insert("tcp_flags".into(), json!(flags.bits()));
    }
    if let (Ok(()), Some(ok)) = (result, summary.l4_checksum_ok(data)) {
        out.insert("l4_csum_ok".into(), json!(ok));
    }
    if let Some(icmp) = summary.icmp {
        out.insert("icmp_type".into(), json!(icmp.ty));
        out.insert("icmp_code".into(), json!(icmp.code));
    }
    if let Some(q) = summary.quoted {
        let mut inner = Map::new();
        inner.insert("src".into(), json!(ip_text(q.src)));
        inner.insert("dst".into(), json!(ip_text(q.dst)));
        inner.insert("proto".into(), json!(q.proto.0));
        if let Some((sport, dport)) = q.ports {
            inner.insert("sport".into(), json!(sport));
            inner.insert("dport".into(), json!(dport));
        }
        out.insert("inner".into(), Value::Object(inner));
    }
    if let Err(e) = result {
        out.insert("error".into(), json!(e.as_str()));
    }
    Value::Object(out)
}

fn ip_text(addr: IpAddr) -> String {
    addr.to_string()
}
