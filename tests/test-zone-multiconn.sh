#!/usr/bin/env bash
# Four connections write four zones at the same time, each sequentially
# from its zone's start: every zone ends with exactly its own data and its
# write pointer where its writer stopped.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires zq-zonetest
plugin_ok
zqimg_ok
scratch_dir

MiB=$((1 << 20))

zoned_create img.qcow2 32M \
    zone.size=4M,zone.capacity=4M,zone.conventional_zones=1,zone.max_open_zones=4,zone.max_active_zones=4

# Four threads, one connection each, 3 MiB of 16 KiB writes per zone:
# zones 1, 2, 3 and 5 (4 stays empty between them).
zq_nbdkit -- file=img.qcow2 --run \
    'zq-zonetest parallel --zone-size 4M --length 3M --bs 16k --tag 7 "$uri" 1 2 3 5' ||
    fail "the parallel writers failed (see above)"

zone_report img.qcow2 > zones.txt
r="four connections"
expect_zone "$r" zones.txt 1 cl $((4 * MiB + 3 * MiB))
expect_zone "$r" zones.txt 2 cl $((8 * MiB + 3 * MiB))
expect_zone "$r" zones.txt 3 cl $((12 * MiB + 3 * MiB))
expect_zone "$r" zones.txt 4 em $((16 * MiB))
expect_zone "$r" zones.txt 5 cl $((20 * MiB + 3 * MiB))
expect_zone "$r" zones.txt 6 em $((24 * MiB))
zoned_check "$r" img.qcow2

# A new server reads every zone back: the data, zeroes after the pointer.
zq_nbdkit -r -- file=img.qcow2 --run 'zq-zonetest script "$uri"' <<'SCRIPT' ||
set zs 4M
row four connections: the data of every zone, read after a restart
read 0 zs => zero
read z1 3M => tag=7
read z1+3M 1M => zero
read z2 3M => tag=7
read z2+3M 1M => zero
read z3 3M => tag=7
read z3+3M 1M => zero
read z4 zs => zero
read z5 3M => tag=7
read z5+3M 1M => zero
read z6 2*zs => zero
SCRIPT
    fail "the data read back is wrong (see above)"
