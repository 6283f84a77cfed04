//! `vsd demo` and `vsd replay` end to end, with tshark as the judge of the written captures:
//! every checksum valid, the right addresses and ports in each direction, and rr spreading 30
//! connections 10/10/10 over three real servers.

mod common;
use common::tshark_fields as tshark;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn vsd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vsd")).args(args).output().expect("vsd runs")
}

/// `vsd replay --rules RULES --in INPUT --out OUTPUT EXTRA...`.
fn replay(rules: &Path, input: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    let files = ["replay", "--rules", rules.to_str().unwrap(), "--in", input.to_str().unwrap(), "--out"];
    vsd(&[&files[..], &[output.to_str().unwrap()], extra].concat())
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vsd-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn demo_replays_the_classic_nat_example() {
    let dir = scratch("demo");
    let out = vsd(&["demo", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches(": 10 connections").count(), 3, "{stdout}");
    let replayed = dir.join("replayed.pcap");
    let Some(rows) = tshark(
        &replayed,
        &[
            "ip.src",
            "tcp.srcport",
            "ip.dst",
            "tcp.dstport",
            "ip.checksum.status",
            "tcp.checksum.status",
            "tcp.flags.syn",
            "tcp.flags.ack",
        ],
    ) else {
        eprintln!("SKIP: tshark not installed (.ci/run installs it); the capture was not dissected");
        return;
    };
    assert_eq!(rows.len(), 240);
    let reals = ["198.18.1.1", "198.18.1.2", "198.18.1.3"];
    let mut syns: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        assert_eq!((r[4].as_str(), r[5].as_str()), ("1", "1"), "every checksum verifies: {r:?}");
        if r[0] == "198.18.0.100" {
            assert_eq!(r[1], "80", "replies leave from the VIP's port");
            assert!(r[2].starts_with("198.18.5."));
        } else {
            assert!(r[0].starts_with("198.18.5."), "{r:?}");
            assert!(reals.contains(&r[2].as_str()), "client packets go to a real server: {r:?}");
            assert_eq!(r[3], "80");
            if r[6] == "1" && r[7] == "0" {
                *syns.entry(r[2].clone()).or_default() += 1;
            }
        }
    }
    assert_eq!(syns.values().copied().collect::<Vec<_>>(), [10, 10, 10]);
}

#[test]
fn replay_direct_routing_passes_the_replies() {
    let dir = scratch("dr");
    assert!(vsd(&["demo", "--dir", dir.to_str().unwrap(), "--clients", "6"]).status.success());
    let rules = dir.join("dr.rules");
    std::fs::write(
        &rules,
        "-A -t 198.18.0.100:80 -s wrr\n-a -t 198.18.0.100:80 -r 198.18.1.1 -g -w 2\n-a -t 198.18.0.100:80 -r 198.18.1.2 -g -w 1\n",
    )
    .unwrap();
    let (out, pass) = (dir.join("dr-out.pcap"), dir.join("dr-pass.pcap"));
    let result = vsd(&[
        "replay",
        "--rules",
        rules.to_str().unwrap(),
        "--in",
        dir.join("sample.pcap").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--pass-out",
        pass.to_str().unwrap(),
        "--neigh",
        "198.18.1.1=02:00:00:00:01:01",
        "--neigh",
        "198.18.1.2=02:00:00:00:01:02",
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    // 6 clients × 5 client frames go to real servers; the 3 server frames each are not the
    // director's business in DR (they match no connection as NAT replies) and are passed.
    assert!(stderr.contains("transmitted 30, passed to host 18"), "{stderr}");
    let Some(rows) = tshark(&out, &["ip.dst", "ip.ttl", "eth.dst", "ip.checksum.status"]) else {
        return;
    };
    for r in &rows {
        assert_eq!(r[0], "198.18.0.100", "DR keeps the VIP as destination");
        assert_eq!(r[1], "63");
        assert!(r[2] == "02:00:00:00:01:01" || r[2] == "02:00:00:00:01:02");
        assert_eq!(r[3], "1");
    }
}

#[test]
fn malformed_rules_name_the_line_and_run_nothing() {
    let dir = scratch("bad");
    let rules = dir.join("bad.rules");
    std::fs::write(&rules, "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.1:80 -m -w lots\n").unwrap();
    let out = dir.join("out.pcap");
    let result = vsd(&[
        "replay",
        "--rules",
        rules.to_str().unwrap(),
        "--in",
        "/nonexistent.pcap",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!out.exists(), "nothing was run");
    std::fs::write(&rules, "-A -t 198.18.0.100:80 -s nosuch\n").unwrap();
    let sample = scratch("bad2");
    assert!(vsd(&["demo", "--dir", sample.to_str().unwrap(), "--clients", "1"]).status.success());
    let result = vsd(&[
        "replay",
        "--rules",
        rules.to_str().unwrap(),
        "--in",
        sample.join("sample.pcap").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&result.stderr).contains("rules line 1: no scheduler of that name"));
}

#[test]
fn replay_lists_what_vsadm_would_show() {
    let dir = scratch("list");
    let out = vsd(&["demo", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success());
    let mut args = vec!["replay", "--rules"];
    let rules = dir.join("rules.txt");
    let input = dir.join("sample.pcap");
    let output = dir.join("out.pcap");
    args.extend([
        rules.to_str().unwrap(),
        "--in",
        input.to_str().unwrap(),
        "--out",
        output.to_str().unwrap(),
        "--list",
    ]);
    for n in 1..=3 {
        args.push("--neigh");
        args.push(
            ["198.18.1.1=02:00:00:00:01:01", "198.18.1.2=02:00:00:00:01:02", "198.18.1.3=02:00:00:00:01:03"][n - 1],
        );
    }
    let out = vsd(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stderr);
    let stats = text.split("$ vsadm -L -c -n").next().unwrap();
    assert!(stats.contains("Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"), "{text}");
    assert!(stats.contains("TCP  198.18.0.100:80                    30"), "{text}");
    for n in 1..=3 {
        assert!(stats.contains(&format!("  -> 198.18.1.{n}:80                      10")), "{text}");
    }
    let conns = text.split("$ vsadm -L -c -n\n").nth(1).unwrap();
    let rows: Vec<&str> = conns.lines().skip(2).collect();
    assert_eq!(rows.len(), 30, "{conns}");
    assert!(
        rows.iter().all(|r| r.starts_with("TCP ") && r.contains("TIME_WAIT") && r.contains("198.18.0.100:80")),
        "{conns}"
    );
}

#[test]
fn the_demo_files_replay_as_they_are_with_neighbours_learnt_from_the_capture() {
    let dir = scratch("learn");
    assert!(vsd(&["demo", "--dir", dir.to_str().unwrap()]).status.success());
    let (rules, sample) = (dir.join("rules.txt"), dir.join("sample.pcap"));
    let out = dir.join("again.pcap");
    let run = replay(&rules, &sample, &out, &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stderr).contains("frames 240: transmitted 240"));
    // The same frames as the demo, which gave every neighbour explicitly.
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(dir.join("replayed.pcap")).unwrap());

    // A real server the capture never shows: the frames for it cannot be delivered, and vsd
    // says so and fails; a gateway MAC delivers them.
    let unseen = dir.join("unseen.txt");
    std::fs::write(&unseen, "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.9.9:80 -m\n").unwrap();
    let args = [
        "replay",
        "--rules",
        unseen.to_str().unwrap(),
        "--in",
        sample.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let run = vsd(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(stderr.contains("could not be delivered: no MAC address known for 198.18.9.9"), "{stderr}");
    let run = vsd(&[&args[..], &["--gateway", "02:00:00:00:00:fe"]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}

#[test]
fn capture_errors_read_as_sentences() {
    let dir = scratch("errors");
    let rules = dir.join("bad-rules.txt");
    std::fs::write(&rules, "-A -t 198.18.0.100:80 -s nosuch\n").unwrap();
    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, b"\xd4\xc3").unwrap();
    let out = dir.join("out.pcap");
    let run = replay(&rules, &empty, &out, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("too short to be a pcap or pcapng file"), "{stderr}");
    // A good capture cut in the middle of a record names the last whole frame.
    assert!(vsd(&["demo", "--dir", dir.to_str().unwrap()]).status.success());
    let whole = std::fs::read(dir.join("sample.pcap")).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() - 10]).unwrap();
    let run = replay(&rules, &cut, &out, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("truncated: the record after frame 239 is cut short"), "{stderr}");
    // Rules errors are sentences with their line.
    std::fs::write(&cut, &whole).unwrap();
    let run = replay(&rules, &cut, &out, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("rules line 1: no scheduler of that name"), "{stderr}");
}

/// The records of a classic little-endian pcap: (record header, frame).
fn records(pcap: &[u8]) -> Vec<([u8; 16], Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let header: [u8; 16] = pcap[at..at + 16].try_into().unwrap();
        let len = u32::from_le_bytes(header[8..12].try_into().unwrap()) as usize;
        out.push((header, pcap[at + 16..at + 16 + len].to_vec()));
        at += 16 + len;
    }
    out
}

/// A classic pcap with link-type field `link` of `frames` (record headers' lengths rewritten).
fn pcap_with(link: u32, frames: &[([u8; 16], Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0];
    out.extend_from_slice(&link.to_le_bytes());
    for (header, frame) in frames {
        let mut h = *header;
        let len = u32::try_from(frame.len()).unwrap().to_le_bytes();
        h[8..12].copy_from_slice(&len);
        h[12..16].copy_from_slice(&len);
        out.extend_from_slice(&h);
        out.extend_from_slice(frame);
    }
    out
}

#[test]
fn link_types_with_fcs_bits_and_linux_cooked_captures_replay() {
    let dir = scratch("links");
    assert!(vsd(&["demo", "--dir", dir.to_str().unwrap()]).status.success());
    let rules = dir.join("rules.txt");
    let frames = records(&std::fs::read(dir.join("sample.pcap")).unwrap());
    let replay = |name: &str, pcap: Vec<u8>| {
        let input = dir.join(format!("{name}.pcap"));
        std::fs::write(&input, pcap).unwrap();
        let out = dir.join(format!("{name}-out.pcap"));
        let run = replay(&rules, &input, &out, &[]);
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(run.status.success(), "{name}: {stderr}");
        (stderr.lines().next().unwrap_or_default().to_owned(), std::fs::read(out).unwrap())
    };
    let (plain, expected) = replay("plain", pcap_with(1, &frames));
    assert!(plain.contains("transmitted 240"), "{plain}");
    // FCS length bits without the P bit: the length is unknown, the frames are plain Ethernet
    // (0x30000001, as in the tcpdump corpus).
    assert_eq!(replay("fcs-unknown", pcap_with(0x3000_0001, &frames)).1, expected);
    // With the P bit: every frame ends in 2 × 2 bytes of FCS, which the reader drops.
    let with_fcs: Vec<_> =
        frames.iter().map(|(h, f)| (*h, [f.as_slice(), &[0xde, 0xad, 0xbe, 0xef]].concat())).collect();
    assert_eq!(replay("fcs", pcap_with(0x2400_0001, &with_fcs)).1, expected);
    // Linux cooked captures: the same frames as `tcpdump -i any` records them, plus one the
    // capturing host sent itself (left out).
    let cooked = |v2: bool, outgoing: bool, f: &[u8]| {
        let (pkttype, src, ethertype, payload) = (u8::from(outgoing) * 4, &f[6..12], &f[12..14], &f[14..]);
        let mut c = Vec::new();
        if v2 {
            c.extend_from_slice(ethertype);
            c.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, pkttype, 6]);
        } else {
            c.extend_from_slice(&[0, pkttype, 0, 1, 0, 6]);
        }
        c.extend_from_slice(src);
        c.extend_from_slice(&[0, 0]);
        if !v2 {
            c.extend_from_slice(ethertype);
        }
        c.extend_from_slice(payload);
        c
    };
    for (v2, link) in [(false, 113u32), (true, 276)] {
        let mut cooked_frames: Vec<_> = frames.iter().map(|(h, f)| (*h, cooked(v2, false, f))).collect();
        cooked_frames.push((frames[0].0, cooked(v2, true, &frames[0].1)));
        let (summary, out) = replay(&format!("sll{link}"), pcap_with(link, &cooked_frames));
        assert!(summary.contains("frames 240: transmitted 240"), "{link}: {summary}");
        assert_eq!(out, expected, "link type {link}");
    }
}
