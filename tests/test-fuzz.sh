#!/usr/bin/env bash
# The libFuzzer harnesses (tests/fuzz) build with clang, ASan and UBSan,
# every regression input of tests/fuzz/regress passes, and each harness
# then runs for a few seconds over freshly made seeds without a finding.
# The long runs are scripts/fuzz's.  Skipped without clang and libFuzzer.
# FUZZ_CHECK_SECONDS (default 3) sets the run per harness.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io make /usr/bin/python3
: "${abs_top_srcdir:=$(cd "$_zq_testdir/.." && pwd)}"
: "${abs_top_builddir:=$abs_top_srcdir}"
# shellcheck source=tests/fuzz/fuzz-lib.sh
source "$abs_top_srcdir/tests/fuzz/fuzz-lib.sh"
fuzz_available || skip "clang with libFuzzer (libclang-rt-dev) is missing"
[ -f "$abs_top_builddir/config.h" ] || skip "no config.h in $abs_top_builddir"
scratch_dir

# Built beside the autotools objects, kept between runs: only changed
# sources compile again.
out="$abs_top_builddir/tests/fuzz/out"
fuzz_build "$abs_top_srcdir" "$abs_top_builddir" "$out" ||
  fail "building the harnesses"
PATH="$abs_top_builddir/tools:$abs_top_builddir/server:$PATH" \
  bash "$abs_top_srcdir/tests/fuzz/make-seeds.sh" seeds >/dev/null ||
  fail "making the seeds"

seconds="${FUZZ_CHECK_SECONDS:-3}"
failed=0
for name in "${FUZZERS[@]}"; do
  case "$name" in
    fuzz-nbd) seeds=seeds/nbd ;;
    *)        seeds=seeds/image ;;
  esac
  shopt -s nullglob
  regress=("$abs_top_srcdir/tests/fuzz/regress/$name"/*)
  shopt -u nullglob
  fuzz_replay "$out" "$name" "${regress[@]}" || failed=1
  # A corpus of this run's own: the seeds alone, so that the result does
  # not depend on what earlier runs found.
  fuzz_run "$out" "$name" "$seconds" "corpus-$name" "$seeds" || failed=1
done
[ "$failed" -eq 0 ] || fail "a fuzzer found something (see above)"
