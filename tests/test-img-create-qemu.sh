#!/usr/bin/env bash
# Every zoned image zqcow2-img create writes passes the open-time checks
# of QEMU's zoned-qcow2 series, restated in zq_qemu_series.py
# independently of lib/: zonedmeta_size exactly 8 x nr_zones, the
# max_append_bytes rule, nr_zones = ceil(size / zone_size), conventional
# zones below nr_zones, capacity within the zone, no open limit without
# an active limit.  Images the series reads differently are still served
# by zqcow2, with warnings: earlier zqcow2 images (zonedmeta_size in whole
# clusters), a max_append_bytes the series refuses, an open limit alone.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires qemu-img qemu-io nbdkit jq /usr/bin/python3
plugin_ok
zqimg_ok
scratch_dir

series () { /usr/bin/python3 "$_zq_testdir/zq_qemu_series.py" "$@"; }

# geometry IMG: "nr conv open active append zonedmeta_size" from info.
geometry ()
{
    "$ZQCOW2_IMG" info --output=json "$1" 2>/dev/null |
        jq -r '.zoned | [."nr-zones", ."conventional-zones",
                         ."max-open-zones", ."max-active-zones",
                         ."max-append-bytes", ."zonedmeta-size"]
                      | map(tostring) | join(" ")'
}

# created ROW OPTIONS SIZE EXPECTED-GEOMETRY: create, then the series'
# checks, zqcow2-img check and qemu-img check all pass, and the geometry
# is as expected.
created ()
{
    local row="$1" got
    rm -f "$row.qcow2"
    "$ZQCOW2_IMG" create -q -o "zone.mode=host-managed${2:+,$2}" \
        "$row.qcow2" "$3" || fail "$row: create -o $2 $3 failed"
    series check "$row.qcow2" ||
        fail "$row: QEMU's series would refuse the image create -o $2 wrote"
    echo "ok      $row: passes the series' open-time checks"
    got="$(geometry "$row.qcow2")"
    [ "$got" = "$4" ] ||
        fail "$row: geometry (nr conv open active append zonedmeta_size) is '$got', expected '$4'"
    zoned_check "$row" "$row.qcow2"
    qemu_check_exact "$row" "$row.qcow2"
}

K=1024
created defaults        ""                                      1G "4 0 0 0 65536 32"
created small-zones     zone.size=4K                            1M "256 0 0 0 3072 2048"
created tiny-zones      zone.size=1K,cluster_size=512           64K "64 0 0 0 0 512"
created conventional    zone.size=1M,zone.conventional_zones=3  8M "8 3 0 0 65536 64"
created capacity        zone.size=1M,zone.capacity=1536         4M "4 0 0 0 512 32"
created capacity-64k    zone.size=128K,zone.capacity=64K        1M "8 0 0 0 64512 64"
created open-only       zone.size=1M,zone.conventional_zones=2,zone.max_open_zones=3 \
                                                                16M "16 2 3 14 65536 128"
created limits          zone.size=1M,zone.max_open_zones=2,zone.max_active_zones=5,zone.max_append_bytes=128K \
                                                                8M "8 0 2 5 131072 64"
created short-last      zone.size=1M,zone.allow_short_last_zone=on,zone.capacity=512K \
                                                                3584K "4 0 0 0 65536 32"
created many-zones      zone.size=64K,cluster_size=4K,zone.conventional_zones=7 \
                                                                625M "10000 7 0 0 64512 80000"

# The checks can fail: an image as zqcow2 wrote them before (the table's
# whole clusters as zonedmeta_size) is refused by the series.
ext="$(zoned_ext_offset conventional.qcow2)"
cp conventional.qcow2 old.qcow2
poke_be old.qcow2 $(( ext + 40 )) 8 65536
if series check old.qcow2 >old.series; then
    fail "old: the series' checks pass zonedmeta_size 65536 for 8 zones"
fi
grep -q "zonedmeta_size 65536 is not 8 x nr_zones = 64" old.series ||
    fail "old: unexpected verdict: $(cat old.series)"
echo "ok      old: the series' checks refuse zonedmeta_size 65536 for 8 zones"

# zqcow2 still serves that image: a write at zone 3's pointer, a clean
# check, the zone report.
zq_nbdkit -- file=old.qcow2 --run '
    qemu-io -f raw -c "write -P 0x33 3M 4k" "$uri"' >/dev/null ||
    fail "old: writing zone 3 of an image with zonedmeta_size 65536 failed"
zone_report old.qcow2 >old.zones
expect_zone "old" old.zones 3 cl $(( 3 * 1024 * K + 4 * K ))
zoned_check "old" old.qcow2

# A max_append_bytes the series refuses: served, with a warning.
cp defaults.qcow2 append.qcow2
ext="$(zoned_ext_offset append.qcow2)"
poke_be append.qcow2 $(( ext + 36 )) 4 $(( 256 * 1024 * K ))
zq_nbdkit -- file=append.qcow2 --run '
    qemu-io -f raw -c "write -P 0x44 0 4k" "$uri"' >append.out 2>&1 ||
    { cat append.out >&2; fail "append: the image was not served"; }
grep -q "max_append_bytes 268435456 + 512 is not below zone_capacity 268435456: QEMU" append.out ||
    { cat append.out >&2; fail "append: no warning that QEMU refuses the image"; }
echo "ok      append: served, with a warning that QEMU's series refuses it"

# An open limit without an active limit: zqcow2 keeps its reading (an
# open limit), info and check say that QEMU reads it as none.
cp conventional.qcow2 open.qcow2
ext="$(zoned_ext_offset open.qcow2)"
poke_be open.qcow2 $(( ext + 32 )) 4 2
for cmd in info check; do
    "$ZQCOW2_IMG" "$cmd" open.qcow2 >open.out 2>open.err ||
        { cat open.out open.err >&2; fail "open: zqcow2-img $cmd failed"; }
    grep -q "max_open_zones 2 with max_active_zones 0: zqcow2 limits open zones to 2, QEMU's zoned qcow2 series reads this as no open limit" open.err ||
        { cat open.err >&2; fail "open: zqcow2-img $cmd does not warn"; }
    [ "$(grep -c "max_open_zones 2" open.err)" -eq 1 ] ||
        { cat open.err >&2; fail "open: zqcow2-img $cmd warns more than once"; }
    echo "ok      open: zqcow2-img $cmd warns once that QEMU reads the limit differently"
done
[ "$(geometry open.qcow2)" = "8 3 2 0 65536 64" ] ||
    fail "open: the geometry is not kept as found: $(geometry open.qcow2)"

echo "test-img-create-qemu: all rows passed"
