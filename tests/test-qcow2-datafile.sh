#!/usr/bin/env bash
# Images with an external data file (incompatible bit 2, header extension
# 0x44415441), as qemu makes them: the plugin reads what qemu-img reads,
# a seeded workload leaves an image qemu-img checks clean and compares
# equal to a raw reference, and with data_file_raw=on the data file alone
# is that raw image and autoclear bit 1 is still set.  Block status
# matches qemu-nbd's.  data-file= points
# at a moved data file; a missing one is refused by name.
#
# Compressed clusters cannot be made in such an image (qemu refuses), so
# they are not tested here.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io nbdcopy cmp zq-workload
plugin_ok
scratch_dir

# An image of 64M with some data, zeroes and a discarded range, made by
# qemu-io.  $1: name, $2: extra create options.
make_image ()
{
    qemu-img create -q -f qcow2 \
        -o "data_file=$1.data,cluster_size=64k${2:+,$2}" "$1.qcow2" 64M
    qemu-io -f qcow2 \
        -c 'write -P 0x11 0 1M' -c 'write -P 0x22 5000 3000' \
        -c 'write -P 0x33 10M 300k' -c 'write -z 10M 64k' \
        -c 'write -P 0x44 20M 2M' -c 'discard 20M 1M' \
        -c 'write -P 0x55 63M 1M' "$1.qcow2" >/dev/null ||
        fail "$1: qemu-io could not fill the image"
}

# checked NAME: qemu-img check reports no errors and no leaks.
checked ()
{
    qemu_clean "$1.qcow2" || fail "$1: qemu-img check is not clean"
}

# autoclear NAME: the image's autoclear feature bits.
autoclear () { peek_be "$1.qcow2" 88 8; }

for raw in off on; do
    name="df-raw-$raw"
    echo "== $name: reading"
    make_image "$name" "data_file_raw=$raw"
    qemu-img convert -O raw "$name.qcow2" "$name.expected"
    zq_nbdkit -r -- file="$name.qcow2" --run 'nbdcopy "$uri" out.raw' ||
        fail "$name: the plugin could not serve the image"
    cmp out.raw "$name.expected" ||
        fail "$name: the plugin reads other bytes than qemu-img convert"

    # base:allocation as qemu-nbd reports it.
    if command -v qemu-nbd >/dev/null && command -v nbdinfo >/dev/null; then
        qemu_map "$name.qcow2" | map_canon >"$name.qemu.canon" ||
            fail "$name: qemu-nbd map"
        plugin_map "$name.qcow2" | map_canon >"$name.plugin.canon" ||
            fail "$name: plugin map"
        map_compare "$name.qemu.canon" "$name.plugin.canon" ||
            fail "$name: block status differs from qemu-nbd's"
    fi

    echo "== $name: workload"
    cp "$name.expected" "$name.ref"
    zq_nbdkit -- file="$name.qcow2" \
        --run "zq-workload --seed 7 --ops 1200 --connections 2 \
                 --reference $name.ref --cluster-size 65536 \"\$uri\"" ||
        fail "$name: the workload failed (see above)"
    checked "$name"
    qemu-img compare -f qcow2 -F raw "$name.qcow2" "$name.ref" ||
        fail "$name: image and reference differ"
    if [ "$raw" = on ]; then
        # The data file may be shorter than the disk: compare its bytes.
        truncate -s 64M "$name.data"
        cmp "$name.data" "$name.ref" ||
            fail "$name: the raw data file is not the guest's disk"
        bits="$(autoclear "$name")"
        (( bits & 2 )) ||
            fail "$name: autoclear bit 1 (data_file_raw) was cleared: $bits"
    fi
done

echo "== dirty: qemu killed with lazy refcounts"
qemu-img create -q -f qcow2 -o data_file=dirty.data,lazy_refcounts=on \
    dirty.qcow2 64M
qemu-io -f qcow2 -c 'write -P 0x66 0 3M' -c 'write -P 0x77 40M 1M' \
    -c 'sigraise 9' dirty.qcow2 >/dev/null 2>&1 || :
(( $(peek_be dirty.qcow2 72 8) & 1 )) || skip "qemu-io left no dirty image"
qemu-img convert -U -O raw dirty.qcow2 dirty.expected
# A read-write open repairs the refcounts, counting none for the data.
zq_nbdkit -- file=dirty.qcow2 --run 'nbdcopy "$uri" out.raw' ||
    fail "dirty: not served"
cmp out.raw dirty.expected || fail "dirty: wrong bytes after the repair"
checked dirty

echo "== data-file= override"
make_image moved
qemu-img convert -O raw moved.qcow2 moved.expected
mkdir elsewhere
mv moved.data elsewhere/renamed.data
zq_nbdkit -- file=moved.qcow2 data-file=elsewhere/renamed.data \
    --run 'nbdcopy "$uri" out.raw' ||
    fail "moved: not served with data-file="
cmp out.raw moved.expected || fail "moved: wrong bytes through data-file="

echo "== missing data file"
if zq_nbdkit -r -- file=moved.qcow2 --run 'nbdcopy "$uri" out.raw' \
       2>missing.err; then
    fail "missing: served although its data file is gone"
fi
grep -q 'moved\.data' missing.err ||
    { cat missing.err >&2; fail "missing: the error does not name the data file"; }
cat missing.err

echo "== data-file= on an image without one"
qemu-img create -q -f qcow2 plain.qcow2 1M
if zq_nbdkit -r -- file=plain.qcow2 data-file=elsewhere/renamed.data \
       --run 'nbdcopy "$uri" out.raw' 2>plain.err; then
    fail "plain: data-file= accepted for an image without a data file"
fi
grep -q 'data-file' plain.err ||
    { cat plain.err >&2; fail "plain: the error does not say why"; }

echo "== internal snapshots with a data file"
# qemu will not make one: claim a snapshot in the header of a copy.
cp moved.qcow2 snap.qcow2
poke_be snap.qcow2 60 4 1
if zq_nbdkit -r -- file=snap.qcow2 data-file=elsewhere/renamed.data \
       --run 'nbdcopy "$uri" out.raw' 2>snap.err; then
    fail "snap: served with internal snapshots and a data file"
fi
grep -q 'snapshot' snap.err ||
    { cat snap.err >&2; fail "snap: the error does not say why"; }
cat snap.err
