#!/usr/bin/env bash
# How the plugin finds and opens a backing chain: relative names against
# the image's directory (not the current one), backing=FILE and
# backing=none, the format from the backing format extension or probed,
# missing files, unknown formats, loops, the depth limit, and zoned images
# (refused).  Every verdict on data comes from qemu-img reading the same
# chain.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io qemu-nbd nbdinfo nbdcopy jq
plugin_ok
scratch_dir

# expect_data TOP QEMU-SOURCE [PLUGIN-PARAMS...]: the plugin serving TOP
# reads the bytes qemu-img convert reads from QEMU-SOURCE.
expect_data ()
{
    local top="$1" source="$2"
    shift 2
    rm -f expected.raw got.raw
    qemu-img convert -O raw "$source" expected.raw ||
        fail "qemu-img convert $source failed"
    zq_nbdkit -r -- file="$top" "$@" --run 'nbdcopy "$uri" got.raw' ||
        fail "serving $top $* failed"
    cmp expected.raw got.raw ||
        fail "$top $*: the plugin reads other bytes than qemu-img ($source)"
}

# expect_refusal TOP PATTERN [PLUGIN-PARAMS...]: nbdkit refuses to start
# with a message matching PATTERN.
expect_refusal ()
{
    local top="$1" pattern="$2"
    shift 2
    if zq_nbdkit -r -- file="$top" "$@" --run true 2>refusal.err; then
        fail "$top $*: served, but should have been refused ($pattern)"
    fi
    cat refusal.err
    grep -q -- "$pattern" refusal.err ||
        fail "$top $*: the refusal does not say '$pattern'"
}

# --- A chain with relative names, served from another directory that
# holds decoys with the same names.
mkdir chain decoy
(
    cd chain
    truncate -s 4M base.raw
    qemu-io -f raw -c 'write -P 0x41 0 3M' base.raw >/dev/null
    qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 4M
    qemu-io -f qcow2 -c 'write -P 0x42 1M 100k' mid.qcow2 >/dev/null
    qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 4M
    qemu-io -f qcow2 -c 'write -P 0x43 2M 3000' top.qcow2 >/dev/null
)
(
    cd decoy
    truncate -s 4M base.raw
    qemu-io -f raw -c 'write -P 0x99 0 4M' base.raw >/dev/null
    qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 4M
)
[ "$(qemu-img info --output=json chain/top.qcow2 |
     sed -n 's/.*"backing-filename": "\(.*\)".*/\1/p')" = mid.qcow2 ] ||
    fail "qemu-img did not store a relative backing name"

echo "== relative names"
( cd decoy && expect_data ../chain/top.qcow2 ../chain/top.qcow2 )
( cd / && expect_data "$SCRATCH/chain/top.qcow2" "$SCRATCH/chain/top.qcow2" )

echo "== --dump-plugin"
nbdkit "$PLUGIN" --dump-plugin | grep -q '^zqcow2_features=.*\bbacking\b' ||
    fail "--dump-plugin does not list the backing feature"

echo "== export description names the backing file"
zq_nbdkit -r -- file=chain/top.qcow2 --run 'nbdinfo "$uri"' >info.out
grep -q "backing file $SCRATCH/chain/mid.qcow2 (qcow2)" info.out ||
    { cat info.out; fail "the description does not name the backing file"; }

echo "== zqcow2-img info names the backing file as qemu-img does"
if [ -x "${ZQCOW2_IMG:-}" ]; then
    for key in backing-filename backing-filename-format; do
        q="$(qemu-img info --output=json chain/top.qcow2 | jq -r ".\"$key\"")"
        z="$("$ZQCOW2_IMG" info --output=json chain/top.qcow2 | jq -r ".\"$key\"")"
        [ "$q" = "$z" ] && [ "$q" != null ] ||
            fail "zqcow2-img info: $key is '$z', qemu-img says '$q'"
    done
    "$ZQCOW2_IMG" info chain/top.qcow2 | grep -qx 'backing file: mid.qcow2' ||
        fail "zqcow2-img info does not print the backing file"
fi

echo "== backing=none"
none="json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\
\"filename\":\"chain/top.qcow2\"},\"backing\":null}"
expect_data chain/top.qcow2 "$none" backing=none
qemu-img convert -O raw chain/top.qcow2 with-backing.raw
cmp -s expected.raw with-backing.raw &&
    fail "backing=none reads the same as with the backing file (test broken)"
nbdinfo --map -- [ qemu-nbd -r "$none" ] | map_canon >none.qemu.map
zq_nbdkit -r -- file=chain/top.qcow2 backing=none --run 'nbdinfo --map "$uri"' |
    map_canon >none.plugin.map
map_compare none.qemu.map none.plugin.map ||
    fail "backing=none: base:allocation differs from qemu-nbd's"

