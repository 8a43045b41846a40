#!/usr/bin/env bash
# zqcow2-nbd publishes qemu:zone-state on zoned images as nbd-zones.md
# specifies: the spec's own example comes out line for line; a map decoded
# by the spec's rules rebuilds the zone report that zqcow2-img reads from
# the file (conventional zones, capacity below the zone size, a short last
# zone, closed and full zones); injected offline and read-only zones show
# their conditions; zones of 8 GiB work; the context is listed on an empty
# query and on "qemu:"; REQ_ONE gets one extent per context, ending at the
# next write pointer or capacity boundary.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires qemu-io nbdinfo awk jq /usr/bin/python3
requires_run /usr/bin/python3 -c 'import nbd'
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
zqimg_ok
scratch_dir

# zone_map IMG [SERVER-OPTIONS...]: nbdinfo --map=qemu:zone-state, as
# "offset length status" lines.
zone_map ()
{
    local img="$1"; shift
    "$ZQCOW2_NBD" -r "$@" --run 'nbdinfo --map=qemu:zone-state "$uri"' \
        "$img" | awk '{ print $1, $2, $3 }'
}

# decode_map SIZE: rebuild "zone start length capacity wp cond type" from a
# zone_map by nbd-zones.md's rules, checking on the way that no extent
# crosses a zone, that ZONE_ODD matches the zone, that reserved bits are
# clear and that a zone's WRITTEN, plain and BEYOND_CAPACITY extents come
# in that order.  A conventional zone's capacity prints as "-": the
# context does not carry it.
decode_map ()
{
    awk -v size="$1" '
      function flush_zone() {
        if (!have) return
        if (total != len) bad("zone " z ": extents cover " total " of " len " bytes")
        if (type == 1) { cap = "-"; wp = zstart }
        else { cap = len - beyond; wp = (cond == 14) ? zstart + len : zstart + written }
        printf "%d %.0f %.0f %s %.0f %d %d\n", z, zstart, len, cap, wp, cond, type
        have = 0
      }
      function bad(msg) { print "bad map: " msg > "/dev/stderr"; err = 1 }
      {
        off = $1 + 0; n = $2 + 0; st = $3 + 0
        shift = int(st / 65536) % 64; zsize = 2 ^ shift
        if (int(st / 65536) >= 64 || int(st / 2048) % 32 != 0)
          bad("reserved bits set in " st " at " off)
        zone = int(off / zsize); start = zone * zsize
        end = start + zsize; if (end > size) end = size
        if (off + n > end) bad("extent at " off " crosses the end of zone " zone)
        odd = int(st / 1024) % 2
        if (odd != zone % 2) bad("ZONE_ODD is " odd " in zone " zone)
        flags = int(st / 256) % 4     # 1 WRITTEN, 2 BEYOND_CAPACITY
        rank = (flags == 1) ? 0 : (flags == 0) ? 1 : (flags == 2) ? 2 : 9
        if (rank == 9) bad("WRITTEN and BEYOND_CAPACITY together at " off)
        if (!have || zone != z) {
          flush_zone()
          z = zone; zstart = start; len = end - start; have = 1
          total = written = beyond = 0; last_rank = 0
          cond = st % 16; type = int(st / 16) % 16
        }
        if (st % 16 != cond || int(st / 16) % 16 != type)
          bad("zone " zone " changes condition or type at " off)
        if (rank < last_rank) bad("zone " zone ": extents out of order at " off)
        last_rank = rank; total += n
        if (flags == 1) written += n
        if (flags == 2) beyond += n
      }
      END { flush_zone(); exit err }'
}

# tool_report IMG: the same columns from zqcow2-img's JSON zone report.
tool_report ()
{
    "$ZQCOW2_IMG" zones --output=json "$1" | jq -r '.zones[] |
      "\(.zone) \(.start) \(.length) " +
      (if .["type-code"] == 1 then "-" else "\(.capacity)" end) +
      " \(.["write-pointer"]) \(.["condition-code"]) \(.["type-code"])"'
}

# 1. The example of nbd-zones.md: two 1 MiB zones, zone 0 written 4 KiB
# (implicitly open, so within the one session), zone 1 full.
zoned_create example.qcow2 2M zone.size=1M
"$ZQCOW2_NBD" --run '
    qemu-io -f raw -c "write -P 0x55 0 4k" -c "write -P 0x66 1M 1M" \
        "$uri" >/dev/null &&
    nbdinfo --map=qemu:zone-state "$uri"' example.qcow2 |
    awk '{ print $1, $2, $3 }' >example.map ||
    fail "example: serving or mapping failed"
cat >example.expected <<EOF
0 4096 1311010
4096 1044480 1310754
1048576 1048576 1312046
EOF
cmp -s example.expected example.map ||
    { echo "expected:" >&2; cat example.expected >&2
      echo "got:" >&2; cat example.map >&2
      fail "example: the map is not the spec's example"; }
echo "ok      example: the three lines of nbd-zones.md"

