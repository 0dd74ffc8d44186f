"""`tui-mail status`: one line from the index, fast, never writing anything."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tui_mail import paths
from tui_mail.cli import main
from tui_mail.core.models import Address
from tui_mail.status import check_format, read_status, record_connection, render, state_file
from tui_mail.store.index import MailIndex
from tui_mail.store.maildir import StoredFile
from tui_mail.store.parse import ParsedHeaders


def _headers(n: int) -> ParsedHeaders:
    return ParsedHeaders(n, Address("", "x@y"), (), (), f"s{n}", f"<{n}@x>", "", (), False, "", "")


def _fill(index: MailIndex, account: str, folder: str, flags: list[str]) -> None:
    items = [
        (
            StoredFile(folder, f"{account}{folder}{i}", "cur", f, Path("/x"), 1, 0.0),
            _headers(i),
            None,
        )
        for i, f in enumerate(flags)
    ]
    index.upsert_many(account, folder, items)


@pytest.fixture
def index_path(isolated_dirs: SimpleNamespace) -> Path:
    from tui_mail.sync.outbox import Outbox

    path = paths.index_path()
    index = MailIndex.open(path)
    try:
        _fill(index, "work", "INBOX", ["", "", "S", "F"])  # 3 unread
        _fill(index, "work", "Lists/x", ["", "S"])  # 1 unread, not in the INBOX count
        _fill(index, "home", "INBOX", ["S"])
        Outbox(index, root=isolated_dirs.data / "outbox")
        with index.transaction() as conn:
            for account, state in (
                ("work", "queued"),
                ("work", "failed"),
                ("home", "uncertain"),
                ("home", "sent"),
                ("home", "cancelled"),
            ):
                conn.execute(
                    "INSERT INTO outbox(account, file, state, created, updated)"
                    " VALUES (?, 'f', ?, 0, 0)",
                    (account, state),
                )
    finally:
        index.close()
    return path


def test_counts_from_the_index(index_path: Path, tmp_path: Path) -> None:
    status = read_status(index_path, state_path=tmp_path / "none.json")
    assert status.inbox_unread == {"home": 0, "work": 3}
    assert status.all_unread == {"home": 0, "work": 4}
    assert (status.pending, status.failed) == (3, 2)
    assert render(status) == "work:3 out:3(2!)"
    line = render(status, "{unread}/{unread_all} {by[work]} {by[home]} {by[gone]} [{offline}]")
    assert line == "3/4 3 0 0 []"


def test_only_configured_accounts(index_path: Path, tmp_path: Path) -> None:
    status = read_status(index_path, ["home", "new"], state_path=tmp_path / "none.json")
    assert status.inbox_unread == {"home": 0, "new": 0}
    assert status.pending == 1
    assert render(status) == "0 out:1(1!)"


def test_offline_accounts_from_live_processes_only(index_path: Path, tmp_path: Path) -> None:
    state = tmp_path / "state" / "connections.json"
    record_connection("work", "offline", state)
    record_connection("home", "online", state)
    status = read_status(index_path, state_path=state)
    assert status.offline == ["work"]
    assert render(status, "{offline}") == "work"
    # Written by a process that is gone (a crashed TUI): ignored.
    text = state.read_text().replace(f'"pid": {os.getpid()}', '"pid": 999999999')
    state.write_text(text)
    assert read_status(index_path, state_path=state).offline == []
    state.write_text("not json")
    assert read_status(index_path, state_path=state).offline == []


def test_missing_index_is_zeros_and_stays_missing(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "index.sqlite3"
    status = read_status(missing, ["a"], state_path=tmp_path / "x.json")
    assert render(status, "{unread} {pending} {accounts}") == "0 0 "
    assert not missing.exists() and not missing.parent.exists()


def test_not_an_index_is_zeros(tmp_path: Path) -> None:
    bogus = tmp_path / "index.sqlite3"
    bogus.write_bytes(b"garbage" * 100)
    assert render(read_status(bogus, state_path=tmp_path / "x.json")) == "0"
    assert bogus.read_bytes() == b"garbage" * 100


def test_format_checks() -> None:
    assert check_format("{unread} {by[work]} x") is None
    assert "unknown field {nope}" in (check_format("{nope}") or "")
    assert check_format("{unread.real}") is not None  # no attribute access
    assert check_format("{unread") is not None


def test_names_cannot_break_the_line(tmp_path: Path) -> None:
    index = MailIndex.open(tmp_path / "i.sqlite3")
    try:
        _fill(index, "evil\x1b[2J\nname", "INBOX", [""])
    finally:
        index.close()
    line = render(read_status(tmp_path / "i.sqlite3", state_path=tmp_path / "x.json"))
    assert "\x1b" not in line and "\n" not in line


def test_cli_status(index_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0
    assert capsys.readouterr().out == "work:3 out:3(2!)\n"
    assert main(["status", "--format", "{unread} unread, {pending} to send"]) == 0
    assert capsys.readouterr().out == "3 unread, 3 to send\n"
    assert main(["status", "--format", "{bogus}"]) == 2
    assert "unknown field {bogus}" in capsys.readouterr().err


def test_cli_status_reads_the_configured_accounts(
    index_path: Path, isolated_dirs: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    config = isolated_dirs.config / "tui-mail" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[accounts.home]\nemail = "h@x.example"\n')
    assert main(["status", "--format", "{accounts}|{pending}"]) == 0
    assert capsys.readouterr().out == "|1\n"


def test_status_imports_nothing_heavy(index_path: Path) -> None:
    code = (
        "import sys\n"
        "from tui_mail.cli import main\n"
        "main(['status'])\n"
        "heavy = ('asyncio', 'email', 'textual', 'tui_mail.store', 'tui_mail.sync',"
        " 'tui_mail.config.load', 'dataclasses', 'msgspec')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy"
        " or any(m.startswith(h + '.') for h in heavy))\n"
        "print('BAD', bad, file=sys.stderr)\n"
        "raise SystemExit(1 if bad else 0)\n"
    )
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout == "work:3 out:3(2!)\n"
    assert elapsed < 5  # the real budget (150 ms) is measured by bench/bench_search.py


def test_state_file_lives_in_the_state_dir(isolated_dirs: SimpleNamespace) -> None:
    assert state_file().parent == paths.state_dir()
    record_connection("acct", "connecting")
    assert state_file().exists()


def test_the_runtime_notes_connection_states_for_status(
    index_path: Path, isolated_dirs: SimpleNamespace
) -> None:
    from tui_mail.core import events as ev
    from tui_mail.sync.runtime import _noting_connections

    seen: list[ev.Event] = []
    emit = _noting_connections(seen.append)
    emit(ev.ConnectionChanged(account="work", state=ev.ConnectionState.OFFLINE, retry_in=30))
    emit(ev.ConnectionChanged(account="home", state=ev.ConnectionState.CONNECTED))
    assert len(seen) == 2  # every event still reaches the UI or the CLI
    assert read_status(index_path).offline == ["work"]
    emit(ev.ConnectionChanged(account="work", state=ev.ConnectionState.CONNECTED))
    assert read_status(index_path).offline == []
