#!/usr/bin/env bash
# zqcow2-nbd negotiates metadata contexts by the NBD rules on a plain
# qcow2 image: an empty list query lists base:allocation,
# qemu:allocation-depth and qemu:joint-allocation, "base:" base:allocation
# only, "qemu:" the two qemu ones (qemu:zone-state exists only on zoned
# images),
# SET selects by exact name and ignores unknown names; base:allocation
# describes every byte as the nbdkit plugin does; REQ_ONE gets exactly one
# extent.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io nbdinfo awk /usr/bin/python3
requires_run /usr/bin/python3 -c 'import nbd'
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
plugin_ok
scratch_dir

qemu-img create -q -f qcow2 -o cluster_size=4k img.qcow2 16M
qemu-io -f qcow2 \
    -c 'write -P 0x11 0 100000' \
    -c 'write -z 1M 512k' \
    -c 'write -P 0x22 2M 3M' \
    -c 'discard 3M 64k' \
    -c 'write -z 4M 8k' \
    -c 'write -P 0x33 16773120 4096' \
    img.qcow2 >/dev/null

# 1. Listing and selecting.
"$ZQCOW2_NBD" -r --run '/usr/bin/python3 - "$uri" <<EOF
import nbd, sys
import zq_meta
uri = sys.argv[1]

def listed(*queries):
    return zq_meta.listed(uri, *queries)

def check(got, expected, what):
    if got != expected:
        sys.exit("%s: expected %r, got %r" % (what, expected, got))

QEMU = ["qemu:allocation-depth", "qemu:joint-allocation"]
check(listed(), ["base:allocation"] + QEMU, "empty query")
check(listed("base:"), ["base:allocation"], "query base:")
check(listed("base:allocation"), ["base:allocation"], "exact query")
check(listed("qemu:"), QEMU, "query qemu: on a plain image")
check(listed("qemu:allocation-depth"), QEMU[:1], "exact qemu query")
check(listed("qemu:allocation"), [], "a prefix is not a namespace")
check(listed("qemu:zone-state"), [], "qemu:zone-state on a plain image")
check(listed("x-nothing:", "nbd-server:foo"), [], "unknown queries")

def selected(*queries):
    h = nbd.NBD()
    h.clear_meta_contexts()
    for query in queries:
        h.add_meta_context(query)
    h.connect_uri(uri)
    return [name for name in ["base:allocation", "qemu:zone-state"] + QEMU
            if h.can_meta_context(name)]

check(selected("x-nothing:foo", "base:allocation", "qemu:zone-state"),
      ["base:allocation"], "SET with an unknown name")
check(selected("base:"), [], "SET takes exact names, not a namespace")
check(selected("qemu:"), [], "SET takes exact names, not qemu:")
check(selected("qemu:joint-allocation", "qemu:allocation-depth"), QEMU,
      "SET of both qemu contexts")
EOF
' img.qcow2 || fail "metadata context negotiation, see above"

# 2. base:allocation, byte for byte as the plugin reports it.
"$ZQCOW2_NBD" -r --run 'nbdinfo --map "$uri"' img.qcow2 >server.map ||
    fail "nbdinfo --map through zqcow2-nbd failed"
plugin_map img.qcow2 >plugin.map ||
    fail "nbdinfo --map through the plugin failed"
map_canon <server.map >server.canon || fail "the server's map has gaps"
map_canon <plugin.map >plugin.canon
[ -s server.canon ] || fail "the server's map is empty"
map_compare plugin.canon server.canon >map.diff ||
    { cat map.diff >&2; echo "--- plugin:" >&2; cat plugin.map >&2
      echo "--- zqcow2-nbd:" >&2; cat server.map >&2
      fail "the maps differ"; }

# 3. REQ_ONE: one extent, starting at the offset asked, at several
# offsets and lengths.
"$ZQCOW2_NBD" -r --run '/usr/bin/python3 - "$uri" <<EOF
import nbd, sys
h = nbd.NBD()
h.add_meta_context("base:allocation")
h.connect_uri(sys.argv[1])
for offset, count in ((0, 16 << 20), (100000, 1 << 20), (1 << 20, 4096),
                      (3 << 20, 12 << 20), ((16 << 20) - 1, 1)):
    seen = []
    h.block_status(count, offset,
                   lambda ctx, off, entries, err:
                       seen.append((ctx, off, entries)) or 0,
                   nbd.CMD_FLAG_REQ_ONE)
    if len(seen) != 1 or seen[0][0] != "base:allocation" or \
       seen[0][1] != offset or len(seen[0][2]) != 2 or \
       not 0 < seen[0][2][0] <= count:
        sys.exit("REQ_ONE at %d length %d: got %r" % (offset, count, seen))
EOF
' img.qcow2 || fail "REQ_ONE, see above"
exit 0
