//! The packet path: one packet, a burst, and the expiry sweep.

use core::ffi::c_void;
use core::net::IpAddr;

use vs_proto::engine::{Neighbour, Neighbours, Verdict};
use vs_proto::wire::{MacAddr, PacketBuf};

use crate::boundary::{ref_in, slice_out, with_engine, write_out};
use crate::engine::vs_engine;
use crate::status::vs_status;
use crate::types::vs_addr;

/// `vs_verdict.action`: hand the packet to the host unchanged (not for a virtual service).
pub const VS_PASS: u8 = 0;
/// Send the rewritten packet (now at `head`, `len` bytes) out of `port` to `next_hop`.
pub const VS_TRANSMIT: u8 = 1;
/// Dropped; `drop_reason` says why.
pub const VS_DROP: u8 = 2;

/// A packet in a buffer with headroom: the packet is `data[head .. head + len]` of a buffer of
/// `capacity` bytes. Tunnels push headers into the headroom (leave at least 40 bytes); the
/// engine updates `head` and `len`.
#[repr(C)]
#[derive(Debug)]
pub struct vs_packet {
    /// The buffer.
    pub data: *mut u8,
    /// Its size.
    pub capacity: usize,
    /// Offset of the packet's first byte.
    pub head: usize,
    /// Packet length.
    pub len: usize,
    /// Firewall mark the host gave the packet (0: none); firewall-mark services match it.
    pub mark: u32,
}

/// The engine's decision for one packet.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct vs_verdict {
    /// `VS_PASS`, `VS_TRANSMIT` or `VS_DROP`.
    pub action: u8,
    /// With `VS_DROP`: the reason (an index of `vs_global_stats.drops`, named by
    /// `vs_drop_reason_name`).
    pub drop_reason: u8,
    /// With `VS_TRANSMIT`: the egress port the neighbour callback named.
    pub port: u16,
    /// With `VS_TRANSMIT`: the next hop the frame is addressed to.
    pub next_hop: vs_addr,
}

impl From<Verdict> for vs_verdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Transmit { next_hop, port } => {
                vs_verdict { action: VS_TRANSMIT, drop_reason: 0, port, next_hop: next_hop.into() }
            }
            Verdict::Pass => vs_verdict { action: VS_PASS, ..vs_verdict::default() },
            Verdict::Drop(reason) => vs_verdict { action: VS_DROP, drop_reason: reason as u8, ..vs_verdict::default() },
        }
    }
}

/// The host's neighbour lookup: fill `mac` (6 bytes) and `port` for `next_hop` and return
/// true, or return false when it is unknown (the packet is then dropped as "no neighbour").
/// The engine caches a real server's answer for up to one second of host time
/// (`vs_flush_neighbours` forgets them); clients' neighbours are asked for every reply.
pub type vs_neighbour_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, next_hop: *const vs_addr, mac: *mut u8, port: *mut u16) -> bool>;

/// The C callback as the engine's neighbour table.
struct CNeighbours {
    lookup: vs_neighbour_fn,
    user: *mut c_void,
}

impl Neighbours for CNeighbours {
    fn lookup(&self, next_hop: IpAddr) -> Option<Neighbour> {
        let f = self.lookup?;
        let addr = vs_addr::from(next_hop);
        let mut mac = [0u8; 6];
        let mut port = 0u16;
        // SAFETY: the host's function, given valid pointers for the call.
        let found = unsafe { f(self.user, &addr, mac.as_mut_ptr(), &mut port) };
        found.then_some(Neighbour { mac: MacAddr(mac), port })
    }
}

/// A packet descriptor's buffer as a `PacketBuf`.
fn buffer_of<'a>(p: &vs_packet) -> Result<PacketBuf<'a>, vs_status> {
    let storage = slice_out(p.data, p.capacity)?;
    PacketBuf::new(storage, p.head, p.len).map_err(|_| vs_status::VS_ERR_INVALID)
}

