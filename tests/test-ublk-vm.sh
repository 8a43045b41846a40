#!/usr/bin/env bash
# zqcow2-ublk in a Linux guest: the short ublk case of the VM harness
# (scripts/vm-cases/ublk-short): a zoned image's zone report as the
# guest's kernel sees it equals zqcow2-img's, and one fio zbd pass with
# verification.  Zoned ublk needs Linux 6.6 or later: Debian 13's kernel
# (fetched once into the build tree's vm-cache) unless ZQ_VM_KERNEL names
# another.  Skips when zqcow2-ublk was not built, QEMU is missing or no
# such kernel can be had.
source "$(dirname "$0")/functions.sh"
requires qemu-system-x86_64 cpio jq blkzone
export ZQCOW2_UBLK="${abs_top_builddir:-$_zq_testdir/..}/ublk/zqcow2-ublk"
[ -x "$ZQCOW2_UBLK" ] || skip "zqcow2-ublk is not built (no liburing or ublk header)"
scratch_dir
export ZQ_VM_KERNEL="${ZQ_VM_KERNEL:-trixie}"
# The boot must fit 'make check''s budget of three minutes under TCG.
export ZQ_VM_TIMEOUT="${ZQ_VM_TIMEOUT:-170}" TMPDIR="$SCRATCH"
"${abs_top_srcdir:-$_zq_testdir/..}/scripts/vm-test" --no-build ublk-short
