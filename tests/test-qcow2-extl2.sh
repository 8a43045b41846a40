#!/usr/bin/env bash
# Extended L2 entries (incompatible bit 4, subclusters): images that qemu
# filled read through the plugin as qemu-img reads them and map as
# qemu-nbd maps them, byte for byte.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io qemu-nbd nbdinfo nbdcopy cmp awk
plugin_ok
scratch_dir

failures=0
bad ()
{
    echo "FAIL: $*" >&2
    failures=$(( failures + 1 ))
}

# check_clean NAME IMG: qemu-img check finds no errors and no leaks.
check_clean ()
{
    if ! qemu-img check "$2" >"$1.check" 2>&1 ||
       ! grep -q 'No errors were found on the image' "$1.check" ||
       grep -qi 'leak' "$1.check"; then
        cat "$1.check" >&2
        bad "$1: qemu-img check is not clean"
    fi
}

# Patterns at subcluster and unaligned offsets, zeroed subclusters and
# clusters, discards.  $2 is the cluster size.
fill ()
{
    local cs=$2 sc=$(( $2 / 32 ))
    qemu-io -f qcow2 \
        -c "write -P 0x11 $sc $sc" \
        -c "write -P 0x22 $(( 5 * sc + 100 )) 1000" \
        -c "write -P 0x33 $(( cs - 3 )) 7" \
        -c "write -P 0x44 $(( 2 * cs )) $(( 2 * cs ))" \
        -c "write -z $(( 2 * cs + 3 * sc )) $(( 4 * sc ))" \
        -c "write -z $(( 3 * cs )) $cs" \
        -c "write -P 0x55 $(( 5 * cs + 7 * sc )) $(( cs ))" \
        -c "discard $(( 8 * cs )) $(( 2 * cs ))" \
        -c "write -z $(( 10 * cs + 17 )) $(( 3 * sc ))" \
        -c "write -P 0x66 $(( 12 * cs )) $(( 31 * sc ))" \
        -c "write -z $(( 12 * cs + sc )) $sc" \
        "$1" >/dev/null
}

for cs in 32k 64k 2M; do
    name="read-$cs"
    img="$name.qcow2"
    bytes=$(numfmt --from=iec "${cs^^}")
    qemu-img create -q -f qcow2 -o "extended_l2=on,cluster_size=$cs" \
        "$img" $(( 16 * bytes ))
    fill "$img" "$bytes"
    qemu-img convert -f qcow2 -O raw "$img" "$name.raw"

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

    rm -f "$name".*
done

[ $failures -eq 0 ] || fail "$failures failure(s)"
