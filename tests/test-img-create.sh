#!/usr/bin/env bash
# zqcow2-img create writes images that qemu-img accepts as they are (plain
# images) or once incompatible bit 5 is cleared (zoned images), with the
# size, cluster size, refcount width, lazy refcounts and compression type
# asked for; zoned images carry the geometry asked for and a write-pointer
# table with every zone at its start.  zqcow2-img check and info agree.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires qemu-img od /usr/bin/python3
zqimg_ok
scratch_dir

# json_ok ROW FILE: FILE is valid JSON for an independent parser.
json_ok ()
{
    /usr/bin/python3 -m json.tool <"$2" >/dev/null ||
        { cat "$2" >&2; fail "$1: $2 is not valid JSON"; }
}

# expect_eq ROW WHAT EXPECTED ACTUAL
expect_eq ()
{
    [ "$3" = "$4" ] || fail "$1: $2: expected '$3', got '$4'"
}

# qemu_fields JSON: "size cluster refcount-bits lazy compression compat"
# from qemu-img info --output=json (or zqcow2-img info, same keys).
qemu_fields ()
{
    jq -r '[."virtual-size", ."cluster-size",
            ."format-specific".data."refcount-bits",
            ."format-specific".data."lazy-refcounts",
            ."format-specific".data."compression-type",
            ."format-specific".data.compat] | map(tostring) | join(" ")' "$1"
}

# create_ok ROW OPTIONS SIZE: create img.qcow2 afresh.
create_ok ()
{
    local opts=()
    rm -f img.qcow2
    [ -n "$2" ] && opts=(-o "$2")
    "$ZQCOW2_IMG" create -q ${opts[@]+"${opts[@]}"} img.qcow2 "$3" \
        >create.out 2>&1 ||
        { cat create.out >&2; fail "$1: create -o '$2' img.qcow2 $3 failed"; }
}

# zq_check_clean ROW IMG: zqcow2-img check exits 0.
zq_check_clean ()
{
    local status=0
    "$ZQCOW2_IMG" check "$2" >zcheck.out 2>&1 || status=$?
    [ "$status" -eq 0 ] ||
        { cat zcheck.out >&2; fail "$1: zqcow2-img check $2 exited $status"; }
    grep -q '^No errors were found on the image\.$' zcheck.out ||
        { cat zcheck.out >&2; fail "$1: zqcow2-img check did not say the image is clean"; }
}

# plain ROW OPTIONS SIZE  SIZE' CLUSTER BITS LAZY COMPRESSION
plain ()
{
    local row="$1" expect="$4 $5 $6 $7 $8 1.1" status=0
    create_ok "$row" "$2" "$3"

    qemu-img check img.qcow2 >qcheck.out 2>&1 || status=$?
    [ "$status" -eq 0 ] ||
        { cat qcheck.out >&2; fail "$row: qemu-img check exited $status"; }
    grep -q '^No errors were found on the image\.$' qcheck.out ||
        { cat qcheck.out >&2; fail "$row: qemu-img check is not clean"; }
    qemu-img info --output=json img.qcow2 >qinfo.json
    expect_eq "$row" "qemu-img info" "$expect" "$(qemu_fields qinfo.json)"

    zq_check_clean "$row" img.qcow2
    "$ZQCOW2_IMG" info --output=json img.qcow2 >zinfo.json ||
        fail "$row: zqcow2-img info failed"
    json_ok "$row" zinfo.json
    expect_eq "$row" "zqcow2-img info" "$expect" "$(qemu_fields zinfo.json)"
    expect_eq "$row" "zqcow2-img info zoned" null "$(jq -c .zoned zinfo.json)"
    expect_eq "$row" "incompatible bit 5" 0 $(( $(peek_be img.qcow2 72 8) & 32 ))
    echo "ok      $row"
}

#     row  options                                           size  size' cluster bits lazy  compression
plain p1 ""                                                  1G    1073741824 65536 16 false zlib
plain p2 cluster_size=512,refcount_bits=1,lazy_refcounts=on,compression_type=zstd \
                                                             1000  1024  512     1  true  zstd
plain p3 cluster_size=4K,refcount_bits=2                     100M  104857600 4096 2 false zlib
plain p4 cluster_size=2M,refcount_bits=64,lazy_refcounts=on,compression_type=zstd \
                                                             10G   10737418240 2097152 64 true zstd
plain p5 cluster_size=64K,refcount_bits=8                    3T    3298534883328 65536 8 false zlib
# A 4 MiB L1 table: many refcount blocks and a two-cluster refcount table.
plain p6 cluster_size=512,refcount_bits=32                   16G   17179869184 512 32 false zlib

