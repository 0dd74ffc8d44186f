#!/usr/bin/env bash
# bench/install.sh - what the benchmarks need beyond the tests: the peers they are
# measured against (isync's mbsync, NeoMutt), the mail servers, and the venv.
#
#   bash bench/install.sh        (as root, on Debian)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MAILSTACK_EXTRA_PKGS="isync neomutt ${MAILSTACK_EXTRA_PKGS:-}" bash tests/servers/mailstack.sh install
# The test script makes the venv and installs the project; run no tests.
bash scripts/test.sh --collect-only -q >/dev/null
echo "bench/install.sh: ready; e.g. .venv/bin/python bench/bench_imap_sync.py --runs 3"
