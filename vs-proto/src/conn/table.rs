//! The fixed-capacity connection table: DPDK `rte_hash`-style buckets of one cache line (eight
//! 16-bit tags and eight entry indices) over a separate array of 64-byte entries, with a keyed
//! hash seeded by the host.
//!
//! Each connection is hashed once, by (protocol, client address, client port), as IPVS does:
//! client→VIP packets and (for NAT) real server→client replies both name the client, so both
//! directions find the entry through the same bucket. A lookup reads one bucket line and, on a
//! tag match, the entry's line; a miss touches the bucket only.
//!
//! Every key has two candidate buckets taken from disjoint bits of its hash. An entry goes to
//! the first with a free way, else the second; when both are full, a bounded breadth-first
//! search moves entries to their other bucket to make room (cuckoo displacement, as DPDK's
//! `rte_hash` does). Each bucket counts the entries of which it is the first choice but that
//! live in their second, so that a lookup reads the second bucket only when that count is not
//! zero. With twice as many ways as entries, every stated slot is usable: the table fills to
//! its capacity (the tests fill it for a thousand seeds and several client patterns).
//!
//! The hash is keyed: the key's words are combined with per-table secret words by 64×64→128-bit
//! multiplications folded to 64 bits, twice in sequence, so every key bit reaches every hash
//! bit. The secret words come from the host's seed, so a client that does not know the seed
//! cannot aim connections at one bucket. (hash32's FNV and Murmur3 take no key, which is why
//! they are not used here.)
//!
//! All memory is given at initialisation: [`ConnTable::footprint`] says how many bytes a
//! capacity needs, [`ConnTable::new`] carves them with zerocopy (no `unsafe`). Nothing is
//! allocated afterwards; every operation does bounded work.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use super::state::ConnState;
use crate::wire::IpProtocol;

/// Ways per bucket.
pub const WAYS: usize = 8;
/// An index meaning "no entry".
const NO_SLOT: u32 = u32::MAX;
/// A connection without a controlling template.
pub const NO_LINK: u32 = u32::MAX;

/// How a connection forwards packets (IPVS's forwarding methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Forward {
    /// NAT / masquerading (`-m`).
    Nat = 0,
    /// Direct routing / gatewaying (`-g`).
    DirectRoute = 1,
    /// IP-in-IP tunnel (`-i`).
    Tunnel = 2,
}

impl Forward {
    fn from_bits(bits: u16) -> Forward {
        match bits & FWD_MASK {
            1 => Forward::DirectRoute,
            2 => Forward::Tunnel,
            _ => Forward::Nat,
        }
    }
}

const FWD_MASK: u16 = 0x0003;
/// The entry holds a connection.
const F_USED: u16 = 0x0004;
/// Addresses are IPv6 (else IPv4, stored in the first four bytes).
const F_V6: u16 = 0x0008;
/// No reply seen yet (every DR / TUN connection, and NAT before its first reply).
const F_NOOUTPUT: u16 = 0x0010;
/// A persistence template rather than a connection.
const F_TEMPLATE: u16 = 0x0020;
/// A template that may no longer be used (its server went away or was quiesced): it only ages
/// out (IPVS re-hashes such a template with ports 0xFFFF for the same effect).
const F_INVALID: u16 = 0x0040;
/// A template one of whose connections reached ESTABLISHED.
const F_ASSURED: u16 = 0x0080;

/// One connection: 64 bytes, one cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(64))]
pub struct Conn {
    caddr: [u8; 16],
    vaddr: [u8; 16],
    daddr: [u8; 16],
    cport: u16,
    vport: u16,
    dport: u16,
    proto: u8,
    state: u8,
    flags: u16,
    dest: u16,
    expires: u32,
}

/// What a new connection is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NewConn {
    /// Transport protocol.
    pub proto: IpProtocol,
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Virtual address and port the client connected to.
    pub virt: (IpAddr, u16),
    /// Real server address and port.
    pub real: (IpAddr, u16),
    /// Forwarding method.
    pub forward: Forward,
    /// The real server's slot in the engine.
    pub dest: u16,
    /// Initial state.
    pub state: ConnState,
    /// Expiry time in table ticks.
    pub expires: u32,
    /// True for a persistence template.
    pub template: bool,
}

/// An address in the table's form (IPv4 in the first four bytes).
pub(crate) fn octets(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => {
            let mut o = [0u8; 16];
            if let Some(head) = o.get_mut(..4) {
                head.copy_from_slice(&a.octets());
            }
            o
        }
        IpAddr::V6(a) => a.octets(),
    }
}

impl Conn {
    fn addr(&self, bytes: [u8; 16]) -> IpAddr {
        if self.flags & F_V6 != 0 {
            IpAddr::V6(Ipv6Addr::from(bytes))
        } else {
            let [a, b, c, d, ..] = bytes;
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        }
    }

    /// True when the slot holds a connection.
    #[must_use]
    pub fn is_used(&self) -> bool {
        self.flags & F_USED != 0
    }

    /// Transport protocol.
    #[must_use]
    pub fn proto(&self) -> IpProtocol {
        IpProtocol(self.proto)
    }

    /// Client address and port.
    #[must_use]
    pub fn client(&self) -> (IpAddr, u16) {
        (self.addr(self.caddr), self.cport)
    }

    /// Virtual address and port.
    #[must_use]
    pub fn virt(&self) -> (IpAddr, u16) {
        (self.addr(self.vaddr), self.vport)
    }

    /// Real server address and port.
    #[must_use]
    pub fn real(&self) -> (IpAddr, u16) {
        (self.addr(self.daddr), self.dport)
    }

    /// Forwarding method.
    #[must_use]
    pub fn forward(&self) -> Forward {
        Forward::from_bits(self.flags)
    }

    /// The real server's slot.
    #[must_use]
    pub fn dest(&self) -> u16 {
        self.dest
    }

    /// Current state.
    #[must_use]
    pub fn state(&self) -> ConnState {
        ConnState::from_index(self.state).unwrap_or(ConnState::None)
    }

    /// Sets the state.
    pub fn set_state(&mut self, state: ConnState) {
        self.state = state as u8;
    }

    /// Expiry time in table ticks.
    #[must_use]
    pub fn expires(&self) -> u32 {
        self.expires
    }

    /// Sets the expiry time.
    pub fn set_expires(&mut self, ticks: u32) {
        self.expires = ticks;
    }

