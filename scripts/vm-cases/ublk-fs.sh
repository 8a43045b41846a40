#!/bin/bash
# Zoned file systems on zqcow2-ublk devices, in a guest with Linux 6.6 or
# later: f2fs (mkfs.f2fs -m, its metadata in the image's conventional
# zones) and btrfs -O zoned (whose data writes are zone appends).  Files
# are written, read back after a remount, the file system checked; the
# host then checks the images.
. "$(dirname "$0")/../lib/vm-ublk.sh"
vm_ublk_case_init ublk-fs || exit $?
VM_EXTRA_MODULES+=(f2fs btrfs)
VM_GUEST_PROGRAMS+=(mkfs.f2fs fsck.f2fs mkfs.btrfs btrfs)

zq_img create -q -o zone.mode=host-managed,zone.size=2M,zone.conventional_zones=12 "$VM_SHARE/f2fs.qcow2" 128M
zq_img create -q -o zone.mode=host-managed,zone.size=4M "$VM_SHARE/btrfs.qcow2" 256M

vm_guest_script <<'EOG'
dd if=/dev/urandom of=/tmp/data bs=1M count=3 2>/dev/null
# fs_round NAME TYPE: write files on the mounted /fs, remount, read back.
fs_round ()
{
  local i
  cp /tmp/data /fs/a && mkdir /fs/d &&
    for i in 1 2 3 4; do cp /tmp/data /fs/d/$i || return 1; done
  vmt_check $1-write sync
  vmt_check $1-umount umount /fs
  vmt_check $1-remount mount -t $2 "$dev" /fs
  vmt_check $1-readback sh -c 'cmp /tmp/data /fs/a && cmp /tmp/data /fs/d/1 && cmp /tmp/data /fs/d/4'
  vmt_check $1-umount2 umount /fs
}
mkdir -p /fs
if ublk_start f2fs.qcow2; then
  vmt_check f2fs-mkfs mkfs.f2fs -f -m "$dev"
  vmt_check f2fs-mount mount -t f2fs "$dev" /fs && fs_round f2fs f2fs
  vmt_check f2fs-fsck fsck.f2fs "$dev"
  ublk_stop
fi
if ublk_start btrfs.qcow2; then
  if mkfs.btrfs --help 2>&1 | grep -q zoned || mkfs.btrfs -O list-all 2>&1 | grep -q zoned; then
    vmt_check btrfs-mkfs mkfs.btrfs -f -O zoned -d single -m single "$dev"
    vmt_check btrfs-mount mount -t btrfs "$dev" /fs && fs_round btrfs btrfs
    vmt_check btrfs-check btrfs check "$dev"
  else
    vmt_note "btrfs-progs without zoned support: btrfs skipped"
  fi
  ublk_stop
fi
EOG
vm_ublk_boot
vm_host_check f2fs-image-clean zq_img_clean "$VM_SHARE/f2fs.qcow2"
vm_host_check btrfs-image-clean zq_img_clean "$VM_SHARE/btrfs.qcow2"
vm_case_end
