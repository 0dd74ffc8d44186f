"""Running a parsed query against the index: one SQL statement, user text only as parameters.

Full-text terms (free text, subject:, body:) become one FTS5 MATCH per AND
group where possible ("a b -c" is `a AND b NOT c` inside FTS5, one sub-select),
every other term a condition on `messages` columns. User text reaches SQLite
only as bound parameters, and inside a MATCH expression only as a double-quoted
FTS5 string with `"` doubled, so no query text can change the statement's shape
or fail to parse in FTS5.

Results are message ids, newest first; `SearchFolder` pages them like a folder.
"""

from __future__ import annotations

import contextlib
import heapq
import re
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from tui_mail.core.errors import MailError
from tui_mail.search.query import IS_VALUES, And, Node, Not, Or, Query, Term

if TYPE_CHECKING:
    from tui_mail.core.models import Envelope
    from tui_mail.store.index import MailIndex

_FTS_COLUMNS = {
    "text": "{subject body}",
    "subject": "subject",
    "body": "body",
    "from": "sender",
    "to": "recipients",
    "cc": "recipients",
}
_FTS_SELECT = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?"
_FTS_PROBE = "EXISTS (SELECT 1 FROM messages_fts WHERE messages_fts MATCH ? AND rowid = m.id)"
# Two ways to run "word" for a first page (see _dense): collect every hit from FTS5,
# then sort by date (~1 us a hit), or walk the date index newest first and ask FTS5
# about each row (~120 us a row, measured at 100k). The walk wins when the word is
# in a large share of the mail, e.g. a word in 90% of 100k messages: 90 -> 13 ms.
PROBE_COST = 120
# First pages of full-text queries look at the newest messages first (_first_page):
# a window of the newest WINDOW_START * limit messages, widened by the hit rate seen,
# on indexes of at least WINDOW_MIN_ROWS messages (below that, collecting every hit
# costs a few ms at most).
WINDOW_START = 8
WINDOW_MIN_ROWS = 10_000
# Expected hits in the whole index below which a first page collects every hit
# rather than trying a wider window.
WINDOW_SPARSE = 2000
# At most this many id ranges per window (see _id_ranges): one FTS5 sub-select each.
WINDOW_RANGES = 16
# Prefix lengths messages_fts has prefix indexes for (store/index.py, prefix = '2 3').
_INDEXED_PREFIXES = (2, 3)
_TOKEN = re.compile(r"[^\W_]+")
UNIFIED_INBOX = "Unified inbox"
INBOX = "INBOX"
# Walked newest-first by every query that has no better index: with it, the first
# page of is:unread / has:attachment / after: over 100k rows is an index walk that
# stops after `limit` hits instead of a table scan plus a sort. Covering (flags,
# has_attachment, account, folder) so those tests need no row lookups. Created on
# first use (IF NOT EXISTS), so existing indexes get it without a schema change.
SEARCH_INDEX = (
    "CREATE INDEX IF NOT EXISTS messages_search_by_date"
    " ON messages(date, flags, has_attachment, account, folder)"
)


