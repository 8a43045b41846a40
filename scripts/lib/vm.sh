# shellcheck shell=bash
# The VM test harness: boots a Linux kernel under qemu-system-x86_64 with a
# small initramfs and a guest script, and collects one line per check.
# Sourced by scripts/vm-test and by each case in scripts/vm-cases/.
#
# A case is a bash script in scripts/vm-cases/ that sources this file,
# calls vm_case_init, makes its images, writes the guest's script, serves
# and boots, and checks the images afterwards:
#
#   . "$(dirname "$0")/../lib/vm.sh"
#   vm_case_init plain-ext4
#   zq_img create -q "$VM_CASE_DIR/a.qcow2" 64M
#   vm_pattern                      # /zq/pattern and /zq/checks.sh
#   vm_guest_script <<'GUEST'
#   . /zq/checks.sh
#   vmt_plain_ext4 "$(vmt_disk a)"
#   GUEST
#   vm_nbdkit_start a "$VM_CASE_DIR/a.qcow2" &&
#     mapfile -t disks < <(vm_disk_args a "$VM_SOCKET") &&
#     vm_boot "${disks[@]}"
#   vm_nbdkit_stop a
#   vm_host_check host-qemu-img-check qemu_img_clean "$VM_CASE_DIR/a.qcow2"
#   vm_case_end
#
# A kernel other than the host's may need more modules: set
# VM_EXTRA_MODULES=(ublk_drv) before vm_boot.
#
# The guest runs the script under a real bash (busybox sh would prefer its
# own applets over PATH) with vm-guest.sh's helpers: vmt_pass NAME,
# vmt_fail NAME WHY, vmt_check NAME CMD...  Each prints "VMTEST PASS NAME"
# or "VMTEST FAIL NAME: WHY" on the serial console; the host repeats those
# lines and counts them.  After the script the guest syncs, prints
# "VMTEST END" and reboots, which ends QEMU (-no-reboot).
#
# Settings (environment):
#   ZQ_VM_KERNEL   a vmlinuz path, "host" (default: the newest in /boot), or
#                  "trixie" (Debian 13's kernel, scripts/lib/fetch-kernel.sh)
#   ZQ_VM_MODULES  the modules directory of that kernel (lib/modules/KVER);
#                  found beside the kernel or in /lib/modules when unset
#   ZQ_VM_CACHE    where initramfs pieces and fetched kernels are kept
#                  (default: vm-cache/ in the build tree)
#   ZQ_VM_ACCEL    kvm or tcg (default: kvm if it really runs a guest here)
#   ZQ_VM_TIMEOUT  seconds one boot may take before it is killed (300)
#   ZQ_VM_KEEP     set: keep each case's directory (images, console log)

ZQ_TOP="${ZQ_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
ZQ_BUILD="${abs_top_builddir:-$ZQ_TOP}"
ZQ_VM_CACHE="${ZQ_VM_CACHE:-$ZQ_BUILD/vm-cache}"
: "${PLUGIN:=$ZQ_BUILD/plugin/.libs/nbdkit-zqcow2-plugin.so}"
: "${ZQCOW2_IMG:=$ZQ_BUILD/tools/zqcow2-img}"
: "${ZQCOW2_NBD:=$ZQ_BUILD/server/zqcow2-nbd}"

# Modules every guest loads, in this order, each with its dependencies
# (a module built into the kernel is skipped).  A case may add to
# VM_EXTRA_MODULES before vm_boot; a missing extra module is an error.
VM_BASE_MODULES=(virtio_pci virtio_blk nbd crc32c_generic ext4 dm_mod)
VM_EXTRA_MODULES=()

# Programs copied into every guest with the libraries ldd finds for them.
# Busybox provides the rest (sh, mount, dd with oflag=direct, cmp, ...).
VM_GUEST_PROGRAMS=(
  bash mke2fs e2fsck debugfs nbd-client blkdiscard blkzone blockdev
  dmsetup nbdkit fio
)

