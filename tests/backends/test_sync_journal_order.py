"""Offline changes against the real Dovecot: replayed in the order they were made,
settled atomically, and pushed before their message moves (nothing lost).

Found by a review with reproducers: a refused push let a later change of the same
message go first and be undone by the replay of the older one; a crash between
dropping a journal entry and clearing `pending` left a message whose server flags
never arrived again; a flag change made offline was dropped when the message was
moved or deleted before the next sync, when the index was rebuilt, or when its
folder was renamed on the server.
"""

from __future__ import annotations

import contextlib
import imaplib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from servers.harness import Mailstack, deliver_lmtp, reset_user_mail
from test_imap_account import Events, message, server_flags, write_config
from test_imap_sync import USER, imap, local_files, make, ref_of, sample

from tui_mail.backends.imap.backend import ImapReceiveBackend
from tui_mail.config.load import load_config
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.core.errors import ProtocolError
from tui_mail.core.flags import Flag, FlagSet
from tui_mail.core.models import Envelope, MessageRef
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex
from tui_mail.store.journal import Journal
from tui_mail.sync.imap_sync import sync_account
from tui_mail.sync.runtime import Runtime
from tui_mail.sync.server_ops import push_pending, record_flag_change

pytestmark = pytest.mark.servers


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    reset_user_mail(mailstack, USER)
    yield mailstack


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AccountStore]:
    index = MailIndex(tmp_path / "index.db")
    yield AccountStore(USER, tmp_path / "mail", index)
    index.close()


def offline_flag(
    store: AccountStore,
    journal: Journal,
    ref: MessageRef,
    add: frozenset[Flag] = frozenset(),
    remove: frozenset[Flag] = frozenset(),
) -> MessageRef:
    """What the account worker does for a flag change while offline."""
    found = store.maildir.locate(ref.folder, ref.key)
    assert found is not None
    flags = FlagSet.from_maildir(found.flags).with_(*add).without(*remove)
    with store.index.transaction():
        new_ref = store.set_flags(ref, flags.to_maildir(), True)
        assert new_ref.id is not None
        record_flag_change(journal, new_ref, new_ref.id, add, remove)
    return new_ref


def flags_on_server(ms: Mailstack, message_id: str, folder: str = "INBOX") -> str:
    c = imap(ms)
    try:
        c.select(folder, readonly=True)
        _, data = c.uid("SEARCH", "HEADER", "Message-ID", message_id)
        [uid] = data[0].split()
        _, data = c.uid("FETCH", uid, "(FLAGS)")
        return data[0].decode()
    finally:
        c.logout()


def refuse_first_store(backend: object) -> None:
    """The server answers NO to the next UID STORE only (a transient refusal)."""
    real = backend.set_flags  # type: ignore[attr-defined]
    calls = [0]

    async def flaky(*args: object, **kw: object) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise ProtocolError("NO [SERVERBUG] try again (injected)")
        await real(*args, **kw)

    backend.set_flags = flaky  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def flagged_offline(
    ms: Mailstack, store: AccountStore, tag: str
) -> AsyncIterator[tuple[ImapReceiveBackend, Journal, MessageRef]]:
    """Message <TAG-1@tui-mail.test> synced into `store`, then flagged while offline."""
    deliver_lmtp(ms, USER, sample(1, tag))
    journal = Journal(store.index)
    b = make(ms)
    try:
        await sync_account(b, store, journal=journal)
        ref = ref_of(store, "INBOX", f"<{tag}-1@tui-mail.test>")
        yield b, journal, offline_flag(store, journal, ref, add={Flag.FLAGGED})
    finally:
        await b.close()


