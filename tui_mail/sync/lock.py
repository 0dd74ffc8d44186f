"""One syncing process per account: an advisory lock file under the state dir.

Two processes mirroring one account at once would both download new mail
(two copies) and race on the journal. `flock` is released by the kernel
when the holder exits or crashes, so a stale lock cannot outlive its
process; the file only carries the holder's pid, for the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from urllib.parse import quote

from tui_mail import paths
from tui_mail.core.errors import MailError


class AccountLocked(MailError):
    """Another process is syncing this account."""


def lock_path(account: str) -> Path:
    # Account names are TOML keys: anything may be in them, so quote for a file name.
    return paths.state_dir() / "locks" / f"{quote(account, safe='')}.lock"


class AccountLock:
    def __init__(self, account: str, path: Path | None = None) -> None:
        self.account = account
        self.path = path or lock_path(account)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise AccountLocked naming the holder's pid."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise MailError(
                f"cannot create the lock file {self.path}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise AccountLocked(
                f"account {self.account!r} is locked by {who} (another `tui-mail sync` "
                f"or the TUI is using it); lock file {self.path}"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise MailError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # while still holding it: nobody reads our stale pid
        os.close(fd)  # closing drops the flock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
