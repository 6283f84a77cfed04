//! The no-std proof: a freestanding static binary with its own panic handler that calls the
//! parser and the rewriters of `vs-proto` and every scheduler of `vs-sched`.
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

/// The entry point the linker looks for when there are no start files.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let mut storage = [0u8; 128];
    let n = exercise(&mut storage);
    core::hint::black_box(n);
    core::hint::black_box(schedule_all());
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
