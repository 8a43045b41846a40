#!/usr/bin/env bash
# Extended L2 entries (incompatible bit 4, subclusters): images that qemu
# filled read through the plugin as qemu-img reads them and map as
# qemu-nbd maps them, byte for byte; writes through the plugin allocate
# only the subclusters they touch; a seeded workload of writes, zeroes and
# trims leaves an image that qemu-img checks clean and that equals a raw
# reference given the same ops.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/extl2-functions.sh"
requires qemu-img qemu-io qemu-nbd nbdinfo nbdcopy cmp awk zq-workload
plugin_ok
scratch_dir

failures=0
bad ()
{
    echo "FAIL: $*" >&2
    failures=$(( failures + 1 ))
}

# check_clean NAME IMG: qemu-img check finds no errors and no leaks, and
# zqcow2-img check (when built) says the same.
check_clean ()
{
    qemu_clean "$2" || bad "$1: qemu-img check is not clean"
    if [ -x "${ZQCOW2_IMG:-}" ]; then
        "$ZQCOW2_IMG" check "$2" >"$1.zqcheck" 2>&1 ||
            bad "$1: zqcow2-img check failed"
        diff -u "$2.check" "$1.zqcheck" >&2 ||
            bad "$1: zqcow2-img check and qemu-img check disagree"
    fi
}

for cs in 32k 64k 2M; do
    name="read-$cs"
    img="$name.qcow2"
    bytes=$(numfmt --from=iec "${cs^^}")
    qemu-img create -q -f qcow2 -o "extended_l2=on,cluster_size=$cs" \
        "$img" $(( 16 * bytes ))
    subcluster_ops "$bytes"
    qemu-io -f qcow2 "${OPS[@]}" "$img" >/dev/null
    qemu-img convert -f qcow2 -O raw "$img" "$name.raw"
    check_clean "$name" "$img"

    # Reads.
    zq_nbdkit -r -- file="$img" --run 'nbdcopy "$uri" '"$name.out" ||
        bad "$name: nbdcopy through the plugin failed"
    cmp "$name.raw" "$name.out" || bad "$name: read differs from qemu-img"

    # Block status, byte for byte as qemu-nbd.
    qemu_map "$img" | map_canon >"$name.qemu.map"
    plugin_map "$img" | map_canon >"$name.plugin.map" ||
        bad "$name: the plugin's map has gaps"
    if ! map_compare "$name.qemu.map" "$name.plugin.map" >"$name.diff"; then
        cat "$name.diff" "$name.qemu.map" "$name.plugin.map" >&2
        bad "$name: block status differs from qemu-nbd"
    fi
    # The fill leaves data, zero and unallocated subclusters: the maps
    # must show both kinds, or the comparison proves little.
    grep -q ' 0$' "$name.plugin.map" && grep -q ' 3$' "$name.plugin.map" ||
        bad "$name: the map lacks data or holes"

    # The same operations through the plugin on a fresh image give the
    # same bytes, a clean image and the same map.
    fresh="$name.fresh.qcow2"
    qemu-img create -q -f qcow2 -o "extended_l2=on,cluster_size=$cs" \
        "$fresh" $(( 16 * bytes ))
    zq_nbdkit -- file="$fresh" --run "$(plugin_ops_cmd)" ||
        bad "$name: writing through the plugin failed"
    check_clean "$name.fresh" "$fresh"
    qemu-img compare -q -f qcow2 -F qcow2 "$img" "$fresh" ||
        bad "$name: written through the plugin, the image differs"
    qemu_map "$fresh" | map_canon >"$name.fresh.map"
    if ! map_compare "$name.qemu.map" "$name.fresh.map" >"$name.diff"; then
        cat "$name.diff" >&2
        bad "$name: written through the plugin, the map differs from qemu's"
    fi
    rm -f "$name".*
done

# Preallocated images: every subcluster starts allocated (qemu looks
# into the file's holes for preallocation=metadata).
for prealloc in metadata falloc full; do
    name="prealloc-$prealloc"
    qemu-img create -q -f qcow2 \
        -o "extended_l2=on,cluster_size=64k,preallocation=$prealloc" \
        "$name.qcow2" 8M
    qemu-io -f qcow2 -c 'write -P 1 2k 2k' -c 'write -z 64k 4k' \
        -c 'discard 1M 64k' -c 'write -z 2M 64k' "$name.qcow2" >/dev/null
    qemu_map "$name.qcow2" | map_canon >"$name.qemu.map"
    plugin_map "$name.qcow2" | map_canon >"$name.plugin.map"
    if ! map_compare "$name.qemu.map" "$name.plugin.map" >"$name.diff"; then
        cat "$name.diff" >&2
        bad "$name: block status differs from qemu-nbd"
    fi
    rm -f "$name".*
