//! AF_PACKET I/O: a TPACKET_V3 memory-mapped receive ring per interface and packet thread, and
//! a transmit socket that sends bursts with `sendmmsg`, bypassing the qdisc layer.
//!
//! Packet I/O is vsd's only `unsafe` code: every block is a system call or a read of the ring
//! the kernel shares with us, each with its reason stated.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering, fence};

use super::bpf::Program;

/// `ETH_P_ALL` in network byte order, as `socket` and `bind` want it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// Offsets inside a TPACKET_V3 block descriptor (`struct tpacket_block_desc`).
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST: usize = 16;

/// Ring geometry: blocks of 1 MiB (a 64 KiB GSO frame always fits), frames retired after
/// at most 1 ms so that a lone packet is not held back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) block_size: u32,
    pub(crate) block_count: u32,
    pub(crate) retire_ms: u32,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry { block_size: 1 << 20, block_count: 16, retire_ms: 1 }
    }
}

/// Wraps an OS error with what was being done.
fn os_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T, what: &str) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).map_err(|_| io::Error::other("option too large"))?;
    // SAFETY: `value` points to a live `T` of `len` bytes for the duration of the call.
    let rc = unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), len) };
    if rc < 0 { Err(os_error(what)) } else { Ok(()) }
}

fn packet_socket(protocol: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain system call; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(protocol)) };
    if fd < 0 {
        return Err(os_error("socket(AF_PACKET)"));
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: RawFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol;
    addr.sll_ifindex = i32::try_from(ifindex).map_err(|_| io::Error::other("interface index out of range"))?;
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_ll of `len` bytes.
    let rc = unsafe { libc::bind(fd, (&raw const addr).cast(), len) };
    if rc < 0 { Err(os_error("bind(AF_PACKET)")) } else { Ok(()) }
}

/// Attaches (or atomically replaces) a classic BPF socket filter.
pub(crate) fn attach_filter(fd: RawFd, program: &Program) -> io::Result<()> {
    let insns = program.instructions();
    let fprog = libc::sock_fprog {
        len: u16::try_from(insns.len()).map_err(|_| io::Error::other("filter too long"))?,
        filter: insns.as_ptr().cast_mut(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog, "SO_ATTACH_FILTER")
}

/// The virtio-net header AF_PACKET puts before each frame with `PACKET_VNET_HDR` (and takes
/// before each frame sent): checksum-offload and segmentation-offload state, so that partial
/// checksums and GSO super-frames can cross user space whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct VnetHdr {
    pub(crate) flags: u8,
    pub(crate) gso_type: u8,
    pub(crate) hdr_len: u16,
    pub(crate) gso_size: u16,
    pub(crate) csum_start: u16,
    pub(crate) csum_offset: u16,
}

