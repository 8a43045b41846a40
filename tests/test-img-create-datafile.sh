#!/usr/bin/env bash
# zqcow2-img create -o data_file=NAME[,data_file_raw=on] makes what
# qemu-img create makes: qemu-img info reports the same data file and
# data-file-raw (and so does zqcow2-img info), qemu-img map and check
# (and zqcow2-img check) say the same of both images, the
# data file is empty and as long as the disk, qemu-io writes through the
# image land in the data file, and the plugin serves it.  A relative name
# is made beside the image.  Zoned images take a data file too.  Options
# that cannot work are refused by name, and leave no file behind.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires qemu-img qemu-io nbdcopy cmp
plugin_ok
zqimg_ok
scratch_dir

# expect_eq ROW WHAT EXPECTED ACTUAL
expect_eq ()
{
    [ "$3" = "$4" ] || fail "$1: $2: expected '$3', got '$4'"
}

# check_clean ROW IMG: qemu-img check finds nothing; prints its
# allocation line ("N/M = ...% allocated ...") if it has one (not when
# nothing is allocated).
check_clean ()
{
    qemu-img check "$2" >"$2.check" 2>&1 ||
        { cat "$2.check" >&2; fail "$1: qemu-img check $2 is not clean"; }
    grep -q '^No errors were found on the image\.$' "$2.check" ||
        { cat "$2.check" >&2; fail "$1: qemu-img check $2: no clean verdict"; }
    grep 'allocated' "$2.check" || :
}

# qemu_specific JSON DATA-NAME: qemu-img info's format-specific data, the
# data file's name replaced by NAME, so that two images compare.
qemu_specific ()
{
    jq -c --arg name "$2" '."format-specific".data |
        if has("data-file") then ."data-file" = $name else . end' "$1"
}

# like_qemu ROW OPTIONS SIZE: zqcow2-img and qemu-img, given the same
# options (with data_file=NAME), make images that qemu describes alike.
# Leaves img.qcow2 with its data file img.data.
like_qemu ()
{
    local row="$1" opts="$2" size="$3" raw q_alloc zq_alloc
    rm -f img.qcow2 img.data q.qcow2 q.data
    "$ZQCOW2_IMG" create -q -o "data_file=img.data${opts:+,$opts}" \
        img.qcow2 "$size" >create.out 2>&1 ||
        { cat create.out >&2; fail "$row: zqcow2-img create failed"; }
    qemu-img create -q -f qcow2 -o "data_file=q.data${opts:+,$opts}" \
        q.qcow2 "$size"

    qemu-img info --output=json img.qcow2 >zq.json
    qemu-img info --output=json q.qcow2 >q.json
    expect_eq "$row" "qemu-img info, format-specific" \
        "$(qemu_specific q.json NAME)" "$(qemu_specific zq.json NAME)"
    "$ZQCOW2_IMG" info --output=json img.qcow2 >zqi.json ||
        fail "$row: zqcow2-img info failed"
    expect_eq "$row" "zqcow2-img info, format-specific" \
        "$(qemu_specific zq.json NAME)" "$(qemu_specific zqi.json NAME)"
    expect_eq "$row" "qemu-img info data-file" img.data \
        "$(jq -r '."format-specific".data."data-file"' zq.json)"
    expect_eq "$row" "qemu-img info virtual-size" \
        "$(jq '."virtual-size"' q.json)" "$(jq '."virtual-size"' zq.json)"
    expect_eq "$row" "qemu-img map" \
        "$(qemu-img map --output=json q.qcow2)" \
        "$(qemu-img map --output=json img.qcow2)"
    # (Assignments, so that a failing check stops the test.)
    q_alloc="$(check_clean "$row" q.qcow2)"
    zq_alloc="$(check_clean "$row" img.qcow2)"
    expect_eq "$row" "qemu-img check allocation" "$q_alloc" "$zq_alloc"
    "$ZQCOW2_IMG" check img.qcow2 >zcheck.out 2>&1 ||
        { cat zcheck.out >&2; fail "$row: zqcow2-img check is not clean"; }
    expect_eq "$row" "zqcow2-img check allocation" "$q_alloc" \
        "$(grep 'allocated' zcheck.out || :)"

    # Incompatible bit 2; autoclear bit 1 exactly with data_file_raw.
    (( $(peek_be img.qcow2 72 8) & 4 )) || fail "$row: incompatible bit 2 clear"
    raw="$(jq '."format-specific".data."data-file-raw"' q.json)"
    expect_eq "$row" "autoclear bit 1" "$([ "$raw" = true ] && echo 2 || echo 0)" \
        $(( $(peek_be img.qcow2 88 8) & 2 ))

    # The data file: as long as the disk, and zeroes, like qemu's.
    expect_eq "$row" "data file size" "$(stat -c %s q.data)" \
        "$(stat -c %s img.data)"
    cmp img.data q.data || fail "$row: the data file is not qemu's"
    echo "ok      $row"
}

