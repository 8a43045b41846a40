# shellcheck shell=bash
# What scripts/fuzz and tests/test-fuzz.sh share: checking for clang with
# libFuzzer, building the harnesses (fuzz.mk) and running one of them.
# Source it; it expects nothing but bash.

FUZZERS=(fuzz-image-ro fuzz-image-rw fuzz-nbd)
_fuzz_lib_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# fuzz_available: true if clang can link a libFuzzer target with ASan and
# UBSan (clang and libclang-rt-dev installed).
fuzz_available ()
{
  local tmp ok=1
  command -v clang >/dev/null 2>&1 || return 1
  tmp="$(mktemp -d)"
  printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput (const uint8_t *d, size_t n)' \
    '{ (void) d; (void) n; return 0; }' > "$tmp/t.c"
  clang -fsanitize=fuzzer,address,undefined -o "$tmp/t" "$tmp/t.c" \
    >/dev/null 2>&1 && ok=0
  rm -rf "$tmp"
  return $ok
}

# fuzz_build SRCDIR BUILDDIR OUT: the three harnesses into OUT, from the
# sources of SRCDIR with the config.h of the configured BUILDDIR.
# Incremental: only what changed is compiled again.
fuzz_build ()
{
  make -s -f "$1/tests/fuzz/fuzz.mk" -j"$(nproc 2>/dev/null || echo 1)" \
    top_srcdir="$1" top_builddir="$2" OUT="$3"
}

# fuzz_run OUT NAME SECONDS CORPUS [MORE-DIRS-OR-FILES...]: runs one
# harness for SECONDS (nice'd: the machine is shared), new inputs going
# into CORPUS, findings into OUT/artifacts.  Prints libFuzzer's last
# status line (execs, cov, ft) and, on a finding, the log's tail.  The log
# is OUT/NAME.log.  Returns libFuzzer's status (0: nothing found).
fuzz_run ()
{
  local out="$1" name="$2" seconds="$3" corpus="$4" status
  shift 4
  local -a extra=()
  # The server logs each refused request; libFuzzer keeps its own output
  # and the sanitizers' reports when the harness's stderr is closed (the
  # harness's own "fuzz: ..." line shows when the artifact is replayed:
  # OUT/fuzz-nbd ARTIFACT).
  [[ "$name" == fuzz-nbd ]] && extra+=(-close_fd_mask=2)
  # Magic numbers and codes the mutations would seldom hit by chance.
  case "$name" in
    fuzz-nbd) extra+=(-dict="$_fuzz_lib_dir/nbd.dict") ;;
    *)        extra+=(-dict="$_fuzz_lib_dir/image.dict") ;;
  esac
  mkdir -p "$corpus" "$out/artifacts"
  nice -n 10 "$out/$name" -max_total_time="$seconds" -timeout=30 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$name-" "${extra[@]}" \
    "$corpus" "$@" > "$out/$name.log" 2>&1
  status=$?
  grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$out/$name.log" | tail -n 1 |
    sed "s/^/$name: /"
  grep -E '^stat::number_of_executed_units' "$out/$name.log" |
    sed "s/^/$name: /"
  if [[ $status -ne 0 ]]; then
    echo "$name: FINDING (status $status), from $out/$name.log:"
    grep -E 'ERROR|SUMMARY|fuzz:|^ +#[0-9]+ |Test unit written' \
      "$out/$name.log" | head -n 40
  fi
  return $status
}

# fuzz_replay OUT NAME INPUT...: runs the harness once over each input
# (regression inputs: each must pass, each within 30 seconds: some were
# found as inputs that took the engine minutes).
fuzz_replay ()
{
  local out="$1" name="$2"
  shift 2
  [[ $# -gt 0 ]] || return 0
  local -a extra=()
  [[ "$name" == fuzz-nbd ]] && extra+=(-close_fd_mask=2)
  "$out/$name" -timeout=30 "${extra[@]}" "$@" > "$out/$name-replay.log" 2>&1 &&
    return 0
  echo "$name: a regression input fails again:"
  grep -E 'Running:|ERROR|SUMMARY|fuzz:' "$out/$name-replay.log" | head -n 20
  return 1
}