/// Its size on the wire of the socket.
pub(crate) const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` is to be completed.
pub(crate) const VNET_NEEDS_CSUM: u8 = 1;

impl VnetHdr {
    /// Reads one (the kernel writes it in host byte order, little-endian here).
    fn read(b: &[u8]) -> VnetHdr {
        let u = |i: usize| u16::from_le_bytes([b.get(i).copied().unwrap_or(0), b.get(i + 1).copied().unwrap_or(0)]);
        VnetHdr {
            flags: b.first().copied().unwrap_or(0),
            gso_type: b.get(1).copied().unwrap_or(0),
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        }
    }

    fn bytes(self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// A segmentation-offload super-frame.
    pub(crate) fn is_gso(self) -> bool {
        self.gso_type & 0x7f != 0
    }
}

/// One received frame, borrowed from the ring until the block is released.
#[derive(Debug)]
pub(crate) struct RxFrame<'a> {
    /// The frame from its Ethernet header.
    pub(crate) data: &'a [u8],
    /// The kernel left the transport checksum to be completed (CHECKSUM_PARTIAL).
    pub(crate) csum_not_ready: bool,
    /// The frame was cut to the ring's snap length.
    pub(crate) truncated: bool,
    /// Its offload state (all zero when the ring has no virtio-net headers).
    pub(crate) vnet: VnetHdr,
}

/// A TPACKET_V3 receive ring bound to one interface.
#[derive(Debug)]
pub(crate) struct RxRing {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    geometry: Geometry,
    /// The block to read next.
    current: u32,
    /// Frames come with a virtio-net header before them.
    vnet: bool,
}

// SAFETY: the mapping belongs to this ring alone; it is only touched through `&mut self`.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Opens a receive ring on `ifindex` with `filter` attached before the socket is bound, so
    /// that no unfiltered frame is ever queued. `fanout` joins a PACKET_FANOUT group
    /// (id, mode word) shared by the packet threads.
    pub(crate) fn open(
        ifindex: u32,
        geometry: Geometry,
        filter: &Program,
        fanout: Option<(u16, u32)>,
        fanout_program: Option<&Program>,
        vnet: bool,
    ) -> io::Result<RxRing> {
        // Protocol 0 until bound: nothing is queued before the filter is in place.
        let fd = packet_socket(0)?;
        let raw = fd.as_raw_fd();
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_VERSION, &libc::tpacket_versions::TPACKET_V3, "PACKET_VERSION")?;
        // Frames this host sends (our own transmissions included) are not wanted.
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32, "PACKET_IGNORE_OUTGOING")?;
        attach_filter(raw, filter)?;
        if vnet {
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_VNET_HDR, &1i32, "PACKET_VNET_HDR")?;
        }
        let req = libc::tpacket_req3 {
            tp_block_size: geometry.block_size,
            tp_block_nr: geometry.block_count,
            tp_frame_size: 2048,
            tp_frame_nr: geometry.block_size / 2048 * geometry.block_count,
            tp_retire_blk_tov: geometry.retire_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_RX_RING, &req, "PACKET_RX_RING")?;
        let map_len = geometry.block_size as usize * geometry.block_count as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                raw,
                0,
            )
        };
        let map = if map == libc::MAP_FAILED {
            // MAP_LOCKED fails under a low RLIMIT_MEMLOCK; an unlocked ring still works.
            // SAFETY: as above, without locking.
            let retry = unsafe {
                libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, raw, 0)
            };
            if retry == libc::MAP_FAILED {
                return Err(os_error("mmap(PACKET_RX_RING)"));
            }
            retry
        } else {
            map
        };
        let ring = RxRing { fd, map: map.cast(), map_len, geometry, current: 0, vnet };
        bind(raw, ifindex, ETH_P_ALL_BE)?;
        if let Some((id, mode)) = fanout {
            if let Some(program) = fanout_program {
                let arg: u32 = u32::from(id) | (mode << 16);
                setsockopt(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg, "PACKET_FANOUT")?;
                let insns = program.instructions();
                let fprog = libc::sock_fprog {
                    len: u16::try_from(insns.len()).map_err(|_| io::Error::other("fanout program too long"))?,
                    filter: insns.as_ptr().cast_mut(),
                };
                setsockopt(raw, libc::SOL_PACKET, libc::PACKET_FANOUT_DATA, &fprog, "PACKET_FANOUT_DATA")?;
            } else {
                let arg: u32 = u32::from(id) | (mode << 16);
                setsockopt(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg, "PACKET_FANOUT")?;
            }
        }
        Ok(ring)
    }

    /// The socket, to replace its filter.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn block(&self, index: u32) -> *mut u8 {
        // SAFETY: index < block_count, so the offset stays inside the mapping.
        unsafe { self.map.add(index as usize * self.geometry.block_size as usize) }
    }

    fn block_status(&self, block: *mut u8) -> &AtomicU32 {
        // SAFETY: the status word is an aligned u32 inside the mapping that the kernel writes
        // concurrently; reading it as an atomic is how that sharing is expressed.
        unsafe { &*block.add(BLOCK_STATUS).cast::<AtomicU32>() }
    }

    /// Calls `f` for every frame of the current block if the kernel has handed it over, then
    /// gives the block back and moves on. Returns the number of frames seen.
    pub(crate) fn drain_block(&mut self, mut f: impl FnMut(RxFrame<'_>)) -> usize {
        let block = self.block(self.current);
        if self.block_status(block).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return 0;
        }
        let block_size = self.geometry.block_size as usize;
        // SAFETY: the block is ours until its status is set back to TP_STATUS_KERNEL; the
        // header fields read are inside its first 24 bytes.
        let (count, first) = unsafe {
            (block.add(BLOCK_NUM_PKTS).cast::<u32>().read(), block.add(BLOCK_FIRST).cast::<u32>().read() as usize)
        };
        let mut offset = first;
        for _ in 0..count {
            if offset + size_of::<libc::tpacket3_hdr>() > block_size {
                break;
            }
            // SAFETY: the header lies within the block (checked above) and is aligned to
            // TPACKET_ALIGNMENT by the kernel.
            let hdr = unsafe { block.add(offset).cast::<libc::tpacket3_hdr>().read() };
            let start = offset + usize::from(hdr.tp_mac);
            let len = hdr.tp_snaplen as usize;
            if start + len <= block_size {
                // SAFETY: the frame's bytes lie within the block, which stays ours during `f`.
                let data = unsafe { std::slice::from_raw_parts(block.add(start), len) };
                let vnet = if self.vnet && start >= offset + VNET_HDR_LEN {
                    // SAFETY: the kernel wrote the header just before the frame, inside the
                    // block (checked above).
                    VnetHdr::read(unsafe { std::slice::from_raw_parts(block.add(start - VNET_HDR_LEN), VNET_HDR_LEN) })
                } else {
                    VnetHdr::default()
                };
                f(RxFrame {
                    data,
                    csum_not_ready: hdr.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0,
                    truncated: hdr.tp_snaplen < hdr.tp_len,
                    vnet,
                });
            }
            if hdr.tp_next_offset == 0 {
                break;
            }
            offset += hdr.tp_next_offset as usize;
        }
        fence(Ordering::Release);
        self.block_status(block).store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.current = (self.current + 1) % self.geometry.block_count;
        count as usize
    }

    /// The kernel's receive counters since the last call: (packets, drops).
    pub(crate) fn take_stats(&self) -> (u64, u64) {
        // SAFETY: tpacket_stats_v3 is plain old data.
        let mut stats: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `stats` has room for `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &raw mut len,
            )
        };
        if rc < 0 { (0, 0) } else { (u64::from(stats.tp_packets), u64::from(stats.tp_drops)) }
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `open` mapped; no frame borrows outlive `drain_block`.
        unsafe { libc::munmap(self.map.cast(), self.map_len) };
    }
}

