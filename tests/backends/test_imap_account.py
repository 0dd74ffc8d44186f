"""An IMAP account through the account worker, as the TUI and `tui-mail sync` use it,
against the harness's Dovecot. The server side is checked with imaplib only."""

from __future__ import annotations

import asyncio
import imaplib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.harness import Mailstack, deliver_lmtp, reset_user_mail

from tui_mail.config.load import load_config
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.core.capabilities import Capability
from tui_mail.core.flags import Flag
from tui_mail.sync.runtime import Runtime

pytestmark = pytest.mark.servers

USER = "alice"


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    reset_user_mail(mailstack, USER)
    yield mailstack


def message(n: int) -> bytes:
    return (
        f"From: Bob <bob@localhost>\nTo: alice@localhost\nSubject: account {n}\n"
        f"Message-ID: <account-{n}@tui-mail.test>\nDate: Mon, 03 Nov 2025 10:00:{n:02d} +0000\n"
        f"\nbody {n}\n"
    ).encode()


def write_config(tmp_path: Path, ms: Mailstack, security: str = "starttls") -> Path:
    port = ms.imap_port if security == "starttls" else ms.imaps_port
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[accounts.alice]
email = "alice@localhost"

[accounts.alice.receive]
backend = "imap"
host = "{ms.host}"
port = {port}
security = "{security}"
user = "{USER}"
password_command = "printf %s {ms.users[USER]}"
ca_file = "{ms.ca_file}"

