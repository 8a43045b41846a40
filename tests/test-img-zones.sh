#!/usr/bin/env bash
# zqcow2-img zones reports every zone (blkzone's layout, or JSON that an
# independent parser accepts), and zqcow2-img zone finish / reset / open /
# close change the image as the zone state machine says, durably: each
# report below is made by a new process reading the image afresh.  With
# the plugin, the round trips are repeated on a zone holding data, and
# qemu-io reads back what a reset must have released.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires /usr/bin/python3 qemu-io qemu-img
zqimg_ok
plugin_ok
scratch_dir

# zones_json IMG [ARGS...]: the JSON report, checked by python's parser.
zones_json ()
{
    local img="$1"
    shift
    "$ZQCOW2_IMG" zones --output=json "$@" "$img" >zones.json ||
        fail "zqcow2-img zones --output=json $* $img failed"
    /usr/bin/python3 -m json.tool <zones.json >/dev/null ||
        { cat zones.json >&2; fail "zones --output=json $* is not valid JSON"; }
}

# op_ok ROW OP ZONE / op_fails ROW OP ZONE PATTERN
op_ok ()
{
    "$ZQCOW2_IMG" zone "$2" img.qcow2 "$3" >op.out 2>&1 ||
        { cat op.out >&2; fail "$1: zone $2 img.qcow2 $3 failed"; }
}
op_fails ()
{
    local status=0
    "$ZQCOW2_IMG" zone "$2" img.qcow2 "$3" >op.out 2>&1 || status=$?
    [ "$status" -eq 1 ] ||
        { cat op.out >&2; fail "$1: zone $2 img.qcow2 $3 exited $status, expected 1"; }
    grep -qE -- "$4" op.out ||
        { cat op.out >&2; fail "$1: the message does not match /$4/"; }
    echo "ok      $1: zone $2 $3 refused: $(head -1 op.out)"
}

M=$(( 1 << 20 ))
# 8 zones of 1 MiB with 768 KiB capacity; zone 0 conventional.
zoned_create img.qcow2 8M zone.size=1M,zone.capacity=768K,zone.conventional_zones=1,zone.max_open_zones=2

# A fresh image: zone 0 not write pointer, the others empty.
zone_report img.qcow2 >r0
[ "$(wc -l <r0)" -eq 8 ] || { cat r0 >&2; fail "r0: the report has $(wc -l <r0) zones, not 8"; }
# A conventional zone is writable to its end: capacity = length, as Linux
# reports conventional zones.
expect_zone r0 r0 0 nw 0 $M $M
for z in 1 2 3 4 5 6 7; do
    expect_zone r0 r0 $z em $(( z * M )) $(( 768 * 1024 )) $M
done
zones_json img.qcow2
[ "$(jq -r '.zones[1] | "\(.condition) \(.type)"' zones.json)" = \
  "empty seq-write-required" ] || fail "r0: zone 1 is not an empty sequential zone in JSON"
[ "$(jq -r '.zones[0] | "\(.condition) \(.type)"' zones.json)" = \
  "not-write-pointer conventional" ] || fail "r0: zone 0 is not conventional in JSON"

# The human report: blkzone's layout, one line per zone, values in bytes.
"$ZQCOW2_IMG" zones img.qcow2 >human.txt || fail "zones (human) failed"
# (the conventional zone's capacity is its length).
[ "$(grep -cE '^  start: 0x[0-9a-f]+, len 0x00100000, cap 0x00(0c|10)0000, wptr 0x[0-9a-f]+, zcond: ?[0-9]+\([a-z]{2}\) \[type: [12]\((CONVENTIONAL|SEQ_WRITE_REQUIRED)\)\]$' human.txt)" -eq 8 ] ||
    { cat human.txt >&2; fail "the human report is not 8 blkzone-like lines"; }
grep -q '^  start: 0x0000300000, .* zcond: 1(em) \[type: 2(SEQ_WRITE_REQUIRED)\]$' human.txt ||
    { cat human.txt >&2; fail "zone 3's line is wrong"; }

# --offset (bytes: from the zone holding that byte) and --count (zones).
zones_json img.qcow2 --offset 2M --count 2
[ "$(jq -c '[.zones[].zone]' zones.json)" = "[2,3]" ] ||
    { cat zones.json >&2; fail "--offset 2M --count 2 did not report zones 2 and 3"; }
zones_json img.qcow2 --offset 3000000
[ "$(jq -c '[.zones[].zone]' zones.json)" = "[2,3,4,5,6,7]" ] ||
    { cat zones.json >&2; fail "--offset 3000000 did not start at zone 2"; }
"$ZQCOW2_IMG" zones --offset 7M --count 100 img.qcow2 >human.txt ||
    fail "--offset 7M --count 100 failed"
