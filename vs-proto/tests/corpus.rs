//! The capture corpus (`../shared/pcaps/tcpdump`, 404 real and deliberately malformed captures):
//! every frame goes through the parser and the rewriters without a panic, and for every IPv4 /
//! IPv6 frame the fields `dissect` prints agree with tshark's dissection.
//!
//! The corpus is not part of the repository; when it is absent (a user's fresh clone) the tests
//! say so and pass. Set `VS_PCAPS` to use another folder.

#[path = "../examples/dissect/capture.rs"]
#[allow(dead_code)]
mod capture;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use vs_proto::wire::{ChecksumCaps, L3, Rewriter, Summary};

fn corpus() -> Option<Vec<PathBuf>> {
    let dir = std::env::var_os("VS_PCAPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/pcaps/tcpdump"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        // CI runs with ../shared beside the clone: there a missing corpus is a failure.
        assert!(std::env::var_os("CI").is_none(), "capture corpus not found at {} in CI", dir.display());
        eprintln!("SKIP: capture corpus not found at {} (set VS_PCAPS); nothing checked", dir.display());
        return None;
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    Some(files)
}

/// Every frame parses or fails cleanly, and on every frame that parses, a full NAT rewrite
/// (both addresses, both ports, MACs, TTL) keeps valid checksums valid.
#[test]
fn corpus_parses_and_rewrites_without_panic() {
    let Some(files) = corpus() else { return };
    let (mut frames, mut parsed, mut rewritten) = (0u64, 0u64, 0u64);
    for path in &files {
        let path = path.to_str().unwrap();
        let _ = capture::for_each_frame(path, |_, link, data| {
            frames += 1;
            let Ok(link) = link else { return };
            let _ = capture::dissect(0, link, data);
            let summary = match link {
                capture::Link::Ethernet => Summary::from_ethernet(data),
                capture::Link::RawIp => Summary::from_ip(data),
            };
            let Ok(mut summary) = summary else { return };
            parsed += 1;
            let l4_before = summary.l4_checksum_ok(data);
            let ip_before = summary.ipv4_checksum_ok(data);
            let mut buf = data.to_vec();
            let mut rw = Rewriter::new(&mut buf, &mut summary, ChecksumCaps::software());
            let (src, dst) = match summary_family(data, link) {
                Some(L3::Ipv4) => ("198.18.0.7".parse::<IpAddr>().unwrap(), "198.19.255.1".parse::<IpAddr>().unwrap()),
                Some(L3::Ipv6) => ("2001:db8::7".parse().unwrap(), "2001:db8:ffff::1".parse().unwrap()),
                _ => return,
            };
            rw.set_src_addr(src).unwrap();
            rw.set_dst_addr(dst).unwrap();
            let _ = rw.set_src_port(40000);
            let _ = rw.set_dst_port(8080);
            let _ = rw.set_macs(Default::default(), Default::default());
            let _ = rw.decrement_hop_limit();
            rewritten += 1;
            if l4_before == Some(true) {
                assert_eq!(summary.l4_checksum_ok(&buf), Some(true), "{path}: transport checksum broken by rewrite");
            }
            if ip_before == Some(true) {
                assert_eq!(summary.ipv4_checksum_ok(&buf), Some(true), "{path}: IPv4 checksum broken by rewrite");
            }
            // The rewritten packet still parses to the same shape.
            let again = match link {
                capture::Link::Ethernet => Summary::from_ethernet(&buf),
                capture::Link::RawIp => Summary::from_ip(&buf),
            }
            .unwrap();
            assert_eq!(again.src, Some(src));
            assert_eq!(again.dst, Some(dst));
        });
    }
    eprintln!("corpus: {} files, {frames} frames, {parsed} parsed, {rewritten} rewritten", files.len());
    assert!(frames > 1000, "the corpus should hold thousands of frames");
}

fn summary_family(data: &[u8], link: capture::Link) -> Option<L3> {
    let mut s = Summary::default();
    let _ = match link {
        capture::Link::Ethernet => s.parse_ethernet(data),
        capture::Link::RawIp => s.parse_ip(data),
    };
    Some(s.l3)
}

const FIELDS: &[&str] = &[
    "frame.number",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "ip.proto",
    "ipv6.nxt",
    "ipv6.hopopts.nxt",
    "ipv6.routing.nxt",
    "ipv6.fraghdr.nxt",
    "ipv6.dstopts.nxt",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tcp.flags",
    "vlan.id",
    "icmp.type",
    "icmp.code",
    "icmpv6.type",
    "icmpv6.code",
    "tcp.checksum.status",
    "udp.checksum.status",
    "icmp.checksum.status",
    "icmpv6.checksum.status",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.fraghdr.offset",
];

/// One tshark row: every occurrence of every field, outermost first.
struct Row(BTreeMap<&'static str, Vec<String>>);

impl Row {
    fn all(&self, field: &str) -> &[String] {
        self.0.get(field).map(Vec::as_slice).unwrap_or(&[])
    }
    fn nth(&self, field: &str, n: usize) -> Option<&str> {
        self.all(field).get(n).map(String::as_str)
    }
    fn num(&self, field: &str, n: usize) -> Option<u64> {
        let v = self.nth(field, n)?;
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    }
    /// The upper-layer protocol of the outermost IPv6 header, and whether its chain has a
    /// fragment header: follow the chain, taking each extension header's next occurrence.
    fn ipv6_chain(&self) -> (Option<u64>, bool) {
        let mut cursor: BTreeMap<&str, usize> = BTreeMap::new();
        let mut fragment = false;
        let Some(mut proto) = self.num("ipv6.nxt", 0) else {
            return (None, false);
        };
        for _ in 0..16 {
            let field = match proto {
                0 => "ipv6.hopopts.nxt",
                43 => "ipv6.routing.nxt",
                44 => "ipv6.fraghdr.nxt",
                60 => "ipv6.dstopts.nxt",
                _ => break,
            };
            fragment |= proto == 44;
            let i = cursor.entry(field).or_insert(0);
            let Some(next) = self.num(field, *i) else { break };
            *i += 1;
            proto = next;
        }
        (Some(proto), fragment)
    }
}

fn tshark_rows(path: &str) -> Option<BTreeMap<u64, Row>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r", path, "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]);
    cmd.args(["-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]);
    cmd.args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=/s"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    // Many corpus captures are malformed on purpose, and tshark may report an error on them
    // after dissecting what it could: its rows are compared whatever its exit status. A
    // missing tshark only skips outside CI.
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(std::env::var_os("CI").is_none(), "tshark is not installed, and CI must not skip");
            return None;
        }
        Err(e) => panic!("cannot run tshark: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let mut row = BTreeMap::new();
        for (i, f) in FIELDS.iter().enumerate() {
            let v = cols.get(i).copied().unwrap_or("");
            if !v.is_empty() {
                row.insert(*f, v.split(' ').map(str::to_owned).collect());
            }
        }
        let row = Row(row);
        if let Some(n) = row.num("frame.number", 0) {
            rows.insert(n, row);
        }
    }
    Some(rows)
}

