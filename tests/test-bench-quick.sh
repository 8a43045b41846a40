#!/usr/bin/env bash
# scripts/bench works: a smoke run of two workloads (one of them zoned,
# over four connections) against the three servers, whose --json output
# holds a row with real numbers for every workload and server, and whose
# Markdown file has a table for each.  No speed is asserted: benchmarks
# are not tests (docs/benchmarks.md).

source "$(dirname "$0")/functions.sh"
requires fio qemu-nbd qemu-img nbdkit jq
plugin_ok
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd engine"
[ -n "$abs_top_srcdir" ] || abs_top_srcdir="$_zq_testdir/.."
[ -x "$abs_top_builddir/tools/zqcow2-img" ] || skip "zqcow2-img not built"
scratch_dir

"$abs_top_srcdir/scripts/bench" --quick --runtime 1 \
    --workloads randwrite,zoned-4jobs --dir "$PWD" \
    --output bench.md --json bench.json >bench.out 2>&1 ||
    { tail -n 30 bench.out >&2; fail "scripts/bench --quick failed"; }

# Every (workload, server) pair the run measures, with numbers.
expected='randwrite zqcow2
randwrite qemu-nbd
randwrite nbdkit-file
zoned-4jobs zqcow2-zoned
zoned-4jobs zqcow2
zoned-4jobs qemu-nbd
zoned-4jobs nbdkit-file'
got="$(jq -r '.results[] | select(.mib_s > 0 and .iops > 0 and
                                   .cpu_us_per_request > 0 and
                                   .rss_peak_mib > 0 and
                                   .base_ratio > 0) |
              "\(.workload) \(.server)"' bench.json)" ||
    fail "bench.json is not the JSON expected: $(head -c 500 bench.json)"
[ "$got" = "$expected" ] ||
    fail "bench.json rows with numbers: expected
$expected
got
$got"
echo "ok      --json: a row with numbers for each of 7 workload/server pairs"

base="$(jq -r '[.results[] | select(.workload == "zoned-4jobs") | .base] |
               unique | join(",")' bench.json)"
[ "$base" = zqcow2-zoned ] ||
    fail "zoned-4jobs ratios are not to the zoned image: base $base"

for w in randwrite zoned-4jobs; do
    grep -q "^### $w\$" bench.md || fail "bench.md has no table for $w"
done
grep -q '^| zoned-4jobs | .* IOPS |' bench.md ||
    fail "bench.md's summary has no zoned-4jobs row"
echo "ok      the Markdown results have both workloads and the summary"