echo "== backing=FILE (relative to the current directory, format probed)"
over="json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\
\"filename\":\"chain/top.qcow2\"},\"backing\":{\"driver\":\"raw\",\
\"file\":{\"driver\":\"file\",\"filename\":\"decoy/base.raw\"}}}"
expect_data chain/top.qcow2 "$over" backing=decoy/base.raw
over="json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\
\"filename\":\"chain/top.qcow2\"},\"backing\":{\"driver\":\"qcow2\",\
\"file\":{\"driver\":\"file\",\"filename\":\"decoy/mid.qcow2\"}}}"
expect_data chain/top.qcow2 "$over" backing=decoy/mid.qcow2
expect_refusal chain/top.qcow2 "$SCRATCH/nowhere.qcow2" backing=nowhere.qcow2

echo "== format probed when the header does not name it"
cp chain/mid.qcow2 chain/mid-noformat.qcow2
cp chain/top.qcow2 chain/top-noformat.qcow2
qemu-img rebase -u -b mid-noformat.qcow2 -F qcow2 chain/top-noformat.qcow2
# Hide the backing format extensions (an unknown magic is skipped).
for img in chain/mid-noformat.qcow2 chain/top-noformat.qcow2; do
    off="$(zq-header-ext list "$img" | awk '$1 == "0xe2792aca" { print $2 }')"
    [ -n "$off" ] || fail "$img has no backing format extension"
    poke_be "$img" "$off" 4 $(( 0x0badf00d ))
    exts="$(zq-header-ext list "$img")"
    ! grep -q 0xe2792aca <<<"$exts" ||
        fail "$img: could not hide the backing format extension"
done
expect_data chain/top-noformat.qcow2 chain/top.qcow2

echo "== missing backing file"
cp chain/top.qcow2 chain/top-lost.qcow2
qemu-img rebase -u -b lost.qcow2 -F qcow2 chain/top-lost.qcow2
expect_refusal chain/top-lost.qcow2 "$SCRATCH/chain/lost.qcow2"
grep -q 'No such file or directory' refusal.err ||
    fail "the refusal does not give the reason"
# ... deeper down the chain: the message names the missing file too.
cp chain/mid.qcow2 chain/mid-lost.qcow2
qemu-img rebase -u -b lost.raw -F raw chain/mid-lost.qcow2
qemu-img rebase -u -b mid-lost.qcow2 -F qcow2 chain/top-lost.qcow2
expect_refusal chain/top-lost.qcow2 "$SCRATCH/chain/lost.raw"
# backing=none still serves it.
zq_nbdkit -r -- file=chain/top-lost.qcow2 backing=none --run true ||
    fail "backing=none does not serve an image whose backing file is missing"

echo "== unknown backing format"
cp chain/top.qcow2 chain/top-vmdk.qcow2
qemu-img rebase -u -b mid.qcow2 -F vmdk chain/top-vmdk.qcow2
expect_refusal chain/top-vmdk.qcow2 "format 'vmdk'"

echo "== protocol names"
cp chain/top.qcow2 chain/top-nbd.qcow2
qemu-img rebase -u -b nbd://localhost:1/x -F raw chain/top-nbd.qcow2
expect_refusal chain/top-nbd.qcow2 "by file name only"

echo "== loops"
qemu-img create -q -f qcow2 loop-a.qcow2 1M
qemu-img create -q -f qcow2 -b loop-a.qcow2 -F qcow2 loop-b.qcow2 1M
qemu-img rebase -u -b loop-b.qcow2 -F qcow2 loop-a.qcow2
expect_refusal loop-b.qcow2 "loops"
qemu-img create -q -f qcow2 loop-self.qcow2 1M
qemu-img rebase -u -b loop-self.qcow2 -F qcow2 loop-self.qcow2
expect_refusal loop-self.qcow2 "loops"

echo "== depth: 64 backing files served, 65 refused"
mkdir deep
(
    cd deep
    truncate -s 1M l0.raw
    qemu-io -f raw -c 'write -P 0x01 0 4k' l0.raw >/dev/null
    prev=l0.raw fmt=raw
    for i in $(seq 1 65); do
        qemu-img create -q -f qcow2 -o cluster_size=4k -b "$prev" -F "$fmt" \
            "l$i.qcow2" 1M
        qemu-io -f qcow2 -c "write -P $(( i + 1 )) $(( i * 4096 )) 4k" \
            "l$i.qcow2" >/dev/null
        prev="l$i.qcow2" fmt=qcow2
    done
)
expect_data deep/l64.qcow2 deep/l64.qcow2
expect_refusal deep/l65.qcow2 "at most 64"

