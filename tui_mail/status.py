"""`tui-mail status`: one line for tmux's status-right, from the index alone.

tmux runs this every few seconds, so it must return in well under 150 ms:
standard library only (no email package, no Textual, no asyncio, not even
MailIndex, which pulls in the parser), one read-only SQLite connection, no
network, and nothing is ever created or written. A missing or locked index
prints what it can (zeros) rather than fail.

The connection-state file is written by whoever runs the account workers
(`record_connection`); entries of processes that are gone are ignored, so a
crashed TUI cannot leave an account "offline" forever.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import string
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from tui_mail import paths

STATE_FILE_NAME = "connections.json"
FIELDS = ("unread", "unread_all", "accounts", "pending", "failed", "offline", "summary", "by")
DEFAULT_FORMAT = "{summary}"
_ACTIVE_OUTBOX = ("queued", "sending", "failed", "uncertain")
_CONTROL = dict.fromkeys([*range(0x20), 0x7F, *range(0x80, 0xA0)], "?")


class Status:
    """The numbers of one status line. A plain class: dataclasses costs ~9 ms to import."""

    def __init__(self) -> None:
        self.inbox_unread: dict[str, int] = {}  # account -> INBOX unread
        self.all_unread: dict[str, int] = {}  # account -> unread in every folder
        self.pending = 0  # outbox messages not sent yet (queued, sending, failed, uncertain)
        self.failed = 0  # of those, the ones that need the user (failed, uncertain)
        self.offline: list[str] = []

    def values(self) -> dict[str, object]:
        accounts = " ".join(f"{a}:{n}" for a, n in self.inbox_unread.items() if n)
        parts = [accounts or "0"]
        if self.pending:
            parts.append(f"out:{self.pending}" + (f"({self.failed}!)" if self.failed else ""))
        if self.offline:
            parts.append("offline:" + ",".join(self.offline))
        return {
            "unread": sum(self.inbox_unread.values()),
            "unread_all": sum(self.all_unread.values()),
            "accounts": accounts,
            "pending": self.pending,
            "failed": self.failed,
            "offline": ",".join(self.offline),
            "summary": " ".join(parts),
            "by": dict(self.inbox_unread),  # {by[work]}: one account's INBOX unread
        }


def state_file() -> Path:
    return paths.state_dir() / STATE_FILE_NAME


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def record_connection(account: str, state: str, path: Path | None = None) -> None:
    """Note an account's connection state ("online", "offline", ...) for `status`.

    Called by the process running the account workers on every ConnectionChanged.
    Written atomically (tmp + rename) so a reader never sees half a file.
    """
    target = path or state_file()
    data: dict[str, dict[str, object]] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(target.read_text())
        if isinstance(loaded, dict):
            data = loaded
    data[account] = {"state": state, "pid": os.getpid(), "updated": time.time()}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, target)
    except OSError:
        pass  # the status line is a convenience: never fail a sync over it


def _offline(path: Path, accounts: Iterable[str] | None) -> list[str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    wanted = set(accounts) if accounts is not None else None
    out = []
    for account, entry in data.items():
        if not isinstance(entry, dict) or (wanted is not None and account not in wanted):
            continue
        if entry.get("state") != "online" and _pid_alive(entry.get("pid")):
            out.append(str(account))
    return sorted(out)


def _configured_accounts(config: Path) -> list[str] | None:
    """Account names in config order, read with tomllib only (no validation: fast)."""
    try:
        text = config.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    import tomllib  # only now: no config file, no ~5 ms for the parser

    try:
        data = tomllib.loads(text)
    except ValueError:
        return None
    accounts = data.get("accounts")
    return list(accounts) if isinstance(accounts, dict) else None


def read_status(
    index_path: Path,
    accounts: list[str] | None = None,
    state_path: Path | None = None,
) -> Status:
    """Everything the status line shows; `accounts` None means every indexed account."""
    status = Status()
    if accounts is not None:
        status.inbox_unread = dict.fromkeys(accounts, 0)
        status.all_unread = dict.fromkeys(accounts, 0)
    if index_path.exists():
        try:
            # mode=ro: never creates the file or changes it; a status line must not.
            conn = sqlite3.connect(f"file:{index_path}?mode=ro", uri=True, timeout=0.1)
        except sqlite3.Error:
            conn = None
        if conn is not None:
            try:
                _read_counts(conn, status, accounts)
            finally:
                conn.close()
    status.offline = _offline(state_path or state_file(), accounts)
    return status


def _read_counts(conn: sqlite3.Connection, status: Status, accounts: list[str] | None) -> None:
    wanted = set(accounts) if accounts is not None else None
    with contextlib.suppress(sqlite3.Error):
        rows = conn.execute(
            "SELECT account, folder, unread FROM folder_stats ORDER BY account"
        ).fetchall()
        for account, folder, unread in rows:
            if wanted is not None and account not in wanted:
                continue
            status.all_unread[account] = status.all_unread.get(account, 0) + int(unread)
            status.inbox_unread.setdefault(account, 0)
            if folder == "INBOX":
                status.inbox_unread[account] += int(unread)
    with contextlib.suppress(sqlite3.Error):  # no outbox table before the first send
        rows = conn.execute(
            "SELECT account, state, count(*) FROM outbox"
            f" WHERE state IN ({','.join('?' * len(_ACTIVE_OUTBOX))}) GROUP BY account, state",
            _ACTIVE_OUTBOX,
        ).fetchall()
        for account, state, n in rows:
            if wanted is not None and account not in wanted:
                continue
            status.pending += int(n)
            if state in ("failed", "uncertain"):
                status.failed += int(n)


def check_format(fmt: str) -> str | None:
    """None if `fmt` only uses known fields, else what is wrong with it."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        return str(exc)
    for _, name, _, _ in parsed:
        if name is None:
            continue
        head = name.split("[", 1)[0]
        if "." in name or head not in FIELDS:
            return f"unknown field {{{name}}}; known: " + " ".join(f"{{{f}}}" for f in FIELDS)
    return None


def render(status: Status, fmt: str = DEFAULT_FORMAT) -> str:
    values = status.values()
    by = values["by"]
    assert isinstance(by, dict)
    # {by[name]} of an account with no mail yet is 0, not an error.
    values["by"] = _Zero(by)
    line = fmt.format_map(values)
    # Account names come from the config and the index: keep the line one line.
    return line.translate(_CONTROL)


class _Zero(dict[str, int]):
    def __missing__(self, key: str) -> int:
        return 0


def run_status(fmt: str | None, config: str | None = None) -> int:
    """The `tui-mail status` command; exit 2 for a bad --format."""
    fmt = DEFAULT_FORMAT if fmt is None else fmt
    problem = check_format(fmt)
    if problem:
        print(f"tui-mail: status --format: {problem}", file=sys.stderr)
        return 2
    accounts = _configured_accounts(paths.config_path(config))
    try:
        print(render(read_status(paths.index_path(), accounts), fmt))
    except (KeyError, IndexError, ValueError) as exc:
        print(f"tui-mail: status --format: {exc}", file=sys.stderr)
        return 2
    return 0