[ "$(wc -l <human.txt)" -eq 1 ] || fail "--offset 7M --count 100 did not report the last zone alone"
for bad in "--offset 8M" "--count 0" "--offset -1" "--count x" "--output=xml"; do
    status=0
    "$ZQCOW2_IMG" zones $bad img.qcow2 >out 2>&1 || status=$?
    [ "$status" -eq 1 ] || { cat out >&2; fail "zones $bad exited $status, expected 1"; }
done
echo "ok      zones --offset and --count select the zones; bad values are refused"

# finish, finish again (a full zone stays full), reset, reset again.
op_ok f1 finish 3
zone_report img.qcow2 >r1
expect_zone r1 r1 3 fu $(( 4 * M ))
expect_zone r1 r1 4 em $(( 4 * M ))
zoned_check r1 img.qcow2
op_ok f2 finish 3
zone_report img.qcow2 >r2
expect_zone r2 r2 3 fu $(( 4 * M ))
op_ok f3 reset 3
zone_report img.qcow2 >r3
expect_zone r3 r3 3 em $(( 3 * M ))
op_ok f4 reset 3
zone_report img.qcow2 >r4
expect_zone r4 r4 3 em $(( 3 * M ))
zoned_check r4 img.qcow2

# Several zones full: info counts them.
op_ok f5 finish 5
op_ok f6 finish 7
"$ZQCOW2_IMG" info --output=json img.qcow2 >info.json || fail "info failed"
/usr/bin/python3 -m json.tool <info.json >/dev/null || fail "info --output=json is not valid JSON"
[ "$(jq -c '.zoned."zones-by-condition"' info.json)" = \
  '{"not-write-pointer":1,"empty":5,"full":2}' ] ||
    { cat info.json >&2; fail "info counts the wrong conditions"; }
echo "ok      info counts zones by condition"

# open and close last as long as the process: the zone is empty again.
op_ok o1 open 2
op_ok o2 close 2
op_ok o3 close 4
zone_report img.qcow2 >r5
expect_zone r5 r5 2 em $(( 2 * M ))
expect_zone r5 r5 4 em $(( 4 * M ))
expect_zone r5 r5 5 fu $(( 6 * M ))

# What the state machine refuses.
op_fails e1 finish 0 'zone 0 .*conventional'
op_fails e2 reset 0 'zone 0 .*conventional'
op_fails e3 open 0 'zone 0 .*conventional'
op_fails e4 reset 8 'zone 8 does not exist \(the image has 8 zones, 0 to 7\)'
"$ZQCOW2_IMG" create -q plain.qcow2 8M
status=0
"$ZQCOW2_IMG" zone reset plain.qcow2 1 >out 2>&1 || status=$?
[ "$status" -eq 1 ] && grep -q 'plain.qcow2: not a zoned image' out ||
    { cat out >&2; fail "zone reset on a plain image: exit $status"; }
status=0
"$ZQCOW2_IMG" zones plain.qcow2 >out 2>&1 || status=$?
[ "$status" -eq 1 ] && grep -q 'plain.qcow2: not a zoned image' out ||
    { cat out >&2; fail "zones on a plain image: exit $status"; }
echo "ok      zone commands refuse plain images"
zoned_check end img.qcow2

# --- with data, through the plugin -----------------------------------

zq_nbdkit -- file=img.qcow2 --run '
    qemu-io -f raw -c "write -P 0x11 0 64k" \
                   -c "write -P 0x5a 2M 128k" -c "write -P 0x5b 2176k 64k" \
                   -c "flush" "$uri" >/dev/null
' || fail "writing through the plugin failed"
zone_report img.qcow2 >d1
expect_zone d1 d1 2 cl $(( 2 * M + 192 * 1024 ))
zoned_check d1 img.qcow2
qemu_check d1 img.qcow2

op_ok d2 finish 2
zone_report img.qcow2 >d2
expect_zone d2 d2 2 fu $(( 3 * M ))
zoned_check d2 img.qcow2

op_ok d3 reset 2
zone_report img.qcow2 >d3
expect_zone d3 d3 2 em $(( 2 * M ))
zoned_check d3 img.qcow2
qemu_check d3 img.qcow2
# The zone's data is gone, the conventional zone's is not.
qemu_view img.qcow2 view.qcow2
qemu-io -f qcow2 -c 'read -P 0 2M 1M' -c 'read -P 0x11 0 64k' view.qcow2 \
    >read.out 2>&1 || { cat read.out >&2; fail "d3: data read back is wrong after the reset"; }
echo "ok      d3: the reset zone reads as zeroes, the conventional zone keeps its data"
