#!/usr/bin/env bash
# scripts/test.sh - THE test command of tui-mail; the README and CI (.ci/run) both run it.
#
#   bash scripts/test.sh [PYTEST ARGS...]     e.g.  bash scripts/test.sh -m "not servers"
#
# 1. As root: installs the Debian packages the tests need when missing (dovecot-core,
#    -imapd, -pop3d, -lmtpd, postfix, openssl, ca-certificates, tmux) through
#    `tests/servers/mailstack.sh install` (apt-get update + install, with a postfix
#    debconf preseed and a temporary policy-rc.d so no system daemons get started).
#    Not root: nothing is installed, and server tests skip locally (they fail if CI=true).
# 2. Creates the venv (.venv, or $VENV) with `python3 -m venv` ($PYTHON, else the
#    system's /usr/bin/python3, else python3 on PATH: scripts/python.sh says why;
#    apt-installs python3-venv only if that fails), and runs `pip install -e '.[test]'` when
#    pyproject.toml or the interpreter changed since the last install.
# 3. Runs `python -m pytest -q [PYTEST ARGS]` and exits with pytest's own status
#    (5 = "no tests collected" is a failure too). The pytest session starts and stops
#    the real mail servers itself (tests/conftest.py, fixture `mailstack`).
# Idempotent; a second run goes straight to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/python.sh
. "$ROOT/scripts/python.sh"
PY="$(pick_python)"
VENV="${VENV:-$ROOT/.venv}"
MAILSTACK_SH="$ROOT/tests/servers/mailstack.sh"

log() { printf 'test.sh: %s\n' "$*" >&2; }
die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# ---- 1. Debian packages (mail servers, tmux) -----------------------------------------
if is_root; then
  PYTHON="$PY" bash "$MAILSTACK_SH" install
else
  log "not root: skipping the Debian package check"
fi

# ---- 2. virtualenv with the project and its test extras ------------------------------
venv_ok() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; }
if ! venv_ok; then
  [ -e "$VENV" ] && { log "removing unusable venv $VENV"; rm -rf "$VENV"; }
  log "creating venv $VENV with $PY"
  if ! "$PY" -m venv "$VENV"; then
    rm -rf "$VENV"
    is_root || die "'$PY -m venv' failed; install python3-venv (as root) and rerun"
    log "'$PY -m venv' failed; installing python3-venv"
    PYTHON="$PY" MAILSTACK_EXTRA_PKGS=python3-venv bash "$MAILSTACK_SH" install
    "$PY" -m venv "$VENV" || die "'$PY -m venv' still fails after installing python3-venv"
  fi
fi
VPY="$VENV/bin/python"
STAMP="$VENV/.tui-mail-test-install"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$VPY" -c 'import sys; print(sys.version.split()[0])')"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ] \
   || ! "$VPY" -c 'import tui_mail, pytest' >/dev/null 2>&1; then
  log "pip install -e '.[test]' into $VENV"
  pip_install() { "$VPY" -m pip install -q --disable-pip-version-check -e '.[test]' </dev/null; }
  if ! pip_install; then
    # A compiled dependency (msgspec) without a wheel for this machine is built
    # from source: that needs a C compiler and the Python headers.
    is_root || die "pip install failed; install build-essential and python3-dev and rerun"
    log "pip install failed; installing build-essential and python3-dev, then retrying"
    PYTHON="$PY" MAILSTACK_EXTRA_PKGS="build-essential python3-dev" bash "$MAILSTACK_SH" install
    pip_install
  fi
  printf '%s\n' "$want" > "$STAMP"
fi

# ---- 3. the tests ---------------------------------------------------------------------
log "running: python -m pytest -q $*"
rc=0
"$VPY" -m pytest -q "$@" || rc=$?
if [ "$rc" = 5 ]; then
  log "pytest collected no tests (exit 5); that is a failure"
fi
exit "$rc"