VM_PASS=0
VM_FAIL=0

vm_log () { echo "vm-test: $*" >&2; }

# ---------------------------------------------------------------- results

# vm_pass NAME / vm_fail NAME WHY: a host-side check's result, printed in
# the guest's format so that one counter reads both.
vm_pass () { echo "VMTEST PASS $VM_CASE/$1"; VM_PASS=$((VM_PASS + 1)); }
vm_fail ()
{
  echo "VMTEST FAIL $VM_CASE/$1: $2"
  VM_FAIL=$((VM_FAIL + 1))
}

# vm_host_check NAME CMD...: run a host command; pass if it succeeds, else
# fail with the last lines it printed.
vm_host_check ()
{
  local name="$1" out
  shift
  if out="$("$@" 2>&1)"; then
    vm_pass "$name"
  else
    vm_fail "$name" "$(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
  fi
}

# vm_skip WHY: the case cannot run here; exit 77 as automake expects.
vm_skip ()
{
  echo "VMTEST SKIP ${VM_CASE:-vm}: $*"
  exit 77
}

# ---------------------------------------------------------------- kernel

# vm_kernel_select [SPEC]: set VM_KERNEL (the bzImage), VM_KVER and
# VM_MODDIR (its lib/modules/KVER with modules.dep) from SPEC, or from
# $ZQ_VM_KERNEL.  Returns 1 with a message when there is no such kernel.
vm_kernel_select ()
{
  local spec="${1:-${ZQ_VM_KERNEL:-host}}" k
  case "$spec" in
    host)
      VM_KERNEL=""
      for k in /boot/vmlinuz-*; do
        [[ -r "$k" ]] && VM_KERNEL="$k"
      done
      if [[ -z "$VM_KERNEL" ]]; then
        vm_log "no readable kernel in /boot (install linux-image-amd64)"
        return 1
      fi ;;
    trixie)
      VM_KERNEL="$("$ZQ_TOP/scripts/lib/fetch-kernel.sh" trixie)" || return 1 ;;
    *)
      VM_KERNEL="$spec" ;;
  esac
  if [[ ! -r "$VM_KERNEL" ]]; then
    vm_log "kernel $VM_KERNEL is not readable"
    return 1
  fi
  VM_KVER="$(basename "$VM_KERNEL")"
  VM_KVER="${VM_KVER#vmlinuz-}"
  VM_MODDIR="${ZQ_VM_MODULES:-}"
  if [[ -z "$VM_MODDIR" ]]; then
    # An unpacked package keeps boot/ and lib/modules/ side by side.
    for VM_MODDIR in "$(dirname "$VM_KERNEL")/../lib/modules/$VM_KVER" \
                     "/lib/modules/$VM_KVER"; do
      [[ -f "$VM_MODDIR/modules.dep" ]] && break
    done
  fi
  if [[ ! -f "$VM_MODDIR/modules.dep" ]]; then
    vm_log "no modules.dep for kernel $VM_KVER in $VM_MODDIR (set ZQ_VM_MODULES)"
    return 1
  fi
  VM_MODDIR="$(cd "$VM_MODDIR" && pwd)"
}

# vm_module_files MODULE...: print the module files to load, dependencies
# first, each once, as kmod's modprobe resolves them from modules.dep.
vm_module_files ()
{
  local root="${VM_MODDIR%/lib/modules/*}" mod line deps
  local -A seen=()
  [[ "$root" == "$VM_MODDIR" ]] && root=/
  for mod in "$@"; do
    if ! deps="$(modprobe -d "$root" -S "$VM_KVER" --show-depends "$mod" 2>&1)"; then
      vm_log "kernel $VM_KVER: no module $mod: $deps"
      return 1
    fi
    while read -r line; do
      [[ "$line" == insmod\ * ]] || continue    # "builtin MOD" needs nothing
      line="${line#insmod }"
      line="${line%% *}"
      [[ -n "${seen[$line]:-}" ]] && continue
      seen[$line]=1
      printf '%s\n' "$line"
    done <<<"$deps"
  done
}

