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
# 2. A refcount table entry that points at the refcount table itself:
#    qemu-img check counts the refcount blocks last and reports "refcount
#    block N refcount=2", and so must zq_check.  On a dirty image the
#    engine's repair (lib/repair.c) wrote refcounts into that "block",
#    over the table: 2 errors became 21.  It must refuse, and leave the
#    file as it was.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io
: "${ZQCOW2_IMG:=$_zq_testdir/../tools/zqcow2-img}"
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_IMG" ] || skip "zqcow2-img not built: $ZQCOW2_IMG"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
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

# 2.
qemu-img create -q -f qcow2 -o cluster_size=512,lazy_refcounts=on \
  refblock.qcow2 1M
qemu-io -f qcow2 -c 'write -P 0x31 0 4k' refblock.qcow2 >/dev/null
table="$(peek_be refblock.qcow2 48 8)"
[ "$(peek_be refblock.qcow2 $((table + 14 * 8)) 8)" -eq 0 ] ||
  fail "qemu-img made a refcount block for entry 14 of a 1 MiB image"
poke_be refblock.qcow2 $((table + 14 * 8)) 8 "$table"
qemu-img check refblock.qcow2 > qemu.out 2>&1 || true
"$ZQCOW2_IMG" check refblock.qcow2 > zq.out 2>&1 || true
grep -q '^ERROR refcount block 14 refcount=2$' qemu.out ||
  fail "qemu-img check: $(cat qemu.out)"
grep -q 'refblock.qcow2: ERROR refcount block 14 refcount=2$' zq.out ||
  fail "zqcow2-img check does not see refcount block 14 overlap the" \
       "refcount table: $(cat zq.out)"
[ "$(errors_of zq.out)" -eq "$(errors_of qemu.out)" ] ||
  fail "refcount block 14 at the refcount table: zqcow2-img check found" \
       "$(errors_of zq.out) errors, qemu-img check $(errors_of qemu.out)"
# Dirty (incompatible bit 0): a read-write open would repair.
poke_be refblock.qcow2 79 1 $(( $(peek_be refblock.qcow2 79 1) | 1 ))
cp refblock.qcow2 refblock.orig
if "$ZQCOW2_NBD" --run true refblock.qcow2 2> server.err; then
  fail "zqcow2-nbd served a dirty image whose refcount block is its" \
       "refcount table: $(cat server.err)"
fi
grep -q "will not repair it" server.err ||
  fail "zqcow2-nbd does not say why it refuses: $(cat server.err)"
cmp -s refblock.qcow2 refblock.orig ||
  fail "the refused repair changed the image:" \
       "$(qemu-img check refblock.qcow2 2>&1)"
