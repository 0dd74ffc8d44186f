"""The query language on a generated 100,000-message index, checked against the oracle.

The index is built once per test session (rows straight through upsert_many with
synthetic headers, see tui_mail/search/synthetic.py) and shared read-only by
every test here. Latency is measured by bench/bench_search.py, not asserted
here: a loaded CI machine would make timing asserts flaky.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_search_oracle import Record, expected, load_records

from tui_mail.search import synthetic
from tui_mail.search.query import parse_query
from tui_mail.search.run import (
    SearchFolder,
    _compile,
    _dense,
    _first_page,
    count_query,
    run_query,
)
from tui_mail.store.index import MailIndex

COUNT = 100_000
NOW = float(synthetic.START + synthetic.SPAN + 86400)


@pytest.fixture(scope="session")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MailIndex, Path]]:
    db = tmp_path_factory.mktemp("search-100k") / "index.sqlite3"
    index = MailIndex.open(db)
    synthetic.fill(index, COUNT)
    yield index, db
    index.close()


@pytest.fixture(scope="session")
def big_records(big: tuple[MailIndex, Path]) -> list[Record]:
    return load_records(big[1])


def test_the_index_is_full_size(big: tuple[MailIndex, Path], big_records: list[Record]) -> None:
    index, _ = big
    assert len(big_records) == COUNT
    assert sum(t for c in map(index.folder_counts, synthetic.ACCOUNTS) for t, _ in c.values()) == (
        COUNT
    )


def _common_word(records: list[Record]) -> str:
    counts: dict[str, int] = {}
    for r in records[:5000]:
        for w in set(r.column(3)):  # body tokens
            counts[w] = counts.get(w, 0) + 1
    return max(counts, key=lambda w: counts[w])


QUERIES = [
    synthetic.RARE_WORD,
    f"subject:{synthetic.RARE_SUBJECT}",
    f"body:{synthetic.RARE_WORD}",
    f"from:{synthetic.RARE_SENDER}",
    "from:rare",
    "from:rar*",
    "from:odd.example",
    "is:flagged",
    "is:unread",
    "is:answered -is:read",
    "has:attachment",
    "folder:Lists/*",
    "folder:Trash",
    "account:home",
    "after:2022-06-01 before:2022-07-01",
    "before:1000d",
    "after:30d",
    f"{synthetic.RARE_WORD} OR {synthetic.RARE_SUBJECT}",
    f"-{synthetic.RARE_WORD} is:flagged has:attachment",
    "(is:flagged OR has:attachment) account:work -folder:INBOX after:2023-01-01",
    f'"{synthetic.RARE_SUBJECT}" -folder:Archive',
]


@pytest.mark.parametrize("text", QUERIES)
def test_operators_match_the_oracle(
    big: tuple[MailIndex, Path], big_records: list[Record], text: str
) -> None:
    query = parse_query(text)
    got = run_query(big[0], query, now=NOW)
    assert got == expected(big_records, query, NOW)
    assert run_query(big[0], query, now=NOW, limit=50) == got[:50]


def test_common_words_and_prefixes(big: tuple[MailIndex, Path], big_records: list[Record]) -> None:
    word = _common_word(big_records)
    for text in (word, f"{word[:3]}*", f"-{word}", f"{word} -is:read", f"to:{word[:4]}"):
        query = parse_query(text)
        got = run_query(big[0], query, now=NOW)
        assert got == expected(big_records, query, NOW), text
        assert 0 < len(got) < COUNT, text
        assert run_query(big[0], query, now=NOW, limit=100) == got[:100], text


def test_dense_words_are_probed_newest_first(
    big: tuple[MailIndex, Path], big_records: list[Record]
) -> None:
    """A word in most messages takes the probing plan; its first page is still exact."""
    index, _ = big
    word = _common_word(big_records)
    _, comp = _compile(parse_query(word), [], None, NOW)
    assert _dense(index, comp, 100)
    assert not _dense(index, _compile(parse_query(synthetic.RARE_WORD), [], None, NOW)[1], 100)
    for text in (word, f"{word} is:unread", f"{word} OR has:attachment"):
        query = parse_query(text)
        assert run_query(index, query, limit=100) == run_query(index, query)[:100], text


def test_first_pages_come_from_windows(
    big: tuple[MailIndex, Path], big_records: list[Record]
) -> None:
    """The slow first pages of the bench (common words, phrases, short prefixes,
    negations) come from a window of the newest mail, and are exact."""
    index, _ = big
    counts: dict[str, int] = {}
    for r in big_records[:5000]:
        for w in set(r.column(3)):
            counts[w] = counts.get(w, 0) + 1
    word, second = sorted(counts, key=lambda w: -counts[w])[:2]
    for text in (
        word,
        f"{word} {second}",
        f'"{word} {second}"',
        f"{word[:3]}*",
        f"-{word}",
        f"{word} is:unread folder:INBOX",
        f"{word} before:2022-01-01",
    ):
        query = parse_query(text)
        page, _ = _first_page(index, query, None, NOW, 100)
        assert page is not None, text
        assert page == expected(big_records, query, NOW)[:100], text


def test_planted_markers_have_exact_counts(big: tuple[MailIndex, Path]) -> None:
    index, _ = big
    planted = COUNT // synthetic.MARKER_EVERY
    assert len(run_query(index, parse_query(synthetic.RARE_WORD))) == planted
    assert len(run_query(index, parse_query(f"from:{synthetic.RARE_SENDER}"))) == planted
    total, unread = count_query(index, parse_query(f"from:{synthetic.RARE_SENDER}"))
    assert total == planted and 0 <= unread <= planted


def test_unified_inbox_counts_and_paging(big: tuple[MailIndex, Path]) -> None:
    index, _ = big
    folder = SearchFolder.run(index, "inbox", parse_query("folder:INBOX"))
    assert folder.total == sum(index.count(a, "INBOX") for a in synthetic.ACCOUNTS)
    page = folder.page(index, 1000, 50)
    assert [e.ref.id for e in page] == folder.ids[1000:1050]
    assert all(e.ref.folder == "INBOX" for e in page)


def test_first_pages_are_index_walks(big: tuple[MailIndex, Path]) -> None:
    """Generous bound (machines vary): a first page must never cost a full scan+sort."""
    index, _ = big
    for text in ("is:unread", "has:attachment", "after:2021-01-01", synthetic.RARE_WORD):
        query = parse_query(text)
        run_query(index, query, limit=100)
        started = time.perf_counter()
        run_query(index, query, limit=100)
        assert time.perf_counter() - started < 1.0, text


def test_threads_follow_references(big: tuple[MailIndex, Path]) -> None:
    """Every reply shares its parent's thread, whatever order the batches came in."""
    index, _ = big
    split = index.execute_read(
        "SELECT count(*) FROM messages AS c JOIN messages AS p"
        " ON p.message_id = c.in_reply_to AND +p.account = c.account"
        " WHERE c.in_reply_to != '' AND c.thread_id != p.thread_id"
    )[0][0]
    assert split == 0
    replies = index.execute_read("SELECT count(*) FROM messages WHERE in_reply_to != ''")[0][0]
    threads = index.execute_read("SELECT count(DISTINCT thread_id) FROM messages")[0][0]
    assert replies > COUNT // 4
    assert threads < COUNT - replies // 2
