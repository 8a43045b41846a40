#!/usr/bin/env bash
# zqcow2-nbd's qemu:allocation-depth and qemu:joint-allocation on a
# three-layer chain (raw base; qcow2 middle with zero clusters, discards
# and clusters discarded before the base was attached; qcow2 top with
# extended L2: data, zero and unallocated subclusters, a compressed
# cluster), on a top image keeping its data in an external data file and
# on one preallocated with preallocation=metadata:
# the depth map equals qemu-nbd -A's byte for byte; joint-allocation equals
# base:allocation and allocation-depth combined, byte for byte; one
# BLOCK_STATUS with all three contexts gets one chunk each, and under
# REQ_ONE one extent each, none spanning a change of its answer.  On a
# zoned image (which cannot have a backing file) all four contexts are
# listed, and bytes past a write pointer have depth 0.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires qemu-img qemu-io qemu-nbd nbdinfo awk /usr/bin/python3
requires_run /usr/bin/python3 -c 'import nbd'
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
zqimg_ok
scratch_dir

M=1048576
# Base: 8 MiB raw, 6 MiB of data with a hole punched into it.
qemu-img create -q -f raw base.raw 8M
qemu-io -f raw -c 'write -P 0x01 0 6M' -c 'write -z 1M 1M' base.raw >/dev/null

# Middle: 10 MiB, longer than the base.  Clusters discarded while it had
# no backing file are unallocated again once the base is attached; those
# discarded with the base in place become zero clusters.
qemu-img create -q -f qcow2 -o cluster_size=64k mid.qcow2 10M
qemu-io -f qcow2 -c 'write -P 0x02 5M 2M' -c 'discard 5632k 256k' \
    mid.qcow2 >/dev/null
qemu-img rebase -q -u -f qcow2 -b base.raw -F raw mid.qcow2
qemu-io -f qcow2 \
    -c 'write -P 0x12 2M 1M' -c 'discard 2560k 128k' \
    -c 'write -z 4M 512k' -c 'write -P 0x22 9M 256k' \
    mid.qcow2 >/dev/null

# Top: 12 MiB with extended L2 (2 KiB subclusters of 64 KiB clusters).
qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=on \
    -b mid.qcow2 -F qcow2 top.qcow2 12M
qemu-io -f qcow2 \
    -c 'write -P 0x03 0 4k' -c 'write -z 64k 8k' -c 'write -P 0x03 70k 2k' \
    -c 'write -P 0x13 2100k 6k' -c 'write -z 4200k 2k' \
    -c 'write -c -P 0x23 6M 64k' -c 'write -P 0x33 9M 32k' \
    -c 'write -z 11M 64k' -c 'discard 5M 64k' \
    top.qcow2 >/dev/null

# The same top, its data in an external data file.
qemu-img create -q -f qcow2 -o data_file=topd.data,extended_l2=on \
    -b mid.qcow2 -F qcow2 topd.qcow2 12M
qemu-io -f qcow2 -c 'write -P 0x04 1M 64k' -c 'write -z 3M 64k' \
    -c 'write -P 0x04 8260k 4k' topd.qcow2 >/dev/null

# A top preallocated with preallocation=metadata: every cluster has a
# host cluster, and the subclusters not written still read from below.
qemu-img create -q -f qcow2 -o preallocation=metadata,extended_l2=on \
    -b mid.qcow2 -F qcow2 topp.qcow2 12M
qemu-io -f qcow2 -c 'write -P 0x05 1M 64k' -c 'write -P 0x05 7M 6k' \
    topp.qcow2 >/dev/null

# map CONTEXT IMG: the map zqcow2-nbd gives, canonical.
map ()
{
    "$ZQCOW2_NBD" -r --run "nbdinfo --map=$1 \"\$uri\"" "$2" >"$2.$1.raw" ||
        fail "nbdinfo --map=$1 through zqcow2-nbd on $2 failed"
    map_canon <"$2.$1.raw" || fail "zqcow2-nbd's $1 map of $2 has gaps"
}

