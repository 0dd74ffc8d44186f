"""The worker contract on a local Maildir account: one terminal reply per command,
changes written to the files other tools read, and errors as events, not raises."""

from __future__ import annotations

import asyncio
import mailbox
from pathlib import Path

import pytest

from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.core.flags import Flag
from tui_mail.core.models import MessageRef
from tui_mail.sync.runtime import Runtime

RAW = (
    b"From: Ann <ann@example.test>\nTo: me@example.test\nSubject: hello\n"
    b"Message-ID: <hello@example.test>\nDate: Mon, 03 Nov 2025 10:00:00 +0000\n\nhi\n"
)


def config(root: Path) -> AppConfig:
    account = AccountConfig(
        name="local",
        email="me@example.test",
        receive=EndpointConfig(backend="maildir", path=root, key_path="accounts.local.receive"),
        send=EndpointConfig(backend="local", key_path="accounts.local.send"),
    )
    return AppConfig(path=None, accounts={"local": account})


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []
        self.replies: dict[int, asyncio.Future[ev.Event]] = {}

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)
        if event.in_reply_to is not None:
            assert (
                event.in_reply_to not in self.replies or not self.replies[event.in_reply_to].done()
            ), "two terminal replies for one command"
            fut = self.replies.setdefault(
                event.in_reply_to, asyncio.get_running_loop().create_future()
            )
            fut.set_result(event)

    async def run(self, runtime: Runtime, command: cmd.Command) -> ev.Event:
        fut = self.replies.setdefault(command.id, asyncio.get_running_loop().create_future())
        runtime.submit("local", command)
        return await asyncio.wait_for(fut, 10)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    box = mailbox.Maildir(tmp_path / "mail", create=True)
    box.add(mailbox.MaildirMessage(RAW))
    box.add_folder("Archive")
    return tmp_path / "mail"


async def started(root: Path, rec: Recorder, *, poll: bool = False) -> Runtime:
    runtime = Runtime(config(root), index_path=root.parent / "index.sqlite3")
    await runtime.start(rec, initial_sync=False, poll=poll)
    assert isinstance(await rec.run(runtime, cmd.SyncNow()), ev.Done)
    return runtime


def only_ref(runtime: Runtime, folder: str = "INBOX") -> MessageRef:
    [row] = runtime.index.page("local", folder, 0, 10)
    return row.ref


async def test_flags_reach_the_files_and_are_confirmed(root: Path) -> None:
    rec = Recorder()
    runtime = await started(root, rec)
    try:
        ref = only_ref(runtime)
        reply = await rec.run(runtime, cmd.SetFlags(refs=(ref,), add=frozenset({Flag.FLAGGED})))
        assert isinstance(reply, ev.Done)
        assert any(isinstance(e, ev.FlagsConfirmed) for e in rec.events)
        [msg] = mailbox.Maildir(root, create=False)
        assert "F" in msg.get_flags()
        assert only_ref(runtime).key == ref.key  # the key is stable across flag changes
        [row] = runtime.index.page("local", "INBOX", 0, 10)
        assert Flag.FLAGGED in row.flags and not row.pending
    finally:
        await runtime.stop()


async def test_move_and_delete_go_through_the_maildir(root: Path) -> None:
    rec = Recorder()
    runtime = await started(root, rec)
    try:
        reply = await rec.run(runtime, cmd.Move(refs=(only_ref(runtime),), to_folder="Archive"))
        assert isinstance(reply, ev.Done)
        assert len(mailbox.Maildir(root, create=False).get_folder("Archive")) == 1
        reply = await rec.run(runtime, cmd.Delete(refs=(only_ref(runtime, "Archive"),)))
        assert isinstance(reply, ev.Done)
        assert len(mailbox.Maildir(root, create=False).get_folder("Trash")) == 1
        assert runtime.index.count("local", "Archive") == 0
    finally:
        await runtime.stop()


async def test_a_failure_is_a_reply_not_an_exception(root: Path) -> None:
    rec = Recorder()
    runtime = await started(root, rec)
    try:
        gone = MessageRef("local", "INBOX", "no-such-key")
        reply = await rec.run(runtime, cmd.SetFlags(refs=(gone,), add=frozenset({Flag.SEEN})))
        assert isinstance(reply, ev.Failed)
        assert "no longer" in reply.message
        reply = await rec.run(runtime, cmd.Search(query="x"))
        assert isinstance(reply, ev.UnsupportedReply)
        # The worker is still serving after both.
        assert isinstance(await rec.run(runtime, cmd.ListFolders()), ev.Done)
    finally:
        await runtime.stop()


