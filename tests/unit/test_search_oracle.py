"""A slow, obvious evaluator of queries in Python: what run_query must agree with.

Used by test_search_run.py (demo account) and test_search_100k.py (generated
index). It reads every row and its full-text columns straight from SQLite and
decides each term by the documented rule, with no SQL and no FTS5 syntax, so a
mistake in the compiler (escaping, grouping, negation) shows as a difference.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from tui_mail.search.query import IS_VALUES, And, Node, Not, Or, Query, Term
from tui_mail.search.run import folder_matches

_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    """Like FTS5's unicode61 with remove_diacritics: letters/digits runs, lower, no accents."""
    if not text.isascii():
        decomposed = unicodedata.normalize("NFD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _TOKEN.findall(text.lower())


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def like(haystack: str, needle: str) -> bool:
    """SQLite's `haystack LIKE '%needle%'`: case folded for ASCII letters only."""
    return needle.translate(_ASCII_LOWER) in haystack.translate(_ASCII_LOWER)


@dataclass
class Record:
    id: int
    account: str
    folder: str
    flags: str
    date: int
    to_addrs: str
    cc_addrs: str
    has_attachment: bool
    raw_subject: str
    from_addr: str
    sort_from: str
    pending: bool  # no full-text row yet: full-text terms look at the headers
    fts: tuple[str, str, str, str]  # the full-text columns: subject, sender, recipients, body
    _tokens: dict[int, list[str]] | None = None
    _lower: tuple[str, ...] | None = None

    def column(self, n: int) -> list[str]:
        """Tokens of full-text column n, made on first use (100k records load fast)."""
        if self._tokens is None:
            self._tokens = {}
        if n not in self._tokens:
            self._tokens[n] = tokens(self.fts[n])
        return self._tokens[n]

    def could_have(self, n: int, word: str) -> bool:
        """Cheap pre-check: can column n contain a token starting with `word` at all?"""
        if self._lower is None:
            self._lower = tuple(t.lower() for t in self.fts)
        text = self._lower[n]
        return word in text or not (text.isascii() and word.isascii())


def load_records(db: Path) -> list[Record]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        columns = "rowid, subject, sender, recipients, body"
        fts = {r[0]: r[1:] for r in conn.execute(f"SELECT {columns} FROM messages_fts")}
        pending = {r[0] for r in conn.execute("SELECT id FROM fts_pending")}
        out = []
        for row in conn.execute(
            "SELECT id, account, folder, flags, date, to_addrs, cc_addrs, has_attachment,"
            " subject, from_addr, sort_from FROM messages"
        ):
            out.append(
                Record(
                    *row[:7],
                    bool(row[7]),
                    *row[8:11],
                    row[0] in pending,
                    fts.get(row[0], ("", "", "", "")),
                )
            )
        return out
    finally:
        conn.close()


def _phrase_in(words: list[str], phrase: list[str], prefix: bool) -> bool:
    if not phrase:
        return False
    n = len(phrase)
    for i in range(len(words) - n + 1):
        if words[i : i + n - 1] != phrase[:-1]:
            continue
        last = words[i + n - 1]
        if last == phrase[-1] or (prefix and last.startswith(phrase[-1])):
            return True
    return False


# Field -> the full-text columns it looks in (0 subject, 1 sender, 2 recipients, 3 body).
_COLUMNS = {"text": (0, 3), "subject": (0,), "body": (3,), "from": (1,), "to": (2,), "cc": (2,)}


def matches(node: Node, rec: Record, now: float) -> bool:
    if isinstance(node, Not):
        return not matches(node.child, rec, now)
    if isinstance(node, And):
        return all(matches(c, rec, now) for c in node.children)
    if isinstance(node, Or):
        return any(matches(c, rec, now) for c in node.children)
    assert isinstance(node, Term)
    f, v = node.field, node.value
    if rec.pending and f in ("text", "subject", "body", "from", "to", "cc"):
        return _pending_match(f, v, rec)
    phrase = tokens(v)
    if f in _COLUMNS and not phrase:  # from:% has no words: a plain substring test
        return _pending_match(f, v, rec)
    if f in _COLUMNS:
        prefix = node.prefix
        if f in ("to", "cc"):
            column = rec.to_addrs if f == "to" else rec.cc_addrs
            if v.isascii() and v.lower() not in column.lower():
                return False
        return any(
            rec.could_have(n, phrase[0]) and _phrase_in(rec.column(n), phrase, prefix)
            for n in _COLUMNS[f]
        )
    if f == "folder":
        return folder_matches(v, rec.folder)
    if f == "account":
        return rec.account == v
    if f == "has":
        return rec.has_attachment
    if f == "is":
        letter, present = IS_VALUES[v]
        return (letter in rec.flags) == present
    if f == "before":
        return rec.date < node.timestamp(now)
    if f == "after":
        return rec.date >= node.timestamp(now)
    raise AssertionError(f)


def _pending_match(f: str, v: str, rec: Record) -> bool:
    if f in ("text", "subject"):
        return like(rec.raw_subject, v)
    if f == "body":
        return False  # not known until the store indexes the body
    if f == "from":
        return like(rec.from_addr, v) or like(rec.sort_from, v.casefold())
    return like(rec.to_addrs if f == "to" else rec.cc_addrs, v)


def expected(records: list[Record], query: Query, now: float) -> list[int]:
    """Matching ids, newest first: the order run_query promises."""
    hits = [r for r in records if matches(query.root, r, now)]
    hits.sort(key=lambda r: (r.date, r.id), reverse=True)
    return [r.id for r in hits]


def test_tokens_fold_case_and_accents() -> None:
    assert tokens("Café RÉSUMÉ, e-mail_x 42") == ["cafe", "resume", "e", "mail", "x", "42"]


def test_like_folds_ascii_only() -> None:
    assert like("Hello World", "o w")
    assert not like("Émile", "émile")
    assert like("Émile", "Émile")


def test_phrase_rules() -> None:
    assert _phrase_in(["a", "quick", "fox"], ["quick", "fox"], False)
    assert not _phrase_in(["a", "quick", "fox"], ["quick", "fo"], False)
    assert _phrase_in(["a", "quick", "fox"], ["quick", "fo"], True)
    assert not _phrase_in(["a"], [], True)
