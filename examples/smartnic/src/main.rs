//! SmartNIC-style firmware around the vs engine.
//!
//! Freestanding: no standard library, no libc, no heap, no operating-system services beyond
//! what `bsp.rs` (the board-support shim) provides. All memory is static and sized at build
//! time: the engine's buffer (`config::config::ENGINE_FOOTPRINT`, what `vs_engine_footprint` answers
//! for the configured limits, checked again at every start), a pool
//! of packet buffers with headroom for tunnel headers, and receive / transmit descriptor rings
//! (single-producer / single-consumer queues) between the wire side and the dataplane loop.
//! The firmware reaches the core only through its C ABI (the functions and types of
//! `include/vs.h`), as a vendor's C firmware would.
//!
//! The loop: the wire side fills the receive ring; the dataplane takes each descriptor, runs
//! `vs_process` on its buffer, and after every packet gives the engine its housekeeping tick
//! (`vs_sweep` with a budget of 16 entries: expiry, rates, defence); transmitted buffers go to
//! the transmit ring, the rest back to the pool; the wire side drains the transmit ring.
//! Counters a host could read live in [`COUNTERS`].
#![no_std]
#![no_main]

mod bsp;
mod config;
#[cfg(feature = "defmt")]
mod log;
mod wire;

use core::ffi::c_void;
use core::fmt::Write;
use core::mem::MaybeUninit;
use core::net::IpAddr;

use heapless::spsc::Queue;
use vs_ffi::{
    VS_AF_INET, VS_AF_INET6, VS_CSUM_TX, VS_TRANSMIT, vs_addr, vs_engine, vs_engine_config, vs_limits, vs_packet,
    vs_real_config, vs_service_config, vs_service_key, vs_status, vs_verdict,
};

/// Packet buffers: how many, their size, and the headroom kept in front of each frame.
const BUFFERS: usize = 64;
const BUFFER_BYTES: usize = 2048;
const HEADROOM: usize = 128;
/// Descriptor ring sizes (heapless queues hold one less than their size).
const RING: usize = 32;

/// A descriptor: which buffer, where the frame lies in it, when it arrived.
#[derive(Clone, Copy)]
struct Descriptor {
    buffer: u16,
    head: u16,
    len: u16,
    ts_us: u64,
}

/// The engine's memory, aligned for its table.
#[repr(C, align(64))]
struct EngineMemory([u8; config::ENGINE_FOOTPRINT]);

/// Counters a host could read out of the firmware's memory.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Counters {
    pub(crate) rx: u64,
    pub(crate) tx: u64,
    pub(crate) passed: u64,
    pub(crate) dropped: u64,
    pub(crate) expired: u64,
}

/// Static memory with one user: the firmware is single-threaded, and each of these is borrowed
/// once, by the dataplane loop (or, for the engine's memory, handed to the engine once).
pub(crate) struct Static<T>(core::cell::UnsafeCell<T>);

// SAFETY: the firmware runs one thread; see the type's comment.
unsafe impl<T> Sync for Static<T> {}

impl<T> Static<T> {
    const fn new(value: T) -> Self {
        Static(core::cell::UnsafeCell::new(value))
    }

    pub(crate) fn get(&self) -> *mut T {
        self.0.get()
    }
}

// The firmware's static memory.
static ENGINE_MEMORY: Static<EngineMemory> = Static::new(EngineMemory([0; config::ENGINE_FOOTPRINT]));
static BUFFER_POOL: Static<[[u8; BUFFER_BYTES]; BUFFERS]> = Static::new([[0; BUFFER_BYTES]; BUFFERS]);
static RX_RING: Static<Queue<Descriptor, RING>> = Static::new(Queue::new());
static TX_RING: Static<Queue<Descriptor, RING>> = Static::new(Queue::new());
/// Live counters, at a fixed symbol a host or debugger can read.
#[unsafe(no_mangle)]
pub(crate) static COUNTERS: Static<Counters> =
    Static::new(Counters { rx: 0, tx: 0, passed: 0, dropped: 0, expired: 0 });

/// Bytes of static memory the firmware uses.
const STATIC_BYTES: usize = config::ENGINE_FOOTPRINT
    + BUFFERS * BUFFER_BYTES
    + 2 * core::mem::size_of::<Queue<Descriptor, RING>>()
    + core::mem::size_of::<Counters>();

/// A `core::fmt` sink onto a file descriptor.
struct Fd(usize);

impl Write for Fd {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if bsp::write_all(self.0, s.as_bytes()) { Ok(()) } else { Err(core::fmt::Error) }
    }
}

