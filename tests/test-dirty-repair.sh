#!/usr/bin/env bash
# A lazy-refcounts image left dirty (incompatible bit 0) is repaired on a
# read-write open: its refcounts are rebuilt from the metadata, the bit is
# cleared, qemu-img check finds no errors and no leaks, and the guest
# bytes are those qemu read from the dirty image.  A read-only open
# changes not one byte.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io nbdcopy cmp
plugin_ok
scratch_dir

dirty_bit ()
{
    echo $(( $(peek_be "$1" 72 8) & 1 ))
}

# expect_clean NAME IMG: qemu-img check says no errors, no leaks.
expect_clean ()
{
    qemu_clean "$2" || fail "$1: qemu-img check is not clean after the repair"
}

# repair NAME IMG: the read-only open first, then the repairing one.
repair ()
{
    local name="$1" img="$2" before

    [ "$(dirty_bit "$img")" = 1 ] || fail "$name: the image is not dirty"
    qemu-img convert -O raw "$img" "$name.want"

    before=$(sha256 "$img")
    zq_nbdkit -r -- file="$img" --run 'nbdcopy "$uri" '"$name.ro" ||
        fail "$name: read-only open failed"
    [ "$(sha256 "$img")" = "$before" ] ||
        fail "$name: a read-only open changed the file"
    cmp "$name.want" "$name.ro" ||
        fail "$name: read-only open reads other bytes than qemu"

    zq_nbdkit -- file="$img" --run 'nbdcopy "$uri" '"$name.rw" \
        2>"$name.log" || { cat "$name.log" >&2; fail "$name: open failed"; }
    cat "$name.log"
    grep -q 'repaired its refcounts' "$name.log" ||
        fail "$name: the repair was not logged"
    [ "$(dirty_bit "$img")" = 0 ] || fail "$name: the dirty bit is still set"
    expect_clean "$name" "$img"
    cmp "$name.want" "$name.rw" || fail "$name: served bytes differ"
    qemu-img compare -q -f qcow2 -F raw "$img" "$name.want" ||
        fail "$name: the repaired image holds other bytes"
}

# 1. qemu killed while its refcounts were lazy.
qemu-img create -q -f qcow2 -o lazy_refcounts=on,cluster_size=4k \
    killed.qcow2 32M
qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' -c 'write -P 0x33 9M 300k' \
    -c 'discard 256k 128k' -c 'sigraise 9' killed.qcow2 >/dev/null 2>&1 &&
    fail "killed: qemu-io survived sigraise 9"
repair killed killed.qcow2

# A later write workload on the repaired image stays clean: refcounts
# that were too low would hand out clusters in use.
zq_nbdkit -- file=killed.qcow2 --run '
    qemu-io -f raw -c "write -P 0x77 2M 3M" -c "write -P 0x11 9M 64k" "$uri"
' >/dev/null || fail "killed: writing after the repair failed"
expect_clean killed-after killed.qcow2
qemu-io -f qcow2 -c 'read -P 0x5a 0 256k' -c 'read -P 0x77 2M 3M' \
    -c 'read -P 0x11 9M 64k' -c 'read -P 0x33 9280k 236k' \
    killed.qcow2 >/dev/null || fail "killed: data wrong after more writes"

# 2. Killed while writing over clusters shared with an internal snapshot:
# the repair counts the snapshot's references too, and the snapshot keeps
# its data through later writes.
qemu-img create -q -f qcow2 -o lazy_refcounts=on,cluster_size=4k \
    snap.qcow2 16M
qemu-io -f qcow2 -c 'write -P 0x01 0 2M' snap.qcow2 >/dev/null
qemu-img snapshot -c one snap.qcow2
qemu-img convert -l snapshot.name=one -O raw snap.qcow2 snap.one.raw
qemu-io -f qcow2 -c 'write -P 0x02 1M 2M' -c 'sigraise 9' \
    snap.qcow2 >/dev/null 2>&1 && fail "snap: qemu-io survived sigraise 9"
repair snap snap.qcow2
zq_nbdkit -- file=snap.qcow2 --run '
    qemu-io -f raw -c "write -P 0x03 512k 1M" "$uri"
' >/dev/null || fail "snap: writing after the repair failed"
expect_clean snap-after snap.qcow2
qemu-io -f qcow2 -c 'read -P 0x01 0 512k' -c 'read -P 0x03 512k 1M' \
    -c 'read -P 0x02 1536k 1536k' snap.qcow2 >/dev/null ||
    fail "snap: data wrong after more writes"
qemu-img snapshot -a one snap.qcow2
qemu-img compare -q -f qcow2 -F raw snap.qcow2 snap.one.raw ||
    fail "snap: the snapshot's data changed"

# 3. By hand: a clean image, then the dirty bit, a leaked cluster, a
# refcount too low and a refcount block dropped from the table.
qemu-img create -q -f qcow2 -o cluster_size=4k hand.qcow2 32M
qemu-io -f qcow2 -c 'write -P 0x42 0 2M' -c 'write -P 0x24 20M 10M' \
    hand.qcow2 >/dev/null
reftable=$(peek_be hand.qcow2 48 8)
block0=$(peek_be hand.qcow2 "$reftable" 8)
size=$(stat -c %s hand.qcow2)
clusters=$(( size / 4096 ))
[ "$clusters" -gt 2048 ] || fail "hand: expected a second refcount block"
block1=$(peek_be hand.qcow2 $(( reftable + 8 )) 8)
[ "$block1" -ne 0 ] || fail "hand: no second refcount block"
# Clusters 5 and 6 hold data (refcount 1): say 0 for one (too low),
# 2 for the other (a leak).
[ "$(peek_be hand.qcow2 $(( block0 + 5 * 2 )) 2)" = 1 ] ||
    fail "hand: cluster 5 is not in use"
poke_be hand.qcow2 $(( block0 + 5 * 2 )) 2 0
poke_be hand.qcow2 $(( block0 + 6 * 2 )) 2 2
poke_be hand.qcow2 $(( reftable + 8 )) 8 0
poke_be hand.qcow2 72 8 $(( $(peek_be hand.qcow2 72 8) | 1 ))
qemu-img check hand.qcow2 >/dev/null 2>&1 &&
    fail "hand: the damaged image checks clean: the damage did not take"
repair hand hand.qcow2