async def test_local_send_delivers_without_bcc_and_keeps_a_sent_copy(root: Path) -> None:
    rec = Recorder()
    runtime = await started(root, rec)
    try:
        raw = (
            b"From: me@example.test\nTo: me@example.test\nBcc: hidden@example.test\n"
            b"Subject: to myself\nMessage-ID: <self@example.test>\n\nnote\n"
        )
        assert isinstance(await rec.run(runtime, cmd.Send(raw=raw)), ev.Done)
        box = mailbox.Maildir(root, create=False)
        subjects = sorted(str(m["Subject"]) for m in box)
        assert subjects == ["hello", "to myself"]
        [delivered] = [m for m in box if m["Subject"] == "to myself"]
        assert delivered["Bcc"] is None and b"hidden@" not in delivered.as_bytes()
        [sent] = list(box.get_folder("Sent"))
        assert sent["Bcc"] == "hidden@example.test"  # the user's own record keeps it, as mutt's

    finally:
        await runtime.stop()


@pytest.mark.parametrize("poll", [True, False])
async def test_an_idle_worker_makes_bulk_stored_bodies_searchable(root: Path, poll: bool) -> None:
    # Only a worker that stays (the TUI, --watch) fills the backlog while idle; a
    # one-shot command's worker must not hold up its exit with it.
    rec = Recorder()
    runtime = await started(root, rec, poll=poll)
    try:
        raws = [RAW.replace(b"hello@", f"bulk{i}@".encode()) + b"zebrafinch\n" for i in range(5)]
        runtime.stores["local"].deliver_many("INBOX", [(r, "", None) for r in raws])
        assert runtime.index.search("local", "zebrafinch") == []  # bodies wait at first
        assert isinstance(await rec.run(runtime, cmd.ListFolders()), ev.Done)
        for _ in range(200 if poll else 10):  # no command arrives: the worker is idle
            if runtime.index.fts_pending_count("local") == 0:
                break
            await asyncio.sleep(0.02)
        assert len(runtime.index.search("local", "zebrafinch")) == (5 if poll else 0)
    finally:
        await runtime.stop()


async def test_download_progress_is_thinned_but_keeps_each_folders_first_and_last(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder()
    runtime = await started(root, rec)
    try:
        clock = [100.0]
        progress = runtime.workers["local"]._fetch_progress()
        rec.events.clear()
        with monkeypatch.context() as m:  # time.monotonic is asyncio's clock too: briefly
            m.setattr("tui_mail.sync.account.time.monotonic", lambda: clock[0])
            for folder in ("INBOX", "Archive"):
                for done in range(1001):
                    clock[0] += 0.001  # 1,000 messages a second
                    progress(folder, done, 1000, done * 10)
        shown = [(e.folder, e.done) for e in rec.events if isinstance(e, ev.SyncProgress)]
        for folder in ("INBOX", "Archive"):
            dones = [d for f, d in shown if f == folder]
            assert dones[0] == 0 and dones[-1] == 1000  # the start and the end, always
            assert 15 <= len(dones) <= 25  # about one per PROGRESS_INTERVAL (50 ms) between
    finally:
        await runtime.stop()


async def test_folders_are_announced_first_unless_nothing_shows_them(root: Path) -> None:
    """The TUI's folder pane gets FoldersListed as a worker starts; a one-shot CLI run
    (list_folders=False) skips that query and goes straight to its command."""
    for announce in (True, False):
        rec = Recorder()
        runtime = Runtime(config(root), index_path=root.parent / f"index-{announce}.sqlite3")
        await runtime.start(rec, initial_sync=False, poll=False, list_folders=announce)
        try:
            assert isinstance(await rec.run(runtime, cmd.SyncNow()), ev.Done)
        finally:
            await runtime.stop()
        syncing = next(i for i, e in enumerate(rec.events) if isinstance(e, ev.SyncProgress))
        # (A Maildir sync lists its folders again when it is done, either way.)
        before = [e for e in rec.events[:syncing] if isinstance(e, ev.FoldersListed)]
        if announce:
            assert [{f.name for f in e.folders} >= {"INBOX", "Archive"} for e in before] == [True]
        else:
            assert before == []