echo "== zoned images cannot have a backing file"
if [ -x "${ZQCOW2_IMG:-}" ]; then
    "$ZQCOW2_IMG" create -q -o zone.mode=host-managed,zone.size=1M \
        zoned.qcow2 4M >/dev/null
    # The backing file name goes in the header cluster after the
    # extensions, as qemu-img puts it.
    name=chain/base.raw
    poke_be zoned.qcow2 8 8 4096
    poke_be zoned.qcow2 16 4 ${#name}
    printf '%s' "$name" |
        dd of=zoned.qcow2 bs=1 seek=4096 conv=notrunc status=none
    expect_refusal zoned.qcow2 "zoned and has a backing file"
    zq_nbdkit -r -- file=zoned.qcow2 backing=none --run true ||
        fail "backing=none does not serve the zoned image alone"
    # ... nor be one.
    qemu-img create -q -f qcow2 -u -b zoned-base.qcow2 -F qcow2 \
        over-zoned.qcow2 4M
    "$ZQCOW2_IMG" create -q -o zone.mode=host-managed,zone.size=1M \
        zoned-base.qcow2 4M >/dev/null
    expect_refusal over-zoned.qcow2 "zoned images cannot be backing files"
else
    echo "zqcow2-img not built: zoned case skipped"
fi

echo "== v2: write zeroes writes zeroes over backing data, not past its end"
truncate -s 1M short.raw
qemu-io -f raw -c 'write -P 0x51 0 1M' short.raw >/dev/null
qemu-img create -q -f qcow2 -o compat=0.10 -b short.raw -F raw v2.qcow2 2M
zq_nbdkit -- file=v2.qcow2 \
    --run 'qemu-io -f raw -c "write -z 0 2M" -c "discard 0 2M" "$uri"' \
    >/dev/null || fail "v2: write zeroes through the plugin failed"
truncate -s 2M zeroes.raw
qemu-img compare -q -f qcow2 -F raw v2.qcow2 zeroes.raw ||
    fail "v2: write zeroes (and the trim after it) left non-zero data"
qemu-img map --output=json v2.qcow2 >v2.map
# Allocated in v2.qcow2 itself: exactly the first MiB, where the backing
# file has data to hide.
allocated="$(jq -r '[.[] | select(.depth == 0 and .data) | .length] | add // 0' v2.map)"
[ "$allocated" = 1048576 ] ||
    { cat v2.map; fail "v2: $allocated bytes allocated, expected 1048576"; }

echo "== zqcow2-nbd serves the chain, and --backing none"
if [ -x "${ZQCOW2_NBD:-}" ]; then
    qemu-img convert -O raw chain/top.qcow2 expected.raw
    ( cd decoy && "$ZQCOW2_NBD" -r --run 'nbdcopy "$uri" ../got.raw' \
          ../chain/top.qcow2 ) || fail "zqcow2-nbd: serving the chain failed"
    cmp expected.raw got.raw || fail "zqcow2-nbd: the chain reads differently"
    qemu-img convert -O raw "$none" expected.raw
    "$ZQCOW2_NBD" -r --backing none --run 'nbdcopy "$uri" got.raw' \
        chain/top.qcow2 || fail "zqcow2-nbd --backing none failed"
    cmp expected.raw got.raw || fail "zqcow2-nbd --backing none reads wrong"
else
    echo "zqcow2-nbd not built: skipped"
fi

echo "== v3: write zeroes uses the zero flag, also past the backing file's end"
qemu-img create -q -f qcow2 -b short.raw -F raw v3.qcow2 4M
zq_nbdkit -- file=v3.qcow2 --run 'qemu-io -f raw -c "write -z 1000 2M" "$uri"' \
    >/dev/null || fail "v3: write zeroes through the plugin failed"
qemu-img convert -O raw v3.qcow2 v3.raw
truncate -s 4M short-ref.raw
qemu-io -f raw -c 'write -P 0x51 0 1000' short-ref.raw >/dev/null
cmp v3.raw short-ref.raw || fail "v3: write zeroes left the wrong bytes"
qemu-img map --output=json v3.qcow2 >v3.map
# Data in v3.qcow2: the first cluster only (its head is backing data);
# then zero flags on every whole cluster, also past the end of the 1 MiB
# backing file, as qemu does (the backing file may grow or be rebased);
# the partial last cluster reads as zeroes already and stays unallocated.
data="$(jq -r '[.[] | select(.depth == 0 and .data) | .length] | add // 0' v3.map)"
zero="$(jq -r '[.[] | select(.depth == 0 and .present and .zero and (.data | not)) | .length] | add // 0' v3.map)"
[ "$data" = 65536 ] && [ "$zero" = $(( 2097152 - 65536 )) ] ||
    { cat v3.map; fail "v3: $data bytes of data, $zero of zero flags in the top"; }
