//! `vsd run` one-armed with direct routing and IP tunnelling, end to end: real servers hold the
//! VIP on `lo` with arp_ignore=1 / arp_announce=2 and answer clients directly; for TUN they run
//! `vsd rs-decap` (this kernel has no ipip module), which hands the inner packets to the kernel
//! through a TUN device.

mod live;

use live::{Topo, tally};

fn rules(method: &str) -> String {
    let mut r = String::from("-A -t 198.18.0.100:80 -s rr\n-A -u 198.18.0.100:7 -s rr\n");
    for i in 1..=3 {
        r.push_str(&format!("-a -t 198.18.0.100:80 -r 198.18.0.1{i} {method}\n"));
        r.push_str(&format!("-a -u 198.18.0.100:7 -r 198.18.0.1{i} {method}\n"));
    }
    r
}

fn equal_thirds(answers: &[String], what: &str) {
    let t = tally(answers);
    let n = answers.len() / 3;
    assert_eq!((t.get("rs1"), t.get("rs2"), t.get("rs3")), (Some(&n), Some(&n), Some(&n)), "{what}: {t:?}");
}

#[test]
fn direct_routing_and_tunnelling() {
    live_or_skip!("direct_routing_and_tunnelling");
    let mut topo = Topo::up("flat", "vsf1-");
    topo.udp_echo_on("198.18.0.100", 7);
    topo.start_vsd(&rules("-g"), &["--iface", "d0", "--tun-src", "198.18.0.254"]);

    // DR: TCP and UDP, every request answered by the real server directly.
    equal_thirds(&topo.http("http://198.18.0.100/", 30, None), "HTTP over DR");
    equal_thirds(&topo.udp("198.18.0.100", 7, 9), "UDP over DR");
    let listing = topo.listing();
    assert!(listing["TCP 198.18.0.100:80"].iter().all(|r| r.2 == 10), "{listing:?}");

    // TUN: the same services, now tunnelled.
    for i in 1..=3 {
        topo.spawn(&format!("rs{i}"), &[env!("CARGO_BIN_EXE_vsd"), "rs-decap", "--tun", "vsdtun0"]);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    topo.set_rules(&rules("-i")).unwrap();
    equal_thirds(&topo.http("http://198.18.0.100/", 30, None), "HTTP over TUN");
    equal_thirds(&topo.udp("198.18.0.100", 7, 9), "UDP over TUN");
    let listing = topo.listing();
    // Editing the forwarding method keeps the servers (and their counters): 10 + 10 each.
    let tcp = &listing["TCP 198.18.0.100:80"];
    assert!(tcp.iter().all(|r| r.2 == 20), "{listing:?}");

    for ns in ["client", "rs1", "rs2", "rs3"] {
        for counter in ["TcpInCsumErrors", "UdpInCsumErrors"] {
            assert_eq!(topo.nstat(ns, counter), 0, "{ns} {counter}");
        }
    }
    let report = topo.ctl(serde_json::json!({"op": "list"}))["report"].clone();
    assert_eq!(report["ring_drops"], 0, "{report}");
}

#[test]
fn health_checks_quiesce_remove_and_restore() {
    live_or_skip!("health_checks_quiesce_remove_and_restore");
    let mut topo = Topo::up("nat", "vsh1-");
    let rules = "\
-A -t 198.18.0.100:80 -s rr
-a -t 198.18.0.100:80 -r 198.18.1.1:80 -m
-a -t 198.18.0.100:80 -r 198.18.1.2:80 -m
-a -t 198.18.0.100:80 -r 198.18.1.3:80 -m
check -t 198.18.0.100:80 -r 198.18.1.2 http path / status 200 interval 0.3 timeout 0.5 rise 2 fall 2
check -t 198.18.0.100:80 -r 198.18.1.3 tcp interval 0.3 timeout 0.5 rise 1 fall 2 on-fail remove
";
    topo.start_vsd(rules, &["--iface", "d0", "--iface", "d1"]);
    let t = tally(&topo.http("http://198.18.0.100/", 30, None));
    assert_eq!(t.len(), 3, "{t:?}");

    let weight_of = |topo: &Topo, real: &str| -> Option<u64> {
        topo.listing()["TCP 198.18.0.100:80"].iter().find(|r| r.0 == real).map(|r| r.1)
    };
    let wait_for = |topo: &Topo, what: &str, ok: &dyn Fn(&Topo) -> bool| {
        // interval × fall plus a probe timeout, with slack for a loaded machine.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if ok(topo) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{what}: not within 5 s\n{}", topo.log());
    };

    // rs2 fails its HTTP check: quiesced (weight 0); no new connection goes to it.
    topo.stop_http("rs2");
    wait_for(&topo, "rs2 quiesced", &|t| weight_of(t, "198.18.1.2:80") == Some(0));
    let t = tally(&topo.http("http://198.18.0.100/", 10, None));
    assert_eq!(t.get("rs2"), None, "{t:?}");
    // rs3 fails its TCP check: removed from the service.
    topo.stop_http("rs3");
    wait_for(&topo, "rs3 removed", &|t| weight_of(t, "198.18.1.3:80").is_none());
    let t = tally(&topo.http("http://198.18.0.100/", 6, None));
    assert_eq!(t.get("rs1"), Some(&6), "{t:?}");

    // Both come back when their servers do.
    topo.restart_http("rs2");
    topo.restart_http("rs3");
    wait_for(&topo, "rs2 restored", &|t| weight_of(t, "198.18.1.2:80") == Some(1));
    wait_for(&topo, "rs3 restored", &|t| weight_of(t, "198.18.1.3:80") == Some(1));
    let t = tally(&topo.http("http://198.18.0.100/", 9, None));
    assert_eq!(t.len(), 3, "{t:?}");
    let log = topo.log();
    for expected in ["real server failed", "up again", "real server changed by its health check"] {
        assert!(log.contains(expected), "log lacks `{expected}`:\n{log}");
    }
    let status = topo.ctl(serde_json::json!({"op": "status"}));
    assert_eq!(status["health"].as_array().map(Vec::len), Some(0), "{status}");
}