# ---------------------------------------------------------------- accel

# vm_accel: print kvm if a KVM guest really runs here, else tcg.  /dev/kvm
# may exist and even run SeaBIOS, yet never get a kernel going (so it is
# on this machine), so boot the selected kernel without a root filesystem:
# under working KVM it panics ("VFS: Unable to mount root") within
# seconds and, with panic=-1 and -no-reboot, QEMU exits.  The answer is
# kept for this process and its children.
vm_accel ()
{
  if [[ -n "${ZQ_VM_ACCEL:-}" ]]; then
    echo "$ZQ_VM_ACCEL"
    return
  fi
  local probe memo
  # The probe costs up to 20 s: remember its answer until the host reboots.
  memo="$ZQ_VM_CACHE/accel-$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
  if [[ -s "$memo" ]]; then
    ZQ_VM_ACCEL="$(cat "$memo")"
    export ZQ_VM_ACCEL
    echo "$ZQ_VM_ACCEL"
    return
  fi
  ZQ_VM_ACCEL=tcg
  if [[ -r /dev/kvm && -w /dev/kvm ]]; then
    probe="$(mktemp)"
    timeout --kill-after=5 20 qemu-system-x86_64 -accel kvm -m 256 \
      -nodefaults -display none -nic none -no-reboot \
      -serial "file:$probe" -kernel "$VM_KERNEL" \
      -append "console=ttyS0 panic=-1 root=/dev/nonexistent" \
      </dev/null >/dev/null 2>&1
    if grep -aq 'Kernel panic' "$probe"; then
      ZQ_VM_ACCEL=kvm
    fi
    rm -f "$probe"
  fi
  mkdir -p "$ZQ_VM_CACHE" && echo "$ZQ_VM_ACCEL" > "$memo"
  export ZQ_VM_ACCEL
  echo "$ZQ_VM_ACCEL"
}

# ---------------------------------------------------------------- initramfs