# qemu_depth_map IMG: qemu-nbd -A's qemu:allocation-depth map, canonical.
qemu_depth_map ()
{
    local sock="$PWD/qemu.sock" pid i
    rm -f "$sock"
    qemu-nbd -r -A -f qcow2 -k "$sock" "$1" &
    pid=$!
    for (( i = 0; i < 100; i++ )); do
        [ -S "$sock" ] && break
        sleep 0.1
    done
    nbdinfo --map=qemu:allocation-depth "nbd+unix:///?socket=$sock" \
        >"$1.qemu.raw" || { kill "$pid"; fail "qemu-nbd -A on $1 failed"; }
    kill "$pid" 2>/dev/null || true    # it ends with its one client
    wait "$pid" 2>/dev/null || true
    map_canon <"$1.qemu.raw" || fail "qemu-nbd's depth map of $1 has gaps"
}

# joint_expected BASE DEPTH: the two canonical maps combined by the
# context's definition (HOLE and ZERO from base:allocation, 4 for depth
# 1, 8 for depth 2 or more), as "offset length status" lines.
joint_expected ()
{
    /usr/bin/python3 - "$1" "$2" <<'EOF'
import sys

def runs(path):
    return [tuple(int(x) for x in line.split()) for line in open(path)]

a, d = runs(sys.argv[1]), runs(sys.argv[2])
i = j = 0
pos = a[0][0]
while i < len(a) and j < len(d):
    end = min(a[i][1], d[j][1])
    depth = d[j][2]
    print(pos, end - pos,
          a[i][2] | (4 if depth == 1 else 8 if depth >= 2 else 0))
    pos = end
    if a[i][1] == end:
        i += 1
    if d[j][1] == end:
        j += 1
EOF
}

for img in top.qcow2 topd.qcow2 topp.qcow2; do
    map qemu:allocation-depth "$img" >"$img.depth"
    qemu_depth_map "$img" >"$img.qdepth"
    # The chain's every depth must show, or the comparison proves little.
    for depth in 1 2 3; do
        grep -q " $depth\$" "$img.depth" ||
            fail "$img: no extent of depth $depth: $(cat "$img.depth")"
    done
    map_compare "$img.qdepth" "$img.depth" >"$img.depth.diff" ||
        { cat "$img.depth.diff" >&2; echo "--- qemu-nbd -A:" >&2
          cat "$img.qemu.raw" >&2; echo "--- zqcow2-nbd:" >&2
          cat "$img.qemu:allocation-depth.raw" >&2
          fail "$img: qemu:allocation-depth differs from qemu-nbd -A's"; }

    map base:allocation "$img" >"$img.base"
    map qemu:joint-allocation "$img" >"$img.joint"
    joint_expected "$img.base" "$img.depth" | map_canon >"$img.jexp"
    map_compare "$img.jexp" "$img.joint" >"$img.joint.diff" ||
        { cat "$img.joint.diff" >&2
          fail "$img: qemu:joint-allocation is not base:allocation and" \
               "allocation-depth combined"; }
    echo "ok      $img: depth as qemu-nbd -A, joint as both combined"
done

# A plain image lists three contexts (qemu:zone-state is for zoned ones).
"$ZQCOW2_NBD" -r --run 'nbdinfo --list "$uri"' top.qcow2 >top.list ||
    fail "nbdinfo --list failed"
for ctx in base:allocation qemu:allocation-depth qemu:joint-allocation; do
    grep -qx "[[:space:]]*$ctx" top.list ||
        { cat top.list >&2; fail "nbdinfo --list does not show $ctx"; }
done
! grep -q 'qemu:zone-state' top.list ||
    { cat top.list >&2; fail "qemu:zone-state listed for a plain image"; }

