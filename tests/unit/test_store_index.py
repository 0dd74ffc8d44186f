"""The SQLite index, the journal and the AccountStore that keeps both in step with disk."""

from __future__ import annotations

import email.utils
import mailbox
import os
import random
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec.structs
import pytest

from tui_mail.core.errors import StoreError
from tui_mail.core.models import Address, FolderRole, MessageRef, ServerId
from tui_mail.store.account_store import AccountStore, RescanResult, role_for_name
from tui_mail.store.index import SCHEMA_VERSION, MailIndex
from tui_mail.store.journal import Journal
from tui_mail.store.maildir import StoredFile
from tui_mail.store.parse import ParsedHeaders


def _raw(
    n: int, *, date: int | None = None, mid: str = "", parent: str = "", refs: str = ""
) -> bytes:
    lines = [
        f"From: Sender {n % 7} <s{n % 7}@example.org>",
        f"Subject: message {n}",
        f"Message-ID: {mid or f'<m{n}@example.org>'}",
    ]
    if date is not None:
        lines.append(f"Date: {email.utils.formatdate(date)}")
    if parent:
        lines.append(f"In-Reply-To: {parent}")
    if refs:
        lines.append(f"References: {refs}")
    return ("\n".join(lines) + f"\n\nbody of message number{n}\n").encode()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[MailIndex]:
    idx = MailIndex.open(tmp_path / "db" / "index.sqlite3")
    yield idx
    idx.close()


@pytest.fixture
def store(tmp_path: Path, index: MailIndex) -> AccountStore:
    return AccountStore("acct", tmp_path / "sandbox" / "mail", index)


def _fake(n: int, rng: random.Random) -> tuple[StoredFile, ParsedHeaders, None]:
    flags = rng.choice(["", "S", "FS", "RS"])
    stored = StoredFile("F", f"k{n:04d}", "cur", flags, Path("/x"), rng.randrange(10), 0.0)
    parsed = ParsedHeaders(
        date=rng.randrange(10),
        sender=Address(rng.choice(["Ann", "bob", "", "Cy"]), f"{rng.randrange(3)}@x"),
        to=(),
        cc=(),
        subject=rng.choice(["Re: b", "a", "B", "re: RE: c", ""]),
        message_id="",
        in_reply_to="",
        references=(),
        has_attachment=False,
        list_id="",
        body_text="",
    )
    return stored, parsed, None


def test_paging_sorting_and_counts(index: MailIndex) -> None:
    rng = random.Random(3)
    items = [_fake(n, rng) for n in range(57)]
    ids = index.upsert_many("a", "F", items)
    row = {i: item for i, item in zip(ids, items, strict=True)}

    def key(sort: str, i: int) -> object:
        stored, parsed, _ = row[i]
        return {
            "date": parsed.date,
            "size": stored.size,
            "from": (parsed.sender.name or parsed.sender.addr).casefold(),
            "subject": parsed.subject.lower().replace("re: ", "").strip(),
        }[sort], i

    for sort in ("date", "from", "subject", "size"):
        for desc in (True, False):
            expected = sorted(ids, key=lambda i, s=sort: key(s, i), reverse=desc)
            for offset in range(0, 60, 7):
                for limit in (1, 10, 25):
                    page = index.page("a", "F", offset, limit, sort, desc)
                    assert [e.ref.id for e in page] == expected[offset : offset + limit]
    with pytest.raises(ValueError):
        index.page("a", "F", 0, 10, sort="color")

    unread = sum(1 for s, _, _ in items if "S" not in s.flags)
    assert index.count("a", "F") == 57
    assert index.count("a", "F", unread_only=True) == unread
    assert index.folder_counts("a") == {"F": (57, unread)}
    first = index.page("a", "F", 0, 1)[0]
    assert index.envelope(first.ref.id) == first
    assert index.path_of(first.ref.id) == ("a", "F", first.ref.key)
    assert index.envelope(10_000) is None and index.path_of(10_000) is None


def _index_names(index: MailIndex) -> set[str]:
    return {r[0] for r in index.execute_read("SELECT name FROM sqlite_master WHERE type = 'index'")}


