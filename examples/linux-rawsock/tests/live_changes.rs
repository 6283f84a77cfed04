//! `vsd run` under configuration changes, end to end: wrr ratios, sh and mh keeping clients
//! on one server, persistence, quiescing and deleting a real server while connections to it
//! are open (they drain, as IPVS's do), reloads with errors keeping the old rules (control
//! socket and SIGHUP).

mod live;

use std::time::Duration;

use live::{Topo, held_connection, release, tally};

fn rules(scheduler: &str, extra: &str, weights: [u32; 3]) -> String {
    let mut r = format!("-A -t 198.18.0.100:80 -s {scheduler} {extra}\n");
    for (i, w) in weights.iter().enumerate() {
        r.push_str(&format!("-a -t 198.18.0.100:80 -r 198.18.1.{}:80 -m -w {w}\n", i + 1));
    }
    r
}

/// Client addresses besides 198.18.0.1, for the schedulers that hash the client.
const CLIENTS: [&str; 6] = ["198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5", "198.18.0.6", "198.18.0.7"];

#[test]
fn schedulers_persistence_quiesce_delete_and_reloads() {
    live_or_skip!("schedulers_persistence_quiesce_delete_and_reloads");
    let mut topo = Topo::up("nat", "vsn2-");
    for c in CLIENTS {
        topo.ns_ok("client", &["ip", "addr", "add", &format!("{c}/24"), "dev", "c0"]);
    }
    topo.start_vsd(&rules("wrr", "", [3, 2, 1]), &["--iface", "d0", "--iface", "d1"]);

    // wrr: the weight ratio exactly over whole periods.
    let t = tally(&topo.http("http://198.18.0.100/", 30, None));
    assert_eq!((t["rs1"], t["rs2"], t["rs3"]), (15, 10, 5), "{t:?}");

    // sh and mh: each client always on the same server.
    for scheduler in ["sh", "mh"] {
        topo.set_rules(&rules(scheduler, "", [1, 1, 1])).unwrap();
        let mut used = std::collections::BTreeSet::new();
        for c in CLIENTS {
            let t = tally(&topo.http("http://198.18.0.100/", 4, Some(c)));
            assert_eq!(t.len(), 1, "{scheduler}: client {c} moved between servers: {t:?}");
            used.extend(t.into_keys());
        }
        assert!(used.len() >= 2, "{scheduler}: six clients all on one server: {used:?}");
    }

    // Persistence: a client's connections stick to one server; rr spreads the templates.
    topo.set_rules(&rules("rr", "-p 60", [1, 1, 1])).unwrap();
    let first = tally(&topo.http("http://198.18.0.100/", 6, Some(CLIENTS[0])));
    let second = tally(&topo.http("http://198.18.0.100/", 6, Some(CLIENTS[1])));
    assert_eq!((first.len(), second.len()), (1, 1), "{first:?} {second:?}");
    assert_ne!(first.keys().next(), second.keys().next(), "two clients, two templates, rr: two servers");

    // Quiesce and delete while connections are open.
    topo.set_rules(&rules("rr", "", [1, 1, 1])).unwrap();
    let held: Vec<_> = (0..3).map(|i| held_connection(&mut topo, &format!("held{i}"))).collect();
    let listing = topo.listing();
    let active: Vec<u64> = listing["TCP 198.18.0.100:80"].iter().map(|r| r.3).collect();
    assert_eq!(active, vec![1, 1, 1], "one open connection per server: {listing:?}");
    // rs1 quiesced (weight 0): no new connections, its open one goes on.
    topo.set_rules(&rules("rr", "", [0, 1, 1])).unwrap();
    let t = tally(&topo.http("http://198.18.0.100/", 10, None));
    assert_eq!(t.get("rs1"), None, "a quiesced server got new connections: {t:?}");
    assert_eq!((t["rs2"], t["rs3"]), (5, 5));
    // rs2 deleted: gone from the listing, no new connections, and (expire_nodest_conn=0, as
    // IPVS's default) the packets of its open connection are silently dropped.
    let without_rs2 = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.1:80 -m -w 0\n\
                       -a -t 198.18.0.100:80 -r 198.18.1.3:80 -m -w 1\n";
    topo.set_rules(without_rs2).unwrap();
    let listing = topo.listing();
    let reals: Vec<&str> = listing["TCP 198.18.0.100:80"].iter().map(|r| r.0.as_str()).collect();
    assert_eq!(reals, vec!["198.18.1.3:80", "198.18.1.1:80"]);
    let t = tally(&topo.http("http://198.18.0.100/", 6, None));
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t["rs3"], 6);
    let bodies: Vec<String> = held.iter().map(|(go, out)| release(go, out)).collect();
    let mut answered: Vec<&str> = bodies.iter().map(String::as_str).filter(|b| *b != "(no answer)").collect();
    answered.sort_unstable();
    assert_eq!(answered, vec!["rs1", "rs3"], "the quiesced and the untouched server finish their connections");
    let drops = topo.ctl(serde_json::json!({"op": "list"}))["report"]["drops"].clone();
    assert!(drops["real server removed"].as_u64().unwrap_or(0) >= 1, "{drops}");

    // A rules text with an error changes nothing and names the line.
    let before = topo.listing();
    let err =
        topo.set_rules("-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.1:80 -m -w -1\n").unwrap_err();
    assert!(err.contains("line 2"), "{err}");
    let err = topo.set_rules("-A -t 198.18.0.100:80 -s nosuch\n").unwrap_err();
    assert!(err.contains("unknown scheduler"), "{err}");
    assert_eq!(topo.listing(), before);
    // ... and the old rules keep serving.
    let t = tally(&topo.http("http://198.18.0.100/", 4, None));
    assert_eq!(t.get("rs3"), Some(&4), "after a refused reload: {t:?}");
    let before = topo.listing();

    // SIGHUP: a broken file is refused (logged, old rules kept); a good one is applied.
    std::fs::write(topo.work.join("rules"), "-A -t 198.18.0.100:80 -s rr\n-a -t nonsense\n").unwrap();
    topo.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    let log = topo.log();
    let refusal = log.lines().find(|l| l.contains("reload refused")).unwrap_or_else(|| panic!("{log}"));
    assert!(refusal.contains("line 2"), "the log names the line: {refusal}");
    assert_eq!(topo.listing(), before);
    std::fs::write(topo.work.join("rules"), rules("rr", "", [1, 1, 1])).unwrap();
    topo.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    let listing = topo.listing();
    assert_eq!(listing["TCP 198.18.0.100:80"].len(), 3, "{}", topo.log());
    let t = tally(&topo.http("http://198.18.0.100/", 3, None));
    assert_eq!(t.len(), 3, "{t:?}");
}
