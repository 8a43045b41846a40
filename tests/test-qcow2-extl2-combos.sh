#!/usr/bin/env bash
# Extended L2 entries together with a backing file, an external data file,
# and both.  An unallocated subcluster then reads from the backing file,
# and the data lives in the data file at the guest offset.  For each:
# what qemu-io wrote reads through the plugin as qemu-img reads it and
# maps as qemu-nbd maps it; the same operations through the plugin leave
# the same guest bytes and the same subcluster allocation as qemu; a
# seeded workload mirrored to a raw reference leaves an image qemu-img
# checks clean and compares equal; backing files never change; a raw data
# file stays the guest's disk.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/extl2-functions.sh"
requires qemu-img qemu-io qemu-nbd nbdinfo nbdcopy cmp sha256sum zq-workload
plugin_ok
scratch_dir

CS=65536

checked () { qemu_clean "$1" || fail "$1: qemu-img check is not clean"; }

# make_base NAME FORMAT: a 1 MiB-shorter-than-the-top backing file
# full of data, with a hole (qcow2: also zero and unallocated clusters).
make_base ()
{
    if [ "$2" = raw ]; then
        truncate -s 15M "$1"
        qemu-io -f raw -c 'write -P 0xb1 0 12M' -c 'write -P 0xb2 13M 1M' \
            "$1" >/dev/null
    else
        qemu-img create -q -f qcow2 -o cluster_size=4k "$1" 15M
        qemu-io -f qcow2 -c 'write -P 0xb1 0 12M' -c 'write -P 0xb2 13M 1M' \
            -c 'write -z 3M 100k' -c 'discard 5M 64k' "$1" >/dev/null
    fi
}

# make_top IMG OPTIONS BACKING-FORMAT: a 16 MiB extended L2 image (over
# base.BACKING-FORMAT unless that is "none").
make_top ()
{
    local backing=()
    [ "$3" = none ] || backing=(-b "base.$3" -F "$3")
    qemu-img create -q -f qcow2 -o "extended_l2=on,cluster_size=64k$2" \
        "${backing[@]}" "$1" 16M
}

# apply_ops IMG: the subcluster operations, once near the start and once
# across the end of the backing file (15 MiB).
ops_bases="0 $(( 15 * 1024 * 1024 - 7 * CS ))"

# same_allocation A B: qemu-io's map of the top layers (allocated in the
# image itself or not) are the same.
same_allocation ()
{
    qemu-io -f qcow2 -r -c map "$1" >"$1.alloc" &&
    qemu-io -f qcow2 -r -c map "$2" >"$2.alloc" &&
    diff -u "$1.alloc" "$2.alloc" >&2
}

combo ()
{
    local name="$1" options="$2" bfmt="$3" data_file="${4:-}"
    local b

    echo "== $name"
    rm -f base.* "$name".*
    if [ "$bfmt" != none ]; then
        make_base "base.$bfmt" "$bfmt"
        sha256sum "base.$bfmt" >"$name.sums"
    fi

    # What qemu wrote, read and mapped through the plugin.
    make_top "$name.qcow2" "$options" "$bfmt"
    for b in $ops_bases; do
        subcluster_ops $CS "$b"
        qemu-io -f qcow2 "${OPS[@]}" "$name.qcow2" >/dev/null ||
            fail "$name: qemu-io could not write"
    done
    checked "$name.qcow2"
    qemu-img convert -O raw "$name.qcow2" "$name.expected"
    zq_nbdkit -r -- file="$name.qcow2" \
        --run "nbdcopy \"\$uri\" $name.got" ||
        fail "$name: the plugin could not serve qemu's image"
    cmp "$name.expected" "$name.got" ||
        fail "$name: the plugin reads other bytes than qemu-img convert"
    qemu_map "$name.qcow2" | map_canon >"$name.qemu.map"
    plugin_map "$name.qcow2" | map_canon >"$name.plugin.map" ||
        fail "$name: the plugin's map has gaps"
    map_compare "$name.qemu.map" "$name.plugin.map" ||
        fail "$name: block status differs from qemu-nbd's"

    # The same operations through the plugin: same bytes, same
    # subclusters allocated in the top layer.
    make_top "$name.fresh.qcow2" \
        "${options/$data_file/$name.fresh.data}" "$bfmt"
    for b in $ops_bases; do
        subcluster_ops $CS "$b"
        zq_nbdkit -- file="$name.fresh.qcow2" --run "$(plugin_ops_cmd)" ||
            fail "$name: writing through the plugin failed"
    done
    checked "$name.fresh.qcow2"
    qemu-img compare -q "$name.qcow2" "$name.fresh.qcow2" ||
        fail "$name: written through the plugin, the guest differs"
    # Not with data_file_raw: there qemu turns a discard of clusters
    # never written into zero clusters (and without extended L2 its map
    # calls every cluster allocated); the bytes and the data file are
    # what count, and they are compared.
    if [[ "$options" != *data_file_raw=on* ]]; then
        same_allocation "$name.qcow2" "$name.fresh.qcow2" ||
            fail "$name: the plugin allocated other subclusters than qemu"
    fi

    # A seeded workload over what qemu wrote.
    cp "$name.expected" "$name.ref"
    zq_nbdkit -- file="$name.qcow2" \
        --run "zq-workload --seed 21 --ops 1000 --connections 2 \
                 --reference $name.ref --cluster-size $CS \"\$uri\"" ||
        fail "$name: the workload failed (see above)"
    checked "$name.qcow2"
    qemu-img compare -f qcow2 -F raw "$name.qcow2" "$name.ref" ||
        fail "$name: the image and the reference differ"
    if [ "$bfmt" != none ]; then
        sha256sum --quiet -c "$name.sums" ||
            fail "$name: the backing file changed"
    fi
    if [[ "$options" == *data_file_raw=on* ]]; then
        truncate -s 16M "$data_file"
        cmp "$data_file" "$name.ref" ||
            fail "$name: the raw data file is not the guest's disk"
        (( $(peek_be "$name.qcow2" 88 8) & 2 )) ||
            fail "$name: autoclear bit 1 (data_file_raw) was cleared"
    fi
    rm -f "$name".* base.*
}

combo backing-qcow2 "" qcow2
combo backing-raw "" raw
combo datafile ",data_file=datafile.data" none datafile.data
combo datafile-raw ",data_file=datafile-raw.data,data_file_raw=on" none \
    datafile-raw.data
combo datafile-backing ",data_file=datafile-backing.data" qcow2 \
    datafile-backing.data
