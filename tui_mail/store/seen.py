"""Which server messages were ever stored locally, per account and folder.

Download-only accounts (POP3) must never fetch a message twice, even after
the user deleted the local copy, and must survive a kill at any point. Each
server id goes through two durable states:

- `begun`: we are about to write the file under `local_key` (recorded first);
- `stored`: the file is fsynced and indexed.

After a crash, a `begun` entry whose file exists is promoted to `stored`
(the write finished); one whose file is missing is dropped and fetched
again. Either way exactly one local copy results.

This lives in its own database, not in the index: the index is a cache that
may be reset and rebuilt from the Maildir, and losing this record would
download every message again.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from msgspec import Struct

from tui_mail.core.errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS server_seen(
    account TEXT NOT NULL,
    folder TEXT NOT NULL,
    server_key TEXT NOT NULL,
    local_key TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('begun', 'stored')),
    first_seen REAL NOT NULL,
    PRIMARY KEY (account, folder, server_key)
)
"""


class SeenEntry(Struct, frozen=True):
    server_key: str
    local_key: str
    state: str
    first_seen: float


class SeenServerIds:
    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a record must survive power loss before the server is told to delete.
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA busy_timeout = 5000")
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the download record {path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def _run(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"download record: {exc}") from exc

    def entries(self, account: str, folder: str) -> dict[str, SeenEntry]:
        rows = self._run(
            "SELECT server_key, local_key, state, first_seen FROM server_seen"
            " WHERE account = ? AND folder = ?",
            (account, folder),
        )
        return {str(r[0]): SeenEntry(str(r[0]), str(r[1]), str(r[2]), float(r[3])) for r in rows}

    def begin(self, account: str, folder: str, server_key: str, local_key: str) -> None:
        self._run(
            "INSERT OR REPLACE INTO server_seen VALUES (?, ?, ?, ?, 'begun', ?)",
            (account, folder, server_key, local_key, time.time()),
        )

    def mark_stored(self, account: str, folder: str, server_key: str) -> None:
        self._run(
            "UPDATE server_seen SET state = 'stored'"
            " WHERE account = ? AND folder = ? AND server_key = ?",
            (account, folder, server_key),
        )

    def forget(self, account: str, folder: str, server_keys: list[str]) -> None:
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.executemany(
                    "DELETE FROM server_seen WHERE account = ? AND folder = ? AND server_key = ?",
                    [(account, folder, k) for k in server_keys],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"download record: {exc}") from exc
