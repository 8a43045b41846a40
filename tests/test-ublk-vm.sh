#!/bin/bash
# zqcow2-ublk in a VM: the short case of scripts/vm-cases (a zone report
# and one fio zbd pass on a zoned ublk device).  It needs a kernel with
# zoned ublk (Linux 6.6+; Debian 13's by default, ZQ_VM_KERNEL to choose)
# and skips (77) when the VM harness cannot run here.
export ZQCOW2_UBLK="${abs_top_builddir:-..}/ublk/zqcow2-ublk"
exec "${abs_top_srcdir:-..}/scripts/vm-cases/ublk-short.sh"