    /// True while no reply has been seen.
    #[must_use]
    pub fn no_output(&self) -> bool {
        self.flags & F_NOOUTPUT != 0
    }

    /// Records that a reply was seen.
    pub fn clear_no_output(&mut self) {
        self.flags &= !F_NOOUTPUT;
    }

    /// True for a persistence template.
    #[must_use]
    pub fn is_template(&self) -> bool {
        self.flags & F_TEMPLATE != 0
    }

    /// True for a template that may no longer be used.
    #[must_use]
    pub fn is_invalid(&self) -> bool {
        self.flags & F_INVALID != 0
    }

    /// Marks a template as no longer usable; it ages out.
    pub fn invalidate(&mut self) {
        self.flags |= F_INVALID;
    }

    /// True for a template one of whose connections was established.
    #[must_use]
    pub fn is_assured(&self) -> bool {
        self.flags & F_ASSURED != 0
    }

    /// Marks a template as assured.
    pub fn assure(&mut self) {
        self.flags |= F_ASSURED;
    }

    fn v6(&self) -> bool {
        self.flags & F_V6 != 0
    }

    /// The virtual address as stored (IPv4 in the first four bytes), for the fast path.
    pub(crate) fn vaddr_bytes(&self) -> &[u8; 16] {
        &self.vaddr
    }

    /// The real server's address as stored (IPv4 in the first four bytes), for the fast path.
    pub(crate) fn daddr_bytes(&self) -> &[u8; 16] {
        &self.daddr
    }

    /// Virtual port.
    pub(crate) fn vport(&self) -> u16 {
        self.vport
    }

    /// The state's index, without decoding it.
    pub(crate) fn state_index(&self) -> u8 {
        self.state
    }
}

// The layout promises: one cache line per entry and per bucket.
const _: () = assert!(size_of::<Conn>() == 64 && size_of::<Bucket>() == 64);

/// A bucket: eight tags (0 = empty way) and the entry index of each way, on one cache line.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(64))]
pub struct Bucket {
    tags: [u16; WAYS],
    slots: [u32; WAYS],
    /// How many entries whose first choice is this bucket live in their second one.
    displaced: u32,
    _pad: [u8; 12],
}

/// Why an insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InsertError {
    /// Every entry is in use.
    TableFull,
    /// Both candidate buckets are full and no displacement within the search bound made room
    /// (not seen below the stated capacity at the sizes `footprint` picks).
    BucketsFull,
}

/// Why the given memory cannot hold a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MemoryError {
    /// Fewer bytes than [`ConnTable::footprint`] asked for.
    TooSmall,
    /// Capacity 0, or above 2^31.
    BadCapacity,
}

impl core::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            MemoryError::TooSmall => "the memory given is smaller than ConnTable::footprint asks for",
            MemoryError::BadCapacity => {
                "the capacity must be 1 to 2^31 connections (and owned memory must have buckets_for(capacity) buckets)"
            }
        })
    }
}

impl core::error::Error for MemoryError {}

impl core::fmt::Display for InsertError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            InsertError::TableFull => "the connection table is full",
            InsertError::BucketsFull => "no room in the connection's buckets, even after moving entries",
        })
    }
}

impl core::error::Error for InsertError {}

/// A connection's hash key as stored: protocol, family, client address (IPv4 in the first four
/// bytes) and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawKey {
    pub(crate) proto: u8,
    pub(crate) v6: bool,
    /// The stored address bytes read as a little-endian number (a register, not an array).
    pub(crate) caddr: u128,
    pub(crate) cport: u16,
}

/// Stored address bytes as the number [`RawKey`] and the fast path use.
pub(crate) fn addr_word(bytes: &[u8; 16]) -> u128 {
    u128::from_le_bytes(*bytes)
}

/// Where a connection lives: its index in the entry array (stable while it lives).
pub type ConnIndex = u32;

/// Where a table's buckets, entries and free list live.
pub trait TableMemory {
    /// The buckets (a power of two of them).
    fn buckets(&self) -> &[Bucket];
    /// The buckets, mutable.
    fn buckets_mut(&mut self) -> &mut [Bucket];
    /// The entries.
    fn conns(&self) -> &[Conn];
    /// The entries, mutable.
    fn conns_mut(&mut self) -> &mut [Conn];
    /// The free-index stack (as long as the entries).
    fn free(&self) -> &[u32];
    /// The free-index stack, mutable.
    fn free_mut(&mut self) -> &mut [u32];
    /// Per entry: a connection's controlling template, or a template's count of connections.
    fn links(&self) -> &[u32];
    /// The links, mutable.
    fn links_mut(&mut self) -> &mut [u32];
}

/// Table memory carved out of host-supplied bytes.
#[derive(Debug)]
pub struct BorrowedMemory<'a> {
    buckets: &'a mut [Bucket],
    conns: &'a mut [Conn],
    free: &'a mut [u32],
    links: &'a mut [u32],
}

impl TableMemory for BorrowedMemory<'_> {
    fn buckets(&self) -> &[Bucket] {
        self.buckets
    }
    fn buckets_mut(&mut self) -> &mut [Bucket] {
        self.buckets
    }
    fn conns(&self) -> &[Conn] {
        self.conns
    }
    fn conns_mut(&mut self) -> &mut [Conn] {
        self.conns
    }
    fn free(&self) -> &[u32] {
        self.free
    }
    fn free_mut(&mut self) -> &mut [u32] {
        self.free
    }
    fn links(&self) -> &[u32] {
        self.links
    }
    fn links_mut(&mut self) -> &mut [u32] {
        self.links
    }
}

/// Table memory owned by value, sized by const generics: `CAP` entries over `BUCKETS`
/// buckets (use [`buckets_for`]`(CAP)`). Put it in a `static` or a `Box` for large tables.
#[derive(Debug, FromZeros)]
#[repr(C)]
pub struct OwnedMemory<const CAP: usize, const BUCKETS: usize> {
    buckets: [Bucket; BUCKETS],
    conns: [Conn; CAP],
    free: [u32; CAP],
    links: [u32; CAP],
}

impl<const CAP: usize, const BUCKETS: usize> TableMemory for OwnedMemory<CAP, BUCKETS> {
    fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }
    fn buckets_mut(&mut self) -> &mut [Bucket] {
        &mut self.buckets
    }
    fn conns(&self) -> &[Conn] {
        &self.conns
    }
    fn conns_mut(&mut self) -> &mut [Conn] {
        &mut self.conns
    }
    fn free(&self) -> &[u32] {
        &self.free
    }
    fn free_mut(&mut self) -> &mut [u32] {
        &mut self.free
    }
    fn links(&self) -> &[u32] {
        &self.links
    }
    fn links_mut(&mut self) -> &mut [u32] {
        &mut self.links
    }
}