@contextlib.asynccontextmanager
async def worker_flagged_offline(
    ms: Mailstack, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, Events, Envelope]]:
    """An account worker that synced one message, went offline and flagged it."""
    deliver_lmtp(ms, USER, message(1))
    config = load_config(write_config(tmp_path, ms, security="tls"))
    events = Events()
    runtime = Runtime(config)
    await runtime.start(events, initial_sync=False, poll=False)
    try:
        assert isinstance(await events.run(runtime, cmd.SyncNow()), ev.Done)
        await events.run(runtime, cmd.Disconnect())
        [row] = runtime.index.page(USER, "INBOX", 0, 10)
        flag = cmd.SetFlags(refs=(row.ref,), add=frozenset({Flag.FLAGGED}))
        assert isinstance(await events.run(runtime, flag), ev.Done)
        [row] = runtime.index.page(USER, "INBOX", 0, 10)
        yield runtime, events, row
    finally:
        await runtime.stop()


async def test_a_refused_change_holds_back_the_later_ones_of_its_message(
    ms: Mailstack, store: AccountStore
) -> None:
    mid = "<order-1@tui-mail.test>"
    async with flagged_offline(ms, store, "order") as (b, journal, ref):
        # Then unflagged again, still offline. The last action is "unflagged".
        offline_flag(store, journal, ref, remove={Flag.FLAGGED})
        refuse_first_store(b)
        await sync_account(b, store, journal=journal)
        # The later change waited for the refused one: both are still journalled.
        assert journal.count_pending(USER) == 2
        with store.index.transaction() as conn:  # its backoff is over
            conn.execute("UPDATE journal SET next_attempt = 0")
        await sync_account(b, store, journal=journal)
        await sync_account(b, store, journal=journal)
        assert journal.count_pending(USER) == 0
        assert "\\Flagged" not in flags_on_server(ms, mid)
        [(_, letters)] = local_files(store)[mid]
        assert "F" not in letters
        [row] = store.index.page(USER, "INBOX", 0, 10)
        assert not row.pending


async def test_a_change_waiting_out_its_backoff_holds_back_the_later_ones(
    ms: Mailstack, store: AccountStore
) -> None:
    """The worker's own replay (push_pending, after each change while connected)."""
    mid = "<backoff-1@tui-mail.test>"
    async with flagged_offline(ms, store, "backoff") as (b, journal, ref):
        [first] = journal.pending(USER)
        journal.mark_failed(first.id, "refused earlier", time.time() + 3600)
        offline_flag(store, journal, ref, remove={Flag.FLAGGED})
        result = await push_pending(b, store, journal)
        assert (result.confirmed, result.failed) == ((), 0)
        assert journal.count_pending(USER) == 2
        # A move about to take the message elsewhere pushes them all, in order.
        [row] = store.index.page(USER, "INBOX", 0, 10)
        result = await push_pending(b, store, journal, {row.ref.id or 0})
        assert len(result.confirmed) == 2 and result.failed == 0
        assert "\\Flagged" not in flags_on_server(ms, mid)
        [row] = store.index.page(USER, "INBOX", 0, 10)
        assert not row.pending


async def test_an_offline_change_survives_an_index_rebuild(
    ms: Mailstack, store: AccountStore
) -> None:
    """`tui-mail index rebuild` gives every row a new id; the journal names rows by id."""
    mid = "<rebuild-1@tui-mail.test>"
    async with flagged_offline(ms, store, "rebuild") as (b, journal, _):
        store.rebuild()
        [row] = store.index.page(USER, "INBOX", 0, 10)
        assert row.pending and Flag.FLAGGED in row.flags
        [entry] = journal.pending(USER)
        assert entry.payload["id"] == row.ref.id
        # What the worker does: sync (matching the rows again), then replay.
        await sync_account(b, store, journal=journal)
        await push_pending(b, store, journal)
        assert "\\Flagged" in flags_on_server(ms, mid)
        [(_, letters)] = local_files(store)[mid]
        assert letters == "F"
        assert journal.count_pending(USER) == 0