def _like(value: str) -> str:
    """A LIKE pattern for "contains value", with LIKE's own wildcards escaped."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def fts_string(value: str) -> str:
    """User text as one FTS5 string (a phrase): quoted, inner quotes doubled."""
    return '"' + value.replace('"', '""') + '"'


def _has_word(value: str) -> bool:
    return any(ch.isalnum() for ch in value)


def _fts_part(term: Term) -> str | None:
    """The FTS5 expression a term implies, if any.

    Address terms match whole words of the name or address (from:alice,
    from:example.com, from:alice@example.com as a phrase; from:ali* for a prefix):
    the full-text index answers that, where "contains" would scan every row.
    """
    column = _FTS_COLUMNS.get(term.field)
    if column is None or not _has_word(term.value):
        return None
    return f"{column} : {fts_string(term.value)}" + (" *" if term.prefix else "")


def _exact_fts(term: Term) -> str | None:
    """The term's FTS5 expression when it says everything about the term.

    to: and cc: share one "recipients" column in the full-text table, so they
    also need a check on their own column (see _verify).
    """
    return _fts_part(term) if term.field not in ("to", "cc") else None


def fts_expression(node: Node) -> str | None:
    """The FTS5 MATCH expression equal to `node`, or None if it needs columns or is
    purely negative (FTS5's NOT is binary: it needs something positive on its left)."""
    if isinstance(node, Term):
        return _exact_fts(node)
    if isinstance(node, Not):
        return None
    if isinstance(node, Or):
        parts = [fts_expression(c) for c in node.children]
        if any(p is None for p in parts):
            return None
        return " OR ".join(f"({p})" for p in parts)
    positives: list[str] = []
    negatives: list[str] = []
    for child in node.children:
        if isinstance(child, Not):
            inner = fts_expression(child.child)
            if inner is None:
                return None
            negatives.append(inner)
        else:
            expr = fts_expression(child)
            if expr is None:
                return None
            positives.append(expr)
    if not positives:
        return None
    expr = " AND ".join(f"({p})" for p in positives)
    for neg in negatives:
        expr = f"({expr}) NOT ({neg})"
    return expr


class _Compiler(Struct):
    now: float
    folders: Sequence[tuple[str, str]]  # every (account, folder) that has rows
    # True: compile for rows still waiting for their full-text row (fts_pending),
    # where full-text terms fall back to the header columns (see _pending_term).
    pending: bool = False
    # True: positive full-text conditions are per-row probes (see PROBE_COST).
    probe: bool = False
    # Non-empty: full-text sub-selects only look at these rowid ranges, for a WHERE
    # that _first_page restricts to messages whose ids are all in them.
    ranges: Sequence[tuple[int, int]] = ()
    params: list[Any] = field(default_factory=list)
    fts_in: list[str] = field(default_factory=list)  # MATCH expressions used positively
    fts_not_in: list[str] = field(default_factory=list)

    def _fts(self, expr: str, negate: bool = False) -> str:
        if self.ranges:
            return self._fts_ranges(expr, negate)
        self.params.append(expr)
        (self.fts_not_in if negate else self.fts_in).append(expr)
        if self.probe and not negate:
            return _FTS_PROBE
        return f"m.id {'NOT IN' if negate else 'IN'} ({_FTS_SELECT})"

    def _fts_ranges(self, expr: str, negate: bool) -> str:
        # Cutting the rowids to ranges that hold every id the WHERE admits changes no
        # answer (IN and NOT IN alike), and FTS5 then reads only those stretches of
        # each word's list.
        (self.fts_not_in if negate else self.fts_in).append(expr)
        selects = []
        for low, high in self.ranges:
            self.params.extend((expr, low, high))
            selects.append(f"{_FTS_SELECT} AND rowid BETWEEN ? AND ?")
        return f"m.id {'NOT IN' if negate else 'IN'} ({' UNION ALL '.join(selects)})"

    def where(self, node: Node) -> str:
        if isinstance(node, Term):
            return self.term(node)
        if self.pending:
            if isinstance(node, Not):
                return f"NOT ({self.where(node.child)})"
            joiner = " OR " if isinstance(node, Or) else " AND "
            return "(" + joiner.join(self.where(c) for c in node.children) + ")"
        if isinstance(node, Not):
            inner = fts_expression(node.child)
            if inner is not None:
                return self._fts(inner, negate=True)
            return f"NOT ({self.where(node.child)})"
        whole = fts_expression(node)
        if whole is not None:
            return self._fts(whole)
        if isinstance(node, Or):
            return "(" + " OR ".join(self.where(c) for c in node.children) + ")"
        return self.and_(node)

    def and_(self, node: And) -> str:
        # The full-text parts of an AND become one MATCH (one sub-select, one
        # rowid list), the rest conditions on columns.
        positives: list[str] = []
        negatives: list[str] = []
        verify: list[Term] = []
        rest: list[Node] = []
        for child in node.children:
            if isinstance(child, Not) and (neg := fts_expression(child.child)) is not None:
                negatives.append(neg)
            elif not isinstance(child, (Not, Or, And)) and (exact := _exact_fts(child)) is not None:
                positives.append(exact)
            elif isinstance(child, Term) and (part := _fts_part(child)) is not None:
                positives.append(part)  # to:/cc: narrowed by the index, then checked
                verify.append(child)
            elif (expr := fts_expression(child)) is not None:
                positives.append(expr)
            else:
                rest.append(child)
        parts: list[str] = []
        if positives:
            expr = " AND ".join(f"({p})" for p in positives)
            for neg in negatives:
                expr = f"({expr}) NOT ({neg})"
            parts.append(self._fts(expr))
        else:
            parts.extend(self._fts(neg, negate=True) for neg in negatives)
        parts.extend(self.verify(t) for t in verify)
        parts.extend(self.where(c) for c in rest)
        return "(" + " AND ".join(parts) + ")"

    def verify(self, t: Term) -> str:
        """to:/cc: after the shared full-text column: is it in the right header?

        Only for ASCII text: LIKE folds ASCII case only, and the full-text match
        (which folds case and accents everywhere) is the better judge otherwise.
        """
        if not t.value.isascii():
            return "1"
        self.params.append(_like(t.value))
        return f"m.{t.field}_addrs LIKE ? ESCAPE '\\'"

    def term(self, t: Term) -> str:
        f = t.field
        if f in _FTS_COLUMNS and self.pending:
            return self.pending_term(t)
        if f in _FTS_COLUMNS:
            part = _fts_part(t)
            if part is None:  # no letters or digits (from:@): a plain scan is all we can do
                return self.contains(t)
            select = self._fts(part)
            if f in ("to", "cc"):
                return f"({select} AND {self.verify(t)})"
            return select
        if f == "account":
            self.params.append(t.value)
            return "m.account = ?"
        if f == "folder":
            return self.folder(t.value)
        if f == "has":
            return "m.has_attachment = 1"
        if f == "is":
            letter, present = IS_VALUES[t.value]
            return f"instr(m.flags, '{letter}') {'>' if present else '='} 0"
        if f in ("before", "after"):
            self.params.append(t.timestamp(self.now))
            return "m.date < ?" if f == "before" else "m.date >= ?"
        raise AssertionError(f"unhandled field {f}")

    def pending_term(self, t: Term) -> str:
        """A full-text term for a row that has no full-text row yet (bulk-stored mail
        whose bodies the store indexes later): substring of the header it names, like
        MailIndex.search does for them. The body is not known yet: body: is false."""
        if t.field in ("text", "subject"):
            self.params.append(_like(t.value))
            return "m.subject LIKE ? ESCAPE '\\'"
        if t.field == "body":
            return "0"
        return self.contains(t)

    def contains(self, t: Term) -> str:
        if t.field == "from":
            # sort_from is the display name case-folded in Python: non-ASCII names too.
            self.params.extend((_like(t.value), _like(t.value.casefold())))
            return "(m.from_addr LIKE ? ESCAPE '\\' OR m.sort_from LIKE ? ESCAPE '\\')"
        self.params.append(_like(t.value))
        return f"m.{t.field}_addrs LIKE ? ESCAPE '\\'"

    def folder(self, value: str) -> str:
        # Resolved here against the folders that exist, so the condition is
        # "(account, folder) is one of these": the (account, folder, ...) indexes
        # serve it, where a case-insensitive comparison would scan every row.
        matches = [(a, f) for a, f in self.folders if folder_matches(value, f)]
        if not matches:
            return "0"
        conds = []
        for account, name in matches:
            self.params.extend((account, name))
            conds.append("(m.account = ? AND m.folder = ?)")
        return "(" + " OR ".join(conds) + ")"


def folder_matches(pattern: str, folder: str) -> bool:
    """folder:NAME is case-insensitive; a trailing "*" matches that folder and below."""
    p, f = pattern.casefold(), folder.casefold()
    if p.endswith("*"):
        stem = p.rstrip("*")
        return f.startswith(stem) or f == stem.rstrip("/")
    return f == p


_indexed: weakref.WeakSet[MailIndex] = weakref.WeakSet()


def ensure_search_index(index: MailIndex) -> None:
    """Make SEARCH_INDEX if it is not there (MailIndex.make_index: a search never
    waits long for a writer in another process). A failure (read-only, locked)
    only costs speed, and the next search tries again."""
    if index in _indexed:
        return
    with contextlib.suppress(MailError):
        if index.make_index("messages_search_by_date", SEARCH_INDEX):
            _indexed.add(index)


def _folders(index: MailIndex) -> list[tuple[str, str]]:
    rows = index.execute_read("SELECT account, folder FROM folder_stats WHERE total > 0")
    return [(r[0], r[1]) for r in rows]


def compile_query(
    query: Query,
    folders: Sequence[tuple[str, str]],
    accounts: Iterable[str] | None = None,
    now: float | None = None,
    pending: bool = False,
) -> tuple[str, list[Any]]:
    """(WHERE clause over `messages AS m`, parameters). Pure: for tests and EXPLAIN.

    `pending` compiles it for rows still waiting for their full-text row.
    """
    where, comp = _compile(query, folders, accounts, now, pending)
    return where, comp.params


def _compile(
    query: Query,
    folders: Sequence[tuple[str, str]],
    accounts: Iterable[str] | None,
    now: float | None,
    pending: bool = False,
    probe: bool = False,
    ranges: Sequence[tuple[int, int]] = (),
) -> tuple[str, _Compiler]:
    comp = _Compiler(time.time() if now is None else now, folders, pending, probe, ranges)
    where = comp.where(query.root)
    if accounts is not None:
        names = list(accounts)
        where = f"m.account IN ({','.join('?' * len(names))}) AND {where}"
        comp.params[:0] = names
    return where, comp


def _matches(
    index: MailIndex,
    query: Query,
    accounts: Iterable[str] | None,
    now: float | None,
    limit: int | None = None,
) -> tuple[str, list[Any], bool]:
    """(FROM ... WHERE ... giving the matches as `m`, params, is it a union?).

    While the store has rows without a full-text row yet (fts_pending: bulk
    downloads whose bodies are indexed in the background), a query with full-text
    terms is two selects: the indexed rows through FTS5, the waiting rows through
    their header columns. Otherwise it is one plain select.
    """
    ensure_search_index(index)
    folders = _folders(index)
    names = list(accounts) if accounts is not None else None
    when = time.time() if now is None else now
    where, comp = _compile(query, folders, names, when)
    params = comp.params
    needs_fts = any(t.field in _FTS_COLUMNS for t in query.terms())
    if not needs_fts or not _has_pending(index):
        if limit is not None and _dense(index, comp, limit):
            where, comp = _compile(query, folders, names, when, probe=True)
            params = comp.params
        return f"messages AS m WHERE {where}", params, False
    pending_where, pending_params = compile_query(query, folders, names, when, pending=True)
    sql = (
        "(SELECT m.id, m.date, m.flags FROM messages AS m"
        f" WHERE m.id NOT IN (SELECT id FROM fts_pending) AND {where}"
        " UNION ALL SELECT m.id, m.date, m.flags FROM messages AS m"
        f" WHERE m.id IN (SELECT id FROM fts_pending) AND {pending_where}) AS m"
    )
    return sql, [*params, *pending_params], True


def _dense(index: MailIndex, comp: _Compiler, limit: int) -> bool:
    """Is the query's one full-text condition in so much of the mail that walking
    newest-first and probing each row beats collecting every hit (PROBE_COST)?

    Hits h cost ~h us collected; probing costs ~PROBE_COST us per row walked, and
    finding `limit` hits walks ~limit * total / h rows: probing wins when
    h * h > PROBE_COST * limit * total. Counting stops at that threshold, so the
    question itself costs at most a few ms.
    """
    if len(comp.fts_in) != 1 or comp.fts_not_in or limit <= 0:
        return False
    if comp.fts_in[0].endswith(" *") or " * " in comp.fts_in[0] or " *)" in comp.fts_in[0]:
        # A prefix probe merges the doclists of every word it expands to, per row:
        # measured at seconds per page. Collecting its hits once is far cheaper.
        return False
    total = index.execute_read("SELECT coalesce(sum(total), 0) FROM folder_stats")[0][0]
    threshold = int((PROBE_COST * limit * int(total)) ** 0.5)
    if threshold < 1000:
        return False  # a small index: collecting is cheap whatever the word
    hits = index.execute_read(
        f"SELECT count(*) FROM ({_FTS_SELECT} LIMIT ?)", (comp.fts_in[0], threshold)
    )[0][0]
    return int(hits) >= threshold


def _first_page(
    index: MailIndex,
    query: Query,
    accounts: Iterable[str] | None,
    now: float | None,
    limit: int,
) -> tuple[list[int] | None, bool]:
    """(page, may_be_dense): the first `limit` ids of a full-text query found among
    the newest messages, or None when this plan does not apply and run_query
    collects or probes as before; may_be_dense is False when the windows showed
    the query too rare for probing (_dense need not count its hits).

    A window is the newest n messages (older than the query's top-level before:, if
    it has one) and the condition "date > c", c the oldest date in it: every message
    the query can match with a date above c is in the window. So if the query has
    `limit` hits with date > c, they are exactly its first page. Mail gets its ids
    as it arrives, so the window's ids fall in a few narrow ranges (one per folder
    after a first sync, which stores folder after folder), and each full-text
    sub-select is cut to those ranges: FTS5 reads those stretches of each word's
    list, not the whole list (a word in 90% of 100k messages: ~100 ms collected,
    ~3 ms windowed; a phrase of two such words ~80 -> ~5 ms).

    Too few hits: the window grows by the hit rate seen so far, or, when the query
    is rare enough that collecting every hit is cheap, the plain plan runs. So it
    does when the window's ids spread over half the index (mail imported in no
    order) or the window reaches half the mail: the cut would save little.
    """
    terms = query.terms()
    if limit <= 0 or not any(t.field in _FTS_COLUMNS for t in terms):
        return None, True  # column conditions alone: already an index walk that stops early
    if any(t.field in _FTS_COLUMNS and t.prefix and not _indexed_prefix(t.value) for t in terms):
        # FTS5 merges the lists of every word an unindexed prefix expands to before it
        # looks at rowids: each window would pay that whole cost again.
        return None, True
    ensure_search_index(index)
    if not index.execute_read(
        "SELECT count(*) FROM sqlite_master WHERE name = 'messages_search_by_date'"
    )[0][0]:
        return None, True  # no date index (a read-only index): each window would be a sort
    if _has_pending(index):
        return None, True
    total = int(index.execute_read("SELECT coalesce(sum(total), 0) FROM folder_stats")[0][0])
    if total < WINDOW_MIN_ROWS:
        return None, True
    # Two sub-selects: each is one rowid b-tree seek, "min(id), max(id)" a full scan.
    low, high = index.execute_read(
        "SELECT (SELECT min(id) FROM messages), (SELECT max(id) FROM messages)"
    )[0]
    if low is None:
        return None, True
    when = time.time() if now is None else now
    names = list(accounts) if accounts is not None else None
    folders = _folders(index)
    ceiling = _date_ceiling(query.root, when)
    newest = (
        "SELECT date, id FROM messages"
        + (" WHERE date < ?" if ceiling is not None else "")
        + " ORDER BY date DESC LIMIT ?"
    )
    bound = [] if ceiling is None else [ceiling]
    size = limit * WINDOW_START
    while size * 2 <= total:
        window = index.execute_read(newest, [*bound, size])
        if not window:
            return None, True
        ranges = _id_ranges(sorted(r[1] for r in window), WINDOW_RANGES)
        if sum(b - a + 1 for a, b in ranges) * 2 > high - low + 1:
            return None, True
        where, comp = _compile(query, folders, names, when, ranges=ranges)
        # "id <= the window's highest": mail stored since the window was read (new
        # ids are higher) waits for the next run instead of being judged by full-text
        # sub-selects that were cut without it.
        ids = index.execute_read(
            f"SELECT m.id FROM messages AS m WHERE m.date > ? AND m.id <= ? AND {where}"
            " ORDER BY m.date DESC, m.id DESC LIMIT ?",
            [window[-1][0], ranges[-1][1], *comp.params, limit],
        )
        if len(ids) >= limit:
            return [r[0] for r in ids], True
        if not ids or len(ids) * total < WINDOW_SPARSE * size:
            return None, False  # few hits in all: collecting them beats another window
        # Aim at `limit` hits with half again as many to spare.
        size = max(size * 2, size * limit * 3 // (2 * len(ids)))
    return None, True


def _id_ranges(ids: Sequence[int], most: int) -> list[tuple[int, int]]:
    """Sorted ids as at most `most` ranges that hold them all, split at the widest gaps."""
    gaps = heapq.nlargest(most - 1, range(1, len(ids)), key=lambda i: ids[i] - ids[i - 1])
    out = []
    start = 0
    for cut in sorted(i for i in gaps if ids[i] - ids[i - 1] > 1):
        out.append((ids[start], ids[cut - 1]))
        start = cut
    out.append((ids[start], ids[-1]))
    return out


def _date_ceiling(node: Node, now: float) -> int | None:
    """The query's top-level before: (every match is older), if it has one."""
    if isinstance(node, Term):
        return node.timestamp(now) if node.field == "before" else None
    if isinstance(node, And):
        found = [
            c.timestamp(now) for c in node.children if isinstance(c, Term) and c.field == "before"
        ]
        return min(found) if found else None
    return None


def _indexed_prefix(value: str) -> bool:
    """Does messages_fts have a prefix index for this prefix term (its last word)?"""
    words = _TOKEN.findall(value)
    return bool(words) and len(words[-1]) in _INDEXED_PREFIXES


def _has_pending(index: MailIndex) -> bool:
    try:
        return bool(index.execute_read("SELECT EXISTS (SELECT 1 FROM fts_pending)")[0][0])
    except MailError:  # an index from before the deferred full-text fill
        return False


def run_query(
    index: MailIndex,
    query: Query,
    accounts: Iterable[str] | None = None,
    limit: int | None = None,
    now: float | None = None,
) -> list[int]:
    """Ids of the matching messages, newest first (ties: higher id first)."""
    probe_limit = limit
    if limit is not None:
        accounts = list(accounts) if accounts is not None else None  # read twice below
        page, may_be_dense = _first_page(index, query, accounts, now, int(limit))
        if page is not None:
            return page
        if not may_be_dense:
            probe_limit = None  # too rare to probe: no need for _dense to count the hits
    source, params, _ = _matches(index, query, accounts, now, probe_limit)
    sql = f"SELECT m.id FROM {source} ORDER BY m.date DESC, m.id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(max(0, int(limit)))
    return [r[0] for r in index.execute_read(sql, params)]


def count_query(
    index: MailIndex,
    query: Query,
    accounts: Iterable[str] | None = None,
    now: float | None = None,
) -> tuple[int, int]:
    """(total, unread) of a query, for the live count beside a saved search."""
    source, params, _ = _matches(index, query, accounts, now)
    rows = index.execute_read(
        f"SELECT count(*), coalesce(sum(instr(m.flags, 'S') = 0), 0) FROM {source}", params
    )
    return int(rows[0][0]), int(rows[0][1])


# --------------------------------------------------------------------------- folders


class SearchFolder(Struct):
    """Search results the UI pages like a folder: ids fixed at run time, rows on demand.

    Envelopes carry their real (account, folder, key), so open / flag / move act on
    the real message; call `refresh()` after such changes to re-run the query.
    """

    name: str
    query: Query
    accounts: tuple[str, ...] | None = None
    ids: list[int] = field(default_factory=list)

    @classmethod
    def run(
        cls,
        index: MailIndex,
        name: str,
        query: Query,
        accounts: Iterable[str] | None = None,
    ) -> SearchFolder:
        folder = cls(name, query, tuple(accounts) if accounts is not None else None)
        folder.refresh(index)
        return folder

    def refresh(self, index: MailIndex) -> None:
        self.ids = run_query(index, self.query, self.accounts)

    @property
    def total(self) -> int:
        return len(self.ids)

    def page_ids(self, offset: int, limit: int) -> list[int]:
        offset = max(0, offset)
        return self.ids[offset : offset + max(0, limit)]

    def page(self, index: MailIndex, offset: int, limit: int) -> list[Envelope]:
        """Envelopes of one screenful; rows deleted since the run are skipped."""
        return index.envelopes(self.page_ids(offset, limit))

    def merge_ids(self, index: MailIndex, extra: Iterable[int]) -> None:
        """Add ids found another way (a server search), keeping newest-first order."""
        wanted = set(self.ids).union(extra)
        if len(wanted) == len(self.ids):
            return
        rows = index.execute_read(
            "SELECT id FROM messages WHERE id IN (SELECT value FROM json_each(?))"
            " ORDER BY date DESC, id DESC",
            (_json_ids(wanted),),
        )
        self.ids = [r[0] for r in rows]


def _json_ids(ids: Iterable[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


class VirtualFolder(Struct, frozen=True):
    """A folder made of a query: the unified inbox or a saved search from the config."""

    name: str
    query: Query
    unified_inbox: bool = False

    def counts(self, index: MailIndex, accounts: Iterable[str] | None = None) -> tuple[int, int]:
        """(total, unread), live. The unified inbox reads the O(1) per-folder counters."""
        if self.unified_inbox:
            names = list(accounts) if accounts is not None else None
            rows = index.execute_read(
                "SELECT account, total, unread FROM folder_stats WHERE folder = ?", (INBOX,)
            )
            picked = [r for r in rows if names is None or r[0] in names]
            return sum(int(r[1]) for r in picked), sum(int(r[2]) for r in picked)
        return count_query(index, self.query, accounts)

    def open(self, index: MailIndex, accounts: Iterable[str] | None = None) -> SearchFolder:
        return SearchFolder.run(index, self.name, self.query, accounts)


def virtual_folders(saved: dict[str, str] | None = None) -> list[VirtualFolder]:
    """The unified inbox, then the saved searches in config order.

    `saved` is `AppConfig.searches` (name -> query text, already checked when the
    config was loaded); a query that no longer parses is skipped, not fatal.
    """
    from tui_mail.search.query import QueryError, parse_query

    out = [VirtualFolder(UNIFIED_INBOX, parse_query(f"folder:{INBOX}"), unified_inbox=True)]
    for name, text in (saved or {}).items():
        try:
            out.append(VirtualFolder(name, parse_query(text)))
        except QueryError:
            continue
    return out


def ids_for_uids(
    index: MailIndex, account: str, folder: str, uids: Iterable[int]
) -> tuple[list[int], list[int]]:
    """Map a server search's UIDs to index ids: (ids we have, UIDs not downloaded)."""
    have = index.uids_in_folder(account, folder)
    found: list[int] = []
    missing: list[int] = []
    for uid in uids:
        row = have.get(uid)
        if row is None:
            missing.append(uid)
        else:
            found.append(row[0])
    return found, missing