/// The number of buckets a table of `capacity` entries uses (for [`OwnedMemory`]).
#[must_use]
pub const fn buckets_for(capacity: usize) -> usize {
    bucket_count(capacity)
}

/// The connection table over some [`TableMemory`].
#[derive(Debug)]
pub struct Table<M> {
    mem: M,
    free_len: usize,
    mask: usize,
    key: [u64; 4],
    sweep_cursor: usize,
}

/// The connection table over host-supplied memory.
pub type ConnTable<'a> = Table<BorrowedMemory<'a>>;

/// The connection table owning its memory: `OwnedTable<4096, { buckets_for(4096) }>`.
pub type OwnedTable<const CAP: usize, const BUCKETS: usize> = Table<OwnedMemory<CAP, BUCKETS>>;

/// Buckets for a capacity: a power of two with at least twice as many ways as entries.
const fn bucket_count(capacity: usize) -> usize {
    let wanted = capacity.div_ceil(WAYS / 2);
    match wanted.checked_next_power_of_two() {
        Some(n) => n,
        None => usize::MAX,
    }
}

impl<'a> Table<BorrowedMemory<'a>> {
    /// Bytes of memory a table of `capacity` connections needs (including up to 63 bytes to
    /// align the start).
    #[must_use]
    pub const fn footprint(capacity: usize) -> usize {
        // Saturating: an absurd capacity asks for more memory than exists instead of wrapping.
        let buckets = bucket_count(capacity).saturating_mul(size_of::<Bucket>());
        let conns = capacity.saturating_mul(size_of::<Conn>());
        // The free-index stack and the links: one u32 each per entry.
        let free = capacity.saturating_mul(4);
        let links = capacity.saturating_mul(4);
        63usize.saturating_add(buckets).saturating_add(conns).saturating_add(free).saturating_add(links)
    }

    /// Lays a table of `capacity` connections out in `memory`, seeding the hash with `seed`.
    ///
    /// # Errors
    /// [`MemoryError`] when the memory is too small or the capacity unusable.
    pub fn new(memory: &'a mut [u8], capacity: usize, seed: u64) -> Result<Self, MemoryError> {
        if capacity == 0 || capacity > (1 << 31) {
            return Err(MemoryError::BadCapacity);
        }
        if memory.len() < Self::footprint(capacity) {
            return Err(MemoryError::TooSmall);
        }
        // Align the start to a cache line: the address is only used for arithmetic.
        let misalign = memory.as_ptr() as usize % 64;
        let skip = (64 - misalign) % 64;
        let memory = memory.get_mut(skip..).ok_or(MemoryError::TooSmall)?;
        let nb = bucket_count(capacity);
        let (buckets, rest) = <[Bucket]>::mut_from_prefix_with_elems(memory, nb).map_err(|_| MemoryError::TooSmall)?;
        let (conns, rest) = <[Conn]>::mut_from_prefix_with_elems(rest, capacity).map_err(|_| MemoryError::TooSmall)?;
        let (free, rest) = <[u32]>::mut_from_prefix_with_elems(rest, capacity).map_err(|_| MemoryError::TooSmall)?;
        let (links, _) = <[u32]>::mut_from_prefix_with_elems(rest, capacity).map_err(|_| MemoryError::TooSmall)?;
        Ok(Table::with_memory(BorrowedMemory { buckets, conns, free, links }, seed))
    }
}

impl<const CAP: usize, const BUCKETS: usize> Table<OwnedMemory<CAP, BUCKETS>> {
    /// A table owning its memory, seeding the hash with `seed`.
    ///
    /// # Errors
    /// [`MemoryError::BadCapacity`] when `BUCKETS` is not `buckets_for(CAP)`.
    pub fn owned(memory: OwnedMemory<CAP, BUCKETS>, seed: u64) -> Result<Self, MemoryError> {
        if CAP == 0 || CAP > (1 << 31) || BUCKETS != bucket_count(CAP) {
            return Err(MemoryError::BadCapacity);
        }
        Ok(Table::with_memory(memory, seed))
    }
}

impl<M: TableMemory> Table<M> {
    fn with_memory(mut mem: M, seed: u64) -> Self {
        mem.buckets_mut().zero();
        mem.conns_mut().zero();
        mem.links_mut().fill(NO_LINK);
        let free = mem.free_mut();
        // Hand out low indices first.
        let n = free.len();
        for (i, slot) in free.iter_mut().enumerate() {
            *slot = u32::try_from(n - 1 - i).unwrap_or(NO_SLOT);
        }
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let key = [next(), next(), next(), next()];
        let mask = mem.buckets().len() - 1;
        Table { mem, free_len: n, mask, key, sweep_cursor: 0 }
    }

