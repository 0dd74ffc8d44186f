"""First pages through date windows (search/run.py `_first_page`), and the version 3
index that makes short prefixes cheap (FTS5 prefix indexes, store/index.py).

The window plan must give exactly the first page of the whole result whatever the
data looks like: ids that follow the dates, ids that run against them, many
messages sharing one date, a `before:` that puts every hit in old mail. The small
indexes here get the plan by lowering its size threshold; the oracle of
test_search_oracle.py is the judge.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec.structs
import pytest
from test_search_oracle import Record, expected, load_records

from tui_mail.search import run, synthetic
from tui_mail.search.query import parse_query
from tui_mail.search.run import _first_page, _indexed_prefix, run_query
from tui_mail.store.index import SCHEMA_VERSION, MailIndex
from tui_mail.store.maildir import StoredFile
from tui_mail.store.parse import ParsedHeaders

COUNT = 3000
NOW = float(synthetic.START + synthetic.SPAN + 86400)
MID = "2022-03-01"  # about half-way through synthetic.START .. START + SPAN

Row = tuple[str, str, StoredFile, ParsedHeaders]


def _common(records: list[Record], n: int) -> list[str]:
    counts: dict[str, int] = {}
    for r in records:
        for w in set(r.column(3)):  # body tokens
            counts[w] = counts.get(w, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], w))[:n]


def _index(db: Path, rows: list[Row]) -> MailIndex:
    """Rows stored in the order given, in per-folder batches as synthetic.fill does:
    the order decides which ids the rows get."""
    index = MailIndex.open(db)
    pending: dict[tuple[str, str], list[tuple[StoredFile, ParsedHeaders, None]]] = {}
    for account, folder, stored, parsed in rows:
        items = pending.setdefault((account, folder), [])
        items.append((stored, parsed, None))
        if len(items) >= 100:
            index.upsert_many(account, folder, items)
            items.clear()
    for (account, folder), items in pending.items():
        if items:
            index.upsert_many(account, folder, items)
    return index


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The window plan on a few thousand rows, with small windows that must grow
    (at this size every query counts as sparse unless WINDOW_SPARSE is off)."""
    monkeypatch.setattr(run, "WINDOW_MIN_ROWS", 0)
    monkeypatch.setattr(run, "WINDOW_START", 1)
    monkeypatch.setattr(run, "WINDOW_SPARSE", 0)


@pytest.fixture(scope="module")
def in_order(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MailIndex, list[Record]]]:
    """Ids follow dates (mail indexed as it arrives), as synthetic.fill stores it."""
    db = tmp_path_factory.mktemp("window") / "index.sqlite3"
    index = MailIndex.open(db)
    synthetic.fill(index, COUNT, batch=200)
    yield index, load_records(db)
    index.close()


TEMPLATES = [
    "{w}",
    "{w} {w2}",
    '"{w} {w2}"',
    "{p3}*",
    "{p2}*",
    "-{w}",
    "-{w} -{w2}",
    "from:{w}",
    "to:{w}",
    "cc:{w}",
    "subject:{w} OR body:{w2}",
    "{w} is:unread folder:INBOX",
    "{w} OR has:attachment",
    "-({w} is:unread)",
    "{w} account:home",
    "{w} before:" + MID,
    "{w} after:" + MID,
    "{w} before:" + MID + " before:2021-06-01",
    "({w} before:" + MID + ") OR is:flagged",
    "{w} -folder:Trash -is:read",
    synthetic.RARE_WORD,
]


def _text(template: str, records: list[Record]) -> str:
    w, w2 = _common(records, 2)
    return template.format(w=w, w2=w2, p3=w[:3], p2=w[:2])


@pytest.mark.parametrize("template", TEMPLATES)
def test_windowed_pages_match_the_oracle(
    in_order: tuple[MailIndex, list[Record]], small_windows: None, template: str
) -> None:
    index, records = in_order
    query = parse_query(_text(template, records))
    full = expected(records, query, NOW)
    for limit in (1, 7, 100, 2000):
        assert run_query(index, query, now=NOW, limit=limit) == full[:limit], limit
    assert run_query(index, query, now=NOW) == full


