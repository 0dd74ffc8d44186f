"""Threads: which conversation a message belongs to, and its shape inside it.

Two halves:

* `assign_threads` runs inside the index's write transaction for every batch of
  new rows (MailIndex calls it through a marked hook), so the thread id is kept
  in the index as mail arrives and nothing is recomputed when a folder opens.
  A message joins the thread of any indexed message it names (In-Reply-To,
  References), of any message naming it (the reply came first), of any message
  naming the same parent (siblings of a missing parent) and, when it names no
  parent at all, by subject: a "Re:" with no references joins the latest thread
  of the same base subject from the weeks before it, and an original joins the
  reference-less replies to it that arrived first. Threads this bridges merge
  under the smallest id. Batches give the same result as one-by-one.
  Loops and duplicated ids cannot break it: it is a union of sets, not a tree.

* `build_tree` is JWZ's algorithm (https://www.jwz.org/doc/threading.html) over
  one thread's messages, for display: parent links, depth, order. It tolerates
  missing parents (empty containers, pruned), duplicate Message-IDs (the copy
  becomes a sibling), reference loops (a link that would close one is dropped),
  and replies indexed before their parent.

No import of the store: `store.index` imports this module.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from msgspec import Struct, field

if TYPE_CHECKING:
    from tui_mail.store.index import MailIndex

# The reply/forward prefixes of common languages, with counters like "Re[2]:".
_REPLY_PREFIX = re.compile(
    r"^(\s*((re|fwd?|aw|sv|vs|wg|antw|tr|rif|odp)(\[\d+\])?\s*:)\s*)+", re.IGNORECASE
)
# How far apart a reference-less reply and the thread it joins by subject may be.
# Longer joins unrelated "Re: status" threads of different months.
SUBJECT_WINDOW = 45 * 86400
CLOCK_SKEW = 86400  # a reply dated a little before its parent (wrong clocks)
_MAX_WALK = 10_000  # ancestor walks stop here whatever the data looks like

# (ident, thread) of indexed messages having that Message-ID or naming it: one seek
# per ident, and UNION drops the copies of one message in several folders. The
# ident is its position in the JSON array (an int costs less to fetch than text),
# or the text SQLite compared, which is not the one sent if it holds a NUL (JSON
# strings end there).
_ID_LOOKUP = """
SELECT {ident}, m.thread_id FROM json_each(?2) AS j CROSS JOIN messages AS m
WHERE m.message_id = j.value AND +m.account = ?1 AND m.thread_id IS NOT NULL
UNION
SELECT {ident}, m.thread_id
FROM json_each(?2) AS j CROSS JOIN msgrefs AS r CROSS JOIN messages AS m
WHERE r.ref = j.value AND r.account = ?1 AND m.id = r.msg AND m.thread_id IS NOT NULL
"""
_ID_BY_POSITION = _ID_LOOKUP.format(ident="j.key")
_ID_BY_TEXT = _ID_LOOKUP.format(ident="j.value")
# Through the (account, sort_subject, date) index: one bounded range per subject,
# the rows of the date window only (a subject that recurs has many more): every
# candidate of the subjects in ?2, those a reference-less "Re:" of the batch looks
# up and those _REFLESS_SUBJECTS found.
_SUBJECT_LOOKUP = """
SELECT sort_subject, thread_id, date, subject, in_reply_to = '' AND refs = ''
FROM messages
WHERE account = ?1 AND folder IN (SELECT folder FROM folder_stats WHERE account = ?1)
  AND sort_subject IN (SELECT value FROM json_each(?2)) AND date BETWEEN ?3 AND ?4
  AND thread_id IS NOT NULL
