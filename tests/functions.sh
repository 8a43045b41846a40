# zqcow2 tests: shared shell helpers.  Source from a test with
#   source ./functions.sh    (or "$srcdir/functions.sh")
#
# Exit statuses follow automake: 0 pass, 1 fail, 77 skip.

set -e
set -u
# A pipeline fails when any command in it fails, not only the last: a
# test that pipes a failing tool into grep or awk must not pass.
set -o pipefail

: "${PLUGIN:=}"
: "${abs_top_builddir:=}"

# Where the test scripts and helper programs live.
_zq_testdir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case ":$PATH:" in
  *":$_zq_testdir:"*) ;;
  *) PATH="$_zq_testdir:$PATH" ;;
esac
export PATH
# Python helpers shared by tests (zq_meta.py) live beside the scripts.
export PYTHONPATH="$_zq_testdir${PYTHONPATH:+:$PYTHONPATH}"

_zq_name="$(basename "$0" .sh)"

# skip MESSAGE: tell why, then exit 77.
skip ()
{
    echo "$_zq_name: skipped: $*"
    exit 77
}

# fail MESSAGE: tell why, then exit 1.
fail ()
{
    echo "$_zq_name: FAIL: $*" >&2
    exit 1
}

# requires CMD...: skip unless every command is on $PATH (or is an
# executable path).
requires ()
{
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 ||
            skip "'$cmd' is not installed"
    done
}

# requires_run CMD ARGS...: skip unless the command runs successfully.
requires_run ()
{
    ( "$@" ) </dev/null >/dev/null 2>&1 || skip "'$*' failed"
}

