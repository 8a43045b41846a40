#!/usr/bin/env bash
# zqcow2-nbd serves a plain qcow2 image: nbdinfo sees its size and
# description (in captive mode and by socket activation), nbdcopy reads
# what qemu-img reads, qemu-io writes over NBD land where qemu's qcow2
# driver finds them in a clean image, and with -r every write is refused
# with EPERM and the file stays byte for byte unchanged.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io nbdinfo nbdcopy cmp /usr/bin/python3
requires_run /usr/bin/python3 -c 'import nbd'
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
scratch_dir

qemu-img create -q -f qcow2 -o cluster_size=64k img.qcow2 32M
qemu-io -f qcow2 \
    -c 'write -P 0x11 0 100000' \
    -c 'write -z 1M 512k' \
    -c 'write -P 0x22 2M 3M' \
    -c 'discard 3M 64k' \
    -c 'write -P 0x33 33550336 4096' \
    img.qcow2 >/dev/null

# 1. What nbdinfo sees.
"$ZQCOW2_NBD" -r --run 'nbdinfo "$uri"' img.qcow2 >info.out ||
    { cat info.out >&2; fail "nbdinfo through zqcow2-nbd failed"; }
grep -q '^[[:space:]]*export-size: 33554432 ' info.out ||
    { cat info.out >&2; fail "nbdinfo does not show the 32 MiB size"; }
grep -q '^[[:space:]]*description: .*qcow2' info.out ||
    { cat info.out >&2; fail "nbdinfo shows no description of the image"; }
grep -q '^[[:space:]]*is_read_only: true' info.out ||
    { cat info.out >&2; fail "-r does not make the export read-only"; }

# ... also when libnbd starts the server by socket activation.
size=$(nbdinfo --size -- [ "$ZQCOW2_NBD" -r img.qcow2 ]) ||
    fail "nbdinfo -- [ zqcow2-nbd -r img.qcow2 ] failed"
[ "$size" = 33554432 ] ||
    fail "socket activation: nbdinfo --size says $size, not 33554432"

# 2. The whole disk, as qemu-img converts it.
qemu-img convert -f qcow2 -O raw img.qcow2 expected.raw
"$ZQCOW2_NBD" -r --run 'nbdcopy "$uri" copy.raw' img.qcow2 ||
    fail "nbdcopy from zqcow2-nbd failed"
cmp expected.raw copy.raw || fail "nbdcopy reads other data than qemu-img"

# 3. -r: a write sent past libnbd's own checks fails at the server with
# EPERM, and not one byte of the file changes.
before=$(sha256 img.qcow2)
"$ZQCOW2_NBD" -r --run '/usr/bin/python3 - "$uri" <<EOF
import errno, nbd, sys
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
assert h.is_read_only(), "the export is not flagged read-only"
for write in (lambda: h.pwrite(b"\xff" * 4096, 0),
              lambda: h.zero(65536, 0),
              lambda: h.trim(65536, 1048576),
              lambda: h.pwrite(b"\xff" * 512, 512, nbd.CMD_FLAG_FUA)):
    try:
        write()
    except nbd.Error as e:
        assert e.errnum == errno.EPERM, "not EPERM: %s" % e
        continue
    sys.exit("a write to the read-only export succeeded")
h.flush()
h.shutdown()
EOF
' img.qcow2 2>readonly.err ||
    { cat readonly.err >&2; fail "the read-only export took a write"; }
[ "$(sha256 img.qcow2)" = "$before" ] ||
    fail "the image changed while served with -r"

# 4. Writes from qemu over NBD, aligned and not, with FUA, zeroes and
# discards, then a flush.
"$ZQCOW2_NBD" --run '
    qemu-io -f raw \
        -c "write -P 0x44 65535 2" \
        -c "write -P 0x55 1000001 300001" \
        -c "write -f -P 0x66 8M 1M" \
        -c "write -z 8650752 65536" \
        -c "discard 2M 1M" \
        -c "write -P 0x77 33554431 1" \
        -c "flush" \
        "$uri" >write.out
' img.qcow2 || fail "writing through zqcow2-nbd failed"

qemu-img check img.qcow2 >check.out 2>&1 ||
    { cat check.out >&2; fail "qemu-img check is not clean"; }
qemu-io -f qcow2 \
    -c 'read -P 0x11 0 65535' \
    -c 'read -P 0x44 65535 2' \
    -c 'read -P 0x11 65537 34463' \
    -c 'read -P 0x55 1000001 300001' \
    -c 'read -P 0x00 2M 1M' \
    -c 'read -P 0x22 3211264 1048576' \
    -c 'read -P 0x66 8M 262144' \
    -c 'read -P 0x00 8650752 65536' \
    -c 'read -P 0x66 8716288 720896' \
    -c 'read -P 0x33 33550336 4095' \
    -c 'read -P 0x77 33554431 1' \
    img.qcow2 >read.out 2>&1 ||
    { cat read.out >&2; fail "qemu's qcow2 driver reads different data"; }
if grep -q 'Pattern verification failed' read.out; then
    cat read.out >&2
    fail "qemu's qcow2 driver reads different data"
fi
exit 0
