#!/usr/bin/env bash
# zqcow2-img check finds what is wrong with an image and says so with
# qemu-img check's exit statuses: 2 for corruptions and zone errors, 3 for
# leaks only, 1 when the check cannot be made, 0 for a sound image.  Each
# case damages a fresh copy of a sound image in one way; for the qcow2
# damage, qemu-img check's own verdict is the reference.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires qemu-img qemu-io /usr/bin/python3
zqimg_ok
scratch_dir

# zq_check_is ROW IMG STATUS [PATTERN...]: zqcow2-img check IMG exits
# STATUS and its output matches every extended regular expression.
zq_check_is ()
{
    local row="$1" img="$2" want="$3" status=0 pattern
    shift 3
    "$ZQCOW2_IMG" check "$img" >check.out 2>&1 || status=$?
    [ "$status" -eq "$want" ] ||
        { cat check.out >&2; fail "$row: zqcow2-img check exited $status, expected $want"; }
    for pattern in "$@"; do
        grep -qE -- "$pattern" check.out ||
            { cat check.out >&2; fail "$row: the check output does not match /$pattern/"; }
    done
    echo "ok      $row: zqcow2-img check exits $want${1:+: $(grep -m1 -E -- "$1" check.out)}"
}

# qemu_check_is ROW IMG STATUS: qemu-img check agrees.
qemu_check_is ()
{
    local status=0
    qemu-img check "$2" >qcheck.out 2>&1 || status=$?
    [ "$status" -eq "$3" ] ||
        { cat qcheck.out >&2; fail "$1: qemu-img check exited $status, expected $3"; }
}

# refcount_offset IMG CLUSTER: where the 16-bit refcount of CLUSTER lies
# (the images here have one refcount block).
refcount_offset ()
{
    local table block
    table="$(peek_be "$1" 48 8)"
    block="$(peek_be "$1" "$table" 8)"
    echo $(( block + 2 * $2 ))
}

# --- qcow2 damage ----------------------------------------------------

"$ZQCOW2_IMG" create -q -o cluster_size=64K base.qcow2 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x22 32M 256K' \
    base.qcow2 >/dev/null
qemu_check_is base base.qcow2 0
zq_check_is base base.qcow2 0 '^No errors were found on the image\.$'
"$ZQCOW2_IMG" check --output=json base.qcow2 >check.json
/usr/bin/python3 -m json.tool <check.json >/dev/null || fail "check --output=json is not JSON"
[ "$(jq '.corruptions + .leaks + ."zone-errors"' check.json)" = 0 ] ||
    fail "check --output=json reports problems in a sound image"

l1="$(peek_be base.qcow2 40 8)"
l1e="$(peek_be base.qcow2 "$l1" 8)"
l2=$(( l1e & 0x00fffffffffffe00 ))
l2e="$(peek_be base.qcow2 "$l2" 8)"
data=$(( l2e & 0x00fffffffffffe00 ))
(( l1e < 0 && l2e < 0 )) || fail "the first L1 and L2 entries lack OFLAG_COPIED"

# c1: the header's refcount is 0: a cluster in use could be handed out.
cp base.qcow2 c1.qcow2
poke_be c1.qcow2 "$(refcount_offset c1.qcow2 0)" 2 0
zq_check_is c1 c1.qcow2 2 'ERROR cluster 0 refcount=0 reference=1' \
    '^1 errors were found on the image\.$'
qemu_check_is c1 c1.qcow2 2

# c2: a data cluster's refcount is 0: too low, and OFLAG_COPIED is wrong.
cp base.qcow2 c2.qcow2
poke_be c2.qcow2 "$(refcount_offset c2.qcow2 $(( data / 65536 )))" 2 0
zq_check_is c2 c2.qcow2 2 \
    "ERROR cluster $(( data / 65536 )) refcount=0 reference=1" \
    'ERROR OFLAG_COPIED data cluster: l2_entry=.* refcount=0'
qemu_check_is c2 c2.qcow2 2

# c3: the header's refcount is 2: a leak, no harm to data.
cp base.qcow2 c3.qcow2
poke_be c3.qcow2 "$(refcount_offset c3.qcow2 0)" 2 2
zq_check_is c3 c3.qcow2 3 'Leaked cluster 0 refcount=2 reference=1' \
    '^1 leaked clusters were found on the image\.$'
