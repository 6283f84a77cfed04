//! Fuzz the C ABI as a C host would misuse it: arbitrary calls in arbitrary orders with
//! arbitrary arguments — configuration structures given as raw bytes with any `struct_size`
//! (never more bytes than the buffer holds, as a C caller promises), NULL pointers, unknown
//! codes, packets of any bytes with any bounds. No call may panic (the library would answer
//! `VS_ERR_PANIC` and poison the engine), and the engine must stay consistent: its statistics
//! and listings readable, no more services than its limit.
#![no_main]

use std::ffi::c_void;
use std::ptr::{null, null_mut};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vs_ffi::*;

const MAX_SERVICES: u32 = 4;

/// A service key from a small set, so that calls meet the same services.
#[derive(Debug, Arbitrary)]
struct Key {
    protocol: u8,
    v6: bool,
    host: u8,
    port: u8,
    fwmark: u8,
}

impl Key {
    fn c(&self) -> vs_service_key {
        let protocol = match self.protocol % 4 {
            0 => 6,
            1 => 17,
            2 => 1,
            _ => self.protocol,
        };
        vs_service_key {
            protocol,
            addr: addr(self.v6, self.host % 3),
            port: u16::from(self.port % 3) * 80,
            fwmark: u32::from(self.fwmark % 3),
        }
    }
}

fn addr(v6: bool, host: u8) -> vs_addr {
    let mut a = vs_addr { family: if v6 { VS_AF_INET6 } else { VS_AF_INET }, bytes: [0; 16] };
    if v6 {
        a.bytes[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a.bytes[15] = host;
    } else {
        a.bytes[..4].copy_from_slice(&[198, 18, 0, host]);
    }
    a
}

#[derive(Debug, Arbitrary)]
enum Call {
    /// A service added or edited from a configuration given as raw bytes.
    Service {
        key: Key,
        edit: bool,
        bytes: Vec<u8>,
        size: u8,
        scheduler: u8,
    },
    ServiceDelete {
        key: Key,
    },
    /// A real server added or edited from raw bytes.
    Real {
        key: Key,
        edit: bool,
        bytes: Vec<u8>,
        size: u8,
        v6: bool,
        host: u8,
    },
    RealDelete {
        key: Key,
        v6: bool,
        host: u8,
        port: u16,
    },
    Process {
        frame: Vec<u8>,
        head: u8,
        extra: u8,
        now: u16,
    },
    Burst {
        frames: Vec<Vec<u8>>,
        now: u16,
    },
    Sweep {
        budget: u8,
        now: u16,
    },
    Timeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    StateTimeout {
        state: u8,
        seconds: u32,
    },
    Defence {
        bytes: Vec<u8>,
        size: u8,
    },
    Configure {
        bytes: Vec<u8>,
        size: u8,
    },
    Lists {
        capacity: u8,
        key: Key,
    },
    Zero {
        key: Option<Key>,
    },
    FlushNeighbours,
    /// Calls with NULL where a pointer is wanted.
    Nulls(u8),
}

unsafe extern "C" fn neighbour(_: *mut c_void, _: *const vs_addr, mac: *mut u8, port: *mut u16) -> bool {
    // SAFETY: the library passes room for a MAC and a port.
    unsafe {
        mac.copy_from_nonoverlapping([2, 0, 0, 0, 0, 9].as_ptr(), 6);
        *port = 1;
    }
    true
}

/// A structure's bytes in an aligned buffer: the given bytes over `defaults`, `struct_size`
/// set to `size` (a multiple of 4, at most what the buffer holds).
fn structure<T: Copy>(defaults: T, bytes: &[u8], size: u8) -> Vec<u64> {
    let len = size_of::<T>().max(usize::from(size)).div_ceil(8) * 8;
    let mut buf = vec![0u64; len / 8];
    // SAFETY: the buffer holds at least one T, is 8-aligned, and is written as bytes.
    unsafe {
        buf.as_mut_ptr().cast::<T>().write(defaults);
        let raw = std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), len);
        for (i, b) in bytes.iter().enumerate().take(len) {
            // Bytes after the size field only: the size is set below.
            if i >= 4 {
                raw[i] ^= b;
            }
        }
        raw[..4].copy_from_slice(&u32::from(size).min(len as u32).to_ne_bytes());
    }
    buf
}