like_qemu d1 "" 64M
like_qemu d2 data_file_raw=on 64M
like_qemu d3 data_file_raw=off,cluster_size=4K,refcount_bits=1 3000000
like_qemu d4 data_file_raw=on,cluster_size=512,lazy_refcounts=on 5M
like_qemu d5 data_file_raw=on,compression_type=zstd 1G

# rw ROW IMG DATA: qemu-io writes through IMG land in DATA at their guest
# offsets; the plugin reads what qemu reads; qemu-img check stays clean.
rw ()
{
    local row="$1" img="$2" data="$3"
    qemu-io -f qcow2 -c 'write -P 0x5a 0 70000' -c 'write -P 0xa5 3M 1M' \
        -c 'read -P 0x5a 0 70000' -c 'read -P 0xa5 3M 1M' \
        "$img" >rw.out 2>&1 || { cat rw.out >&2; fail "$row: qemu-io failed"; }
    ! grep -q 'Pattern verification failed' rw.out ||
        { cat rw.out >&2; fail "$row: qemu reads other data than it wrote"; }
    qemu-io -f raw -c 'read -P 0x5a 0 70000' -c 'read -P 0xa5 3M 1M' \
        "$data" >data.out 2>&1 ||
        { cat data.out >&2; fail "$row: qemu-io cannot read $data"; }
    ! grep -q 'Pattern verification failed' data.out ||
        { cat data.out >&2; fail "$row: the writes are not in $data"; }
    check_clean "$row" "$img" >/dev/null
    qemu-img convert -O raw "$img" expected.raw
    zq_nbdkit -r -- file="$img" --run 'nbdcopy "$uri" served.raw' ||
        fail "$row: the plugin does not serve $img"
    cmp served.raw expected.raw ||
        fail "$row: the plugin reads other bytes than qemu-img convert"
    echo "ok      $row: written by qemu-io, served by the plugin"
}

like_qemu rw1 "" 8M
rw rw1 img.qcow2 img.data
like_qemu rw2 data_file_raw=on 8M
rw rw2 img.qcow2 img.data
# Written through the plugin, a raw data file stays the disk.
zq_nbdkit -- file=img.qcow2 --run \
    'qemu-io -f raw -c "write -P 0x77 5M 100k" -c "write -z 3M 64k" "$uri"' \
    >/dev/null || fail "rw2: writing through the plugin failed"
qemu-img convert -O raw img.qcow2 expected.raw
cmp img.data expected.raw || fail "rw2: the raw data file is not the disk"
check_clean rw2 img.qcow2 >/dev/null
echo "ok      rw2: written by the plugin, the data file is the disk"

echo "== a relative name is beside the image, an absolute one is kept"
mkdir sub
"$ZQCOW2_IMG" create -q -o data_file=rel.data sub/img.qcow2 4M ||
    fail "relative: create failed"
[ -f sub/rel.data ] && [ ! -e rel.data ] ||
    fail "relative: rel.data was not made beside sub/img.qcow2"
expect_eq relative "header name" rel.data \
    "$(qemu-img info --output=json sub/img.qcow2 |
       jq -r '."format-specific".data."data-file"')"
(cd sub && rw relative img.qcow2 rel.data)
"$ZQCOW2_IMG" create -q -o "data_file=$PWD/abs.data" sub/abs.qcow2 4M ||
    fail "absolute: create failed"
expect_eq absolute "header name" "$PWD/abs.data" \
    "$(qemu-img info --output=json sub/abs.qcow2 |
       jq -r '."format-specific".data."data-file"')"
