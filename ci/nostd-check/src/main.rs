//! The no-std proof: a freestanding static binary with its own panic handler that calls the
//! parser, the rewriters and the engine of `vs-proto` and every scheduler of `vs-sched`.
//!
//! If any crate in `vs-proto`'s dependency graph linked `std`, this fails to build with a
//! duplicate `panic_impl` lang item (E0152); if any linked `alloc`, it fails with "no global
//! memory allocator found". It is only built, never run: without start files there is no libc
//! initialisation, so `_start` just exercises the code paths and spins.
#![no_std]
#![no_main]

use core::panic::PanicInfo;

use vs_proto::wire::{ChecksumCaps, PacketBuf, Rewriter, Summary, TunnelHeader, decapsulate, encapsulate};
use vs_sched::{BUILTIN_NAMES, Builtin, DestConfig, DestList, PacketInfo, SchedParams, Scheduler};

/// Ethernet / IPv4 / UDP, ports 1000 -> 53, checksums valid.
const FRAME: [u8; 42] = [
    0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00, //
    0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0x52, 0xc8, 198, 18, 0, 1, 198, 18, 0, 2, //
    0x03, 0xe8, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
];

fn exercise(storage: &mut [u8; 128]) -> usize {
    let Some(slot) = storage.get_mut(64..64 + FRAME.len()) else {
        return 0;
    };
    slot.copy_from_slice(&FRAME);
    let Ok(mut buf) = PacketBuf::new(storage, 64, FRAME.len()) else {
        return 0;
    };
    let Ok(mut summary) = Summary::from_ethernet(buf.data()) else {
        return 0;
    };
    {
        let mut rw = Rewriter::new(buf.data_mut(), &mut summary, ChecksumCaps::software());
        let _ = rw.set_dst_addr(core::net::IpAddr::V4(core::net::Ipv4Addr::new(198, 18, 1, 1)));
        let _ = rw.set_dst_port(5353);
        let _ = rw.decrement_hop_limit();
    }
    let outer = TunnelHeader {
        src: core::net::Ipv4Addr::new(198, 18, 0, 254).into(),
        dst: core::net::Ipv4Addr::new(198, 18, 2, 2).into(),
        ttl: 64,
        tos: 0,
        dont_frag: true,
        ident: 1,
    };
    let Ok(tunnelled) = encapsulate(&mut buf, &summary, &outer) else {
        return 1;
    };
    let _ = decapsulate(&mut buf, &tunnelled);
    buf.len()
}

/// Builds a service for every built-in scheduler and schedules one connection with each.
fn schedule_all() -> usize {
    let mut picked = 0;
    let packet = PacketInfo {
        proto: 6,
        src: core::net::Ipv4Addr::new(198, 18, 0, 1).into(),
        dst: core::net::Ipv4Addr::new(198, 18, 0, 100).into(),
        sport: 40000,
        dport: 80,
        inverse: false,
    };
    for name in BUILTIN_NAMES {
        let Ok(mut sched) = Builtin::by_name(name, &SchedParams::default()) else { continue };
        let mut list = DestList::<4>::new();
        if sched.init_service(list.as_slice()).is_err() {
            continue;
        }
        for last in 1..=3u8 {
            let addr = core::net::Ipv4Addr::new(198, 18, 1, last).into();
            let _ = list.add(&mut sched, addr, 80, DestConfig { weight: u32::from(last), ..DestConfig::default() });
        }
        picked += usize::from(list.schedule(&mut sched, &packet, 0).is_some());
    }
    picked
}

/// Runs a SYN through an engine with one NAT service in memory of its own.
fn engine_once(memory: &mut [u8], frame: &mut [u8]) -> bool {
    use vs_proto::conn::{ConnTable, Forward};
    use vs_proto::engine::{Engine, EngineConfig, RealConfig, ServiceConfig, ServiceKey, ServiceSlot, Verdict};
    let Ok(table) = ConnTable::new(memory, 16, 1) else { return false };
    let mut services: [ServiceSlot<2>; 1] = [ServiceSlot::default()];
    let Ok(mut engine) = Engine::new(table, &mut services, EngineConfig::default()) else { return false };
    let vip = core::net::Ipv4Addr::new(198, 18, 0, 2).into();
    let key = ServiceKey::new(vs_proto::wire::IpProtocol::UDP, vip, 53);
    if engine.add_service(key, &ServiceConfig::default()).is_err() {
        return false;
    }
    let real = RealConfig {
        addr: core::net::Ipv4Addr::new(198, 18, 1, 1).into(),
        port: 53,
        forward: Forward::Nat,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    if engine.add_real(&key, &real).is_err() {
        return false;
    }
    let len = frame.len();
    let Ok(mut buf) = PacketBuf::new(frame, 0, len) else { return false };
    let neighbours = |_| Some(vs_proto::wire::MacAddr([2, 0, 0, 0, 0, 9]));
    let verdict = engine.process(&mut buf, 0, &neighbours);
    engine.sweep(1, 16);
    matches!(verdict, Verdict::Transmit { .. })
}

/// The entry point the linker looks for when there are no start files.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let mut storage = [0u8; 128];
    let n = exercise(&mut storage);
    core::hint::black_box(n);
    core::hint::black_box(schedule_all());
    let mut memory = [0u8; vs_proto::conn::ConnTable::footprint(16)];
    let mut frame = FRAME;
    core::hint::black_box(engine_once(&mut memory, &mut frame));
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// `core` is precompiled with unwinding and refers to this symbol in unoptimised builds.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
