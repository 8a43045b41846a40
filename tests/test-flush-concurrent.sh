#!/usr/bin/env bash
# Flushes racing with writes, zeroes and trims from several threads, with
# an L2 cache of two tables (constant eviction), leave an image that
# qemu-img checks clean, without leaks, and that holds exactly what was
# written.  Then simulated power cuts (tests/powercut.c): images of what
# the disk could hold at moments of the run, synced writes plus any
# subset of the others, must check without corruption (leaks allowed) and
# keep what each flush and FUA request vouched for.  Then the same with
# every 5th fdatasync failing: failed flushes give back what they took,
# and a clean close still leaves no leak.  Then the workload killed with
# SIGKILL at random moments, again and again on one image: it must never
# check corrupt.

source "$(dirname "$0")/functions.sh"
requires qemu-img zq-flushstress
scratch_dir

# check_image IMAGE ALLOW-LEAKS
check_image ()
{
    local rc=0
    qemu-img check "$1" >check.out 2>&1 || rc=$?
    if [[ $rc -ne 0 && ! ( $2 = yes && $rc -eq 3 ) ]]; then
        cat check.out >&2
        fail "$1: qemu-img check exited with $rc"
    fi
}

for seed in 1 2 3; do
    echo "== clean run, seed $seed"
    rm -f img.qcow2
    qemu-img create -q -f qcow2 -o cluster_size=4k img.qcow2 32M
    zq-flushstress --seed "$seed" --ops 1500 --threads 4 --cache 8192 \
        --reference ref.raw img.qcow2 ||
        fail "seed $seed: the workload failed"
    check_image img.qcow2 no
    grep -qi leak check.out && { cat check.out >&2; fail "seed $seed: leaks"; }
    qemu-img compare -q -f qcow2 -F raw img.qcow2 ref.raw ||
        fail "seed $seed: image and reference differ"
done

# An L2 cache of the whole image leaves refcount blocks dirty longest
# (no eviction writes them), a tiny one evicts all the time, and one of
# 16 tables for 64 makes room 4 tables at a time.  With 64k clusters and
# subclusters, 4k requests share clusters (copy-on-write, partial
# zeroes).
while read -r opts size cache seed; do
    echo "== power cuts, $opts, $size, L2 cache $cache, seed $seed"
    rm -f img.qcow2 img.qcow2.*
    qemu-img create -q -f qcow2 -o "$opts" img.qcow2 "$size"
    zq-flushstress --seed "$seed" --ops 3000 --threads 4 \
        --cache "$cache" --power-cuts 30 img.qcow2 ||
        fail "$opts, seed $seed: the workload or a cut failed"
    for cut in img.qcow2.cut-*; do
        check_image "$cut" yes
    done
done <<'CASES'
cluster_size=4k 32M 1048576 1
cluster_size=4k 32M 8192 2
cluster_size=4k 32M 1048576 3
cluster_size=64k,extended_l2=on 32M 65536 4
cluster_size=4k 128M 65536 6
CASES
rm -f img.qcow2.*

# Every 5th fdatasync fails with EIO (and syncs nothing): flushes and FUA
# requests fail, what they took goes back for the next flush; the cuts
# must stay consistent, and after a clean close the image must check
# clean, without leaks, and read as written (tests/zq-flushstress.c).
for opts in cluster_size=4k cluster_size=64k; do
    echo "== failing fdatasync, $opts"
    rm -f img.qcow2 img.qcow2.*
    qemu-img create -q -f qcow2 -o "$opts" img.qcow2 32M
    zq-flushstress --seed 5 --ops 2000 --threads 4 --cache 16384 \
        --fail-syncs 5 --power-cuts 20 img.qcow2 2>errors.log ||
        { tail -n 20 errors.log >&2; fail "$opts: failing syncs"; }
    check_image img.qcow2 no
    grep -qi leak check.out && { cat check.out >&2; fail "$opts: leaks"; }
    for cut in img.qcow2.cut-*; do
        check_image "$cut" yes
    done
done
rm -f img.qcow2.*

echo "== kill -9 rounds"
rm -f img.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k img.qcow2 32M
for round in $(seq 1 15); do
    zq-flushstress --seed "$round" --threads 4 --cache 8192 \
        --crash-after-ms $(( 20 + RANDOM % 200 )) img.qcow2 ||
        fail "round $round: the workload failed"
    check_image img.qcow2 yes
done
echo "ok"
