//! The wire side of the "NIC": frames arrive as a classic pcap stream on standard input and
//! leave as one on standard output (the board here is a Linux process; on a NIC these would be
//! the MAC's receive and transmit queues).

use crate::bsp;

/// The pcap global header of what the firmware writes: microsecond timestamps, version 2.4,
/// snap length 262144, Ethernet (the same bytes `vsd replay` writes).
const OUT_HEADER: [u8; 24] = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0];

/// Why reading the input stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputError {
    /// Not a little-endian classic pcap of Ethernet frames.
    NotPcap,
    /// A record is cut short.
    Truncated,
    /// A frame longer than a packet buffer holds.
    TooLong,
    /// The read failed.
    Io,
}

/// Reads exactly `buf.len()` bytes: Ok(true), Ok(false) at end of input before the first
/// byte, or an error.
fn read_exact(buf: &mut [u8]) -> Result<bool, InputError> {
    let mut done = 0;
    while done < buf.len() {
        let n = bsp::read(0, buf.get_mut(done..).unwrap_or(&mut []));
        if n < 0 {
            return Err(InputError::Io);
        }
        if n == 0 {
            return if done == 0 { Ok(false) } else { Err(InputError::Truncated) };
        }
        done += n as usize;
    }
    Ok(true)
}

/// The receive side: a pcap stream on standard input.
pub(crate) struct PcapIn {
    nanos: bool,
}

impl PcapIn {
    /// Reads the global header.
    pub(crate) fn open() -> Result<PcapIn, InputError> {
        let mut header = [0u8; 24];
        if !read_exact(&mut header)? {
            return Err(InputError::NotPcap);
        }
        let magic = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let nanos = match magic {
            0xa1b2_c3d4 => false,
            0xa1b2_3c4d => true,
            _ => return Err(InputError::NotPcap),
        };
        let linktype = u32::from_le_bytes([header[20], header[21], header[22], header[23]]) & 0x0fff_ffff;
        if linktype != 1 {
            return Err(InputError::NotPcap);
        }
        Ok(PcapIn { nanos })
    }

    /// The next frame into `buf`: its length and timestamp (microseconds), or None at the end.
    pub(crate) fn next(&mut self, buf: &mut [u8]) -> Result<Option<(usize, u64)>, InputError> {
        let mut record = [0u8; 16];
        if !read_exact(&mut record)? {
            return Ok(None);
        }
        let word = |i: usize| u32::from_le_bytes([record[i], record[i + 1], record[i + 2], record[i + 3]]);
        let (sec, frac, caplen) = (u64::from(word(0)), u64::from(word(4)), word(8) as usize);
        let frame = buf.get_mut(..caplen).ok_or(InputError::TooLong)?;
        if !read_exact(frame)? && caplen > 0 {
            return Err(InputError::Truncated);
        }
        let micros = if self.nanos { frac / 1000 } else { frac };
        Ok(Some((caplen, sec * 1_000_000 + micros)))
    }
}

/// The transmit side: a pcap stream on standard output.
pub(crate) struct PcapOut;

impl PcapOut {
    /// Writes the global header.
    pub(crate) fn open() -> Option<PcapOut> {
        bsp::write_all(1, &OUT_HEADER).then_some(PcapOut)
    }

    /// Writes one frame with its timestamp.
    pub(crate) fn send(&mut self, frame: &[u8], ts_us: u64) -> bool {
        let len = frame.len() as u32;
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        record[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        record[8..12].copy_from_slice(&len.to_le_bytes());
        record[12..16].copy_from_slice(&len.to_le_bytes());
        bsp::write_all(1, &record) && bsp::write_all(1, frame)
    }
}
