# shellcheck shell=bash
# Builds zqcow2 in the source tree, doing only the steps that are out of
# date.  Sourced by scripts/test and scripts/serve; expects ZQ_TOP to be the
# top of the source tree.  Extra ./configure arguments may be given in
# ZQ_CONFIGURE_ARGS (e.g. ZQ_CONFIGURE_ARGS=--enable-werror).

zq_nproc ()
{
  nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1
}

# True if configure must be (re)generated: it is missing, or configure.ac or
# some Makefile.am is newer than it.
zq_need_autoreconf ()
{
  [[ -f configure ]] || return 0
  [[ configure.ac -nt configure ]] && return 0
  [[ -n "$(find . -name Makefile.am -newer configure -print -quit)" ]]
}

# True if ./configure must be run: never run, or configure is newer than
# its last run.
zq_need_configure ()
{
  [[ ! -f config.status || ! -f Makefile || configure -nt config.status ]]
}

# Runs autoreconf and configure as needed.
zq_configure ()
{
  local -a configure_args
  read -r -a configure_args <<< "${ZQ_CONFIGURE_ARGS:-}"

  cd "$ZQ_TOP" || return 1
  if zq_need_autoreconf; then
    echo "zqcow2: autoreconf -fi" >&2
    autoreconf -fi || return 1
  fi
  if zq_need_configure; then
    echo "zqcow2: ./configure ${configure_args[*]}" >&2
    ./configure "${configure_args[@]}" || return 1
  fi
}

# Configures if needed, then builds.
zq_build ()
{
  zq_configure || return 1
  make -j"$(zq_nproc)" || return 1
}