# _vm_copy_with_libs ROOT FILE...: copy each file to ROOT at the same path,
# with every library ldd names for it, and the dynamic loader.
_vm_copy_with_libs ()
{
  local root="$1" f lib
  shift
  for f in "$@"; do
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
    while read -r lib; do
      [[ -e "$root$lib" ]] && continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done < <(ldd "$f" 2>/dev/null |
             awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
  done
}

# _vm_base_key: what the base initramfs depends on, as one digest.
_vm_base_key ()
{
  {
    echo "$VM_KERNEL $VM_KVER $VM_MODDIR"
    echo "${VM_BASE_MODULES[*]} ${VM_EXTRA_MODULES[*]}"
    echo "${VM_GUEST_PROGRAMS[*]}"
    cat "${BASH_SOURCE[0]}" "$ZQ_TOP/scripts/lib/vm-guest.sh" "$ZQ_TOP/scripts/lib/vm-init"
    ldd "$PLUGIN" "$ZQCOW2_IMG" "$ZQCOW2_NBD" 2>/dev/null | awk '{ print $1 }'
  } | sha256sum | cut -c1-16
}

# vm_base_initramfs: build (once per kernel and program set, kept in the
# cache) the uncompressed cpio holding busybox, the programs and their
# libraries, the modules (decompressed: busybox insmod takes plain .ko)
# and /init.  Sets VM_BASE_CPIO.
vm_base_initramfs ()
{
  local key root prog path mod n=0 modlist
  key="$(_vm_base_key)"
  VM_BASE_CPIO="$ZQ_VM_CACHE/initramfs-$VM_KVER-$key.cpio"
  [[ -s "$VM_BASE_CPIO" ]] && return 0

  mkdir -p "$ZQ_VM_CACHE"
  exec {lockfd}>"$ZQ_VM_CACHE/.lock"
  flock "$lockfd"
  if [[ -s "$VM_BASE_CPIO" ]]; then
    exec {lockfd}>&-
    return 0
  fi
  vm_log "building the guest's initramfs for kernel $VM_KVER"
  root="$(mktemp -d "$ZQ_VM_CACHE/root.XXXXXX")"
  mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run,mnt,etc,lib/modules,zq}
  cp /bin/busybox "$root/bin/busybox"
  for prog in $(/bin/busybox --list); do
    [[ -e "$root/bin/$prog" ]] || ln -s busybox "$root/bin/$prog"
  done
  for prog in "${VM_GUEST_PROGRAMS[@]}"; do
    path="$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$prog")" || {
      vm_log "the guest needs $prog: install it (scripts/lib/deps.sh lists it)"
      rm -rf "$root"; exec {lockfd}>&-; return 1
    }
    path="$(readlink -f "$path")"
    _vm_copy_with_libs "$root" "$path"
    # Reach it under its own name first on PATH, ahead of busybox applets.
    mkdir -p "$root/usr/local/bin"
    ln -sf "$path" "$root/usr/local/bin/$prog"
  done
  ln -sf mke2fs "$root$(dirname "$(readlink -f "$(command -v mke2fs)")")/mkfs.ext4"
  ln -sf /usr/local/bin/mke2fs "$root/usr/local/bin/mkfs.ext4"
  ln -sf /usr/local/bin/e2fsck "$root/usr/local/bin/fsck.ext4"
  # The front ends' libraries (the binaries themselves come with each boot).
  _vm_copy_with_libs "$root" "$PLUGIN" "$ZQCOW2_IMG" "$ZQCOW2_NBD"
  rm -f "$root$PLUGIN" "$root$ZQCOW2_IMG" "$root$ZQCOW2_NBD"

  modlist="$(vm_module_files "${VM_BASE_MODULES[@]}" "${VM_EXTRA_MODULES[@]}")" || {
    rm -rf "$root"; exec {lockfd}>&-; return 1
  }
  : > "$root/etc/modules.order"
  while read -r mod; do
    [[ -n "$mod" ]] || continue
    n=$((n + 1))
    local dst
    dst="$root/lib/modules/$(printf '%02d' "$n")-$(basename "${mod%.*}")"
    case "$mod" in
      *.ko.xz)  xz -dc "$mod" > "${dst%.ko}.ko" ;;
      *.ko.zst) zstd -qdc "$mod" > "${dst%.ko}.ko" ;;
      *.ko.gz)  gzip -dc "$mod" > "${dst%.ko}.ko" ;;
      *)        cp "$mod" "${dst%.ko}.ko" ;;
    esac
    basename "${dst%.ko}.ko" >> "$root/etc/modules.order"
  done <<<"$modlist"
  cp "$ZQ_TOP/scripts/lib/vm-init" "$root/init"
  chmod 755 "$root/init"
  cp "$ZQ_TOP/scripts/lib/vm-guest.sh" "$root/zq/vm-guest.sh"

  # Older builds for this kernel are stale now: drop them.
  rm -f "$ZQ_VM_CACHE/initramfs-$VM_KVER-"*.cpio
  ( cd "$root" && find . -print0 | cpio --null -o -H newc --quiet ) \
    > "$VM_BASE_CPIO.tmp" && mv "$VM_BASE_CPIO.tmp" "$VM_BASE_CPIO"
  rm -rf "$root"
  exec {lockfd}>&-
  [[ -s "$VM_BASE_CPIO" ]]
}

# ---------------------------------------------------------------- cases

