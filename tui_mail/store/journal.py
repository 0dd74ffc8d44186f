"""Pending operations (flag changes, moves, deletes, sends) waiting for the server.

They live in the index database so that a local change and its journal entry
can be written in one transaction (`with index.transaction(): ...`): either
both happen or neither. An entry is deleted once the server confirms it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from msgspec import Struct

from tui_mail.core.errors import StoreError
from tui_mail.store.index import MailIndex

PENDING = "pending"
FAILED = "failed"  # tried, will be retried at next_attempt

_COLUMNS = "id, account, op, payload, state, attempts, next_attempt, created, updated, error"


class JournalEntry(Struct, frozen=True):
    id: int
    account: str
    op: str  # "set_flags", "move", "delete", "append", "send", ...
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt: float  # unix time; 0 = as soon as possible
    created: float
    updated: float
    error: str


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    try:
        payload = json.loads(row[3])
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {"value": payload}
    return JournalEntry(
        row[0], row[1], row[2], payload, row[4], row[5], row[6], row[7], row[8], row[9]
    )


def _encode(op: str, payload: dict[str, Any]) -> str:
    try:
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"journal: payload of {op!r} is not JSON: {exc}") from exc


class Journal:
    def __init__(self, index: MailIndex) -> None:
        self.index = index

    def add(self, account: str, op: str, payload: dict[str, Any]) -> int:
        text = _encode(op, payload)
        now = time.time()
        with self.index.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO journal(account, op, payload, state, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (account, op, text, PENDING, now, now),
            )
            return int(cur.lastrowid or 0)

    def pending(self, account: str, due_before: float | None = None) -> list[JournalEntry]:
        """Entries not yet confirmed, oldest first; with `due_before`, only those due by then."""
        sql = f"SELECT {_COLUMNS} FROM journal WHERE account = ?"
        params: list[Any] = [account]
        if due_before is not None:
            sql += " AND next_attempt <= ?"
            params.append(due_before)
        rows = self.index.execute_read(sql + " ORDER BY id", params)
        return [_entry(tuple(r)) for r in rows]

    def get(self, entry_id: int) -> JournalEntry | None:
        rows = self.index.execute_read(f"SELECT {_COLUMNS} FROM journal WHERE id = ?", (entry_id,))
        return _entry(tuple(rows[0])) if rows else None

    def mark_done(self, entry_id: int) -> None:
        """The server confirmed it: the entry is removed."""
        with self.index.transaction() as conn:
            conn.execute("DELETE FROM journal WHERE id = ?", (entry_id,))

    def retarget(self, entry_id: int, msg_id: int) -> None:
        """Point an entry at the message's row under a new id (an index rebuild)."""
        found = self.get(entry_id)
        if found is not None:
            self._set_payload(found, {**found.payload, "id": msg_id})

    def rename_folder(self, account: str, old: str, new: str) -> None:
        """Entries about messages in `old` (or a folder inside it) follow it to `new`."""
        prefix = old + "/"
        for entry in self.pending(account):
            folder = entry.payload.get("folder")
            if isinstance(folder, str) and (folder == old or folder.startswith(prefix)):
                self._set_payload(entry, {**entry.payload, "folder": new + folder[len(old) :]})

    def _set_payload(self, entry: JournalEntry, payload: dict[str, Any]) -> None:
        text = _encode(entry.op, payload)
        with self.index.transaction() as conn:
            conn.execute(
                "UPDATE journal SET payload = ?, updated = ? WHERE id = ?",
                (text, time.time(), entry.id),
            )

    def mark_failed(self, entry_id: int, error: str, retry_at: float) -> None:
        with self.index.transaction() as conn:
            conn.execute(
                "UPDATE journal SET state = ?, attempts = attempts + 1, next_attempt = ?,"
                " error = ?, updated = ? WHERE id = ?",
                (FAILED, retry_at, error, time.time(), entry_id),
            )

    def count_pending(self, account: str) -> int:
        rows = self.index.execute_read("SELECT count(*) FROM journal WHERE account = ?", (account,))
        return int(rows[0][0])
