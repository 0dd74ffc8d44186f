"""Top-level pytest configuration for tui-mail.

Fixtures defined here:

* ``isolated_dirs`` (autouse): every test gets its own XDG config/data/state/cache
  folders under ``tmp_path`` and no ``TUI_MAIL_CONFIG``, so no test touches the real home.
* ``mailstack`` (session): real Dovecot + Postfix on 127.0.0.1 (tests/servers/), started
  once per run in a fresh folder under /dev/shm and removed afterwards. With
  ``MAILSTACK_DIR=/path`` set, an already running stack there is used and left running.

Server tests carry ``@pytest.mark.servers`` (tests using the ``mailstack`` fixture get it
automatically); skip them locally with ``-m "not servers"``. Without root or without
Dovecot/Postfix installed they skip with the reason. With ``CI=true`` they never skip: a
stack that cannot start, or any skip of a server test, is reported as a failure.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from servers.harness import (
    Mailstack,
    MailstackError,
    mailstack_running,
    read_env,
    start_mailstack,
    stop_mailstack,
)

# --------------------------------------------------------------------------- helpers


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _uses_servers(item: pytest.Item) -> bool:
    return item.get_closest_marker("servers") is not None or "mailstack" in getattr(
        item, "fixturenames", ()
    )


def _mailstack_unavailable(reason: str) -> None:
    """Skip locally; fail under CI=true (server tests must run in CI)."""
    if in_ci():
        pytest.fail(f"mailstack unavailable and CI=true, so not skipping: {reason}", pytrace=False)
    pytest.skip(f"mailstack unavailable: {reason} (deselect with -m 'not servers')")


def _world_traversable(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _mailstack_base() -> str:
    """/dev/shm (tmpfs: fast and stable timings), else /tmp. Every parent must be o+x
    because the dovecot, postfix and vmail users traverse DIR."""
    for base in ("/dev/shm", "/tmp"):
        p = Path(base)
        if p.is_dir() and os.access(p, os.W_OK | os.X_OK) and _world_traversable(p.resolve()):
            return str(p)
    raise MailstackError("neither /dev/shm nor /tmp is a writable, world-traversable folder")


# --------------------------------------------------------------------------- hooks


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Runs before -m selection, so `-m "not servers"` also deselects tests that use the
    # mailstack fixture but forgot the marker.
    for item in items:
        if "mailstack" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
            "servers"
        ):
            item.add_marker(pytest.mark.servers)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    # CI=true: a skipped server test (stack down, missing tool, skipif...) is a failure.
    if report.skipped and in_ci() and _uses_servers(item) and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: server tests must not skip; skip reason was: {reason}"
    return report


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Point the XDG base directories at empty folders under tmp_path and drop
    TUI_MAIL_CONFIG. Returns the paths as .config, .data, .state, .cache."""
    dirs = SimpleNamespace()
    for name in ("config", "data", "state", "cache"):
        d = tmp_path / "xdg" / name
        d.mkdir(parents=True)
        monkeypatch.setenv(f"XDG_{name.upper()}_HOME", str(d))
        setattr(dirs, name, d)
    monkeypatch.delenv("TUI_MAIL_CONFIG", raising=False)
    return dirs


@pytest.fixture(scope="session")
def mailstack() -> Iterator[Mailstack]:
    """Real mail servers for the whole test session (see tests/servers/harness.py).
    Tests share it: use unique Message-IDs/subjects, or harness.reset_user_mail()."""
    existing = os.environ.get("MAILSTACK_DIR")
    if existing:
        if not (Path(existing) / "mailstack.env").is_file() or not mailstack_running(existing):
            _mailstack_unavailable(f"MAILSTACK_DIR={existing} is not a running mailstack")
        yield read_env(existing)  # someone else's stack: never stopped here
        return

    if not in_ci():  # in CI, try anyway: mailstack.sh installs the packages itself
        if os.geteuid() != 0:
            _mailstack_unavailable("needs root (Dovecot and Postfix run as system users)")
        missing = [x for x in ("/usr/sbin/dovecot", "/usr/sbin/postfix") if not Path(x).exists()]
        if missing:
            _mailstack_unavailable(
                f"{', '.join(missing)} not installed; run `bash tests/servers/mailstack.sh"
                " install` (or scripts/test.sh) as root"
            )

    try:
        d = tempfile.mkdtemp(prefix="mailstack.", dir=_mailstack_base())
    except (OSError, MailstackError) as e:
        _mailstack_unavailable(f"cannot create the mailstack folder: {e}")
    try:
        ms = start_mailstack(d)
    except MailstackError as e:
        try:
            stop_mailstack(d)  # whatever did start
            shutil.rmtree(d, ignore_errors=True)
        except MailstackError:
            pass
        _mailstack_unavailable(str(e))

    yield ms

    stop_mailstack(d)  # raises (-> teardown error) if the servers would not stop
    shutil.rmtree(d)
