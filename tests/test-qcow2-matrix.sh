#!/usr/bin/env bash
# Images as Debian's qemu-img 7.2 makes them, across its create options
# (cluster sizes from 512 bytes to 2 MiB, refcount widths from 1 to 64
# bits, version 2 and 3, lazy refcounts, zstd, extended L2 entries,
# preallocation, backing files, external data files), each filled by
# qemu-io (compressed clusters where allowed), then a seeded workload
# through the plugin mirrored to a raw reference: qemu-img check is clean
# and qemu-img compare finds the image equal to the reference.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io cmp zq-workload
plugin_ok
scratch_dir

SIZE=$(( 64 * 1024 * 1024 ))

# fill IMG CLUSTER-BYTES COMPRESSED: data, zeroes, discards; compressed
# clusters (cluster-aligned, as qemu requires) unless COMPRESSED is no.
fill ()
{
    local cs=$2 ops=()
    ops=(-c "write -P 0x21 $(( cs / 2 + 3 )) $(( 3 * cs ))"
         -c "write -P 0x22 20M 3M" -c "write -z 21M 512k"
         -c "discard 22M 256k" -c "write -P 0x23 $(( SIZE - 5000 )) 5000")
    if [ "$3" != no ]; then
        ops+=(-c "write -c -P 0x24 $(( 8 * cs )) $cs"
              -c "write -c -P 0x25 40M $(( 2 * cs ))")
    fi
    qemu-io -f qcow2 "${ops[@]}" "$1" >/dev/null ||
        fail "$1: qemu-io could not fill it"
}

# case NAME CREATE-OPTIONS CLUSTER-BYTES [BACKING-FORMAT [WORKLOAD-OPTIONS]]
case_ ()
{
    local name="$1" opts="$2" cs="$3" bfmt="${4:-}" compressed=yes
    local backing=()
    shift 3; [ $# -gt 0 ] && shift

    echo "== $name: $opts${bfmt:+, $bfmt backing file}"
    if [ -n "$bfmt" ]; then
        qemu-img create -q -f "$bfmt" "$name.base" $(( SIZE / 2 ))
        qemu-io -f "$bfmt" -c 'write -P 0x11 0 30M' "$name.base" >/dev/null
        backing=(-b "$name.base" -F "$bfmt")
    fi
    qemu-img create -q -f qcow2 -o "$opts" "${backing[@]}" "$name.qcow2" \
        $SIZE || fail "$name: qemu-img create failed"
    # qemu writes compressed clusters only where nothing is allocated,
    # and never into a data file.
    [[ "$opts" == *data_file=* || "$opts" == *preallocation=* ]] &&
        compressed=no
    fill "$name.qcow2" "$cs" "$compressed"
    qemu-img convert -O raw "$name.qcow2" "$name.ref"

    zq_nbdkit -- file="$name.qcow2" \
        --run "zq-workload --seed 31 --ops 600 --connections 2 \
                 --reference $name.ref --cluster-size $cs $* \"\$uri\"" ||
        fail "$name: the workload failed (see above)"
    qemu_clean "$name.qcow2" || fail "$name: qemu-img check is not clean"
    qemu-img compare -q -f qcow2 -F raw "$name.qcow2" "$name.ref" ||
        fail "$name: the image and the reference differ"
    rm -f "$name".*
}

case_ c512-r1      cluster_size=512,refcount_bits=1                 512
case_ c4k-r8-lazy  cluster_size=4k,refcount_bits=8,lazy_refcounts=on 4096
case_ c2M-zstd     cluster_size=2M,compression_type=zstd            2097152
case_ c64k-r64     refcount_bits=64                                 65536
case_ v2           compat=0.10,cluster_size=32k                     32768
case_ v2-backing   compat=0.10                                      65536 \
    qcow2 --trim-keeps-data
case_ extl2-16k-zstd-lazy \
    extended_l2=on,cluster_size=16k,compression_type=zstd,lazy_refcounts=on \
    16384
case_ extl2-2M-r2  extended_l2=on,cluster_size=2M,refcount_bits=2   2097152
case_ extl2-raw-backing extended_l2=on,cluster_size=32k             32768 raw
case_ prealloc-metadata-extl2 preallocation=metadata,extended_l2=on 65536
case_ prealloc-falloc-r4 preallocation=falloc,refcount_bits=4      65536
case_ prealloc-full-c8k preallocation=full,cluster_size=8k          8192
case_ datafile-lazy-extl2 \
    data_file=datafile-lazy-extl2.data,lazy_refcounts=on,extended_l2=on 65536
case_ datafile-backing data_file=datafile-backing.data,cluster_size=16k \
    16384 qcow2
