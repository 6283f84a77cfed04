//! Next hops and link-layer addresses from the kernel: its routes and neighbour table, read
//! over rtnetlink (netlink-packet-route) and kept current from its change notifications. The
//! packet threads read an immutable snapshot; unknown next hops are handed to the kernel to
//! resolve (an `RTM_NEWNEIGH` with `NTF_USE`, which makes it send ARP / neighbour
//! solicitations as if it had a packet for them).

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use vs_proto::engine::{Neighbour, Neighbours};
use vs_proto::wire::MacAddr;

/// At most this many neighbour entries are kept (the rest are ignored, with a warning).
pub(crate) const MAX_NEIGHBOURS: usize = 65_536;
/// rtnetlink multicast groups: neighbours, IPv4 routes, IPv6 routes.
const GROUPS: u32 = 0x4 | 0x40 | 0x400;

/// A route on one of vsd's interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    net: IpAddr,
    prefix: u8,
    gateway: Option<IpAddr>,
    ifindex: u32,
    metric: u32,
}

/// What the packet threads read: routes and resolved neighbours on vsd's interfaces.
#[derive(Debug, Default)]
pub(crate) struct NeighView {
    routes: Vec<Route>,
    neighbours: HashMap<IpAddr, (MacAddr, u32)>,
    /// vsd's ports: index = port number, value = interface index.
    ports: Vec<u32>,
}

fn prefix_matches(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

impl NeighView {
    /// The port number of an interface index.
    pub(crate) fn port_of(&self, ifindex: u32) -> Option<u16> {
        self.ports.iter().position(|&i| i == ifindex).and_then(|p| u16::try_from(p).ok())
    }

    /// The next hop for `dst` (itself when on-link, else its route's gateway) and the
    /// interface, by longest prefix then lowest metric.
    pub(crate) fn next_hop(&self, dst: IpAddr) -> Option<(IpAddr, u32)> {
        let route = self.routes.iter().find(|r| prefix_matches(r.net, r.prefix, dst))?;
        Some((route.gateway.unwrap_or(dst), route.ifindex))
    }

    /// The resolved link-layer address of a neighbour.
    pub(crate) fn neighbour(&self, addr: IpAddr) -> Option<(MacAddr, u32)> {
        self.neighbours.get(&addr).copied()
    }

    /// Routes known (for the start-up checks).
    pub(crate) fn is_on_link(&self, dst: IpAddr) -> Option<bool> {
        self.routes.iter().find(|r| prefix_matches(r.net, r.prefix, dst)).map(|r| r.gateway.is_none())
    }
}

/// A packet thread's view for one burst: the kernel's snapshot first, then what the thread
/// learned from frames (a client's MAC from its own packets, until the kernel resolves it);
/// misses are collected for the resolver.
pub(crate) struct Lookup<'a> {
    pub(crate) view: &'a NeighView,
    pub(crate) learned: &'a HashMap<IpAddr, (MacAddr, u16)>,
    pub(crate) misses: std::cell::RefCell<Vec<(IpAddr, u32)>>,
}

impl Neighbours for Lookup<'_> {
    fn lookup(&self, next_hop: IpAddr) -> Option<Neighbour> {
        let found = self.view.next_hop(next_hop).and_then(|(hop, ifindex)| {
            let resolved = self.view.neighbour(hop).filter(|(_, i)| *i == ifindex);
            if resolved.is_none() {
                self.misses.borrow_mut().push((hop, ifindex));
            }
            resolved
        });
        match found {
            Some((mac, ifindex)) => self.view.port_of(ifindex).map(|port| Neighbour { mac, port }),
            None => self.learned.get(&next_hop).map(|&(mac, port)| Neighbour { mac, port }),
        }
    }
}

/// The published snapshot and its generation (bumped on every change).
#[derive(Debug, Default)]
pub(crate) struct Shared {
    view: Mutex<Arc<NeighView>>,
    generation: AtomicU64,
}