# 2. Geometry and states: zone 0 conventional, capacity 768K of 1M, a
# short last zone of 512K; zone 1 closed, 2 finished, 3 empty, 4 filled
# to capacity, 5 (short) closed.
zoned_create mix.qcow2 5767168 \
    zone.size=1M,zone.capacity=768K,zone.conventional_zones=1,zone.allow_short_last_zone=on
"$ZQCOW2_NBD" --run '
    qemu-io -f raw -c "write -P 0x01 512k 4k" -c "write -P 0x02 1M 64k" \
        -c "write -z 2M 768k" -c "write -P 0x04 4M 768k" \
        -c "write -P 0x05 5M 4k" "$uri" >/dev/null' mix.qcow2 ||
    fail "mix: writing through zqcow2-nbd failed"
zone_map mix.qcow2 >mix.map || fail "mix: mapping failed"
decode_map 5767168 <mix.map >mix.decoded ||
    { cat mix.map >&2; fail "mix: the map breaks the rules above"; }
tool_report mix.qcow2 >mix.report || fail "mix: zqcow2-img zones failed"
cmp -s mix.report mix.decoded ||
    { echo "zqcow2-img zones:" >&2; cat mix.report >&2
      echo "decoded from qemu:zone-state:" >&2; cat mix.decoded >&2
      echo "map:" >&2; cat mix.map >&2
      fail "mix: the map does not rebuild the zone report"; }
echo "ok      mix: conventional, capacity < size, short last zone"

# 3. Injected faults show as conditions 0xF (offline) and 0xD (read-only).
zone_map mix.qcow2 --offline-zones 3 --readonly-zones 4 >faults.map ||
    fail "faults: mapping failed"
decode_map 5767168 <faults.map >faults.decoded ||
    { cat faults.map >&2; fail "faults: the map breaks the rules above"; }
awk '$1 == 3 && $6 == 15 { o = 1 } $1 == 4 && $6 == 13 { r = 1 }
     END { exit !(o && r) }' faults.decoded ||
    { cat faults.decoded >&2; fail "faults: zone 3 is not offline or zone 4 not read-only"; }
echo "ok      faults: offline and read-only zones"

# 4. Zones of 8 GiB: extents longer than a descriptor can hold.
zoned_create big.qcow2 16G zone.size=8G
"$ZQCOW2_NBD" --run '
    qemu-io -f raw -c "write -P 0x07 0 4k" "$uri" >/dev/null &&
    nbdinfo --map=qemu:zone-state "$uri"' big.qcow2 |
    awk '{ print $1, $2, $3 }' >big.map || fail "big: mapping failed"
cat >big.expected <<EOF
0 4096 $(( 33 << 16 | 0x122 ))
4096 8589930496 $(( 33 << 16 | 0x022 ))
8589934592 8589934592 $(( 33 << 16 | 0x421 ))
EOF
cmp -s big.expected big.map ||
    { echo "expected:" >&2; cat big.expected >&2
      echo "got:" >&2; cat big.map >&2; fail "big: wrong map"; }
echo "ok      big: 8 GiB zones"

# 5. Listing on a zoned image, and REQ_ONE with both contexts.
"$ZQCOW2_NBD" -r --run '/usr/bin/python3 - "$uri" <<EOF
import nbd, sys
import zq_meta
uri = sys.argv[1]

def listed(*queries):
    return sorted(zq_meta.listed(uri, *queries))

QEMU = ["qemu:allocation-depth", "qemu:joint-allocation", "qemu:zone-state"]
for queries, expected in (((), ["base:allocation"] + QEMU),
                          (("qemu:",), QEMU),
                          (("qemu:zone-state",), ["qemu:zone-state"]),
                          (("base:",), ["base:allocation"])):
    got = listed(*queries)
    if got != expected:
        sys.exit("listing %r: expected %r, got %r" % (queries, expected, got))

h = nbd.NBD()
h.add_meta_context("base:allocation")
h.add_meta_context("qemu:zone-state")
h.connect_uri(uri)
M = 1 << 20
# offset, count, expected zone-state extent length: zone 1 is closed with
# 64K written and capacity 768K.
for offset, count, length in ((M + 32768, 2 * M, 32768),
                              (M + 700 * 1024, 2 * M, 68 * 1024),
                              (M + 900 * 1024, 2 * M, 124 * 1024),
                              (M + 900 * 1024, 4096, 4096),
                              (0, 5 * M, M)):
    seen = {}
    h.block_status(count, offset,
                   lambda ctx, off, entries, err:
                       seen.setdefault(ctx, []).append((off, entries)) or 0,
                   nbd.CMD_FLAG_REQ_ONE)
    if sorted(seen) != ["base:allocation", "qemu:zone-state"] or \
       any(len(v) != 1 or v[0][0] != offset or len(v[0][1]) != 2
           for v in seen.values()):
        sys.exit("REQ_ONE at %d: %r" % (offset, seen))
    if seen["qemu:zone-state"][0][1][0] != length:
        sys.exit("REQ_ONE at %d: zone-state extent %r, expected length %d"
                 % (offset, seen["qemu:zone-state"], length))
EOF
' mix.qcow2 || fail "listing or REQ_ONE, see above"
echo "ok      listing and REQ_ONE"
