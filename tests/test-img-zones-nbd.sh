#!/usr/bin/env bash
# zqcow2-img zones URI reads the zone report from zqcow2-nbd's
# qemu:zone-state context: after a scripted mix of writes, finishes (zero
# to the capacity) and resets (trim of a whole zone) through the server,
# the report over NBD, human and JSON, whole and with --offset/--count,
# with many extents per reply and with one (REQ_ONE), equals byte for byte
# the report zqcow2-img reads from the file once the server has stopped.
# The same for zones of 8 GiB (each several extents, and more than one
# request), --count 1 included.  A server without the context, no server
# at all, or a map that is not a zone report (from a fake server) gets a
# clear message and exit status 1.
#
# The mixes end with no zone open: open conditions live only in memory
# (zoned-qcow2-format.md), so an open zone reads back closed from the file.

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires /usr/bin/python3 cmp qemu-img
requires_run /usr/bin/python3 -c 'import nbd'
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
zqimg_ok
scratch_dir

# The report variants compared: zqcow2-img zones options, one set a line.
cat >variants <<'EOF'

--count 1
--offset 3M --count 2
--offset 3300K
--offset 8M --count 5
EOF

# reports SOURCE PREFIX: every variant, human and JSON, into PREFIX.N.FMT;
# with an NBD URI also under REQ_ONE, into PREFIX.N.FMT.one.
cat >reports.sh <<'EOF'
source="$1" prefix="$2" n=0
while read -r opts; do
    for fmt in human json; do
        # shellcheck disable=SC2086
        "$ZQCOW2_IMG" zones --output=$fmt $opts "$source" \
            >"$prefix.$n.$fmt" || exit 1
        case "$source" in
          nbd*)
            # shellcheck disable=SC2086
            ZQCOW2_IMG_REQ_ONE=1 "$ZQCOW2_IMG" zones --output=$fmt $opts \
                "$source" >"$prefix.$n.$fmt.one" || exit 1 ;;
        esac
    done
    n=$((n + 1))
done <variants
EOF
export ZQCOW2_IMG

# compare_reports PREFIX-NBD PREFIX-FILE
compare_reports ()
{
    local f n
    for f in "$1".*; do
        n="${f#"$1".}"
        n="${n%.one}"
        cmp "$f" "$2.$n" >/dev/null ||
            { diff "$2.$n" "$f" >&2
              fail "$f (over NBD) differs from $2.$n (the file)"; }
    done
}

M=$((1 << 20))
K=1024
# 1 MiB zones of 768 KiB capacity, zone 0 conventional, one zone open at
# a time (a write to another zone closes the open one), a short last zone
# of 512 KiB.
zoned_create img.qcow2 8704K zone.size=1M,zone.capacity=768K,zone.conventional_zones=1,zone.max_open_zones=1,zone.allow_short_last_zone=on

cat >mix.py <<'EOF'
import nbd, sys
M, K = 1 << 20, 1024
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"c" * 65536, 102400)             # conventional zone 0
h.pwrite(b"1" * 8192, 1 * M)               # zone 1 open
h.pwrite(b"2" * 4096, 2 * M)               # zone 2 open, 1 closed
h.pwrite(b"3" * 4096, 3 * M)               # zone 3 open, 2 closed
h.pwrite(b"3" * 4096, 3 * M + 4096)
h.zero(768 * K - 8192, 3 * M + 8192)       # finish zone 3: full
h.pwrite(b"4" * 4096, 4 * M)               # zone 4 open
h.trim(M, 2 * M)                           # reset zone 2: empty
h.pwrite(b"5" * 16384, 5 * M)              # zone 5 open, 4 closed
h.pwrite(b"5" * 4096, 5 * M + 16384)
h.zero(768 * K, 6 * M)                     # finish empty zone 6
h.pwrite(b"8" * 4096, 8 * M)               # short zone 8 open, 5 closed
h.zero(512 * K - 4096, 8 * M + 4096)       # finish zone 8
h.flush()
h.shutdown()
EOF

"$ZQCOW2_NBD" --run '/usr/bin/python3 mix.py "$uri" &&
                     bash reports.sh "$uri" nbd' img.qcow2 ||
    fail "the mix or the reports over NBD failed, see above"
bash reports.sh img.qcow2 file || fail "the reports of the file failed"
# The mix must have made every kind of zone, or equality proves little.
for cond in 'nw' 'em' 'cl' 'fu'; do
    grep -q "($cond)" file.0.human ||
        { cat file.0.human >&2; fail "the mix made no zone in condition $cond"; }
done
grep -q 'cap 0x00080000' file.0.human ||
    { cat file.0.human >&2; fail "no short last zone in the report"; }
compare_reports nbd file
echo "ok      1 MiB zones: $(ls nbd.* | wc -l) reports over NBD equal the file's"

# Zones of 8 GiB with a capacity of 3 GiB: every zone is several extents
# (the part beyond the capacity alone is more than 4 GiB) and longer than
# one request.
zoned_create big.qcow2 24G zone.size=8G,zone.capacity=3G,zone.max_open_zones=1
cat >big.py <<'EOF'
import nbd, sys
G = 1 << 30
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"0" * 4096, 0)                   # zone 0 open
h.pwrite(b"1" * 4096, 8 * G)               # zone 1 open, 0 closed
h.zero(3 * G - 4096, 8 * G + 4096)         # finish zone 1
h.flush()
h.shutdown()
EOF
cat >variants <<'EOF'