# vm_case_init NAME: start a case: pick the kernel, check the tools, make
# the case's directory (VM_CASE_DIR).  Exits 77 when this machine cannot
# run VMs; returns 1 when the build is missing.
vm_case_init ()
{
  VM_CASE="$1"
  VM_FILES=()
  VM_PROGRAMS=()
  command -v qemu-system-x86_64 >/dev/null 2>&1 ||
    vm_skip "qemu-system-x86_64 is not installed (qemu-system-x86)"
  vm_kernel_select || vm_skip "no kernel to boot"
  [[ -x /bin/busybox ]] || vm_skip "busybox is not installed (busybox-static)"
  command -v cpio >/dev/null 2>&1 || vm_skip "cpio is not installed"
  if [[ ! -f "$PLUGIN" || ! -x "$ZQCOW2_IMG" ]]; then
    vm_log "build zqcow2 first: $PLUGIN or $ZQCOW2_IMG is missing"
    exit 1
  fi
  VM_WORK="${VM_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/zqcow2-vm.XXXXXX")}"
  VM_CASE_DIR="$VM_WORK/$VM_CASE"
  rm -rf "$VM_CASE_DIR"
  mkdir -p "$VM_CASE_DIR"
  VM_GUEST_SCRIPT="$VM_CASE_DIR/guest.sh"
  : > "$VM_GUEST_SCRIPT"
  if [[ -z "${ZQ_VM_KEEP:-}" && -z "${VM_WORK_SHARED:-}" ]]; then
    trap 'rm -rf "$VM_WORK"' EXIT
  fi
}

# vm_case_end: print the case's tally; exit 0 if every check passed.
vm_case_end ()
{
  echo "VMTEST CASE $VM_CASE: $VM_PASS passed, $VM_FAIL failed"
  [[ -n "${ZQ_VM_KEEP:-}" ]] && vm_log "kept $VM_CASE_DIR"
  [[ $VM_FAIL -eq 0 && $VM_PASS -gt 0 ]]
  exit $?
}

# vm_guest_script: append stdin to the script the guest runs.
vm_guest_script () { cat >> "$VM_GUEST_SCRIPT"; }

# vm_guest_file HOST-PATH GUEST-PATH: put a file into the guest.
vm_guest_file () { VM_FILES+=("$1:$2"); }

# vm_guest_program HOST-PATH GUEST-PATH: put a program into the guest with
# the libraries ldd finds for it (e.g. a front end linked with liburing).
vm_guest_program () { VM_PROGRAMS+=("$1:$2"); }

