"""sync_folder / sync_account against the real Dovecot, into a real AccountStore.

The server side is set up and checked with imaplib and Dovecot's own files,
never with the code under test.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import mailbox
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.harness import Mailstack, deliver_lmtp, reset_user_mail

from tui_mail.backends.base import BackendContext
from tui_mail.backends.imap.backend import ImapReceiveBackend
from tui_mail.config.schema import AccountConfig, EndpointConfig
from tui_mail.core.errors import ConnectError, ProtocolError
from tui_mail.core.flags import Flag
from tui_mail.core.models import MessageRef, ServerId
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex
from tui_mail.sync.imap_sync import sync_account, sync_folder

pytestmark = pytest.mark.servers

USER = "alice"
MID = re.compile(rb"^Message-ID: (<[^>]+>)", re.M | re.I)


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    reset_user_mail(mailstack, USER)
    yield mailstack


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AccountStore]:
    index = MailIndex(tmp_path / "index.db")
    yield AccountStore(USER, tmp_path / "mail", index)
    index.close()


def make(ms: Mailstack, security: str = "tls") -> ImapReceiveBackend:
    ep = EndpointConfig(
        backend="imap",
        host=ms.host,
        port=ms.imaps_port if security == "tls" else ms.imap_port,
        security=security,  # type: ignore[arg-type]
        user=USER,
        password=ms.users[USER],
        ca_file=ms.ca_file,
        timeout=10.0,
        key_path="accounts.alice.receive",
    )
    acct = AccountConfig(USER, "alice@localhost", ep, EndpointConfig(backend="local"))
    return ImapReceiveBackend(BackendContext(acct, ep))


def imap(ms: Mailstack) -> imaplib.IMAP4_SSL:
    c = imaplib.IMAP4_SSL(ms.host, ms.imaps_port, ssl_context=ms.ssl_context(), timeout=10)
    c.login(USER, ms.users[USER])
    return c


def sample(n: int, tag: str = "sync") -> bytes:
    body = f"Message {n} – Grüße\n"
    if n % 7 == 0:
        body += "L" * 3000 + "\n"
    if n % 50 == 3:
        body += "".join(f"{i:07d} abcdefghijklmnopqrstuvwxyz\n" for i in range(3000))
    return (
        f"From: Bob <bob@localhost>\nTo: alice@localhost\nSubject: {tag} {n}\n"
        f"Message-ID: <{tag}-{n}@tui-mail.test>\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + body
    ).encode()


def dovecot_files(ms: Mailstack, folder: str = "INBOX") -> dict[str, tuple[bytes, str]]:
    """Message-ID -> (bytes as IMAP serves them, Maildir flag letters) from Dovecot's files."""
    root = ms.dir / "mail" / USER / "Maildir"
    if folder != "INBOX":
        root = root / f".{folder}"
    out: dict[str, tuple[bytes, str]] = {}
    for sub in ("new", "cur"):
        for path in (root / sub).iterdir():
            data = path.read_bytes()
            m = MID.search(data)
            assert m, path
            letters = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
            # Dovecot keeps LF on disk, and so do we (the Maildir convention).
            out[m.group(1).decode()] = (data, letters)
    return out


def local_files(store: AccountStore, folder: str = "INBOX") -> dict[str, list[tuple[bytes, str]]]:
    """Message-ID -> [(bytes, flag letters)] of every local copy (a list: duplicates show)."""
    out: dict[str, list[tuple[bytes, str]]] = {}
    for f in store.maildir.scan(folder):
        data = f.path.read_bytes()
        m = MID.search(data)
        assert m, f.path
        out.setdefault(m.group(1).decode(), []).append((data, f.flags))
    return out


def rows(store: AccountStore, folder: str = "INBOX") -> list[tuple[str, int | None, int | None]]:
    """(message_id, uid, uidvalidity) of every index row of the folder."""
    return [
        (r[0], r[1], r[2])
        for r in store.index.execute_read(
            "SELECT message_id, uid, uidvalidity FROM messages WHERE account = ? AND folder = ?",
            (USER, folder),
        )
    ]


