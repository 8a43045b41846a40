#!/usr/bin/env bash
# A Linux guest as the client: the short case of the VM harness
# (scripts/vm-cases/short).  Boots the Debian kernel under QEMU (TCG here:
# a few minutes at most), the disks served by the plugin over NBD, the
# kernel's checks on ext4 and on an O_DIRECT stream through a zone over two
# NBD connections.  Skips when qemu-system-x86_64 or a kernel is missing.
# The full harness (scripts/vm-test, make vm-check) is not part of
# 'make check'.
source "$(dirname "$0")/functions.sh"
requires qemu-system-x86_64 cpio nbdkit nbdcopy jq debugfs
ls /boot/vmlinuz-* >/dev/null 2>&1 || [ -n "${ZQ_VM_KERNEL:-}" ] ||
    skip "no kernel in /boot (linux-image-amd64)"
plugin_ok
scratch_dir
# The boot must fit 'make check''s budget of three minutes under TCG.
export ZQ_VM_TIMEOUT="${ZQ_VM_TIMEOUT:-170}" TMPDIR="$SCRATCH"
"${abs_top_srcdir:-$_zq_testdir/..}/scripts/vm-test" --no-build short