# _vm_case_cpio OUT: the per-boot cpio: the guest script, the front ends,
# the files of vm_guest_file.
_vm_case_cpio ()
{
  local out="$1" root pair
  local -a files=(${VM_FILES[@]+"${VM_FILES[@]}"})
  root="$(mktemp -d "$VM_CASE_DIR/croot.XXXXXX")"
  mkdir -p "$root/zq"
  cp "$VM_GUEST_SCRIPT" "$root/zq/case.sh"
  cp "$PLUGIN" "$root/zq/nbdkit-zqcow2-plugin.so"
  cp "$ZQCOW2_IMG" "$root/zq/zqcow2-img"
  [[ -x "$ZQCOW2_NBD" ]] && cp "$ZQCOW2_NBD" "$root/zq/zqcow2-nbd"
  [[ -x "$ZQ_BUILD/tests/zq-vm-burst" ]] &&
    cp "$ZQ_BUILD/tests/zq-vm-burst" "$root/zq/zq-vm-burst"
  for pair in ${VM_PROGRAMS[@]+"${VM_PROGRAMS[@]}"}; do
    _vm_copy_with_libs "$root" "$(readlink -f "${pair%%:*}")"
    rm -f "$root$(readlink -f "${pair%%:*}")"
    files+=("$pair")
  done
  for pair in ${files[@]+"${files[@]}"}; do
    mkdir -p "$root$(dirname "${pair#*:}")"
    cp --sparse=always "${pair%%:*}" "$root${pair#*:}"
  done
  ( cd "$root" && find . -print0 | cpio --null -o -H newc --quiet ) > "$out"
  rm -rf "$root"
}

# vm_boot [QEMU-ARGS...]: boot the guest with the case's script and these
# extra QEMU arguments (disks); the console goes to VM_CASE_DIR/console.log.
# VM_SMP (vCPUs, 1) and VM_MEM (MiB, 768) size the guest.  Prints the
# guest's VMTEST lines, counts them, and fails the case when the guest did
# not reach its end.
#
# A guest kernel that dies before it runs our /init (no "VMTEST BOOTED" on
# the console) has touched no disk, so it is booted again, up to
# ZQ_VM_BOOT_TRIES times (3): the kernel under TCG with several vCPUs can
# take a stale breakpoint while it patches its own text, an Oops in
# early boot that has nothing to do with zqcow2.  The last try runs the
# vCPUs in one TCG thread, where that race cannot happen.  Each retry is
# a VMTEST NOTE; a guest that dies after /init started is a failure.
vm_boot ()
{
  local console="$VM_CASE_DIR/console.log" initrd="$VM_CASE_DIR/initrd.cpio"
  local accel status start line try tries="${ZQ_VM_BOOT_TRIES:-3}"
  vm_base_initramfs || { vm_fail boot "cannot build the initramfs"; return 1; }
  _vm_case_cpio "$VM_CASE_DIR/case.cpio"
  cat "$VM_BASE_CPIO" "$VM_CASE_DIR/case.cpio" > "$initrd"
  accel="$(vm_accel)"
  for (( try = 1; try <= tries; try++ )); do
    if (( try == tries && try > 1 )) && [[ $accel == tcg* ]]; then
      accel=tcg,thread=single
    fi
    start=$SECONDS
    vm_log "$VM_CASE: booting $VM_KVER ($accel, ${VM_SMP:-1} vCPU, try $try)"
    timeout --kill-after=10 "${ZQ_VM_TIMEOUT:-300}" \
      qemu-system-x86_64 -accel "$accel" -cpu max -m "${VM_MEM:-768}" \
        -smp "${VM_SMP:-1}" -nodefaults -display none -nic none -no-reboot \
        -serial "file:$console" -kernel "$VM_KERNEL" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 quiet loglevel=4 ${VM_APPEND:-}" \
        "$@" </dev/null >"$VM_CASE_DIR/qemu.log" 2>&1
    status=$?
    VM_BOOT_SECONDS=$((SECONDS - start))
    vm_log "$VM_CASE: guest ran ${VM_BOOT_SECONDS}s, QEMU exit status $status"
    grep -aq '^VMTEST BOOTED' "$console" 2>/dev/null && break
    # A boot that hung until the timeout would take as long again.
    (( try < tries && status != 124 && status != 137 )) || break
    echo "VMTEST NOTE $VM_CASE: the guest kernel died before /init" \
         "($(grep -a -m1 -o -E 'Oops: [^ ]+|Kernel panic.*' "$console" |
             head -n 1)), booting again"
    cp "$console" "$VM_CASE_DIR/console-try$try.log"
  done
  rm -f "$initrd"
  while IFS= read -r line; do
    line="${line%$'\r'}"
    case "$line" in
      "VMTEST PASS "*) echo "VMTEST PASS $VM_CASE/${line#VMTEST PASS }"
                       VM_PASS=$((VM_PASS + 1)) ;;
      "VMTEST FAIL "*) echo "VMTEST FAIL $VM_CASE/${line#VMTEST FAIL }"
                       VM_FAIL=$((VM_FAIL + 1)) ;;
      "VMTEST NOTE "*) echo "$line" ;;
    esac
  done < <(grep -a '^VMTEST ' "$console" 2>/dev/null)
  if ! grep -aq '^VMTEST END' "$console" 2>/dev/null; then
    vm_fail boot "the guest did not finish (QEMU status $status; see below)"
    tail -n 30 "$console" "$VM_CASE_DIR/qemu.log" >&2
    return 1
  fi
}

# vm_disk_args NODE SOCKET [SERIAL]: QEMU arguments for a virtio disk read
# from the NBD server on a Unix socket.  discard=unmap: without it QEMU
# drops the guest's discards, and a zone reset by blkdiscard never reaches
# the server.  werror/rerror=report: the guest sees EIO and ENOSPC instead
# of QEMU pausing the VM.
vm_disk_args ()
{
  printf '%s\n' -blockdev \
    "driver=nbd,server.type=unix,server.path=$2,node-name=$1,discard=unmap" \
    -device "virtio-blk-pci,drive=$1,serial=${3:-$1},werror=report,rerror=report"
}

