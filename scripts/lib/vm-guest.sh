# shellcheck shell=bash
# Helpers for the guest scripts of the VM test harness (run by bash inside
# the guest; see scripts/lib/vm.sh).  Each check prints one line on the
# serial console, "VMTEST PASS NAME" or "VMTEST FAIL NAME: WHY".

VMT_FAILED=0

vmt_pass () { echo "VMTEST PASS $1"; }
vmt_fail ()
{
  echo "VMTEST FAIL $1: $2"
  VMT_FAILED=$((VMT_FAILED + 1))
}
vmt_note () { echo "VMTEST NOTE $*"; }

# _vmt_tail FILE: the last lines of a command's output, on one line.
_vmt_tail () { tail -n "${2:-3}" "$1" | tr '\n' ' '; }

# vmt_check NAME CMD...: pass if the command succeeds, else fail with the
# last lines it printed.
vmt_check ()
{
  local name="$1"
  shift
  if "$@" > /tmp/vmt.out 2>&1; then
    vmt_pass "$name"
  else
    vmt_fail "$name" "'$*' failed (status $?): $(_vmt_tail /tmp/vmt.out)"
  fi
}

# vmt_check_fails NAME CMD...: pass if the command fails (what a zoned
# device must do with a write off its pointer, for instance).
vmt_check_fails ()
{
  local name="$1"
  shift
  if "$@" > /tmp/vmt.out 2>&1; then
    vmt_fail "$name" "'$*' succeeded, but must fail"
  else
    vmt_pass "$name"
  fi
}

# vmt_wait_dev DEV: wait (up to 10 s) for a block device to appear.
vmt_wait_dev ()
{
  local i
  for (( i = 0; i < 100; i++ )); do
    [[ -b "$1" ]] && return 0
    sleep 0.1
  done
  vmt_fail "device-$1" "$1 never appeared"
  return 1
}

# vmt_disk SERIAL: print /dev/vdX of the virtio disk with this serial.
vmt_disk ()
{
  local d
  for d in /sys/block/vd*; do
    if [[ "$(cat "$d/serial" 2>/dev/null)" == "$1" ]]; then
      echo "/dev/${d##*/}"
      return 0
    fi
  done
  return 1
}

# vmt_export FILE SERIAL: write FILE as a tar archive onto the raw disk
# with this serial, for the host to read back (vm_out_disk, vm_out_read).
vmt_export ()
{
  local dev
  dev="$(vmt_disk "$2")" || { vmt_fail export "no disk with serial $2"; return 1; }
  if tar -cf "$dev" -C "$(dirname "$1")" "$(basename "$1")" && sync; then
    vmt_pass "export-$(basename "$1")"
  else
    vmt_fail "export-$(basename "$1")" "cannot write $1 to $dev"
  fi
}

# vmt_nbdkit_start IMAGE [PARAMS...]: serve IMAGE inside the guest with
# nbdkit and the plugin on /tmp/nbd.sock.  NBDKIT_ARGS adds options.
vmt_nbdkit_start ()
{
  local image="$1" i
  shift
  rm -f /tmp/nbd.sock /tmp/nbdkit.pid
  nbdkit ${NBDKIT_ARGS[@]+"${NBDKIT_ARGS[@]}"} -U /tmp/nbd.sock \
    -P /tmp/nbdkit.pid /zq/nbdkit-zqcow2-plugin.so file="$image" "$@" \
    > /tmp/nbdkit.log 2>&1 || {
      vmt_fail nbdkit "nbdkit did not start: $(_vmt_tail /tmp/nbdkit.log)"
      return 1
    }
  for (( i = 0; i < 100; i++ )); do
    [[ -S /tmp/nbd.sock && -s /tmp/nbdkit.pid ]] && return 0
    sleep 0.1
  done
  vmt_fail nbdkit "nbdkit's socket never appeared"
  return 1
}

# vmt_nbdkit_stop: stop it and wait until it has closed the image.
vmt_nbdkit_stop ()
{
  local pid i
  pid="$(cat /tmp/nbdkit.pid 2>/dev/null)" || return 0
  kill "$pid"
  for (( i = 0; i < 100; i++ )); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
}

# vmt_dmesg_on_failure: print the kernel's last messages if a check failed.
vmt_dmesg_on_failure ()
{
  [[ $VMT_FAILED -eq 0 ]] && return 0
  dmesg | tail -n 40 | sed 's/^/dmesg: /'
}
