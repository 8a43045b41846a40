#!/usr/bin/env bash
# No file of lib/ calls a function of a layer above its own (the table in
# lib/README.md), read from the objects just built; and the checker
# itself finds a call that goes up: with the table's "util" and "api"
# rows swapped, the calls from requests.c into lower layers all go up.
source "$(dirname "$0")/functions.sh"
requires nm join
scratch_dir
layers="${abs_top_srcdir:-$_zq_testdir/..}/scripts/layers"
objdir="${abs_top_builddir:-$_zq_testdir/..}/lib/.libs"
readme="${abs_top_srcdir:-$_zq_testdir/..}/lib/README.md"

"$layers" "$objdir" || fail "a file of lib/ calls up a layer (above)"

# The same objects against a table turned upside down must fail, naming
# requests.c: a checker that passes everything proves nothing.
awk '/^    [0-9]+ [a-z]+ / { $1 = 9 - $1; printf "    %s\n", $0; next } { print }' \
  "$readme" > "$SCRATCH/README.md"
if ZQ_LAYERS_README="$SCRATCH/README.md" "$layers" "$objdir" \
     > "$SCRATCH/upside-down.out" 2>&1; then
  fail "scripts/layers passed a table turned upside down"
fi
grep -q '^layers: requests.c (0 api) calls ' "$SCRATCH/upside-down.out" ||
  fail "the upside-down table's report does not name requests.c: $(head -n 3 "$SCRATCH/upside-down.out")"
echo "test-layers: the checker refuses an upside-down table ($(grep -c "^layers: .* calls " "$SCRATCH/upside-down.out") calls up)"
