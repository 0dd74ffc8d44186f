"""One syncing process per account (tui_mail/sync/lock.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tui_mail.sync.lock import AccountLock, AccountLocked, lock_path


def test_a_second_holder_is_refused_with_the_first_ones_pid() -> None:
    first = AccountLock("work")
    first.acquire()
    try:
        with pytest.raises(AccountLocked, match=rf"'work' is locked by process {os.getpid()}"):
            AccountLock("work").acquire()
        AccountLock("home").acquire()  # other accounts are independent
    finally:
        first.release()
    again = AccountLock("work")
    again.acquire()
    again.release()


def test_odd_account_names_stay_inside_the_lock_folder() -> None:
    path = lock_path("../x/y")
    assert path.parent.name == "locks" and "/" not in path.name


def test_a_killed_holder_leaves_no_stale_lock() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, time
                from tui_mail.sync.lock import AccountLock
                AccountLock("work").acquire()
                print("held", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(AccountLocked, match=f"process {child.pid}"):
            AccountLock("work").acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    lock = AccountLock("work")
    lock.acquire()  # the kernel dropped the dead holder's lock
    lock.release()


async def test_an_account_added_to_a_running_runtime_is_locked_like_the_others(
    tmp_path: Path,
) -> None:
    """Runtime.add_account (the TUI's setup screen): a server account another process
    syncs is refused with the lock's message and nothing of it starts; once free,
    it runs beside the first."""
    from tui_mail import paths
    from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig
    from tui_mail.core import events as ev
    from tui_mail.sync.runtime import Runtime

    def local(name: str) -> AccountConfig:
        receive = EndpointConfig(backend="maildir", path=tmp_path / name)
        send = EndpointConfig(backend="local", path=tmp_path / f"{name}-out")
        return AccountConfig(name, f"{name}@example.org", receive, send)

    imap = AccountConfig(
        "work",
        "me@work.example",
        EndpointConfig(backend="imap", host="127.0.0.1", port=1, user="me", password="x"),
        EndpointConfig(backend="local", path=tmp_path / "work-out"),
    )
    events: list[ev.Event] = []
    config = AppConfig(None, {"home": local("home")})
    runtime = Runtime(config, tmp_path / "index.sqlite3")
    other = AccountLock("work")  # as another tui-mail process holds it
    other.acquire()
    try:
        await runtime.start(events.append, initial_sync=False, poll=False, connect=False)
        with pytest.raises(AccountLocked, match="'work' is locked"):
            runtime.add_account(imap)
        assert list(runtime.workers) == ["home"] and "work" not in runtime.stores
        other.release()
        # A store that cannot be made (a file where its folder goes): refused, and
        # neither its lock nor its name is left behind.
        blocker = paths.mail_root("work")
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_text("in the way")
        with pytest.raises(Exception):  # noqa: B017 - whatever the store raises
            runtime.add_account(imap)
        assert list(runtime.workers) == ["home"] and "work" not in runtime.stores
        probe = AccountLock("work")
        probe.acquire()  # released: another process could sync it now
        probe.release()
        blocker.unlink()
        runtime.add_account(imap)
        assert list(runtime.workers) == ["home", "work"]
        with pytest.raises(Exception, match="already running"):
            runtime.add_account(imap)
        with pytest.raises(AccountLocked):  # now held by this runtime
            AccountLock("work").acquire()
    finally:
        other.release()
        await runtime.stop()
    free = AccountLock("work")  # stop() let it go
    free.acquire()
    free.release()
