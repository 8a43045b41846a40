#!/usr/bin/env bash
# An in-order stream of writes into a zone, with up to 128 requests in
# flight on each of several connections, sent latest offset first or
# shuffled as the Linux kernel's client may send it: every write succeeds
# on zqcow2-nbd, and on nbdkit run with enough threads (-t); the data is
# what the same stream wrote through nbdkit's file plugin into a raw file
# (compared by qemu-img), and the write pointer ends where the stream
# does.  With too few nbdkit threads the writes time out, and the plugin
# says once how to fix it.  Under zone-boundary=split, a shuffled stream
# whose writes straddle zone boundaries succeeds on both front ends.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires zq-plugtest qemu-img nbdkit
plugin_ok
zqimg_ok
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
requires_run nbdkit file --version
scratch_dir

MiB=$((1 << 20))
ZONES=zone.size=16M,zone.conventional_zones=1
ZS=$((16 * MiB))

# The streams, one per zone: "ZONE ARGS", each ARGS writing 8 MiB from
# the zone's start.
streams=(
    "1 --connections 4 --depth 128 --bs 16k --order shuffle --seed 3 --tag 5"
    "2 --connections 1 --depth 128 --bs 64k --order reverse --tag 6"
    "3 --connections 2 --depth 128 --bs 32k --order shuffle --seed 9 --tag 7"
    "4 --connections 2 --depth 64 --bs 64k --order reverse --zero"
)

# run_streams SERVER-COMMAND...: runs every stream through the server
# command (a captive server taking --run), each a new server.
run_streams ()
{
    local s zone args
    for s in "${streams[@]}"; do
        read -r zone args <<<"$s"
        "$@" --run "zq-plugtest $args \"\$uri\" $((zone * ZS))" ||
            fail "stream into zone $zone ($args) through $1: writes failed"
    done
}

# The reference: the same streams into a raw file, through nbdkit's own
# file plugin (no zones, no waiting).
truncate -s 96M ref.raw
run_streams nbdkit -U - file ref.raw

# check_result ROW IMG: data as in the reference, pointers at the ends.
check_result ()
{
    local zone
    zone_report "$2" > zones.txt
    for zone in 1 2 3 4; do
        expect_zone "$1" zones.txt $zone cl $((zone * ZS + 8 * MiB))
    done
    expect_zone "$1" zones.txt 5 em $((5 * ZS))
    zoned_check "$1" "$2"
    qemu_view "$2" view.qcow2
    qemu-img compare -q -f qcow2 -F raw view.qcow2 ref.raw ||
        fail "$1: the data differs from the reference written to ref.raw"
    echo "ok      $1: the data matches the reference"
}

# zqcow2-nbd: parked writes hold no worker; 128 slots per connection.
zoned_create img.qcow2 96M "$ZONES"
run_streams "$ZQCOW2_NBD" img.qcow2
check_result "zqcow2-nbd" img.qcow2

# nbdkit with a thread per request in flight.
zoned_create img.qcow2 96M "$ZONES"
run_streams nbdkit -t 128 -U - "$PLUGIN" file=img.qcow2
check_result "nbdkit -t 128" img.qcow2

# nbdkit with too few threads: all four hold writes ahead of the pointer
# and the write at the pointer is not read until they time out (after the
# engine's wait of five seconds).  The fix is logged once, however many
# writes fail.
zoned_create img.qcow2 96M "$ZONES"
status=0
nbdkit -t 4 -U - "$PLUGIN" file=img.qcow2 \
    --run "zq-plugtest --connections 1 --depth 8 --bs 16k \"\$uri\" $ZS" \
    2>starved.log || status=$?
[ "$status" -eq 1 ] ||
    fail "nbdkit -t 4: 8 writes in reverse order should fail some (exit 1), zq-plugtest exited $status"
warnings="$(grep -c 'Run nbdkit with -t N' starved.log || true)"
[ "$warnings" -eq 1 ] || {
    cat starved.log >&2
    fail "nbdkit -t 4: expected the thread-count warning once, got it $warnings times"
}
grep -q 'lower /sys/block/nbdX/queue/nr_requests' starved.log ||
    fail "nbdkit -t 4: the warning does not mention nr_requests"
echo "ok      nbdkit -t 4: writes time out, and the fix is logged once"

# Under zone-boundary=split, a stream of 24 KiB writes over 1 MiB zones,
# shuffled over two connections: the writes that straddle a boundary
# park like the others, and the stream fills zones 1-4 and part of 5.
stream="--connections 2 --depth 100 --bs 24k --order shuffle --seed 4 --tag 9"
rm -f ref.raw
truncate -s 16M ref.raw
nbdkit -U - file ref.raw --run "zq-plugtest $stream \"\$uri\" $MiB" ||
    fail "the straddling stream into the reference failed"
for server in nbdkit zqcow2-nbd; do
    zoned_create img.qcow2 16M zone.size=1M,zone.conventional_zones=1
    case $server in
        nbdkit) cmd=(nbdkit -t 128 -U - "$PLUGIN" file=img.qcow2 zone-boundary=split) ;;
        zqcow2-nbd) cmd=("$ZQCOW2_NBD" --zone-boundary split img.qcow2) ;;
    esac
    "${cmd[@]}" --run "zq-plugtest $stream \"\$uri\" $MiB" ||
        fail "$server, split: the straddling stream failed"
    zone_report img.qcow2 > zones.txt
    for zone in 1 2 3 4; do
        expect_zone "$server, split" zones.txt $zone fu $(((zone + 1) * MiB))
    done
    expect_zone "$server, split" zones.txt 5 cl $((5 * MiB + 200 * 24 * 1024 - 4 * MiB))
    zoned_check "$server, split" img.qcow2
    qemu_view img.qcow2 view.qcow2
    qemu-img compare -q -f qcow2 -F raw view.qcow2 ref.raw ||
        fail "$server, split: the data differs from the reference"
    echo "ok      $server, split: the data matches the reference"
done