def test_dense_queries_take_the_window(
    in_order: tuple[MailIndex, list[Record]], small_windows: None
) -> None:
    """The plan is really used (not only the fallback), also under a before: ceiling."""
    index, records = in_order
    for template in ("{w}", '"{w} {w2}"', "{p3}*", "-{w2}", "{w} before:" + MID):
        query = parse_query(_text(template, records))
        page, _ = _first_page(index, query, None, NOW, 20)
        assert page is not None, template
        assert page == expected(records, query, NOW)[:20], template


def test_the_window_steps_aside(
    in_order: tuple[MailIndex, list[Record]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rare words (and no probing for them either), unindexed prefixes, column-only
    queries and small indexes keep the plain plan, and still give the right page."""
    index, records = in_order
    w = _common(records, 1)[0]
    monkeypatch.setattr(run, "WINDOW_MIN_ROWS", 0)
    cases = {synthetic.RARE_WORD: False, f"{w[:4]}*": True, "is:unread": True}
    for text, may_be_dense in cases.items():
        query = parse_query(text)
        assert _first_page(index, query, None, NOW, 20) == (None, may_be_dense), text
        assert run_query(index, query, now=NOW, limit=20) == expected(records, query, NOW)[:20]
    monkeypatch.setattr(run, "WINDOW_MIN_ROWS", COUNT + 1)
    assert _first_page(index, parse_query(w), None, NOW, 20) == (None, True)


def test_accounts_may_be_an_iterator(
    in_order: tuple[MailIndex, list[Record]], small_windows: None
) -> None:
    """run_query reads `accounts` for the window and again for the fallback."""
    index, records = in_order
    account = {r.id: r.account for r in records}
    # The rare word is in no window (the plan gives up, the plain plan runs); the
    # common one is found in a window.
    for text in (synthetic.RARE_WORD, _common(records, 1)[0]):
        query = parse_query(text)
        want = [i for i in expected(records, query, NOW) if account[i] == "home"][:5]
        assert want, text
        assert run_query(index, query, accounts=iter(["home"]), now=NOW, limit=5) == want


def _rows(order: str) -> list[Row]:
    rows = list(synthetic.generate(COUNT))
    if order == "reversed":  # an old archive imported after the new mail
        rows.reverse()
    elif order == "by folder":  # a first sync: folder after folder, oldest first
        rows.sort(key=lambda r: (r[0], r[1]))
    elif order == "shuffled":
        random.Random(3).shuffle(rows)
    elif order == "ties":  # whole days of mail with the same Date (a bulk import)
        rows = [
            (a, f, s, msgspec.structs.replace(p, date=synthetic.START + (n // 400) * 86400))
            for n, (a, f, s, p) in enumerate(rows)
        ]
    return rows


@pytest.mark.parametrize("order", ["by folder", "reversed", "shuffled", "ties"])
def test_any_id_order_gives_the_same_pages(tmp_path: Path, small_windows: None, order: str) -> None:
    db = tmp_path / "index.sqlite3"
    index = _index(db, _rows(order))
    try:
        records = load_records(db)
        w, w2 = _common(records, 2)
        for text in (w, f'"{w} {w2}"', f"-{w}", f"{w} before:{MID}", f"{w[:3]}*"):
            query = parse_query(text)
            full = expected(records, query, NOW)
            for limit in (1, 50, 450):
                assert run_query(index, query, now=NOW, limit=limit) == full[:limit], (text, limit)
        page, _ = _first_page(index, parse_query(w), None, NOW, 50)
        if order == "shuffled":
            # Ids at random: a window's ids span most of the index, the rowid cut
            # would save nothing, so the plain plan runs.
            assert page is None
        elif order in ("reversed", "by folder"):
            # The newest mail has the lowest ids, or the highest of each folder's
            # run: still a few narrow ranges, so the window is used.
            assert page == expected(records, parse_query(w), NOW)[:50]
    finally:
        index.close()


def test_indexed_prefixes() -> None:
    assert _indexed_prefix("re") and _indexed_prefix("dep") and _indexed_prefix("Ann Le")
    assert not _indexed_prefix("deplo") and not _indexed_prefix("d") and not _indexed_prefix("@@")
    # "_" separates words for unicode61 as for the oracle: the prefix is "le".
    assert _indexed_prefix("ann_le")


def test_version_2_index_gets_prefix_indexes(tmp_path: Path) -> None:
    """Opening a version 2 index rebuilds its full-text table with prefix indexes,
    keeping every row, the pending backlog and what every query finds."""
    db = tmp_path / "index.sqlite3"
    index = MailIndex.open(db)
    synthetic.fill(index, 400)
    index.close()
    conn = sqlite3.connect(db)
    with conn:  # what a version 2 index looked like: no prefix option
        conn.execute(
            "CREATE VIRTUAL TABLE old_fts USING fts5(subject, sender, recipients, body,"
            " tokenize = 'unicode61 remove_diacritics 2')"
        )
        conn.execute(
            "INSERT INTO old_fts(rowid, subject, sender, recipients, body)"
            " SELECT rowid, subject, sender, recipients, body FROM messages_fts"
        )
        conn.execute("DROP TABLE messages_fts")
        conn.execute("ALTER TABLE old_fts RENAME TO messages_fts")
        conn.execute("INSERT INTO fts_pending(id) SELECT max(id) FROM messages")
        conn.execute("DELETE FROM messages_fts WHERE rowid = (SELECT max(id) FROM messages)")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    before = load_records(db)

    again = MailIndex.open(db)
    try:
        assert again.was_reset is False
        assert again.execute_read("SELECT value FROM meta WHERE key = 'schema_version'") == [
            (str(SCHEMA_VERSION),)
        ]
        (sql,) = again.execute_read("SELECT sql FROM sqlite_master WHERE name = 'messages_fts'")[0]
        assert "prefix = '2 3'" in sql
        assert again.fts_pending_count() == 1
        after = load_records(db)
        assert [(r.id, r.fts, r.pending) for r in after] == [
            (r.id, r.fts, r.pending) for r in before
        ]
        w = _common(after, 1)[0]
        for text in (w, f"{w[:3]}*", f"{w[:2]}*", f"from:{w[:3]}*", synthetic.RARE_SUBJECT):
            query = parse_query(text)
            assert run_query(again, query, now=NOW) == expected(after, query, NOW), text
        assert run_query(again, parse_query(f"{w[:3]}*"), now=NOW)  # not trivially empty
    finally:
        again.close()


def test_mail_stored_meanwhile_waits_for_the_next_run(
    tmp_path: Path, small_windows: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message stored between reading the window and asking for the page is not
    judged by full-text sub-selects cut without it: "-word" must not show a new
    message that has the word. The page is the one from just before it came."""
    db = tmp_path / "index.sqlite3"
    index = _index(db, list(synthetic.generate(COUNT)))
    try:
        records = load_records(db)
        w = _common(records, 1)[0]
        query = parse_query(f"-{w}")
        want = expected(records, query, NOW)[:2]
        monkeypatch.setattr(run, "WINDOW_START", 100)  # the first window gives the page
        account, folder, stored, parsed = next(synthetic.generate(1, seed=99))
        newcomer = (
            msgspec.structs.replace(stored, key="newcomer"),
            msgspec.structs.replace(
                parsed, date=synthetic.START + synthetic.SPAN + 3600, body_text=w
            ),
            None,
        )
        read = index.execute_read
        stored_meanwhile: list[int] = []

        def racing_read(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            rows = read(sql, params)
            if sql.startswith("SELECT date, id FROM messages") and not stored_meanwhile:
                stored_meanwhile.extend(index.upsert_many(account, folder, [newcomer]))
            return rows

        monkeypatch.setattr(index, "execute_read", racing_read)
        page, _ = _first_page(index, query, None, NOW, 2)
        assert stored_meanwhile and page == want
        monkeypatch.setattr(index, "execute_read", read)
        # The next run sees it, and rightly leaves it out.
        again = run_query(index, query, now=NOW, limit=20)
        assert stored_meanwhile[0] not in again
        assert again == expected(load_records(db), query, NOW)[:20]
    finally:
        index.close()