[accounts.alice.send]
backend = "smtp"
host = "{ms.host}"
port = {ms.submission_port}
security = "starttls"
user = "{USER}"
password_command = "printf %s {ms.users[USER]}"
ca_file = "{ms.ca_file}"
"""
    )
    return path


def server(ms: Mailstack) -> imaplib.IMAP4_SSL:
    c = imaplib.IMAP4_SSL(ms.host, ms.imaps_port, ssl_context=ms.ssl_context(), timeout=10)
    c.login(USER, ms.users[USER])
    return c


def server_flags(ms: Mailstack, folder: str = "INBOX") -> dict[str, str]:
    c = server(ms)
    try:
        c.select(folder, readonly=True)
        _typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = {}
        for item in data:
            if isinstance(item, tuple):
                subject = item[1].decode().split(":", 1)[1].strip()
                out[subject] = item[0].decode()
        return out
    finally:
        c.logout()


def test_tui_mail_sync_mirrors_the_server(ms: Mailstack, tmp_path: Path) -> None:
    for n in range(25):
        deliver_lmtp(ms, USER, message(n))
    config = write_config(tmp_path, ms)
    run = [sys.executable, "-m", "tui_mail", "--config", str(config), "sync"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert first.returncode == 0, first.stderr
    assert "25 new" in first.stderr
    again = subprocess.run(run, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert again.returncode == 0 and "0 new" in again.stderr, again.stderr


class Events:
    def __init__(self) -> None:
        self.seen: list[ev.Event] = []
        self.waiters: dict[int, asyncio.Future[ev.Event]] = {}

    def __call__(self, event: ev.Event) -> None:
        self.seen.append(event)
        fut = self.waiters.get(event.in_reply_to or -1)
        if fut is not None and not fut.done():
            fut.set_result(event)

    async def run(self, runtime: Runtime, command: cmd.Command) -> ev.Event:
        self.waiters[command.id] = asyncio.get_running_loop().create_future()
        runtime.submit(USER, command)
        return await asyncio.wait_for(self.waiters[command.id], 60)

    async def until(self, predicate, timeout: float = 20.0) -> ev.Event:  # type: ignore[no-untyped-def]
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for event in self.seen:
                if predicate(event):
                    return event
            await asyncio.sleep(0.05)
        raise AssertionError("no such event")


async def test_flags_move_delete_and_push(ms: Mailstack, tmp_path: Path) -> None:
    for n in range(3):
        deliver_lmtp(ms, USER, message(n))
    config = load_config(write_config(tmp_path, ms, security="tls"))
    events = Events()
    runtime = Runtime(config)
    await runtime.start(events, initial_sync=False, poll=True)
    try:
        assert isinstance(await events.run(runtime, cmd.SyncNow()), ev.Done)
        rows = runtime.index.page(USER, "INBOX", 0, 10, sort="date", descending=False)
        assert [r.subject for r in rows] == ["account 0", "account 1", "account 2"]

        # A flag change: pending at once, then confirmed by the server.
        reply = await events.run(
            runtime, cmd.SetFlags(refs=(rows[0].ref,), add=frozenset({Flag.FLAGGED}))
        )
        assert isinstance(reply, ev.Done)
        await events.until(lambda e: isinstance(e, ev.FlagsConfirmed))
        assert "\\Flagged" in server_flags(ms)["account 0"]
        [row0] = [r for r in runtime.index.page(USER, "INBOX", 0, 10) if r.subject == "account 0"]
        assert Flag.FLAGGED in row0.flags and not row0.pending

        # Move to Archive on the server; the local copy follows, once.
        reply = await events.run(runtime, cmd.Move(refs=(rows[1].ref,), to_folder="Archive"))
        assert isinstance(reply, ev.Done), reply
        assert "account 1" in server_flags(ms, "Archive")
        assert "account 1" not in server_flags(ms)
        archive = runtime.index.page(USER, "Archive", 0, 10)
        assert [r.subject for r in archive] == ["account 1"]
        assert runtime.index.count(USER, "INBOX") == 2

        # Delete: to Trash, then from Trash for good.
        reply = await events.run(runtime, cmd.Delete(refs=(archive[0].ref,)))
        assert isinstance(reply, ev.Done), reply
        [trashed] = runtime.index.page(USER, "Trash", 0, 10)
        reply = await events.run(runtime, cmd.Delete(refs=(trashed.ref,)))
        assert isinstance(reply, ev.Done), reply
        assert server_flags(ms, "Trash") == {}
        assert runtime.index.count(USER, "Trash") == 0

        # New mail is pushed (IDLE) and synced without being asked.
        events.seen.clear()
        deliver_lmtp(ms, USER, message(9))
        await events.until(
            lambda e: isinstance(e, ev.MessagesChanged) and e.folder == "INBOX" and e.added == 1
        )
        assert runtime.index.count(USER, "INBOX") == 3
    finally:
        await runtime.stop()


async def test_an_offline_flag_change_is_replayed(ms: Mailstack, tmp_path: Path) -> None:
    deliver_lmtp(ms, USER, message(1))
    config = load_config(write_config(tmp_path, ms, security="tls"))
    events = Events()
    runtime = Runtime(config)
    await runtime.start(events, initial_sync=False, poll=False)
    try:
        assert isinstance(await events.run(runtime, cmd.SyncNow()), ev.Done)
        await events.run(runtime, cmd.Disconnect())
        [row] = runtime.index.page(USER, "INBOX", 0, 10)
        reply = await events.run(runtime, cmd.SetFlags(refs=(row.ref,), add=frozenset({Flag.SEEN})))
        assert isinstance(reply, ev.Done)
        [row] = runtime.index.page(USER, "INBOX", 0, 10)
        assert row.pending and "\\Seen" not in server_flags(ms)["account 1"]
    finally:
        await runtime.stop()
    # A new process (the journal is on disk) pushes it at its first sync.
    events = Events()
    runtime = Runtime(config)
    await runtime.start(events, initial_sync=False, poll=False)
    try:
        assert isinstance(await events.run(runtime, cmd.SyncNow()), ev.Done)
        assert "\\Seen" in server_flags(ms)["account 1"]
        [row] = runtime.index.page(USER, "INBOX", 0, 10)
        assert not row.pending
    finally:
        await runtime.stop()


async def test_folder_patterns_idle_off_and_small_batches(ms: Mailstack, tmp_path: Path) -> None:
    for n in range(5):
        deliver_lmtp(ms, USER, message(n))
    c = server(ms)
    try:
        for folder in ("Archive", "Lists"):
            c.create(folder)
            c.append(folder, None, None, message(40 + len(folder)).replace(b"\n", b"\r\n"))
    finally:
        c.logout()
    path = write_config(tmp_path, ms, security="tls")
    text = path.read_text().replace(
        'user = "alice"\npassword_command',
        'folders = ["Arch*"]\nidle = false\nfetch_batch = 2\nuser = "alice"\npassword_command',
        1,
    )
    path.write_text(text)
    config = load_config(path)
    events = Events()
    runtime = Runtime(config)
    await runtime.start(events, initial_sync=False, poll=False)
    try:
        assert isinstance(await events.run(runtime, cmd.SyncNow()), ev.Done)
        assert runtime.index.count(USER, "INBOX") == 5  # INBOX always, in batches of 2
        assert runtime.index.count(USER, "Archive") == 1
        assert runtime.index.count(USER, "Lists") == 0  # not in `folders`: not mirrored
        backend = runtime.receive_backend(USER)
        assert backend is not None and not backend.has(Capability.PUSH)  # idle = false
        # Run again: the left-out folder is not taken for one deleted on the server.
        assert isinstance(await events.run(runtime, cmd.SyncNow()), ev.Done)
        assert "Lists" in server_folders(ms)
    finally:
        await runtime.stop()


def server_folders(ms: Mailstack) -> list[str]:
    c = server(ms)
    try:
        _typ, data = c.list()
        return [line.decode().rsplit(" ", 1)[-1].strip('"') for line in data if line]
    finally:
        c.logout()
