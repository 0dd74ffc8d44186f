"""A parsed query as server-side search terms (ReceiveBackend.search), for mail
not downloaded. Pure functions.

`ReceiveBackend.search(folder, terms)` ANDs a flat list of `SearchTerm`s, each
possibly negated, so a query is brought to that shape here:

1. `account:` and `folder:` terms are decided for the (account, folder) being
   asked and fold away (`folder:INBOX OR folder:Archive is:flagged` asks INBOX
   for everything and Archive for FLAGGED; a folder the query excludes is not
   asked at all);
2. negations are pushed down to single terms (De Morgan);
3. ORs are multiplied out: the answer is the union of a few AND-searches.
   A query that needs more than MAX_SEARCHES of them is refused (QueryError)
   rather than sending a storm of commands.

The mapping is as close as IMAP allows: free text is TEXT (headers and body,
so a little wider than locally), dates are SINCE/BEFORE on the server's
internal date, `has:attachment` is "Content-Type contains multipart/mixed".
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from msgspec import Struct

from tui_mail.search.query import IS_VALUES, And, Node, Not, Query, QueryError, Term

if TYPE_CHECKING:
    from tui_mail.backends.base import SearchTerm

MAX_SEARCHES = 16
_FLAG_FIELDS = {"S": "seen", "F": "flagged", "R": "answered", "D": "draft"}


class _Lit(Struct, frozen=True):
    """A term with its sign, after negations were pushed down."""

    term: Term
    negate: bool


# A condition in disjunctive normal form: a list of AND-lists, or a constant.
_Dnf = bool | list[list[_Lit]]


def _folds(term: Term, account: str, folder: str) -> bool | None:
    from tui_mail.search.run import folder_matches

    if term.field == "account":
        return term.value == account
    if term.field == "folder":
        return folder_matches(term.value, folder)
    return None


def _dnf(node: Node, negate: bool, account: str, folder: str) -> _Dnf:
    if isinstance(node, Not):
        return _dnf(node.child, not negate, account, folder)
    if isinstance(node, Term):
        fixed = _folds(node, account, folder)
        if fixed is not None:
            return fixed != negate
        return [[_Lit(node, negate)]]
    # De Morgan: a negated AND is an OR of negations, and the other way round.
    conjunctive = isinstance(node, And) != negate
    parts = [_dnf(c, negate, account, folder) for c in node.children]
    if conjunctive:
        if any(p is False for p in parts):
            return False
        result: list[list[_Lit]] = [[]]
        for part in parts:
            if part is True:
                continue
            assert isinstance(part, list)
            result = [a + b for a in result for b in part]
            if len(result) > MAX_SEARCHES:
                raise QueryError(
                    f"too many alternatives for a server search (more than {MAX_SEARCHES})",
                    node.children[0].pos if isinstance(node.children[0], Term) else 0,
                )
        return result if any(result) else True
    if any(p is True for p in parts):
        return True
    out: list[list[_Lit]] = []
    for part in parts:
        if part is False:
            continue
        assert isinstance(part, list)
        out.extend(part)
    if len(out) > MAX_SEARCHES:
        raise QueryError(f"too many alternatives for a server search (more than {MAX_SEARCHES})", 0)
    return out or False


def _local_day(ts: int) -> _dt.date:
    return _dt.date.fromtimestamp(ts)


def _search_term(lit: _Lit, now: float) -> SearchTerm:
    from tui_mail.backends.base import SearchTerm

    t, negate = lit.term, lit.negate
    if t.field in ("text", "subject", "body", "from", "to", "cc"):
        return SearchTerm(t.field, t.value, negate)
    if t.field == "is":
        letter, present = IS_VALUES[t.value]
        return SearchTerm(_FLAG_FIELDS[letter], None, negate == present)
    if t.field == "has":
        # No standard key for "has an attachment"; mixed multiparts usually carry one.
        return SearchTerm("header:Content-Type", "multipart/mixed", negate)
    if t.field in ("before", "after"):
        # IMAP dates are whole days: "after:7d" becomes SINCE that day (a little wider).
        day = _local_day(t.timestamp(now))
        return SearchTerm("before" if t.field == "before" else "since", day, negate)
    raise AssertionError(f"unhandled field {t.field}")


def server_searches(
    query: Query, account: str, folder: str, now: float | None = None
) -> list[list[SearchTerm]] | None:
    """AND-lists of terms for `folder` whose union answers `query`; None: skip the folder.

    `[[]]` means "every message" (ReceiveBackend.search takes [] as ALL).
    Raises QueryError when the query has too many alternatives.
    """
    when = time.time() if now is None else now
    dnf = _dnf(query.root, False, account, folder)
    if dnf is False:
        return None
    if dnf is True:
        return [[]]
    assert isinstance(dnf, list)
    return [[_search_term(lit, when) for lit in conj] for conj in dnf]


def server_search_plan(
    query: Query, account: str, folders: Iterable[str], now: float | None = None
) -> dict[str, list[list[SearchTerm]]]:
    """server_searches() for each folder of an account, leaving out folders it excludes."""
    plan = {}
    for folder in folders:
        searches = server_searches(query, account, folder, now)
        if searches is not None:
            plan[folder] = searches
    return plan