impl Shared {
    /// The generation of the current snapshot.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Arc<NeighView> {
        self.view.lock().map(|v| Arc::clone(&v)).unwrap_or_default()
    }
    fn publish(&self, view: NeighView) {
        if let Ok(mut v) = self.view.lock() {
            *v = Arc::new(view);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

fn request_socket() -> std::io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

fn send(socket: &Socket, message: RouteNetlinkMessage, flags: u16) -> std::io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;
    Ok(())
}

/// Runs a dump request and collects the messages of the answer.
fn dump(socket: &Socket, message: RouteNetlinkMessage) -> std::io::Result<Vec<RouteNetlinkMessage>> {
    send(socket, message, NLM_F_REQUEST | NLM_F_DUMP)?;
    let mut out = Vec::new();
    loop {
        let (buf, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < buf.len() {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..])
                .map_err(|e| std::io::Error::other(format!("rtnetlink: {e}")))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => return Err(std::io::Error::other(format!("rtnetlink dump: {e:?}"))),
                NetlinkPayload::InnerMessage(m) => out.push(m),
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

fn route_from(msg: &RouteMessage, ports: &[u32]) -> Option<Route> {
    if msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut route = Route {
        net: match msg.header.address_family {
            AddressFamily::Inet => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            _ => return None,
        },
        prefix: msg.header.destination_prefix_length,
        gateway: None,
        ifindex: 0,
        metric: 0,
    };
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => route.net = IpAddr::V4(*a),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => route.net = IpAddr::V6(*a),
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => route.gateway = Some(IpAddr::V4(*a)),
            RouteAttribute::Gateway(RouteAddress::Inet6(a)) => route.gateway = Some(IpAddr::V6(*a)),
            RouteAttribute::Oif(i) => route.ifindex = *i,
            RouteAttribute::Priority(p) => route.metric = *p,
            RouteAttribute::Table(t) if *t != 254 => return None,
            _ => {}
        }
    }
    ports.contains(&route.ifindex).then_some(route)
}

fn neighbour_from(msg: &NeighbourMessage, ports: &[u32]) -> Option<(IpAddr, MacAddr, u32)> {
    if !ports.contains(&msg.header.ifindex) {
        return None;
    }
    let usable = matches!(
        msg.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    );
    if !usable {
        return None;
    }
    let mut addr = None;
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => addr = Some(IpAddr::V4(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => addr = Some(IpAddr::V6(*a)),
            NeighbourAttribute::LinkLayerAddress(b) => mac = <[u8; 6]>::try_from(b.as_slice()).ok().map(MacAddr),
            _ => {}
        }
    }
    Some((addr?, mac?, msg.header.ifindex))
}

/// Reads the kernel's routes and neighbours on `ports` into a fresh view.
pub(crate) fn read_view(ports: &[u32]) -> std::io::Result<NeighView> {
    let socket = request_socket()?;
    let mut view = NeighView { ports: ports.to_vec(), ..NeighView::default() };
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family;
        for m in dump(&socket, RouteNetlinkMessage::GetRoute(msg))? {
            if let RouteNetlinkMessage::NewRoute(r) = m
                && let Some(route) = route_from(&r, ports)
            {
                view.routes.push(route);
            }
        }
    }
    view.routes.sort_by(|a, b| b.prefix.cmp(&a.prefix).then(a.metric.cmp(&b.metric)));
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Unspec;
    let mut dropped = 0usize;
    for m in dump(&socket, RouteNetlinkMessage::GetNeighbour(msg))? {
        if let RouteNetlinkMessage::NewNeighbour(n) = m
            && let Some((addr, mac, ifindex)) = neighbour_from(&n, ports)
        {
            if view.neighbours.len() < MAX_NEIGHBOURS {
                view.neighbours.insert(addr, (mac, ifindex));
            } else {
                dropped += 1;
            }
        }
    }
    if dropped > 0 {
        tracing::warn!(dropped, limit = MAX_NEIGHBOURS, "neighbour cache full; entries ignored");
    }
    Ok(view)
}

