"""The bulk index helper process (store/bulk.py) and AccountStore's two-half delivery.

What must hold: the helper writes exactly the rows the in-process path writes
(threads included), only for files already durable, and any failure of it
(killed, an index it cannot write, a lost answer) ends with every row indexed
in this process, none twice.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui_mail.core.models import ServerId
from tui_mail.store import account_store, bulk
from tui_mail.store.account_store import AccountStore
from tui_mail.store.bulk import BulkHelperError, IndexHelper, WrittenFile
from tui_mail.store.index import MailIndex
from tui_mail.store.maildir import StoredFile

COLUMNS = (
    "id, folder, key, subdir, flags, date, from_name, from_addr, to_addrs, cc_addrs, subject,"
    " message_id, in_reply_to, refs, size, has_attachment, list_id, thread_id, uid,"
    " uidvalidity, modseq, sort_from, sort_subject"
)


def message(n: int) -> bytes:
    """Threads by reference and by subject, 8-bit and encoded headers, attachments."""
    lines = [
        f"From: =?utf-8?q?J=C3=BCrgen_{n % 5}?= <j{n % 5}@example.org>",
        f"To: Ann <ann@example.org>, bob{n % 3}@example.org",
        f"Date: {email.utils.formatdate(1_700_000_000 + n * 3600)}",
        f"Message-ID: <m{n}@example.org>",
    ]
    if n % 4 == 1:
        lines += [f"Subject: Re: topic {n // 8}", f"In-Reply-To: <m{n - 1}@example.org>"]
    elif n % 4 == 2:
        lines.append(f"Subject: Re: topic {n // 8}")  # a reply without references
    else:
        lines.append(f"Subject: topic {n // 8} – Grüße")
    if n % 6 == 0:
        lines += [
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="b"',
            "",
            "--b",
            "Content-Type: text/plain",
            "",
            "see attached",
            "--b",
            'Content-Type: application/pdf; name="x.pdf"',
            "",
            "%PDF",
            "--b--",
        ]
        return "\n".join(lines).encode()
    return ("\n".join(lines) + f"\n\nbody {n}\n").encode()


BATCH = [(message(n), "S" if n % 3 else "", ServerId(uid=n + 1, uidvalidity=7)) for n in range(120)]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[MailIndex]:
    idx = MailIndex(tmp_path / "index.sqlite3")
    yield idx
    idx.close()


@pytest.fixture
def store(tmp_path: Path, index: MailIndex) -> Iterator[AccountStore]:
    s = AccountStore("acct", tmp_path / "mail", index)
    yield s
    if s.bulk_helper is not None:
        s.bulk_helper.close()


def table(index: MailIndex) -> list[tuple[object, ...]]:
    # Keys are random per file: compare by Message-ID, the rest column by column.
    rows = index.execute_read(f"SELECT {COLUMNS} FROM messages ORDER BY message_id")
    return [r[:2] + r[3:] for r in rows]


def deliver(store: AccountStore, messages: list[tuple[bytes, str, ServerId]]) -> None:
    for i in range(0, len(messages), 50):
        store.index_files("INBOX", store.write_files("INBOX", messages[i : i + 50]))


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie until reaped: close() waits for it, so it must not stay one.
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_helper_writes_the_rows_the_process_itself_writes(
    tmp_path: Path, store: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(account_store, "BULK_HELPER_MIN", 1)
    with store.bulk(len(BATCH)):
        helper = store.bulk_helper
        assert helper is not None
        deliver(store, BATCH)
        assert store.bulk_helper is helper  # no fallback happened
    assert store.bulk_helper is None and gone(helper.pid)

    other_index = MailIndex(tmp_path / "other.sqlite3")
    try:
        other = AccountStore("acct", tmp_path / "other-mail", other_index)
        deliver(other, BATCH)
        assert table(store.index) == table(other_index)
        for sql in (
            "SELECT count(*) FROM fts_pending",
            "SELECT count(*) FROM msgrefs",
            "SELECT total, unread FROM folder_stats",
            "SELECT count(DISTINCT thread_id) FROM messages",
        ):
            assert store.index.execute_read(sql) == other_index.execute_read(sql), sql
    finally:
        other_index.close()
    assert len(table(store.index)) == len(BATCH)
    # Every row names a file that is on disk.
    for key, subdir in store.index.execute_read("SELECT key, subdir FROM messages"):
        assert store.maildir.locate("INBOX", key) is not None, (key, subdir)


def test_small_downloads_start_no_helper_and_nested_blocks_share_one(
    store: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(account_store, "BULK_HELPER_MIN", 100)
    with store.bulk(99):
        assert store.bulk_helper is None
    with store.bulk(0):  # what sync_account opens around a run
        with store.bulk(100):
            helper = store.bulk_helper
            assert helper is not None
        with store.bulk(500):
            assert store.bulk_helper is helper  # reused by the next folder
        assert store.bulk_helper is helper
    assert store.bulk_helper is None and gone(helper.pid)


def test_a_killed_helper_leaves_every_row_indexed_here_once(
    store: AccountStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(account_store, "BULK_HELPER_MIN", 1)
    with store.bulk(len(BATCH)):
        helper = store.bulk_helper
        assert helper is not None
        deliver(store, BATCH[:50])
        os.kill(helper.pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING):
            deliver(store, BATCH[50:])
        assert store.bulk_helper is None  # not tried again in this block
    assert "indexing in this process" in caplog.text
    assert len(table(store.index)) == len(BATCH)
    ids = store.index.execute_read("SELECT message_id, count(*) FROM messages GROUP BY 1")
    assert all(n == 1 for _, n in ids)


def test_a_batch_committed_by_the_helper_but_not_confirmed_is_not_doubled(
    store: AccountStore, index: MailIndex
) -> None:
    """The helper commits, then dies before its answer arrives: the caller indexes the
    batch again in its own process, which must refresh the same rows."""
    written = store.write_files("INBOX", BATCH[:30])
    helper = IndexHelper(index.path)
    try:
        ids = helper.upsert_many("acct", "INBOX", written)
    finally:
        helper.close()
    store.bulk_helper = None
    refs = store.index_files("INBOX", written)  # the in-process retry of the same batch
    assert [r.id for r in refs] == ids
    assert index.execute_read("SELECT count(*) FROM messages") == [(30,)]
    assert index.execute_read("SELECT count(*) FROM fts_pending") == [(30,)]


def test_a_helper_that_cannot_write_fails_cleanly_and_the_caller_indexes(
    tmp_path: Path, store: AccountStore, caplog: pytest.LogCaptureFixture
) -> None:
    written = store.write_files("INBOX", BATCH[:10])
    # Not an index at all (no tables): the helper answers with the error, not a crash.
    blank = tmp_path / "blank.sqlite3"
    sqlite3.connect(blank).close()
    helper = IndexHelper(blank)
    with pytest.raises(BulkHelperError, match="no such table"):
        helper.upsert_many("acct", "INBOX", written)
    with pytest.raises(BulkHelperError):
        helper.upsert_many("acct", "INBOX", written)  # closed for good after a failure
    assert gone(helper.pid)

    store.bulk_helper = IndexHelper(blank)
    with caplog.at_level(logging.WARNING):
        refs = store.index_files("INBOX", written)
    assert len(refs) == 10 and all(r.id is not None for r in refs)
    assert store.bulk_helper is None
    assert "no such table" in caplog.text


def test_a_helper_that_never_answers_times_out(tmp_path: Path, store: AccountStore) -> None:
    written = store.write_files("INBOX", BATCH[:5])
    helper = IndexHelper(tmp_path / "index.sqlite3", timeout=0.5)
    os.kill(helper.pid, signal.SIGSTOP)  # alive, holding its pipes, silent
    try:
        with pytest.raises(BulkHelperError, match="did not answer in time"):
            helper.upsert_many("acct", "INBOX", written)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(helper.pid, signal.SIGCONT)
        helper.close()
    assert gone(helper.pid)


def test_batches_sent_ahead_are_answered_in_order_whoever_waits_first(
    store: AccountStore, index: MailIndex
) -> None:
    """Several batches on their way at once, collected from several threads in any
    order: each gets its own ids, every row is there once, and a batch sent before
    close() is still answered after it."""
    batches = [store.write_files("INBOX", BATCH[i : i + 20]) for i in range(0, 120, 20)]
    helper = IndexHelper(index.path)
    tickets = [helper.send("acct", "INBOX", w) for w in batches]
    results: dict[int, list[int]] = {}

    def collect(i: int) -> None:
        results[i] = helper.result(tickets[i], len(batches[i]))

    threads = [threading.Thread(target=collect, args=(i,)) for i in (4, 1, 3)]
    for t in threads:
        t.start()
    collect(0)
    for t in threads:
        t.join()
    helper.close()  # batches 2 and 5 were sent but nobody waited yet
    assert helper._proc.returncode == 0
    results[2] = helper.result(tickets[2], len(batches[2]))
    results[5] = helper.result(tickets[5], len(batches[5]))
    by_key = dict(index.execute_read("SELECT key, id FROM messages"))
    for i, written in enumerate(batches):
        assert results[i] == [by_key[s.key] for s, _, _ in written], i
    assert len(by_key) == 120


def test_a_helper_killed_with_batches_in_flight_leaves_each_indexed_here_once(
    store: AccountStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.bulk_helper = helper = IndexHelper(store.index.path)
    first = [store.write_files("INBOX", BATCH[i : i + 30]) for i in (0, 30)]
    sent = [store.send_rows("INBOX", written) for written in first]
    os.kill(helper.pid, signal.SIGKILL)
    sent.append(store.send_rows("INBOX", store.write_files("INBOX", BATCH[60:90])))
    with caplog.at_level(logging.WARNING):
        refs = [ref for s in sent for ref in store.rows_of(s)]
        refs += store.index_files("INBOX", store.write_files("INBOX", BATCH[90:]))
    assert store.bulk_helper is None and gone(helper.pid)
    assert caplog.text.count("indexing in this process") == 1
    assert len(refs) == len(BATCH) and all(r.id is not None for r in refs)
    ids = store.index.execute_read("SELECT message_id, count(*) FROM messages GROUP BY 1")
    assert len(ids) == len(BATCH) and all(n == 1 for _, n in ids)


def test_an_interrupt_while_reading_an_answer_fails_the_others_instead_of_hanging(
    store: AccountStore, index: MailIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the thread reading answers leaves the pipe mid-answer: the interrupt
    goes on, the helper is stopped, and whoever else waits gets BulkHelperError."""
    helper = IndexHelper(index.path)
    written = [store.write_files("INBOX", BATCH[i : i + 10]) for i in (0, 10)]
    tickets = [helper.send("acct", "INBOX", w) for w in written]

    def interrupted() -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(helper, "_read_answer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        helper.result(tickets[0], 10)
    failed: list[BaseException] = []

    def wait_for_the_other() -> None:
        try:
            helper.result(tickets[1], 10)
        except BaseException as exc:
            failed.append(exc)

    waiter = threading.Thread(target=wait_for_the_other)
    waiter.start()
    waiter.join(5)
    assert not waiter.is_alive() and isinstance(failed[0], BulkHelperError)
    helper.close()
    assert gone(helper.pid)


def test_answers_nobody_collects_do_not_stall_the_sends_or_close(
    store: AccountStore, index: MailIndex
) -> None:
    """Eighty batches of 500 sent, no answer collected: ~120 KiB of answers wait in the
    pipe back (more than its default 64 KiB), the sends all go through, and close()
    collects them and ends the helper."""

    # Only rows (the helper never opens the files): 40,000 fsyncs would take seconds.
    # 1 KB each, every one its own (pickle would send one shared copy once), so the
    # requests fill the pipe there too once the helper stops reading.
    def row(n: int) -> WrittenFile:
        raw = b"x: y\n\n" + b"%07d" % n * 143
        return StoredFile("INBOX", f"k{n}", "cur", "S", Path(f"k{n}"), len(raw), 0.0), raw, None

    written = [[row(n) for n in range(i, i + 500)] for i in range(0, 40_000, 500)]
    helper = IndexHelper(index.path)
    sender = threading.Thread(target=lambda: [helper.send("acct", "INBOX", w) for w in written])
    sender.start()
    sender.join(30)
    assert not sender.is_alive()
    helper.close()
    assert helper._proc.returncode == 0 and sorted(helper._answers) == list(range(80))
    assert index.execute_read("SELECT count(*) FROM messages") == [(40_000,)]


def test_two_batches_failing_at_once_warn_once(
    store: AccountStore, index: MailIndex, caplog: pytest.LogCaptureFixture
) -> None:
    """The last batch of one folder and the first of the next can fail together
    (two threads): the store drops the helper once, with one warning."""
    helper = store.bulk_helper = IndexHelper(index.path)
    slow = logging.Handler()
    slow.emit = lambda record: time.sleep(0.05)  # type: ignore[method-assign]
    logging.getLogger("tui_mail.store.account_store").addHandler(slow)
    both = threading.Barrier(2)

    def fail() -> None:
        both.wait()
        store._without_helper(helper, BulkHelperError("gone"))

    try:
        with caplog.at_level(logging.WARNING):
            threads = [threading.Thread(target=fail) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        logging.getLogger("tui_mail.store.account_store").removeHandler(slow)
    assert caplog.text.count("indexing in this process") == 1
    assert store.bulk_helper is None and gone(helper.pid)


def test_the_helper_ends_when_its_parent_closes_the_pipe(tmp_path: Path) -> None:
    helper = IndexHelper(tmp_path / "index.sqlite3")
    helper.close()
    assert helper._proc.returncode == 0


def test_a_helper_prestarted_before_the_index_exists_serves_the_first_download(
    tmp_path: Path,
) -> None:
    """`tui-mail sync` starts the helper before the index file exists (cli._run_sync):
    it opens the index at its first batch, and the store's bulk() takes it."""
    path = tmp_path / "fresh" / "index.sqlite3"
    bulk.prestart(path)
    try:
        assert not path.exists()
        assert bulk.take_prestarted(tmp_path / "other.sqlite3") is None  # not this index
        path.parent.mkdir()
        idx = MailIndex(path)
        try:
            store = AccountStore("acct", tmp_path / "mail", idx)
            with store.bulk(0, early=True):
                helper = store.bulk_helper
                assert helper is not None and helper.index_path == path
                deliver(store, BATCH)
                assert store.bulk_helper is helper  # no fallback to this process
            assert gone(helper.pid)
            assert bulk.take_prestarted(path) is None  # handed out once
            assert len(table(idx)) == len(BATCH)
        finally:
            idx.close()
    finally:
        bulk.discard_prestarted()


def test_a_prestarted_helper_nobody_takes_is_stopped(tmp_path: Path) -> None:
    bulk.prestart(tmp_path / "index.sqlite3")
    helper = bulk._prestarted
    assert helper is not None
    bulk.discard_prestarted()
    assert bulk._prestarted is None and gone(helper.pid)