async def test_an_offline_change_follows_its_folder_renamed_on_the_server(
    ms: Mailstack, store: AccountStore
) -> None:
    mid = "<ren-1@tui-mail.test>"
    c = imap(ms)
    c.create("Work")
    c.append("Work", "", imaplib.Time2Internaldate(time.time()), sample(1, "ren"))
    c.logout()
    journal = Journal(store.index)
    b = make(ms)
    try:
        await sync_account(b, store, journal=journal)
        offline_flag(store, journal, ref_of(store, "Work", mid), add={Flag.FLAGGED})
        c = imap(ms)
        c.rename("Work", "Projects")
        c.logout()
        result = await sync_account(b, store, journal=journal)
        assert result.renamed == [("Work", "Projects")]
        # The change followed the folder and went out in the same run.
        assert "\\Flagged" in flags_on_server(ms, mid, "Projects")
        [(_, letters)] = local_files(store, "Projects")[mid]
        assert letters == "F"
        assert journal.count_pending(USER) == 0
    finally:
        await b.close()


class Killed(BaseException):
    """The process dying at that point."""


async def test_a_crash_while_settling_a_change_leaves_it_to_replay(
    ms: Mailstack, store: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid = "<settle-1@tui-mail.test>"
    async with flagged_offline(ms, store, "settle") as (b, journal, _):
        real = MailIndex.set_pending

        def dies(self: MailIndex, ids: object, pending: bool) -> None:
            if not pending:  # right after the journal entry was dropped
                raise Killed()
            real(self, ids, pending)  # type: ignore[arg-type]

        monkeypatch.setattr(MailIndex, "set_pending", dies)
        with pytest.raises(Killed):
            await sync_account(b, store, journal=journal)
        monkeypatch.undo()
        # Entry and pending mark went back together: the change is replayed.
        assert journal.count_pending(USER) == 1
        await sync_account(b, store, journal=journal)
        assert journal.count_pending(USER) == 0
        [row] = store.index.page(USER, "INBOX", 0, 10)
        assert not row.pending
        # And the server's later changes arrive again (a pending row ignores them).
        c = imap(ms)
        c.select("INBOX")
        c.uid("STORE", "1", "+FLAGS", "(\\Seen)")
        c.uid("STORE", "1", "-FLAGS", "(\\Flagged)")
        c.logout()
        await sync_account(b, store, journal=journal)
        [(_, letters)] = local_files(store)[mid]
        assert letters == "S"


@pytest.mark.parametrize("how", ["move", "delete"])
async def test_a_flag_changed_offline_moves_with_its_message(
    ms: Mailstack, tmp_path: Path, how: str
) -> None:
    async with worker_flagged_offline(ms, tmp_path) as (runtime, events, row):
        assert row.pending and Flag.FLAGGED in row.flags
        # The move connects by itself; the change goes out before the message moves.
        if how == "move":
            reply = await events.run(runtime, cmd.Move(refs=(row.ref,), to_folder="Archive"))
            target = "Archive"
        else:
            reply = await events.run(runtime, cmd.Delete(refs=(row.ref,)))
            target = "Trash"
        assert isinstance(reply, ev.Done), reply
        assert "\\Flagged" in server_flags(ms, target)["account 1"]
        [moved] = runtime.index.page(USER, target, 0, 10)
        assert Flag.FLAGGED in moved.flags and not moved.pending


async def test_a_move_whose_pending_change_is_refused_moves_nothing(
    ms: Mailstack, tmp_path: Path
) -> None:
    async with worker_flagged_offline(ms, tmp_path) as (runtime, events, row):
        backend = runtime.receive_backend(USER)
        assert backend is not None
        refuse_first_store(backend)
        reply = await events.run(runtime, cmd.Move(refs=(row.ref,), to_folder="Archive"))
        assert isinstance(reply, ev.Failed), reply
        assert "nothing was moved" in reply.message
        [still] = runtime.index.page(USER, "INBOX", 0, 10)
        assert still.pending and Flag.FLAGGED in still.flags
        assert "account 1" in server_flags(ms, "INBOX")
        assert not server_flags(ms, "Archive")
