//! The host around vsd: its interfaces, the settings vsd depends on (checked at start: set
//! where vsd may set them, refused with the exact change to make where it may not), and the
//! nftables netdev-ingress rules that keep the kernel from also handling what vsd handles.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use vs_proto::conn::Forward;
use vs_proto::wire::MacAddr;

use super::config::{Config, Steering};
use super::neigh::NeighView;
use super::worker::Port;

fn sys(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).map_err(|e| format!("{path}: {e}"))
}

/// Reads an interface: index, MAC address, MTU; refuses one that is missing or down.
pub(crate) fn port(name: &str) -> Result<Port, String> {
    let base = format!("/sys/class/net/{name}");
    if !std::path::Path::new(&base).exists() {
        return Err(format!("interface {name} does not exist (see `ip link`)"));
    }
    let ifindex = sys(&format!("{base}/ifindex"))?.parse().map_err(|_| format!("{name}: bad ifindex"))?;
    let mtu = sys(&format!("{base}/mtu"))?.parse().map_err(|_| format!("{name}: bad mtu"))?;
    let mac_text = sys(&format!("{base}/address"))?;
    let bytes: Vec<u8> = mac_text.split(':').filter_map(|b| u8::from_str_radix(b, 16).ok()).collect();
    let mac = MacAddr(<[u8; 6]>::try_from(bytes).map_err(|_| format!("{name}: not an Ethernet interface"))?);
    let flags = u32::from_str_radix(sys(&format!("{base}/flags"))?.trim_start_matches("0x"), 16).unwrap_or(0);
    if flags & 1 == 0 {
        return Err(format!("interface {name} is down: run `ip link set {name} up`"));
    }
    Ok(Port { name: name.to_owned(), ifindex, mac, mtu })
}

/// The host's own addresses (from `ip -j addr`), to refuse VIPs the kernel also owns.
fn local_addresses() -> Vec<(IpAddr, String)> {
    let Ok(out) = Command::new("ip").args(["-j", "addr", "show"]).output() else { return vec![] };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else { return vec![] };
    let mut list = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        let name = link["ifname"].as_str().unwrap_or("?").to_owned();
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(addr) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                list.push((addr, name.clone()));
            }
        }
    }
    list
}

/// Start-up and reload checks of the configuration against the host. `Err` says what to change.
pub(crate) fn check(
    config: &Config,
    ports: &[Port],
    view: &NeighView,
    has_tun_src: (bool, bool),
) -> Result<(), String> {
    let locals = local_addresses();
    for vip in config.vips() {
        if let Some((_, dev)) = locals.iter().find(|(a, _)| *a == vip) {
            return Err(format!(
                "VIP {vip} is an address of this host (on {dev}); vsd answers ARP / ND for its VIPs itself, so \
                 the kernel must not own it: run `ip addr del {vip}/{} dev {dev}`",
                if vip.is_ipv4() { 32 } else { 128 }
            ));
        }
    }
    for (addr, forward) in config.reals() {
        let Some((_, ifindex)) = view.next_hop(addr) else {
            return Err(format!(
                "real server {addr} has no route through vsd's interfaces ({}): add --iface for the interface \
                 that reaches it, or a route",
                ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            ));
        };
        if forward == Forward::DirectRoute && view.is_on_link(addr) != Some(true) {
            return Err(format!(
                "direct-routing real server {addr} is not on a directly connected network of interface {}: \
                 DR needs the real servers on the director's link (use -i or -m for remote ones)",
                ports.iter().find(|p| p.ifindex == ifindex).map_or("?", |p| p.name.as_str())
            ));
        }
        if forward == Forward::Tunnel {
            let (v4, v6) = has_tun_src;
            if (addr.is_ipv4() && !v4) || (addr.is_ipv6() && !v6) {
                return Err(format!(
                    "tunnel real server {addr} needs an outer source address: start vsd with --tun-src ADDR \
                     (an {} address of this host)",
                    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
                ));
            }
        }
    }
    Ok(())
}

