#!/usr/bin/env bash
# A zoned image whose guest data lives in an external data file, with
# data_file_raw: zone writes land in the data file, a zone reset makes the
# zone read as zeroes there too, and after the run the data file alone
# equals the disk the plugin serves.  zqcow2-img create makes the image
# and its data file (-o data_file=img.data,data_file_raw=on).

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires zq-zonetest qemu-img nbdcopy cmp
plugin_ok
zqimg_ok
scratch_dir

zoned_create img.qcow2 8M \
    zone.size=1M,zone.capacity=1M,zone.conventional_zones=1,zone.max_open_zones=3,zone.max_active_zones=5,data_file=img.data,data_file_raw=on
(( $(peek_be img.qcow2 72 8) & 4 )) ||
    fail "zqcow2-img create left incompatible bit 2 (data file) clear"
[ "$(stat -c %s img.data)" = 8388608 ] ||
    fail "zqcow2-img create did not make an 8M data file img.data"
size_before="$(stat -c %s img.qcow2)"

zq_nbdkit -- file=img.qcow2 --run 'zq-zonetest script "$uri"' <<'EOF' ||
set zs 1M
row zones in a data file
write 1000 3000 tag=9 => ok
write z1 100k tag=1 => ok
write z2 zs tag=2 => ok
write z3 64k tag=3 fua => ok
zero z3+64k zs-64k => ok
write z5 200k tag=5 => ok
trim z5 zs => ok
write z5 64k tag=6 => ok
flush => ok
read z1 100k => tag=1
read z2 zs => tag=2
read z5 64k => tag=6
read z5+64k zs-64k => zero
EOF
    fail "the zone script failed (see above)"

zone_report img.qcow2 > zones
r="after the run"
expect_zone "$r" zones 1 cl $(( (1 << 20) + 100 * 1024 ))
expect_zone "$r" zones 2 fu $(( 3 << 20 ))
expect_zone "$r" zones 3 fu $(( 4 << 20 ))
zoned_check "$r" img.qcow2
qemu_check "$r" img.qcow2

(( $(peek_be img.qcow2 88 8) & 2 )) ||
    fail "autoclear bit 1 (data_file_raw) was cleared"
size_after="$(stat -c %s img.qcow2)"
(( size_after - size_before < (1 << 20) )) ||
    fail "the image grew by $(( size_after - size_before )) bytes: data went into it"

zq_nbdkit -r -- file=img.qcow2 --run 'nbdcopy "$uri" disk.raw' ||
    fail "could not read the disk back"
truncate -s 8M img.data
cmp img.data disk.raw || fail "the raw data file is not the served disk"
echo "ok      the data file equals the served disk"