# vm_nbdkit_start NAME IMAGE [PLUGIN-PARAMS...]: serve IMAGE with nbdkit and
# the plugin on the Unix socket VM_CASE_DIR/NAME.sock (left in VM_SOCKET).
# NBDKIT_ARGS (an array) adds nbdkit options, e.g. (-t 64).
vm_nbdkit_start ()
{
  local name="$1" image="$2" i
  shift 2
  VM_SOCKET="$VM_CASE_DIR/$name.sock"
  rm -f "$VM_SOCKET" "$VM_CASE_DIR/$name.pid"
  nbdkit ${NBDKIT_ARGS[@]+"${NBDKIT_ARGS[@]}"} -U "$VM_SOCKET" \
    -P "$VM_CASE_DIR/$name.pid" "$PLUGIN" file="$image" "$@" \
    2>"$VM_CASE_DIR/$name.log" || {
      vm_fail "serve-$name" "nbdkit did not start: $(tail -n 2 "$VM_CASE_DIR/$name.log")"
      return 1
    }
  for (( i = 0; i < 100; i++ )); do
    [[ -S "$VM_SOCKET" && -s "$VM_CASE_DIR/$name.pid" ]] && return 0
    sleep 0.1
  done
  vm_fail "serve-$name" "nbdkit's socket never appeared"
  return 1
}

