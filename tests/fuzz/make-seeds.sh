#!/usr/bin/env bash
# Makes the seed corpora of the fuzzers in OUTDIR (made if missing):
#   OUTDIR/image  small qcow2 images, for fuzz-image-ro and fuzz-image-rw:
#                 512-byte and 4 KiB clusters (16 KiB for extended L2),
#                 plain, compressed, extended L2, snapshots, bitmaps,
#                 backing file named, external data file, version 2, odd
#                 refcount widths, zoned images with written zones;
#   OUTDIR/nbd    client sessions for fuzz-nbd: handshakes, options and
#                 requests of every kind.
# Usage: make-seeds.sh OUTDIR [ZQCOW2_IMG] [ZQCOW2_NBD]
# qemu-img and qemu-io make the plain images; zqcow2-img (and zqcow2-nbd
# with nbdsh, to write zones) the zoned ones, skipped when absent.  Takes
# a few seconds; the images are a few KiB each.

set -euo pipefail

out="$(mkdir -p "$1" && cd "$1" && pwd)"
img_tool="${2:-zqcow2-img}"
nbd_server="${3:-zqcow2-nbd}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

mkdir -p "$out/image" "$out/nbd"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# qemu-img IMAGE CREATE-OPTIONS SIZE, then the qemu-io commands given.
qimg ()
{
  local name="$1" opts="$2" size="$3"
  shift 3
  qemu-img create -q -f qcow2 -o "$opts" "$name" "$size"
  local c
  for c in "$@"; do
    qemu-io -f qcow2 -c "$c" "$name" >/dev/null
  done
}

writes=('write -P 0x11 0 4k' 'write -P 0x22 100k 1k' 'write -z 200k 8k'
        'write -P 0x33 1020k 4k')

qimg plain-512.qcow2 cluster_size=512 1M "${writes[@]}"
qimg plain-4k.qcow2 cluster_size=4k 1M "${writes[@]}" 'discard 100k 4k'
qimg empty-512.qcow2 cluster_size=512 64k
qimg refcount1-512.qcow2 cluster_size=512,refcount_bits=1 256k \
  'write -P 0x44 0 2k'
qimg refcount64-4k.qcow2 cluster_size=4k,refcount_bits=64 256k \
  'write -P 0x55 8k 8k'
qimg lazy-4k.qcow2 cluster_size=4k,lazy_refcounts=on 256k \
  'write -P 0x66 0 4k'
qimg v2-512.qcow2 cluster_size=512,compat=0.10 256k 'write -P 0x77 0 2k'
qimg extl2-16k.qcow2 cluster_size=16k,extended_l2=on 1M \
  'write -P 0x88 0 1k' 'write -P 0x99 17k 2k' 'write -z 40k 1k'
qimg snapshots-512.qcow2 cluster_size=512 256k 'write -P 0x12 0 4k'
qemu-img snapshot -c first snapshots-512.qcow2
qemu-io -f qcow2 -c 'write -P 0x13 1k 2k' snapshots-512.qcow2 >/dev/null
qemu-img snapshot -c second snapshots-512.qcow2
qimg bitmap-4k.qcow2 cluster_size=4k 1M 'write -P 0x14 0 4k'
qemu-img bitmap --add bitmap-4k.qcow2 dirty0
truncate -s 256k base.raw
qimg backing-512.qcow2 cluster_size=512,backing_file=base.raw,backing_fmt=raw \
  256k
qimg datafile-4k.qcow2 cluster_size=4k,data_file=data.raw 256k \
  'write -P 0x15 0 8k'
qimg datafile-raw-4k.qcow2 \
  cluster_size=4k,data_file=data2.raw,data_file_raw=on 64k

# Compressed clusters, zlib and zstd.
head -c 64k /dev/zero | tr '\0' 'z' > pattern.raw
head -c 8k /dev/urandom >> pattern.raw
qemu-img convert -c -f raw -O qcow2 -o cluster_size=4k pattern.raw \
  compressed-zlib-4k.qcow2
qemu-img convert -c -f raw -O qcow2 \
  -o cluster_size=4k,compression_type=zstd pattern.raw \
  compressed-zstd-4k.qcow2
cp ./*.qcow2 "$out/image/"

# Zoned images: 512-byte and 4 KiB clusters, conventional zones, limits.
if command -v "$img_tool" >/dev/null 2>&1; then
  zcreate ()
  {
    "$img_tool" create -q -o "zone.mode=host-managed,$2" "$1" "$3"
  }
  zcreate zoned-512.qcow2 \
    cluster_size=512,zone.size=64k,zone.conventional_zones=1 512k
  limits=zone.max_open_zones=2,zone.max_active_zones=3
  zcreate zoned-4k.qcow2 \
    "cluster_size=4k,zone.size=256k,zone.capacity=192k,$limits" 1M
  zcreate zoned-short-4k.qcow2 \
    cluster_size=4k,zone.size=256k,zone.allow_short_last_zone=on 600k
  # Write pointers that are not at the start, and a full zone.
  if command -v "$nbd_server" >/dev/null 2>&1 &&
     /usr/bin/python3 -c 'import nbd' 2>/dev/null; then
    "$nbd_server" --run '/usr/bin/python3 -c "
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b\"\\x21\" * 4096, 0)
h.pwrite(b\"\\x22\" * 8192, 65536)
h.pwrite(b\"\\x23\" * 512, 131072)
h.flush(); h.shutdown()" "$uri"' zoned-512.qcow2
    "$nbd_server" --run '/usr/bin/python3 -c "
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b\"\\x31\" * 4096, 0)
h.pwrite(b\"\\x32\" * 8192, 262144)
h.flush(); h.shutdown()" "$uri"' zoned-4k.qcow2
  fi
  "$img_tool" zone finish zoned-4k.qcow2 2
  "$img_tool" zone open zoned-short-4k.qcow2 1
  cp zoned-*.qcow2 "$out/image/"
fi

/usr/bin/python3 "$here/nbd-seeds.py" "$out/nbd"