/// A transmit socket on one interface: frames are queued and sent in bursts with `sendmmsg`,
/// straight to the driver (PACKET_QDISC_BYPASS).
#[derive(Debug)]
pub(crate) struct TxSocket {
    fd: OwnedFd,
    ifindex: u32,
    /// Frames waiting to be sent, back to back.
    bytes: Vec<u8>,
    /// (offset, length) of each waiting frame in `bytes`.
    frames: Vec<(usize, usize)>,
    /// Frames the kernel refused (too long for the MTU, no buffer space).
    pub(crate) errors: u64,
    /// Each frame is preceded by a virtio-net header (PACKET_VNET_HDR).
    vnet: bool,
    /// The interface takes GSO super-frames. With the qdisc bypassed the kernel cannot segment
    /// for a device that lacks segmentation offload (it refuses with ENOBUFS): after the first
    /// refusal vsd cuts super-frames itself.
    gso_ok: bool,
    /// The interface's MTU, for that cutting.
    mtu: usize,
}

/// Frames sent with one `sendmmsg` call at most.
const TX_BURST: usize = 64;

impl TxSocket {
    /// Opens a transmit socket on `ifindex`. Protocol 0: it receives nothing. With `vnet`, every
    /// frame carries its offload state (`push_offloaded`).
    pub(crate) fn open(ifindex: u32, vnet: bool, mtu: usize) -> io::Result<TxSocket> {
        let fd = packet_socket(0)?;
        setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &1i32, "PACKET_QDISC_BYPASS")?;
        if vnet {
            setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_VNET_HDR, &1i32, "PACKET_VNET_HDR")?;
        }
        bind(fd.as_raw_fd(), ifindex, 0)?;
        Ok(TxSocket {
            fd,
            ifindex,
            bytes: Vec::with_capacity(TX_BURST * 2048),
            frames: Vec::new(),
            errors: 0,
            vnet,
            gso_ok: true,
            mtu,
        })
    }

    /// Queues a frame with nothing left for the kernel to do.
    pub(crate) fn push(&mut self, frame: &[u8]) {
        self.push_offloaded(frame, VnetHdr::default());
    }

    /// Queues a frame with its offload state (a partial checksum to complete, a super-frame
    /// to segment); sends the queue when a burst is full.
    pub(crate) fn push_offloaded(&mut self, frame: &[u8], offload: VnetHdr) {
        if offload.is_gso() && !self.gso_ok {
            self.push_segmented(frame);
            return;
        }
        let start = self.bytes.len();
        if self.vnet {
            self.bytes.extend_from_slice(&offload.bytes());
        }
        self.bytes.extend_from_slice(frame);
        self.frames.push((start, self.bytes.len() - start));
        if self.frames.len() >= TX_BURST {
            self.flush();
        }
    }

    /// Cuts a super-frame (its checksum partial) into MTU-sized segments, each complete.
    fn push_segmented(&mut self, frame: &[u8]) {
        let mut whole = frame.to_vec();
        super::offload::complete_checksum(&mut whole);
        let mut pieces = Vec::new();
        if super::offload::segment(&whole, self.mtu, |seg| pieces.push(seg.to_vec())) {
            for piece in pieces {
                self.push(&piece);
            }
        } else {
            self.errors += 1;
        }
    }

    /// Sends every queued frame.
    pub(crate) fn flush(&mut self) {
        let mut refused_gso = Vec::new();
        let mut done = 0;
        while done < self.frames.len() {
            let chunk = &self.frames[done..];
            // Fixed-capacity lists: no allocation per burst.
            let mut iovs: heapless::Vec<libc::iovec, TX_BURST> = chunk
                .iter()
                .take(TX_BURST)
                .map(|&(off, len)| libc::iovec { iov_base: self.bytes[off..].as_ptr().cast_mut().cast(), iov_len: len })
                .collect();
            // SAFETY: sockaddr_ll is plain old data.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = self.ifindex as i32;
            let mut msgs: heapless::Vec<libc::mmsghdr, TX_BURST> = iovs
                .iter_mut()
                .map(|iov| {
                    // SAFETY: msghdr is plain old data; the pointers set below stay valid
                    // until sendmmsg returns.
                    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
                    hdr.msg_name = (&raw mut addr).cast();
                    hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                    hdr.msg_iov = iov;
                    hdr.msg_iovlen = 1;
                    libc::mmsghdr { msg_hdr: hdr, msg_len: 0 }
                })
                .collect();
            // SAFETY: `msgs` holds `msgs.len()` valid headers pointing at live buffers.
            let rc = unsafe {
                libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as libc::c_uint, libc::MSG_DONTWAIT)
            };
            if rc <= 0 {
                // The first frame was refused (EMSGSIZE, ENOBUFS): count it and go on, unless
                // it is a super-frame the device cannot take, which is cut and sent again.
                let error = io::Error::last_os_error();
                let (off, len) = self.frames[done];
                let offload = if self.vnet { self.bytes.get(off..off + VNET_HDR_LEN).map(VnetHdr::read) } else { None };
                if let Some(hdr) = offload.filter(|h| h.is_gso())
                    && error.raw_os_error() == Some(libc::ENOBUFS)
                {
                    if self.gso_ok {
                        tracing::info!(
                            ifindex = self.ifindex,
                            "the interface takes no GSO frames with the qdisc bypassed; vsd segments them itself"
                        );
                    }
                    self.gso_ok = false;
                    refused_gso.push((self.bytes[off + VNET_HDR_LEN..off + len].to_vec(), hdr));
                } else {
                    if self.errors.is_power_of_two() || self.errors == 0 {
                        tracing::warn!(%error, len, refused = self.errors + 1, "transmit refused");
                    }
                    self.errors += 1;
                }
                done += 1;
            } else {
                done += rc as usize;
            }
        }
        self.frames.clear();
        self.bytes.clear();
        if !refused_gso.is_empty() {
            for (frame, hdr) in refused_gso {
                self.push_offloaded(&frame, hdr);
            }
            self.flush();
        }
    }
}