"""
# Of the other subjects, those with a reference-less candidate having a ":" (a
# reply, perhaps), the only kind an original joins. The condition is the partial
# index messages_by_refless_subject's, so only those rows are read: a subject
# without one (most of them) joins nothing, and its candidates need not be read.
_REFLESS_SUBJECTS = """
SELECT DISTINCT sort_subject FROM messages
WHERE account = ?1 AND folder IN (SELECT folder FROM folder_stats WHERE account = ?1)
  AND sort_subject IN (SELECT value FROM json_each(?2)) AND date BETWEEN ?3 AND ?4
  AND thread_id IS NOT NULL
  AND in_reply_to = '' AND refs = '' AND instr(subject, ':')
"""


def base_subject(subject: str) -> str:
    """The subject without Re:/Fwd: chains, case-folded: what subject threading compares.

    Equal to the index's `sort_subject` column, which is what lets the lookup use
    its index.
    """
    if ":" not in subject:  # every prefix ends in ":"; most subjects have none
        return subject.strip().casefold()
    return _REPLY_PREFIX.sub("", subject).strip().casefold()


def is_reply_subject(subject: str) -> bool:
    return ":" in subject and _REPLY_PREFIX.match(subject) is not None


# What threading needs of a row being inserted: (id, Message-ID, parents: its
# In-Reply-To and References ids without its own, subject, date, base_subject() of
# the subject, which the index computes anyway as sort_subject). A plain tuple: a
# batch makes thousands.
NewMessage = tuple[int, str, Sequence[str], str, int, str]


class UnionFind:
    """Thread ids as sets; a merged set is named by its smallest id."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while (up := self.parent.get(root, root)) != root:
            root = up
        while x != root:  # path compression keeps later finds O(1)
            self.parent[x], x = root, self.parent.get(x, x)
        return root

    def merge(self, ids: Iterable[int]) -> int:
        roots = {self.find(i) for i in ids}
        target = min(roots)
        for r in roots:
            if r != target:
                self.parent[r] = target
        return target


# A message a reference-less one may join by subject: (date, thread, reply: a "Re:"
# subject, refless: names no parent). Tuples: one is made per row and per candidate.
_SubjectSeen = tuple[int, int, bool, bool]


def assign_threads(
    conn: sqlite3.Connection, account: str, rows: Sequence[NewMessage]
) -> dict[int, int]:
    """{new row id: thread id} for rows about to be inserted; merges indexed threads
    the batch bridges (UPDATE in the same transaction)."""
    idents = [row[1] for row in rows if row[1]]
    for row in rows:
        if row[2]:
            idents.extend(row[2])
    uf = UnionFind()
    seen: dict[str, int] = {}  # ident -> one thread having it; find() resolves merges
    indexed: set[int] = set()
    if idents:
        keys = list(dict.fromkeys(idents))
        wanted = json.dumps(keys)
        if "\\u0000" in wanted:  # never from the parser, which makes controls visible
            hits: Iterable[tuple[str, int]] = conn.execute(_ID_BY_TEXT, (account, wanted))
        else:
            hits = ((keys[k], t) for k, t in conn.execute(_ID_BY_POSITION, (account, wanted)))
        for ident, thread in hits:
            indexed.add(thread)
            # Two indexed threads sharing an id a new row names: that row would join
            # them anyway, so joining them now gives the same result.
            known = seen.get(ident)
            seen[ident] = thread if known is None else uf.merge((known, thread))
    by_subject, repeated = _subject_candidates(conn, account, rows, indexed)
    find, merged = uf.find, uf.parent  # an id not in `merged` is its own root
    result: dict[int, int] = {}
    for row_id, message_id, parents, subject, date, base in rows:
        own = seen.get(message_id) if message_id else None
        candidates = None if parents or not base else by_subject.get(base)
        # Only a later row of the same subject reads what this one leaves behind.
        keep = base in repeated
        reply = is_reply_subject(subject) if candidates or keep else False
        # A thread id may name a set merged since: every reader goes through find().
        thread = row_id if own is None else own
        if candidates or parents:
            found = _subject_matches(candidates, date, reply, uf) if candidates else set()
            for ident in parents:
                if ident in seen:
                    found.add(seen[ident])
            if found:
                if own is not None:
                    found.add(own)
                thread = uf.merge(found)
            for ident in parents:
                seen[ident] = thread
        if message_id:
            seen[message_id] = thread
        if keep:
            entry = (date, thread, reply, not parents)
            if base in by_subject:
                by_subject[base].append(entry)
            else:
                by_subject[base] = [entry]
        result[row_id] = thread
    if merged:  # some threads merged: name each by its set
        for row_id, thread in result.items():
            if thread in merged:
                result[row_id] = find(thread)
        stale = [(find(t), t, account) for t in indexed if t in merged]
        if stale:
            # Threads already in the index that this batch joined: fold into the oldest.
            conn.executemany(
                "UPDATE messages SET thread_id = ? WHERE thread_id = ? AND +account = ?", stale
            )
    return result