rw absolute sub/abs.qcow2 abs.data

echo "== an existing data file is emptied, as qemu-img does"
printf 'old data' >old.data
"$ZQCOW2_IMG" create -q -o data_file=old.data old.qcow2 1M ||
    fail "existing: create failed"
expect_eq existing "data file size" 1048576 "$(stat -c %s old.data)"
cmp old.data <(head -c 1048576 /dev/zero) ||
    fail "existing: the old data file kept its contents"

echo "== zoned, with a raw data file"
"$ZQCOW2_IMG" create -q -o zone.mode=host-managed,zone.size=1M,zone.conventional_zones=1,data_file=z.data,data_file_raw=on \
    z.qcow2 8M || fail "zoned: create failed"
zoned_check zoned z.qcow2
"$ZQCOW2_IMG" info --output=json z.qcow2 >z.json || fail "zoned: info failed"
expect_eq zoned "zones" 8 "$(jq '.zoned."nr-zones"' z.json)"
expect_eq zoned "data file size" 8388608 "$(stat -c %s z.data)"
qemu_check zoned z.qcow2
zq_nbdkit -- file=z.qcow2 --run \
    'qemu-io -f raw -c "write -P 0x33 1M 64k" -c "write -P 0x44 0 4k" "$uri"' \
    >/dev/null || fail "zoned: writing zone 1 at its write pointer failed"
zoned_check zoned z.qcow2
qemu-io -f raw -c 'read -P 0x44 0 4k' -c 'read -P 0x33 1M 64k' \
    -c 'read -P 0 1114112 64k' z.data >z.out 2>&1 &&
    ! grep -q 'Pattern verification failed' z.out ||
    { cat z.out >&2; fail "zoned: the writes are not in z.data"; }
echo "ok      zoned"

# refused ROW MESSAGE OPTIONS FILE SIZE: create fails, saying MESSAGE, and
# leaves its directory as it was.
refused ()
{
    local row="$1" message="$2" before
    before="$(ls -A)"
    if "$ZQCOW2_IMG" create -q -o "$3" "$4" "$5" >refused.out 2>&1; then
        fail "$row: create -o $3 $4 $5 succeeded"
    fi
    grep -qF -- "$message" refused.out ||
        { cat refused.out >&2; fail "$row: the error does not say '$message'"; }
    sed 's/^/        /' refused.out
    rm refused.out
    expect_eq "$row" "files left" "$before" "$(ls -A)"
    echo "ok      $row: refused"
}

mkdir refusals && cd refusals
refused raw-alone "data_file_raw=on needs an external data file" \
    data_file_raw=on r.qcow2 1M
refused empty-name "option 'data_file' needs a value" data_file= r.qcow2 1M
refused itself "data_file r.qcow2 is the image itself" data_file=r.qcow2 r.qcow2 1M
refused itself-dotted "data_file ./r.qcow2 is the image itself" \
    data_file=./r.qcow2 r.qcow2 1M
mkdir dir
refused directory "data_file dir exists and is not a regular file" \
    data_file=dir r.qcow2 1M
refused json 'data_file "json:{}" looks like a QEMU protocol' \
    'data_file=json:{}' r.qcow2 1M
refused protocol 'data_file "nbd://host/x" looks like a QEMU protocol' \
    'data_file=nbd://host/x' r.qcow2 1M
refused long-name "data_file: the name is 400 bytes, too long" \
    "cluster_size=512,data_file=$(printf 'n%.0s' {1..400})" r.qcow2 1M
refused missing-dir "external data file nodir/x.data: No such file" \
    data_file=nodir/x.data r.qcow2 1M
refused too-large "too large for an external data file" \
    cluster_size=2M,data_file=big.data r.qcow2 131072T
# An existing image named as its own data file is left untouched.
qemu-img create -q -f qcow2 kept.qcow2 1M
sum="$(sha256 kept.qcow2)"
refused itself-existing "data_file kept.qcow2 is the image itself" \
    data_file=kept.qcow2 kept.qcow2 1M
expect_eq itself-existing "the image" "$sum" "$(sha256 kept.qcow2)"
cd ..
exit 0
