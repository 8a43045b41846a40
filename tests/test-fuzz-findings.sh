#!/usr/bin/env bash
# What the fuzzers found (tests/fuzz), each rebuilt here from a qemu-img
# image with the one field changed and judged against qemu-img check.
# The inputs themselves are in tests/fuzz/regress, replayed by
# test-fuzz.sh.
#
# 1. A version 3 snapshot table entry with less than 16 bytes of extra
#    data is incomplete: qemu-img check counts it as an error, and so
#    must zq_check, or fuzz-image-rw takes such an image for clean (a
#    write then "corrupted" an image that was corrupt already).  In a
#    version 2 image the extra data is optional: no error.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io
: "${ZQCOW2_IMG:=$_zq_testdir/../tools/zqcow2-img}"
[ -x "$ZQCOW2_IMG" ] || skip "zqcow2-img not built: $ZQCOW2_IMG"
scratch_dir

# errors_of TOOL-OUTPUT-FILE: the "N errors were found" count, 0 if none.
errors_of ()
{
  sed -n 's/^\([0-9]*\) errors were found on the image\.$/\1/p' "$1" |
    grep . || echo 0
}

for compat in 0.10 1.1; do
  img="snap-$compat.qcow2"
  qemu-img create -q -f qcow2 -o compat=$compat,cluster_size=512 "$img" 64k
  qemu-io -f qcow2 -c 'write -P 0x21 0 1k' "$img" >/dev/null
  qemu-img snapshot -c first "$img"
  table="$(peek_be "$img" 64 8)"
  [ "$(peek_be "$img" $((table + 36)) 4)" -ge 16 ] ||
    fail "qemu-img wrote a snapshot entry with under 16 bytes of extra data"
  poke_be "$img" $((table + 36)) 4 8
  qemu-img check "$img" > qemu.out 2>&1 || true
  "$ZQCOW2_IMG" check "$img" > zq.out 2>&1 || true
  want="$(errors_of qemu.out)"
  got="$(errors_of zq.out)"
  case "$compat" in
    0.10) [ "$want" -eq 0 ] || fail "qemu-img check: $(cat qemu.out)" ;;
    1.1)  [ "$want" -eq 1 ] &&
            grep -q 'snapshot table entry 0 is incomplete' qemu.out ||
            fail "qemu-img check: $(cat qemu.out)" ;;
  esac
  [ "$got" -eq "$want" ] ||
    fail "compat=$compat, 8 bytes of snapshot extra data: zqcow2-img" \
         "check found $got errors, qemu-img check $want: $(cat zq.out)"
  if [ "$want" -eq 1 ]; then
    grep -q "$img: ERROR snapshot table entry 0 is incomplete" zq.out ||
      fail "zqcow2-img check does not name the incomplete entry: $(cat zq.out)"
  fi
done
