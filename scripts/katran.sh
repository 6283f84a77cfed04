#!/usr/bin/env bash
# Katran's XDP balancer timed on this machine under BPF_PROG_TEST_RUN, to stand beside the
# criterion figures of `cargo bench` (same machine, same session). Katran is GPL: its source is
# unpacked into a scratch directory and built there with ../shared/katran-bench (nothing of it
# enters this repository). Needs root, clang, llvm, libbpf-dev, bpftool, libelf-dev, and a
# Katran checkout: KATRAN_GIT (a git directory, e.g. from `fetch github:facebookincubator/katran`)
# or KATRAN_DIR (an unpacked tree).
#   sudo ./scripts/katran.sh [REPEAT]     prints "SUMMARY case=… min=… median=…" per case (ns)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bench=${KATRAN_BENCH:-$here/../shared/katran-bench}
repeat=${1:-1000000}
if [ -z "${KATRAN_DIR:-}" ]; then
    git_dir=${KATRAN_GIT:-/work/.mirror/facebookincubator+katran/repo}
    [ -d "$git_dir" ] || { echo "katran.sh: set KATRAN_GIT or KATRAN_DIR (no Katran source found)" >&2; exit 2; }
    KATRAN_DIR=$(mktemp -d /tmp/katran.XXXXXX)
    git --git-dir="$git_dir" archive HEAD | tar -x -C "$KATRAN_DIR"
fi
export KATRAN_DIR
OUT=$KATRAN_DIR/out "$bench/build.sh" >/dev/null 2>&1 || { echo "katran.sh: build failed (see $bench/build.sh)" >&2; exit 1; }
cd "$KATRAN_DIR/out"
./katran_bench -o wrap.norate.o -p katran_bench -m repeat -r "$repeat" -k 5 -c 1 -C syn,ack | grep SUMMARY
./katran_bench -o balancer.norate.o -p balancer_ingress -m repeat -r "$repeat" -k 5 -c 1 -C miss | grep SUMMARY
./katran_bench -o xdp_baseline.o -p xdp_pass -m repeat -r "$repeat" -k 5 -c 1 -C miss | grep SUMMARY | sed 's/case=miss/case=empty-program/'
