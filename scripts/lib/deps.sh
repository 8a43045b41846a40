# shellcheck shell=bash
# Installs the Debian packages zqcow2 needs to build, test and serve, but
# only those that are missing.  Sourced by scripts/test and scripts/serve.

# Build: compiler, autotools, the libraries' development files.
# Run and test: nbdkit, libnbd tools (nbdinfo, nbdcopy, nbdsh), qemu-utils
# (qemu-img, qemu-io, qemu-nbd), fio; jq reads JSON output in tests.  perl
# provides pod2man and podchecker.  The VM harness (scripts/vm-test) boots
# linux-image-amd64 under qemu-system-x86 with an initramfs of
# busybox-static, nbd-client, e2fsprogs, util-linux (blkdiscard, blkzone),
# dmsetup and fio, packed by cpio; kmod resolves module dependencies and
# xz-utils unpacks compressed modules.
ZQ_DEB_PACKAGES=(
  nbdkit nbdkit-plugin-dev
  libnbd-dev libnbd-bin python3-libnbd
  zlib1g-dev libzstd-dev
  autoconf automake libtool pkg-config make gcc
  qemu-utils fio perl jq
  qemu-system-x86 linux-image-amd64 busybox-static nbd-client cpio
  e2fsprogs util-linux dmsetup kmod xz-utils
)

# Prints the packages of ZQ_DEB_PACKAGES that are not installed.
zq_missing_packages ()
{
  local pkg status
  for pkg in "${ZQ_DEB_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    if [[ "$status" != "install ok installed" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

# Installs whatever is missing; runs 'apt-get update' only if something is.
# Never reads stdin, so it works in CI and under 'ssh host cmd < /dev/null'.
zq_install_deps ()
{
  local -a missing sudo=()

  if ! command -v dpkg-query >/dev/null 2>&1 ||
     ! command -v apt-get >/dev/null 2>&1; then
    echo "zqcow2: not a Debian-like system (no dpkg-query/apt-get):" \
         "install by hand: ${ZQ_DEB_PACKAGES[*]}" >&2
    return 0
  fi

  mapfile -t missing < <(zq_missing_packages)
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi

  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo -n)
    else
      echo "zqcow2: missing packages ${missing[*]}, and not root and no sudo:" \
           "install them and run again" >&2
      return 1
    fi
  fi

  echo "zqcow2: installing missing packages: ${missing[*]}" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get update -q < /dev/null || return 1
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" \
    < /dev/null || return 1
}
