#!/usr/bin/env bash
# Record what the real ipvsadm 1.31 on the real Linux 6.1 IPVS (../shared/ipvs-oracle) prints for
# every command sequence in examples/linux-rawsock/tests/ipvsadm/sequences.txt: each command
# line's stdout, stderr and exit status, verbatim, in recorded.txt beside it, which the vsadm
# tests replay through vsadm and vsd. Each sequence starts from an empty table with the default
# timeouts, in a fresh working directory. One boot of the oracle VM (~10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
oracle=${IPVS_ORACLE:-../shared/ipvs-oracle}
dir=examples/linux-rawsock/tests/ipvsadm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$dir/sequences.txt" "$tmp/sequences.txt"
cat > "$tmp/job.sh" <<'JOB'
plan=$PWD/sequences.txt
section() {
    printf '=== $ %s\n' "$1"
    ( cd "$work" && sh -c "$1" ) >/tmp/rec.out 2>/tmp/rec.err
    rc=$?
    echo "--- stdout"
    cat /tmp/rec.out
    [ -s /tmp/rec.out ] && [ -n "$(tail -c 1 /tmp/rec.out)" ] && printf '\n%s\n' '\ no newline at end'
    echo "--- stderr"
    cat /tmp/rec.err
    [ -s /tmp/rec.err ] && [ -n "$(tail -c 1 /tmp/rec.err)" ] && printf '\n%s\n' '\ no newline at end'
    echo "--- exit $rc"
}
reset() {
    ipvsadm -C
    ipvsadm --set 900 120 300
    work=$(mktemp -d)
}
while IFS= read -r line; do
    case $line in
        '## '*) reset; echo "$line" ;;
        '#'*|'') ;;
        *) section "$line" ;;
    esac
done < "$plan"
JOB
out=$dir/recorded.txt
{
    echo "# recorded from ipvsadm 1.31 on Linux 6.1 IPVS (ipvs-oracle) by scripts/record-ipvsadm.sh on $(date -u +%Y-%m-%d)"
    "$oracle/run.sh" -t 300 "$tmp/job.sh" "$tmp/sequences.txt" 2>/dev/null | sed -n '/^## /,$p' | grep -v '^run: '
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "recorded $(grep -c '^## ' "$out") sequences, $(grep -c '^=== ' "$out") commands in $out"
