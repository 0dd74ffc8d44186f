# shellcheck shell=bash
# scripts/python.sh - sourced by install.sh and test.sh: which interpreter the venv is made with.
#
# $PYTHON when set; else the system's own /usr/bin/python3 when it is 3.11 or newer and can
# make a venv (on Debian: python3-venv is installed); else the python3 found on PATH. Debian
# builds its interpreter with profile-guided and link-time optimisation, libpython linked
# in; a python3 that comes first on PATH (pyenv's, or one built by hand) often has
# neither. Here, with pyenv's 3.11.7 (built --enable-shared, without PGO) the initial sync
# of bench/bench_imap_sync.py took ~7% longer and ~10% more CPU, and a bare start ~5 ms
# more, than with Debian's 3.11.2. An existing venv is kept as it is: remove .venv to switch.
pick_python() {
  if [ -n "${PYTHON:-}" ]; then
    printf '%s\n' "$PYTHON"
  elif [ -x /usr/bin/python3 ] && /usr/bin/python3 -c \
      'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    printf '%s\n' /usr/bin/python3
  else
    # On a fresh Debian this is /usr/bin/python3 too, without python3-venv: the
    # scripts install that when making the venv fails.
    printf '%s\n' python3
  fi
}