# zoned ROW OPTIONS SIZE  CLUSTER ZONE-SIZE CAPACITY NR-ZONES CONVENTIONAL
#       MAX-OPEN MAX-ACTIVE MAX-APPEND
zoned ()
{
    local row="$1" opts="zone.mode=host-managed${2:+,$2}" size="$3"
    local cs="$4" zsize="$5" cap="$6" nr="$7" conv="$8"
    local maxopen="$9" maxactive="${10}" append="${11}"
    local ext table tsize status=0 leaked expected i

    create_ok "$row" "$opts" "$size"
    expect_eq "$row" "incompatible bit 5" 32 $(( $(peek_be img.qcow2 72 8) & 32 ))
    zq_check_clean "$row" img.qcow2

    # The geometry, as info reports it.
    "$ZQCOW2_IMG" info --output=json img.qcow2 >zinfo.json ||
        fail "$row: zqcow2-img info failed"
    json_ok "$row" zinfo.json
    expect_eq "$row" "zqcow2-img info zoned" \
        "host-managed $zsize $cap $nr $conv $maxopen $maxactive $append" \
        "$(jq -r '.zoned | [.model, ."zone-size", ."zone-capacity",
                  ."nr-zones", ."conventional-zones", ."max-open-zones",
                  ."max-active-zones", ."max-append-bytes"]
                | map(tostring) | join(" ")' zinfo.json)"
    expect_eq "$row" "zones by condition" \
        "$conv $(( nr - conv ))" \
        "$(jq -r '.zoned."zones-by-condition" |
                  [."not-write-pointer" // 0, .empty // 0] |
                  map(tostring) | join(" ")' zinfo.json)"
    "$ZQCOW2_IMG" info img.qcow2 >zinfo.txt || fail "$row: info failed"
    grep -q "^    zones: $nr ($conv conventional" zinfo.txt ||
        { cat zinfo.txt >&2; fail "$row: human info lacks the zone count"; }

    # The write-pointer table, read from the extension in the file:
    # cluster-aligned, zonedmeta_size exactly 8 x nr_zones (the table
    # still owns whole clusters), entry i = zone start (+ bit 59 for the
    # conventional zones), big-endian.
    ext="$(zoned_ext_offset img.qcow2)" || fail "$row: no zoned extension"
    expect_eq "$row" "extension nr_zones" "$nr" "$(peek_be img.qcow2 $(( ext + 24 )) 4)"
    table="$(peek_be img.qcow2 $(( ext + 48 )) 8)"
    tsize="$(peek_be img.qcow2 $(( ext + 40 )) 8)"
    expect_eq "$row" "zonedmeta_offset alignment" 0 $(( table % cs ))
    expect_eq "$row" "zonedmeta_size" $(( nr * 8 )) "$tsize"
    { od -An -tx1 -v -j "$table" -N $(( nr * 8 )) img.qcow2 | tr -d ' \n' |
          fold -w 16; echo; } >entries.txt
    expect_eq "$row" "table entries" "$nr" "$(wc -l <entries.txt)"
    for (( i = 0; i < nr; i++ )); do
        printf '%016x\n' $(( i * zsize | (i < conv ? 1 << 59 : 0) ))
    done >expected.txt
    cmp -s expected.txt entries.txt ||
        { diff expected.txt entries.txt | head >&2 || true
          fail "$row: write-pointer table entries are wrong"; }

    # qemu, which does not know bit 5, sees a sound qcow2 image once the bit
    # is cleared: no corruption, and as leaks exactly the table's clusters
    # (it cannot know they are in use).
    qemu_view img.qcow2 qemu.qcow2
    qemu-img check --output=json qemu.qcow2 >qcheck.json 2>qcheck.err ||
        status=$?
    [ "$status" -eq 0 ] || [ "$status" -eq 3 ] ||
        { cat qcheck.err qcheck.json >&2; fail "$row: qemu-img check exited $status"; }
    expect_eq "$row" "qemu-img check corruptions" 0 \
        "$(jq '(.corruptions // 0) + (."check-errors" // 0)' qcheck.json)"
    leaked="$(sed -n 's/^Leaked cluster \([0-9]*\) refcount=1 reference=0$/\1/p' \
              qcheck.err | sort -n | tr '\n' ' ')"
    expected=""
    for (( i = table / cs; i < (table + tsize + cs - 1) / cs; i++ )); do
        expected+="$i "
    done
    expect_eq "$row" "clusters qemu sees as leaked" "$expected" "$leaked"
    qemu-img info --output=json qemu.qcow2 >qinfo.json
    expect_eq "$row" "qemu-img info" \
        "$(jq -r '[."virtual-size", ."cluster-size"] | map(tostring) | join(" ")' zinfo.json)" \
        "$(jq -r '[."virtual-size", ."cluster-size"] | map(tostring) | join(" ")' qinfo.json)"
    expect_eq "$row" "qemu-img info vs zqcow2-img info" \
        "$(qemu_fields zinfo.json)" "$(qemu_fields qinfo.json)"

    # The copy is no longer a valid zoned image: the extension without
    # the bit is an error for zqcow2.
    status=0
    "$ZQCOW2_IMG" check qemu.qcow2 >zcheck.out 2>&1 || status=$?
    expect_eq "$row" "zqcow2-img check of the copy without bit 5" 2 "$status"
    rm -f qemu.qcow2
    echo "ok      $row"
}

#     row options                                                  size   cluster zone-size capacity nr conv open active append
zoned z1 ""                                                         1G     65536  268435456 268435456 4 0 0 0 65536
zoned z2 cluster_size=512,refcount_bits=1,zone.size=1M,zone.conventional_zones=2,zone.max_open_zones=3,zone.max_active_zones=5 \
                                                                    64M    512    1048576 1048576 64 2 3 5 65536
zoned z3 cluster_size=2M,zone.size=2M,zone.capacity=1536K,zone.conventional_zones=3,zone.max_append_bytes=128K,compression_type=zstd,lazy_refcounts=on \
                                                                    64M    2097152 2097152 1572864 32 3 0 0 131072
# 10000 zones: a write-pointer table of 20 clusters.
zoned z4 cluster_size=4K,zone.size=64K,zone.conventional_zones=7,refcount_bits=4 \
                                                                    625M   4096   65536 65536 10000 7 0 0 64512
# A short last zone (4 MiB of 16).
zoned z5 zone.size=16M,zone.allow_short_last_zone=on,zone.capacity=12M \
                                                                    100M   65536  16777216 12582912 7 0 0 0 65536
zoned z6 refcount_bits=64,zone.size=8M,zone.capacity=4M,zone.conventional_zones=1,zone.max_open_zones=10,zone.max_active_zones=127 \
                                                                    1G     65536  8388608 4194304 128 1 10 127 65536