/// Compares one of our frames with tshark's row; returns the names of the fields that disagree.
fn compare(ours: &Value, row: &Row) -> Vec<String> {
    let mut bad = Vec::new();
    let mut check = |name: &str, mine: Option<String>, theirs: Option<String>| {
        if let (Some(m), Some(t)) = (&mine, &theirs) {
            if m != t {
                bad.push(format!("{name}: ours {m} tshark {t}"));
            }
        } else if mine.is_some() && theirs.is_none() {
            bad.push(format!("{name}: tshark has none"));
        }
    };
    let s = |v: &Value| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string()));
    let v6 = ours["l3"] == "ipv6";
    let (src_f, dst_f) = if v6 { ("ipv6.src", "ipv6.dst") } else { ("ip.src", "ip.dst") };
    check("src", s(&ours["src"]), row.nth(src_f, 0).map(str::to_owned));
    check("dst", s(&ours["dst"]), row.nth(dst_f, 0).map(str::to_owned));
    let theirs_proto = if v6 { row.ipv6_chain().0 } else { row.num("ip.proto", 0) };
    check("proto", s(&ours["proto"]), theirs_proto.map(|p| p.to_string()));
    let proto = ours["proto"].as_u64();
    let (sp, dp) = match proto {
        Some(6) => ("tcp.srcport", "tcp.dstport"),
        _ => ("udp.srcport", "udp.dstport"),
    };
    if matches!(proto, Some(6 | 17)) {
        check("sport", s(&ours["sport"]), row.nth(sp, 0).map(str::to_owned));
        check("dport", s(&ours["dport"]), row.nth(dp, 0).map(str::to_owned));
    }
    if proto == Some(6) {
        check("tcp_flags", s(&ours["tcp_flags"]), row.num("tcp.flags", 0).map(|f| (f & 0xFF).to_string()));
    }
    if let Some(vlans) = ours["vlan"].as_array() {
        let mine: Vec<String> = vlans.iter().filter_map(s).collect();
        let theirs: Vec<String> = row.all("vlan.id").iter().take(mine.len()).cloned().collect();
        check("vlan", Some(mine.join(",")), Some(theirs.join(",")));
    }
    let (ty_f, code_f, ck_f) = match proto {
        Some(58) => ("icmpv6.type", "icmpv6.code", "icmpv6.checksum.status"),
        Some(1) => ("icmp.type", "icmp.code", "icmp.checksum.status"),
        Some(6) => ("", "", "tcp.checksum.status"),
        _ => ("", "", "udp.checksum.status"),
    };
    if !ty_f.is_empty() {
        check("icmp_type", s(&ours["icmp_type"]), row.nth(ty_f, 0).map(str::to_owned));
        check("icmp_code", s(&ours["icmp_code"]), row.nth(code_f, 0).map(str::to_owned));
    }
    if let Some(ok) = ours["l4_csum_ok"].as_bool() {
        // tshark: 0 bad, 1 good, 2 unverified, 3 not present (IPv4 UDP zero), 4 illegal.
        let theirs = match row.num(ck_f, 0) {
            Some(0) | Some(4) => Some("false"),
            Some(1) | Some(3) => Some("true"),
            _ => None,
        };
        if theirs.is_some() {
            check("l4_csum_ok", Some(ok.to_string()), theirs.map(str::to_owned));
        }
    }
    if let Some(frag) = ours["frag"].as_bool() {
        let theirs = if v6 {
            row.ipv6_chain().1
        } else {
            row.num("ip.flags.mf", 0).unwrap_or(0) != 0 || row.num("ip.frag_offset", 0).unwrap_or(0) != 0
        };
        check("frag", Some(frag.to_string()), Some(theirs.to_string()));
    }
    if let Some(inner) = ours.get("inner") {
        // The quoted packet is the second IP header tshark shows.
        let inner_v6 = inner["src"].as_str().is_some_and(|a| a.contains(':'));
        let (isrc, idst) = if inner_v6 { ("ipv6.src", "ipv6.dst") } else { ("ip.src", "ip.dst") };
        let n = usize::from(inner_v6 == v6);
        check("inner.src", s(&inner["src"]), row.nth(isrc, n).map(str::to_owned));
        check("inner.dst", s(&inner["dst"]), row.nth(idst, n).map(str::to_owned));
        let iproto = inner["proto"].as_u64();
        if matches!(iproto, Some(6 | 17)) && inner.get("sport").is_some() {
            let (isp, idp) =
                if iproto == Some(6) { ("tcp.srcport", "tcp.dstport") } else { ("udp.srcport", "udp.dstport") };
            check("inner.sport", s(&inner["sport"]), row.nth(isp, 0).map(str::to_owned));
            check("inner.dport", s(&inner["dport"]), row.nth(idp, 0).map(str::to_owned));
        }
    }
    bad
}