/// Processes one packet at host time `now_ms` (monotonic milliseconds): rewrites it in place
/// and writes the verdict. `lookup` (may be NULL: every next hop unknown) resolves next hops.
///
/// # Safety
/// `packet->data` must be valid for `packet->capacity` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_process(
    engine: *mut vs_engine,
    packet: *mut vs_packet,
    now_ms: u64,
    lookup: vs_neighbour_fn,
    user: *mut c_void,
    verdict: *mut vs_verdict,
) -> vs_status {
    with_engine(engine, |e| {
        if packet.is_null() || verdict.is_null() {
            return Err(vs_status::VS_ERR_NULL);
        }
        let desc = ref_in(packet)?;
        let mark = desc.mark;
        let mut buf = buffer_of(desc)?;
        let neighbours = CNeighbours { lookup, user };
        let v = e.inner.process_marked(&mut buf, mark, now_ms, &neighbours);
        let (head, len) = (buf.head(), buf.len());
        // SAFETY: checked non-null and aligned by ref_in above; `buf` no longer borrows it.
        unsafe {
            (*packet).head = head;
            (*packet).len = len;
        }
        write_out(verdict, v.into())
    })
}

/// Processes `count` packets in order (loading the table lines of a chunk together, so that
/// cache misses overlap); `verdicts[i]` is packet `i`'s. Marked packets are processed one at a
/// time in their place. `processed` (may be NULL) receives how many packets were processed:
/// `count` on success; when a packet descriptor is refused (a NULL or too small buffer, say),
/// the packets before it were processed and have their verdicts, that one and the rest were
/// not touched, and the error comes back.
///
/// # Safety
/// `packets` and `verdicts` must hold `count` elements; each packet as for `vs_process`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_process_burst(
    engine: *mut vs_engine,
    packets: *mut vs_packet,
    verdicts: *mut vs_verdict,
    count: usize,
    now_ms: u64,
    lookup: vs_neighbour_fn,
    user: *mut c_void,
    processed: *mut usize,
) -> vs_status {
    const CHUNK: usize = 32;
    let mut done = 0usize;
    let status = with_engine(engine, |e| {
        let descs = slice_out(packets, count)?;
        let out = slice_out(verdicts, count)?;
        let neighbours = CNeighbours { lookup, user };
        for (descs, out) in descs.chunks_mut(CHUNK).zip(out.chunks_mut(CHUNK)) {
            if descs.iter().any(|d| d.mark != 0) {
                for (d, v) in descs.iter_mut().zip(out.iter_mut()) {
                    let mut buf = buffer_of(d)?;
                    *v = e.inner.process_marked(&mut buf, d.mark, now_ms, &neighbours).into();
                    (d.head, d.len) = (buf.head(), buf.len());
                    done += 1;
                }
                continue;
            }
            // Every descriptor up to the first refused one goes through as a burst.
            let mut bufs: heapless::Vec<PacketBuf<'_>, CHUNK> = heapless::Vec::new();
            let mut refused = None;
            for d in descs.iter() {
                match buffer_of(d) {
                    Ok(b) => {
                        let _ = bufs.push(b);
                    }
                    Err(status) => {
                        refused = Some(status);
                        break;
                    }
                }
            }
            let mut results = [Verdict::Pass; CHUNK];
            let n = e.inner.process_burst(&mut bufs, now_ms, &neighbours, &mut results);
            for ((d, b), (v, r)) in descs.iter_mut().zip(&bufs).zip(out.iter_mut().zip(&results)).take(n) {
                (d.head, d.len) = (b.head(), b.len());
                *v = (*r).into();
            }
            done += n;
            if let Some(status) = refused {
                return Err(status);
            }
        }
        Ok(())
    });
    if !processed.is_null() && write_out(processed, done).is_err() {
        return vs_status::VS_ERR_INVALID;
    }
    status
}

/// Forgets the neighbours the engine cached for real servers, so that the next packet to each
/// asks the lookup callback again. Call it when the host's neighbour or route table changes;
/// otherwise a cached answer is used for at most one second of host time.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_flush_neighbours(engine: *mut vs_engine) -> vs_status {
    with_engine(engine, |e| {
        e.inner.flush_neighbours();
        Ok(())
    })
}

/// Expires connections whose timers ran out, visiting at most `budget` table slots from where
/// the last sweep stopped, and runs the once-a-second and every-2-s duties (defence levels,
/// rate estimation). `expired` (may be NULL) receives how many expired.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_sweep(
    engine: *mut vs_engine,
    now_ms: u64,
    budget: usize,
    expired: *mut usize,
) -> vs_status {
    with_engine(engine, |e| {
        let n = e.inner.sweep(now_ms, budget);
        if expired.is_null() { Ok(()) } else { write_out(expired, n) }
    })
}
