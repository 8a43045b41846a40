#!/usr/bin/env bash
# A header extension the plugin does not know survives a read-write
# session byte for byte, and the session's writes land correctly.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io zq-header-ext
plugin_ok
scratch_dir

qemu-img create -q -f qcow2 -o compat=1.1 img.qcow2 16M
qemu-io -f qcow2 -c 'write -P 0x10 0 64k' img.qcow2 >/dev/null
zq-header-ext add img.qcow2 0x12345678 00112233445566778899aabbccddeeff
zq-header-ext list img.qcow2 | grep -q '^0x12345678 ' ||
    fail "could not add the test extension"
zq-header-ext area img.qcow2 >area.before
zq-header-ext list img.qcow2 >list.before
qemu-img check -q img.qcow2 || fail "the edited image is not clean to begin with"

zq_nbdkit -- file=img.qcow2 --run '
    qemu-io -f raw -c "write -P 0x77 100000 200000" \
                   -c "write -P 0x78 5M 3M" \
                   -c "flush" "$uri" >/dev/null
' || fail "read-write session failed"

zq-header-ext area img.qcow2 >area.after
zq-header-ext list img.qcow2 >list.after
if ! cmp -s area.before area.after; then
    echo "before:"; cat list.before; cat area.before
    echo "after:";  cat list.after;  cat area.after
    fail "the header extension area changed"
fi
[ "$(zq-header-ext dump img.qcow2 0x12345678)" = \
  00112233445566778899aabbccddeeff ] ||
    fail "the unknown extension's data changed"

qemu-img check img.qcow2 >check.out 2>&1 ||
    { cat check.out >&2; fail "qemu-img check is not clean"; }
qemu-io -f qcow2 -c 'read -P 0x10 0 65536' -c 'read -P 0x77 100000 200000' \
    -c 'read -P 0x78 5M 3M' -c 'read -P 0 8M 8M' img.qcow2 >read.out 2>&1 ||
    { cat read.out >&2; fail "data read back is wrong"; }