fn addr(a: IpAddr) -> vs_addr {
    let mut out = vs_addr { family: VS_AF_INET, bytes: [0; 16] };
    match a {
        IpAddr::V4(v4) => out.bytes[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => {
            out.family = VS_AF_INET6;
            out.bytes = v6.octets();
        }
    }
    out
}

/// The host's neighbour table, as the engine asks it: the configured real servers, and the
/// gateway for everyone else.
unsafe extern "C" fn neighbours(_: *mut c_void, next_hop: *const vs_addr, mac: *mut u8, port: *mut u16) -> bool {
    // SAFETY: the engine passes valid pointers (a vs_addr, 6 bytes of MAC, a port).
    let (hop, mac, port) = unsafe { (&*next_hop, &mut *mac.cast::<[u8; 6]>(), &mut *port) };
    *mac = config::GATEWAY;
    for (a, m) in config::NEIGHBOURS {
        let known = addr(a);
        if known.family == hop.family && known.bytes == hop.bytes {
            *mac = m;
        }
    }
    *port = 0;
    true
}

unsafe extern "C" fn on_panic(message: *const core::ffi::c_char, len: usize, _: *mut c_void) {
    // SAFETY: the library passes its message buffer and length.
    let text = unsafe { core::slice::from_raw_parts(message.cast::<u8>(), len) };
    bsp::write_all(2, b"firmware: engine panic: ");
    bsp::write_all(2, text);
    bsp::write_all(2, b"\n");
    bsp::exit(70);
}

fn fail(what: &str, status: vs_status) -> i32 {
    let _ = writeln!(Fd(2), "firmware: {what}: status {}", status as i32);
    1
}

/// Brings the engine up in its static memory and applies the compiled-in services.
fn engine_up() -> Result<*mut vs_engine, i32> {
    let limits = vs_limits {
        struct_size: core::mem::size_of::<vs_limits>() as u32,
        max_conns: config::MAX_CONNS,
        max_services: config::MAX_SERVICES,
    };
    let mut need = 0usize;
    // SAFETY: valid limits and out-pointer.
    let status = unsafe { vs_ffi::vs_engine_footprint(&limits, &mut need) };
    if status != vs_status::VS_OK || need != config::ENGINE_FOOTPRINT {
        let reserved = config::ENGINE_FOOTPRINT;
        let _ = writeln!(
            Fd(2),
            "firmware: vs_engine_footprint says {need} bytes; ENGINE_FOOTPRINT is {reserved}: rebuild with it"
        );
        return Err(2);
    }
    let mut cfg = vs_engine_config::default();
    // SAFETY: a valid out-pointer.
    let status = unsafe { vs_ffi::vs_engine_config_default(&mut cfg) };
    if status != vs_status::VS_OK {
        return Err(fail("vs_engine_config_default", status));
    }
    cfg.mac = config::MAC;
    cfg.has_tunnel_v4 = 1;
    cfg.tunnel_v4 = config::TUNNEL_V4.octets();
    cfg.has_tunnel_v6 = 1;
    cfg.tunnel_v6 = config::TUNNEL_V6.octets();
    cfg.mtu = config::MTU;
    cfg.checksum = VS_CSUM_TX;
    let mut engine: *mut vs_engine = core::ptr::null_mut();
    // SAFETY: the static buffer is config::ENGINE_FOOTPRINT bytes, used by nothing else, for the
    // program's life.
    let status = unsafe {
        let memory = ENGINE_MEMORY.get();
        vs_ffi::vs_engine_init((*memory).0.as_mut_ptr(), config::ENGINE_FOOTPRINT, &limits, &cfg, &mut engine)
    };
    if status != vs_status::VS_OK {
        return Err(fail("vs_engine_init", status));
    }
    for s in &config::SERVICES {
        let key = vs_service_key { protocol: if s.tcp { 6 } else { 17 }, addr: addr(s.vip), port: s.port, fwmark: 0 };
        let mut sc = MaybeUninit::<vs_service_config>::uninit();
        // SAFETY: room for one configuration.
        unsafe { vs_ffi::vs_service_config_default(sc.as_mut_ptr()) };
        // SAFETY: vs_service_config_default filled every field.
        let mut sc = unsafe { sc.assume_init() };
        sc.scheduler = s.scheduler_c.as_ptr().cast();
        // SAFETY: the live engine, a key, and a configuration naming a static scheduler name.
        let status = unsafe { vs_ffi::vs_service_add(engine, &key, &sc) };
        if status != vs_status::VS_OK {
            return Err(fail("vs_service_add", status));
        }
        for r in s.reals {
            let mut rc = MaybeUninit::<vs_real_config>::uninit();
            // SAFETY: room for one configuration.
            unsafe { vs_ffi::vs_real_config_default(rc.as_mut_ptr()) };
            // SAFETY: vs_real_config_default filled every field.
            let mut rc = unsafe { rc.assume_init() };
            rc.addr = addr(r.addr);
            rc.port = r.port;
            rc.forward = r.forward;
            rc.weight = r.weight;
            // SAFETY: the live engine, a key and a real server.
            let status = unsafe { vs_ffi::vs_real_add(engine, &key, &rc) };
            if status != vs_status::VS_OK {
                return Err(fail("vs_real_add", status));
            }
        }
    }
    Ok(engine)
}

#[unsafe(no_mangle)]
extern "C" fn firmware_main() -> i32 {
    // SAFETY: a hook that never returns, and no user pointer.
    unsafe { vs_ffi::vs_set_panic_hook(Some(on_panic), core::ptr::null_mut()) };
    if config::describe(&mut Fd(2)).is_err() {
        return 1;
    }
    let _ = writeln!(Fd(2), "# static memory: {STATIC_BYTES} bytes ({} for the engine)", config::ENGINE_FOOTPRINT);
    #[cfg(feature = "defmt")]
    defmt::info!("firmware up: {=usize} services, {=u32} connections", config::SERVICES.len(), config::MAX_CONNS);
    let engine = match engine_up() {
        Ok(e) => e,
        Err(code) => return code,
    };
    // SAFETY: single-threaded firmware; these statics are touched only here, through these
    // references, for the rest of the program.
    let (pool, rx_ring, tx_ring, counters) =
        unsafe { (&mut *BUFFER_POOL.get(), &mut *RX_RING.get(), &mut *TX_RING.get(), &mut *COUNTERS.get()) };
    let (mut rx_producer, mut rx_consumer) = rx_ring.split();
    let (mut tx_producer, mut tx_consumer) = tx_ring.split();
    let mut free: heapless::Vec<u16, BUFFERS> = (0..BUFFERS as u16).collect();
    let Ok(mut input) = wire::PcapIn::open() else {
        let _ = writeln!(Fd(2), "firmware: standard input is not a pcap of Ethernet frames");
        return 1;
    };
    let Some(mut output) = wire::PcapOut::open() else { return 1 };
    let mut input_done = false;
    loop {
        // Wire side, receive: fill the ring while there are buffers and descriptors.
        while !input_done && rx_producer.ready() {
            let Some(buffer) = free.pop() else { break };
            let Some(storage) = pool.get_mut(usize::from(buffer)) else { break };
            match input.next(storage.get_mut(HEADROOM..BUFFER_BYTES - 64).unwrap_or(&mut [])) {
                Ok(Some((len, ts_us))) => {
                    counters.rx += 1;
                    let d = Descriptor { buffer, head: HEADROOM as u16, len: len as u16, ts_us };
                    let _ = rx_producer.enqueue(d);
                }
                Ok(None) => {
                    input_done = true;
                    let _ = free.push(buffer);
                }
                Err(e) => {
                    let _ = writeln!(Fd(2), "firmware: input: {e:?}");
                    return 1;
                }
            }
        }
        // Dataplane: every received descriptor through the engine, in order.
        while let Some(mut d) = rx_consumer.dequeue() {
            let Some(storage) = pool.get_mut(usize::from(d.buffer)) else { continue };
            let mut packet = vs_packet {
                data: storage.as_mut_ptr(),
                capacity: BUFFER_BYTES,
                head: usize::from(d.head),
                len: usize::from(d.len),
                mark: 0,
            };
            let mut verdict = vs_verdict::default();
            let now_ms = d.ts_us / 1000;
            // SAFETY: the packet names this descriptor's buffer, valid for its capacity.
            let status = unsafe {
                vs_ffi::vs_process(engine, &mut packet, now_ms, Some(neighbours), core::ptr::null_mut(), &mut verdict)
            };
            #[cfg(feature = "defmt")]
            {
                log::PACKETS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                defmt::debug!("packet at {=u64} ms: action {=u8} port {=u16}", now_ms, verdict.action, verdict.port);
            }
            let mut expired = 0usize;
            // SAFETY: the live engine, used by this thread only, and an out-pointer.
            unsafe { vs_ffi::vs_sweep(engine, now_ms, 16, &mut expired) };
            counters.expired += expired as u64;
            if status == vs_status::VS_OK && verdict.action == VS_TRANSMIT {
                d.head = packet.head as u16;
                d.len = packet.len as u16;
                if tx_producer.enqueue(d).is_ok() {
                    continue;
                }
            } else if verdict.action == vs_ffi::VS_PASS {
                counters.passed += 1;
            } else {
                counters.dropped += 1;
            }
            let _ = free.push(d.buffer);
        }
        // Wire side, transmit.
        while let Some(d) = tx_consumer.dequeue() {
            let Some(storage) = pool.get(usize::from(d.buffer)) else { continue };
            let frame = storage.get(usize::from(d.head)..usize::from(d.head) + usize::from(d.len)).unwrap_or(&[]);
            if !output.send(frame, d.ts_us) {
                return 1;
            }
            counters.tx += 1;
            let _ = free.push(d.buffer);
        }
        if input_done {
            break;
        }
    }
    let c = *counters;
    #[cfg(feature = "defmt")]
    {
        defmt::info!("done: rx {=u64} tx {=u64} passed {=u64} dropped {=u64}", c.rx, c.tx, c.passed, c.dropped);
        let _ = writeln!(Fd(2), "# defmt: {} bytes logged", log::written());
        // The host's read-out of the log ring, if it opened descriptor 3.
        log::dump(3);
    }
    let _ = writeln!(
        Fd(2),
        "# counters: rx {} tx {} passed {} dropped {} expired {}",
        c.rx,
        c.tx,
        c.passed,
        c.dropped,
        c.expired
    );
    0
}