    /// Connections the table can hold.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.mem.conns().len()
    }

    /// Connections in the table.
    #[must_use]
    pub fn len(&self) -> usize {
        self.mem.conns().len() - self.free_len
    }

    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keyed hash of (protocol, address, port): two folded multiplications with the
    /// secret words, the second over the first's result, so that every input bit reaches every
    /// output bit and nothing about the key words' linear structure survives.
    fn hash(&self, proto: u8, addr: &[u8; 16], port: u16) -> u64 {
        self.hash_word(proto, addr_word(addr), port)
    }

    /// [`Table::hash`] of an address read as a number.
    #[inline(always)]
    fn hash_word(&self, proto: u8, addr: u128, port: u16) -> u64 {
        let (w0, w1) = (addr as u64, (addr >> 64) as u64);
        let w2 = (u64::from(proto) << 16) | u64::from(port);
        let [k0, k1, k2, k3] = self.key;
        fold_mul(fold_mul(w0 ^ k0, w1 ^ k1) ^ k2, w2 ^ k3)
    }

    /// The two candidate buckets and the tag for a hash: the buckets from disjoint bit ranges
    /// (bits 0–31 and 32–63; tables have at most 2^29 buckets), the tag from a multiplication
    /// of the whole hash, so that neither bucket predicts the other or the tag.
    fn place(&self, h: u64) -> (usize, usize, u16) {
        let (b1, tag) = self.first_choice(h);
        (b1, self.second_choice(h, b1), tag)
    }

    /// The first bucket and the tag (all a lookup needs unless the bucket has displaced
    /// entries).
    #[inline(always)]
    fn first_choice(&self, h: u64) -> (usize, u16) {
        ((h as usize) & self.mask, ((h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u16) | 1)
    }

    /// The second bucket, never the first.
    fn second_choice(&self, h: u64, b1: usize) -> usize {
        let b2 = ((h >> 32) as usize) & self.mask;
        if b2 == b1 { (b1 ^ 1) & self.mask } else { b2 }
    }

    /// Finds the entry whose key satisfies `matches`, among the entries hashed under
    /// (protocol, client address, client port).
    fn find(&self, proto: u8, caddr: &[u8; 16], cport: u16, matches: impl Fn(&Conn) -> bool) -> Option<ConnIndex> {
        self.find_hashed(self.hash(proto, caddr, cport), matches)
    }

    /// As [`Table::find`], for a key hashed already.
    #[inline(always)]
    fn find_hashed(&self, h: u64, matches: impl Fn(&Conn) -> bool) -> Option<ConnIndex> {
        let (b1, tag) = self.first_choice(h);
        let first = self.mem.buckets().get(b1)?;
        if let Some(i) = self.scan(first, tag, &matches) {
            return Some(i);
        }
        if first.displaced == 0 {
            return None;
        }
        self.scan(self.mem.buckets().get(self.second_choice(h, b1))?, tag, &matches)
    }

    /// The entry of `bucket` with this tag whose key satisfies `matches` (which must check
    /// that the entry is in use). The eight tags are
    /// compared at once as lanes of one 128-bit word (a lane is zero where the tag matches).
    #[inline(always)]
    fn scan(&self, bucket: &Bucket, tag: u16, matches: &impl Fn(&Conn) -> bool) -> Option<ConnIndex> {
        let mut hits = tag_hits(bucket, tag);
        while hits != 0 {
            let way = (hits.trailing_zeros() / 16) as usize;
            hits &= hits - 1;
            let slot = *bucket.slots.get(way)?;
            if bucket.tags.get(way) == Some(&tag) && self.mem.conns().get(slot as usize).is_some_and(matches) {
                return Some(slot);
            }
        }
        None
    }

    /// Loads the first bucket a lookup under (protocol, address, port) will read, so that a
    /// burst can start every bucket's cache miss before the first lookup waits on one; returns
    /// the hash for [`Table::warm_entry`]. (A plain load: the prefetch instruction needs
    /// `unsafe`, which this crate forbids; on an out-of-order CPU independent loads overlap
    /// their misses the same way.)
    pub fn warm(&self, proto: IpProtocol, addr: IpAddr, port: u16) -> u64 {
        self.warm_raw(&RawKey { proto: proto.0, v6: addr.is_ipv6(), caddr: addr_word(&octets(addr)), cport: port })
    }

    /// The second stage of a burst: loads the entries whose tags match in the bucket that
    /// [`Table::warm`] loaded (its line is in cache by now), so that their misses overlap too.
    pub fn warm_entry(&self, h: u64) {
        let (b1, tag) = self.first_choice(h);
        let Some(bucket) = self.mem.buckets().get(b1) else { return };
        let mut hits = tag_hits(bucket, tag);
        while hits != 0 {
            let way = (hits.trailing_zeros() / 16) as usize;
            hits &= hits - 1;
            if let Some(&slot) = bucket.slots.get(way)
                && let Some(conn) = self.mem.conns().get(slot as usize)
            {
                core::hint::black_box(conn.flags);
            }
        }
    }

    /// The hash of a key as stored. (Burst passes use 0 for "no key"; a key whose hash is 0,
    /// one in 2^64, is then only not loaded ahead.)
    pub(crate) fn key_hash(&self, key: &RawKey) -> u64 {
        self.hash_word(key.proto, key.caddr, key.cport)
    }

    /// Loads the first bucket of every hash (0: skipped) in a loop of a few instructions
    /// each, so that all the misses are in flight at once: an out-of-order core holds a few
    /// hundred instructions, which a loop that also parsed and hashed would fill after a
    /// handful of packets.
    pub(crate) fn touch_buckets(&self, hashes: &[u64]) {
        let buckets = self.mem.buckets();
        let mut sum = 0u32;
        for &h in hashes.iter().filter(|h| **h != 0) {
            sum = sum.wrapping_add(buckets.get(self.first_choice(h).0).map_or(0, |b| b.displaced));
        }
        core::hint::black_box(sum);
    }

    /// The second pass: loads the entry each hash's tag points at in its (now cached) first
    /// bucket.
    pub(crate) fn touch_entries(&self, hashes: &[u64]) {
        let mut slots = [NO_SLOT; 64];
        for (slot, &h) in slots.iter_mut().zip(hashes).filter(|(_, h)| **h != 0) {
            let (b1, tag) = self.first_choice(h);
            if let Some(bucket) = self.mem.buckets().get(b1) {
                let hits = tag_hits(bucket, tag);
                if hits != 0 {
                    *slot = bucket.slots.get((hits.trailing_zeros() / 16) as usize).copied().unwrap_or(NO_SLOT);
                }
            }
        }
        let conns = self.mem.conns();
        let mut sum = 0u16;
        for &slot in slots.iter().take(hashes.len()) {
            sum = sum.wrapping_add(conns.get(slot as usize).map_or(0, |c| c.flags));
        }
        core::hint::black_box(sum);
    }

    /// In-lookup (client → virtual service): the connection (not a template) of this client
    /// to this virtual address and port.
    #[must_use]
    pub fn lookup_in(&self, proto: IpProtocol, client: (IpAddr, u16), virt: (IpAddr, u16)) -> Option<ConnIndex> {
        let key =
            RawKey { proto: proto.0, v6: client.0.is_ipv6(), caddr: addr_word(&octets(client.0)), cport: client.1 };
        self.lookup_in_raw(&key, addr_word(&octets(virt.0)), virt.1)
    }

    /// [`Table::lookup_in`] on addresses as stored (IPv4 in the first four bytes).
    #[inline(always)]
    pub(crate) fn lookup_in_raw(&self, key: &RawKey, vaddr: u128, vport: u16) -> Option<ConnIndex> {
        let flags = if key.v6 { F_USED | F_V6 } else { F_USED };
        self.find_hashed(self.hash_word(key.proto, key.caddr, key.cport), |c| {
            c.flags & (F_USED | F_TEMPLATE | F_V6) == flags
                && c.proto == key.proto
                && c.cport == key.cport
                && c.vport == vport
                && addr_word(&c.caddr) == key.caddr
                && addr_word(&c.vaddr) == vaddr
        })
    }

    /// Template lookup (persistence): the usable template for this masked client address and
    /// virtual address and port (port 0 for port-less and firewall-mark services).
    #[must_use]
    pub fn lookup_template(&self, proto: IpProtocol, client_net: IpAddr, virt: (IpAddr, u16)) -> Option<ConnIndex> {
        let (caddr, vaddr) = (octets(client_net), octets(virt.0));
        let v6 = client_net.is_ipv6();
        self.find(proto.0, &caddr, 0, |c| {
            c.is_used()
                && c.is_template()
                && !c.is_invalid()
                && c.v6() == v6
                && c.proto == proto.0
                && c.caddr == caddr
                && c.cport == 0
                && c.vaddr == vaddr
                && c.vport == virt.1
        })
    }

    /// The link of an entry: a connection's controlling template ([`NO_LINK`] if none), or a
    /// template's number of controlled connections.
    #[must_use]
    pub fn link(&self, index: ConnIndex) -> u32 {
        self.mem.links().get(index as usize).copied().unwrap_or(NO_LINK)
    }

    /// Sets an entry's link.
    pub fn set_link(&mut self, index: ConnIndex, link: u32) {
        if let Some(l) = self.mem.links_mut().get_mut(index as usize) {
            *l = link;
        }
    }

    /// Out-lookup (real server → client): the connection this reply belongs to. For NAT the
    /// reply comes from the real server's address and port; for DR / TUN (replies the director
    /// only sees when they are its own) from the virtual ones.
    #[must_use]
    pub fn lookup_out(&self, proto: IpProtocol, from: (IpAddr, u16), client: (IpAddr, u16)) -> Option<ConnIndex> {
        let key =
            RawKey { proto: proto.0, v6: client.0.is_ipv6(), caddr: addr_word(&octets(client.0)), cport: client.1 };
        self.lookup_out_raw(&key, addr_word(&octets(from.0)), from.1)
    }

    /// [`Table::lookup_out`] on addresses as stored (IPv4 in the first four bytes).
    #[inline(always)]
    pub(crate) fn lookup_out_raw(&self, key: &RawKey, faddr: u128, fport: u16) -> Option<ConnIndex> {
        let flags = if key.v6 { F_USED | F_V6 } else { F_USED };
        self.find_hashed(self.hash_word(key.proto, key.caddr, key.cport), |c| {
            let source_ok = match c.forward() {
                Forward::Nat => c.dport == fport && addr_word(&c.daddr) == faddr,
                _ => c.vport == fport && addr_word(&c.vaddr) == faddr,
            };
            c.flags & (F_USED | F_TEMPLATE | F_V6) == flags
                && c.proto == key.proto
                && c.cport == key.cport
                && addr_word(&c.caddr) == key.caddr
                && source_ok
        })
    }

    /// The hash [`Table::warm`] computes, for a key as stored.
    pub(crate) fn warm_raw(&self, key: &RawKey) -> u64 {
        let h = self.hash_word(key.proto, key.caddr, key.cport);
        let (b1, _) = self.first_choice(h);
        if let Some(bucket) = self.mem.buckets().get(b1) {
            core::hint::black_box(bucket.tags.first().copied());
        }
        h
    }

    /// Inserts a connection and returns its index.
    ///
    /// # Errors
    /// [`InsertError::TableFull`] or [`InsertError::BucketsFull`]; the table is unchanged.
    pub fn insert(&mut self, new: &NewConn) -> Result<ConnIndex, InsertError> {
        let caddr = octets(new.client.0);
        let (b1, b2, tag) = self.place(self.hash(new.proto.0, &caddr, new.client.1));
        let top = self.free_len.checked_sub(1).ok_or(InsertError::TableFull)?;
        let index = *self.mem.free().get(top).ok_or(InsertError::TableFull)?;
        let (bucket, way) = match free_way(self.mem.buckets().get(b1)) {
            Some(w) => (b1, w),
            None => match free_way(self.mem.buckets().get(b2)) {
                Some(w) => (b2, w),
                None => self.make_space(b1, b2).ok_or(InsertError::BucketsFull)?,
            },
        };
        if bucket != b1
            && let Some(first) = self.mem.buckets_mut().get_mut(b1)
        {
            first.displaced += 1;
        }
        let conn = self.mem.conns_mut().get_mut(index as usize).ok_or(InsertError::TableFull)?;
        let mut flags = F_USED | new.forward as u16;
        if new.client.0.is_ipv6() {
            flags |= F_V6;
        }
        if new.forward != Forward::Nat {
            // DR / TUN replies never pass the director: the connection stays INPUT_ONLY.
            flags |= F_NOOUTPUT;
        }
        if new.template {
            flags |= F_TEMPLATE;
        }
        *conn = Conn {
            caddr,
            vaddr: octets(new.virt.0),
            daddr: octets(new.real.0),
            cport: new.client.1,
            vport: new.virt.1,
            dport: new.real.1,
            proto: new.proto.0,
            state: new.state as u8,
            flags,
            dest: new.dest,
            expires: new.expires,
        };
        if let Some(b) = self.mem.buckets_mut().get_mut(bucket)
            && let (Some(t), Some(s)) = (b.tags.get_mut(way), b.slots.get_mut(way))
        {
            *t = tag;
            *s = index;
        }
        let link = if new.template { 0 } else { NO_LINK };
        if let Some(l) = self.mem.links_mut().get_mut(index as usize) {
            *l = link;
        }
        self.free_len = top;
        Ok(index)
    }

    /// The two buckets and the tag of the entry at `index`.
    fn place_of(&self, index: u32) -> Option<(usize, usize, u16)> {
        let c = self.mem.conns().get(index as usize)?;
        Some(self.place(self.hash(c.proto, &c.caddr, c.cport)))
    }

    /// Frees a way in bucket `b1` or `b2` by moving entries to their other bucket: a
    /// breadth-first search over at most [`SEARCH_NODES`] buckets for one with a free way, then
    /// the moves along the path found, last first (so an entry is always in one of its
    /// buckets). Returns the bucket and way now free.
    fn make_space(&mut self, b1: usize, b2: usize) -> Option<(usize, usize)> {
        // A search node: a bucket, and how it was reached (parent node and the parent's way
        // whose entry would move into it).
        let mut nodes: heapless::Vec<(usize, usize, usize), SEARCH_NODES> = heapless::Vec::new();
        nodes.push((b1, usize::MAX, 0)).ok()?;
        nodes.push((b2, usize::MAX, 0)).ok()?;
        let mut head = 0;
        let mut found = None;
        'search: while let Some(&(bucket, _, _)) = nodes.get(head) {
            for way in 0..WAYS {
                let slot = *self.mem.buckets().get(bucket)?.slots.get(way)?;
                let (p, s, _) = self.place_of(slot)?;
                let alt = if p == bucket { s } else { p };
                if let Some(free) = free_way(self.mem.buckets().get(alt)) {
                    found = Some((head, way, alt, free));
                    break 'search;
                }
                if !nodes.iter().any(|n| n.0 == alt) {
                    // A full search list only ends the widening, not the search.
                    let _ = nodes.push((alt, head, way));
                }
            }
            head += 1;
        }
        let (mut node, mut way, mut to, mut to_way) = found?;
        loop {
            let &(from, parent, parent_way) = nodes.get(node)?;
            self.move_entry(from, way, to, to_way)?;
            if parent == usize::MAX {
                return Some((from, way));
            }
            (to, to_way) = (from, way);
            (node, way) = (parent, parent_way);
        }
    }

    /// Moves the entry in `from`'s `way` to `to`'s free `to_way` (its other bucket), keeping
    /// its first bucket's displaced count.
    fn move_entry(&mut self, from: usize, way: usize, to: usize, to_way: usize) -> Option<()> {
        let buckets = self.mem.buckets();
        let (tag, slot) = (*buckets.get(from)?.tags.get(way)?, *buckets.get(from)?.slots.get(way)?);
        let (first, _, _) = self.place_of(slot)?;
        let buckets = self.mem.buckets_mut();
        let target = buckets.get_mut(to)?;
        *target.tags.get_mut(to_way)? = tag;
        *target.slots.get_mut(to_way)? = slot;
        let source = buckets.get_mut(from)?;
        *source.tags.get_mut(way)? = 0;
        *source.slots.get_mut(way)? = NO_SLOT;
        let home = buckets.get_mut(first)?;
        if first == from {
            home.displaced += 1;
        } else {
            home.displaced = home.displaced.saturating_sub(1);
        }
        Some(())
    }

    /// The connection at an index.
    #[must_use]
    pub fn get(&self, index: ConnIndex) -> Option<&Conn> {
        self.mem.conns().get(index as usize).filter(|c| c.is_used())
    }

    /// The connection at an index, for state and timer changes.
    pub fn get_mut(&mut self, index: ConnIndex) -> Option<&mut Conn> {
        self.mem.conns_mut().get_mut(index as usize).filter(|c| c.is_used())
    }

    /// Removes a connection and returns what it was.
    pub fn remove(&mut self, index: ConnIndex) -> Option<Conn> {
        let conn = *self.get(index)?;
        let (b1, b2, tag) = self.place(self.hash(conn.proto, &conn.caddr, conn.cport));
        let buckets = self.mem.buckets_mut();
        for b in [b1, b2] {
            let Some(bucket) = buckets.get_mut(b) else { continue };
            let Some(way) = bucket.tags.iter().zip(&bucket.slots).position(|(t, s)| *t == tag && *s == index) else {
                continue;
            };
            if let (Some(t), Some(s)) = (bucket.tags.get_mut(way), bucket.slots.get_mut(way)) {
                *t = 0;
                *s = NO_SLOT;
            }
            if b == b2
                && let Some(first) = buckets.get_mut(b1)
            {
                first.displaced = first.displaced.saturating_sub(1);
            }
            break;
        }
        if let Some(c) = self.mem.conns_mut().get_mut(index as usize) {
            c.flags = 0;
        }
        let top = self.free_len;
        if let Some(slot) = self.mem.free_mut().get_mut(top) {
            *slot = index;
            self.free_len += 1;
        }
        Some(conn)
    }

    /// Visits up to `budget` entry slots from where the last sweep stopped (wrapping), calling
    /// `f` with each connection's index; returns how many slots were visited. The host calls
    /// this with a work budget to expire connections incrementally.
    pub fn sweep(&mut self, budget: usize, mut f: impl FnMut(&mut Self, ConnIndex)) -> usize {
        let n = self.mem.conns().len();
        let visits = budget.min(n);
        for _ in 0..visits {
            let i = self.sweep_cursor;
            self.sweep_cursor = (self.sweep_cursor + 1) % n;
            if self.mem.conns().get(i).is_some_and(Conn::is_used) {
                f(self, u32::try_from(i).unwrap_or(NO_SLOT));
            }
        }
        visits
    }

    /// Every connection in use, by index.
    pub fn iter(&self) -> impl Iterator<Item = (ConnIndex, &Conn)> {
        self.mem
            .conns()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_used())
            .map(|(i, c)| (u32::try_from(i).unwrap_or(NO_SLOT), c))
    }
}