const SCHEDULERS: [&std::ffi::CStr; 6] = [c"rr", c"wlc", c"mh", c"sh", c"lblcr", c"nosuch"];

fn check(status: vs_status, call: &Call) {
    assert_ne!(status, vs_status::VS_ERR_PANIC, "a panic behind {call:?}");
}

fuzz_target!(|calls: Vec<Call>| {
    let limits = vs_limits { struct_size: size_of::<vs_limits>() as u32, max_conns: 64, max_services: MAX_SERVICES };
    let mut e = null_mut();
    // SAFETY: valid limits and out-pointer; default configuration.
    assert_eq!(unsafe { vs_engine_new(&limits, null(), &mut e) }, vs_status::VS_OK);
    for call in calls.iter().take(64) {
        // SAFETY (every call below): the engine is live and used by this thread only; every
        // pointer is NULL (where the test means it) or points to what its type says, holding
        // at least the `struct_size` it declares.
        let status = unsafe {
            match call {
                Call::Service { key, edit, bytes, size, scheduler } => {
                    let mut defaults = std::mem::zeroed::<vs_service_config>();
                    vs_service_config_default(&mut defaults);
                    let buf = structure(defaults, bytes, *size);
                    let config = buf.as_ptr().cast_mut().cast::<vs_service_config>();
                    // The name pointer is the library's to read: always a real string.
                    (*config).scheduler = SCHEDULERS[usize::from(*scheduler) % SCHEDULERS.len()].as_ptr();
                    let k = key.c();
                    if *edit { vs_service_edit(e, &k, config) } else { vs_service_add(e, &k, config) }
                }
                Call::ServiceDelete { key } => vs_service_delete(e, &key.c()),
                Call::Real { key, edit, bytes, size, v6, host } => {
                    let mut defaults = std::mem::zeroed::<vs_real_config>();
                    vs_real_config_default(&mut defaults);
                    defaults.addr = addr(*v6, 10 + host % 4);
                    defaults.port = 80;
                    let buf = structure(defaults, bytes, *size);
                    let config = buf.as_ptr().cast::<vs_real_config>();
                    let k = key.c();
                    if *edit { vs_real_edit(e, &k, config) } else { vs_real_add(e, &k, config) }
                }
                Call::RealDelete { key, v6, host, port } => {
                    vs_real_delete(e, &key.c(), &addr(*v6, 10 + host % 4), *port)
                }
                Call::Process { frame, head, extra, now } => {
                    let mut data = vec![0u8; usize::from(*head) + frame.len() + usize::from(*extra)];
                    data[usize::from(*head)..usize::from(*head) + frame.len()].copy_from_slice(frame);
                    // Bounds as given, even past the buffer: the library must refuse those.
                    let mut packet = vs_packet {
                        data: data.as_mut_ptr(),
                        capacity: data.len(),
                        head: usize::from(*head),
                        len: frame.len() + usize::from(*extra % 4),
                        mark: 0,
                    };
                    let mut verdict = vs_verdict::default();
                    vs_process(e, &mut packet, u64::from(*now) * 16, Some(neighbour), null_mut(), &mut verdict)
                }
                Call::Burst { frames, now } => {
                    let mut storage: Vec<Vec<u8>> =
                        frames.iter().take(8).map(|f| [&[0u8; 64][..], f].concat()).collect();
                    let mut packets: Vec<vs_packet> = storage
                        .iter_mut()
                        .map(|d| vs_packet {
                            data: d.as_mut_ptr(),
                            capacity: d.len(),
                            head: 64,
                            len: d.len() - 64,
                            mark: 0,
                        })
                        .collect();
                    let mut verdicts = vec![vs_verdict::default(); packets.len()];
                    let mut done = 0;
                    let status = vs_process_burst(
                        e,
                        packets.as_mut_ptr(),
                        verdicts.as_mut_ptr(),
                        packets.len(),
                        u64::from(*now) * 16,
                        Some(neighbour),
                        null_mut(),
                        &mut done,
                    );
                    assert!(done <= packets.len());
                    status
                }
                Call::Sweep { budget, now } => vs_sweep(e, u64::from(*now) * 16, usize::from(*budget), null_mut()),
                Call::Timeouts { tcp, tcpfin, udp } => vs_set_timeouts(e, *tcp, *tcpfin, *udp),
                Call::StateTimeout { state, seconds } => vs_set_state_timeout(e, *state, *seconds),
                Call::Defence { bytes, size } => {
                    let mut defaults = std::mem::zeroed::<vs_defence>();
                    vs_get_defence(e, &mut defaults);
                    let buf = structure(defaults, bytes, *size);
                    vs_set_defence(e, buf.as_ptr().cast())
                }
                Call::Configure { bytes, size } => {
                    let mut defaults = std::mem::zeroed::<vs_engine_config>();
                    vs_engine_config_default(&mut defaults);
                    let buf = structure(defaults, bytes, *size);
                    vs_engine_configure(e, buf.as_ptr().cast())
                }
                Call::Lists { capacity, key } => {
                    let n = usize::from(*capacity % 8);
                    let mut count = 0;
                    let mut services = vec![std::mem::zeroed::<vs_service_info>(); n];
                    check(vs_service_list(e, services.as_mut_ptr(), n, &mut count), call);
                    let mut reals = vec![std::mem::zeroed::<vs_real_info>(); n];
                    check(vs_real_list(e, &key.c(), reals.as_mut_ptr(), n, &mut count), call);
                    let mut conns = vec![std::mem::zeroed::<vs_conn_info>(); n];
                    let mut cursor = 0;
                    vs_conn_list(e, &mut cursor, 0, conns.as_mut_ptr(), n, &mut count)
                }
                Call::Zero { key } => match key {
                    Some(k) => vs_zero_stats(e, &k.c()),
                    None => vs_zero_stats(e, null()),
                },
                Call::FlushNeighbours => vs_flush_neighbours(e),
                Call::Nulls(which) => match which % 6 {
                    0 => vs_service_add(e, null(), null()),
                    1 => vs_real_add(e, null(), null()),
                    2 => vs_process(e, null_mut(), 0, None, null_mut(), null_mut()),
                    3 => vs_engine_stats(e, null_mut()),
                    4 => vs_conn_list(e, null_mut(), 0, null_mut(), 4, null_mut()),
                    _ => vs_set_defence(e, null()),
                },
            }
        };
        check(status, call);
        // Still consistent: statistics read, no more services than the limit.
        // SAFETY: plain integers; all-zero is a valid value.
        let mut stats = unsafe { std::mem::zeroed::<vs_global_stats>() };
        // SAFETY: the live engine and an out-pointer.
        assert_eq!(unsafe { vs_engine_stats(e, &mut stats) }, vs_status::VS_OK, "after {call:?}");
        let mut count = 0;
        // SAFETY: no array (capacity 0) and an out-pointer for the count.
        assert_eq!(unsafe { vs_service_list(e, null_mut(), 0, &mut count) }, vs_status::VS_OK);
        assert!(count <= MAX_SERVICES as usize, "{count} services in an engine of {MAX_SERVICES}");
    }
    // SAFETY: made by vs_engine_new above, not used after.
    assert_eq!(unsafe { vs_engine_free(e) }, vs_status::VS_OK);
});