/// Asks the kernel to resolve `addr` on `ifindex` (creates the entry and starts ARP / ND).
fn resolve(socket: &Socket, addr: IpAddr, ifindex: u32) -> std::io::Result<()> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    msg.header.ifindex = ifindex;
    msg.header.state = NeighbourState::None;
    msg.header.flags = NeighbourFlags::Use;
    msg.attributes.push(NeighbourAttribute::Destination(match addr {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }));
    send(socket, RouteNetlinkMessage::NewNeighbour(msg), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK)?;
    // Read the acknowledgement so errors show in the log.
    let (buf, _) = socket.recv_from_full()?;
    if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf)
        && let NetlinkPayload::Error(e) = msg.payload
        && e.code.is_some()
    {
        return Err(std::io::Error::other(format!("resolve {addr}: {e:?}")));
    }
    Ok(())
}

/// The resolver thread: publishes a fresh view when the kernel reports a change (and every two
/// seconds in any case), and asks the kernel to resolve the next hops the packet threads missed
/// (each at most once a second).
pub(crate) fn run_resolver(shared: &Shared, ports: &[u32], requests: &Receiver<(IpAddr, u32)>, stop: &AtomicBool) {
    let events = Socket::new(NETLINK_ROUTE).and_then(|mut s| {
        s.bind(&SocketAddr::new(0, GROUPS))?;
        Ok(s)
    });
    let requester = request_socket();
    let mut asked: HashMap<IpAddr, Instant> = HashMap::new();
    let mut last_read = Instant::now();
    let mut dirty = false;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(events) = &events {
            let mut pfd = libc::pollfd { fd: events.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&raw mut pfd, 1, 10) } > 0;
            if ready {
                // Any change: drain the notifications and re-read (cheap for a director's tables).
                while events.recv_from_full_nonblocking().is_some() {}
                dirty = true;
            }
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
        while let Ok((addr, ifindex)) = requests.try_recv() {
            let now = Instant::now();
            if asked.get(&addr).is_some_and(|t| now.duration_since(*t) < Duration::from_secs(1)) {
                continue;
            }
            if asked.len() > MAX_NEIGHBOURS {
                asked.clear();
            }
            asked.insert(addr, now);
            if let Ok(s) = &requester {
                match resolve(s, addr, ifindex) {
                    Ok(()) => tracing::debug!(%addr, ifindex, "asked the kernel to resolve"),
                    Err(e) => tracing::warn!(%addr, ifindex, error = %e, "neighbour resolution request failed"),
                }
            }
        }
        if dirty || last_read.elapsed() > Duration::from_secs(2) {
            match read_view(ports) {
                Ok(view) => shared.publish(view),
                Err(e) => tracing::warn!(error = %e, "reading routes and neighbours failed"),
            }
            last_read = Instant::now();
            dirty = false;
        }
    }
}

/// Non-blocking receive on the notification socket.
trait NonBlocking {
    fn recv_from_full_nonblocking(&self) -> Option<Vec<u8>>;
}

impl NonBlocking for Socket {
    fn recv_from_full_nonblocking(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_536];
        // SAFETY: `buf` has room for its length.
        let n = unsafe { libc::recv(self.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        (n > 0).then(|| {
            buf.truncate(n as usize);
            buf
        })
    }
}

/// Creates the shared state with a first view read synchronously.
pub(crate) fn start(ports: &[u32]) -> std::io::Result<Arc<Shared>> {
    let shared = Arc::new(Shared::default());
    shared.publish(read_view(ports)?);
    Ok(shared)
}

/// A handle the packet threads use to ask for resolutions.
pub(crate) type Requests = Sender<(IpAddr, u32)>;
