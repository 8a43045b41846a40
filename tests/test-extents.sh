#!/usr/bin/env bash
# Block status through the plugin describes every byte as qemu-nbd does
# for the same image: holes, zero clusters, discarded clusters and data,
# over v2 and v3, preallocated and not, 512-byte to 2 MiB clusters.  And
# every range the plugin calls zero reads as zeroes.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io qemu-nbd nbdinfo cmp awk
plugin_ok
scratch_dir

# name create-options size
images=(
    "v3-64k     compat=1.1,cluster_size=64k                          32M"
    "v2-64k     compat=0.10,cluster_size=64k                         32M"
    "v3-512     compat=1.1,cluster_size=512                          8M"
    "v2-512     compat=0.10,cluster_size=512                         8M"
    "v3-2M      compat=1.1,cluster_size=2M                           64M"
    "v3-meta    compat=1.1,cluster_size=64k,preallocation=metadata   32M"
    "v2-meta    compat=0.10,cluster_size=4k,preallocation=metadata   16M"
    "v3-full    compat=1.1,cluster_size=64k,preallocation=full       16M"
    "v3-2M-full compat=1.1,cluster_size=2M,preallocation=full        16M"
)

fill ()
{
    qemu-io -f qcow2 \
        -c 'write -P 0x11 0 100000' \
        -c 'write -P 0x22 1M 1' \
        -c 'write -P 0x33 2097151 2' \
        -c 'write -z 1M 512k' \
        -c 'write -P 0x44 2M 3M' \
        -c 'write -z 3M 1M' \
        -c 'discard 4M 512k' \
        -c 'write -z 6M 2M' \
        -c 'write -P 0x55 6M 4096' \
        -c 'write -P 0x66 7M 65536' \
        -c 'discard 7M 65536' \
        -c "write -P 0x77 $(( $2 - 4096 )) 4096" \
        "$1" >/dev/null
}

failures=0
for image in "${images[@]}"; do
    read -r name opts size <<<"$image"
    img="$name.qcow2"
    qemu-img create -q -f qcow2 -o "$opts" "$img" "$size"
    bytes=$(qemu-img info --output=json "$img" |
            sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')
    fill "$img" "$bytes"
    qemu-img convert -f qcow2 -O raw "$img" "$name.raw"
    before=$(sha256 "$img")

    qemu_map "$img" >"$name.qemu.map"
    if ! plugin_map "$img" >"$name.plugin.map" 2>"$name.err"; then
        cat "$name.err" >&2
        echo "FAIL: $name: nbdinfo --map through the plugin failed" >&2
        failures=$(( failures + 1 ))
        continue
    fi
    map_canon <"$name.qemu.map" >"$name.qemu.canon"
    if ! map_canon <"$name.plugin.map" >"$name.plugin.canon" ||
       [ ! -s "$name.plugin.canon" ]; then
        echo "FAIL: $name: the plugin's map has gaps or is empty" >&2
        cat "$name.plugin.map" >&2
        failures=$(( failures + 1 ))
        continue
    fi

    # qemu-nbd's "data,zero" (2) on allocated clusters comes from holes
    # in the host file; the plugin may say "data" (0) there.
    if ! map_compare "$name.qemu.canon" "$name.plugin.canon" zero-hint \
            >"$name.diff"; then
        echo "FAIL: $name ($opts): maps differ:" >&2
        cat "$name.diff" >&2
        echo "--- qemu-nbd:" >&2;   cat "$name.qemu.map" >&2
        echo "--- zqcow2:" >&2;     cat "$name.plugin.map" >&2
        failures=$(( failures + 1 ))
    fi

    # Whatever the plugin calls zero must read as zeroes.
    while read -r start end type; do
        if (( type & 2 )) &&
           ! cmp -s -n $(( end - start )) -i "$start:0" "$name.raw" /dev/zero
        then
            echo "FAIL: $name: bytes $start to $end are reported zero" \
                 "(type $type) but are not" >&2
            failures=$(( failures + 1 ))
        fi
    done <"$name.plugin.canon"

    [ "$(sha256 "$img")" = "$before" ] || {
        echo "FAIL: $name: the image changed while mapped read-only" >&2
        failures=$(( failures + 1 ))
    }
    rm -f "$name".*
done

[ $failures -eq 0 ] || fail "$failures failure(s)"
