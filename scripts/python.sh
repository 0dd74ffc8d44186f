# scripts/python.sh - sourced by install.sh and test.sh: which interpreter the venv is made with.
#
# $PYTHON when set; else Debian's own /usr/bin/python3 when it is 3.11 or newer; else the
# python3 found on PATH. Debian builds its interpreter with profile-guided and link-time
# optimisation, libpython linked in; a python3 that comes first on PATH (pyenv's, or one
# built by hand) often has neither. With pyenv's 3.11.7 (--enable-shared, no PGO) here, the
# initial sync of bench/bench_imap_sync.py took ~7% longer and ~10% more CPU, and a bare
# start ~5 ms more, than with Debian's 3.11.2. Not root, it must also be able to make a
# venv (python3-venv installed), or the python3 on PATH that worked before is kept.
pick_python() {
  local usable='import sys'
  [ "$(id -u)" = 0 ] || usable="$usable; import ensurepip"
  usable="$usable; sys.exit(sys.version_info < (3, 11))"
  if [ -n "${PYTHON:-}" ]; then
    printf '%s\n' "$PYTHON"
  elif [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "$usable" 2>/dev/null; then
    printf '%s\n' /usr/bin/python3
  else
    printf '%s\n' python3
  fi
}
