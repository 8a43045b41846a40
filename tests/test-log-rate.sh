#!/usr/bin/env bash
# A client's flood of refused requests does not flood the log: through
# the nbdkit plugin and through zqcow2-nbd, 300 writes behind a zone's
# write pointer (each refused with EIO) leave at most 10 error lines a
# second that name the refusal, plus lines that count the others; every
# refusal is either logged or counted.  With zqcow2-nbd -v the counted
# ones appear at debug level, one line each.  Errors that are not a
# client's refusal are not rate-limited (not exercised here).

source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/zone-functions.sh"
requires nbdkit /usr/bin/python3
requires_run /usr/bin/python3 -c 'import nbd'
: "${ZQCOW2_NBD:=$_zq_testdir/../server/zqcow2-nbd}"
[ -x "$ZQCOW2_NBD" ] || skip "zqcow2-nbd not built: $ZQCOW2_NBD"
plugin_ok
zqimg_ok
scratch_dir

FLOOD=300
LIMIT=10                        # refusals logged as errors a second

# The client: one write at zone 1's start, then FLOOD writes at the same
# place, each refused; writes the seconds the flood took to ./elapsed.
cat >flood.py <<EOF
import errno, nbd, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
zone = 1 << 20
h.pwrite(b"\x11" * 4096, zone)
t0 = time.monotonic()
for i in range($FLOOD):
    try:
        h.pwrite(b"\x22" * 4096, zone)
    except nbd.Error as e:
        assert e.errnum == errno.EIO, "refused with %s, not EIO" % e.errno
    else:
        raise AssertionError("a write behind the write pointer succeeded")
open("elapsed", "w").write("%f\n" % (time.monotonic() - t0))
h.shutdown()
EOF

# check_log NAME STDERR: the refusals in STDERR are bounded and every one
# is either logged or counted.
check_log ()
{
    local name="$1" log="$2" logged counted elapsed windows
    logged=$(grep -v 'debug: ' "$log" |
             grep -c 'refused: it is not at the write pointer' || true)
    counted=$(sed -n 's/.* \([0-9][0-9]*\) more refused requests\{0,1\} w[a-z]* logged at debug level only.*/\1/p' "$log" |
              awk '{ n += $1 } END { print n + 0 }')
    elapsed=$(cat elapsed)
    # The flood spans at most floor(elapsed) + 2 one-second windows.
    windows=$(awk -v e="$elapsed" 'BEGIN { print int(e) + 2 }')
    [ "$logged" -ge 1 ] ||
        { cat "$log" >&2; fail "$name: no refusal was logged at all"; }
    [ "$logged" -le $(( LIMIT * windows )) ] ||
        { cat "$log" >&2
          fail "$name: $logged refusals logged as errors in $elapsed s" \
               "(at most $LIMIT a second)"; }
    [ "$counted" -gt 0 ] ||
        { cat "$log" >&2; fail "$name: no line counts the refusals left out"; }
    [ $(( logged + counted )) -eq "$FLOOD" ] ||
        { cat "$log" >&2
          fail "$name: $logged refusals logged and $counted counted, not" \
               "$FLOOD"; }
    echo "$name: $logged of $FLOOD refusals logged, $counted counted" \
         "($elapsed s)"
}

# 1. The nbdkit plugin.
zoned_create img.qcow2 8M zone.size=1M,zone.conventional_zones=1
nbdkit -U - "$PLUGIN" file=img.qcow2 \
    --run '/usr/bin/python3 flood.py "$uri"' 2>nbdkit.err ||
    { cat nbdkit.err >&2; fail "the flood through nbdkit failed"; }
check_log nbdkit nbdkit.err

# 2. zqcow2-nbd, and with -v the refusals left out at debug level.
zoned_create img.qcow2 8M zone.size=1M,zone.conventional_zones=1
"$ZQCOW2_NBD" --run '/usr/bin/python3 flood.py "$uri"' img.qcow2 \
    2>server.err ||
    { cat server.err >&2; fail "the flood through zqcow2-nbd failed"; }
check_log zqcow2-nbd server.err

zoned_create img.qcow2 8M zone.size=1M,zone.conventional_zones=1
"$ZQCOW2_NBD" -v --run '/usr/bin/python3 flood.py "$uri"' img.qcow2 \
    2>verbose.err ||
    { cat verbose.err >&2; fail "the flood through zqcow2-nbd -v failed"; }
check_log "zqcow2-nbd -v" verbose.err
debug=$(grep 'debug: ' verbose.err |
        grep -c 'refused: it is not at the write pointer' || true)
[ $(( $(grep -v 'debug: ' verbose.err |
        grep -c 'refused: it is not at the write pointer') + debug )) \
    -eq "$FLOOD" ] ||
    { cat verbose.err >&2
      fail "zqcow2-nbd -v: $debug refusals at debug level, which with" \
           "those logged as errors are not $FLOOD"; }