/// Sets what vsd needs of the kernel on its interfaces: no proxy ARP on the client side (the
/// kernel would answer for the VIPs too). Returns what was changed, for the log.
pub(crate) fn set_sysctls(ports: &[Port]) -> Result<Vec<String>, String> {
    let mut changed = Vec::new();
    if let Some(client) = ports.first() {
        let path = format!("/proc/sys/net/ipv4/conf/{}/proxy_arp", client.name);
        if sys(&path)? != "0" {
            std::fs::write(&path, "0")
                .map_err(|e| format!("{path}: {e}: run `sysctl -w net.ipv4.conf.{}.proxy_arp=0`", client.name))?;
            changed.push(format!("net.ipv4.conf.{}.proxy_arp=0", client.name));
        }
    }
    Ok(changed)
}

/// Whether the kernel forwards IPv4 (needed for the real servers' own traffic through a NAT
/// director, not for vsd's).
pub(crate) fn ip_forward() -> bool {
    sys("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v == "1")
}

/// The nftables table that drops, at netdev ingress (after AF_PACKET has seen the frame), the
/// packets vsd handles: everything to a VIP, and NAT real servers' replies from their service
/// ports to clients. Everything else the kernel keeps handling: the real servers' own traffic,
/// ARP, and what they send to the director itself (answers to its health checks).
pub(crate) fn nft_ruleset(steering: &Steering, ports: &[Port]) -> String {
    let v4: Vec<String> = steering.vips.iter().filter(|a| a.is_ipv4()).map(ToString::to_string).collect();
    let v6: Vec<String> = steering.vips.iter().filter(|a| a.is_ipv6()).map(ToString::to_string).collect();
    let mut rules = Vec::new();
    if !v4.is_empty() {
        rules.push(format!("ip daddr {{ {} }} drop", v4.join(", ")));
    }
    if !v6.is_empty() {
        rules.push(format!("ip6 daddr {{ {} }} drop", v6.join(", ")));
    }
    for &(proto, addr, port) in &steering.nat {
        let proto = if proto == vs_proto::wire::IpProtocol::TCP { "tcp" } else { "udp" };
        let family = if addr.is_ipv4() { "ip" } else { "ip6" };
        if port == 0 {
            rules.push(format!("{family} saddr {addr} meta l4proto {proto} fib daddr type != local drop"));
        } else {
            rules.push(format!("{family} saddr {addr} {proto} sport {port} fib daddr type != local drop"));
        }
    }
    rules.sort();
    rules.dedup();
    // Create-then-delete-then-define in one transaction: atomic replacement.
    let mut text = String::from("table netdev vsd\ndelete table netdev vsd\ntable netdev vsd {\n");
    for (i, port) in ports.iter().enumerate() {
        text.push_str(&format!(
            "  chain ingress{i} {{\n    type filter hook ingress device \"{}\" priority -500; policy accept;\n",
            port.name
        ));
        for r in &rules {
            text.push_str(&format!("    {r}\n"));
        }
        text.push_str("  }\n");
    }
    text.push_str("}\n");
    text
}

fn nft(script: &str) -> Result<(), String> {
    let mut child =
        Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| {
            format!(
                "nft: {e}: vsd needs nftables (apt-get install nftables) to keep the kernel off the packets it handles"
            )
        })?;
    child.stdin.take().ok_or("nft: no stdin")?.write_all(script.as_bytes()).map_err(|e| format!("nft: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("nft refused the ingress rules: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Installs (or atomically replaces) the ingress rules.
pub(crate) fn install_ingress(steering: &Steering, ports: &[Port]) -> Result<(), String> {
    nft(&nft_ruleset(steering, ports))
}

/// Removes them (at exit).
pub(crate) fn remove_ingress() {
    let _ = nft("table netdev vsd\ndelete table netdev vsd\n");
}
