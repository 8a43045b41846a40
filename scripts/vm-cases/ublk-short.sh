#!/bin/bash
# The short zqcow2-ublk case make check runs (tests/test-ublk-vm.sh): a
# zoned image's zone report as the kernel sees it equals zqcow2-img's,
# and one fio zbd pass with verification over its sequential zones.
# ublk-zoned.sh, ublk-fs.sh and ublk-plain.sh go further.
. "$(dirname "$0")/../lib/vm-ublk.sh"
vm_ublk_case_init ublk-short || exit $?

z="$VM_SHARE/z.qcow2"
zq_img create -q -o zone.mode=host-managed,zone.size=1M,zone.conventional_zones=1,zone.max_open_zones=4 "$z" 8M
zq_img zone finish "$z" 2 >/dev/null
zones_of_image "$z" > "$VM_CASE_DIR/zones-before.txt"

vm_guest_script <<'EOG'
if ublk_start z.qcow2 --depth 32; then
  blkzone report "$dev" > report.txt
  vmt_check fio-zbd fio --name=zbd --filename="$dev" --zonemode=zbd \
    --direct=1 --ioengine=libaio --iodepth=32 --rw=write --bs=32k \
    --offset=1048576 --size=$((7 * 1048576)) --verify=crc32c
  blkzone report "$dev" > report-fio.txt
  ublk_stop
fi
EOG
vm_ublk_boot

d="$VM_CASE_DIR"
zones_of_blkzone "$VM_SHARE/report.txt" > "$d/report.txt"
vm_zone_lists_equal report "blkzone report" "$d/report.txt" \
  "zqcow2-img zones" "$d/zones-before.txt"
zones_of_blkzone "$VM_SHARE/report-fio.txt" > "$d/report-fio.txt"
zones_of_image "$z" > "$d/zones-fio.txt"
vm_zone_lists_equal fio-in-image "blkzone report" "$d/report-fio.txt" \
  "zqcow2-img zones" "$d/zones-fio.txt"
vm_host_check image-clean zq_img_clean "$z"
vm_case_end