def ref_of(store: AccountStore, folder: str, message_id: str) -> MessageRef:
    (ref,) = [r for r in store.index.find_by_message_id(USER, message_id) if r.folder == folder]
    return ref


# ---------------------------------------------------------------- initial and repeated sync


async def test_200_messages_byte_identical_then_nothing_to_do(
    ms: Mailstack, store: AccountStore
) -> None:
    for n in range(200):
        deliver_lmtp(ms, USER, sample(n))
    c = imap(ms)
    c.select("INBOX")
    c.uid("STORE", "1:20", "+FLAGS", "(\\Seen)")
    c.uid("STORE", "5", "+FLAGS", "(\\Flagged \\Answered)")
    c.logout()

    b = make(ms)
    seen: list[tuple[str, int, int]] = []
    try:
        result = await sync_account(b, store, lambda f, d, t, _n: seen.append((f, d, t)))
        first_commands = b.commands_sent

        server = dovecot_files(ms)
        local = local_files(store)
        assert result.fetched == 200 and not result.errors
        assert set(local) == set(server)
        for mid, (data, letters) in server.items():
            assert local[mid] == [(data, letters)], mid  # one copy, same bytes, same flags
        assert seen[-1] == ("INBOX", 200, 200)
        assert sorted(u for _, u, _ in rows(store)) == list(range(1, 201))
        # Other Maildir readers see the same mail.
        md = mailbox.Maildir(store.root, factory=None, create=False)
        assert len(md) == 200
        assert {m["Message-ID"] for m in md} == set(server)
        assert {f.name for f in store.folders()} >= {"INBOX", "Sent", "Drafts", "Trash"}

        again = await sync_account(b, store)
        assert again.fetched == 0 and again.flag_changes == 0 and not again.errors
        # LIST plus one SELECT per folder: no FETCH, no SEARCH.
        assert b.commands_sent - first_commands <= 1 + len(store.folders())
        assert local_files(store) == local
    finally:
        await b.close()

    # A fresh connection (a new run) is just as cheap.
    b = make(ms)
    try:
        await b.connect()
        before = b.commands_sent
        assert (await sync_account(b, store)).fetched == 0
        assert b.commands_sent - before <= 1 + len(store.folders())
    finally:
        await b.close()