def _page_plan(index: MailIndex, column: str) -> str:
    rows = index.execute_read(
        "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE account = 'a' AND folder = 'F'"
        f" ORDER BY {column} DESC, id DESC LIMIT 10 OFFSET 0"
    )
    return " | ".join(str(r[-1]) for r in rows)


def test_a_sort_order_gets_its_index_when_first_used(index: MailIndex) -> None:
    """Only the date order's index is made with the schema (each one slows every
    insert); the others are made at their first page, then walked like it."""
    rng = random.Random(5)
    index.upsert_many("a", "F", [_fake(n, rng) for n in range(20)])
    lazy = {"messages_by_from", "messages_by_subject", "messages_by_size"}
    assert "messages_by_date" in _index_names(index)
    assert not lazy & _index_names(index)
    assert "TEMP B-TREE" in _page_plan(index, "size")  # what every page would cost

    for sort, name, column in (
        ("from", "messages_by_from", "sort_from"),
        ("subject", "messages_by_subject", "sort_subject"),
        ("size", "messages_by_size", "size"),
    ):
        index.page("a", "F", 0, 5, sort)
        assert name in _index_names(index)
        plan = _page_plan(index, column)
        assert f"INDEX {name}" in plan and "TEMP B-TREE" not in plan, plan
    assert lazy <= _index_names(index)

    # Kept up to date from then on, like any other index.
    more = index.upsert_many("a", "F", [_fake(n, rng) for n in range(20, 30)])
    by_size = [e.ref.id for e in index.page("a", "F", 0, 30, "size", False)]
    assert set(more) <= set(by_size) and len(by_size) == 30
    assert index.execute_read("PRAGMA integrity_check") == [("ok",)]


