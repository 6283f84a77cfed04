#!/usr/bin/env bash
# The offline demo: write a sample capture of 30 clients opening HTTP connections to the
# classic LVS-NAT example service (VIP port 80, rr over three real servers), replay it through
# those rules (in ipvsadm syntax) and print each real server's share, the counters and the
# path of the replayed capture. Needs no privileges.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p vs-linux-rawsock --bin vsd
exec ./target/release/vsd demo --dir target/demo "$@"