qemu_check_is c3 c3.qcow2 3

# c4: a cluster at the end of the file that nothing uses has refcount 1.
cp base.qcow2 c4.qcow2
end=$(( $(stat -c %s c4.qcow2) / 65536 ))
truncate -s $(( (end + 1) * 65536 )) c4.qcow2
poke_be c4.qcow2 "$(refcount_offset c4.qcow2 "$end")" 2 1
zq_check_is c4 c4.qcow2 3 "Leaked cluster $end refcount=1 reference=0"
qemu_check_is c4 c4.qcow2 3

# c5: an L1 entry points beyond the end of the file (and so the L2 table
# it pointed at leaks).
cp base.qcow2 c5.qcow2
poke_be c5.qcow2 "$l1" 8 $(( (1 << 63) | (1 << 40) ))
zq_check_is c5 c5.qcow2 2 'ERROR l2_offset=10000000000: L2 table is beyond the end of the file' \
    "Leaked cluster $(( l2 / 65536 )) refcount=1 reference=0"
qemu_check_is c5 c5.qcow2 2

# c6: OFLAG_COPIED clear on a data cluster whose refcount is 1.
cp base.qcow2 c6.qcow2
poke_be c6.qcow2 "$l2" 8 $(( l2e & ~(1 << 63) ))
zq_check_is c6 c6.qcow2 2 "ERROR OFLAG_COPIED data cluster: l2_entry=$(printf %x "$data") refcount=1"
qemu_check_is c6 c6.qcow2 2

# c7: an L2 entry whose data offset is not cluster aligned.
cp base.qcow2 c7.qcow2
poke_be c7.qcow2 "$l2" 8 $(( l2e + 512 ))
zq_check_is c7 c7.qcow2 2 "ERROR offset=$(printf %x $(( data + 512 ))): Data cluster is not properly aligned"
qemu_check_is c7 c7.qcow2 2

# c8: nothing to check: not an image, or features it cannot interpret.
head -c 1M /dev/zero >c8.qcow2
zq_check_is c8 c8.qcow2 1 'not a qcow2 image: bad magic' 'could not be completed'
cp base.qcow2 c9.qcow2
poke_be c9.qcow2 72 8 $(( 1 << 20 ))
zq_check_is c9 c9.qcow2 1 'unknown incompatible feature.*bit 20'

# Sound images qemu wrote in ways zqcow2 does not write itself check clean:
# compressed clusters (zlib and zstd, small and large clusters), internal
# snapshots, persistent bitmaps.
head -c 3M /dev/urandom >raw.img
head -c 5M < <(yes zqcow2) >>raw.img
for opts in cluster_size=512 cluster_size=64K,compression_type=zstd \
            cluster_size=2M; do
    qemu-img convert -c -O qcow2 -o "$opts" raw.img compressed.qcow2
    qemu_check_is "compressed $opts" compressed.qcow2 0
    zq_check_is "compressed $opts" compressed.qcow2 0 \
        '^No errors were found on the image\.$' \
        '[1-9][0-9.]*% compressed clusters'
done
cp base.qcow2 snap.qcow2
qemu-img snapshot -c one snap.qcow2
qemu-io -f qcow2 -c 'write -P 0x33 512K 1M' snap.qcow2 >/dev/null
qemu-img snapshot -c two snap.qcow2
qemu-io -f qcow2 -c 'write -P 0x44 0 64K' snap.qcow2 >/dev/null
qemu_check_is snapshots snap.qcow2 0
zq_check_is snapshots snap.qcow2 0 '^No errors were found on the image\.$'
cp base.qcow2 bitmaps.qcow2
qemu-img bitmap --add bitmaps.qcow2 b0
qemu-io -f qcow2 -c 'write -P 0x55 8M 8M' bitmaps.qcow2 >/dev/null
qemu_check_is bitmaps bitmaps.qcow2 0
zq_check_is bitmaps bitmaps.qcow2 0 '^No errors were found on the image\.$'

# --- zoned damage ----------------------------------------------------