def test_a_sort_index_that_cannot_be_made_still_gives_the_page_at_once(
    index: MailIndex, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer holding the index (a sync in another process): the page comes
    after INDEX_WAIT, not busy_timeout's 5 s, sorted without the index; the
    next pages do not try again until SORT_INDEX_RETRY has passed."""
    rng = random.Random(6)
    items = [_fake(n, rng) for n in range(12)]
    ids = index.upsert_many("a", "F", items)
    expected = [i for _, i in sorted(zip((s.size for s, _, _ in items), ids, strict=True))]
    other = sqlite3.connect(index.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        page = index.page("a", "F", 0, 12, "size", False)
        assert time.monotonic() - started < 2.0
        assert [e.ref.id for e in page] == expected
        assert "messages_by_size" not in _index_names(index)
        assert "sorting by size without its index" in caplog.text
        other.execute("ROLLBACK")
        caplog.clear()
        index.page("a", "F", 0, 12, "size", False)  # within the retry time: no try
        assert "messages_by_size" not in _index_names(index) and not caplog.text
    finally:
        other.close()
    monkeypatch.setattr(time, "monotonic", lambda: started + 3600.0)
    assert [e.ref.id for e in index.page("a", "F", 0, 12, "size", False)] == expected
    assert "messages_by_size" in _index_names(index)
    # The connection's own wait for other writers is back to busy_timeout's.
    assert index.execute_read("PRAGMA busy_timeout") == [(5000,)]


def test_a_sort_index_that_exists_takes_no_write_lock(
    index: MailIndex, caplog: pytest.LogCaptureFixture
) -> None:
    """An index made by another process, or by a version that made them with the
    schema, is only noted: no write, so no wait while a sync holds the lock."""
    rng = random.Random(7)
    index.upsert_many("a", "F", [_fake(n, rng) for n in range(12)])
    other = sqlite3.connect(index.path, isolation_level=None)
    try:
        other.execute("CREATE INDEX messages_by_from ON messages(account, folder, sort_from)")
        other.execute("BEGIN IMMEDIATE")
        index.execute_read("PRAGMA query_only = 1")  # no write could succeed either
        index.page("a", "F", 0, 5, "from")
        assert "sort_from" in index._sort_indexes and not caplog.text
        other.execute("ROLLBACK")
    finally:
        other.close()
        index.execute_read("PRAGMA query_only = 0")


def test_a_sort_index_is_not_made_inside_a_transaction_of_the_caller(index: MailIndex) -> None:
    """Its rollback would take the index along after it was noted as made."""
    rng = random.Random(8)
    index.upsert_many("a", "F", [_fake(n, rng) for n in range(12)])
    with pytest.raises(RuntimeError), index.transaction():
        index.page("a", "F", 0, 5, "subject")
        raise RuntimeError("the caller's transaction fails")
    assert "messages_by_subject" not in _index_names(index)
    index.page("a", "F", 0, 5, "subject")
    assert "messages_by_subject" in _index_names(index)


def test_counts_follow_every_change(store: AccountStore, index: MailIndex) -> None:
    a = store.deliver("INBOX", _raw(1))
    b = store.deliver("INBOX", _raw(2), "S")
    assert index.folder_counts("acct") == {"INBOX": (2, 1)}
    store.set_flags(a, "S", pending=True)
    assert index.folder_counts("acct") == {"INBOX": (2, 0)}
    assert index.envelope(a.id).pending is True
    store.set_flags(b, "F")
    moved = store.move(b, "Archive")
    assert moved.id == b.id and moved.folder == "Archive"
    assert index.folder_counts("acct") == {"INBOX": (1, 0), "Archive": (1, 1)}
    store.remove(a)
    assert index.folder_counts("acct") == {"Archive": (1, 1)}
    assert index.unread_total("acct") == 1
    folders = {f.name: f for f in store.folders()}
    assert (folders["Archive"].role, folders["Archive"].unread) == (FolderRole.ARCHIVE, 1)
    assert folders["INBOX"].total == 0
    assert index.keys_in_folder("acct", "Archive")[moved.key] == (moved.id, "F", "cur")


def test_roles_by_name() -> None:
    assert role_for_name("INBOX") is FolderRole.INBOX
    assert role_for_name("Sent Items") is FolderRole.SENT
    assert role_for_name("[Gmail]/Spam") is FolderRole.JUNK
    assert role_for_name("INBOX/Trash") is FolderRole.TRASH
    assert role_for_name("Projects/Archive") is FolderRole.NONE


def test_threads_chain_and_reply_before_parent(store: AccountStore, index: MailIndex) -> None:
    root = store.deliver("INBOX", _raw(1, mid="<a@x>"))
    reply = store.deliver("INBOX", _raw(2, mid="<b@x>", parent="<a@x>", refs="<a@x>"))
    deeper = store.deliver("Sent", _raw(3, mid="<c@x>", parent="<b@x>", refs="<a@x> <b@x>"))
    other = store.deliver("INBOX", _raw(4, mid="<z@x>"))
    thread = index.envelope(root.id).thread_id
    assert thread == root.id
    assert index.envelope(reply.id).thread_id == thread
    assert index.envelope(deeper.id).thread_id == thread
    assert index.envelope(other.id).thread_id == other.id

    # The reply comes first; its parent then adopts the reply's thread.
    late_reply = store.deliver("INBOX", _raw(5, mid="<q@x>", parent="<p@x>", refs="<p@x>"))
    sibling = store.deliver("INBOX", _raw(6, mid="<r@x>", parent="<p@x>"))  # same missing parent
    parent = store.deliver("INBOX", _raw(7, mid="<p@x>"))
    t = index.envelope(late_reply.id).thread_id
    assert index.envelope(parent.id).thread_id == t
    assert index.envelope(sibling.id).thread_id == t
    assert sorted(index.thread(t)) == sorted([late_reply.id, sibling.id, parent.id])

    # A message naming both threads joins them under the older id.
    bridge = store.deliver("INBOX", _raw(8, mid="<y@x>", refs="<a@x> <p@x>"))
    assert index.envelope(bridge.id).thread_id == thread
    assert index.envelope(parent.id).thread_id == thread


def test_batch_threads_match_one_by_one(tmp_path: Path) -> None:
    rng = random.Random(11)
    msgs = []
    for n in range(80):
        parent = f"<m{rng.randrange(n + 20)}@x>" if rng.random() < 0.6 else ""
        msgs.append(_raw(n, mid=f"<m{n}@x>", parent=parent))
    rng.shuffle(msgs)
    one = AccountStore("a", tmp_path / "one", MailIndex.open(tmp_path / "one.db"))
    for raw in msgs:
        one.deliver("INBOX", raw)
    many = AccountStore("a", tmp_path / "many", MailIndex.open(tmp_path / "many.db"))
    many.deliver_many("INBOX", [(raw, "", None) for raw in msgs])

    def groups(s: AccountStore) -> set[frozenset[str]]:
        by_thread: dict[int | None, set[str]] = {}
        for e in s.index.page("a", "INBOX", 0, 1000):
            by_thread.setdefault(e.thread_id, set()).add(e.message_id)
        return {frozenset(g) for g in by_thread.values()}

    assert groups(one) == groups(many)
    one.index.close()
    many.index.close()


def test_server_ids_of_a_mixed_batch_are_stored_as_given(index: MailIndex) -> None:
    # IMAP with and without MODSEQ, POP3, no server at all: a batch binds only the
    # server ids some row of it has, and every row must still keep its own.
    servers = [None, ServerId(5, 9), ServerId(6, 9, 77), ServerId(uidl="u1"), ServerId(modseq=3)]
    rng = random.Random(3)
    expected: dict[int, tuple[object, ...]] = {}
    n = 0
    for _ in range(40):
        mix = rng.sample(servers, rng.randint(1, 3))
        batch = []
        for _ in range(rng.randint(1, 6)):
            n += 1
            stored, parsed, _ = _fake(n, rng)
            batch.append((stored, parsed, rng.choice(mix)))
        for msg_id, (_, _, server) in zip(index.upsert_many("a", "F", batch), batch, strict=True):
            sid = server or ServerId()
            expected[msg_id] = (sid.uid, sid.uidvalidity, sid.modseq, sid.uidl)
    rows = index.execute_read("SELECT id, uid, uidvalidity, modseq, uidl FROM messages")
    assert {r[0]: tuple(r[1:]) for r in rows} == expected


def test_the_same_key_twice_in_one_batch_keeps_the_last(index: MailIndex) -> None:
    rng = random.Random(4)
    (a, pa, _), (b, pb, _) = _fake(1, rng), _fake(2, rng)
    with_refs = msgspec.structs.replace(pa, in_reply_to="<p@x>", body_text=None)
    a_read, b = msgspec.structs.replace(a, flags="S"), msgspec.structs.replace(b, flags="")
    ids = index.upsert_many("a", "F", [(a, with_refs, None), (b, pb, None), (a_read, pa, None)])
    assert ids[0] == ids[2] != ids[1]
    assert index.count("a", "F") == 2 and index.count("a", "F", unread_only=True) == 1
    assert index.fts_pending_count() == 0  # the last copy came with its body
    assert index.execute_read("SELECT count(*) FROM msgrefs")[0][0] == 0
    ids = index.upsert_many("a", "G", [(a, pa, None), (a, with_refs, None)])
    assert ids[0] == ids[1] and index.fts_pending_count() == 1
    assert index.execute_read("SELECT ref, msg FROM msgrefs") == [("<p@x>", ids[0])]


def test_new_files_skip_the_lookup_and_a_key_that_has_a_row_fails_the_batch(
    tmp_path: Path,
) -> None:
    """upsert_many(new_files=True), the bulk helper's: the same rows as the lookup
    gives for fresh keys (a key twice in the batch still ends as one row); a key
    already indexed fails the whole batch, which leaves nothing written."""
    rng = random.Random(5)
    batch = [_fake(n, rng) for n in range(30)]
    batch.append((msgspec.structs.replace(batch[3][0], flags="S"), batch[3][1], None))
    tables = []
    for new_files in (False, True):
        with MailIndex(tmp_path / f"{new_files}.sqlite3") as idx:
            assert len(idx.upsert_many("a", "F", batch, new_files=new_files)) == 31
            tables.append(idx.execute_read("SELECT * FROM messages ORDER BY id"))
            assert idx.count("a", "F") == 30
            more = [_fake(n, rng) for n in range(100, 105)]
            with pytest.raises(StoreError):
                idx.upsert_many("a", "F", [*more, batch[7]], new_files=True)
            assert idx.count("a", "F") == 30  # none of the five new ones either
    assert tables[0] == tables[1]


def test_rescan_sees_other_tools(store: AccountStore, index: MailIndex) -> None:
    ours = store.deliver("INBOX", _raw(1))
    md = mailbox.Maildir(store.root, factory=None, create=False)
    theirs = md.add(_raw(2))
    assert store.rescan() == RescanResult(added=1, removed=0, changed=0)
    assert index.count("acct", "INBOX") == 2
    assert store.rescan("INBOX").added == 0

    # Flags changed by renaming (what mutt does), new/ -> cur/ included.
    path = store.locate(ours).path
    os.rename(path, store.root / "cur" / f"{ours.key}:2,FS")
    result = store.rescan("INBOX")
    assert (result.added, result.removed, result.changed) == (0, 0, 1)
    env = index.envelope(ours.id)
    assert env.flags.to_maildir() == "FS"
    assert index.count("acct", "INBOX", unread_only=True) == 1

    md.remove(theirs)
    assert store.rescan("INBOX").removed == 1
    assert index.count("acct", "INBOX") == 1

    # A file name that is not UTF-8 is not ours to index, and does not break the scan.
    os.close(os.open(os.fsencode(store.root / "cur") + b"/\xff\xfe:2,S", os.O_CREAT | os.O_WRONLY))
    assert store.rescan("INBOX") == RescanResult()

    # A folder removed behind our back loses its rows.
    store.deliver("Gone", _raw(3))
    shutil.rmtree(store.maildir.folder_path("Gone"))
    assert store.rescan().removed == 1
    assert "Gone" not in index.folder_counts("acct")


def test_corrupt_index_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite3"
    index = MailIndex.open(db)
    store = AccountStore("acct", tmp_path / "mail", index)
    refs = [store.deliver("INBOX", _raw(n), "S" if n % 2 else "") for n in range(5)]
    store.deliver("Lists/x", _raw(9))
    index.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{db}{suffix}"):
            os.unlink(f"{db}{suffix}")
    db.write_bytes(os.urandom(4096))

    fresh = MailIndex.open(db)
    assert fresh.was_reset is True
    assert list(tmp_path.glob("index.sqlite3.corrupt-*"))
    assert fresh.folder_counts("acct") == {}  # empty, and nobody concludes "mail deleted"
    store = AccountStore("acct", tmp_path / "mail", fresh)
    assert store.rescan().added == 6
    assert fresh.folder_counts("acct") == {"INBOX": (5, 3), "Lists/x": (1, 1)}
    assert {e.ref.key for e in fresh.page("acct", "INBOX", 0, 10)} == {r.key for r in refs}
    fresh.close()


def test_wrong_schema_version_resets(tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite3"
    MailIndex.open(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.close()
    again = MailIndex.open(db)
    assert again.was_reset is True
    again.close()
    assert MailIndex.open(db).was_reset is False


def test_search_and_message_ids(store: AccountStore, index: MailIndex) -> None:
    a = store.deliver("INBOX", _raw(1, mid="<same@x>"))
    b = store.deliver("Sent", _raw(2, mid="<same@x>"))
    assert index.search("acct", "number1") == [a.id]
    assert index.search("acct", 'message "quoted') == []
    assert [r.id for r in index.find_by_message_id("acct", "same@x")] == [a.id, b.id]
    store.remove(a)
    assert index.search("acct", "number1") == []


def test_rebuild_and_server_ids(store: AccountStore, index: MailIndex) -> None:
    ref = store.deliver("INBOX", _raw(1), "S", server=ServerId(uid=7, uidvalidity=3))
    assert index.uids_in_folder("acct", "INBOX") == {7: (ref.id, ref.key, "S")}
    index.set_folder_state("acct", "INBOX", uidvalidity=3, highestmodseq=10)
    assert index.folder_state("acct", "INBOX").highestmodseq == 10
    result = store.rebuild()
    assert result.added == 1 and index.count("acct", "INBOX") == 1
    assert index.folder_state("acct", "INBOX") is None  # sync state goes with the rows


def test_journal(index: MailIndex) -> None:
    journal = Journal(index)
    first = journal.add("acct", "set_flags", {"key": "k", "add": ["S"]})
    second = journal.add("acct", "move", {"key": "k", "to": "Archive"})
    journal.add("other", "send", {})
    assert [e.id for e in journal.pending("acct")] == [first, second]
    assert journal.pending("acct")[0].payload == {"add": ["S"], "key": "k"}
    journal.mark_failed(first, "offline", retry_at=2e9)
    entry = journal.get(first)
    assert (entry.state, entry.attempts, entry.error) == ("failed", 1, "offline")
    assert [e.id for e in journal.pending("acct", due_before=1e9)] == [second]
    journal.mark_done(second)
    assert journal.count_pending("acct") == 1
    with index.transaction():
        journal.add("acct", "delete", {"folder": "INBOX", "key": "k"})
    assert journal.count_pending("acct") == 2


# --- bodies indexed later: bulk stores leave full-text search to fill_fts -----------


def test_bulk_delivery_leaves_bodies_for_fill_fts(store: AccountStore, index: MailIndex) -> None:
    refs = store.deliver_many("INBOX", [(_raw(n), "", None) for n in range(5)])
    single = store.deliver("INBOX", _raw(7))  # one message: indexed in full at once
    assert index.fts_pending_count("acct") == 5
    assert index.fts_pending_count() == 5
    assert index.count("acct", "INBOX") == 6  # every row is there for the list
    # Headers of pending messages are searchable already, bodies not yet.
    assert index.search("acct", "message 3") == [refs[3].id]
    assert index.search("acct", "number3") == []
    assert index.search("acct", "number7") == [single.id]

    assert store.fill_fts(limit=2) == 3  # newest first, the rest still waiting
    assert store.fill_fts() == 0
    assert store.fill_fts() == 0
    assert index.fts_pending_count("acct") == 0
    assert index.search("acct", "number3") == [refs[3].id]
    assert index.search("acct", "message 3") == [refs[3].id]
    assert index.search("acct", "Sender 3") == [refs[3].id]  # from the row's columns
    assert index.search("acct", "s3@example.org number3") == [refs[3].id]


def test_fill_fts_follows_changes_and_survives_missing_files(
    store: AccountStore, index: MailIndex
) -> None:
    a, b, c, d = store.deliver_many("INBOX", [(_raw(n), "", None) for n in range(4)])
    store.set_flags(a, "S")  # renamed into cur/: found under its new name
    moved = store.move(b, "Archive")  # same row, new folder
    store.remove(c)  # gone: its backlog entry goes with it
    os.unlink(store.locate(d).path)  # gone behind our back: headers only, no loop
    assert index.fts_pending_count("acct") == 3
    assert store.fill_fts() == 0
    assert index.search("acct", "number0") == [a.id]
    assert index.search("acct", "number1") == [moved.id]
    assert index.search("acct", "message 3") == [d.id]
    assert index.search("acct", "number3") == []


def test_fill_fts_skips_rows_changed_meanwhile(store: AccountStore, index: MailIndex) -> None:
    (a,) = store.deliver_many("INBOX", [(_raw(1), "", None)])
    backlog = index.fts_backlog("acct", 10)
    store.move(a, "Other")  # between reading the backlog and writing the text
    assert index.fill_fts([(i, f, k, (False, "stale")) for i, f, k, _, _ in backlog]) == 0
    assert index.fts_pending_count("acct") == 1
    assert store.fill_fts() == 0
    assert index.search("acct", "number1") == [a.id]
    assert index.search("acct", "stale") == []


def test_fill_fts_settles_has_attachment(store: AccountStore, index: MailIndex) -> None:
    # parse_headers' quick MIME walk could differ from the full parser on odd mail:
    # the full parse of the bodies pass has the last word.
    raw = (
        b"From: a@b\nSubject: pdf\nContent-Type: multipart/mixed; boundary=X\n\n"
        b"--X\nContent-Type: text/plain\n\nsee attached\n"
        b"--X\nContent-Type: application/pdf; name=a.pdf\n\n%PDF\n--X--\n"
    )
    (ref,) = store.deliver_many("INBOX", [(raw, "", None)])
    assert index.envelope(ref.id).has_attachment is True
    with index.transaction() as conn:  # as if the quick walk had guessed wrong
        conn.execute("UPDATE messages SET has_attachment = 0 WHERE id = ?", (ref.id,))
    assert store.fill_fts() == 0
    assert index.envelope(ref.id).has_attachment is True
    assert index.search("acct", "attached") == [ref.id]


def test_rescan_and_rebuild_leave_bodies_for_fill_fts(store: AccountStore) -> None:
    for n in range(3):
        store.deliver("INBOX", _raw(n))
    index = store.index
    assert index.fts_pending_count("acct") == 0
    store.rebuild()
    assert index.fts_pending_count("acct") == 3
    assert store.fill_fts() == 0
    assert len(index.search("acct", "body")) == 3
    store.index.clear_account("acct")
    assert index.fts_pending_count() == 0


def _closed_index_with_one_message(tmp_path: Path) -> tuple[Path, MessageRef]:
    """An index file holding message 1 of account "acct", closed: to age by hand."""
    db = tmp_path / "index.sqlite3"
    index = MailIndex.open(db)
    ref = AccountStore("acct", tmp_path / "mail", index).deliver("INBOX", _raw(1))
    index.close()
    return db, ref


def test_version_1_index_is_upgraded_in_place(tmp_path: Path) -> None:
    db, ref = _closed_index_with_one_message(tmp_path)
    with sqlite3.connect(db) as conn:  # what a version 1 index looked like
        conn.execute("DROP TABLE fts_pending")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()
    again = MailIndex.open(db)
    assert again.was_reset is False
    assert again.search("acct", "number1") == [ref.id]
    store = AccountStore("acct", tmp_path / "mail", again)
    store.deliver_many("INBOX", [(_raw(2), "", None)])
    assert again.fts_pending_count("acct") == 1
    assert again.execute_read("SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    again.close()


def test_an_index_without_the_threading_indexes_gets_them_in_place(tmp_path: Path) -> None:
    db, ref = _closed_index_with_one_message(tmp_path)
    with sqlite3.connect(db) as conn:  # what the same version looked like before it
        conn.execute("DROP INDEX messages_by_subject_date")
        conn.execute("DROP INDEX messages_by_refless_subject")
    conn.close()
    again = MailIndex.open(db)
    try:
        assert again.was_reset is False
        assert again.search("acct", "number1") == [ref.id]  # the rows were kept
        names = {r[0] for r in again.execute_read("SELECT name FROM sqlite_master")}
        assert {"messages_by_subject_date", "messages_by_refless_subject"} <= names
        assert again.execute_read("SELECT value FROM meta WHERE key = 'schema_version'") == [
            (str(SCHEMA_VERSION),)
        ]
    finally:
        again.close()


def test_fill_fts_reads_a_body_up_to_the_parse_limit_and_empty_files(tmp_path: Path) -> None:
    """The full-text pass reads each file by its size, never past MAX_PARSE_BYTES."""
    from tui_mail.store.parse import MAX_PARSE_BYTES

    index = MailIndex.open(tmp_path / "index.sqlite3")
    try:
        store = AccountStore("acct", tmp_path / "mail", index)
        head = b"Subject: big\r\nMessage-ID: <big@example.org>\r\n\r\nnearthestart\r\n"
        filler = b"x" * 70 + b"\r\n"
        body = filler * (MAX_PARSE_BYTES // len(filler) + 10) + b"pastthelimit\r\n"
        big, small = store.deliver_many("INBOX", [(head + body, "", None), (_raw(1), "", None)])
        store.deliver_many("INBOX", [(b"", "", None)])  # nothing to read: no body
        while store.fill_fts(1000):
            pass
        assert index.fts_pending_count("acct") == 0
        assert index.search("acct", "nearthestart") == [big.id]
        assert index.search("acct", "pastthelimit") == []  # beyond what is parsed
        assert index.search("acct", "number1") == [small.id]
    finally:
        index.close()
