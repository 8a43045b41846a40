#!/usr/bin/env bash
# zqcow2-nbd --data-file: an image made by qemu-img with an external data
# file that was then moved is refused without the option (the error names
# the missing file), and served with it: the bytes qemu-img convert reads
# with the data file back in place, writes that land in the moved data
# file, and an image that qemu-img check finds clean with that data file.
# --data-file on an image without a data file, or naming a file that does
# not exist, is refused by name.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io nbdcopy cmp
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
scratch_dir

# The image in the current directory: qemu 7.2 makes and opens a relative
# data file relative to the current directory, zqcow2 relative to the
# image's; here both are the same.
qemu-img create -q -f qcow2 -o data_file=disk.data,cluster_size=64k \
    img.qcow2 16M
qemu-io -f qcow2 \
    -c 'write -P 0x11 0 1M' -c 'write -P 0x22 5000 3000' \
    -c 'write -P 0x33 7M 300k' -c 'write -P 0x44 16711680 65536' \
    img.qcow2 >/dev/null || fail "qemu-io could not fill the image"
[ -f disk.data ] || fail "qemu-img made no data file disk.data"
qemu-img convert -O raw img.qcow2 expected.raw

mkdir moved
mv disk.data moved/renamed.data
# Only writes, no zeroes or discards: the data file is the disk itself.
cmp expected.raw moved/renamed.data ||
    fail "the data file qemu wrote is not the disk qemu-img reads"

echo "== without --data-file: refused, naming the missing file"
if "$ZQCOW2_NBD" -r --run 'nbdcopy "$uri" out.raw' img.qcow2 \
       2>missing.err; then
    fail "served although the data file disk.data is gone"
fi
cat missing.err
grep -q 'disk\.data: No such file' missing.err ||
    { cat missing.err >&2; fail "the error does not name disk.data"; }

echo "== --data-file=FILE, read-only"
before=$(sha256 moved/renamed.data)
"$ZQCOW2_NBD" -r --data-file=moved/renamed.data \
    --run 'nbdcopy "$uri" out.raw' img.qcow2 ||
    fail "not served with --data-file"
cmp out.raw expected.raw ||
    fail "--data-file: other bytes than qemu-img convert reads"
[ "$(sha256 moved/renamed.data)" = "$before" ] ||
    fail "-r --data-file: the data file changed"

echo "== --data-file FILE (absolute), writes"
"$ZQCOW2_NBD" --data-file "$PWD/moved/renamed.data" --run '
    qemu-io -f raw \
        -c "write -P 0x55 1000001 300001" \
        -c "write -P 0x66 10M 1M" \
        -c "write -P 0x77 16777215 1" \
        -c "flush" "$uri" >write.out
' img.qcow2 || fail "writing through --data-file failed"
# The bytes are in the moved data file, at their guest offsets...
qemu-io -f raw \
    -c 'read -P 0x11 0 5000' -c 'read -P 0x22 5000 3000' \
    -c 'read -P 0x55 1000001 300001' -c 'read -P 0x66 10M 1M' \
    -c 'read -P 0x77 16777215 1' \
    moved/renamed.data >data.read 2>&1 ||
    { cat data.read >&2; fail "qemu-io cannot read the data file"; }
! grep -q 'Pattern verification failed' data.read ||
    { cat data.read >&2; fail "the writes are not in moved/renamed.data"; }
# ... and none went back to the old name.
[ ! -e disk.data ] || fail "the server made disk.data"

# ... and qemu, given the same data file, finds a clean image with them.
json='json:{"driver":"qcow2","file":{"driver":"file","filename":"img.qcow2"},"data-file":{"driver":"file","filename":"moved/renamed.data"}}'
qemu-img check "$json" >check.out 2>&1 ||
    { cat check.out >&2; fail "qemu-img check is not clean"; }
grep -q 'No errors were found on the image' check.out ||
    { cat check.out >&2; fail "qemu-img check: no clean verdict"; }
qemu-io -c 'read -P 0x55 1000001 300001' -c 'read -P 0x66 10M 1M' \
    -c 'read -P 0x33 7M 300k' -c 'read -P 0x00 12M 1M' \
    -c 'read -P 0x77 16777215 1' "$json" >qemu.read 2>&1 ||
    { cat qemu.read >&2; fail "qemu-io cannot read the image"; }
! grep -q 'Pattern verification failed' qemu.read ||
    { cat qemu.read >&2; fail "qemu reads other data than was written"; }

# Moved back under its own name, the image needs no option again.
mv moved/renamed.data disk.data
qemu-img check img.qcow2 >check2.out 2>&1 ||
    { cat check2.out >&2; fail "qemu-img check with the data file back"; }
qemu-img convert -O raw img.qcow2 expected2.raw
"$ZQCOW2_NBD" -r --run 'nbdcopy "$uri" out2.raw' img.qcow2 ||
    fail "not served with the data file back in place"
cmp out2.raw expected2.raw ||
    fail "data file back in place: other bytes than qemu-img reads"

echo "== --data-file naming a missing file"
if "$ZQCOW2_NBD" -r --data-file=moved/nothing.data --run true \
       img.qcow2 2>nothing.err; then
    fail "served with a --data-file that does not exist"
fi
grep -q 'moved/nothing\.data: No such file' nothing.err ||
    { cat nothing.err >&2; fail "the error does not name moved/nothing.data"; }

echo "== --data-file on an image without a data file"
qemu-img create -q -f qcow2 plain.qcow2 1M
if "$ZQCOW2_NBD" -r --data-file=disk.data --run true plain.qcow2 \
       2>plain.err; then
    fail "--data-file accepted for an image without a data file"
fi
cat plain.err
grep -q 'disk\.data' plain.err ||
    { cat plain.err >&2; fail "the error does not name the --data-file"; }
exit 0
