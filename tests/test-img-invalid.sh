#!/usr/bin/env bash
# zqcow2-img create refuses every invalid geometry and option with exit
# status 1 and a message naming the field and the value, and never leaves
# a file behind: no new file, an existing file unchanged, no temporary
# file.  A valid create replaces an existing file whole (keeping its
# permissions); a create that fails half-way (file size limit) leaves the
# old file as it was.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires qemu-img
zqimg_ok
scratch_dir

# refused ROW PATTERN ARGS...: "zqcow2-img create ARGS" (whose last two
# arguments are FILE SIZE), run in directory d, exits 1, its stderr
# matches the extended regular expression PATTERN, and d holds exactly
# what it held before.
refused ()
{
    local row="$1" pattern="$2" status=0
    shift 2
    ls -A d >before.ls
    ( cd d && exec "$ZQCOW2_IMG" create -q "$@" ) >out 2>err || status=$?
    ls -A d >after.ls
    if [ "$status" -ne 1 ]; then
        cat out err >&2
        fail "$row: create $* exited $status, expected 1"
    fi
    grep -qE -- "$pattern" err ||
        { cat err >&2; fail "$row: the message does not match /$pattern/"; }
    cmp -s before.ls after.ls ||
        { diff before.ls after.ls >&2; fail "$row: create $* left files behind or removed some"; }
    echo "ok      $row: $(head -1 err)"
}
mkdir d

Z=zone.mode=host-managed

# Geometry, checked by zone_geometry_check in the engine.
refused g1 'zone_size 3145728 .*power of two'          -o $Z,zone.size=3M new.qcow2 1G
refused g2 'zone_size 256 .*power of two'              -o $Z,zone.size=256,cluster_size=512 new.qcow2 1M
refused g3 'makes 536870912 zones, more than the limit of 536870911 \(2\^29 - 1\)' \
                                                       -o $Z,zone.size=1K,cluster_size=2M new.qcow2 512G
refused g3b 'max_append_bytes 1048576 \+ 512 is not below zone_capacity 1048576: QEMU' \
                                                       -o $Z,zone.size=1M,zone.max_append_bytes=1M new.qcow2 4M
refused g3c 'max_append_bytes 65536 \+ 512 is not below zone_capacity 65536: QEMU' \
                                                       -o $Z,zone.size=128K,zone.capacity=64K,zone.max_append_bytes=64K new.qcow2 4M
refused g3d 'zone_capacity 512 leaves no valid max_append_bytes: QEMU' \
                                                       -o $Z,zone.size=512,cluster_size=512 new.qcow2 1M
refused g4 'zone_capacity 134217728 .*no larger than zone_size 67108864' \
                                                       -o $Z,zone.size=64M,zone.capacity=128M new.qcow2 1G
refused g5 'zone_capacity 1000 .*multiple of 512'      -o $Z,zone.size=64M,zone.capacity=1000 new.qcow2 1G
refused g6 'conventional_zones 16 must be less than nr_zones 16' \
                                                       -o $Z,zone.size=64M,zone.conventional_zones=16 new.qcow2 1G
refused g7 'conventional_zones 20 must be less than nr_zones 16' \
                                                       -o $Z,zone.size=64M,zone.conventional_zones=20 new.qcow2 1G
refused g8 'max_open_zones 5 is larger than max_active_zones 4' \
                                                       -o $Z,zone.size=64M,zone.max_open_zones=5,zone.max_active_zones=4 new.qcow2 1G
refused g9 'max_active_zones 7 is larger than the 6 sequential zones' \
                                                       -o $Z,zone.size=64M,zone.conventional_zones=10,zone.max_active_zones=7 new.qcow2 1G
refused g10 'max_open_zones 7 is larger than the 6 sequential zones' \
                                                       -o $Z,zone.size=64M,zone.conventional_zones=10,zone.max_open_zones=7 new.qcow2 1G
refused g11 'max_append_bytes 1000 is not a multiple of 512' \
                                                       -o $Z,zone.size=64M,zone.max_append_bytes=1000 new.qcow2 1G
refused g12 'virtual size 1048576000 is not a multiple of zone_size 67108864' \
                                                       -o $Z,zone.size=64M new.qcow2 1000M
refused g13 'virtual size 1048576000 is not a multiple of zone_size 67108864' \
                                                       -o $Z,zone.size=64M,zone.allow_short_last_zone=off new.qcow2 1000M
refused g14 'zone_size 268435456 .*' \
                                                       -o $Z new.qcow2 100M

# qcow2 options, checked by zq_create.
refused q1 'cluster_size 1000 is not a power of two'   -o cluster_size=1000 new.qcow2 1G
refused q2 'cluster_size 256 is not a power of two between 512 and 2M' \
                                                       -o cluster_size=256 new.qcow2 1G
refused q3 'cluster_size 4194304 is not a power of two between 512 and 2M' \
                                                       -o cluster_size=4M new.qcow2 1G
refused q4 'refcount_bits 3 is not a power of two'     -o refcount_bits=3 new.qcow2 1G
refused q5 'refcount_bits.*128'                        -o refcount_bits=128 new.qcow2 1G
refused q6 'refcount_bits.*0'                          -o refcount_bits=0 new.qcow2 1G
refused q7 'size 9223372036854775808 is too large'     new.qcow2 8388608T
refused q8 'L1 table would be'                         -o cluster_size=512 new.qcow2 64T

