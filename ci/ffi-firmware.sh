#!/usr/bin/env bash
# The firmware (no_std) build of the C library: built without the std feature under the
# `firmware` profile (panic = abort), it must reference no allocator and no libc beyond the
# memory/string primitives every C runtime has, and the C suite must pass against it with
# VS_NO_STD (which also declares vs_set_panic_hook).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q -p vs-ffi --no-default-features --profile firmware
lib=target/firmware/libvs_ffi.a

# Undefined symbols of the archive minus those it defines itself. readelf, not nm: with LTO the
# members also carry bitcode that binutils' nm would hand to a mismatched LLVM plugin.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && ar x "$OLDPWD/$lib")
readelf -sW "$work"/*.o | awk '$7=="UND" && $8!="" {print $8}' | sort -u >"$work/undefined"
readelf -sW "$work"/*.o | awk '$7!="UND" && ($5=="GLOBAL" || $5=="WEAK") {print $8}' | sort -u >"$work/defined"
external=$(comm -23 "$work/undefined" "$work/defined")
echo "firmware library needs from its host: $(echo "$external" | tr '\n' ' ')"
allowed='^(memcpy|memmove|memset|memcmp|bcmp|strlen)$'
if echo "$external" | grep -Ev "$allowed" | grep -q .; then
    echo "FAIL: the no_std library needs more than memory primitives:"
    echo "$external" | grep -Ev "$allowed"
    exit 1
fi
if readelf -sW "$work"/*.o | grep -Eq ' (vs_engine_new|vs_engine_free)$'; then
    echo "FAIL: the no_std library exports the std-only constructors"
    exit 1
fi

gcc -std=c11 -Wall -Wextra -Werror -pedantic -DVS_NO_STD -Iinclude vs-ffi/tests/c/test_vs.c "$lib" \
    -o "$work/test_vs_firmware"
"$work/test_vs_firmware"
echo "firmware build: OK ($(stat -c %s "$lib") bytes)"
