#!/usr/bin/env bash
# A seeded random workload of writes, trims, write-zeroes and flushes over
# one and several connections leaves an image that qemu-img checks clean
# and that holds exactly the bytes of a raw reference given the same ops.

source "$(dirname "$0")/functions.sh"
requires qemu-img zq-workload
plugin_ok
scratch_dir

# run NAME SIZE CREATE-OPTIONS CLUSTER-SIZE CONNECTIONS OPS SEED [PARAMS...]
run ()
{
    local name="$1" size="$2" opts="$3" cs="$4" conns="$5" ops="$6" seed="$7"
    local img="$name.qcow2" ref="$name.raw"
    shift 7

    echo "== $name: $opts, $conns connection(s), $ops ops, seed $seed $*"
    qemu-img create -q -f qcow2 -o "$opts" "$img" "$size"
    truncate -s "$size" "$ref"

    zq_nbdkit -- file="$img" "$@" \
        --run "zq-workload --seed $seed --ops $ops --connections $conns \
                 --reference $ref --cluster-size $cs \"\$uri\"" ||
        fail "$name: the workload failed (see above)"

    qemu_clean "$img" || fail "$name: qemu-img check is not clean"

    qemu-img compare -f qcow2 -F raw "$img" "$ref" ||
        fail "$name: image and reference differ"
    rm -f "$img" "$ref"
}

run one-conn   256M cluster_size=64k              65536 1 1600 1
run four-conns 256M cluster_size=64k              65536 4 2000 2
run small-cl   64M  cluster_size=4k               4096  2 800  3
run v2         64M  compat=0.10,cluster_size=64k  65536 2 800  4
# An L2 cache of two 4 KiB tables for 32 of them: constant eviction.
run tiny-cache 64M  cluster_size=4k               4096  4 800  5 l2-cache-size=8k
