#!/usr/bin/env bash
# Compressed clusters (zlib and zstd; 4k, 64k and 2M clusters; written by
# "qemu-img convert -c" and "qemu-io write -c"): the plugin reads them as
# qemu does, even when their data crosses a host cluster boundary; writes,
# trims and write-zeroes over them leave an image qemu-img checks clean
# (no errors, no leaks: the compressed data's refcounts are released) and
# that holds exactly the bytes of a raw reference.  A corrupt compressed
# cluster reads as EIO, with a message naming it, and is left unchanged.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires qemu-img qemu-io nbdcopy python3 zq-workload zq-zonetest cmp
plugin_ok
zqimg_ok
scratch_dir

nbdkit --dump-plugin "$PLUGIN" | grep -qx 'zqcow2_compression=zlib,zstd' ||
    fail "nbdkit --dump-plugin does not list zqcow2_compression=zlib,zstd"

SIZE=$((16 << 20))

# A raw file whose clusters compress to very different sizes: random
# bytes, repeated bytes, text, small-alphabet noise and zeroes, in pieces
# of varied length, so compressed data lands at every offset of the host
# clusters and some of it crosses their boundaries.
python3 - "$SIZE" <<'EOF'
import random, sys
size = int(sys.argv[1])
rng = random.Random(20261121)
out = bytearray()
while len(out) < size:
    n = rng.choice([512, 3000, 4096, 10000, 65536, 200000, 1 << 20])
    kind = rng.randrange(6)
    if kind == 0:
        out += rng.randbytes(n)
    elif kind == 1:
        out += bytes(n)
    elif kind == 2:
        out += bytes([rng.randrange(256)]) * n
    elif kind == 3:
        out += (b"pattern %d " % rng.randrange(1000)) * (n // 12)
    elif kind == 4:
        out += bytes(rng.randrange(16) for _ in range(min(n, 20000)))
    else:
        out += bytes(rng.choice(b"abcdefgh ") for _ in range(min(n, 20000)))
open("raw.img", "wb").write(out[:size])
EOF

# compressed_entries IMG: one line per compressed L2 entry of IMG's active
# L1 table: "GUEST-OFFSET HOST-OFFSET BYTES CROSSES" (CROSSES is 1 when the
# data spans more than one host cluster), from the L2 tables themselves.
compressed_entries ()
{
    python3 - "$1" <<'EOF'
import struct, sys
f = open(sys.argv[1], "rb")
hdr = f.read(104)
cluster_bits, = struct.unpack(">I", hdr[20:24])
l1_size, l1_offset = struct.unpack(">IQ", hdr[36:48])
cs = 1 << cluster_bits
shift = 62 - (cluster_bits - 8)
f.seek(l1_offset)
l1 = struct.unpack(">%dQ" % l1_size, f.read(8 * l1_size))
for i, l1e in enumerate(l1):
    l2_offset = l1e & 0x00fffffffffffe00
    if not l2_offset:
        continue
    f.seek(l2_offset)
    l2 = struct.unpack(">%dQ" % (cs // 8), f.read(cs))
    for j, e in enumerate(l2):
        if not e & (1 << 62):
            continue
        host = e & ((1 << shift) - 1)
        sectors = ((e >> shift) & ((1 << (cluster_bits - 8)) - 1)) + 1
        nbytes = sectors * 512 - (host & 511)
        crosses = int(host // cs != (host + nbytes - 1) // cs)
        print((i * (cs // 8) + j) * cs, host, nbytes, crosses)
EOF
}

# check_clean NAME IMG: qemu-img check finds no errors and no leaks.
check_clean ()
{
    qemu_clean "$2" || fail "$1: qemu-img check is not clean"
}

# read_equal NAME IMG: the plugin reads IMG as qemu-img does.
read_equal ()
{
    rm -f "$1.plugin.raw"
    zq_nbdkit -r -- file="$2" \
        --run "nbdcopy --no-extents \"\$uri\" $1.plugin.raw" ||
        fail "$1: reading through the plugin failed"
    qemu-img convert -O raw "$2" "$1.qemu.raw"
    cmp "$1.plugin.raw" "$1.qemu.raw" ||
        fail "$1: the plugin and qemu-img read different bytes"
}

# One image per compression type and cluster size: read it, then run the
# seeded workload over it, mirrored into a raw copy of its content.
crossing=0
seed=1
for type in zlib zstd; do
    for cs in 4096 65536 2097152; do
        name=$type-$cs
        echo "== $name"
        img=$name.qcow2
        qemu-img convert -c -O qcow2 \
            -o cluster_size=$cs,compression_type=$type raw.img "$img"
        compressed_entries "$img" >"$name.entries"
        [ -s "$name.entries" ] || fail "$name: qemu-img wrote no compressed clusters"
        crossing=$((crossing + $(awk '{ n += $4 } END { print n + 0 }' "$name.entries")))

        read_equal "$name" "$img"
        cmp "$name.plugin.raw" raw.img || fail "$name: the content is not raw.img"

        mv "$name.qemu.raw" "$name.ref"
        zq_nbdkit -- file="$img" \
            --run "zq-workload --seed $seed --ops 600 --connections 2 \
                     --reference $name.ref --cluster-size $cs \"\$uri\"" ||
            fail "$name: the workload failed (see above)"
        check_clean "$name" "$img"
        qemu-img compare -f qcow2 -F raw "$img" "$name.ref" ||
            fail "$name: image and reference differ after the workload"
        seed=$((seed + 1))
        rm -f "$img" "$name".*raw "$name.ref"
    done
done
[ "$crossing" -gt 0 ] ||
    fail "no compressed cluster's data crosses a host cluster boundary"
echo "$crossing compressed clusters cross a host cluster boundary"

# Trim, write-zeroes (with and without may-trim, whole and partial
# clusters) and writes over nothing but compressed clusters, on version 3
# and version 2 images: every compressed cluster's data is released.
for compat in 1.1 0.10; do
    for type in zlib zstd; do
        [ "$compat" = 0.10 ] && [ "$type" = zstd ] && continue
        name=ops-$compat-$type
        echo "== $name"
        img=$name.qcow2
        qemu-img convert -c -O qcow2 \
            -o compat=$compat,cluster_size=4k,compression_type=$type \
            raw.img "$img"
        cp raw.img "$name.ref"
        zq_nbdkit -- file="$img" --run '
            qemu-io -f raw \
                -c "discard 0 1M" \
                -c "discard 1000001 1M" \
                -c "write -z 3M 1M" \
                -c "write -z -u 4M 1M" \
                -c "write -z 5000001 300001" \
                -c "write -P 0x11 6000001 5000" \
                -c "write -z -u 8M 8M" \
                -c "flush" \
                "$uri" >/dev/null
        ' || fail "$name: the requests failed"
        python3 - "$name.ref" <<'EOF'
import sys
f = open(sys.argv[1], "r+b")
def put(offset, data):
    f.seek(offset); f.write(data)
def zero(offset, n):
    put(offset, bytes(n))
zero(0, 1 << 20)                            # whole clusters only
zero(1003520, 2048000 - 1003520)       # [1000001, 2048577) rounded in
zero(3 << 20, 1 << 20)
zero(4 << 20, 1 << 20)
zero(5000001, 300001)
put(6000001, b"\x11" * 5000)
zero(8 << 20, 8 << 20)
EOF
        check_clean "$name" "$img"
        qemu-img compare -f qcow2 -F raw "$img" "$name.ref" ||
            fail "$name: image and reference differ"
    done
done

# Clusters compressed by qemu-io's "write -c", then overwritten in part.
echo "== qemu-io write -c"
qemu-img create -q -f qcow2 -o cluster_size=64k,compression_type=zstd qio.qcow2 4M
qemu-io -f qcow2 \
    -c 'write -c -P 0x21 0 64k' \
    -c 'write -c -P 0x22 64k 64k' \
    -c 'write -c 1M 64k' \
    -c 'write -c -P 0x23 2M 128k' \
    qio.qcow2 >/dev/null
[ "$(compressed_entries qio.qcow2 | wc -l)" -eq 5 ] ||
    fail "qemu-io wrote $(compressed_entries qio.qcow2 | wc -l) compressed clusters, not 5"
read_equal qio qio.qcow2
zq_nbdkit -- file=qio.qcow2 --run '
    qemu-io -f raw -c "write -P 0x31 100 200" -c "write -P 0x32 2162152 1000" \
        "$uri" >/dev/null' || fail "qio: writing failed"
qemu-io -f qcow2 \
    -c 'read -P 0x21 0 100' -c 'read -P 0x31 100 200' \
    -c 'read -P 0x21 300 65236' -c 'read -P 0x22 64k 64k' \
    -c 'read -P 0x23 2M 65000' -c 'read -P 0x32 2162152 1000' \
    -c 'read -P 0x23 2163152 65072' \
    qio.qcow2 >qio.out || { cat qio.out; fail "qio: wrong content after writes"; }
check_clean qio qio.qcow2

# A corrupt compressed cluster: the start of its data overwritten (raw
# deflate and zstd without checksums cannot tell flipped bytes in the
# middle of a stored block from data; a deflate block of the reserved type
# 3 and a zstd frame with a wrong magic number are always invalid).
# Reading it fails with EIO and a message naming its guest offset; a
# partial write into it (which must read it first) fails the same way; the
# file is left as it was, and the clusters around it still read.
for type in zlib zstd; do
    name=corrupt-$type
    echo "== $name"
    img=$name.qcow2
    qemu-img convert -c -O qcow2 -o cluster_size=64k,compression_type=$type \
        raw.img "$img"
    read -r guest host nbytes crosses < <(compressed_entries "$img" | sed -n 5p)
    [ -n "$guest" ] || fail "$name: no compressed cluster to corrupt"
    python3 - "$img" "$host" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    f.write(b"\xff" * 8)
EOF
    before=$(sha256 "$img")
    hex=$(printf '0x%x' "$guest")

    if zq_nbdkit -r -- file="$img" --run "nbdcopy --no-extents \"\$uri\" out.raw" \
            2>"$name.err"; then
        fail "$name: reading the corrupt cluster at $hex succeeded"
    fi
    grep -q "compressed cluster at guest offset $hex .*corrupt" "$name.err" ||
        { cat "$name.err" >&2; fail "$name: no message naming guest offset $hex"; }

    zq_nbdkit -- file="$img" --run "
        qemu-io -f raw -c 'read $((guest - 65536)) 64k' \
            -c 'read $((guest + 65536)) 64k' \"\$uri\" >reads.out &&
        ! qemu-io -f raw -c 'read $guest 512' \"\$uri\" >/dev/null 2>&1 &&
        ! qemu-io -f raw -c 'write -P 0x77 $((guest + 512)) 512' \
            \"\$uri\" >/dev/null 2>&1
    " 2>"$name.err2" || { cat "$name.err2" >&2; fail "$name: wrong outcomes around $hex"; }
    grep -q "compressed cluster at guest offset $hex .*corrupt" "$name.err2" ||
        { cat "$name.err2" >&2; fail "$name: no message for the write at $hex"; }
    [ "$(sha256 "$img")" = "$before" ] || fail "$name: the image changed"
    rm -f "$img"
done

# A zoned image with compression_type=zstd is served as before.
echo "== zoned, zstd"
zoned_create zoned.qcow2 8M \
    zone.size=1M,zone.conventional_zones=1,compression_type=zstd
zq_nbdkit -- file=zoned.qcow2 --run 'zq-zonetest script "$uri"' <<'EOF' ||
set zs 1M
row zoned zstd
write 1000 3000 tag=9 => ok
write z1 100k tag=1 => ok
write z2 zs tag=2 => ok
read 1000 3000 => tag=9
read z1 100k => tag=1
read z2 zs => tag=2
EOF
    fail "the zoned zstd image failed (see above)"
"$ZQCOW2_IMG" check zoned.qcow2 >zoned.check 2>&1 ||
    { cat zoned.check >&2; fail "zqcow2-img check: the zoned zstd image is not clean"; }
