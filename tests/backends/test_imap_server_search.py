"""Searching on the IMAP server for mail not downloaded (issue 7), through the account
worker and `tui-mail search --server`, against the harness's Dovecot."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.harness import Mailstack, deliver_lmtp, reset_user_mail
from test_imap_account import USER, message, server, write_config
from test_imap_account import Events as _Events

from tui_mail.config.load import load_config
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.search.query import parse_query
from tui_mail.search.run import run_query
from tui_mail.sync.runtime import Runtime

pytestmark = pytest.mark.servers

HIDDEN = "Hidden"
TERMINAL = (ev.Done, ev.Failed, ev.Cancelled, ev.UnsupportedReply)


class Events(_Events):
    """Waits for the terminal reply: SearchResults comes first, with the same in_reply_to."""

    def __call__(self, event: ev.Event) -> None:
        self.seen.append(event)
        fut = self.waiters.get(event.in_reply_to or -1)
        if fut is not None and not fut.done() and isinstance(event, TERMINAL):
            fut.set_result(event)


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    reset_user_mail(mailstack, USER)
    yield mailstack


def only_some_folders(tmp_path: Path, ms: Mailstack) -> Path:
    """A config whose sync leaves HIDDEN out (`folders` patterns)."""
    path = write_config(tmp_path, ms, security="tls")
    text = path.read_text().replace('ca_file = "', 'folders = ["INBOX", "Archive"]\nca_file = "', 1)
    path.write_text(text)
    return path


def put_on_server(ms: Mailstack, folder: str, raw: bytes) -> None:
    c = server(ms)
    try:
        c.create(folder)
        typ, _ = c.append(folder, "", imaplib_time(), raw.replace(b"\n", b"\r\n"))
        assert typ == "OK"
    finally:
        c.logout()


def imaplib_time() -> str:
    import imaplib

    return imaplib.Time2Internaldate(time.time())


def hidden_message() -> bytes:
    return (
        b"From: Carol <carol@localhost>\nTo: alice@localhost\nSubject: quarterly zebra report\n"
        b"Message-ID: <zebra@tui-mail.test>\nDate: Mon, 03 Nov 2025 11:00:00 +0000\n"
        b"\nnumbers inside\n"
    )


async def test_server_search_finds_and_downloads_mail_only_on_the_server(
    ms: Mailstack, tmp_path: Path
) -> None:
    deliver_lmtp(ms, USER, message(1))
    put_on_server(ms, HIDDEN, hidden_message())
    config = load_config(only_some_folders(tmp_path, ms))
    events = Events()
    runtime = Runtime(config)
    await runtime.start(events, initial_sync=False, poll=False)
    try:
        assert isinstance(await events.run(runtime, cmd.SyncNow()), ev.Done)
        query = parse_query("zebra")
        # The sync left HIDDEN out: the local search cannot see it.
        assert run_query(runtime.index, query) == []
        assert runtime.index.count(USER, HIDDEN) == 0

        reply = await events.run(runtime, cmd.Search(query="zebra", server=True))
        assert isinstance(reply, ev.Done), reply
        [results] = [
            e
            for e in events.seen
            if isinstance(e, ev.SearchResults) and e.in_reply_to == reply.in_reply_to
        ]
        assert [(r.account, r.folder) for r in results.refs] == [(USER, HIDDEN)]
        # Downloaded into the store with its UID, as a sync would: now local and searchable.
        [row] = runtime.index.page(USER, HIDDEN, 0, 10)
        assert row.subject == "quarterly zebra report" and row.ref == results.refs[0]
        assert runtime.index.server_id(row.ref.id).uid is not None  # type: ignore[union-attr,arg-type]
        assert run_query(runtime.index, query) == [row.ref.id]

        # Asked again: found, not downloaded twice; a sync leaves the copy alone.
        events.seen.clear()
        reply = await events.run(runtime, cmd.Search(query="zebra", server=True))
        [again] = [e for e in events.seen if isinstance(e, ev.SearchResults)]
        assert again.refs == results.refs
        assert not [e for e in events.seen if isinstance(e, ev.MessagesChanged)]
        assert isinstance(await events.run(runtime, cmd.SyncNow()), ev.Done)
        assert runtime.index.count(USER, HIDDEN) == 1
        assert runtime.index.count(USER, "INBOX") == 1

        # Local and server matches both come back: the INBOX one was already local.
        events.seen.clear()
        reply = await events.run(runtime, cmd.Search(query="subject:account", server=True))
        [found] = [e for e in events.seen if isinstance(e, ev.SearchResults)]
        assert [r.folder for r in found.refs] == ["INBOX"]
    finally:
        await runtime.stop()


async def test_a_message_missing_locally_is_downloaded_again(ms: Mailstack, tmp_path: Path) -> None:
    deliver_lmtp(ms, USER, message(1))
    deliver_lmtp(ms, USER, message(2))
    config = load_config(write_config(tmp_path, ms, security="tls"))
    events = Events()
    runtime = Runtime(config)
    await runtime.start(events, initial_sync=False, poll=False)
    try:
        assert isinstance(await events.run(runtime, cmd.SyncNow()), ev.Done)
        # Its local copy is gone (an index reset, a tool that removed the file), while
        # the sync's saved state says it was seen: only a server search brings it back.
        [row] = [r for r in runtime.index.page(USER, "INBOX", 0, 10) if r.subject == "account 2"]
        await asyncio.to_thread(runtime.stores[USER].remove, row.ref)
        assert run_query(runtime.index, parse_query("subject:account")) != []
        assert run_query(runtime.index, parse_query("body:2")) == []

        reply = await events.run(runtime, cmd.Search(query="body:2", server=True))
        assert isinstance(reply, ev.Done), reply
        [results] = [e for e in events.seen if isinstance(e, ev.SearchResults)]
        [ref] = results.refs
        assert ref.folder == "INBOX"
        assert [e.subject for e in runtime.index.envelopes([ref.id])] == ["account 2"]  # type: ignore[list-item]
        assert runtime.index.count(USER, "INBOX") == 2
    finally:
        await runtime.stop()


async def test_a_bad_query_is_a_clear_failure(ms: Mailstack, tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ms, security="tls"))
    events = Events()
    runtime = Runtime(config)
    await runtime.start(events, initial_sync=False, poll=False)
    try:
        reply = await events.run(runtime, cmd.Search(query="subject:", server=True))
        assert isinstance(reply, ev.Failed)
        assert reply.message.startswith("search: ") and "Traceback" not in reply.message
        many = " ".join(f"(a{i} OR b{i})" for i in range(5))  # 2**5 AND-searches
        reply = await events.run(runtime, cmd.Search(query=many, server=True))
        assert isinstance(reply, ev.Failed)
        assert "too many alternatives" in reply.message
        # The worker still serves.
        assert isinstance(await events.run(runtime, cmd.ListFolders()), ev.Done)
    finally:
        await runtime.stop()


def test_cli_search_server(ms: Mailstack, tmp_path: Path) -> None:
    deliver_lmtp(ms, USER, message(1))
    put_on_server(ms, HIDDEN, hidden_message())
    config = only_some_folders(tmp_path, ms)
    base = [sys.executable, "-m", "tui_mail", "--config", str(config)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy()
        )

    assert run("sync").returncode == 0
    local = run("search", "zebra")
    assert local.returncode == 1 and local.stdout == ""
    found = run("search", "--server", "--format", "{folder} {subject}", "zebra")
    assert found.returncode == 0, found.stderr
    assert found.stdout == f"{HIDDEN} quarterly zebra report\n"
    bad = run("search", "--server", "subject:")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "search:" in bad.stderr and "^" in bad.stderr
