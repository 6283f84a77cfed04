//! Engine settings, timeouts and defence.

use core::net::{Ipv4Addr, Ipv6Addr};

use vs_proto::conn::ConnState;
use vs_proto::engine::{Defence, EngineConfig};
use vs_proto::wire::{Checksum, ChecksumCaps, MacAddr};

use crate::boundary::{Versioned, guard, versioned_in, with_engine, write_out};
use crate::engine::vs_engine;
use crate::status::vs_status;

/// `vs_engine_config.checksum`: verify received checksums and compute transmitted ones.
pub const VS_CSUM_BOTH: u8 = 0;
/// Verify on receive only (the NIC computes on transmit).
pub const VS_CSUM_RX: u8 = 1;
/// Compute on transmit only (the default: like IPVS, received checksums are trusted).
pub const VS_CSUM_TX: u8 = 2;
/// Leave both to the NIC.
pub const VS_CSUM_NONE: u8 = 3;

/// Engine settings: the director's identity and IPVS's sysctls. Start from
/// `vs_engine_config_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vs_engine_config {
    /// `sizeof(vs_engine_config)`.
    pub struct_size: u32,
    /// Packets start with an Ethernet header (else bare IP packets). Flags here are bytes:
    /// 0 is false, anything else true (a C `bool` stored by a caller reads the same).
    pub ethernet: u8,
    /// The director's MAC address, the source of every frame it sends.
    pub mac: [u8; 6],
    /// `tunnel_v4` holds the outer source address of IPv4 tunnels.
    pub has_tunnel_v4: u8,
    /// Outer source address of IPv4 tunnels (network order).
    pub tunnel_v4: [u8; 4],
    /// `tunnel_v6` holds the outer source address of IPv6 tunnels.
    pub has_tunnel_v6: u8,
    /// Outer source address of IPv6 tunnels.
    pub tunnel_v6: [u8; 16],
    /// Egress MTU (tunnelled packets must fit).
    pub mtu: u16,
    /// Checksum policy: `VS_CSUM_*`.
    pub checksum: u8,
    /// Use the secure_tcp state table always.
    pub secure_tcp: u8,
    /// `expire_nodest_conn` sysctl.
    pub expire_nodest_conn: u8,
    /// `expire_quiescent_template` sysctl.
    pub expire_quiescent_template: u8,
    /// Later fragments without a known first fragment go to the host (else are dropped).
    pub pass_unmatched_fragments: u8,
    /// `conn_reuse_mode` sysctl (default 1).
    pub conn_reuse_mode: u8,
    /// Seed of the connection hash and the random schedulers.
    pub seed: u64,
}

impl Default for vs_engine_config {
    fn default() -> Self {
        let d = EngineConfig::default();
        vs_engine_config {
            struct_size: size_of::<vs_engine_config>() as u32,
            ethernet: u8::from(d.ethernet),
            mac: d.mac.0,
            has_tunnel_v4: 0,
            tunnel_v4: [0; 4],
            has_tunnel_v6: 0,
            tunnel_v6: [0; 16],
            mtu: d.mtu,
            checksum: VS_CSUM_TX,
            secure_tcp: u8::from(d.secure_tcp),
            expire_nodest_conn: u8::from(d.expire_nodest_conn),
            expire_quiescent_template: u8::from(d.expire_quiescent_template),
            pass_unmatched_fragments: u8::from(d.pass_unmatched_fragments),
            conn_reuse_mode: d.conn_reuse_mode,
            seed: d.seed,
        }
    }
}

// SAFETY: `struct_size` first; integers and byte arrays only.
unsafe impl Versioned for vs_engine_config {
    // Version 1: the layout as first published.
    const FIRST_SIZE: usize = size_of::<vs_engine_config>();
    fn defaults() -> Self {
        vs_engine_config::default()
    }
}

pub(crate) fn engine_config_from(c: &vs_engine_config) -> Result<EngineConfig, vs_status> {
    let checksum = match c.checksum {
        VS_CSUM_BOTH => Checksum::Both,
        VS_CSUM_RX => Checksum::Rx,
        VS_CSUM_TX => Checksum::Tx,
        VS_CSUM_NONE => Checksum::None,
        _ => return Err(vs_status::VS_ERR_INVALID),
    };
    if c.mtu < 576 {
        return Err(vs_status::VS_ERR_RANGE);
    }
    Ok(EngineConfig {
        ethernet: c.ethernet != 0,
        mac: MacAddr(c.mac),
        tunnel_v4: (c.has_tunnel_v4 != 0).then(|| Ipv4Addr::from(c.tunnel_v4)),
        tunnel_v6: (c.has_tunnel_v6 != 0).then(|| Ipv6Addr::from(c.tunnel_v6)),
        mtu: c.mtu,
        caps: ChecksumCaps::all(checksum),
        secure_tcp: c.secure_tcp != 0,
        expire_nodest_conn: c.expire_nodest_conn != 0,
        pass_unmatched_fragments: c.pass_unmatched_fragments != 0,
        expire_quiescent_template: c.expire_quiescent_template != 0,
        conn_reuse_mode: c.conn_reuse_mode,
        seed: c.seed,
        defence: Defence::default(),
    })
}

