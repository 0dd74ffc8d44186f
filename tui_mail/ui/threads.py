"""The threaded order of one folder: threads by latest activity, replies under parents.

The index already groups messages into threads (`thread_id`, from
Message-ID / In-Reply-To / References); this only orders a folder's rows and
gives each its depth for the indent. Pure apart from one read query, and run
in a thread worker: 100,000 rows take a few hundred milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

MAX_DEPTH = 32  # a reply chain deeper than this is drawn flat (and guards against loops)


class Row(NamedTuple):
    id: int
    thread_id: int | None
    date: int
    message_id: str
    in_reply_to: str


def thread_order(rows: Iterable[Row], descending: bool = True) -> tuple[list[int], dict[int, int]]:
    """Ids in display order and {id: depth}.

    Threads are ordered by their newest message (newest first when
    `descending`); inside a thread, a message follows its parent (by
    In-Reply-To, when the parent is in this folder), siblings oldest first.
    A message whose parent is not here hangs under the thread's first message.
    """
    threads: dict[int, list[Row]] = {}
    for row in rows:
        key = row.thread_id if row.thread_id is not None else -row.id
        threads.setdefault(key, []).append(row)

    def newest(members: list[Row]) -> tuple[int, int]:
        return max((r.date, r.id) for r in members)

    order = sorted(threads.values(), key=newest, reverse=descending)
    ids: list[int] = []
    depths: dict[int, int] = {}
    for members in order:
        if len(members) == 1:
            ids.append(members[0].id)
            depths[members[0].id] = 0
            continue
        members.sort(key=lambda r: (r.date, r.id))
        by_msgid = {r.message_id: r for r in members if r.message_id}
        children: dict[int, list[Row]] = {}
        roots: list[Row] = []
        for r in members:
            parent = by_msgid.get(r.in_reply_to) if r.in_reply_to else None
            if parent is None or parent.id == r.id:
                roots.append(r)
            else:
                children.setdefault(parent.id, []).append(r)
        if not roots:  # every message replies to another: a loop; start at the oldest
            roots = [members[0]]
        first = roots[0]
        # Orphans (their parent is elsewhere or unknown) hang under the first root.
        stack: list[tuple[Row, int]] = [(r, 1) for r in reversed(roots[1:])] + [(first, 0)]
        seen: set[int] = set()
        while stack:
            row, depth = stack.pop()
            if row.id in seen:
                continue
            seen.add(row.id)
            ids.append(row.id)
            depths[row.id] = min(depth, MAX_DEPTH)
            for child in reversed(children.get(row.id, [])):
                stack.append((child, depth + 1))
        for r in members:  # anything a broken reply loop left out
            if r.id not in seen:
                ids.append(r.id)
                depths[r.id] = 1
    return ids, depths


def load_thread_order(
    index: Any, account: str, folder: str, descending: bool = True
) -> tuple[list[int], dict[int, int]]:
    rows = index.execute_read(
        "SELECT id, thread_id, date, message_id, in_reply_to FROM messages"
        " WHERE account = ? AND folder = ?",
        (account, folder),
    )
    return thread_order((Row(*r) for r in rows), descending)
