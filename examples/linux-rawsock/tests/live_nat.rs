//! `vsd run` as an LVS-NAT director, end to end in network namespaces: the tutorial's service
//! over real HTTP servers (IPv4 and IPv6), a UDP echo service, the kernel's checksum counters,
//! the director as the real servers' gateway, the live listings, metrics, and SIGTERM.

mod live;

use live::{Topo, tally};

const TUTORIAL: &str = "\
-A -t 198.18.0.100:http -s rr
-a -t 198.18.0.100:http -r 198.18.1.1:http -m -w 1
-a -t 198.18.0.100:http -r 198.18.1.2:http -m -w 1
-a -t 198.18.0.100:http -r 198.18.1.3:http -m -w 1
-A -u 198.18.0.100:7 -s rr
-a -u 198.18.0.100:7 -r 198.18.1.1:7 -m
-a -u 198.18.0.100:7 -r 198.18.1.2:7 -m
-a -u 198.18.0.100:7 -r 198.18.1.3:7 -m
-A -t [2001:db8::100]:80 -s rr
-a -t [2001:db8::100]:80 -r [2001:db8:1::1]:80 -m
-a -t [2001:db8::100]:80 -r [2001:db8:1::2]:80 -m
-a -t [2001:db8::100]:80 -r [2001:db8:1::3]:80 -m
-A -u [2001:db8::100]:7 -s rr
-a -u [2001:db8::100]:7 -r [2001:db8:1::1]:7 -m
-a -u [2001:db8::100]:7 -r [2001:db8:1::2]:7 -m
-a -u [2001:db8::100]:7 -r [2001:db8:1::3]:7 -m
";

/// Puts a file of `size` bytes on every real server and downloads it three times over each
/// family through the VIP: every byte must arrive.
fn downloads_arrive_intact(topo: &Topo, size: u32) {
    let blob: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for i in 1..=3 {
        std::fs::write(topo.work.join(format!("rs{i}/blob")), &blob).unwrap();
    }
    for url in ["http://198.18.0.100/blob", "http://[2001:db8::100]/blob"] {
        for _ in 0..3 {
            let out = topo.ns("client", &["curl", "-sS", "-m", "20", url]);
            assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
            assert!(out.stdout == blob, "{url}: {} bytes, content differs", out.stdout.len());
        }
    }
}

fn equal_thirds(answers: &[String], what: &str) {
    let t = tally(answers);
    let expected: std::collections::BTreeMap<String, usize> =
        ["rs1", "rs2", "rs3"].iter().map(|r| ((*r).to_owned(), answers.len() / 3)).collect();
    assert_eq!(t, expected, "{what}: rr must give exactly equal counts");
}

