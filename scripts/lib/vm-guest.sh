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

# vmt_export DIR SERIAL: write DIR's files as a tar archive onto the raw
# disk with this serial, for the host to read back (vm_out_disk,
# vm_out_read).
vmt_export ()
{
  local dev
  dev="$(vmt_disk "$2")" || { vmt_fail export "no disk with serial $2"; return 1; }
  sync
  if tar -cf "$dev" -C "$1" . && sync; then
    vmt_pass "export-images"
  else
    vmt_fail "export-images" "cannot write $1 to $dev"
  fi
}

# vmt_nbdkit_start NAME IMAGE [PARAMS...]: serve IMAGE inside the guest
# with nbdkit and the plugin on /tmp/NAME.sock.  NBDKIT_ARGS (an array)
# adds nbdkit options.
vmt_nbdkit_start ()
{
  local name="$1" image="$2" i
  shift 2
  rm -f "/tmp/$name.sock" "/tmp/$name.pid"
  nbdkit ${NBDKIT_ARGS[@]+"${NBDKIT_ARGS[@]}"} -U "/tmp/$name.sock" \
    -P "/tmp/$name.pid" /zq/nbdkit-zqcow2-plugin.so file="$image" "$@" \
    > "/tmp/$name.log" 2>&1 || {
      vmt_fail "nbdkit-$name" "nbdkit did not start: $(_vmt_tail "/tmp/$name.log")"
      return 1
    }
  for (( i = 0; i < 100; i++ )); do
    [[ -S "/tmp/$name.sock" && -s "/tmp/$name.pid" ]] && return 0
    sleep 0.1
  done
  vmt_fail "nbdkit-$name" "nbdkit's socket never appeared"
  return 1
}

# vmt_nbdkit_stop NAME: stop it and wait until it has closed the image.
vmt_nbdkit_stop ()
{
  local pid i
  pid="$(cat "/tmp/$1.pid" 2>/dev/null)" || return 0
  kill "$pid"
  for (( i = 0; i < 100; i++ )); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  vmt_fail "nbdkit-$1-stop" "nbdkit did not exit"
}

# vmt_zqnbd_start NAME IMAGE [OPTIONS...]: serve IMAGE inside the guest
# with zqcow2-nbd on /tmp/NAME.sock (stopped by vmt_nbdkit_stop NAME too).
vmt_zqnbd_start ()
{
  local name="$1" image="$2" i
  shift 2
  rm -f "/tmp/$name.sock" "/tmp/$name.pid"
  /zq/zqcow2-nbd -U "/tmp/$name.sock" "$@" "$image" > "/tmp/$name.log" 2>&1 &
  echo $! > "/tmp/$name.pid"
  for (( i = 0; i < 100; i++ )); do
    [[ -S "/tmp/$name.sock" ]] && return 0
    sleep 0.1
  done
  vmt_fail "zqcow2-nbd-$name" "its socket never appeared: $(_vmt_tail "/tmp/$name.log")"
  return 1
}

# vmt_nbd_connect DEV NAME [CONNECTIONS]: the kernel's NBD client on DEV
# (/dev/nbdN) to /tmp/NAME.sock, 4 KiB blocks.
vmt_nbd_connect ()
{
  local dev="$1" name="$2" conns="${3:-1}" i
  vmt_check "nbd-client-$name" nbd-client -unix "/tmp/$name.sock" "$dev" \
    -b 4096 -C "$conns" || return 1
  for (( i = 0; i < 100; i++ )); do
    [[ "$(blockdev --getsize64 "$dev" 2>/dev/null)" -gt 0 ]] && return 0
    sleep 0.1
  done
  vmt_fail "nbd-size-$name" "$dev still has no size"
  return 1
}

# vmt_nbd_disconnect DEV
vmt_nbd_disconnect () { vmt_check "nbd-disconnect-${1##*/}" nbd-client -d "$1"; }

# vmt_dmesg_on_failure: print the kernel's last messages if a check failed.
vmt_dmesg_on_failure ()
{
  [[ $VMT_FAILED -eq 0 ]] && return 0
  dmesg | tail -n 40 | sed 's/^/dmesg: /'
}