# vm_nbdkit_stop NAME: stop that server and wait until it has closed the
# image.
vm_nbdkit_stop ()
{
  local pid i pidfile="$VM_CASE_DIR/$1.pid"
  pid="$(cat "$pidfile" 2>/dev/null)" || return 0
  kill "$pid" 2>/dev/null
  for (( i = 0; i < 100; i++ )); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- host checks

# qemu_img_clean IMG: qemu-img check finds no errors and no leaks.
qemu_img_clean ()
{
  local out
  out="$(qemu-img check "$1" 2>&1)"
  if grep -q 'No errors were found on the image' <<<"$out" &&
     ! grep -qi 'leak' <<<"$out"; then
    return 0
  fi
  echo "$out"
  return 1
}

# zq_img ARGS...: the built zqcow2-img.
zq_img () { "$ZQCOW2_IMG" "$@"; }

# vm_pattern: 4 MiB of random bytes in VM_CASE_DIR/pattern, shipped to the
# guest as /zq/pattern; the host compares what it reads back with it.
# The guest's check lists (scripts/vm-cases/checks.guest.sh) come along as
# /zq/checks.sh.
vm_pattern ()
{
  head -c 4M /dev/urandom > "$VM_CASE_DIR/pattern"
  vm_guest_file "$VM_CASE_DIR/pattern" /zq/pattern
  vm_guest_file "$ZQ_TOP/scripts/vm-cases/checks.guest.sh" /zq/checks.sh
}

# vm_zoned_image IMG [SIZE [OPTIONS]]: the zoned image the guest check
# lists expect: 4 MiB zones, 4 conventional then sequential ones, 48 MiB
# (8 sequential zones) unless SIZE says more.
vm_zoned_image ()
{
  zq_img create -q -o "zone.mode=host-managed,zone.size=4M" \
    -o "zone.conventional_zones=4${3:+,$3}" "$1" "${2:-48M}"
}

# vm_out_disk FILE SIZE: QEMU arguments for a raw scratch disk (serial
# zqout) the guest writes a file to with vmt_export.
vm_out_disk ()
{
  rm -f "$1"
  truncate -s "$2" "$1"
  printf '%s\n' -drive "file=$1,format=raw,if=none,id=zqout" \
    -device "virtio-blk-pci,drive=zqout,serial=zqout"
}

# vm_out_read FILE DIR: unpack what the guest exported onto FILE into DIR.
vm_out_read () { tar -xf "$1" -C "$2"; }

# vm_raw_copy IMG RAW: the image's guest-visible bytes as a raw file, read
# through the plugin read-only (qemu-img does not open zoned images).
vm_raw_copy ()
{
  rm -f "$2"
  nbdkit -r -U - "$PLUGIN" file="$1" --run "nbdcopy \"\$uri\" '$2'"
}

# vm_ext4_files_match RAW: the files vmt_plain_ext4 wrote, read back on the
# host with debugfs from a raw copy of the disk, equal the pattern, and
# e2fsck finds the filesystem clean.
vm_ext4_files_match ()
{
  local raw="$1" f out="$VM_CASE_DIR/dumped"
  e2fsck -fn "$raw" || return 1
  for f in "${@:2}"; do
    rm -f "$out"
    debugfs -R "dump $f $out" "$raw" 2>/dev/null
    cmp "$VM_CASE_DIR/pattern" "$out" || { echo "$f differs"; return 1; }
  done
}

# vm_zone_is IMG ZONE COND WP: zqcow2-img zones says zone ZONE has this
# condition (as zqcow2-img prints it, e.g. full, empty) and write pointer
# (bytes from the zone's start).
vm_zone_is ()
{
  local json got
  json="$(zq_img zones --offset $(( $2 * 4 << 20 )) --count 1 --output=json "$1")" || return 1
  got="$(jq -r '(if type == "array" then . else .zones end)[0] |
          "\(.condition // .cond) \((."write-pointer" // .wptr) - .start)"' <<<"$json")"
  [[ "${got,,}" == "${3,,} $4" || ( "$3" == '*' && "${got#* }" == "$4" ) ]] ||
    { echo "zone $2: $got, expected $3 $4"; return 1; }
}

# vm_plain_read_back IMG: qemu-img converts the plain image to raw, and
# debugfs reads vmt_plain_ext4's files back from it.
vm_plain_read_back ()
{
  qemu-img convert -O raw "$1" "$VM_CASE_DIR/plain.raw" &&
    vm_ext4_files_match "$VM_CASE_DIR/plain.raw" /f1 /f2 /f3 /f4
}

# _vm_same_bytes FILE1 OFF1 FILE2 OFF2 LEN: byte ranges are equal.
_vm_same_bytes ()
{
  cmp <(tail -c +$(($2 + 1)) "$1" | head -c "$5") \
      <(tail -c +$(($4 + 1)) "$3" | head -c "$5")
}

# vm_zoned_host_checks IMG: after vmt_zoned_basic and vmt_zoned_conv_ext4,
# the image is consistent, its zones are where the guest left them, and
# their bytes are the pattern's.
vm_zoned_host_checks ()
{
  local img="$1" raw="$VM_CASE_DIR/zoned.raw" M=$((1 << 20))
  vm_host_check host-zqcow2-img-check zq_img check "$img"
  vm_host_check host-zone4-wp vm_zone_is "$img" 4 '*' $((512 << 10))
  vm_host_check host-zone5-full vm_zone_is "$img" 5 full $((4 * M))
  vm_raw_copy "$img" "$raw" || { vm_fail host-raw-copy "nbdcopy failed"; return; }
  vm_host_check host-zone4-data _vm_same_bytes "$raw" $((16 * M)) \
    "$VM_CASE_DIR/pattern" $((2 * M)) $((512 << 10))
  vm_host_check host-zone5-data _vm_same_bytes "$raw" $((20 * M)) \
    "$VM_CASE_DIR/pattern" 0 "$M"
  vm_host_check host-zone5-zeroes _vm_same_bytes "$raw" $((21 * M)) \
    /dev/zero 0 $((3 * M))
  head -c $((16 * M)) "$raw" > "$VM_CASE_DIR/conv.raw"
  vm_host_check host-conv-ext4-read-back vm_ext4_files_match \
    "$VM_CASE_DIR/conv.raw" /pattern
}