# Option syntax, checked by the tool.
refused o1 'zone.size needs zone.mode=host-managed'    -o zone.size=64M new.qcow2 1G
refused o2 'zone.conventional_zones needs zone.mode=host-managed' \
                                                       -o zone.conventional_zones=1 new.qcow2 1G
refused o3 'zone.allow_short_last_zone needs zone.mode=host-managed' \
                                                       -o zone.allow_short_last_zone=on new.qcow2 1G
refused o4 "zone.mode: invalid value 'host-aware'"     -o zone.mode=host-aware new.qcow2 1G
refused o5 "unknown option 'zone.frob'"                -o $Z,zone.frob=1 new.qcow2 1G
refused o6 "unknown option 'preallocation'"            -o preallocation=full new.qcow2 1G
refused o7 "option 'cluster_size' needs a value"       -o cluster_size new.qcow2 1G
refused o8 "lazy_refcounts: invalid value 'maybe'"     -o lazy_refcounts=maybe new.qcow2 1G
refused o9 "compression_type: invalid value 'lz4'"     -o compression_type=lz4 new.qcow2 1G
refused o10 "zone.size: invalid value '0'"             -o $Z,zone.size=0 new.qcow2 1G
refused o11 "zone.capacity: invalid value '12Q'"       -o $Z,zone.capacity=12Q new.qcow2 1G
refused o12 "zone.max_open_zones: invalid value '-1'"  -o $Z,zone.max_open_zones=-1 new.qcow2 1G
refused o13 "zone.conventional_zones: invalid value '4294967296'" \
                                                       -o $Z,zone.conventional_zones=4294967296 new.qcow2 1G
refused o14 "format 'raw' is not supported"            -f raw new.qcow2 1G
refused o15 "empty option"                             -o cluster_size=64K,,refcount_bits=16 new.qcow2 1G

# Sizes and arguments.
refused s1 "invalid size '1.5G'"                       new.qcow2 1.5G
refused s2 "invalid size '1X'"                         new.qcow2 1X
refused s3 "invalid size '-1G'"                        -- new.qcow2 -1G
refused s4 "unknown option '-1' \(negative"            new.qcow2 -1G
refused s5 "invalid size '16777216T'"                  new.qcow2 16777216T
refused s6 "invalid size '99999999999999999999'"       new.qcow2 99999999999999999999
refused s7 "invalid size ''"                           new.qcow2 ''
refused s8 "invalid size ' 1G'"                        new.qcow2 ' 1G'
refused s9 "size 0"                                    new.qcow2 0
refused s10 "missing SIZE"                             new.qcow2
refused s11 "missing FILE and SIZE"
refused s12 "unexpected argument 'extra'"              new.qcow2 1G extra
refused s13 "exists and is not a regular file"         . 1G

# Nothing above created new.qcow2 (refused checked the directory), and an
# existing file is left byte for byte as it was by every kind of refusal.
printf 'not an image\n' >d/old.qcow2
sum="$(sha256 d/old.qcow2)"
refused e1 'zone_size 3145728'        -o $Z,zone.size=3M old.qcow2 1G
refused e2 'cluster_size 1000'        -o cluster_size=1000 old.qcow2 1G
refused e3 "invalid size '1X'"        old.qcow2 1X
[ "$(sha256 d/old.qcow2)" = "$sum" ] || fail "a refused create changed old.qcow2"

# A create that fails while writing (the file size limit makes the writes
# fail with EFBIG) leaves the old file as it was and no temporary file.
status=0
( trap '' XFSZ; ulimit -f 64
  exec "$ZQCOW2_IMG" create -q d/old.qcow2 1G ) >out 2>err || status=$?
[ "$status" -eq 1 ] || { cat err >&2; fail "create under a 64K file size limit exited $status"; }
grep -q 'File too large' err || { cat err >&2; fail "the failed write is not reported"; }
[ "$(sha256 d/old.qcow2)" = "$sum" ] || fail "a failed create changed old.qcow2"
[ "$(ls -A d)" = old.qcow2 ] || { ls -A d >&2; fail "a temporary file was left behind"; }
echo "ok      a create that fails while writing leaves the old file and no temporary"

# A valid create replaces the existing file whole, keeping its mode.
chmod 0640 d/old.qcow2
"$ZQCOW2_IMG" create -q -o $Z,zone.size=4M d/old.qcow2 64M ||
    fail "create over an existing file failed"
[ "$(stat -c %a d/old.qcow2)" = 640 ] ||
    fail "the replaced file's mode is $(stat -c %a d/old.qcow2), not 640"
"$ZQCOW2_IMG" check d/old.qcow2 >out 2>&1 ||
    { cat out >&2; fail "the replacing image does not check clean"; }
[ "$(ls -A d)" = old.qcow2 ] || { ls -A d >&2; fail "a temporary file was left behind"; }
echo "ok      create replaces an existing file and keeps its mode"

# Through a symbolic link, the link is kept and its target replaced.
printf 'old target\n' >target.qcow2
ln -s target.qcow2 link.qcow2
"$ZQCOW2_IMG" create -q link.qcow2 16M || fail "create through a symbolic link failed"
[ -L link.qcow2 ] || fail "the symbolic link was replaced by a file"
qemu-img check -q target.qcow2 || fail "the link's target is not a clean image"
echo "ok      create through a symbolic link replaces its target"
