"""One syncing process per account (tui_mail/sync/lock.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

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