def _subject_matches(
    candidates: Iterable[_SubjectSeen], date: int, reply: bool, uf: UnionFind
) -> set[int]:
    """Threads a message without references joins by its subject.

    The candidates are every message with the same base subject (indexed, or
    earlier in the batch); only those in the time window count, and ties are
    broken by (date, thread), so arrival order and batching change nothing.
    """
    find = uf.find
    if reply:
        # The latest message of that subject before it: "Re: weekly status" joins
        # this week's status, not every one since the list began. A slightly later
        # one only if nothing came before (the sender's clock is off).
        lo, hi = date - SUBJECT_WINDOW, date + CLOCK_SKEW
        near = [c for c in candidates if lo <= c[0] <= hi]
        if not near:
            return set()
        before = [c for c in near if c[0] <= date]
        if before:
            pick = max(before, key=lambda c: (c[0], find(c[1])))
        else:
            pick = min(near, key=lambda c: (c[0], find(c[1])))
        return {pick[1]}
    # An original: the reference-less replies to it that were indexed first, unless
    # their thread already has an original of its own.
    lo, hi = date - CLOCK_SKEW, date + SUBJECT_WINDOW
    near = [c for c in candidates if c[2] and c[3] and lo <= c[0] <= hi]
    if not near:  # the usual case: other originals of the subject only
        return set()
    margin = SUBJECT_WINDOW + CLOCK_SKEW  # what _subject_candidates fetched, for each row
    claimed = {find(c[1]) for c in candidates if not c[2] and abs(c[0] - date) <= margin}
    return {c[1] for c in near if find(c[1]) not in claimed}


def _subject_candidates(
    conn: sqlite3.Connection, account: str, rows: Sequence[NewMessage], indexed: set[int]
) -> tuple[dict[str, list[_SubjectSeen]], set[str]]:
    """Indexed messages that rows without references may join by subject, and the
    base subjects more than one row of the batch has.

    A subject that only originals of the batch look up gets its candidates only
    when it has a reference-less reply among them (_REFLESS_SUBJECTS, which reads
    a small partial index): without one, _subject_matches() finds nothing for an
    original whatever the other candidates are.
    """
    subjects: set[str] = set()  # looked up: by rows without references
    replies: set[str] = set()  # looked up by a "Re:": every candidate counts
    bases: set[str] = set()
    repeated: set[str] = set()
    dates: list[int] = []
    for _, _, parents, subject, date, base in rows:
        if not base:
            continue
        if base in bases:
            repeated.add(base)
        else:
            bases.add(base)
        if not parents:
            dates.append(date)
            subjects.add(base)
            if ":" in subject and _REPLY_PREFIX.match(subject):  # is_reply_subject()
                replies.add(base)
    out: dict[str, list[_SubjectSeen]] = {}
    if not subjects:
        return out, repeated
    margin = SUBJECT_WINDOW + CLOCK_SKEW  # covers every row's own window
    lo, hi = min(dates) - margin, max(dates) + margin
    # Every candidate of the subjects a "Re:" looks up, and of the others those with
    # a reference-less reply among them (rarely any).
    wanted = sorted(replies)
    others = subjects - replies
    if others:
        found = conn.execute(_REFLESS_SUBJECTS, (account, json.dumps(sorted(others)), lo, hi))
        wanted.extend(subject for (subject,) in found)
    if wanted:
        for subject, thread, date, raw_subject, refless in conn.execute(
            _SUBJECT_LOOKUP, (account, json.dumps(wanted), lo, hi)
        ):
            _add_candidate(out, indexed, subject, thread, date, raw_subject, refless)
    return out, repeated