# cleanup_fn CMD ARGS...: run the command when the script exits, in
# reverse order of registration, whatever the exit status.
_zq_cleanups=()
_zq_run_cleanups ()
{
    local status=$? i
    set +e
    for (( i = ${#_zq_cleanups[@]} - 1; i >= 0; i-- )); do
        eval "${_zq_cleanups[$i]}"
    done
    exit $status
}
cleanup_fn ()
{
    local quoted
    printf -v quoted '%q ' "$@"
    _zq_cleanups+=("$quoted")
    trap _zq_run_cleanups EXIT
    trap 'exit 130' INT QUIT TERM
}

# scratch_dir: make a private directory for this test, cd into it and
# remove it on exit (unless KEEP_SCRATCH is set, to look at a failure).
# Each test has its own, so "make -j check" can run tests in parallel.
scratch_dir ()
{
    SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/zqcow2-$_zq_name.XXXXXX")"
    if [ -z "${KEEP_SCRATCH:-}" ]; then
        cleanup_fn rm -rf "$SCRATCH"
    else
        echo "$_zq_name: scratch directory kept: $SCRATCH"
    fi
    cd "$SCRATCH"
}

# plugin_ok: find the built plugin (by path, never by name) or skip.
plugin_ok ()
{
    if [ -z "$PLUGIN" ]; then
        if [ -n "$abs_top_builddir" ]; then
            PLUGIN="$abs_top_builddir/plugin/.libs/nbdkit-zqcow2-plugin.so"
        else
            PLUGIN="$_zq_testdir/../plugin/.libs/nbdkit-zqcow2-plugin.so"
        fi
    fi
    [ -f "$PLUGIN" ] || skip "plugin not built: $PLUGIN"
    PLUGIN="$(cd "$(dirname "$PLUGIN")" && pwd)/$(basename "$PLUGIN")"
    export PLUGIN
    requires nbdkit
}

# sha256 FILE: print the file's digest alone.
sha256 ()
{
    sha256sum "$1" | cut -d' ' -f1
}

# zq_nbdkit [NBDKIT-OPTIONS...] -- [PLUGIN-PARAMS...] --run CMD
# Runs nbdkit captive on a private Unix socket with the zqcow2 plugin:
#   zq_nbdkit -r -- file=img.qcow2 --run 'nbdcopy "$uri" out.raw'
zq_nbdkit ()
{
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        opts+=("$1"); shift
    done
    [ $# -gt 0 ] && shift
    nbdkit ${opts[@]+"${opts[@]}"} -U - "$PLUGIN" "$@"
}

# plugin_map IMG: nbdinfo --map of IMG served read-only by the plugin.
plugin_map ()
{
    nbdkit -r -U - "$PLUGIN" file="$1" --run 'nbdinfo --map "$uri"'
}

# qemu_map IMG: nbdinfo --map of IMG served read-only by qemu-nbd
# (socket activation: libnbd runs qemu-nbd for the life of nbdinfo).
qemu_map ()
{
    nbdinfo --map -- [ qemu-nbd -r -f qcow2 "$1" ]
}

# peek_be FILE OFFSET NBYTES: print the big-endian unsigned integer at
# OFFSET (NBYTES <= 8; 8-byte values above 2^63 print negative).
peek_be ()
{
    local hex
    hex="$(od -An -tx1 -v -j "$2" -N "$3" "$1" | tr -d ' \n')"
    [ ${#hex} -eq $(( $3 * 2 )) ] || { echo "peek_be: short read" >&2; return 1; }
    echo $(( 16#$hex ))
}

# poke_be FILE OFFSET NBYTES VALUE: store VALUE big-endian at OFFSET,
# in place, without truncating the file.
poke_be ()
{
    local file="$1" off="$2" n="$3" val="$4" i bytes=""
    for (( i = n - 1; i >= 0; i-- )); do
        bytes+="$(printf '\\x%02x' $(( (val >> (i * 8)) & 0xff )))"
    done
    printf "$bytes" |
        dd of="$file" bs=1 seek="$off" count="$n" conv=notrunc status=none
}

# map_canon: read "nbdinfo --map" lines (offset length type ...) and
# print "start end type" intervals with neighbours of the same type
# merged, so that two maps describing the same bytes print the same.
map_canon ()
{
    awk '
      NF >= 3 && $1 ~ /^[0-9]+$/ {
        s = $1 + 0; e = $1 + $2; t = $3 + 0
        if ($2 == 0) next
        if (have && s != ce) {
          printf "gap from %.0f to %.0f\n", ce, s > "/dev/stderr"; bad = 1
        }
        if (have && t == ct && s == ce) { ce = e; next }
        if (have) printf "%.0f %.0f %d\n", cs, ce, ct
        cs = s; ce = e; ct = t; have = 1
      }
      END { if (have) printf "%.0f %.0f %d\n", cs, ce, ct; exit bad }'
}

# map_compare EXPECTED ACTUAL [RELAXED]: compare two canonical maps
# byte by byte.  Prints each differing range.  With RELAXED=zero-hint,
# ACTUAL may say "data" (0) where EXPECTED says "data,zero" (2): qemu
# learns that from holes in the host file, and the NBD zero flag is a
# hint a server may leave out.
map_compare ()
{
    awk -v relaxed="${3:-}" '
      BEGIN { na = 0; nb = 0; f = 0 }
      FNR == 1 { f++ }
      f == 1 { as[na] = $1 + 0; ae[na] = $2 + 0; at[na] = $3 + 0; na++; next }
      f == 2 { bs[nb] = $1 + 0; be[nb] = $2 + 0; bt[nb] = $3 + 0; nb++; next }
      END {
        i = 0; j = 0; bad = 0
        # An empty map is a failure to produce one, never a match.
        if (na == 0 || nb == 0) {
          printf "a map is empty: %d extents expected, %d got\n", na, nb
          exit 1
        }
        if (na && nb && (as[0] != bs[0] || ae[na-1] != be[nb-1])) {
          printf "maps cover different ranges: %.0f-%.0f vs %.0f-%.0f\n",
                 as[0], ae[na-1], bs[0], be[nb-1]
          bad = 1
        }
        while (i < na && j < nb) {
          s = as[i] > bs[j] ? as[i] : bs[j]
          e = ae[i] < be[j] ? ae[i] : be[j]
          if (s < e && at[i] != bt[j] &&
              !(relaxed == "zero-hint" && at[i] == 2 && bt[j] == 0)) {
            printf "bytes %.0f to %.0f: expected type %d, got type %d\n",
                   s, e, at[i], bt[j]
            bad = 1
          }
          if (ae[i] <= be[j]) i++; else j++
        }
        exit bad
      }' "$1" "$2"
}

# qemu_clean IMG: qemu-img check finds no errors and no leaks.  Its report
# is left in IMG.check, and printed to stderr when it is not clean.
qemu_clean ()
{
    if qemu-img check "$1" >"$1.check" 2>&1 &&
       grep -q 'No errors were found on the image' "$1.check" &&
       ! grep -qi 'leak' "$1.check"; then
        return 0
    fi
    cat "$1.check" >&2
    return 1
}
