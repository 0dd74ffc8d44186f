#!/usr/bin/env bash
# Install tui-mail from this checkout into a virtualenv and put `tui-mail` on PATH.
#
#   bash scripts/install.sh           the client
#   bash scripts/install.sh --test    the client plus the test extra
#   bash scripts/install.sh --demo    the client, then open it on the demo account
#
# Works on a fresh Debian 12 as root (installs python3-venv when missing) and
# as a normal user with Python >= 3.11 (then nothing is installed system-wide).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TUI_MAIL_VENV:-$REPO/.venv}"
# shellcheck source=scripts/python.sh
. "$REPO/scripts/python.sh"
PYTHON="$(pick_python)"
mode="${1:-}"

log() { printf 'install: %s\n' "$*" >&2; }

apt_install() {
  [ "$(id -u)" = 0 ] || { log "need root to apt-get install $*"; exit 1; }
  # A fresh image has no package lists: the first try fails fast, then update.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -q \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; }
}

if ! command -v "$PYTHON" >/dev/null; then
  apt_install python3 python3-venv ca-certificates
fi
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { log "tui-mail needs Python 3.11 or newer"; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $PYTHON"
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt_install python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
fi

extra=""
[ "$mode" = "--test" ] && extra="[test]"
log "installing tui-mail$extra into $VENV"
pip_install() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$REPO$extra"; }
if ! pip_install; then
  # msgspec is compiled: where PyPI has no wheel for this machine (32-bit ARM, say)
  # pip builds it, which needs a C compiler and the Python headers.
  [ "$(id -u)" = 0 ] || { log "pip install failed; a C compiler and python3-dev may help"; exit 1; }
  log "pip install failed; installing a C compiler and the Python headers, then retrying"
  apt_install build-essential python3-dev
  pip_install
fi

if [ "$(id -u)" = 0 ] && [ -d /usr/local/bin ]; then
  ln -sf "$VENV/bin/tui-mail" /usr/local/bin/tui-mail
fi

if [ "$mode" = "--demo" ]; then
  exec "$VENV/bin/tui-mail" demo
fi
