//! `vsd replay` on captures built here: persistence keeps a client on one real server, an
//! ICMP "fragmentation needed" about a reply is relayed to the real server, and tshark checks
//! the output.

mod common;
use common::{tshark_fields as tshark, write_pcap};

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use vs_proto::wire::checksum::{self, pseudo_header_v4};
use vs_proto::wire::{IcmpError, IpProtocol, Ipv4Header, PacketBuf, Summary, TcpFlags, icmp_error};
use zerocopy::IntoBytes;

fn v4(d: u8, e: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, d, e)
}

/// Ethernet / IPv4 / TCP with valid checksums.
fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: TcpFlags, payload: usize) -> Vec<u8> {
    let mut seg = vec![0u8; 20 + payload];
    seg[0..2].copy_from_slice(&src.1.to_be_bytes());
    seg[2..4].copy_from_slice(&dst.1.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = flags.bits();
    let len = seg.len() as u16;
    let c = !checksum::fold(checksum::sum(pseudo_header_v4(src.0, dst.0, IpProtocol::TCP, u32::from(len)), &seg));
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = Ipv4Header::new(src.0, dst.0, IpProtocol::TCP, 64, len);
    ip.set_dont_frag(true);
    ip.fill_checksum();
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 5, 1, 0x08, 0x00];
    f.extend_from_slice(ip.as_bytes());
    f.extend_from_slice(&seg);
    f
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vsd-parity-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn replay(dir: &Path, rules: &str, frames: &[Vec<u8>]) -> (PathBuf, String) {
    std::fs::write(dir.join("rules"), rules).unwrap();
    write_pcap(&dir.join("in.pcap"), frames);
    let out = dir.join("out.pcap");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vsd"));
    cmd.args(["replay", "--rules", dir.join("rules").to_str().unwrap(), "--in", dir.join("in.pcap").to_str().unwrap()]);
    cmd.args(["--out", out.to_str().unwrap()]);
    for n in 1..=3 {
        cmd.args(["--neigh", &format!("198.18.1.{n}=02:00:00:00:01:0{n}")]);
    }
    for n in 1..=9 {
        cmd.args(["--neigh", &format!("198.18.5.{n}=02:00:00:00:05:01")]);
    }
    let result = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(result.status.success(), "{stderr}");
    (out, stderr)
}

const VIP: (u8, u8) = (0, 100);

#[test]
fn persistence_keeps_a_client_on_one_server() {
    let dir = scratch("persist");
    let vip = (v4(VIP.0, VIP.1), 80);
    let mut frames = vec![];
    for port in [1001, 1002, 1003] {
        frames.push(tcp((v4(5, 1), port), vip, TcpFlags::SYN, 0));
    }
    frames.push(tcp((v4(5, 2), 2001), vip, TcpFlags::SYN, 0));
    frames.push(tcp((v4(5, 1), 1004), vip, TcpFlags::SYN, 0));
    let rules = "-A -t 198.18.0.100:80 -s rr -p 60\n-a -t 198.18.0.100:80 -r 198.18.1.1:80 -m\n-a -t 198.18.0.100:80 -r 198.18.1.2:80 -m\n";
    let (out, stderr) = replay(&dir, rules, &frames);
    assert!(stderr.contains("transmitted 5"), "{stderr}");
    let Some(rows) = tshark(&out, &["ip.src", "ip.dst", "ip.checksum.status"]) else {
        eprintln!("SKIP: tshark not installed");
        return;
    };
    let by_client = |c: &str| rows.iter().filter(|r| r[0] == c).map(|r| r[1].clone()).collect::<Vec<_>>();
    let first = by_client("198.18.5.1");
    assert_eq!(first.len(), 4);
    assert!(first.iter().all(|d| *d == first[0]), "persistent client spread: {first:?}");
    assert_ne!(by_client("198.18.5.2")[0], first[0], "the next client goes to the other server");
    assert!(rows.iter().all(|r| r[2] == "1"));
}

#[test]
fn an_icmp_error_about_a_reply_reaches_the_real_server() {
    let dir = scratch("icmp");
    let vip = (v4(VIP.0, VIP.1), 80);
    let client = (v4(5, 3), 3333);
    let syn = tcp(client, vip, TcpFlags::SYN, 0);
    // What a router on the client's side sends back about a 1400-byte reply from the VIP.
    let reply = tcp(vip, client, TcpFlags::ACK, 1360);
    let mut storage = vec![0u8; 64 + reply.len()];
    storage[64..].copy_from_slice(&reply);
    let mut buf = PacketBuf::new(&mut storage, 64, reply.len()).unwrap();
    let s = Summary::from_ethernet(buf.data()).unwrap();
    icmp_error(&mut buf, &s, IcmpError::TooBig { mtu: 1280 }, IpAddr::V4(v4(9, 1))).unwrap();
    let mut err = buf.data().to_vec();
    err[0..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 5, 1]);
    let rules = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.1.1:8080 -m\n";
    let (out, stderr) = replay(&dir, rules, &[syn, err]);
    assert!(stderr.contains("transmitted 2"), "{stderr}");
    let Some(rows) =
        tshark(&out, &["icmp.type", "icmp.checksum.status", "ip.checksum.status", "ip.src", "ip.dst", "tcp.srcport"])
    else {
        eprintln!("SKIP: tshark not installed");
        return;
    };
    let icmp = &rows[1];
    assert_eq!(icmp[0], "3");
    assert_eq!(icmp[1], "1", "ICMP checksum good");
    assert_eq!(icmp[2], "1,1", "outer and quoted IPv4 checksums good");
    assert_eq!(icmp[3], "198.18.9.1,198.18.1.1", "quoted source is the real server");
    assert_eq!(icmp[4], "198.18.1.1,198.18.5.3", "outer destination is the real server");
    assert_eq!(icmp[5], "8080", "quoted source port is the real server's");
}