--count 1
--offset 8G --count 1
--offset 20G --count 1
--offset 9G
EOF
rm -f nbd.* file.*
"$ZQCOW2_NBD" --run '/usr/bin/python3 big.py "$uri" &&
                     bash reports.sh "$uri" nbd' big.qcow2 ||
    fail "the mix or the reports over NBD of 8 GiB zones failed, see above"
bash reports.sh big.qcow2 file || fail "the reports of big.qcow2 failed"
[ "$(cat file.0.human)" = "\
  start: 0x0000000000, len 0x200000000, cap 0xc0000000, wptr 0x00001000, zcond: 4(cl) [type: 2(SEQ_WRITE_REQUIRED)]
  start: 0x0200000000, len 0x200000000, cap 0xc0000000, wptr 0x200000000, zcond:14(fu) [type: 2(SEQ_WRITE_REQUIRED)]
  start: 0x0400000000, len 0x200000000, cap 0xc0000000, wptr 0x00000000, zcond: 1(em) [type: 2(SEQ_WRITE_REQUIRED)]" ] ||
    { cat file.0.human >&2; fail "big.qcow2: not the zones the mix made"; }
compare_reports nbd file
echo "ok      8 GiB zones: $(ls nbd.* | wc -l) reports over NBD equal the file's"

# No qemu:zone-state: a plain image through zqcow2-nbd, and the zoned
# image through the nbdkit plugin (nbdkit publishes base:allocation
# only).  No server: libnbd's message.
# check_refusal WHAT PATTERN: the last zones command, which left its
# output in refusal.out and its status in refusal.status, failed with
# status 1 and a message matching PATTERN.
check_refusal ()
{
    [ "$(cat refusal.status)" = 1 ] ||
        { cat refusal.out >&2
          fail "$1: exit status $(cat refusal.status), not 1"; }
    grep -q -- "$2" refusal.out ||
        { cat refusal.out >&2; fail "$1: no message /$2/"; }
    echo "ok      $1: $(head -1 refusal.out)"
}
refuse='"$ZQCOW2_IMG" zones "$uri" >refusal.out 2>&1 &&
        echo 0 >refusal.status || echo $? >refusal.status'
none='this export publishes no zone information; serve it with zqcow2-nbd'
qemu-img create -q -f qcow2 plain.qcow2 16M
"$ZQCOW2_NBD" -r --run "$refuse" plain.qcow2
check_refusal "plain image" "$none"
plugin_ok
zq_nbdkit -r -- file=img.qcow2 --run "$refuse"
check_refusal "nbdkit plugin" "$none"
uri='nbd+unix:///?socket=/nonexistent/sock'
eval "$refuse"
check_refusal "no server" "^zqcow2-img: $uri: .*connect"

# Maps that are not zone reports, from a fake server
# (zq_fake_zone_server.py): each refused, status 1, naming the offset.
# Two 1 MiB zones; S is ZONE_SHIFT 20 with type 2 (sequential).
S=$(( (20 << 16) | 0x20 ))
W=0x100 B=0x200 ODD=0x400
fake ()
{
    local sock="$PWD/fake.sock" pid i
    rm -f "$sock"
    /usr/bin/python3 "$_zq_testdir/zq_fake_zone_server.py" "$sock" "$1" &
    pid=$!
    for (( i = 0; i < 100; i++ )); do
        [ -S "$sock" ] && break
        sleep 0.1
    done
    uri="nbd+unix:///?socket=$sock"
    eval "$refuse"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
# First a good map, to show that the fake server speaks NBD well enough.
fake "4096:$((S|W|4)),1044480:$((S|4)),1048576:$((S|ODD|1))"
[ "$(cat refusal.status)" = 0 ] ||
    { cat refusal.out >&2; fail "the fake server's good map was refused"; }
[ "$(cat refusal.out)" = "\
  start: 0x0000000000, len 0x00100000, cap 0x00100000, wptr 0x00001000, zcond: 4(cl) [type: 2(SEQ_WRITE_REQUIRED)]
  start: 0x0000100000, len 0x00100000, cap 0x00100000, wptr 0x00000000, zcond: 1(em) [type: 2(SEQ_WRITE_REQUIRED)]" ] ||
    { cat refusal.out >&2; fail "the fake server's good map, wrong report"; }
bad="the server's qemu:zone-state map is not a zone report"
while IFS='|' read -r map why; do
    fake "$map"
    check_refusal "fake map $map" "$bad: $why"
done <<EOF
4096:0,2093056:$((S|1))|status 0 (nothing known) at offset 0
4096:$((S|W|4)),1044480:$((S|2)),1048576:$((S|ODD|1))|the extents of one zone disagree at offset 4096
2097152:$((S|1))|an extent crosses the end of its zone at offset 0
4096:$((S|4)),1044480:$((S|W|4)),1048576:$((S|ODD|1))|WRITTEN and BEYOND_CAPACITY out of order at offset 4096
1048576:$((S|1)),1048576:$((S|1))|ZONE_ODD does not match the zone at offset 1048576
1048576:$((S|1)),1048576:$(( (19 << 16) | 0x20 | 1))|the zone size changes at offset 1048576
1048576:$((S|W|B|4)),1048576:$((S|ODD|1))|WRITTEN and BEYOND_CAPACITY together at offset 0
1048576:$(( (20 << 16) | 1 )),1048576:$((S|ODD|1))|no zone type at offset 0
EOF
exit 0