/// Buckets a displacement search visits at most (bounded work per insert: each visit reads
/// one bucket and the eight entries' keys).
const SEARCH_NODES: usize = 32;

fn free_way(bucket: Option<&Bucket>) -> Option<usize> {
    bucket?.tags.iter().position(|t| *t == 0)
}

/// 64×64→128-bit multiplication folded to 64 bits (high half XOR low half).
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p >> 64) as u64 ^ p as u64
}

/// A word with the top bit of lane `i` (16 bits per way) set where way `i`'s tag may equal
/// `tag` (the classic "has zero lane" test on the XOR; a set lane is confirmed by the caller).
#[inline(always)]
fn tag_hits(bucket: &Bucket, tag: u16) -> u128 {
    const LOW: u64 = 0x0001_0001_0001_0001;
    const HIGH: u64 = LOW << 15;
    let lanes = u128::from_le_bytes(zerocopy::transmute!(bucket.tags.map(u16::to_le)));
    let wanted = LOW * u64::from(tag);
    // Two 64-bit halves (four ways each): no borrow crosses from one half into the other.
    let half = |x: u64| {
        let x = x ^ wanted;
        x.wrapping_sub(LOW) & !x & HIGH
    };
    u128::from(half(lanes as u64)) | (u128::from(half((lanes >> 64) as u64)) << 64)
}

