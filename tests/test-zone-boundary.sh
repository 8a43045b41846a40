#!/usr/bin/env bash
# Writes across a zone boundary, through both front ends: refused by
# default, as ZBC refuses them; with zone-boundary=split (nbdkit) or
# --zone-boundary split (zqcow2-nbd) accepted when each piece is valid in
# its own zone, and applied as those pieces; refused with nothing changed
# when a piece is not.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires zq-zonetest
plugin_ok
zqimg_ok
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
scratch_dir

MiB=$((1 << 20))
KiB=1024

# run_script NAME SERVER-COMMAND...: the script on stdin through a captive
# server started by the command, on a new image.
run_script ()
{
    local name="$1"; shift
    zoned_create img.qcow2 8M zone.size=1M,zone.conventional_zones=1
    "$@" --run 'zq-zonetest script "$uri"' ||
        fail "$name: a request had the wrong outcome (see above)"
}

for server in nbdkit zqcow2-nbd; do
    case $server in
        nbdkit) default=(nbdkit -U - "$PLUGIN" file=img.qcow2)
                split=(nbdkit -U - "$PLUGIN" file=img.qcow2 zone-boundary=split) ;;
        zqcow2-nbd) default=("$ZQCOW2_NBD" img.qcow2)
                    split=("$ZQCOW2_NBD" --zone-boundary split img.qcow2) ;;
    esac

    run_script "$server, default" "${default[@]}" <<'SCRIPT'
set zs 1M
row default: a write across a zone boundary is refused
write z1 zs-8k tag=1 => ok
write z2-8k 16k tag=2 => EIO
read z2-8k 16k => zero
zero z2-8k 16k => EIO
row default: from a conventional zone into a sequential one too
write z1-4k 8k tag=2 => EIO
SCRIPT
    zone_report img.qcow2 > zones.txt
    expect_zone "$server, default" zones.txt 1 cl $((2 * MiB - 8 * KiB))
    expect_zone "$server, default" zones.txt 2 em $((2 * MiB))

    run_script "$server, split" "${split[@]}" <<'SCRIPT'
set zs 1M
row split: from the last conventional zone into an empty sequential one
write z1-4k 8k tag=1 => ok
read z1-4k 8k => tag=1
row split: the first piece behind its zone's write pointer: refused
write z1 zs+4k tag=4 => EIO
read z1-4k 8k => tag=1
read z1+4k zs => zero
row split: each piece valid: applied as two pieces
write z1+4k zs-12k tag=1 => ok
write z2-8k 16k tag=2 => ok
read z1-4k zs-4k => tag=1
read z2-8k 16k => tag=2
read z2+8k zs-8k => zero
row split: the next piece not at its zone's write pointer: refused
write z2+8k zs-16k tag=3 => ok
write z3 4k tag=3 => ok
write z3-8k 16k tag=4 => EIO
read z3-8k 8k => zero
read z3 4k => tag=3
read z3+4k 4k => zero
row split: write zeroes across three zones, from zone 3's pointer
zero z3+4k 2*zs => ok
read z3+4k 2*zs => zero
row split: a piece in a full zone: refused
write z5-8k 16k tag=5 => EIO
read z5+4k 8k => zero
SCRIPT
    zone_report img.qcow2 > zones.txt
    r="$server, split"
    expect_zone "$r" zones.txt 1 fu $((2 * MiB))
    expect_zone "$r" zones.txt 2 cl $((3 * MiB - 8 * KiB))
    expect_zone "$r" zones.txt 3 fu $((4 * MiB))
    expect_zone "$r" zones.txt 4 fu $((5 * MiB))
    expect_zone "$r" zones.txt 5 cl $((5 * MiB + 4 * KiB))
    zoned_check "$r" img.qcow2
done
