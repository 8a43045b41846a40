#!/usr/bin/env bash
# Fetches a Debian kernel of another suite for the VM harness, without
# installing it: scripts/lib/fetch-kernel.sh SUITE (e.g. trixie) prints the
# path of the unpacked vmlinuz; its modules (with a modules.dep made by
# depmod) sit beside it in ../lib/modules/KVER, which scripts/lib/vm.sh
# finds by itself.
#
# The archive is this machine's own: the enabled deb822 entries of
# /etc/apt/sources.list.d/*.sources and the lines of *.list, with the
# host's suite renamed (bookworm -> SUITE, bookworm-updates ->
# SUITE-updates, ...).  apt-get runs with its lists, cache and status in a
# temporary state directory (-o Dir::...), so the host's apt state is
# untouched; 'apt-get download' fetches linux-image-*-amd64 and dpkg-deb -x
# unpacks it into ZQ_VM_CACHE/kernel-SUITE.  A second run reuses it.

set -euo pipefail
ZQ_TOP="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ZQ_VM_CACHE="${ZQ_VM_CACHE:-${abs_top_builddir:-$ZQ_TOP}/vm-cache}"
suite="${1:?usage: fetch-kernel.sh SUITE}"
flavour="${ZQ_VM_KERNEL_FLAVOUR:-amd64}"
dest="$ZQ_VM_CACHE/kernel-$suite"

say () { echo "fetch-kernel: $*" >&2; }

found_kernel ()
{
  local k
  for k in "$dest"/root/boot/vmlinuz-*; do
    if [[ -r "$k" && -f "$dest/root/lib/modules/${k##*/vmlinuz-}/modules.dep" ]]; then
      echo "$k"
      return 0
    fi
  done
  return 1
}

found_kernel && exit 0

host_suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
[[ -n "$host_suite" ]] || { say "cannot tell this machine's suite (/etc/os-release)"; exit 1; }
for tool in apt-get dpkg-deb depmod; do
  command -v "$tool" >/dev/null || { say "$tool is missing"; exit 1; }
done

mkdir -p "$ZQ_VM_CACHE"
apt_dir="$(mktemp -d "$ZQ_VM_CACHE/apt-$suite.XXXXXX")"
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir"/{parts,lists/partial,cache/archives/partial,pkgs}
: > "$apt_dir/status"

# The host's sources with the suite renamed; files that are not *.sources
# or *.list (e.g. *.disabled) are not read by apt either.
shopt -s nullglob
for f in /etc/apt/sources.list.d/*.sources; do
  sed -E "/^Suites:/ s/(^|[[:space:]])$host_suite([-[:alnum:]]*)/\\1$suite\\2/g" \
    "$f" > "$apt_dir/parts/${f##*/}"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [[ -f "$f" ]] || continue
  sed -E "s/^(deb[[:space:]].*[[:space:]])$host_suite([-[:alnum:]]*)([[:space:]])/\\1$suite\\2\\3/" \
    "$f" > "$apt_dir/parts/$(basename "$f" .list)-${RANDOM}.list"
done
grep -rqs "$suite" "$apt_dir/parts" ||
  { say "no enabled apt source of suite $host_suite to rename"; exit 1; }

apt_opts=(
  -o "Dir::Etc::sourcelist=/dev/null"
  -o "Dir::Etc::sourceparts=$apt_dir/parts"
  -o "Dir::State=$apt_dir"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::State::status=$apt_dir/status"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Get::List-Cleanup=0"
  -o "Acquire::Languages=none"
  -o "APT::Sandbox::User=root"
)
say "reading the $suite package lists"
apt-get "${apt_opts[@]}" -q update >&2 </dev/null ||
  { say "apt-get update of $suite failed"; exit 1; }

# linux-image-amd64 is a meta-package: its first dependency is the kernel.
pkg="$(apt-cache "${apt_opts[@]}" depends "linux-image-$flavour" 2>/dev/null |
       sed -n "s/^ *Depends: \\(linux-image-[0-9][^ ]*-$flavour\\)\$/\\1/p" | head -n 1)"
[[ -n "$pkg" ]] || { say "no linux-image-$flavour in $suite"; exit 1; }
say "downloading $pkg"
( cd "$apt_dir/pkgs" && apt-get "${apt_opts[@]}" -q download "$pkg" >&2 </dev/null ) ||
  { say "apt-get download $pkg failed"; exit 1; }

rm -rf "$dest.new"
mkdir -p "$dest.new/root"
dpkg-deb -x "$apt_dir"/pkgs/*.deb "$dest.new/root"
# Trixie keeps modules in /usr/lib/modules: give them the /lib path too.
if [[ -d "$dest.new/root/usr/lib/modules" && ! -e "$dest.new/root/lib" ]]; then
  ln -s usr/lib "$dest.new/root/lib"
fi
kver="$(basename "$(ls -d "$dest.new"/root/lib/modules/*/ | head -n 1)")"
depmod -b "$dest.new/root" "$kver"
rm -rf "$dest"
mv "$dest.new" "$dest"
found_kernel || { say "$pkg has no vmlinuz"; exit 1; }