/// Cache-line-aligned memory of `N` bytes for Rust users who want the table in a `static` or
/// on their own terms: `AlignedMemory<{ ConnTable::footprint(4096) }>`.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct AlignedMemory<const N: usize>(pub [u8; N]);

impl<const N: usize> AlignedMemory<N> {
    /// Zeroed memory.
    #[must_use]
    pub const fn new() -> Self {
        AlignedMemory([0; N])
    }
}

impl<const N: usize> Default for AlignedMemory<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    fn v4(a: u8, b: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, a, b))
    }

    fn new_conn(client: (IpAddr, u16), forward: Forward) -> NewConn {
        NewConn {
            proto: IpProtocol::TCP,
            client,
            virt: (v4(0, 100), 80),
            real: (v4(1, 1), 8080),
            forward,
            dest: 3,
            state: ConnState::SynRecv,
            expires: 1000,
            template: false,
        }
    }

    #[test]
    fn insert_lookup_both_directions_remove() {
        let mut mem = vec![0u8; ConnTable::footprint(64)];
        let mut t = ConnTable::new(&mut mem, 64, 42).unwrap();
        let c = (v4(9, 9), 40000);
        let i = t.insert(&new_conn(c, Forward::Nat)).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup_in(IpProtocol::TCP, c, (v4(0, 100), 80)), Some(i));
        assert_eq!(t.lookup_in(IpProtocol::UDP, c, (v4(0, 100), 80)), None);
        assert_eq!(t.lookup_in(IpProtocol::TCP, (v4(9, 9), 40001), (v4(0, 100), 80)), None);
        assert_eq!(t.lookup_out(IpProtocol::TCP, (v4(1, 1), 8080), c), Some(i), "NAT reply from the real server");
        assert_eq!(t.lookup_out(IpProtocol::TCP, (v4(0, 100), 80), c), None);
        let conn = t.get(i).unwrap();
        assert_eq!(conn.real(), (v4(1, 1), 8080));
        assert_eq!(conn.state(), ConnState::SynRecv);
        assert!(!conn.no_output());
        let removed = t.remove(i).unwrap();
        assert_eq!(removed.client(), c);
        assert_eq!(t.lookup_in(IpProtocol::TCP, c, (v4(0, 100), 80)), None);
        assert!(t.is_empty());
        // DR: no reply expected; a locally answered reply comes from the VIP.
        let j = t.insert(&new_conn(c, Forward::DirectRoute)).unwrap();
        assert!(t.get(j).unwrap().no_output());
        assert_eq!(t.lookup_out(IpProtocol::TCP, (v4(0, 100), 80), c), Some(j));
    }

    #[test]
    fn ipv6_and_ipv4_keys_do_not_mix() {
        let mut mem = vec![0u8; ConnTable::footprint(16)];
        let mut t = ConnTable::new(&mut mem, 16, 1).unwrap();
        let v6: IpAddr = "2001:db8::9".parse().unwrap();
        let mut n = new_conn((v6, 1), Forward::Tunnel);
        n.virt = ("2001:db8::100".parse().unwrap(), 80);
        n.real = ("2001:db8:1::1".parse().unwrap(), 80);
        let i = t.insert(&n).unwrap();
        assert_eq!(t.lookup_in(IpProtocol::TCP, (v6, 1), n.virt), Some(i));
        assert_eq!(t.get(i).unwrap().real().0, n.real.0);
    }

    #[test]
    fn fills_to_capacity_then_refuses() {
        let mut mem = vec![0u8; ConnTable::footprint(1000)];
        let mut t = ConnTable::new(&mut mem, 1000, 7).unwrap();
        let mut indices = vec![];
        for k in 0..1000u32 {
            let c = (IpAddr::V4(Ipv4Addr::from(0xC612_0000 + k)), (k % 60000) as u16);
            indices.push(t.insert(&new_conn(c, Forward::Nat)).unwrap());
        }
        assert_eq!(t.len(), 1000);
        let extra = (v4(250, 250), 1);
        assert_eq!(t.insert(&new_conn(extra, Forward::Nat)), Err(InsertError::TableFull));
        // Every entry is still found.
        for k in 0..1000u32 {
            let c = (IpAddr::V4(Ipv4Addr::from(0xC612_0000 + k)), (k % 60000) as u16);
            assert_eq!(t.lookup_in(IpProtocol::TCP, c, (v4(0, 100), 80)), Some(indices[k as usize]));
        }
        // Free one, insert one.
        t.remove(indices[500]).unwrap();
        assert!(t.insert(&new_conn(extra, Forward::Nat)).is_ok());
    }

    #[test]
    fn same_bucket_overflow_goes_to_the_secondary_and_stays_findable() {
        let mut mem = vec![0u8; ConnTable::footprint(256)];
        let mut t = ConnTable::new(&mut mem, 256, 5).unwrap();
        // Pick client ports that all hash to the same primary bucket.
        let primary = |t: &ConnTable<'_>, port: u16| t.place(t.hash(6, &octets(v4(5, 5)), port)).0;
        let target = primary(&t, 0);
        let ports: vec::Vec<u16> = (0..u16::MAX).filter(|p| primary(&t, *p) == target).take(12).collect();
        assert_eq!(ports.len(), 12);
        let mut indices = vec![];
        for p in &ports {
            indices.push(t.insert(&new_conn((v4(5, 5), *p), Forward::Nat)).unwrap());
        }
        assert_eq!(t.mem.buckets()[target].displaced, 4, "four entries went to their second buckets");
        for (p, i) in ports.iter().zip(&indices) {
            assert_eq!(t.lookup_in(IpProtocol::TCP, (v4(5, 5), *p), (v4(0, 100), 80)), Some(*i));
        }
        // Removing an entry from the primary does not hide those in the secondary.
        t.remove(indices[0]).unwrap();
        for (p, i) in ports.iter().zip(&indices).skip(1) {
            assert_eq!(t.lookup_in(IpProtocol::TCP, (v4(5, 5), *p), (v4(0, 100), 80)), Some(*i));
        }
    }

    #[test]
    fn memory_checks_and_sweep() {
        let mut small = vec![0u8; 100];
        assert_eq!(ConnTable::new(&mut small, 64, 0).err(), Some(MemoryError::TooSmall));
        assert_eq!(ConnTable::new(&mut small, 0, 0).err(), Some(MemoryError::BadCapacity));
        // Any start alignment works.
        let mut mem = vec![0u8; ConnTable::footprint(32) + 7];
        let mut t = ConnTable::new(&mut mem[7..], 32, 0).unwrap();
        for k in 0..10u16 {
            t.insert(&new_conn((v4(1, 2), k), Forward::Nat)).unwrap();
        }
        let mut seen = 0;
        assert_eq!(t.sweep(16, |_, _| seen += 1), 16);
        assert_eq!(t.sweep(16, |_, _| seen += 1), 16);
        assert_eq!(seen, 10, "two sweeps of 16 cover the 32 slots once");
        let mut removed = 0;
        t.sweep(32, |t, i| {
            t.remove(i);
            removed += 1;
        });
        assert_eq!(removed, 10);
        assert!(t.is_empty());
    }

    /// Client keys as users load a director: random clients, sequential addresses (IPv4 and
    /// IPv6), one address with sequential ports, and a CGNAT-like pattern (a few public
    /// addresses, each with blocks of sequential ports at scattered offsets).
    pub(super) fn client_pattern(pattern: usize, i: u32, seed: u64) -> (IpAddr, u16) {
        let mix = |x: u64| {
            let z = (x ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z ^ (z >> 29)
        };
        match pattern {
            0 => {
                let r = mix(u64::from(i));
                (IpAddr::V4(Ipv4Addr::from((r >> 32) as u32)), r as u16)
            }
            1 => (IpAddr::V4(Ipv4Addr::from(0xC612_0000 + i)), 40000),
            2 => (IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i))), 40000),
            3 => (IpAddr::V4(Ipv4Addr::new(198, 18, 7, 7)), (i as u16).wrapping_add(1024)),
            _ => {
                // 512-port blocks; block b of address b % 8 starts at a scattered offset.
                let (block, port) = (i / 512, i % 512);
                let addr = Ipv4Addr::new(198, 19, 0, (block % 8) as u8);
                let base = 1024 + (mix(u64::from(block)) % 100) as u16 * 512;
                (IpAddr::V4(addr), base + port as u16)
            }
        }
    }

    /// Fills a table of `capacity` with `pattern`'s clients; the number inserted before the
    /// first failure, checking afterwards that every entry is found.
    fn fill(capacity: usize, pattern: usize, seed: u64) -> usize {
        let mut mem = vec![0u8; ConnTable::footprint(capacity)];
        let mut t = ConnTable::new(&mut mem, capacity, seed).unwrap();
        let mut inserted = 0;
        for i in 0..capacity as u32 {
            if t.insert(&new_conn(client_pattern(pattern, i, seed), Forward::Nat)).is_err() {
                break;
            }
            inserted += 1;
        }
        for i in 0..inserted as u32 {
            let c = client_pattern(pattern, i, seed);
            assert!(t.lookup_in(IpProtocol::TCP, c, (v4(0, 100), 80)).is_some(), "entry {i} lost");
        }
        let displaced: u32 = t.mem.buckets().iter().map(|b| b.displaced).sum();
        let in_second = t
            .iter()
            .filter(|(i, c)| {
                let (b1, _, tag) = t.place(t.hash(c.proto, &c.caddr, c.cport));
                let b = &t.mem.buckets()[b1];
                !b.tags.iter().zip(&b.slots).any(|(tg, s)| *tg == tag && s == i)
            })
            .count();
        assert_eq!(displaced as usize, in_second, "displaced counts match the entries in their second bucket");
        inserted
    }

    #[test]
    fn fills_to_the_stated_capacity_for_a_thousand_seeds_and_every_client_pattern() {
        for seed in 0..1000u64 {
            for pattern in 0..5 {
                let seed = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ pattern as u64;
                assert_eq!(fill(2048, pattern, seed), 2048, "pattern {pattern}, seed {seed:#x}");
            }
        }
        // Larger tables, fewer seeds.
        for seed in 0..3 {
            for pattern in 0..5 {
                assert_eq!(fill(1 << 16, pattern, seed), 1 << 16, "pattern {pattern}, seed {seed}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn any_capacity_seed_and_pattern_fills_completely(
            capacity in 1usize..5000,
            seed: u64,
            pattern in 0usize..5,
        ) {
            proptest::prop_assert_eq!(fill(capacity, pattern, seed), capacity);
        }
    }

    #[test]
    fn keys_spread_evenly_over_buckets() {
        // Sequential keys must not crowd: the fullest first-choice bucket stays near the mean
        // (a linear hash puts sequential ports into a few correlated buckets).
        for pattern in 0..5 {
            let mut mem = vec![0u8; ConnTable::footprint(1 << 14)];
            let t = ConnTable::new(&mut mem, 1 << 14, 99).unwrap();
            let mut load = vec![0u32; t.mem.buckets().len()];
            for i in 0..(1 << 14) {
                let (a, p) = client_pattern(pattern, i, 99);
                load[t.place(t.hash(6, &octets(a), p)).0] += 1;
            }
            let max = *load.iter().max().unwrap();
            // Mean 4; Poisson(4) over 4096 buckets tops out near 13.
            assert!(max <= 16, "pattern {pattern}: fullest bucket {max}");
        }
    }

    #[test]
    fn aligned_owned_memory() {
        let mut mem = std::boxed::Box::new(AlignedMemory::<{ ConnTable::footprint(128) }>::new());
        let t = ConnTable::new(&mut mem.0, 128, 9).unwrap();
        assert_eq!(t.capacity(), 128);
    }

    #[test]
    fn memory_per_connection_is_what_the_readme_says() {
        // README: 88 bytes per connection all in at power-of-two capacities (64 entry, 16
        // bucket share, 4 free list, 4 template link), at most 104 at other capacities from 2
        // up (the bucket array is rounded up to a power of two), plus at most 63 bytes of
        // alignment.
        for shift in [4, 10, 16, 20, 24] {
            let capacity = 1usize << shift;
            assert_eq!(ConnTable::footprint(capacity), 63 + 88 * capacity, "capacity {capacity}");
        }
        for capacity in [2, 3, 5, 100, 1000, 1025, 3000, 65_537, 1_000_000, 3 << 20] {
            let per = (ConnTable::footprint(capacity) - 63) as f64 / capacity as f64;
            assert!((88.0..=104.0).contains(&per), "capacity {capacity}: {per} bytes per connection");
        }
    }
}