# 16 zones of 1 MiB, zones 0 and 1 conventional.
zoned_create zbase.qcow2 16M zone.size=1M,zone.conventional_zones=2
zq_check_is zbase zbase.qcow2 0 '^No errors were found on the image\.$'

# zdamage ROW ZONE ENTRY: a copy of zbase with zone ZONE's entry set.
zdamage ()
{
    cp zbase.qcow2 "$1.qcow2"
    set_disk_wp "$1.qcow2" "$2" "$3"
}

zdamage z1 5 $(( 0x500000 | (1 << 60) ))
zq_check_is z1 z1.qcow2 2 \
    'ERROR: zone 5: write pointer entry 0x1000000000500000 has reserved bits 60-63 set' \
    '^1 zone errors were found on the image\.$'

zdamage z2 5 $(( 0x700000 ))
zq_check_is z2 z2.qcow2 2 \
    'ERROR: zone 5: write pointer 0x700000 is outside the zone \[0x500000, 0x600000\]'

zdamage z3 5 $(( 0x500000 | (1 << 59) ))
zq_check_is z3 z3.qcow2 2 \
    'ERROR: zone 5: sequential zone entry 0x0800000000500000 has the conventional bit 59 set'

zdamage z4 1 $(( 0x100000 ))
zq_check_is z4 z4.qcow2 2 \
    'ERROR: zone 1: conventional zone entry 0x0000000000100000 should be 0x0800000000100000'

# Several bad entries: each is reported.
zdamage z5 3 $(( 0x200000 ))
set_disk_wp z5.qcow2 9 $(( 0x900000 | (1 << 63) ))
set_disk_wp z5.qcow2 15 $(( 0x1000001 ))
zq_check_is z5 z5.qcow2 2 'zone 3: write pointer 0x200000 is outside' \
    'zone 9: write pointer entry 0x8000000000900000 has reserved bits' \
    'zone 15: write pointer 0x1000001 is outside' \
    '^3 zone errors were found on the image\.$'

# Valid write pointers are not errors: partly written (closed), full at
# the capacity, full at the zone end.
zdamage z6 4 $(( 0x400000 + 4096 ))
set_disk_wp z6.qcow2 6 $(( 0x700000 ))
zq_check_is z6 z6.qcow2 0 '^No errors were found on the image\.$'

# The extension's geometry does not match the image: nr_zones 17.
cp zbase.qcow2 z7.qcow2
ext="$(zoned_ext_offset z7.qcow2)"
poke_be z7.qcow2 $(( ext + 24 )) 4 17
zq_check_is z7 z7.qcow2 2 'nr_zones 17 does not match the virtual size'

# Bit 5 without the extension (its magic changed to an unknown one).
cp zbase.qcow2 z8.qcow2
poke_be z8.qcow2 $(( ext - 8 )) 4 $(( 0x12345678 ))
zq_check_is z8 z8.qcow2 2 'incompatible bit 5 \(zoned format\) is set but the image has no zoned extension'

# The extension without bit 5.
cp zbase.qcow2 z9.qcow2
poke_be z9.qcow2 72 8 0
zq_check_is z9 z9.qcow2 2 'zoned extension but incompatible bit 5 \(zoned format\) is clear'

# The write-pointer table's cluster has refcount 0: it is metadata.
cp zbase.qcow2 z10.qcow2
table="$(peek_be z10.qcow2 $(( ext + 48 )) 8)"
poke_be z10.qcow2 "$(refcount_offset z10.qcow2 $(( table / 65536 )))" 2 0
zq_check_is z10 z10.qcow2 2 "ERROR cluster $(( table / 65536 )) refcount=0 reference=1"

# A table in the little-endian order of an early implementation is read
# (and rewritten) by zqcow2: a warning, not an error.
cp zbase.qcow2 z11.qcow2
for (( i = 0; i < 16; i++ )); do
    e=$(( i * 0x100000 | (i < 2 ? 1 << 59 : 0) ))
    swapped=0
    for (( b = 0; b < 8; b++ )); do
        swapped=$(( (swapped << 8) | ((e >> (8 * b)) & 0xff) ))
    done
    set_disk_wp z11.qcow2 "$i" "$swapped"
done
zq_check_is z11 z11.qcow2 0 'warning: .*little-endian' \
    '^No errors were found on the image\.$'
