#!/usr/bin/env bash
# Reads through the plugin (read-only) return the bytes qemu-img sees, for
# images qemu-img made over a matrix of creation options, and the image
# file is not changed by the read-only session.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io nbdcopy cmp sha256sum
plugin_ok
scratch_dir

# compat cluster_size refcount_bits lazy_refcounts preallocation size
# ("-" = option not given; refcount_bits and lazy_refcounts are v3 only).
combos=(
    "0.10 65536   -  -   off      32M"
    "0.10 512     -  -   metadata 16M"
    "0.10 2M      -  -   full     16M"
    "0.10 4096    -  -   off      32M"
    "1.1  512     1  off off      16M"
    "1.1  4096    16 on  metadata 32M"
    "1.1  65536   64 off full     16M"
    "1.1  2M      16 on  off      64M"
    "1.1  4096    1  off full     16M"
    "1.1  65536   16 on  metadata 32M"
    "1.1  2M      64 off metadata 32M"
    "1.1  512     64 on  off      16M"
)

# Data everywhere that matters: aligned and not, crossing clusters and
# 2 MiB boundaries, zeroes and discards over data, the last byte.
fill ()
{
    local img="$1" size="$2"
    qemu-io -f qcow2 \
        -c 'write -P 0x11 0 64k' \
        -c 'write -P 0x22 65535 3' \
        -c 'write -P 0x33 1000 70000' \
        -c 'write -P 0x44 3M 2M' \
        -c 'write -P 0x55 5242881 1234567' \
        -c 'write -z 3500001 300000' \
        -c 'write -z 8M 2M' \
        -c 'write -P 0x5a 8388609 4095' \
        -c 'discard 4M 1M' \
        -c 'discard 5300001 100000' \
        -c 'write -P 0x77 10M 4M' \
        -c 'write -z 11M 1M' \
        -c 'discard 12582912 65536' \
        -c "write -P 0x66 $(( size - 777 )) 777" \
        -c "write -P 0x99 $(( size - 2097153 )) 2" \
        "$img" >/dev/null
}

failures=0
for combo in "${combos[@]}"; do
    read -r compat cs rb lazy prealloc size <<<"$combo"
    name="compat=$compat cluster_size=$cs"
    opts="compat=$compat,cluster_size=$cs,preallocation=$prealloc"
    if [ "$rb" != - ]; then
        opts+=",refcount_bits=$rb"; name+=" refcount_bits=$rb"
    fi
    if [ "$lazy" != - ]; then
        opts+=",lazy_refcounts=$lazy"; name+=" lazy_refcounts=$lazy"
    fi
    name+=" preallocation=$prealloc size=$size"

    rm -f img.qcow2 expected.raw actual.raw
    qemu-img create -q -f qcow2 -o "$opts" img.qcow2 "$size"
    bytes=$(qemu-img info --output=json img.qcow2 |
            sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')
    fill img.qcow2 "$bytes"
    qemu-img convert -f qcow2 -O raw img.qcow2 expected.raw
    before=$(sha256 img.qcow2)

    if ! zq_nbdkit -r -- file=img.qcow2 \
            --run 'nbdcopy --no-extents "$uri" actual.raw' 2>nbdkit.err; then
        echo "FAIL: $name: nbdkit/nbdcopy failed:" >&2
        cat nbdkit.err >&2
        failures=$(( failures + 1 ))
        continue
    fi
    if ! cmp expected.raw actual.raw >&2; then
        echo "FAIL: $name: bytes read through the plugin differ" \
             "from qemu-img convert" >&2
        failures=$(( failures + 1 ))
    fi
    if [ "$(sha256 img.qcow2)" != "$before" ]; then
        echo "FAIL: $name: the image changed during a read-only session" >&2
        failures=$(( failures + 1 ))
    fi
done

[ $failures -eq 0 ] || fail "$failures failure(s) over ${#combos[@]} images"
