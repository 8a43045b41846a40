#!/usr/bin/env bash
# nbdkit -r: writes are refused and not one byte of the file changes, not
# even to clear an unknown autoclear bit.  A read-write session does clear
# that bit and leaves the image clean.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io nbdinfo /usr/bin/python3
requires_run /usr/bin/python3 -c 'import nbd'
plugin_ok
scratch_dir

qemu-img create -q -f qcow2 img.qcow2 16M
qemu-io -f qcow2 -c 'write -P 0x3c 1M 1M' img.qcow2 >/dev/null

# An autoclear bit no program knows (bit 40).
unknown=$(( 1 << 40 ))
v=$(peek_be img.qcow2 88 8)
poke_be img.qcow2 88 8 $(( v | unknown ))
before=$(sha256 img.qcow2)

# 1. Read-only: a write sent past libnbd's own read-only check (strict
# mode off) must fail at the server, qemu-io must not open it for
# writing, and reads work.
zq_nbdkit -r -- file=img.qcow2 --run '
    set -e
    /usr/bin/python3 - "$uri" <<EOF
import nbd, sys
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
assert h.is_read_only(), "export is not flagged read-only"
for write in (lambda: h.pwrite(b"\xff" * 4096, 0),
              lambda: h.zero(65536, 0),
              lambda: h.trim(65536, 1048576)):
    try:
        write()
    except nbd.Error as e:
        continue
    sys.exit("a write to the read-only export succeeded")
h.shutdown()
EOF
    if qemu-io -f raw -c "write -P 0xff 0 512" "$uri" >qemu-io.out 2>&1
    then
        echo "qemu-io wrote to the read-only export" >&2; exit 1
    fi
    qemu-io -r -f raw -c "read -P 0x3c 1M 1M" "$uri" >/dev/null
' || fail "read-only session: see above"

[ "$(sha256 img.qcow2)" = "$before" ] ||
    fail "the image changed during a read-only session"

# 2. Read-write: the unknown autoclear bit is cleared, known state kept.
zq_nbdkit -- file=img.qcow2 \
    --run 'qemu-io -f raw -c "write -P 0x42 0 4096" "$uri" >/dev/null' ||
    fail "read-write session failed"

v=$(peek_be img.qcow2 88 8)
(( (v & unknown) == 0 )) ||
    fail "the unknown autoclear bit 40 is still set after a read-write" \
         "session (autoclear_features = $(printf '0x%016x' "$v"))"

qemu-img check img.qcow2 >check.out 2>&1 ||
    { cat check.out >&2; fail "qemu-img check is not clean"; }
qemu-io -f qcow2 -c 'read -P 0x42 0 4096' -c 'read -P 0x3c 1M 1M' \
    img.qcow2 >read.out 2>&1 ||
    { cat read.out >&2; fail "data written or kept is wrong"; }
grep -q 'Pattern verification failed' read.out &&
    { cat read.out >&2; fail "data written or kept is wrong"; }
exit 0