/// The documented disagreements with tshark: a field, the condition on our output under which
/// tshark may say otherwise, and why.
fn explained(field: &str, ours: &Value) -> Option<&'static str> {
    let error = ours["error"].as_str().unwrap_or("");
    match field {
        // ip6_frag_asan.pcap, ipv6_frag6_negative_len.pcap: the Fragment header itself is cut
        // short, or lies beyond the IPv6 payload length. vs-proto refuses the chain before it
        // has read a whole fragment header and so reports no fragment; tshark shows the fields
        // of the partial header it could read.
        "frag" if error == "ipv6: truncated extension header" || error == "ipv6: payload length exceeds buffer" => {
            Some("fragment header cut short: vs-proto stops before it, tshark reads the partial header")
        }
        // hoobr_rt6_print.pcap, ipv6-next-header-oobr-2.pcap, ipv6-rthdr-oobr.pcap (read since
        // the link-type field's FCS bits are honoured): an extension header is cut short by the
        // end of the capture. vs-proto reports the last next-header value of a header it read
        // whole; tshark takes the next-header byte of the partial header.
        "proto" if error == "ipv6: payload length exceeds buffer" || error == "ipv6: truncated extension header" => {
            Some("extension header cut short: vs-proto names the last whole header, tshark reads the partial one")
        }
        _ => None,
    }
}

#[test]
fn corpus_agrees_with_tshark() {
    let Some(files) = corpus() else { return };
    if Command::new("tshark").arg("-v").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "tshark is not installed, and CI must not skip");
        eprintln!("SKIP: tshark not installed (.ci/run installs it); nothing compared");
        return;
    }
    let mut compared = 0u64;
    let mut disagreements: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut explained_counts: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let results: Vec<_> = std::thread::scope(|scope| {
        let chunks: Vec<&[PathBuf]> = files.chunks(files.len().div_ceil(4)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk.iter().map(|p| (p.clone(), tshark_rows(p.to_str().unwrap()))).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for (path, rows) in results {
        let Some(rows) = rows else { continue };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let _ = capture::for_each_frame(path.to_str().unwrap(), |frame, link, data| {
            let Ok(link) = link else { return };
            let ours = capture::dissect(frame, link, data);
            if !matches!(ours["l3"].as_str(), Some("ipv4" | "ipv6")) || ours.get("src").is_none() {
                return;
            }
            let Some(row) = rows.get(&frame) else { return };
            compared += 1;
            for d in compare(&ours, row) {
                let field = d.split(':').next().unwrap_or("").to_owned();
                let entry = format!("{name}#{frame}: {d} ; ours {ours}");
                match explained(&field, &ours) {
                    Some(why) => explained_counts.entry(why).or_default().push(entry),
                    None => disagreements.entry(field).or_default().push(entry),
                }
            }
        });
    }
    eprintln!("tshark comparison: {} files, {compared} IPv4/IPv6 frames compared", files.len());
    for (why, list) in &explained_counts {
        eprintln!("explained ({}): {why}", list.len());
        for d in list {
            eprintln!("   {d}");
        }
    }
    for (field, list) in &disagreements {
        eprintln!("== {field}: {} disagreements", list.len());
        for d in list.iter().take(8) {
            eprintln!("   {d}");
        }
    }
    assert!(compared > 1000);
    assert!(disagreements.is_empty(), "unexplained disagreements with tshark (see above)");
}