# One BLOCK_STATUS, three contexts: a chunk each, starting at the offset
# asked; under REQ_ONE one extent each, within one run of that context's
# canonical map.  (-A, as qemu-nbd takes it, changes nothing.)
"$ZQCOW2_NBD" -r -A --run '/usr/bin/python3 - "$uri" <<EOF
import nbd, sys

contexts = {"base:allocation": "top.qcow2.base",
            "qemu:allocation-depth": "top.qcow2.depth",
            "qemu:joint-allocation": "top.qcow2.joint"}
runs = {ctx: [tuple(int(x) for x in line.split()) for line in open(path)]
        for ctx, path in contexts.items()}

def run_at(ctx, offset):
    for start, end, status in runs[ctx]:
        if start <= offset < end:
            return start, end, status
    sys.exit("%s: no run at %d" % (ctx, offset))

h = nbd.NBD()
for ctx in contexts:
    h.add_meta_context(ctx)
h.connect_uri(sys.argv[1])
M = 1 << 20
for offset in (0, 4096, 65536, 70 * 1024, 2 * M + 100 * 1024, 4200 * 1024,
               5 * M, 6 * M, 8 * M + 4096, 11 * M, 12 * M - 512):
    for flags in (0, nbd.CMD_FLAG_REQ_ONE):
        seen = {}
        h.block_status(min(4 * M, 12 * M - offset), offset,
                       lambda ctx, off, entries, err:
                           seen.setdefault(ctx, []).append((off, entries))
                           or 0, flags)
        if sorted(seen) != sorted(contexts) or \
           any(len(v) != 1 or v[0][0] != offset for v in seen.values()):
            sys.exit("at %d flags %d: not one chunk per context: %r"
                     % (offset, flags, seen))
        for ctx, [(off, entries)] in seen.items():
            if flags and len(entries) != 2:
                sys.exit("REQ_ONE at %d: %s sent %d extents"
                         % (offset, ctx, len(entries) // 2))
            start, end, status = run_at(ctx, offset)
            if entries[1] != status or offset + entries[0] > end:
                sys.exit("at %d: %s says %d for %d bytes, its map %d to %d"
                         % (offset, ctx, entries[1], entries[0], status,
                            end))
EOF
' top.qcow2 || fail "one chunk per context, REQ_ONE, see above"
echo "ok      one chunk per context, REQ_ONE"

# A zoned image: four contexts listed; depth 1 below the write pointer, 0
# past it and in empty zones.
zoned_create z.qcow2 4M zone.size=1M,zone.conventional_zones=1
"$ZQCOW2_NBD" --run '/usr/bin/python3 -c "
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b\"x\" * 8192, 1 << 20)
h.shutdown()" "$uri"' z.qcow2 || fail "writing to zone 1 failed"
"$ZQCOW2_NBD" -r --run 'nbdinfo --list "$uri"' z.qcow2 >z.list ||
    fail "nbdinfo --list failed"
for ctx in base:allocation qemu:allocation-depth qemu:joint-allocation \
           qemu:zone-state; do
    grep -qx "[[:space:]]*$ctx" z.list ||
        { cat z.list >&2; fail "nbdinfo --list does not show $ctx"; }
done
map qemu:allocation-depth z.qcow2 >z.depth
printf '%s\n' "0 $M 0" "$M $((M + 8192)) 1" "$((M + 8192)) $((4 * M)) 0" \
    >z.depth.expected
map_compare z.depth.expected z.depth >z.diff ||
    { cat z.diff >&2; fail "depth on a zoned image"; }
map qemu:joint-allocation z.qcow2 >z.joint
printf '%s\n' "0 $M 3" "$M $((M + 8192)) 4" "$((M + 8192)) $((4 * M)) 3" \
    >z.joint.expected
map_compare z.joint.expected z.joint >z.diff ||
    { cat z.diff >&2; fail "joint-allocation on a zoned image"; }
echo "ok      zoned: four contexts listed, depth 0 past the write pointer"
exit 0
