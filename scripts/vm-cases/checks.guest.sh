# shellcheck shell=bash
# Check lists shared by the VM cases, run inside the guest (bash, with
# vm-guest.sh's helpers).  The host ships /zq/pattern: 4 MiB of random
# bytes that it keeps, to compare what it reads back afterwards.
#
# The zoned lists expect the geometry of vm_zoned_image (scripts/lib/vm.sh):
# 4 MiB zones, zones 0-3 conventional, zones 4-11 sequential, empty.

VMT_ZONE_BLOCKS=64            # zone size in 64 KiB blocks
VMT_ZONE_BYTES=$((4 << 20))

# _vmt_dd_at DEV ZONE BLOCK COUNT [PATTERN-BLOCK]: write COUNT 64 KiB blocks
# of the pattern, O_DIRECT, at block BLOCK of zone ZONE.
_vmt_dd_at ()
{
  dd if=/zq/pattern of="$1" bs=64k skip="${5:-$3}" count="$4" \
     seek=$(( $2 * VMT_ZONE_BLOCKS + $3 )) oflag=direct conv=notrunc
}

# vmt_check_eio NAME CMD...: the command must fail with EIO.
vmt_check_eio ()
{
  local name="$1"
  shift
  if "$@" > /tmp/vmt.out 2>&1; then
    vmt_fail "$name" "'$*' succeeded, but must fail with EIO"
  elif grep -q 'Input/output error\|I/O error' /tmp/vmt.out; then
    vmt_pass "$name"
  else
    vmt_fail "$name" "'$*' failed, but not with EIO: $(_vmt_tail /tmp/vmt.out)"
  fi
}

