#!/usr/bin/env bash
# Chains of three layers (a raw or qcow2 base shorter than the image, a
# qcow2 middle layer, the qcow2 top), each filled by qemu-io: the plugin
# reads what qemu-img convert reads, reports the extents qemu-nbd reports,
# and a seeded random workload through it (copy-up of partial clusters,
# trim and write-zeroes over backing data) leaves a top image that
# qemu-img checks clean and compares equal to a raw reference, without
# changing a byte of any backing file.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io qemu-nbd nbdinfo nbdcopy zq-workload
plugin_ok
scratch_dir

# qio IMG FORMAT COMMANDS...: run qemu-io commands on one layer.
qio ()
{
    local img="$1" fmt="$2" args=() c
    shift 2
    for c in "$@"; do args+=(-c "$c"); done
    qemu-io -f "$fmt" "${args[@]}" "$img" >/dev/null ||
        fail "qemu-io on $img failed"
}

# make_chain DIR COMPAT BASE-FORMAT: DIR/base.{raw,qcow2} (16M, shorter
# than the others), DIR/mid.qcow2 (24M, 32k clusters), DIR/top.qcow2 (32M),
# with relative backing names, as qemu-img stores them.
make_chain ()
{
    local dir="$1" compat="$2" bfmt="$3"
    mkdir "$dir"
    (
        cd "$dir"
        if [ "$bfmt" = raw ]; then
            truncate -s 16M base.raw
            qio base.raw raw 'write -P 0x11 0 8M' 'write -P 0x12 12M 1M'
            # A hole inside the data: qemu-nbd reports it as a hole.
            fallocate -p -o 1M -l 1M base.raw 2>/dev/null || true
        else
            qemu-img create -q -f qcow2 -o compat="$compat",cluster_size=4k \
                base.qcow2 16M
            qio base.qcow2 qcow2 'write -P 0x11 0 8M' 'write -P 0x12 12M 1M' \
                'write -z 1M 1M' 'discard 2M 256k' 'write -P 0x13 3001 7777'
        fi
        qemu-img create -q -f qcow2 -o compat="$compat",cluster_size=32k \
            -b "base.$bfmt" -F "$bfmt" mid.qcow2 24M
        qio mid.qcow2 qcow2 \
            'write -P 0x22 4M 2M' 'write -z 6M 1M' 'discard 7M 512k' \
            'write -P 0x23 20M 100k' 'write -P 0x24 12345 54321' \
            'write -z 8000001 70000' 'write -P 0x25 15M 2M'
        qemu-img create -q -f qcow2 -o compat="$compat",cluster_size=64k \
            -b mid.qcow2 -F qcow2 top.qcow2 32M
        qio top.qcow2 qcow2 \
            'write -P 0x33 5M 33k' 'write -z 0 512k' 'discard 4M 64k' \
            'write -P 0x34 30M 1M' 'write -P 0x35 100000 3' \
            'write -z 7M 1M' 'write -P 0x36 16000000 1000000' \
            'discard 20M 64k' 'write -P 0x37 23M 2M'
    )
}

# check_chain DIR WORKLOAD-OPTIONS...
check_chain ()
{
    local dir="$1" b
    shift
    local top="$dir/top.qcow2"

    echo "== $dir"
    sha256sum "$dir"/base.* "$dir/mid.qcow2" >"$dir.sums"

    # Reads: the whole disk, as qemu-img reads it through the chain.
    qemu-img convert -O raw "$top" "$dir.expected"
    zq_nbdkit -r -- file="$top" --run "nbdcopy \"\$uri\" $dir.got" ||
        fail "$dir: reading through the plugin failed"
    cmp "$dir.expected" "$dir.got" ||
        fail "$dir: the plugin reads other bytes than qemu-img convert"

    # Extents: the backing chain's data is data, as qemu-nbd says.
    qemu_map "$top" | map_canon >"$dir.qemu.map"
    plugin_map "$top" | map_canon >"$dir.plugin.map"
    map_compare "$dir.qemu.map" "$dir.plugin.map" ||
        fail "$dir: base:allocation differs from qemu-nbd's"
    grep -q ' 0$' "$dir.plugin.map" ||
        fail "$dir: no data extent at all (the test is broken)"

    # Writes: partial clusters copy up from the chain; trim and
    # write-zeroes must not let the backing data show through.
    cp "$dir.expected" "$dir.ref"
    zq_nbdkit -- file="$top" \
        --run "zq-workload --seed 11 --ops 1200 --connections 2 \
                 --reference $dir.ref --cluster-size 65536 $* \"\$uri\"" ||
        fail "$dir: the workload failed (see above)"

    qemu_clean "$top" || fail "$dir: qemu-img check is not clean"
    qemu-img compare -f qcow2 -F raw "$top" "$dir.ref" ||
        fail "$dir: the image (through its chain) and the reference differ"

    sha256sum --quiet -c "$dir.sums" ||
        fail "$dir: a backing file changed"
    # The backing chain is still what it was: qemu reads it the same.
    for b in "$dir/mid.qcow2" "$dir"/base.qcow2; do
        [ -f "$b" ] || continue
        qemu-img check "$b" >/dev/null 2>&1 || fail "$dir: $b is damaged"
    done
}

make_chain v3-raw 1.1 raw
check_chain v3-raw

make_chain v3-qcow2 1.1 qcow2
check_chain v3-qcow2

# Version 2 has no zero flag: write-zeroes writes zeroes, and trim leaves
# clusters as they are rather than show the backing data again.
make_chain v2-raw 0.10 raw
check_chain v2-raw --trim-keeps-data

# 4k clusters over a 64k-cluster v2 qcow2 backing file shorter than the
# image, four connections, and L2 caches of two tables in every layer.
echo "== small-clusters"
mkdir small
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=64k small/b.qcow2 40M
qio small/b.qcow2 qcow2 'write -P 1 0 40M'
qemu-img create -q -f qcow2 -o cluster_size=4k -b b.qcow2 -F qcow2 \
    small/t.qcow2 64M
qio small/t.qcow2 qcow2 'write -P 2 1M 3M' 'write -z 10M 5M'
sha256sum small/b.qcow2 >small.sums
qemu-img convert -O raw small/t.qcow2 small.ref
zq_nbdkit -- file=small/t.qcow2 l2-cache-size=8k \
    --run "zq-workload --seed 3 --ops 2000 --connections 4 \
             --reference small.ref --cluster-size 4096 \"\$uri\"" ||
    fail "small-clusters: the workload failed (see above)"
qemu_clean small/t.qcow2 || fail "small-clusters: qemu-img check is not clean"
qemu-img compare -f qcow2 -F raw small/t.qcow2 small.ref ||
    fail "small-clusters: the image and the reference differ"
sha256sum --quiet -c small.sums || fail "small-clusters: the backing file changed"
qemu_map small/t.qcow2 | map_canon >small.qemu.map
plugin_map small/t.qcow2 | map_canon >small.plugin.map
map_compare small.qemu.map small.plugin.map ||
    fail "small-clusters: base:allocation differs from qemu-nbd's"
