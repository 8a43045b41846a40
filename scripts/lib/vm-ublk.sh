# shellcheck shell=bash
# What the zqcow2-ublk VM cases (scripts/vm-cases/ublk-*) share, on top
# of vm.sh.  zqcow2-ublk runs inside the guest, on image files the host
# shares with it over 9p (virtio), so that the host checks the very files
# after the guest is gone, with zqcow2-img and against what the guest saw.
#
#   . "$(dirname "$0")/../lib/vm-ublk.sh"
#   vm_ublk_case_init ublk-foo || exit $?    # also skips below Linux 6.6
#   zq_img create "$VM_SHARE/z.qcow2" ...
#   vm_guest_script <<'EOF'
#   ublk_start z.qcow2 && ... ; ublk_stop
#   EOF
#   vm_ublk_boot
#
# The guest gets, besides vm-guest.sh's helpers: ublk_start IMAGE [OPTS]
# (sets $dev and $ublk_pid; in /share), ublk_stop (SIGTERM, waits for the
# exit), ublk_kill (SIGKILL).

. "$(dirname "${BASH_SOURCE[0]}")/vm.sh"

: "${ZQCOW2_UBLK:=$ZQ_BUILD/ublk/zqcow2-ublk}"

VM_EXTRA_MODULES+=(ublk_drv 9pnet_virtio 9p)
VM_GUEST_PROGRAMS+=(blkzone fio)

# vm_ublk_case_init NAME: vm_case_init with Debian 13's kernel unless
# ZQ_VM_KERNEL says otherwise; skips (77) when the kernel predates zoned
# ublk (6.6) or zqcow2-ublk was not built; makes VM_SHARE.
vm_ublk_case_init ()
{
  local major minor
  export ZQ_VM_KERNEL="${ZQ_VM_KERNEL:-trixie}"
  [[ -x "$ZQCOW2_UBLK" ]] ||
    vm_skip "zqcow2-ublk is not built (configure found no liburing or ublk header)"
  vm_case_init "$1" || return $?
  major="${VM_KVER%%.*}"
  minor="${VM_KVER#*.}"
  minor="${minor%%[.-]*}"
  if (( major < 6 || (major == 6 && minor < 6) )); then
    vm_skip "kernel $VM_KVER has no zoned ublk (Linux 6.6 or later; ZQ_VM_KERNEL=trixie)"
  fi
  VM_SHARE="$VM_CASE_DIR/share"
  mkdir -p "$VM_SHARE"
  vm_guest_file "$ZQCOW2_UBLK" /zq/zqcow2-ublk
  local lib
  while read -r lib; do
    vm_guest_file "$lib" "$lib"
  done < <(ldd "$ZQCOW2_UBLK" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
  vm_guest_script <<'EOG'
mkdir -p /share
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share /share ||
  vmt_fail share "cannot mount the host's directory over 9p"
cd /share
ublk_start ()
{
  rm -f /tmp/ublk.pid /tmp/ublk.dev
  if ! zqcow2-ublk --pidfile /tmp/ublk.pid "$@" > /tmp/ublk.dev 2> /tmp/ublk.err; then
    vmt_fail "start-$1" "zqcow2-ublk $*: $(tail -n 3 /tmp/ublk.err | tr '\n' ' ')"
    return 1
  fi
  dev="$(cat /tmp/ublk.dev)"
  ublk_pid="$(cat /tmp/ublk.pid)"
  vmt_wait_dev "$dev"
}
ublk_wait_exit ()
{
  local i
  for (( i = 0; i < 300; i++ )); do
    kill -0 "$ublk_pid" 2>/dev/null || return 0
    sleep 0.1
  done
  vmt_fail stop "zqcow2-ublk $ublk_pid did not exit within 30 s"
  return 1
}
ublk_stop () { kill "$ublk_pid"; ublk_wait_exit; }
ublk_kill () { kill -9 "$ublk_pid"; ublk_wait_exit; }
EOG
}

# vm_ublk_boot [QEMU-ARGS...]: vm_boot with VM_SHARE as the guest's /share.
vm_ublk_boot ()
{
  VM_MEM="${VM_MEM:-1024}" VM_SMP="${VM_SMP:-2}" \
    vm_boot -virtfs "local,path=$VM_SHARE,mount_tag=share,security_model=none,id=share" "$@"
}

# zones_of_image IMAGE: the image's zones as zqcow2-img reports them, one
# line each: start length capacity write-pointer-offset condition type,
# in 512-byte sectors (the offset is 0 in conventional zones).
zones_of_image ()
{
  zq_img zones --output=json "$1" | jq -r '.zones[] |
    "\(.start / 512) \(.length / 512) \(.capacity / 512) \(
       if ."type-code" == 1 then 0
       else (."write-pointer" - .start) / 512 end) \(."condition-code") \(."type-code")"'
}

# zones_of_blkzone FILE: the same from 'blkzone report' output.
zones_of_blkzone ()
{
  local s l c w cond type
  sed -n 's/.*start: \(0x[0-9a-f]*\), len \(0x[0-9a-f]*\), cap \(0x[0-9a-f]*\), wptr \(0x[0-9a-f]*\) .*zcond: *\([0-9]*\)(.*type: *\([0-9]*\)(.*/\1 \2 \3 \4 \5 \6/p' "$1" |
    while read -r s l c w cond type; do
      printf '%d %d %d %d %d %d\n' "$s" "$l" "$c" "$w" "$cond" "$type"
    done
}

# vm_zone_lists_equal NAME WHAT-A LIST-A WHAT-B LIST-B: two zone lists
# (as zones_of_image prints them) are the same.
vm_zone_lists_equal ()
{
  local diff
  if [[ ! -s "$3" || ! -s "$5" ]]; then
    vm_fail "$1" "no zones from $([[ -s "$3" ]] && echo "$4" || echo "$2")"
  elif diff="$(diff "$3" "$5")"; then
    vm_pass "$1"
  else
    vm_fail "$1" "$2 and $4 differ: $(head -n 6 <<<"$diff" | tr '\n' ' ')"
  fi
}

# zq_img_clean IMAGE: zqcow2-img check finds nothing wrong.
zq_img_clean ()
{
  local out
  out="$(zq_img check "$1" 2>&1)"
  grep -q 'No errors were found on the image' <<<"$out" && ! grep -qi leak <<<"$out" && return 0
  echo "$out"
  return 1
}
