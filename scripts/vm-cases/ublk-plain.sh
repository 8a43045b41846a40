#!/bin/bash
# zqcow2-ublk with a plain image: an ordinary disk.  Data written reads
# back, discard leaves zeroes, write zeroes too, ext4 formats and checks
# clean, fio verifies random writes at depth 32; a read-only device
# refuses writes; qemu-img check finds the image clean afterwards.
. "$(dirname "$0")/../lib/vm-ublk.sh"
vm_ublk_case_init ublk-plain || exit $?

p="$VM_SHARE/p.qcow2"
zq_img create -q "$p" 32M

vm_guest_script <<'EOG'
dd if=/dev/urandom of=/tmp/data bs=1M count=3 2>/dev/null
if ublk_start p.qcow2 --queues 2; then
  q=/sys/block/${dev#/dev/}/queue
  vmt_check not-zoned grep -qx none $q/zoned
  vmt_check discard-granularity grep -qx 65536 $q/discard_granularity
  vmt_check write-data dd if=/tmp/data of="$dev" bs=1M seek=4 oflag=direct
  dd if="$dev" of=/tmp/back bs=1M skip=4 count=3 iflag=direct 2>/dev/null
  vmt_check read-data cmp /tmp/back /tmp/data
  vmt_check discard blkdiscard -o $((4 * 1048576)) -l 1048576 "$dev"
  vmt_check discard-zeroes sh -c "dd if=$dev bs=1M skip=4 count=1 iflag=direct 2>/dev/null | cmp -n 1048576 - /dev/zero"
  vmt_check write-zeroes blkdiscard -z -o $((5 * 1048576)) -l 1048576 "$dev"
  vmt_check write-zeroes-zeroes sh -c "dd if=$dev bs=1M skip=5 count=1 iflag=direct 2>/dev/null | cmp -n 1048576 - /dev/zero"
  vmt_check mkfs-ext4 mkfs.ext4 -q "$dev"
  vmt_check fsck-ext4 e2fsck -fn "$dev"
  vmt_check fio-verify fio --name=plain --filename="$dev" --direct=1 \
    --ioengine=libaio --iodepth=32 --rw=randwrite --bs=4k --size=8M \
    --verify=crc32c
  ublk_stop
fi
if ublk_start p.qcow2 -r; then
  vmt_check readonly-attr grep -qx 1 /sys/block/${dev#/dev/}/ro
  vmt_check_fails readonly-write dd if=/tmp/data of="$dev" bs=4k count=1 oflag=direct
  ublk_stop
fi
EOG
vm_ublk_boot
vm_host_check qemu-img-check qemu_img_clean "$p"
vm_case_end