#[test]
fn nat_tutorial_tcp_udp_ipv4_ipv6() {
    live_or_skip!("nat_tutorial_tcp_udp_ipv4_ipv6");
    let mut topo = Topo::up("nat", "vsn1-");
    topo.udp_echo(7);
    topo.start_vsd(TUTORIAL, &["--iface", "d0", "--iface", "d1", "--metrics", "127.0.0.1:9477"]);

    // TCP over IPv4: the tutorial, every request answered, rr exact.
    let answers = topo.http("http://198.18.0.100/", 30, None);
    equal_thirds(&answers, "HTTP over IPv4");
    // The live listing shows the connections and their states.
    let conns = topo.ctl(serde_json::json!({"op": "conns"}));
    let states: Vec<&str> = conns["conns"].as_array().unwrap().iter().filter_map(|c| c["state"].as_str()).collect();
    assert!(states.len() >= 30, "{states:?}");
    assert!(
        states.iter().all(|s| *s == "TIME_WAIT" || *s == "FIN_WAIT" || *s == "CLOSE_WAIT" || *s == "CLOSE"),
        "{states:?}"
    );
    let listing = topo.listing();
    let reals = &listing["TCP 198.18.0.100:80"];
    assert_eq!(reals.iter().map(|r| r.2).collect::<Vec<_>>(), vec![10, 10, 10], "{reals:?}");

    // UDP over IPv4, each datagram from a new source port.
    let answers = topo.udp("198.18.0.100", 7, 12);
    assert!(answers.iter().all(|a| a.contains("ping")), "{answers:?}");
    equal_thirds(&answers, "UDP echo over IPv4");

    // IPv6: TCP and UDP.
    let answers = topo.http("http://[2001:db8::100]/", 9, None);
    equal_thirds(&answers, "HTTP over IPv6");
    let answers = topo.udp("2001:db8::100", 7, 9);
    equal_thirds(&answers, "UDP echo over IPv6");

    // Bulk: a 4 MiB download over each family arrives intact (the real servers send GSO
    // super-frames with partial checksums; vsd passes them on whole for the kernel to finish).
    downloads_arrive_intact(&topo, 4 << 20);

    // The kernels at both ends found every checksum valid (offloads on: vsd completed the
    // partial checksums veth hands over before rewriting).
    for ns in ["client", "rs1", "rs2", "rs3"] {
        for counter in ["TcpInCsumErrors", "UdpInCsumErrors", "Ip6InHdrErrors"] {
            assert_eq!(topo.nstat(ns, counter), 0, "{ns} {counter}");
        }
    }

    // The gateway role: a real server's own connection to the client side goes through the
    // director's kernel (forwarded and masqueraded) while vsd serves.
    topo.spawn("client", &["python3", "-m", "http.server", "8080", "--bind", "198.18.0.1", "--directory", "/"]);
    std::thread::sleep(std::time::Duration::from_millis(700));
    let code = topo
        .ns_ok("rs1", &["curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://198.18.0.1:8080/"]);
    assert_eq!(code, "200");
    // And the service still works.
    equal_thirds(&topo.http("http://198.18.0.100/", 3, None), "HTTP after the gateway check");

    // Prometheus metrics (rs1 had 10 + 1 + 1 IPv4 HTTP connections by now).
    let metrics = topo.ns_ok("dir", &["curl", "-sS", "-m", "5", "http://127.0.0.1:9477/metrics"]);
    assert!(
        metrics.contains("vsd_connections_total{service=\"TCP 198.18.0.100:80\",real=\"198.18.1.1:80\"} 12"),
        "{metrics}"
    );
    assert!(metrics.contains("vsd_real_weight{"), "{metrics}");

    // Nothing was lost in the rings or refused by the kernel on transmit.
    let report = topo.ctl(serde_json::json!({"op": "list"}))["report"].clone();
    assert_eq!(report["ring_drops"], 0, "{report}");
    assert_eq!(report["tx_errors"], 0, "{report}");

    // SIGTERM stops it cleanly: exit 0, ingress rules removed, socket gone.
    topo.signal(libc::SIGTERM);
    assert_eq!(topo.wait_vsd(), Some(0), "{}", topo.log());
    let tables = topo.ns_ok("dir", &["nft", "list", "tables"]);
    assert!(!tables.contains("vsd"), "{tables}");
    assert!(!topo.control().exists());
}

