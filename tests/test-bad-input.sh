#!/usr/bin/env bash
# Damaged or unsupported images are refused, read-write and read-only,
# with a message that names the problem, and the refusal leaves the file
# untouched.  A corrupt-marked image is refused read-write but served
# read-only.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io nbdinfo nbdcopy cmp zq-header-ext
plugin_ok
scratch_dir

failures=0
bad () { echo "FAIL: $*" >&2; failures=$(( failures + 1 )); }

# A small v3 image with some data in it.
make_image ()
{
    rm -f "$1"
    qemu-img create -q -f qcow2 -o "compat=${2:-1.1}" "$1" 4M
    qemu-io -f qcow2 -c 'write -P 0x5a 0 100000' -c 'write -P 0xa5 3M 1M' \
        "$1" >/dev/null
}

# refused CASE IMG KEYWORD-REGEX [NBDKIT-OPTIONS...]: serving IMG must
# fail (at startup or at the first connection), stderr must match
# KEYWORD-REGEX (grep -Ei), and IMG must not change.
refused ()
{
    local case="$1" img="$2" keyword="$3" before
    shift 3
    before=$(sha256 "$img")
    if zq_nbdkit "$@" -- file="$img" \
            --run 'nbdinfo --size "$uri"' >"$case.out" 2>"$case.err"; then
        bad "$case: served the image (nbdkit $*), expected a refusal"
    elif ! grep -Eiq -- "$keyword" "$case.err"; then
        bad "$case: refused (nbdkit $*), but the message does not match" \
            "'$keyword':"
        cat "$case.err" >&2
    fi
    [ "$(sha256 "$img")" = "$before" ] ||
        bad "$case: the image changed (nbdkit $*)"
}

# refused_both CASE IMG KEYWORD-REGEX: read-write and read-only.
refused_both ()
{
    refused "$1-rw" "$2" "$3"
    refused "$1-ro" "$2" "$3" -r
}

# Wrong magic.
make_image magic.qcow2
poke_be magic.qcow2 0 4 0x514649fa
refused_both magic magic.qcow2 'magic'

# A file too short to hold a header.
make_image full.qcow2
head -c 50 full.qcow2 >short.qcow2
refused_both truncated short.qcow2 'header|truncated'

# L1 table beyond the end of the file (4 GiB into a ~1 MiB file).
make_image l1.qcow2
poke_be l1.qcow2 40 8 $(( 1 << 32 ))
refused_both l1-offset l1.qcow2 'L1 table'

# An unknown incompatible feature bit (20), without and with a name for
# it in the feature name table.
make_image incompat.qcow2
v=$(peek_be incompat.qcow2 72 8)
poke_be incompat.qcow2 72 8 $(( v | (1 << 20) ))
refused_both incompat incompat.qcow2 'incompatible'
refused incompat-bit incompat.qcow2 'bit 20|\b20\b|0x100000'

make_image named.qcow2
zq-header-ext add-feature named.qcow2 0 20 'zq-test-feature'
v=$(peek_be named.qcow2 72 8)
poke_be named.qcow2 72 8 $(( v | (1 << 20) ))
refused_both incompat-named named.qcow2 'incompatible.*zq-test-feature|zq-test-feature.*incompatible'

# cluster_bits out of range, below and above.
for bits in 8 22; do
    make_image "cb$bits.qcow2"
    poke_be "cb$bits.qcow2" 20 4 "$bits"
    refused_both "cluster-bits-$bits" "cb$bits.qcow2" 'cluster_bits|cluster size'
done

# The corrupt bit (incompatible bit 1): refused read-write, served
# read-only with the right data, and never written to.
make_image corrupt.qcow2
qemu-img convert -f qcow2 -O raw corrupt.qcow2 corrupt.expected
v=$(peek_be corrupt.qcow2 72 8)
poke_be corrupt.qcow2 72 8 $(( v | 2 ))
refused corrupt-rw corrupt.qcow2 'corrupt'
before=$(sha256 corrupt.qcow2)
if ! zq_nbdkit -r -- file=corrupt.qcow2 \
        --run 'nbdcopy --no-extents "$uri" corrupt.actual' 2>corrupt-ro.err; then
    bad "corrupt-ro: the corrupt image was not served read-only:"
    cat corrupt-ro.err >&2
elif ! cmp corrupt.expected corrupt.actual >&2; then
    bad "corrupt-ro: wrong data read from the corrupt image"
fi
[ "$(sha256 corrupt.qcow2)" = "$before" ] ||
    bad "corrupt-ro: the image changed in a read-only session"

[ $failures -eq 0 ] || fail "$failures failure(s)"
