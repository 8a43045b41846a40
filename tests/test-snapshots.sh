#!/usr/bin/env bash
# An image with internal snapshots is served read-write: the active layer
# takes a seeded workload (mirrored to a raw reference) while every
# snapshot keeps its data.  L2 tables and data clusters shared with a
# snapshot are copied on write, never overwritten.  Verdicts: qemu-img
# check (no errors, no leaks), qemu-img compare against the reference,
# and each snapshot, applied to a copy, against its raw dump taken before
# the workload.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io zq-workload
plugin_ok
scratch_dir

# run NAME SIZE CREATE-OPTIONS CLUSTER-SIZE CONNECTIONS OPS SEED
run ()
{
    local name="$1" size="$2" opts="$3" cs="$4" conns="$5" ops="$6" seed="$7"
    local img="$name.qcow2" snap

    echo "== $name: $opts, $conns connection(s), $ops ops, seed $seed"
    qemu-img create -q -f qcow2 -o "$opts" "$img" "$size"
    qemu-io -f qcow2 -c 'write -P 0x11 0 3M' -c 'write -P 0x12 5M 1M' \
        "$img" >/dev/null
    qemu-img snapshot -c one "$img"
    qemu-io -f qcow2 -c 'write -P 0x21 1M 3M' -c 'write -z 5M 512k' \
        -c 'write -P 0x22 20M 2M' "$img" >/dev/null
    qemu-img snapshot -c two "$img"
    qemu-io -f qcow2 -c 'write -P 0x31 2M 64k' "$img" >/dev/null
    for snap in one two; do
        qemu-img convert -l snapshot.name=$snap -O raw "$img" "$name.$snap.raw"
    done
    qemu-img convert -O raw "$img" "$name.ref"

    zq_nbdkit -- file="$img" \
        --run "zq-workload --seed $seed --ops $ops --connections $conns \
                 --reference $name.ref --cluster-size $cs \"\$uri\"" ||
        fail "$name: the workload failed (see above)"

    qemu_clean "$img" || fail "$name: qemu-img check is not clean"
    qemu-img compare -q -f qcow2 -F raw "$img" "$name.ref" ||
        fail "$name: the active layer differs from the reference"
    qemu-img snapshot -l "$img" | grep -qw two ||
        fail "$name: the snapshot table lost a snapshot"

    for snap in one two; do
        cp "$img" "$name.applied.qcow2"
        qemu-img snapshot -a $snap "$name.applied.qcow2"
        qemu-img compare -q -f qcow2 -F raw "$name.applied.qcow2" \
            "$name.$snap.raw" ||
            fail "$name: snapshot $snap changed under the workload"
        qemu-img check "$name.applied.qcow2" >/dev/null 2>&1 ||
            fail "$name: applying snapshot $snap gives an unclean image"
    done
    rm -f "$name".*
}

run small-cl  32M cluster_size=4k             4096  1 800  11
run four-conn 64M cluster_size=64k            65536 4 1200 12
run v2        32M compat=0.10,cluster_size=4k 4096  2 600  13