#[test]
fn packet_threads_own_both_directions_of_their_connections() {
    live_or_skip!("packet_threads_own_both_directions_of_their_connections");
    let mut topo = Topo::up("nat", "vsn3-");
    topo.udp_echo(7);
    topo.start_vsd(TUTORIAL, &["--iface", "d0", "--iface", "d1", "--threads", "2"]);
    // Every request is answered only if each NAT reply reaches the thread whose table holds its
    // connection (the fanout program hashes the client's side of both directions).
    let mut answers = topo.http("http://198.18.0.100/", 40, None);
    answers.extend(topo.http("http://[2001:db8::100]/", 12, None));
    answers.extend(topo.udp("198.18.0.100", 7, 12));
    answers.extend(topo.udp("2001:db8::100", 7, 12));
    assert!(answers.iter().all(|a| a.starts_with("rs")), "{answers:?}");
    let report = topo.ctl(serde_json::json!({"op": "list"}))["report"].clone();
    let per_thread: Vec<u64> = report["thread_conns"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(per_thread.len(), 2);
    assert_eq!(per_thread.iter().sum::<u64>(), 76, "{report}");
    assert!(per_thread.iter().all(|n| *n >= 10), "both threads take a share: {per_thread:?}");
    // (A reply reaching a thread without its connection would be passed to the kernel, which
    // drops it at ingress: its request would time out above.)

    // vsd hands partial checksums and GSO super-frames on for the kernel to finish. With the
    // director's transmit offloads off, the kernel finishes them in software before the frames
    // leave, and the receivers verify every checksum themselves: any wrong partial value vsd
    // wrote would show in their error counters.
    for dev in ["d0", "d1"] {
        topo.ns_ok("dir", &["ethtool", "-K", dev, "tx", "off"]);
    }
    downloads_arrive_intact(&topo, 2 << 20);
    let answers = topo.udp("198.18.0.100", 7, 6);
    assert!(answers.iter().all(|a| a.starts_with("rs")), "{answers:?}");
    for ns in ["client", "rs1", "rs2", "rs3"] {
        for counter in ["TcpInCsumErrors", "UdpInCsumErrors"] {
            assert_eq!(topo.nstat(ns, counter), 0, "{ns} {counter}");
        }
    }
}

#[test]
fn announces_vips_and_refuses_what_cannot_work() {
    live_or_skip!("announces_vips_and_refuses_what_cannot_work");
    let mut topo = Topo::up("nat", "vsn4-");
    // A client with a stale neighbour entry for the VIP (another MAC): the gratuitous ARP at
    // start moves it to the director.
    for vip in ["198.18.0.100", "2001:db8::100"] {
        topo.ns_ok(
            "client",
            &["ip", "neigh", "replace", vip, "lladdr", "02:00:00:00:99:99", "dev", "c0", "nud", "stale"],
        );
    }
    topo.start_vsd(TUTORIAL, &["--iface", "d0", "--iface", "d1"]);
    let d0_mac = topo.ns_ok("dir", &["cat", "/sys/class/net/d0/address"]);
    let mut seen = String::new();
    for _ in 0..20 {
        seen = topo.ns_ok("client", &["ip", "neigh", "show", "198.18.0.100"]);
        if seen.contains(d0_mac.trim()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(seen.contains(d0_mac.trim()), "client's entry: {seen}, director: {d0_mac}");
    // The unsolicited neighbour advertisement (Override set) does the same for the IPv6 VIP.
    let mut seen = String::new();
    for _ in 0..20 {
        seen = topo.ns_ok("client", &["ip", "-6", "neigh", "show", "2001:db8::100"]);
        if seen.contains(d0_mac.trim()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let all = topo.ns_ok("client", &["ip", "-6", "neigh", "show"]);
    assert!(seen.contains(d0_mac.trim()), "client's entry: {seen}, director: {d0_mac}; all: {all}");
    topo.signal(libc::SIGTERM);
    assert_eq!(topo.wait_vsd(), Some(0));

    // Refusals name what to change.
    let vsd = env!("CARGO_BIN_EXE_vsd");
    let rules = topo.work.join("refuse");
    let control = topo.work.join("refuse.sock");
    let refuse = |topo: &Topo, rules_text: &str, extra: &[&str]| -> String {
        std::fs::write(&rules, rules_text).unwrap();
        let mut args = vec![vsd, "run", "--rules", rules.to_str().unwrap(), "--control", control.to_str().unwrap()];
        args.extend(extra);
        let out = topo.ns("dir", &args);
        assert!(!out.status.success(), "{rules_text} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refuse(&topo, TUTORIAL, &["--iface", "nosuch0"]);
    assert!(err.contains("interface nosuch0 does not exist"), "{err}");
    topo.ns_ok("dir", &["ip", "addr", "add", "198.18.0.100/32", "dev", "d0"]);
    let err = refuse(&topo, TUTORIAL, &["--iface", "d0", "--iface", "d1"]);
    assert!(err.contains("ip addr del 198.18.0.100/32 dev d0"), "{err}");
    topo.ns_ok("dir", &["ip", "addr", "del", "198.18.0.100/32", "dev", "d0"]);
    let err = refuse(
        &topo,
        "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.1 -i\n",
        &["--iface", "d0", "--iface", "d1"],
    );
    assert!(err.contains("--tun-src"), "{err}");
    let err = refuse(
        &topo,
        "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.9.9 -g\n",
        &["--iface", "d0", "--iface", "d1"],
    );
    assert!(err.contains("198.18.9.9"), "{err}");
    let err = refuse(&topo, TUTORIAL, &["--iface", "d0", "--iface", "d1", "--control-group", "no-such-group"]);
    assert!(err.contains("no such group"), "{err}");

    // The control socket: root only by default, or root and one group.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    topo.start_vsd(TUTORIAL, &["--iface", "d0", "--iface", "d1"]);
    assert_eq!(std::fs::metadata(topo.control()).unwrap().permissions().mode() & 0o777, 0o600);
    topo.signal(libc::SIGTERM);
    assert_eq!(topo.wait_vsd(), Some(0));
    let groups = std::fs::read_to_string("/etc/group").unwrap();
    let group = groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && (f[0] == "daemon" || f[0] == "nogroup"))
            .then(|| (f[0].to_owned(), f[2].parse::<u32>().unwrap()))
    });
    if let Some((name, gid)) = group {
        topo.start_vsd(TUTORIAL, &["--iface", "d0", "--iface", "d1", "--control-group", &name]);
        let meta = std::fs::metadata(topo.control()).unwrap();
        assert_eq!((meta.permissions().mode() & 0o777, meta.gid()), (0o660, gid));
        topo.signal(libc::SIGTERM);
        assert_eq!(topo.wait_vsd(), Some(0));
    }

    // Last (a link set down loses its IPv6 addresses): an interface that is down.
    topo.ns_ok("dir", &["ip", "link", "set", "d1", "down"]);
    let err = refuse(&topo, TUTORIAL, &["--iface", "d0", "--iface", "d1"]);
    assert!(err.contains("ip link set d1 up"), "{err}");
}

#[test]
fn the_tutorial_typed_with_vsadm() {
    live_or_skip!("the_tutorial_typed_with_vsadm");
    let mut topo = Topo::up("nat", "vsn5-");
    topo.start_vsd("", &["--iface", "d0", "--iface", "d1"]);
    let vsadm = |args: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vsadm"))
            .args(args.split_whitespace())
            .env("VSADM_CONTROL", topo.control())
            .output()
            .unwrap();
        assert!(out.status.success(), "vsadm {args}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The LVS-NAT tutorial's commands, unchanged but for the program's name.
    vsadm("-A -t 198.18.0.100:http -s rr");
    for i in 1..=3 {
        vsadm(&format!("-a -t 198.18.0.100:http -r 198.18.1.{i}:http -m -w 1"));
    }
    equal_thirds(&topo.http("http://198.18.0.100/", 30, None), "HTTP through the service vsadm made");
    // ipvsadm's own listing of the same commands (recorded from Linux 6.1) but for the
    // connection counts, which the traffic changed, and the table size.
    assert_eq!(
        vsadm("-S -n"),
        "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.1:80 -m -w 1\n\
         -a -t 198.18.0.100:80 -r 198.18.1.2:80 -m -w 1\n-a -t 198.18.0.100:80 -r 198.18.1.3:80 -m -w 1\n"
    );
    let listing = vsadm("-L -n");
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(
        lines[1..4],
        [
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            "TCP  198.18.0.100:80 rr"
        ]
    );
    for (i, line) in lines[4..].iter().enumerate() {
        // Every connection ended: 0 active, 10 inactive (TIME_WAIT) on each server.
        assert_eq!(
            *line,
            format!("  -> {:<28} Masq    1      0          10        ", format!("198.18.1.{}:80", i + 1))
        );
    }
    let stats = vsadm("-L -n --stats --exact");
    assert!(stats.contains("TCP  198.18.0.100:80                    30"), "{stats}");
    // The connection listing names ports unless -n; -Z zeroes one service's counters.
    let conns = vsadm("-L -c");
    assert!(conns.lines().skip(2).all(|l| l.contains("198.18.0.100:http")), "{conns}");
    vsadm("-Z -t 198.18.0.100:http");
    let stats = vsadm("-L -n --stats --exact");
    assert!(stats.contains("TCP  198.18.0.100:80                     0"), "{stats}");
}
