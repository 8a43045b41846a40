#!/usr/bin/env bash
# fio writes whole zones sequentially with 16 requests of 1 MiB in flight
# (nbdkit runs 16 threads, so they reach the engine out of order), then
# reads everything back and checks crc32c: pipelined sequential writes
# must all land, and the zones end FULL.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires fio
plugin_ok
zqimg_ok
scratch_dir
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd engine"

MiB=$((1 << 20))
zone_size=$((8 * MiB))
zoned_create img.qcow2 80M \
    zone.size=8M,zone.capacity=8M,zone.conventional_zones=0,zone.max_open_zones=4,zone.max_active_zones=4

# Zones 0-5 (48 MiB) from the start of zone 0.  fio's zonemode=zbd needs a
# zoned block device, which an NBD export is not: plain sequential writes
# over whole zones obey the write pointer rules all the same.  end_fsync
# sends a FLUSH at the end (what a shutdown without one keeps is
# test-zone-persistence.sh's subject).
zq_nbdkit -- file=img.qcow2 --run '
    fio --name=zoned-seq --ioengine=nbd --uri="$uri" \
        --rw=write --bs=1M --iodepth=16 --offset=0 --size=48M \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --end_fsync=1 \
        --output-format=normal' > fio.out 2>&1 || {
    cat fio.out >&2
    fail "fio failed"
}
cat fio.out
grep -q 'err= 0' fio.out || fail "fio reports errors (see above)"
if grep -qi 'verify.*bad\|bad magic\|crc32c.*wanted' fio.out; then
    fail "fio verify found bad data"
fi

zone_report img.qcow2 > zones.txt
r="fio wrote zones 0-5"
for z in 0 1 2 3 4 5; do
    expect_zone "$r" zones.txt $z fu $(( (z + 1) * zone_size ))
done
for z in 6 7 8 9; do
    expect_zone "$r" zones.txt $z em $(( z * zone_size ))
done
zoned_check "$r" img.qcow2
