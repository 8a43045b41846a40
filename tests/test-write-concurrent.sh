#!/usr/bin/env bash
# Many small writes in flight at once into the same clusters, as a
# sequential 4k stream or a zoned file system's log sends them: clusters
# allocated to the image alone (written in place, side by side), clusters
# shared with an internal snapshot and compressed clusters (copied on
# write), zero clusters and clusters never allocated (allocated by the
# first write, which the others in the cluster must wait for).  Each
# write covers its own bytes, so the outcome does not depend on the order
# the server runs them in.  Verdicts: qemu-img compare against a raw
# reference with the same writes applied, the snapshot against its dump
# taken before, and qemu-img check.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io /usr/bin/python3
requires_run /usr/bin/python3 -c 'import nbd'
plugin_ok
scratch_dir

CS=65536

# run NAME CREATE-OPTIONS SEED
run ()
{
    local name="$1" opts="$2" seed="$3" img="$1.qcow2"

    echo "== $name: $opts, seed $seed"
    # Clusters 0-31 compressed; then 0-7 normal and 8-15 zero, both
    # shared with snapshot s; 16-23 normal and 24-27 zero after it; 64-127
    # never allocated.
    /usr/bin/python3 -c '
import sys
with open(sys.argv[1], "wb") as f:
    for c in range(32):
        f.write(bytes([0x40 + c]) * 65536)
' "$name.base.raw"
    qemu-img convert -q -c -f raw -O qcow2 -o "cluster_size=$CS${opts:+,$opts}" \
        "$name.base.raw" "$img"
    qemu-img resize -q "$img" 8M
    qemu-io -f qcow2 -c "write -P 0x11 0 512k" -c "write -z 512k 512k" \
        "$img" >/dev/null
    qemu-img snapshot -c s "$img"
    qemu-io -f qcow2 -c "write -P 0x22 1M 512k" -c "write -z 1536k 256k" \
        "$img" >/dev/null
    qemu-img convert -l snapshot.name=s -O raw "$img" "$name.s.raw"
    qemu-img convert -O raw "$img" "$name.ref"

    zq_nbdkit -t 16 -- file="$img" --run \
        "/usr/bin/python3 - \"\$uri\" $name.ref $seed" <<'EOF' ||
import random, sys
import nbd

uri, ref, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
CS, SLOT, DEPTH = 65536, 4096, 64

# Every cluster of the 8 MiB: 12 of its 16 slots of 4k are written
# (head and tail of a cluster are often left for copy-on-write), in
# 4k writes or 512-byte ones; neighbouring clusters are mixed so that
# writes into one cluster are in flight together.
writes = []
for group in range(0, 128, 4):
    pieces = []
    for c in range(group, group + 4):
        for slot in rng.sample(range(16), 12):
            off = c * CS + slot * SLOT
            if rng.random() < 0.25:
                pieces += [(off + i * 512, 512) for i in range(8)]
            else:
                pieces.append((off, SLOT))
    rng.shuffle(pieces)
    writes += pieces

h = nbd.NBD()
h.connect_uri(uri)
with open(ref, "r+b") as f:
    for n, (off, length) in enumerate(writes):
        data = bytes([(off // 512 * 7 + 1) % 251 + 1]) * length
        f.seek(off)
        f.write(data)
        while h.aio_in_flight() >= DEPTH:
            h.poll(-1)
        h.aio_pwrite(data, off)
while h.aio_in_flight() > 0:
    h.poll(-1)
h.flush()
h.shutdown()
print("%d writes, %d in flight at most" % (len(writes), DEPTH))
EOF
        fail "$name: the writes failed (see above)"

    qemu_clean "$img" || fail "$name: qemu-img check is not clean"
    qemu-img compare -q -f qcow2 -F raw "$img" "$name.ref" ||
        fail "$name: the image differs from the reference"
    cp "$img" "$name.applied.qcow2"
    qemu-img snapshot -a s "$name.applied.qcow2"
    qemu-img compare -q -f qcow2 -F raw "$name.applied.qcow2" \
        "$name.s.raw" || fail "$name: snapshot s lost its data"
    rm -f "$name".*
}

run plain "" 1
run plain2 "" 2
run extl2 "extended_l2=on" 3
echo "concurrent writes into shared clusters: ok"
