//! `vsd rs-decap`: the real-server end of LVS-TUN on a host whose kernel has no ipip / ip6_tunnel
//! module. Raw sockets for IP-in-IP (protocol 4) and IPv6-in-IP (41), over IPv4 and IPv6, take
//! the tunnelled packets addressed to this host (and keep the kernel from answering "protocol
//! unreachable"); the inner packets go to the kernel through a TUN device, where the VIP is a
//! local address (on `lo`, as for DR), and the real server answers the client directly.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};

/// `vsd rs-decap`'s options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DecapOptions {
    /// Name of the TUN device to create.
    #[arg(long, default_value = "vsdtun0")]
    tun: String,
}

/// `struct ifreq` as TUNSETIFF wants it: a name and the flags.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

fn open_tun(name: &str) -> Result<File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| format!("/dev/net/tun: {e}"))?;
    let mut req = IfReq { name: [0; 16], flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short, _pad: [0; 22] };
    let bytes = name.as_bytes();
    if bytes.len() >= 16 {
        return Err(format!("--tun {name}: at most 15 characters"));
    }
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is (same layout).
    let rc = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&file), TUNSETIFF, &raw mut req) };
    if rc < 0 {
        return Err(format!("TUNSETIFF {name}: {}", std::io::Error::last_os_error()));
    }
    let up = std::process::Command::new("ip").args(["link", "set", name, "up"]).status();
    if !up.is_ok_and(|s| s.success()) {
        return Err(format!("ip link set {name} up failed"));
    }
    Ok(file)
}

fn raw_socket(family: libc::c_int, protocol: libc::c_int) -> Result<OwnedFd, String> {
    // SAFETY: plain system call; the descriptor is owned below.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(format!("raw socket ({family}, {protocol}): {}", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Receives tunnelled packets on `socket` and writes the inner packets to the TUN device.
/// Raw IPv4 sockets hand over the outer header, raw IPv6 sockets do not.
fn pump(socket: &OwnedFd, outer_v4: bool, mut tun: File) {
    let mut buf = vec![0u8; 65_536];
    loop {
        // SAFETY: `buf` has room for its length.
        let n = unsafe { libc::recv(std::os::fd::AsRawFd::as_raw_fd(socket), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else { continue };
        let inner_start = if outer_v4 { buf.first().map_or(n, |b| usize::from(b & 0x0f) * 4) } else { 0 };
        if let Some(inner) = buf.get(inner_start..n)
            && !inner.is_empty()
            && let Err(e) = tun.write_all(inner)
        {
            tracing::warn!(error = %e, "writing to the TUN device failed");
        }
    }
}

/// Runs until killed.
pub(crate) fn run(options: &DecapOptions) -> Result<(), String> {
    let tun = open_tun(&options.tun)?;
    let mut threads = Vec::new();
    for (family, protocol) in [
        (libc::AF_INET, libc::IPPROTO_IPIP),
        (libc::AF_INET, libc::IPPROTO_IPV6),
        (libc::AF_INET6, libc::IPPROTO_IPV6),
        (libc::AF_INET6, libc::IPPROTO_IPIP),
    ] {
        let socket = raw_socket(family, protocol)?;
        let tun = tun.try_clone().map_err(|e| e.to_string())?;
        threads.push(std::thread::spawn(move || pump(&socket, family == libc::AF_INET, tun)));
    }
    tracing::info!(tun = %options.tun, "decapsulating IP-in-IP and IPv6-in-IP to the TUN device");
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
