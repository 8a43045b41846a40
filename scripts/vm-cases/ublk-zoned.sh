#!/bin/bash
# zqcow2-ublk with a zoned image, in a guest with Linux 6.6 or later: the
# kernel's zone report is the image's; zone open, close, finish and reset
# from blkzone reach the image; a write off the pointer fails; fio's zbd
# mode writes and verifies every sequential zone at depth 32; after a
# kill -9 the device left behind is deleted, and what was flushed is there
# when the image is added again.  The host checks the image files after
# the guest is gone.
. "$(dirname "$0")/../lib/vm-ublk.sh"
vm_ublk_case_init ublk-zoned || exit $?

# 12 zones of 2 MiB, 2 conventional; zone 3 finished beforehand.
z="$VM_SHARE/z.qcow2"
zq_img create -q -o zone.mode=host-managed,zone.size=2M,zone.conventional_zones=2,zone.max_open_zones=6,zone.max_active_zones=8 "$z" 24M
zq_img zone finish "$z" 3 >/dev/null
zones_of_image "$z" > "$VM_CASE_DIR/zones-before.txt"
k="$VM_SHARE/k.qcow2"
zq_img create -q -o zone.mode=host-managed,zone.size=2M,zone.conventional_zones=1 "$k" 16M

vm_guest_script <<'EOG'
zone () { echo $(( $1 * 4096 )); }     # zone N's first sector (2 MiB zones)
dd if=/dev/urandom of=/tmp/data bs=64k count=16 2>/dev/null
if ublk_start z.qcow2; then
  vmt_check zoned-model grep -qx host-managed /sys/block/${dev#/dev/}/queue/zoned
  vmt_check max-open grep -qx 6 /sys/block/${dev#/dev/}/queue/max_open_zones
  vmt_check max-active grep -qx 8 /sys/block/${dev#/dev/}/queue/max_active_zones
  blkzone report "$dev" > report-start.txt
  vmt_check zone-open blkzone open -o $(zone 4) -c 1 "$dev"
  vmt_check write-zone5 dd if=/tmp/data of="$dev" bs=64k count=2 seek=$((5 * 32)) oflag=direct
  vmt_check zone-close blkzone close -o $(zone 5) -c 1 "$dev"
  vmt_check write-zone6 dd if=/tmp/data of="$dev" bs=64k count=1 seek=$((6 * 32)) oflag=direct
  vmt_check zone-finish blkzone finish -o $(zone 6) -c 1 "$dev"
  vmt_check zone-reset blkzone reset -o $(zone 3) -c 1 "$dev"
  vmt_check_fails write-off-pointer dd if=/tmp/data of="$dev" bs=64k count=1 seek=$((5 * 32 + 4)) oflag=direct
  vmt_check_fails write-full-zone dd if=/tmp/data of="$dev" bs=64k count=1 seek=$((6 * 32)) oflag=direct
  blkzone report "$dev" > report-ops.txt
  dd if="$dev" of=/tmp/back bs=64k count=2 skip=$((5 * 32)) iflag=direct 2>/dev/null
  vmt_check read-zone5 cmp -n 131072 /tmp/back /tmp/data
  ublk_stop
  cp z.qcow2 z-ops.qcow2
fi
if ublk_start z.qcow2 --depth 32; then
  vmt_check reset-all blkzone reset "$dev"
  vmt_check fio-zbd fio --name=zbd --filename="$dev" --zonemode=zbd \
    --direct=1 --ioengine=libaio --iodepth=32 --rw=write --bs=64k \
    --offset=$((2 * 2 * 1048576)) --size=$((10 * 2 * 1048576)) \
    --verify=crc32c --do_verify=1
  blkzone report "$dev" > report-fio.txt
  ublk_stop
fi
vmt_check no-device-left sh -c '! ls /dev/ublkc* 2>/dev/null'

# kill -9: the device stays as /dev/ublkcN until --delete.
if ublk_start k.qcow2; then
  n="${dev#/dev/ublkb}"
  vmt_check kill-write dd if=/tmp/data of="$dev" bs=64k count=16 seek=$((1 * 32)) oflag=direct conv=fsync
  ublk_kill
  vmt_check kill-leaves-device test -c /dev/ublkc$n
  vmt_check kill-delete zqcow2-ublk --delete "$n"
  vmt_check kill-deleted sh -c "! test -e /dev/ublkc$n"
  if ublk_start k.qcow2; then
    dd if="$dev" of=/tmp/back bs=64k count=16 skip=32 iflag=direct 2>/dev/null
    vmt_check kill-readback cmp /tmp/back /tmp/data
    blkzone report "$dev" > report-kill.txt
    ublk_stop
  fi
fi
EOG
vm_ublk_boot

d="$VM_CASE_DIR"
zones_of_blkzone "$VM_SHARE/report-start.txt" > "$d/report-start.txt"
vm_zone_lists_equal report-start "blkzone report" "$d/report-start.txt" \
  "zqcow2-img zones" "$d/zones-before.txt"

# Zones 3-6 after reset, open, close and finish, as the kernel saw them;
# then the image as the device left it: the same, but for zone 4, opened
# while empty, which is empty again once the image is reopened.
zones_of_blkzone "$VM_SHARE/report-ops.txt" > "$d/report-ops.txt"
conds="$(awk 'NR >= 4 && NR <= 7 { printf "%s ", $5 }' "$d/report-ops.txt")"
if [[ "$conds" == "1 3 4 14 " ]]; then
  vm_pass ops-conditions
else
  vm_fail ops-conditions "zones 3-6: conditions '$conds', expected '1 3 4 14 '"
fi
awk 'NR == 5 && $5 == 3 && $4 == 0 { $5 = 1 } { print }' "$d/report-ops.txt" > "$d/expect-ops.txt"
zones_of_image "$VM_SHARE/z-ops.qcow2" > "$d/zones-ops.txt"
vm_zone_lists_equal ops-in-image "blkzone report" "$d/expect-ops.txt" \
  "zqcow2-img zones after the stop" "$d/zones-ops.txt"

zones_of_blkzone "$VM_SHARE/report-fio.txt" > "$d/report-fio.txt"
zones_of_image "$z" > "$d/zones-fio.txt"
vm_zone_lists_equal fio-in-image "blkzone report" "$d/report-fio.txt" \
  "zqcow2-img zones" "$d/zones-fio.txt"
zones_of_blkzone "$VM_SHARE/report-kill.txt" > "$d/report-kill.txt"
zones_of_image "$k" > "$d/zones-kill.txt"
vm_zone_lists_equal kill-in-image "blkzone report" "$d/report-kill.txt" \
  "zqcow2-img zones" "$d/zones-kill.txt"

vm_host_check image-clean zq_img_clean "$z"
vm_host_check ops-image-clean zq_img_clean "$VM_SHARE/z-ops.qcow2"
vm_host_check kill-image-clean zq_img_clean "$k"
vm_case_end
