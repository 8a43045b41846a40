#!/usr/bin/env bash
# qemu as an NBD client (as a VM would use the export) writes patterns,
# aligned and not, through the plugin; qemu's own qcow2 driver then finds
# them in the image file, and qemu-img check finds the image clean.

source "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io
plugin_ok
scratch_dir

qemu-img create -q -f qcow2 -o cluster_size=64k img.qcow2 32M

zq_nbdkit -- file=img.qcow2 --run '
    qemu-io -f raw \
        -c "write -P 0x01 0 64k" \
        -c "write -P 0x02 65535 2" \
        -c "write -P 0x03 1000001 300001" \
        -c "write -P 0x04 4M 4M" \
        -c "write -z 5M 1M" \
        -c "write -z 6500001 12345" \
        -c "discard 7M 1M" \
        -c "write -P 0x05 33554431 1" \
        -c "write -P 0x06 16777215 65538" \
        -c "flush" \
        "$uri" >write.out
' || fail "writing through the plugin failed"

qemu-io -f qcow2 \
    -c 'read -P 0x01 0 65535' \
    -c 'read -P 0x02 65535 2' \
    -c 'read -P 0x00 65537 934464' \
    -c 'read -P 0x03 1000001 300001' \
    -c 'read -P 0x00 1300002 2894302' \
    -c 'read -P 0x04 4M 1M' \
    -c 'read -P 0x00 5M 1M' \
    -c 'read -P 0x04 6M 208545' \
    -c 'read -P 0x00 6500001 12345' \
    -c 'read -P 0x04 6512346 827686' \
    -c 'read -P 0x00 7M 1M' \
    -c 'read -P 0x00 8M 8388607' \
    -c 'read -P 0x06 16777215 65538' \
    -c 'read -P 0x00 16842753 16711678' \
    -c 'read -P 0x05 33554431 1' \
    img.qcow2 >read.out 2>&1 ||
    { grep -i 'fail' read.out >&2 || cat read.out >&2
      fail "qemu's qcow2 driver reads different data"; }

qemu-img check img.qcow2 >check.out 2>&1 ||
    { cat check.out >&2; fail "qemu-img check is not clean"; }
