//! The exported table of a Rust plugin, called as the host calls it: the operations reach the
//! scheduler, and a panic inside stays inside (answering "no destination" / an error code).
#![cfg(feature = "std")]

use std::ffi::{CStr, c_void};
use std::net::{IpAddr, Ipv4Addr};

use vs_plugin::export::PluginScheduler;
use vs_plugin::{
    VS_PLUGIN_ABI_MAJOR, VS_SCHED_BAD_PARAMETER, VS_SCHED_OK, vs_sched_dest, vs_sched_ops, vs_sched_packet,
};
use vs_sched::{Dest, DestId, PacketInfo, SchedError, SchedFlags, Scheduler};

/// Picks the last destination; panics for packets from port 666 and refuses a fourth server.
struct Fussy;

impl Scheduler for Fussy {
    fn name(&self) -> &str {
        "fussy"
    }
    fn add_dest(&mut self, dests: &[Dest], _index: usize) -> Result<(), SchedError> {
        if dests.len() > 3 { Err(SchedError::TooManyDests) } else { Ok(()) }
    }
    fn schedule(&mut self, dests: &[Dest], packet: &PacketInfo, _now_ms: u64) -> Option<usize> {
        assert!(packet.sport != 666, "the plugin panics");
        dests.len().checked_sub(1)
    }
}

impl PluginScheduler for Fussy {
    const NAME: &'static CStr = c"fussy";
    fn create(_flags: SchedFlags, _seed: u64) -> Self {
        Fussy
    }
}

vs_plugin::export_scheduler!(Fussy);

fn dests(n: u32) -> Vec<vs_sched_dest> {
    (0..n)
        .map(|i| vs_sched_dest::from(&Dest::new(DestId(i), IpAddr::V4(Ipv4Addr::new(198, 18, 1, i as u8)), 80, 1)))
        .collect()
}

fn packet(sport: u16) -> vs_sched_packet {
    let a = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    vs_sched_packet::from(&PacketInfo { proto: 6, src: a, dst: a, sport, dport: 80, inverse: false })
}

#[test]
fn the_table_reaches_the_scheduler_and_contains_panics() {
    assert!(vs_sched_plugin_v1(VS_PLUGIN_ABI_MAJOR + 1).is_null(), "another host ABI is refused");
    // SAFETY: the table is static.
    let ops: &vs_sched_ops = unsafe { &*vs_sched_plugin_v1(VS_PLUGIN_ABI_MAJOR) };
    assert_eq!(ops.abi_major, VS_PLUGIN_ABI_MAJOR);
    assert_eq!(ops.struct_size as usize, size_of::<vs_sched_ops>());
    // SAFETY: a static NUL-terminated name.
    assert_eq!(unsafe { CStr::from_ptr(ops.name) }, c"fussy");
    let d = dests(3);
    let mut state: *mut c_void = std::ptr::null_mut();
    // SAFETY (below): called as the host does, with valid arrays and the state init made.
    unsafe {
        assert_eq!(ops.init_service.unwrap()(&mut state, d.as_ptr(), d.len(), 0, 1), VS_SCHED_OK);
        assert!(!state.is_null());
        assert_eq!(ops.init_service.unwrap()(&mut state, d.as_ptr(), d.len(), 0x4000, 1), VS_SCHED_BAD_PARAMETER);
        let four = dests(4);
        assert_eq!(ops.add_dest.unwrap()(state, four.as_ptr(), 4, 0), vs_plugin::VS_SCHED_TOO_MANY);
        let schedule = ops.schedule.unwrap();
        assert_eq!(schedule(state, d.as_ptr(), d.len(), &packet(1000), 0), 2);
        // The panic is caught in the plugin: no destination, and the plugin still works.
        assert_eq!(schedule(state, d.as_ptr(), d.len(), &packet(666), 0), -1);
        assert_eq!(schedule(state, d.as_ptr(), d.len(), &packet(1001), 0), 2);
        assert_eq!(schedule(state, std::ptr::null(), 0, &packet(1002), 0), -1);
        ops.done_service.unwrap()(state);
    }
}