/// Fills `out` with the defaults (Ethernet frames, MAC 02:00:00:00:00:01, MTU 1500, no tunnel
/// sources, checksums computed on transmit, IPVS's sysctl defaults, seed 0).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_engine_config_default(out: *mut vs_engine_config) -> vs_status {
    guard(|| write_out(out, vs_engine_config::default()))
}

/// Replaces the settings of a running engine (the seed is kept: it keys the live table).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_engine_configure(engine: *mut vs_engine, config: *const vs_engine_config) -> vs_status {
    with_engine(engine, |e| {
        let mut next = engine_config_from(&versioned_in(config)?)?;
        let current = e.inner.config_mut();
        next.seed = current.seed;
        next.defence = current.defence;
        *current = next;
        Ok(())
    })
}

/// Sets the TCP, TCP FIN-WAIT and UDP timeouts in seconds like `ipvsadm --set tcp tcpfin udp`
/// (0 leaves a value unchanged; at most 31 days).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_set_timeouts(engine: *mut vs_engine, tcp: u32, tcpfin: u32, udp: u32) -> vs_status {
    with_engine(engine, |e| e.inner.timeouts_mut().set_ipvsadm(tcp, tcpfin, udp).map_err(|_| vs_status::VS_ERR_RANGE))
}

/// Reads the timeouts `ipvsadm -L --timeout` shows (any out-pointer may be NULL).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_get_timeouts(
    engine: *mut vs_engine,
    tcp: *mut u32,
    tcpfin: *mut u32,
    udp: *mut u32,
) -> vs_status {
    with_engine(engine, |e| {
        let (t, f, u) = e.inner.timeouts_mut().ipvsadm();
        for (p, v) in [(tcp, t), (tcpfin, f), (udp, u)] {
            if !p.is_null() {
                write_out(p, v)?;
            }
        }
        Ok(())
    })
}

/// Sets one connection state's timeout in seconds; `state` is a `vs_conn_info.state` value
/// (IPVS's state numbers: 1 ESTABLISHED ... 11 UDP).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_set_state_timeout(engine: *mut vs_engine, state: u8, seconds: u32) -> vs_status {
    with_engine(engine, |e| {
        let state = ConnState::from_index(state).ok_or(vs_status::VS_ERR_INVALID)?;
        e.inner.timeouts_mut().set(state, seconds).map_err(|_| vs_status::VS_ERR_RANGE)
    })
}

/// Flood defence (IPVS's drop_entry / drop_packet / secure_tcp sysctls, modes 0..3).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct vs_defence {
    /// `sizeof(vs_defence)`.
    pub struct_size: u32,
    /// Table entries above which the table counts as under pressure (0: 3/4 of capacity).
    pub threshold: u32,
    /// drop_entry mode.
    pub drop_entry: u8,
    /// drop_packet mode.
    pub drop_packet: u8,
    /// secure_tcp mode.
    pub secure_tcp: u8,
    /// am_droprate: with drop_packet 3, one of this many new-connection packets is dropped.
    pub am_droprate: u32,
    /// Most entries of protocols other than TCP (0: no limit).
    pub max_other: u32,
    /// Most TCP entries (0: no limit).
    pub max_tcp: u32,
}

impl vs_defence {
    fn of(d: &Defence) -> vs_defence {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        vs_defence {
            struct_size: size_of::<vs_defence>() as u32,
            threshold: clamp(d.threshold),
            drop_entry: d.drop_entry,
            drop_packet: d.drop_packet,
            secure_tcp: d.secure_tcp,
            am_droprate: d.am_droprate,
            max_other: clamp(d.max_other),
            max_tcp: clamp(d.max_tcp),
        }
    }
}

// SAFETY: `struct_size` first; integers only.
unsafe impl Versioned for vs_defence {
    // Version 1: the layout as first published.
    const FIRST_SIZE: usize = size_of::<vs_defence>();
    fn defaults() -> Self {
        vs_defence::of(&Defence::default())
    }
}

/// Reads the defence settings.
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_get_defence(engine: *mut vs_engine, out: *mut vs_defence) -> vs_status {
    with_engine(engine, |e| write_out(out, vs_defence::of(&e.inner.config().defence)))
}

/// Sets the defence settings (modes above 3 are `VS_ERR_RANGE`).
///
/// # Safety
/// Pointer arguments are NULL or valid for the call as the header describes them; `engine`
/// is a handle from `vs_engine_init` / `vs_engine_new` that no other thread uses meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vs_set_defence(engine: *mut vs_engine, defence: *const vs_defence) -> vs_status {
    with_engine(engine, |e| {
        let d = versioned_in(defence)?;
        if d.drop_entry > 3 || d.drop_packet > 3 || d.secure_tcp > 3 {
            return Err(vs_status::VS_ERR_RANGE);
        }
        let size = |n: u32| usize::try_from(n).map_err(|_| vs_status::VS_ERR_RANGE);
        e.inner.config_mut().defence = Defence {
            threshold: size(d.threshold)?,
            drop_entry: d.drop_entry,
            drop_packet: d.drop_packet,
            secure_tcp: d.secure_tcp,
            am_droprate: d.am_droprate,
            max_other: size(d.max_other)?,
            max_tcp: size(d.max_tcp)?,
        };
        Ok(())
    })
}