def _add_candidate(
    out: dict[str, list[_SubjectSeen]],
    indexed: set[int],
    subject: str,
    thread: int,
    date: int,
    raw_subject: str,
    refless: int,
) -> None:
    seen = (int(date), int(thread), is_reply_subject(raw_subject), bool(refless))
    if subject in out:
        out[subject].append(seen)
    else:
        out[subject] = [seen]
    indexed.add(int(thread))


# --------------------------------------------------------------------------- JWZ tree


class ThreadMessage(Struct, frozen=True):
    id: int
    message_id: str
    in_reply_to: str
    references: tuple[str, ...]
    subject: str
    date: int


class Container(Struct, eq=False):
    """A node of the tree: a message, or a placeholder for one we do not have."""

    key: str
    message: ThreadMessage | None = None
    parent: Container | None = None
    children: list[Container] = field(default_factory=list)

    def sort_date(self) -> int:
        if self.message is not None:
            return self.message.date
        return min((c.sort_date() for c in self.children), default=0)


def _is_ancestor(node: Container, maybe: Container) -> bool:
    """Is `maybe` node itself or one of its ancestors? (Bounded: data is hostile.)"""
    cur: Container | None = node
    for _ in range(_MAX_WALK):
        if cur is None:
            return False
        if cur is maybe:
            return True
        cur = cur.parent
    return True  # absurdly deep: refuse the link rather than risk a loop


def _link(parent: Container, child: Container) -> bool:
    if child is parent or _is_ancestor(parent, child):
        return False  # would close a loop
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)
    return True


def _chain(msg: ThreadMessage) -> list[str]:
    refs = [r for r in msg.references if r]
    if msg.in_reply_to and (not refs or refs[-1] != msg.in_reply_to):
        refs.append(msg.in_reply_to)
    out: list[str] = []
    for r in refs:
        if r != msg.message_id and (not out or out[-1] != r):
            out.append(r)
    return out


def build_tree(messages: Iterable[ThreadMessage]) -> list[Container]:
    """JWZ threading over `messages`; returns the roots, oldest first, children by date."""
    table: dict[str, Container] = {}
    ordered = sorted(messages, key=lambda m: (m.date, m.id))
    for msg in ordered:
        key = msg.message_id or f"<no-id-{msg.id}>"
        own = table.get(key)
        if own is not None and own.message is not None:
            # The same Message-ID twice (copies in two folders, or a broken
            # mailer): the second is a message of its own, placed by its references.
            key = f"<dup-{msg.id}>{key}"
            own = None
        if own is None:
            own = table[key] = Container(key)
        own.message = msg
        chain = _chain(msg)
        prev: Container | None = None
        for ref in chain:
            node = table.get(ref)
            if node is None:
                node = table[ref] = Container(ref)
            # Links already made by earlier messages are kept: a message's view
            # of its own ancestry only fills gaps.
            if prev is not None and node.parent is None:
                _link(prev, node)
            prev = node
        if prev is not None:
            if own.parent is not prev:
                _link(prev, own)  # its own In-Reply-To wins over what others said
        elif own.parent is not None:
            own.parent.children.remove(own)
            own.parent = None
    roots = [c for c in table.values() if c.parent is None]
    roots = _prune(roots)
    roots = _group_by_subject(roots)
    _sort(roots)
    return roots


