"""Recovery of a download-only sync killed between recording and writing a message."""

from __future__ import annotations

from pathlib import Path

from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex
from tui_mail.store.maildir import unique_name
from tui_mail.store.seen import SeenServerIds
from tui_mail.sync.download import DAY, DeletePolicy, recover_interrupted

RAW = b"From: a@example.test\nSubject: one\nMessage-ID: <one@example.test>\n\nbody\n"


def make(tmp_path: Path) -> tuple[AccountStore, SeenServerIds]:
    index = MailIndex.open(tmp_path / "index.sqlite3")
    return AccountStore("acct", tmp_path / "mail", index), SeenServerIds(tmp_path / "seen.db")


def test_a_write_that_finished_is_kept_and_marked_stored(tmp_path: Path) -> None:
    store, seen = make(tmp_path)
    key = unique_name()
    seen.begin("acct", "INBOX", "uidl-1", key)
    store.maildir.add("INBOX", RAW, "", key)  # killed after this, before indexing
    recover_interrupted(store, seen, "INBOX")
    assert seen.entries("acct", "INBOX")["uidl-1"].state == "stored"
    assert store.index.count("acct", "INBOX") == 1


def test_a_write_that_never_happened_is_forgotten_so_it_is_fetched_again(
    tmp_path: Path,
) -> None:
    store, seen = make(tmp_path)
    seen.begin("acct", "INBOX", "uidl-1", unique_name())
    recover_interrupted(store, seen, "INBOX")
    assert seen.entries("acct", "INBOX") == {}
    assert store.index.count("acct", "INBOX") == 0


def test_the_record_survives_an_index_reset(tmp_path: Path) -> None:
    store, seen = make(tmp_path)
    seen.begin("acct", "INBOX", "uidl-1", unique_name())
    seen.mark_stored("acct", "INBOX", "uidl-1")
    store.index.close()
    (tmp_path / "index.sqlite3").write_bytes(b"garbage" * 100)
    reopened = MailIndex.open(tmp_path / "index.sqlite3")
    assert reopened.was_reset
    assert set(seen.entries("acct", "INBOX")) == {"uidl-1"}


def test_delete_policy() -> None:
    keep = DeletePolicy()
    assert not keep.due(first_seen=0, now=100 * DAY)
    assert DeletePolicy(after_download=True).due(first_seen=10, now=10)
    week = DeletePolicy(after_days=7)
    assert not week.due(first_seen=0, now=6 * DAY)
    assert week.due(first_seen=0, now=7 * DAY)
