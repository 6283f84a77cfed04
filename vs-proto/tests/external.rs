//! Schedulers registered by the host: usable by name, refused when the name is taken, and every
//! per-service state they create is released exactly once — on edit, delete and close.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use vs_proto::conn::{ConnTable, Forward};
use vs_proto::engine::{ConfigError, Engine, EngineConfig, RealConfig, ServiceConfig, ServiceKey, ServiceSlot};
use vs_proto::wire::IpProtocol;
use vs_sched::{Dest, ExternalOps, ExternalScheduler, PacketInfo, SchedError, SchedParams};

/// Counts the states it hands out and gets back; picks the first destination.
struct Counting {
    made: AtomicUsize,
    released: AtomicUsize,
}

impl ExternalOps for Counting {
    fn name(&self, _ops: usize) -> &str {
        "first"
    }
    fn init_service(&self, _ops: usize, _dests: &[Dest], _params: &SchedParams) -> Result<usize, SchedError> {
        Ok(self.made.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn done_service(&self, _ops: usize, _state: usize) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
    fn add_dest(&self, _: usize, _: usize, _: &[Dest], _: usize) -> Result<(), SchedError> {
        Ok(())
    }
    fn del_dest(&self, _: usize, _: usize, _: &[Dest], _: &Dest, _: usize) {}
    fn upd_dest(&self, _: usize, _: usize, _: &[Dest], _: usize) -> Result<(), SchedError> {
        Ok(())
    }
    fn schedule(&self, _: usize, _: usize, dests: &[Dest], _: &PacketInfo, _: u64) -> Option<usize> {
        (!dests.is_empty()).then_some(0)
    }
}

static COUNTING: Counting = Counting { made: AtomicUsize::new(0), released: AtomicUsize::new(0) };

fn live_states() -> usize {
    COUNTING.made.load(Ordering::SeqCst) - COUNTING.released.load(Ordering::SeqCst)
}

#[test]
fn external_states_are_released_once() {
    let memory: &'static mut [u8] = Box::leak(vec![0u8; ConnTable::footprint(64)].into_boxed_slice());
    let services: &'static mut [ServiceSlot<4>] =
        Box::leak((0..4).map(|_| ServiceSlot::default()).collect::<Vec<_>>().into_boxed_slice());
    let table = ConnTable::new(memory, 64, 1).unwrap();
    let mut engine: Engine<'static, 4> = Engine::new(table, services, EngineConfig::default()).unwrap();
    let first = ExternalScheduler::new(&COUNTING, 0);
    let named = |scheduler| ServiceConfig { scheduler, ..ServiceConfig::default() };
    let key = |port| ServiceKey::new(IpProtocol::TCP, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)), port);

    assert_eq!(engine.add_service(key(80), &named("first")), Err(ConfigError::UnknownScheduler));
    engine.register_scheduler(first).unwrap();
    assert_eq!(engine.register_scheduler(first), Err(ConfigError::Exists));
    assert_eq!(engine.register_scheduler(ExternalScheduler::new(&COUNTING, 1)), Err(ConfigError::Exists));

    engine.add_service(key(80), &named("first")).unwrap();
    engine.add_service(key(81), &named("first")).unwrap();
    let real = RealConfig {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)),
        port: 80,
        forward: Forward::Nat,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    engine.add_real(&key(80), &real).unwrap();
    assert_eq!(engine.service(&key(80)).unwrap().scheduler(), "first");
    assert_eq!(live_states(), 2);

    // Editing to another scheduler releases the old state; back again makes a new one.
    engine.edit_service(&key(80), &named("rr")).unwrap();
    assert_eq!(live_states(), 1);
    engine.edit_service(&key(80), &named("first")).unwrap();
    assert_eq!(live_states(), 2);
    engine.delete_service(&key(81)).unwrap();
    assert_eq!(live_states(), 1);
    engine.close();
    assert_eq!(live_states(), 0);
    assert_eq!(COUNTING.made.load(Ordering::SeqCst), 3); // 80, 81, 80 again
    assert!(engine.services().next().is_none());
}
