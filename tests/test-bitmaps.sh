#!/usr/bin/env bash
# An image with persistent dirty bitmaps, served read-write: zqcow2 does
# not maintain bitmaps, so it clears autoclear bit 0 (the extension no
# longer vouches for them) and releases their clusters; the extension's
# bytes stay as they were.  QEMU then calls the bitmaps inconsistent and
# ignores them, and qemu-img check finds no errors and no leaks.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io cmp dd
plugin_ok
scratch_dir

qemu-img create -q -f qcow2 -o cluster_size=4k img.qcow2 16M
qemu-io -f qcow2 -c 'write -P 0x61 0 1M' img.qcow2 >/dev/null
qemu-img bitmap --add img.qcow2 empty
qemu-img bitmap --add img.qcow2 tracked
# qemu-io records this write in the bitmaps: "tracked" gets data clusters.
qemu-io -f qcow2 -c 'write -P 0x62 4M 2M' img.qcow2 >/dev/null
qemu-img info img.qcow2 | grep -q 'name: tracked' ||
    fail "qemu-img did not add the bitmaps"
[ $(( $(peek_be img.qcow2 88 8) & 1 )) = 1 ] ||
    fail "autoclear bit 0 is not set after qemu-img bitmap --add"
qemu-img check img.qcow2 >before.check 2>&1 ||
    { cat before.check >&2; fail "the image is not clean to begin with"; }

# Everything in the first cluster after the autoclear field: the rest of
# the header and the extensions, the bitmaps extension among them.
dd if=img.qcow2 bs=1 skip=96 count=$(( 4096 - 96 )) status=none >ext.before

zq_nbdkit -- file=img.qcow2 --run '
    qemu-io -f raw -c "write -P 0x63 1M 1M" -c "write -P 0x64 8M 64k" "$uri"
' >/dev/null || fail "writing through the plugin failed"

[ $(( $(peek_be img.qcow2 88 8) & 1 )) = 0 ] ||
    fail "autoclear bit 0 is still set after a read-write session"
dd if=img.qcow2 bs=1 skip=96 count=$(( 4096 - 96 )) status=none >ext.after
cmp ext.before ext.after || fail "the header extensions changed"

if ! qemu-img check img.qcow2 >after.check 2>&1 ||
   ! grep -q 'No errors were found on the image' after.check ||
   grep -q 'leaked clusters were found' after.check; then
    cat after.check >&2
    fail "qemu-img check is not clean after the session"
fi
grep -q 'bitmaps are now considered inconsistent' after.check ||
    { cat after.check >&2; fail "qemu did not flag the bitmaps inconsistent"; }
qemu-io -f qcow2 -c 'read -P 0x61 0 1M' -c 'read -P 0x63 1M 1M' \
    -c 'read -P 0x62 4M 2M' -c 'read -P 0x64 8M 64k' img.qcow2 >/dev/null ||
    fail "the data is not what was written"