# _vmt_zeroes DEV OFFSET-BLOCKS COUNT: true if these 64 KiB blocks read as
# zeroes.
_vmt_zeroes ()
{
  [[ "$(dd if="$1" bs=64k skip="$2" count="$3" iflag=direct 2>/dev/null |
        tr -d '\000' | wc -c)" -eq 0 ]]
}

# vmt_plain_ext4 DEV: mkfs.ext4, mount, files, fsck.  Leaves /f1../f4 (the
# pattern) and /dir/small.N for the host to read back with debugfs.
vmt_plain_ext4 ()
{
  local dev="$1" i
  vmt_check mkfs-ext4 mke2fs -q -F -t ext4 "$dev" || return
  vmt_check mount mount -t ext4 "$dev" /mnt || return
  vmt_check write-files bash -c '
    for i in 1 2 3 4; do cp /zq/pattern /mnt/f$i || exit 1; done
    mkdir /mnt/dir && for i in $(seq 1 50); do
      echo "small file $i" > /mnt/dir/small.$i || exit 1
    done
    sync'
  vmt_check read-files bash -c '
    echo 3 > /proc/sys/vm/drop_caches
    for i in 1 2 3 4; do cmp /zq/pattern /mnt/f$i || exit 1; done'
  vmt_check umount umount /mnt
  vmt_check fsck-ext4 e2fsck -fn "$dev"
}

# vmt_zoned_basic DEV: the zone rules as a client sees them on an ordinary
# disk: writes at the pointer, EIO off it and into full zones, a zone
# reset by discard, a finish by write-zeroes from the pointer.
vmt_zoned_basic ()
{
  local dev="$1"
  # Zone 4: two O_DIRECT writes at the pointer, then off it and behind it.
  vmt_check write-at-wp _vmt_dd_at "$dev" 4 0 16
  vmt_check write-at-wp-again _vmt_dd_at "$dev" 4 16 16
  vmt_check_eio write-ahead-of-wp-eio _vmt_dd_at "$dev" 4 40 1
  vmt_check_eio write-behind-wp-eio _vmt_dd_at "$dev" 4 8 1
  vmt_check fill-zone _vmt_dd_at "$dev" 4 32 32
  vmt_check_eio write-full-zone-eio _vmt_dd_at "$dev" 4 63 1
  vmt_check read-back-zone bash -c "
    dd if=$dev bs=64k skip=$((4 * VMT_ZONE_BLOCKS)) count=64 iflag=direct 2>/dev/null |
    cmp - /zq/pattern"
  # A discard of the whole zone resets it: it can be written from its start.
  vmt_check reset-by-discard blkdiscard -o $((4 * VMT_ZONE_BYTES)) \
    -l $VMT_ZONE_BYTES "$dev"
  vmt_check write-after-reset _vmt_dd_at "$dev" 4 0 8 32
  # Zone 5: 1 MiB written, then write-zeroes from the pointer to the end.
  vmt_check write-zone5 _vmt_dd_at "$dev" 5 0 16
  vmt_check finish-by-write-zeroes blkdiscard -z \
    -o $((5 * VMT_ZONE_BYTES + (1 << 20))) -l $((3 << 20)) "$dev"
  vmt_check_eio write-finished-zone-eio _vmt_dd_at "$dev" 5 16 1
  vmt_check finished-zone-reads-zeroes _vmt_zeroes "$dev" \
    $((5 * VMT_ZONE_BLOCKS + 16)) 48
}

# vmt_zoned_conv_ext4 DEV: ext4 on the four conventional zones, through
# dm-linear (the filesystem must stay off the sequential zones).
vmt_zoned_conv_ext4 ()
{
  local dev="$1" sectors=$((4 * VMT_ZONE_BYTES / 512)) dm
  vmt_check dm-linear dmsetup create zqconv --table "0 $sectors linear $dev 0" ||
    return
  dm=/dev/mapper/zqconv
  [[ -b $dm ]] || dmsetup mknodes zqconv
  vmt_check conv-mkfs-ext4 mke2fs -q -F -t ext4 $dm || return
  vmt_check conv-mount mount -t ext4 $dm /mnt || return
  vmt_check conv-write cp /zq/pattern /mnt/pattern
  vmt_check conv-umount umount /mnt
  vmt_check conv-fsck e2fsck -fn $dm
  vmt_check conv-read-back bash -c "mount -t ext4 -o ro $dm /mnt &&
    cmp /zq/pattern /mnt/pattern && umount /mnt"
  dmsetup remove zqconv
}

# vmt_buffered_boundary DEV NAME: point 2 of issue 11 as an expectation: a
# buffered (page-cache) write in order from zone 6's pointer across into
# zone 7 fails by default, because writeback sends requests that straddle
# the boundary and the server refuses them.  NAME says what is expected:
# "refused" (the default) or "accepted" (zone-boundary splitting on).
vmt_buffered_boundary ()
{
  local dev="$1" expect="$2" cmd
  # 60 KiB O_DIRECT first, so that no request size divides the way to the
  # boundary; then 4400 KiB buffered, 364 KiB of it in zone 7.
  vmt_check buffered-prefix dd if=/zq/pattern of="$dev" bs=4k count=15 \
    seek=$((6 * VMT_ZONE_BYTES / 4096)) oflag=direct conv=notrunc
  cmd=(bash -c "cat /zq/pattern /zq/pattern | dd of=$dev bs=4k count=1100 \
       seek=$((6 * VMT_ZONE_BYTES / 4096 + 15)) conv=notrunc,fsync iflag=fullblock")
  if [[ $expect == refused ]]; then
    vmt_check_fails buffered-across-boundary-refused "${cmd[@]}"
  else
    vmt_check buffered-across-boundary-accepted "${cmd[@]}"
    vmt_check buffered-read-back bash -c "
      dd if=$dev bs=4k skip=$((6 * VMT_ZONE_BYTES / 4096 + 15)) count=1100 \
         iflag=direct 2>/dev/null |
      cmp - <(cat /zq/pattern /zq/pattern | head -c $((1100 * 4096)))"
  fi
}

# vmt_fio_stream NAME DEV ZONE DEPTH BS: fio writes zone ZONE from its start
# to its end, O_DIRECT, sequential, DEPTH requests in flight, then reads it
# back and verifies every block.
vmt_fio_stream ()
{
  local name="$1" dev="$2" zone="$3" depth="$4" bs="$5"
  vmt_check "$name" fio --name="$name" --filename="$dev" --direct=1 \
    --ioengine=libaio --iodepth="$depth" --iodepth_batch_submit="$depth" --rw=write --bs="$bs" \
    --offset=$((zone * VMT_ZONE_BYTES)) --size=$VMT_ZONE_BYTES \
    --verify=crc32c --do_verify=1 --verify_fatal=1 --output=/tmp/fio.out \
    --randrepeat=0 --norandommap=1
  grep -q 'err= 0' /tmp/fio.out 2>/dev/null ||
    sed -n '1,12s/^/fio: /p' /tmp/fio.out
}

# vmt_fio_interleaved NAME DEV ZONE DEPTH BS: two fio jobs, one on each
# vCPU (so on different NBD connections), write alternate blocks of zone
# ZONE, each DEPTH deep: together an in-order stream from the pointer with
# no gaps, however the two interleave.  Both verify what they wrote.
vmt_fio_interleaved ()
{
  local name="$1" dev="$2" zone="$3" depth="$4" bs="$5" bytes
  bytes=$(( ${bs%k} * 1024 ))
  vmt_check "$name" fio --filename="$dev" --direct=1 --ioengine=libaio \
    --iodepth="$depth" --iodepth_batch_submit="$depth" --rw=write:"$bs" --bs="$bs" --verify=crc32c \
    --do_verify=1 --verify_fatal=1 --output=/tmp/fio.out \
    --name=even --cpus_allowed=0 --offset=$((zone * VMT_ZONE_BYTES)) \
      --size=$VMT_ZONE_BYTES \
    --name=odd --cpus_allowed=1 --offset=$((zone * VMT_ZONE_BYTES + bytes)) \
      --size=$((VMT_ZONE_BYTES - bytes))
  grep -q 'err= 0' /tmp/fio.out 2>/dev/null ||
    sed -n '1,12s/^/fio: /p' /tmp/fio.out
}

# vmt_reverse_burst NAME DEV ZONE N: N - 1 O_DIRECT writes of 4 KiB ahead
# of zone ZONE's pointer, sent last block first, then the write at the
# pointer (tests/zq-vm-burst.c): the stream is in order once all have
# arrived, so every write must succeed, however many server threads the
# first ones hold waiting.  (Issue 11, point 1: with nbdkit's default of
# 16 threads per connection, 16 such writes failed.)
vmt_reverse_burst ()
{
  local name="$1" dev="$2" zone="$3" n="$4"
  if [[ ! -x /zq/zq-vm-burst ]]; then
    vmt_fail "$name" "tests/zq-vm-burst is not built (make -C tests zq-vm-burst)"
    return
  fi
  vmt_check "$name" /zq/zq-vm-burst "$dev" $((zone * VMT_ZONE_BYTES)) "$n" 4096
}