async def test_empty_folders_are_not_selected_and_their_first_mail_still_arrives(
    ms: Mailstack, store: AccountStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A first sync takes an empty folder's state from STATUS instead of selecting
    it; the state it saves must still find the folder's first message later."""
    deliver_lmtp(ms, USER, sample(0))
    caplog.set_level(logging.DEBUG, logger="tui_mail.backends.imap.client")
    b = make(ms)
    try:
        await sync_account(b, store)
        selected = re.findall(r"> T\d+ (SELECT|EXAMINE)", caplog.text)
        assert selected == ["SELECT"], caplog.text  # INBOX only, not Sent, Drafts, Trash...
        assert {f.name for f in store.folders()} >= {"INBOX", "Sent", "Drafts", "Trash"}

        c = imap(ms)
        c.append("Trash", "(\\Seen)", None, sample(1))
        c.logout()
        result = await sync_account(b, store)
        assert result.fetched == 1 and not result.errors
        trash = local_files(store, "Trash")
        assert list(trash) == ["<sync-1@tui-mail.test>"]
        assert trash["<sync-1@tui-mail.test>"][0][1] == "S"
        # And the folders still empty were left alone by STATUS alone.
        unchanged = {f.folder for f in result.folders if f.unchanged}
        assert {"Sent", "Drafts"} <= unchanged
    finally:
        await b.close()


async def test_folders_with_mail_are_synced_first_inbox_before_all(
    ms: Mailstack, store: AccountStore
) -> None:
    """An empty folder only has a state to save, which would wait for the index
    helper's write lock between two downloads: those go last, in name order."""
    c = imap(ms)
    c.create("Aardvark")  # before every other name, and empty
    c.create("Zebra")
    for n in range(2):
        c.append("Zebra", "(\\Seen)", None, sample(n).replace(b"\n", b"\r\n"))
    c.logout()
    deliver_lmtp(ms, USER, sample(9))
    b = make(ms)
    try:
        result = await sync_account(b, store)
    finally:
        await b.close()
    order = [f.folder for f in result.folders]
    empty = [f for f in order if f not in ("INBOX", "Zebra")]
    assert order == ["INBOX", "Zebra", *sorted(empty)] and "Aardvark" in empty
    assert result.fetched == 3


async def test_new_mail_is_fetched_by_uid(ms: Mailstack, store: AccountStore) -> None:
    for n in range(3):
        deliver_lmtp(ms, USER, sample(n))
    b = make(ms)
    try:
        assert (await sync_folder(b, store, "INBOX")).fetched == 3
        for n in range(3, 5):
            deliver_lmtp(ms, USER, sample(n))
        r = await sync_folder(b, store, "INBOX")
        assert r.fetched == 2
        assert sorted(u for _, u, _ in rows(store)) == [1, 2, 3, 4, 5]
    finally:
        await b.close()


# ---------------------------------------------------------------- flags both ways


@pytest.mark.parametrize("condstore", [True, False])
async def test_server_flag_change_appears_locally(
    ms: Mailstack, store: AccountStore, condstore: bool
) -> None:
    for n in range(4):
        deliver_lmtp(ms, USER, sample(n))
    b = make(ms)
    try:
        await sync_folder(b, store, "INBOX")
        if not condstore:  # the full FLAGS listing path of servers without CONDSTORE
            b._server_caps = b._server_caps - {"CONDSTORE", "QRESYNC"}
        c = imap(ms)
        c.select("INBOX")
        c.uid("STORE", "2", "+FLAGS", "(\\Seen \\Flagged)")
        c.uid("STORE", "3", "+FLAGS", "(\\Answered)")
        c.logout()
        r = await sync_folder(b, store, "INBOX")
        assert r.flag_changes == 2 and r.fetched == 0
        local = local_files(store)
        assert local["<sync-1@tui-mail.test>"][0][1] == "FS"
        assert local["<sync-2@tui-mail.test>"][0][1] == "R"
        assert local["<sync-0@tui-mail.test>"][0][1] == ""
    finally:
        await b.close()


async def test_local_flag_change_reaches_the_server_and_stays(
    ms: Mailstack, store: AccountStore
) -> None:
    for n in range(3):
        deliver_lmtp(ms, USER, sample(n))
    b = make(ms, "starttls")
    try:
        await sync_folder(b, store, "INBOX")
        ref = ref_of(store, "INBOX", "<sync-1@tui-mail.test>")
        sid = store.index.server_id(ref.id)  # type: ignore[arg-type]
        assert sid is not None and sid.uid == 2
        store.set_flags(ref, "S")
        await b.set_flags("INBOX", [sid], frozenset({Flag.SEEN}), frozenset())
        c = imap(ms)
        c.select("INBOX", readonly=True)
        _, data = c.uid("FETCH", "2", "(FLAGS)")
        c.logout()
        assert b"\\Seen" in data[0]
        r = await sync_folder(b, store, "INBOX")
        assert r.flag_changes == 0  # the server now agrees
        assert local_files(store)["<sync-1@tui-mail.test>"][0][1] == "S"
    finally:
        await b.close()


async def test_pending_local_change_wins_over_the_server(
    ms: Mailstack, store: AccountStore
) -> None:
    deliver_lmtp(ms, USER, sample(0))
    b = make(ms)
    try:
        await sync_folder(b, store, "INBOX")
        ref = ref_of(store, "INBOX", "<sync-0@tui-mail.test>")
        store.set_flags(ref, "F", pending=True)  # flagged here, not pushed yet
        c = imap(ms)
        c.select("INBOX")
        c.uid("STORE", "1", "+FLAGS", "(\\Seen)")
        c.logout()
        r = await sync_folder(b, store, "INBOX")
        assert r.flag_changes == 0
        assert local_files(store)["<sync-0@tui-mail.test>"][0][1] == "F"
    finally:
        await b.close()


# ---------------------------------------------------------------- deletions


@pytest.mark.parametrize("qresync", [True, False])
async def test_expunge_on_the_server_removes_the_local_copy(
    ms: Mailstack, store: AccountStore, qresync: bool
) -> None:
    for n in range(5):
        deliver_lmtp(ms, USER, sample(n))
    b = make(ms)
    try:
        await sync_folder(b, store, "INBOX")
        if not qresync:
            b._enabled = frozenset()
            b._server_caps = b._server_caps - {"CONDSTORE", "QRESYNC"}
        c = imap(ms)
        c.select("INBOX")
        c.uid("STORE", "2,4", "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.logout()
        r = await sync_folder(b, store, "INBOX")
        assert r.removed == 2
        assert set(local_files(store)) == set(dovecot_files(ms))
        assert sorted(u for _, u, _ in rows(store)) == [1, 3, 5]
    finally:
        await b.close()


# ---------------------------------------------------------------- UIDVALIDITY


async def test_uidvalidity_change_rematches_without_loss_or_duplicates(
    ms: Mailstack, store: AccountStore
) -> None:
    c = imap(ms)
    c.create("Work")
    for n in range(6):
        c.append("Work", "", imaplib.Time2Internaldate(time.time()), sample(n, "work"))
    c.select("Work")
    c.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
    b = make(ms)
    try:
        first = await sync_folder(b, store, "Work")
        assert first.fetched == 6
        old_validity = store.index.folder_state(USER, "Work").uidvalidity  # type: ignore[union-attr]
        # A pending local change on work-2 (UID 3 under the old UIDVALIDITY).
        ref2 = ref_of(store, "Work", "<work-2@tui-mail.test>")
        stale = store.index.server_id(ref2.id)  # type: ignore[arg-type]
        store.set_flags(ref2, "FS", pending=True)

        # The folder is rebuilt on the server: new UIDVALIDITY, other UIDs (reversed
        # order), work-5 gone, a new one added.
        c.close()
        c.delete("Work")
        while True:
            c.create("Work")
            _, data = c.select("Work")
            new_validity = int(c.response("UIDVALIDITY")[1][0])
            if new_validity != old_validity:
                break
            c.delete("Work")  # same second: try again
            time.sleep(0.3)
        for n in (4, 3, 2, 1, 0, 9):
            c.append("Work", "(\\Seen)", imaplib.Time2Internaldate(time.time()), sample(n, "work"))

        # The stale ServerId can never reach the new folder.
        with pytest.raises(ProtocolError, match="UIDVALIDITY"):
            assert stale is not None
            await b.set_flags("Work", [stale], frozenset({Flag.DELETED}), frozenset())

        r = await sync_folder(b, store, "Work")
        assert r.uidvalidity_changed and r.rematched == 5 and r.fetched == 1

        server = dovecot_files(ms, "Work")
        local = local_files(store, "Work")
        # Every server message exactly once locally, byte for byte ...
        for mid, (data, _) in server.items():
            assert [d for d, _ in local[mid]] == [data], mid
        # ... and the one the server lost is kept, with no server id (never deleted).
        assert len(local["<work-5@tui-mail.test>"]) == 1
        by_mid = {mid: (uid, v) for mid, uid, v in rows(store, "Work")}
        assert by_mid["<work-5@tui-mail.test>"] == (None, None)
        # Every UID now points at the message the server has under that UID.
        _, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        on_server = {
            MID.search(p[1]).group(1).decode(): int(re.search(rb"UID (\d+)", p[0]).group(1))  # type: ignore[union-attr]
            for p in data
            if isinstance(p, tuple)
        }
        for mid, uid in on_server.items():
            assert by_mid[mid] == (uid, new_validity)
        assert Counter(uid for uid, _ in by_mid.values() if uid) == Counter(on_server.values())
        # Server flags were taken over, except where a local change is pending.
        assert local["<work-0@tui-mail.test>"][0][1] == "S"
        assert local["<work-2@tui-mail.test>"][0][1] == "FS"
        # And the next run has nothing left to do.
        again = await sync_folder(b, store, "Work")
        assert (again.fetched, again.removed, again.rematched) == (0, 0, 0)
    finally:
        c.logout()
        await b.close()


# ---------------------------------------------------------------- folders


async def test_folders_created_renamed_deleted_on_the_server_follow(
    ms: Mailstack, store: AccountStore
) -> None:
    c = imap(ms)
    for name in ("Old", "Gone", "Busy", "Old/Child"):
        c.create(name)
    c.append("Old", "", imaplib.Time2Internaldate(time.time()), sample(1, "old"))
    c.append("Old/Child", "", imaplib.Time2Internaldate(time.time()), sample(2, "child"))
    b = make(ms)
    try:
        first = await sync_account(b, store)
        assert {"Old", "Gone", "Busy", "Old/Child"} <= set(first.created)
        # A message only we have (say, saved while offline) lives in "Busy".
        store.deliver("Busy", sample(3, "local"))

        c.rename("Old", "New")
        c.delete("Gone")
        c.delete("Busy")
        c.create("Fresh")
        r = await sync_account(b, store)
        assert ("Old", "New") in r.renamed
        assert r.removed == ["Gone"] and r.kept == ["Busy"] and "Fresh" in r.created
        names = {f.name for f in store.folders()}
        assert {"New", "New/Child", "Fresh", "Busy"} <= names
        assert not {"Old", "Old/Child", "Gone"} & names
        # The renamed folders kept their mail without downloading it again.
        by_folder = {f.folder: f for f in r.folders}
        assert by_folder["New"].fetched == 0 and by_folder["New/Child"].fetched == 0
        assert set(local_files(store, "New")) == {"<old-1@tui-mail.test>"}
        assert set(local_files(store, "New/Child")) == {"<child-2@tui-mail.test>"}
        assert set(local_files(store, "Busy")) == {"<local-3@tui-mail.test>"}
    finally:
        c.logout()
        await b.close()


async def test_only_folder(ms: Mailstack, store: AccountStore) -> None:
    deliver_lmtp(ms, USER, sample(1))
    b = make(ms)
    try:
        r = await sync_account(b, store, only_folder="inbox")
        assert [f.folder for f in r.folders] == ["INBOX"] and r.fetched == 1
        with pytest.raises(ProtocolError, match="no folder"):
            await sync_account(b, store, only_folder="Nope")
    finally:
        await b.close()


# ---------------------------------------------------------------- failures and push


async def test_cut_connection_mid_sync_then_next_run_completes(
    ms: Mailstack, store: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tui_mail.sync.imap_sync.DELIVER_BATCH", 20)
    for n in range(120):
        deliver_lmtp(ms, USER, sample(n))
    b = make(ms)
    b.batch = 10  # many FETCH commands, so the cut lands between and inside them

    def cut(folder: str, done: int, total: int, nbytes: int) -> None:
        if done == 45:
            conn = b._conn
            assert conn is not None
            conn._transport.abort()  # type: ignore[union-attr]  # as a dropped network would

    try:
        with pytest.raises(ConnectError):
            await sync_folder(b, store, "INBOX", cut)
        partial = len(local_files(store))
        assert 20 <= partial < 120  # some batches were stored before the cut
        r = await sync_folder(b, store, "INBOX")  # reconnects by itself
        assert r.fetched == 120 - partial
        local = local_files(store)
        assert all(len(v) == 1 for v in local.values())
        assert set(local) == set(dovecot_files(ms))
    finally:
        await b.close()


async def test_push_then_sync_lands_a_delivery_within_seconds(
    ms: Mailstack, store: AccountStore
) -> None:
    b = make(ms)
    try:
        await sync_folder(b, store, "INBOX")
        assert await b.wait_for_push(0.2) is False
        start = time.monotonic()

        async def watch() -> None:
            while not await b.wait_for_push(10):
                pass
            await sync_folder(b, store, "INBOX")

        task = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        await asyncio.to_thread(deliver_lmtp, ms, USER, sample(77))
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - start < 5
        assert set(local_files(store)) == {"<sync-77@tui-mail.test>"}
    finally:
        await b.close()


async def test_stored_server_ids_are_usable(ms: Mailstack, store: AccountStore) -> None:
    deliver_lmtp(ms, USER, sample(1))
    b = make(ms)
    try:
        await sync_folder(b, store, "INBOX")
        ref = ref_of(store, "INBOX", "<sync-1@tui-mail.test>")
        sid = store.index.server_id(ref.id)  # type: ignore[arg-type]
        state = store.index.folder_state(USER, "INBOX")
        assert state is not None and sid == ServerId(
            uid=1, uidvalidity=state.uidvalidity, modseq=sid.modseq
        )
        await b.remove_from_server("INBOX", [sid])
        r = await sync_folder(b, store, "INBOX")
        assert r.removed == 1 and local_files(store) == {}
    finally:
        await b.close()


# ---------------------------------------------------------------- bulk index helper


async def test_download_through_the_index_helper_then_a_cut_and_a_rerun(
    ms: Mailstack, store: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large download indexes in store/bulk.py's helper process (here forced from one
    message on, in small batches): the same files and rows as in-process, one helper
    for the whole run, and a cut mid-download leaves rows only for durable files."""
    from tui_mail.store import account_store, bulk

    monkeypatch.setattr(account_store, "BULK_HELPER_MIN", 1)
    monkeypatch.setattr("tui_mail.sync.imap_sync.DELIVER_BATCH", 7)
    started: list[int] = []

    class Counted(bulk.IndexHelper):
        def __init__(self, path: Path) -> None:
            super().__init__(path)
            started.append(self.pid)

    monkeypatch.setattr(account_store, "IndexHelper", Counted)
    for n in range(60):
        deliver_lmtp(ms, USER, sample(n))
    c = imap(ms)
    c.create("Bulk")
    for n in range(60, 90):
        c.append("Bulk", "(\\Seen)", None, sample(n).replace(b"\n", b"\r\n"))
    c.logout()

    b = make(ms)
    b.batch = 10

    def cut(folder: str, done: int, total: int, nbytes: int) -> None:
        if folder == "INBOX" and done == 33:
            conn = b._conn
            assert conn is not None
            conn._transport.abort()  # type: ignore[union-attr]  # as a dropped network would

    try:
        with pytest.raises(ConnectError):
            await sync_account(b, store, cut)
        assert store.bulk_helper is None  # stopped with the run
        partial = local_files(store)
        assert 7 <= len(partial) < 60
        # Every row names a file on disk; the last batches' files may still lack rows
        # (the next run adopts them), but never the other way round.
        on_disk = {mid for mid in partial}
        assert {mid for mid, _, _ in rows(store)} <= on_disk

        result = await sync_account(b, store)
        assert result.fetched + len(partial) >= 90 and not result.errors
        for folder in ("INBOX", "Bulk"):
            server = dovecot_files(ms, folder)
            local = local_files(store, folder)
            assert set(local) == set(server), folder
            for mid, (data, letters) in server.items():
                assert local[mid] == [(data, letters)], mid  # one copy, same bytes and flags
            uids = sorted(u for _, u, _ in rows(store, folder))
            assert uids == list(range(1, len(server) + 1)), folder
        assert len(started) == 2  # one helper per run, shared by both folders
    finally:
        await b.close()


@pytest.mark.parametrize("bound", ["count", "bytes"])
async def test_written_batches_wait_for_their_rows_within_bounds(
    ms: Mailstack, store: AccountStore, monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    """A slow indexer falls behind the download by at most INDEX_QUEUE batches, or
    INDEX_QUEUE_BYTES of messages, which it holds until their rows are in; and it
    does fall that far behind instead of stopping the download sooner."""
    from tui_mail.sync import imap_sync

    monkeypatch.setattr(imap_sync, "DELIVER_BATCH", 5)
    if bound == "count":
        monkeypatch.setattr(imap_sync, "INDEX_QUEUE", 3)
    else:
        monkeypatch.setattr(imap_sync, "INDEX_QUEUE", 100)
        monkeypatch.setattr(imap_sync, "INDEX_QUEUE_BYTES", 10_000)  # about three batches
    for n in range(60):  # the same size each: batches of five are ~3 KB
        raw = f"Subject: q {n:02d}\nMessage-ID: <q{n:02d}@t>\n\n{'x' * 560}\n"
        deliver_lmtp(ms, USER, raw.encode())
    lock = threading.Lock()
    behind: list[int] = []  # bytes of each batch written and not yet indexed
    written: list[int] = []  # bytes of every batch
    peaks: list[tuple[int, int]] = []  # (batches, bytes) behind, after each write
    real_write, real_send, real_rows = store.write_files, store.send_rows, store.rows_of

    def write_files(folder: str, messages: list) -> list:  # type: ignore[type-arg]
        files = real_write(folder, messages)
        with lock:
            written.append(sum(len(raw) for raw, _, _ in messages))
            behind.append(written[-1])
            peaks.append((len(behind), sum(behind)))
        return files

    def send_rows(folder: str, written: list) -> object:  # type: ignore[type-arg]
        time.sleep(0.05)  # slower than the download (no helper: the rows go in here)
        return real_send(folder, written)

    def rows_of(sent: object) -> list[MessageRef]:
        refs = real_rows(sent)  # type: ignore[arg-type]
        with lock:
            behind.pop(0)  # committed, in order
        return refs

    monkeypatch.setattr(store, "write_files", write_files)
    monkeypatch.setattr(store, "send_rows", send_rows)
    monkeypatch.setattr(store, "rows_of", rows_of)
    b = make(ms)
    try:
        r = await sync_folder(b, store, "INBOX")
    finally:
        await b.close()
    assert r.fetched == 60 and len(rows(store, "INBOX")) == 60
    # A batch is counted as soon as it is written, before the download waits for
    # the oldest one's rows: so one more than the queue holds, at the peak.
    if bound == "count":
        assert max(n for n, _ in peaks) == 3 + 1
    else:
        batch = max(written)  # the last one may be smaller
        most = max(size for _, size in peaks)
        assert 10_000 - batch < most <= 10_000 + batch  # the bound, give or take a batch


@pytest.mark.parametrize("fail_after", [0.0, 0.5])
async def test_state_is_saved_after_the_rows_while_the_next_folder_downloads(
    ms: Mailstack, store: AccountStore, monkeypatch: pytest.MonkeyPatch, fail_after: float
) -> None:
    """sync_account saves a folder's last rows and its state while the next folder is
    selected and fetched: each state is saved only once every row of the folder is
    committed, the counts come out whole, and a last batch that fails to index leaves
    that folder's state unsaved (the rerun completes it, no copy twice).

    `fail_after`: the failing batch takes that long first, so the failure is seen
    after the next folder finished downloading, with its own last rows pending
    (they take twice as long): the run must wait for them, not leave them running."""
    from tui_mail.store import account_store

    monkeypatch.setattr(account_store, "BULK_HELPER_MIN", 1)
    monkeypatch.setattr("tui_mail.sync.imap_sync.DELIVER_BATCH", 7)
    for n in range(40):
        deliver_lmtp(ms, USER, sample(n))
    c = imap(ms)
    sizes = {"INBOX": 40, "Bulk": 25, "More": 18}
    for folder in ("Bulk", "More"):
        c.create(folder)
        for n in range(sizes[folder]):
            raw = sample(1000 * len(folder) + n).replace(b"\n", b"\r\n")
            c.append(folder, "(\\Seen)", None, raw)
    c.logout()

    index = store.index
    real_save = index.set_folder_state
    at_save: dict[str, list[int]] = {}

    def save(account: str, folder: str, **kw: object) -> None:
        if kw.get("uidvalidity") is not None:  # a SaveState, not a role
            on_disk = {f.key for f in store.maildir.scan(folder)}
            keys = [
                r[0]
                for r in index.execute_read(
                    "SELECT key FROM messages WHERE account = ? AND folder = ?", (USER, folder)
                )
            ]
            assert set(keys) <= on_disk, folder  # rows only for durable files
            at_save.setdefault(folder, []).append(len(keys))
        real_save(account, folder, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(index, "set_folder_state", save)
    real_send = store.send_rows
    failed: list[str] = []

    def send_rows(folder: str, written: list) -> object:  # type: ignore[type-arg]
        if folder == "Bulk" and len(written) < 7 and not failed:  # its last batch, once
            failed.append(folder)
            time.sleep(fail_after)  # in the indexing thread
            raise OSError("disk full")
        if folder == "More" and len(written) < 7:
            time.sleep(2 * fail_after)  # the next folder's last rows: still pending then
        return real_send(folder, written)

    monkeypatch.setattr(store, "send_rows", send_rows)
    b = make(ms)
    b.batch = 10
    try:
        with pytest.raises(OSError, match="disk full"):
            await sync_account(b, store)
        # Nothing of the run goes on behind the error (the next folder's last rows).
        assert asyncio.all_tasks() == {asyncio.current_task()}
        states = {s.name: s for s in index.folder_states(USER)}
        assert at_save.get("INBOX") == [40]  # every row was in before the state
        assert states["INBOX"].uidvalidity is not None
        assert "Bulk" not in at_save and states["Bulk"].uidvalidity is None
        assert store.bulk_helper is None  # stopped with the run
        # More may have been synced whole before Bulk's failure was seen; never half.
        more = states.get("More")
        more_done = more is not None and more.uidvalidity is not None
        assert len(rows(store, "More")) == (18 if more_done else 0)
        kept = len(rows(store, "Bulk"))
        assert 0 < kept < 25  # the batches before the failed one

        # The failed batch's files are durable but have no row: a rescan (the account
        # worker's start-up check) gives them rows without a UID, which the rerun
        # matches by Message-ID instead of downloading them again.
        store.rescan("Bulk")
        at_save.clear()
        result = await sync_account(b, store)
        assert not result.errors
        assert at_save["Bulk"] == [25]
        assert at_save.get("More") == (None if more_done else [18])
        fetched = {f.folder: f.fetched for f in result.folders}
        # Only what has no row yet is downloaded again (the failed batch's files are
        # adopted or replaced, never kept twice: checked below).
        assert fetched["INBOX"] == 0 and fetched["Bulk"] <= 25 - kept
        assert fetched["More"] == (0 if more_done else 18)
        for folder, n in sizes.items():
            server = dovecot_files(ms, folder)
            local = local_files(store, folder)
            assert set(local) == set(server) and len(server) == n, folder
            for mid, (data, letters) in server.items():
                assert local[mid] == [(data, letters)], mid  # one copy, same bytes and flags
            uids = sorted(u for _, u, _ in rows(store, folder))
            assert uids == list(range(1, n + 1)), folder
    finally:
        await b.close()
