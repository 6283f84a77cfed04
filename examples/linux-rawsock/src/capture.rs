//! pcap / pcapng reading with timestamps (pcap-parser) and classic pcap writing (pcap-parser's
//! serializer): what `vsd replay` reads and writes.

use std::fs::File;
use std::io::{BufWriter, Write};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{LegacyPcapBlock, Linktype, PcapBlockOwned, PcapError, PcapHeader, ToVec, create_reader};
use vs_proto::wire::cooked::{LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, cooked_as_ethernet};

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Capture time in microseconds since the epoch.
    pub(crate) ts_us: u64,
    /// Link type of the interface it was captured on.
    pub(crate) linktype: i32,
    /// The bytes.
    pub(crate) data: Vec<u8>,
}

/// The link-layer type in a pcap header's 32-bit field: its lower 16 bits. The upper bits carry
/// the FCS length (bits 28–31, in 16-bit units), valid only when the P bit (0x0400_0000) is set
/// (pcap-savefile(5)): `Some(bytes)` of FCS at the end of every frame then.
fn link_and_fcs(field: i32) -> (i32, usize) {
    let field = field as u32;
    let fcs = if field & 0x0400_0000 != 0 { ((field >> 28) as usize) * 2 } else { 0 };
    ((field & 0xffff) as i32, fcs)
}

/// An Ethernet frame for a cooked-capture record (`tcpdump -i any`); `None` for frames the
/// capturing host sent (vsd never sees its own output) and records too short.
fn from_cooked(linktype: i32, data: &[u8]) -> Option<Vec<u8>> {
    let record = cooked_as_ethernet(u32::try_from(linktype).ok()?, data).filter(|r| !r.outgoing)?;
    Some([&record.ethernet[..], data.get(record.payload_at..)?].concat())
}

/// A record as the engine takes it: Ethernet frames as they are (without a trailing FCS),
/// cooked captures turned into Ethernet; `None` to skip (see [`from_cooked`]).
fn normalise(linktype: i32, fcs: usize, data: &[u8]) -> Option<(i32, Vec<u8>)> {
    let data = data.get(..data.len().saturating_sub(fcs))?;
    match u32::try_from(linktype) {
        Ok(LINKTYPE_LINUX_SLL | LINKTYPE_LINUX_SLL2) => from_cooked(linktype, data).map(|f| (1, f)),
        _ => Some((linktype, data.to_vec())),
    }
}

/// Reads every frame of a pcap or pcapng file. pcapng timestamps are taken at the default
/// microsecond resolution. The link type's FCS bits are honoured and Linux cooked captures
/// (SLL, SLL2) are read as Ethernet; frames the capturing host sent are left out.
pub(crate) fn read(path: &str) -> Result<Vec<Frame>, String> {
    let file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut capacity = 1 << 16;
    let mut reader = create_reader(capacity, file).map_err(|e| match e {
        PcapError::Incomplete(_) | PcapError::Eof => format!("{path}: too short to be a pcap or pcapng file"),
        e => format!("{path}: not a pcap or pcapng file ({e})"),
    })?;
    let (mut link, mut fcs, mut nanos) = (1i32, 0usize, false);
    let mut interfaces: Vec<Linktype> = Vec::new();
    let mut frames = Vec::new();
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match &block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        (link, fcs) = link_and_fcs(h.network.0);
                        nanos = h.is_nanosecond_precision();
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let frac = if nanos { u64::from(b.ts_usec) / 1000 } else { u64::from(b.ts_usec) };
                        let ts_us = u64::from(b.ts_sec) * 1_000_000 + frac;
                        if let Some((linktype, data)) = normalise(link, fcs, b.data) {
                            frames.push(Frame { ts_us, linktype, data });
                        }
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => interfaces.push(idb.linktype),
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let ts_us = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let linktype =
                            usize::try_from(epb.if_id).ok().and_then(|i| interfaces.get(i)).map_or(-1, |l| l.0);
                        if let Some((linktype, data)) = normalise(linktype, 0, epb.packet_data()) {
                            frames.push(Frame { ts_us, linktype, data });
                        }
                    }
                    _ => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().map_err(|e| match e {
                PcapError::UnexpectedEof => {
                    format!("{path}: truncated: the record after frame {} is cut short", frames.len())
                }
                e => format!("{path}: cannot read the record after frame {}: {e}", frames.len()),
            })?,
            Err(PcapError::BufferTooSmall) => {
                capacity *= 2;
                if capacity > 1 << 26 || !reader.grow(capacity) {
                    return Err(format!("{path}: record too large"));
                }
            }
            Err(PcapError::UnexpectedEof) => {
                return Err(format!("{path}: truncated: the record after frame {} is cut short", frames.len()));
            }
            Err(e) => return Err(format!("{path}: cannot read the record after frame {}: {e}", frames.len())),
        }
    }
    Ok(frames)
}

/// A classic pcap file of Ethernet frames being written.
pub(crate) struct Writer {
    out: BufWriter<File>,
}

impl Writer {
    pub(crate) fn create(path: &str) -> Result<Writer, String> {
        let file = File::create(path).map_err(|e| format!("{path}: {e}"))?;
        let mut header = PcapHeader::new();
        header.snaplen = 262_144;
        let bytes = header.to_vec().map_err(|e| format!("{path}: {e}"))?;
        let mut out = BufWriter::new(file);
        out.write_all(&bytes).map_err(|e| format!("{path}: {e}"))?;
        Ok(Writer { out })
    }

    pub(crate) fn write(&mut self, ts_us: u64, data: &[u8]) -> Result<(), String> {
        let len = u32::try_from(data.len()).map_err(|_| "frame too long".to_owned())?;
        let mut block = LegacyPcapBlock {
            ts_sec: u32::try_from(ts_us / 1_000_000).unwrap_or(u32::MAX),
            ts_usec: (ts_us % 1_000_000) as u32,
            caplen: len,
            origlen: len,
            data,
        };
        let bytes = block.to_vec().map_err(|e| format!("pcap write: {e}"))?;
        self.out.write_all(&bytes).map_err(|e| format!("pcap write: {e}"))
    }

    pub(crate) fn finish(mut self) -> Result<(), String> {
        self.out.flush().map_err(|e| format!("pcap write: {e}"))
    }
}