done

# A 2 KiB write at a subcluster boundary of a fresh 64 KiB cluster
# allocates that subcluster alone: qemu sees the other 31 unallocated;
# a 100-byte write into a further subcluster allocates that one too,
# with zeroes around the data.
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k one.qcow2 1M
zq_nbdkit -- file=one.qcow2 \
    --run "qemu-io -f raw \"\$uri\" -c 'write -P 0x78 4096 2048' \
                                    -c 'write -P 0x79 10340 100' >/dev/null" ||
    bad "subclusters: writing through the plugin failed"
qemu-io -f qcow2 -r -c map one.qcow2 >one.map
cat >one.expected <<'END'
4 KiB (0x1000) bytes not allocated at offset 0 bytes (0x0)
2 KiB (0x800) bytes     allocated at offset 4 KiB (0x1000)
4 KiB (0x1000) bytes not allocated at offset 6 KiB (0x1800)
2 KiB (0x800) bytes     allocated at offset 10 KiB (0x2800)
1012 KiB (0xfd000) bytes not allocated at offset 12 KiB (0x3000)
END
diff -u one.expected one.map || bad "subclusters: qemu-io map differs"
check_clean one one.qcow2
qemu-io -f qcow2 -r -c 'read -P 0x78 4096 2048' -c 'read -P 0 6144 4196' \
    -c 'read -P 0x79 10340 100' -c 'read -P 0 10440 1848' one.qcow2 \
    >/dev/null || bad "subclusters: qemu reads other bytes"

# Writes, zeroes and trims through the plugin over an internal snapshot:
# the active layer changes, the snapshot keeps its bytes.
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k snap.qcow2 4M
qemu-io -f qcow2 -c 'write -P 1 2k 6k' -c 'write -z 64k 4k' \
    -c 'write -P 2 128k 64k' snap.qcow2 >/dev/null
qemu-img convert -O raw snap.qcow2 snap.before
qemu-img snapshot -c first snap.qcow2
zq_nbdkit -- file=snap.qcow2 \
    --run "qemu-io -f raw \"\$uri\" -c 'write -P 3 3k 1k' \
             -c 'write -P 4 66k 2k' -c 'write -z 130k 4k' \
             -c 'discard 128k 64k' -c 'write -P 5 3000k 100' >/dev/null" ||
    bad "snapshot: writing through the plugin failed"
check_clean snap snap.qcow2
out="$(qemu-io -f qcow2 -r -c 'read -P 1 2k 1k' -c 'read -P 3 3k 1k' \
          -c 'read -P 1 4k 4k' -c 'read -P 4 66k 2k' -c 'read -P 0 128k 64k' \
          -c 'read -P 5 3000k 100' snap.qcow2 2>&1)" ||
    bad "snapshot: qemu-io could not read the active layer: $out"
! grep -q 'Pattern verification failed' <<<"$out" ||
    bad "snapshot: the active layer reads other bytes: $out"
qemu-img snapshot -a first snap.qcow2
qemu-img convert -O raw snap.qcow2 snap.after
cmp snap.before snap.after || bad "snapshot: the snapshot changed"

# Seeded workloads mirrored to a raw reference.
# The last: an L2 cache of one 32 KiB table for two (each covers 64 MiB).
for run in "64k 65536 1 1200 11" "32k 32768 2 1200 12" "2M 2097152 4 800 13" \
           "32k 32768 4 1200 14 l2-cache-size=32k"; do
    read -r cs csb conns ops seed params <<<"$run"
    name="workload-$cs-$seed"
    qemu-img create -q -f qcow2 -o "extended_l2=on,cluster_size=$cs" \
        "$name.qcow2" 128M
    truncate -s 128M "$name.raw"
    zq_nbdkit -- file="$name.qcow2" $params \
        --run "zq-workload --seed $seed --ops $ops --connections $conns \
                 --reference $name.raw --cluster-size $csb \"\$uri\"" ||
        bad "$name: the workload failed"
    check_clean "$name" "$name.qcow2"
    qemu-img compare -q -f qcow2 -F raw "$name.qcow2" "$name.raw" ||
        bad "$name: image and reference differ"
    rm -f "$name".*
done

nbdkit --dump-plugin "$PLUGIN" | grep -q '^zqcow2_features=.*extended_l2' ||
    bad "--dump-plugin does not list extended_l2"

[ $failures -eq 0 ] || fail "$failures failure(s)"
