#!/usr/bin/env bash
# Write-pointer tables written in little-endian order (as QEMU's zoned
# series writes them on x86; test-zone-qemu-series.sh builds whole
# images of the series): zqcow2 reads them (with one warning), never
# changes them on a read-only open, and rewrites the whole table
# big-endian on the first write.  A table that is valid in neither order
# is refused for writing and reported offline when read-only.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires qemu-io nbdkit sha256sum
plugin_ok
zqimg_ok
scratch_dir

MiB=$(( 1 << 20 ))

# table_offset IMG: where the write-pointer table starts.
table_offset () { peek_be "$1" $(( $(zoned_ext_offset "$1") + 48 )) 8; }

# poke_le FILE OFFSET VALUE: an 8-byte little-endian number.
poke_le ()
{
    local bytes="" i
    for (( i = 0; i < 8; i++ )); do
        bytes+="$(printf '\\x%02x' $(( ($3 >> (i * 8)) & 0xff )))"
    done
    printf "$bytes" | dd of="$1" bs=1 seek="$2" count=8 conv=notrunc status=none
}

# to_little_endian IMG NR-ZONES: rewrite every entry in the old order.
to_little_endian ()
{
    local table i entry
    table="$(table_offset "$1")"
    for (( i = 0; i < $2; i++ )); do
        entry="$(peek_be "$1" $(( table + 8 * i )) 8)"
        poke_le "$1" $(( table + 8 * i )) "$entry"
    done
}

zoned_create img.qcow2 8M zone.size=1M,zone.conventional_zones=1
zq_nbdkit -- file=img.qcow2 --run '
    qemu-io -f raw "$uri" -c "write -P 0x21 2M 4k" -c "write -P 0x31 3M 8k"
' >/dev/null || fail "writing zones 2 and 3 failed"
to_little_endian img.qcow2 8
table="$(table_offset img.qcow2)"
[ "$(peek_be img.qcow2 $(( table + 16 )) 8)" -ne $(( 2 * MiB + 4096 )) ] ||
    fail "the table was not converted to little-endian"

# Read-only: the pointers are read in the old order, the file untouched.
before="$(sha256sum < img.qcow2)"
zone_report img.qcow2 > report 2> report.err
expect_zone "le read" report 2 cl $(( 2 * MiB + 4096 ))
expect_zone "le read" report 3 cl $(( 3 * MiB + 8192 ))
expect_zone "le read" report 4 em $(( 4 * MiB ))
grep -qi "little-endian" report.err ||
    fail "no warning about the little-endian table: $(cat report.err)"
zq_nbdkit -r -- file=img.qcow2 --run '
    qemu-io -r -f raw "$uri" -c "read -P 0x21 2M 4k" -c "read -P 0 2101248 4k"
' > ro.out 2> ro.err || fail "reading through nbdkit -r failed: $(cat ro.err)"
grep -qi "little-endian" ro.err || fail "nbdkit did not warn about the table"
[ "$(sha256sum < img.qcow2)" = "$before" ] ||
    fail "a read-only open changed the image"
echo "ok      le read: read-only opens read the old order and change nothing"

# The first write rewrites every entry big-endian.
zq_nbdkit -- file=img.qcow2 --run '
    qemu-io -f raw "$uri" -c "write -P 0x22 2101248 4k"
' >/dev/null 2>&1 || fail "writing zone 2 at its pointer failed"
[ "$(peek_be img.qcow2 $(( table + 16 )) 8)" -eq $(( 2 * MiB + 8192 )) ] ||
    fail "zone 2's entry is not big-endian 2M+8k after a write"
[ "$(peek_be img.qcow2 $(( table + 24 )) 8)" -eq $(( 3 * MiB + 8192 )) ] ||
    fail "zone 3's entry (not written to) was not rewritten big-endian"
[ "$(peek_be img.qcow2 "$table" 8)" -eq $(( 1 << 59 )) ] ||
    fail "the conventional zone's entry was not rewritten big-endian"
zone_report img.qcow2 > report2 2> report2.err
! grep -qi "little-endian" report2.err ||
    fail "still warned about little-endian after the rewrite"
expect_zone "le rewrite" report2 2 cl $(( 2 * MiB + 8192 ))
zoned_check "le rewrite" img.qcow2

# An entry valid in neither order: read-write refused naming the zone,
# read-only serves the zone as offline.
set_disk_wp img.qcow2 5 $(( 9 * MiB ))
if zq_nbdkit -- file=img.qcow2 --run 'nbdinfo --size "$uri"' \
        >/dev/null 2> bad.err; then
    fail "a corrupt write-pointer entry was accepted for writing"
fi
grep -q "zone 5" bad.err || fail "the refusal does not name zone 5: $(cat bad.err)"
# An offline zone has no usable pointer: it is reported at the zone start.
zone_report img.qcow2 > report3 2>/dev/null
expect_zone "corrupt entry" report3 5 of $(( 5 * MiB ))
expect_zone "corrupt entry" report3 2 cl $(( 2 * MiB + 8192 ))
echo "ok      corrupt entry: refused read-write, offline read-only"