def _prune(roots: list[Container]) -> list[Container]:
    """Drop placeholders without children; splice out the others, children moving up.

    An empty root with several children stays: it is the missing message the
    siblings all answer, and a flat display shows them side by side under it.
    """
    order: list[Container] = []  # pre-order; iterative: a 10,000-deep chain is fine
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    for node in reversed(order):  # every node after all of its descendants
        if node.message is not None:
            continue
        parent = node.parent
        if node.children and parent is None and len(node.children) > 1:
            continue
        for child in node.children:
            child.parent = parent
            if parent is not None:
                parent.children.append(child)
        node.children = []
        if parent is not None:
            parent.children.remove(node)
    return [n for n in order if n.parent is None and (n.message is not None or n.children)]


def _group_by_subject(roots: list[Container]) -> list[Container]:
    """A root that is a reference-less "Re:" goes under the root it answers by subject."""
    originals: dict[str, Container] = {}
    for root in sorted(roots, key=Container.sort_date):
        msg = root.message
        if msg is not None and not is_reply_subject(msg.subject):
            originals.setdefault(base_subject(msg.subject), root)
    out: list[Container] = []
    for root in roots:
        msg = root.message
        if msg is not None and is_reply_subject(msg.subject) and not _chain(msg):
            target = originals.get(base_subject(msg.subject))
            if (
                target is not None
                and target is not root
                and target.sort_date() <= msg.date + CLOCK_SKEW
                and _link(target, root)
            ):
                continue
        out.append(root)
    return out


def _sort(roots: list[Container]) -> None:
    roots.sort(key=lambda c: (c.sort_date(), c.message.id if c.message else 0))
    stack = list(roots)
    while stack:
        node = stack.pop()
        node.children.sort(key=lambda c: (c.sort_date(), c.message.id if c.message else 0))
        stack.extend(node.children)


def flatten(roots: Sequence[Container]) -> list[tuple[int, int]]:
    """(message id, depth) in display order; placeholders take no row and no depth."""
    out: list[tuple[int, int]] = []
    stack: list[tuple[Container, int]] = [(r, 0) for r in reversed(roots)]
    while stack:
        node, depth = stack.pop()
        child_depth = depth
        if node.message is not None:
            out.append((node.message.id, depth))
            child_depth = depth + 1
        stack.extend((c, child_depth) for c in reversed(node.children))
    return out


# --------------------------------------------------------------------------- index reads


def _thread_message(row: Sequence[object]) -> ThreadMessage:
    msg_id, message_id, in_reply_to, refs, subject, date = row
    return ThreadMessage(
        int(msg_id),  # type: ignore[call-overload]
        str(message_id),
        str(in_reply_to),
        tuple(str(refs).split()),
        str(subject),
        int(date),  # type: ignore[call-overload]
    )


def thread_view(index: MailIndex, thread_id: int) -> list[tuple[int, int]]:
    """(id, depth) of one thread's messages in display order (JWZ over its rows)."""
    return thread_views(index, [thread_id]).get(thread_id, [])


def thread_views(index: MailIndex, thread_ids: Iterable[int]) -> dict[int, list[tuple[int, int]]]:
    """thread_view() for many threads with one query (a threaded page of a folder)."""
    wanted = sorted(set(thread_ids))
    if not wanted:
        return {}
    rows = index.execute_read(
        "SELECT thread_id, id, message_id, in_reply_to, refs, subject, date FROM messages"
        " WHERE thread_id IN (SELECT value FROM json_each(?))",
        (json.dumps(wanted),),
    )
    grouped: dict[int, list[ThreadMessage]] = {}
    for row in rows:
        grouped.setdefault(int(row[0]), []).append(_thread_message(row[1:]))
    return {t: flatten(build_tree(msgs)) for t, msgs in grouped.items()}
