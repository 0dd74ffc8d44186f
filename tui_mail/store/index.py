"""The SQLite index over every account's Maildir: what makes a big folder open at once.

The Maildir is the truth; this file is a cache of it plus server bookkeeping
(UIDs, MODSEQ) and the journal. If it is unreadable or from another schema it
is moved aside and recreated empty, and `was_reset` tells callers to rescan:
an empty index never means "the mail was deleted". See docs/store.md.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from msgspec import Struct

from tui_mail.core.errors import StoreError
from tui_mail.core.flags import FlagSet, normalise_maildir_letters
from tui_mail.core.models import Address, Envelope, FolderRole, MessageRef, ServerId
from tui_mail.search.threads import NewMessage, assign_threads

if TYPE_CHECKING:  # annotations only: reading the index needs no parser (email, html)
    from tui_mail.store.maildir import StoredFile
    from tui_mail.store.parse import ParsedHeaders

log = logging.getLogger(__name__)


class FileFacts(Protocol):
    """What a row takes from its message file: a StoredFile has it, and the bulk
    helper gets just this (store/bulk.py), without the path no row holds."""

    @property
    def key(self) -> str: ...
    @property
    def subdir(self) -> str: ...
    @property
    def flags(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime(self) -> float: ...


SCHEMA_VERSION = 3
SORTS = {"date": "date", "from": "sort_from", "subject": "sort_subject", "size": "size"}
# Parents looked at for threading: In-Reply-To, the thread root and the nearest
# few references. Enough to join a thread even with gaps, and it keeps the
# msgrefs table from growing with every 50-deep mailing-list References header.
_THREAD_TAIL = 5
_NO_PARENTS: tuple[str, ...] = ()  # thread_keys() of most mail of a bulk download
_REPLY_PREFIX = re.compile(r"^(\s*((re|fwd?|aw|sv|vs|wg|antw|tr|rif|odp)(\[\d+\])?\s*:)\s*)+", re.I)

# SQLite result codes (primary) that mean "this file is not a usable index".
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE folders(
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT,
    uidvalidity INTEGER,
    uidnext INTEGER,
    highestmodseq INTEGER,
    sync_state TEXT,
    PRIMARY KEY(account, name)
) WITHOUT ROWID;

CREATE TABLE messages(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    folder TEXT NOT NULL,
    key TEXT NOT NULL,
    subdir TEXT NOT NULL DEFAULT 'new',
    flags TEXT NOT NULL DEFAULT '',
    date INTEGER NOT NULL DEFAULT 0,
    from_name TEXT NOT NULL DEFAULT '',
    from_addr TEXT NOT NULL DEFAULT '',
    to_addrs TEXT NOT NULL DEFAULT '',
    cc_addrs TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    in_reply_to TEXT NOT NULL DEFAULT '',
    refs TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,
    has_attachment INTEGER NOT NULL DEFAULT 0,
    list_id TEXT NOT NULL DEFAULT '',
    thread_id INTEGER,
    uid INTEGER,
    uidvalidity INTEGER,
    modseq INTEGER,
    uidl TEXT,
    pending INTEGER NOT NULL DEFAULT 0,
    mtime REAL NOT NULL DEFAULT 0,
    sort_from TEXT NOT NULL DEFAULT '',
    sort_subject TEXT NOT NULL DEFAULT '',
    UNIQUE(account, folder, key)
);
-- One narrow index per sort order: a page is "ids from the index, then rows by id",
-- and the id step is a covering scan (rowid is the last column of every index).
-- The other sort orders' indexes are made when first used (_SORT_INDEXES).
CREATE INDEX messages_by_date ON messages(account, folder, date);
CREATE INDEX messages_by_msgid ON messages(message_id);
CREATE INDEX messages_by_uid ON messages(account, folder, uid);
CREATE INDEX messages_by_thread ON messages(thread_id);

-- Message-ids a message points at (In-Reply-To, References), for threading children
-- that arrive before their parent.
CREATE TABLE msgrefs(ref TEXT NOT NULL, account TEXT NOT NULL, msg INTEGER NOT NULL);
CREATE INDEX msgrefs_by_ref ON msgrefs(ref, account);
CREATE INDEX msgrefs_by_msg ON msgrefs(msg);

-- Kept up to date by every write below (in the same transaction), so folder counts
-- cost nothing at any size. Not by triggers: with seven indexes on messages, an
-- AFTER INSERT trigger alone made each insert about 3x slower here.
CREATE TABLE folder_stats(
    account TEXT NOT NULL,
    folder TEXT NOT NULL,
    total INTEGER NOT NULL,
    unread INTEGER NOT NULL,
    PRIMARY KEY(account, folder)
) WITHOUT ROWID;

-- prefix: a query for a 2- or 3-letter prefix (re*, dep*) reads one list instead of
-- merging the lists of every word that starts so (at 100k messages, every hit of a
-- prefix found in most mail: ~110 -> ~50 ms). Costs ~10% more per stored message.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    subject, sender, recipients, body, tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);

-- Messages whose messages_fts row is still to be written: bulk stores (initial
-- sync, rescans) index headers at once and leave the body text to fill_fts.
CREATE TABLE fts_pending(id INTEGER PRIMARY KEY);

CREATE TABLE journal(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    op TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX journal_by_account ON journal(account, state, id);
"""

_ENVELOPE_COLUMNS = (
    "id, account, folder, key, date, from_name, from_addr, subject, size, flags,"
    " has_attachment, thread_id, pending, message_id"
)
_MESSAGE_COLUMNS = (
    "account, folder, key, subdir, flags, date, from_name, from_addr, to_addrs, cc_addrs,"
    " subject, message_id, in_reply_to, refs, size, has_attachment, list_id, mtime,"
    " sort_from, sort_subject"
)
# A new row: id, thread_id, _MESSAGE_COLUMNS, then the server ids, which the k-th
# statement takes as NULL for the last k of them. A batch with none of those (no
# MODSEQ, no POP3 UIDL, a rescan with no server at all) then binds no None: the
# sqlite3 module binds None ~6x slower than an int, ~0.3 us each.
_INSERTS = tuple(
    f"INSERT INTO messages(id, thread_id, {_MESSAGE_COLUMNS}, uid, uidvalidity, modseq, uidl)"
    f" VALUES ({', '.join(['?'] * (26 - k) + ['NULL'] * k)})"
    for k in range(5)
)
_UPDATE = (
    "UPDATE messages SET "
    + ", ".join(f"{c.strip()} = ?" for c in _MESSAGE_COLUMNS.split(","))
    + ", uid = coalesce(?, uid), uidvalidity = coalesce(?, uidvalidity),"
    " modseq = coalesce(?, modseq), uidl = coalesce(?, uidl) WHERE id = ?"
)
# Rows the batch refreshes. A join, one seek per key in the order given: cheaper than
# "key IN (...)", which first sorts the keys into a temporary index.
_EXISTING = (
    "SELECT j.value, m.id, m.flags FROM json_each(?3) AS j CROSS JOIN messages AS m"
    " WHERE m.account = ?1 AND m.folder = ?2 AND m.key = j.value"
)
_FTS_INSERT = (
    "INSERT INTO messages_fts(rowid, subject, sender, recipients, body) VALUES (?, ?, ?, ?, ?)"
)
# Schema upgrades in place, by the version they start from: each is a script run
# in one write transaction. Version 1 -> 2 only adds a table.
_MIGRATIONS = {
    1: "CREATE TABLE IF NOT EXISTS fts_pending(id INTEGER PRIMARY KEY);",
    # 2 -> 3: FTS5 cannot add prefix indexes to a table, so the full-text table is
    # rebuilt from its own stored text (about 10 s per 100k messages, once).
    2: """
CREATE VIRTUAL TABLE messages_fts_v3 USING fts5(
    subject, sender, recipients, body, tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);
INSERT INTO messages_fts_v3(rowid, subject, sender, recipients, body)
    SELECT rowid, subject, sender, recipients, body FROM messages_fts;
DROP TABLE messages_fts;
ALTER TABLE messages_fts_v3 RENAME TO messages_fts;
""",
}
# Indexes added since: made on open when missing, without a new schema version, so
# an older tui-mail opening the file still knows it (an unknown version would be
# moved aside and rebuilt, journal and all). A few seconds per 100k messages, once.
_ADDED_INDEXES = {
    # Threading by subject looks for the same subject near a date in every folder of
    # the account (search/threads.py): without the date, a subject that recurs (cron
    # mail, reports) read every row of it per batch, growing with the mailbox.
    "messages_by_subject_date": (
        "CREATE INDEX IF NOT EXISTS messages_by_subject_date"
        " ON messages(account, sort_subject, date)"
    ),
    # The same for the few messages an original can join by subject (a reply that
    # names no parent): most subjects have none, and finding that in this small
    # index, not among every message of the subject, was ~1 us of the ~17 us each
    # message of an initial sync costs the index.
    "messages_by_refless_subject": (
        "CREATE INDEX IF NOT EXISTS messages_by_refless_subject"
        " ON messages(account, sort_subject, date)"
        " WHERE in_reply_to = '' AND refs = '' AND instr(subject, ':')"
    ),
}
# The indexes of the sort orders other than date, by sort column: (name, statement).
# Made the first time a folder is listed in that order and kept up to date from
# then on (an index that has them keeps them). Every index slows every insert: in
# the initial sync of bench/bench_imap_sync.py (10k messages), where the index
# helper is the slowest stage, these three were 2.5 of the ~17 us each message
# cost the index, and the sync took ~18 ms less without them; the larger the
# index, the more each costs. Made once in ~0.1 s per 100k messages; without it
# a page in that order is a sort of the whole folder (tens of ms at 100k).
_SORT_INDEXES = {
    column: (
        f"messages_by_{name}",
        f"CREATE INDEX IF NOT EXISTS messages_by_{name} ON messages(account, folder, {column})",
    )
    for column, name in (("sort_from", "from"), ("sort_subject", "subject"), ("size", "size"))
}
# How long a read waits for another writer (a sync in another process) to make an
# index it wants (make_index), and how long before a page tries a sort index again.
INDEX_WAIT = 0.1
SORT_INDEX_RETRY = 60.0
_BUSY_TIMEOUT_MS = 5000
_BUMP = (
    "INSERT INTO folder_stats(account, folder, total, unread) VALUES (?, ?, ?, ?)"
    " ON CONFLICT(account, folder) DO UPDATE"
    " SET total = total + excluded.total, unread = unread + excluded.unread"
)


class _NeedsReset(Exception):
    pass


class FolderState(Struct, frozen=True):
    """Per-folder sync bookkeeping (the `folders` table)."""

    account: str
    name: str
    role: FolderRole | None = None
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    sync_state: str | None = None


class IndexedFile(NamedTuple):
    """What keys_in_folder() reports per key: a plain (id, flags, subdir) tuple."""

    id: int
    flags: str
    subdir: str


def format_addresses(addresses: Iterable[Address]) -> str:
    """ "Name" <addr>, ... : readable, and email.utils.getaddresses() reads it back."""
    out = []
    for a in addresses:
        if a.name:
            name = a.name.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'"{name}" <{a.addr}>')
        else:
            out.append(a.addr)
    return ", ".join(out)


def sort_subject(subject: str) -> str:
    """Subject without Re:/Fwd: chains, case-folded, so replies sort with their thread."""
    if ":" not in subject:  # every prefix ends in ":"; most subjects have none
        return subject.strip().casefold()
    return _REPLY_PREFIX.sub("", subject).strip().casefold()


def thread_keys(parsed: ParsedHeaders) -> list[str]:
    """The parent ids a message is threaded by (without its own id)."""
    if not parsed.in_reply_to and not parsed.references:
        return []  # most mail of a bulk download: no need for the general case
    keys: list[str] = []
    if parsed.in_reply_to:
        keys.append(parsed.in_reply_to)
    if parsed.references:
        keys.append(parsed.references[0])
        keys.extend(parsed.references[-_THREAD_TAIL:])
    return list(dict.fromkeys(k for k in keys if k and k != parsed.message_id))


def _like(value: str) -> str:
    """A LIKE pattern for "contains value", LIKE's own wildcards escaped."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_row(msg_id: int, parsed: ParsedHeaders, body: str) -> tuple[Any, ...]:
    sender = parsed.sender
    return (
        msg_id,
        parsed.subject,
        f"{sender.name} {sender.addr}".strip(),
        " ".join(f"{a.name} {a.addr}" for a in (*parsed.to, *parsed.cc)),
        body,
    )


# Few distinct flag strings exist; parsing each through FlagSet costs ~5 us.
_letters = functools.lru_cache(maxsize=1024)(normalise_maildir_letters)


def _drop_null_tail(rows: list[list[Any]]) -> int:
    """How many server ids end every row as None: removed, for _INSERTS[that many]."""
    k = 0
    while k < 4 and all(row[-1 - k] is None for row in rows):
        k += 1
    if k:
        for row in rows:
            del row[-k:]
    return k


def _unread(letters: str) -> int:
    return 0 if "S" in letters else 1


def _db_error(what: str, exc: sqlite3.Error) -> StoreError:
    return StoreError(f"index: {what}: {exc}")


class MailIndex:
    """One SQLite database for all accounts. Thread-safe: one connection, one lock."""

    def __init__(self, path: Path, *, attach: bool = False) -> None:
        """`attach`: a second connection to an index that another MailIndex opened and
        checked already (store/bulk.py's helper process): no schema work, and never
        a reset, which only the owner may decide."""
        self.path = Path(path)
        self.was_reset = False
        self.moved_to: Path | None = None  # where a broken index was moved, if it was
        self._lock = threading.RLock()
        self._depth = 0
        self._next_id: int | None = None
        self._sort_indexes: set[str] = set()  # columns of _SORT_INDEXES known to exist
        self._sort_index_retry: dict[str, float] = {}  # column -> monotonic time of next try
        if attach:
            self._conn = self._connect(check=False)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(f"cannot create {self.path.parent}: {exc.strerror}") from exc
        try:
            self._conn = self._connect()
        except _NeedsReset:
            self._move_aside()
            self.was_reset = True
            try:
                self._conn = self._connect()
            except _NeedsReset as exc:
                raise StoreError(f"index {self.path}: cannot create a fresh one: {exc}") from exc

    @classmethod
    def open(cls, path: Path) -> MailIndex:
        return cls(path)

    def close(self, optimize: bool = True) -> None:
        """`optimize=False`: just close (a helper's connection; the owner optimizes)."""
        with self._lock:
            if optimize:
                with contextlib.suppress(sqlite3.Error):
                    # Lets SQLite fold the WAL back and keep its statistics fresh. The
                    # limit (SQLite's advice for optimize) samples instead of reading
                    # every index: after a 10k download, 8 ms -> 1.6 ms at exit.
                    self._conn.execute("PRAGMA analysis_limit = 400")
                    self._conn.execute("PRAGMA optimize")
            self._conn.close()

    def __enter__(self) -> MailIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening, checking, resetting

    def _connect(self, check: bool = True) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=5.0
            )
        except sqlite3.Error as exc:
            raise _db_error(f"cannot open {self.path}", exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            if not check:
                conn.execute("PRAGMA synchronous = NORMAL")
                return conn  # WAL is the database's own setting, made by its owner
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._ensure_schema(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                raise _NeedsReset(str(exc)) from exc
            # Locked, read-only, disk full...: not a reason to throw the index away.
            raise _db_error(f"cannot open {self.path}", exc) from exc
        except _NeedsReset:
            conn.close()
            raise
        return conn

    @staticmethod
    def _version(conn: sqlite3.Connection) -> int | None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            return None
        try:
            return int(row[0]) if row else -1
        except ValueError:
            return -1

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        version = self._version(conn)
        if version == SCHEMA_VERSION:
            try:
                # Cheap proof that the tables we rely on are really there and readable.
                conn.execute("SELECT id, flags FROM messages LIMIT 1").fetchall()
                conn.execute("SELECT rowid FROM messages_fts LIMIT 1").fetchall()
                conn.execute("SELECT id FROM journal LIMIT 1").fetchall()
            except sqlite3.OperationalError as exc:
                raise _NeedsReset(f"incomplete schema: {exc}") from exc
            self._add_indexes(conn)
            return
        if version in _MIGRATIONS:
            self._migrate(conn)
            self._add_indexes(conn)
            return
        if version is not None:
            raise _NeedsReset(f"schema version {version}, expected {SCHEMA_VERSION}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-check inside the write lock: another process may have just created it.
            if self._version(conn) == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise _NeedsReset("a database that is not a tui-mail index")
            for statement in [*_split_sql(_SCHEMA), *_ADDED_INDEXES.values()]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _add_indexes(conn: sqlite3.Connection) -> None:
        have = {
            str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        missing = [sql for name, sql in _ADDED_INDEXES.items() if name not in have]
        if not missing:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql in missing:  # IF NOT EXISTS: another process may have just made it
                conn.execute(sql)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Bring an older index up to SCHEMA_VERSION without losing its rows."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = MailIndex._version(conn)  # another process may have done it
            while version in _MIGRATIONS:
                for statement in _split_sql(_MIGRATIONS[version]):
                    conn.execute(statement)
                version += 1
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),)
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if version != SCHEMA_VERSION:
            raise _NeedsReset(f"schema version {version}, expected {SCHEMA_VERSION}")

    def _move_aside(self) -> None:
        self.moved_to = move_aside(self.path)

    # -- transactions

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            try:
                # IMMEDIATE takes the write lock now, so two writers wait (busy_timeout)
                # instead of deadlocking when both try to upgrade a read.
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _db_error("cannot start a write", exc) from exc
            self._depth = 1
            try:
                yield self._conn
            except BaseException as exc:
                self._depth = 0
                self._next_id = None
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise _db_error("write failed", exc) from exc
                raise
            self._depth = 0
            self._next_id = None
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise _db_error("cannot commit", exc) from exc

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        with self.transaction() as conn:
            try:
                yield conn
            except sqlite3.Error as exc:
                raise _db_error(what, exc) from exc

    def _read(self, what: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _db_error(what, exc) from exc

    # -- writing messages

    def _allocate_id(self, conn: sqlite3.Connection) -> int:
        # Ids are handed out here, inside the write lock, so a new row carries its
        # thread id in the INSERT itself (no second write per message).
        if self._next_id is None:
            row = conn.execute(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'),"
                " 0), coalesce((SELECT max(id) FROM messages), 0))"
            ).fetchone()
            self._next_id = int(row[0]) + 1
        new_id = self._next_id
        self._next_id += 1
        return new_id

    @staticmethod
    def _bump(conn: sqlite3.Connection, account: str, folder: str, total: int, unread: int) -> None:
        if total or unread:
            conn.execute(_BUMP, (account, folder, total, unread))

    def _upsert_batch(
        self,
        conn: sqlite3.Connection,
        account: str,
        folder: str,
        items: Iterable[tuple[FileFacts, ParsedHeaders, ServerId | None]],
        new_files: bool = False,
    ) -> list[int]:
        batch = list(items)
        if not batch:
            return []
        existing: dict[str, tuple[int, str]] = (
            {}
            if new_files
            else {
                key: (msg_id, flags)
                for key, msg_id, flags in conn.execute(
                    _EXISTING, (account, folder, json.dumps([s.key for s, _, _ in batch]))
                )
            }
        )
        inserts: list[list[Any]] = []
        new: list[NewMessage] = []
        updates: list[tuple[Any, ...]] = []
        replaced: list[tuple[int]] = []
        fts: dict[int, tuple[Any, ...]] = {}
        later: dict[int, None] = {}  # rows whose body text comes with fill_fts
        refs: dict[int, Sequence[str]] = {}
        ids: list[int] = []
        total = unread = 0
        next_id: int | None = None
        try:
            # Runs for every message of an initial sync: one list display per row in
            # the layout of _INSERTS, nothing built twice.
            for stored, parsed, server in batch:
                key = stored.key
                known = existing.get(key)
                if known is not None:
                    # A refresh keeps id, thread, pending state and known server ids.
                    msg_id = known[0]
                elif next_id is None:
                    msg_id = self._allocate_id(conn)
                    next_id = msg_id + 1
                else:
                    msg_id = next_id
                    next_id += 1
                sender = parsed.sender
                subject = parsed.subject
                message_id = parsed.message_id
                flags = _letters(stored.flags)
                date = int(parsed.date)
                base = sort_subject(subject)
                if server is None:
                    uid = uidvalidity = modseq = uidl = None
                else:
                    uid, uidvalidity = server.uid, server.uidvalidity
                    modseq, uidl = server.modseq, server.uidl
                row = [
                    msg_id,
                    None,  # thread_id, once the whole batch is threaded
                    account,
                    folder,
                    key,
                    stored.subdir,
                    flags,
                    date,
                    sender.name,
                    sender.addr,
                    format_addresses(parsed.to),
                    format_addresses(parsed.cc) if parsed.cc else "",
                    subject,
                    message_id,
                    parsed.in_reply_to,
                    " ".join(parsed.references),
                    int(stored.size),
                    int(parsed.has_attachment),
                    parsed.list_id,
                    float(stored.mtime),
                    (sender.name or sender.addr).casefold(),
                    base,
                    uid,
                    uidvalidity,
                    modseq,
                    uidl,
                ]
                parents = (
                    thread_keys(parsed) if parsed.in_reply_to or parsed.references else _NO_PARENTS
                )
                if known is None:
                    inserts.append(row)
                    new.append((msg_id, message_id, parents, subject, date, base))
                    total += 1
                    unread += _unread(flags)
                else:
                    updates.append((*row[2:], msg_id))
                    replaced.append((msg_id,))
                    unread += _unread(flags) - _unread(known[1])
                existing[key] = (msg_id, flags)
                ids.append(msg_id)
                body = parsed.body_text
                if body is None:
                    later[msg_id] = None
                    if known is not None:  # the same key twice in one batch: the last wins
                        fts.pop(msg_id, None)
                else:
                    fts[msg_id] = _fts_row(msg_id, parsed, body)
                    if known is not None:
                        later.pop(msg_id, None)
                refs[msg_id] = parents
        finally:
            # Ids handed out stay taken, even if a row above failed: as _allocate_id.
            if next_id is not None:
                self._next_id = next_id
        if inserts:
            self._assign_threads(conn, account, inserts, new)
        if replaced:
            conn.executemany("DELETE FROM messages_fts WHERE rowid = ?", replaced)
            conn.executemany("DELETE FROM msgrefs WHERE msg = ?", replaced)
            conn.executemany("DELETE FROM fts_pending WHERE id = ?", replaced)
        if inserts:
            conn.executemany(_INSERTS[_drop_null_tail(inserts)], inserts)
        conn.executemany(_UPDATE, updates)
        conn.executemany(_FTS_INSERT, fts.values())
        if later:
            conn.execute(
                "INSERT OR IGNORE INTO fts_pending(id) SELECT value FROM json_each(?)",
                (json.dumps(list(later)),),
            )
        conn.executemany(
            "INSERT INTO msgrefs(ref, account, msg) VALUES (?, ?, ?)",
            [(r, account, msg_id) for msg_id, parents in refs.items() for r in parents],
        )
        self._bump(conn, account, folder, total, unread)
        return ids

    @staticmethod
    def _assign_threads(
        conn: sqlite3.Connection, account: str, inserts: list[list[Any]], new: list[NewMessage]
    ) -> None:
        """Set thread_id (slot 1) of new rows; merge indexed threads they bridge."""
        # --- hook (issue 7): the threading rules live in tui_mail/search/threads.py
        # (references, replies before parents, subject fallback, merges). A row is
        # laid out as in _INSERTS: id, thread_id, then the other columns.
        threads = assign_threads(conn, account, new)
        for row in inserts:
            row[1] = threads[row[0]]
        # --- end of hook

    def upsert(
        self,
        account: str,
        folder: str,
        stored: StoredFile,
        parsed: ParsedHeaders,
        server: ServerId | None = None,
    ) -> int:
        """Insert or refresh the row of one file; returns its id (stable across refreshes)."""
        with self._write("cannot index a message") as conn:
            return self._upsert_batch(conn, account, folder, [(stored, parsed, server)])[0]

    def upsert_many(
        self,
        account: str,
        folder: str,
        items: Iterable[tuple[FileFacts, ParsedHeaders, ServerId | None]],
        *,
        new_files: bool = False,
    ) -> list[int]:
        """Like upsert() for many files, in one transaction (rescans, bulk downloads).

        `new_files`: every file was just written under a fresh name, so no row can
        have its key and the lookup of existing rows is left out (the bulk helper's
        batches; ~0.5 us a message). Were one there after all, the insert fails on
        the key's uniqueness and nothing of the batch is written.
        """
        with self._write("cannot index messages") as conn:
            return self._upsert_batch(conn, account, folder, items, new_files)

    def _delete(self, conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> int:
        """Delete rows, their full-text and reference rows, and adjust the counts."""
        rows = conn.execute(
            f"DELETE FROM messages WHERE {where} RETURNING id, account, folder, flags", params
        ).fetchall()
        if not rows:
            return 0
        gone = [(r[0],) for r in rows]
        conn.executemany("DELETE FROM messages_fts WHERE rowid = ?", gone)
        conn.executemany("DELETE FROM msgrefs WHERE msg = ?", gone)
        conn.executemany("DELETE FROM fts_pending WHERE id = ?", gone)
        deltas: dict[tuple[str, str], list[int]] = {}
        for _, account, folder, flags in rows:
            d = deltas.setdefault((account, folder), [0, 0])
            d[0] -= 1
            d[1] -= _unread(flags)
        for (account, folder), (total, unread) in deltas.items():
            self._bump(conn, account, folder, total, unread)
        return len(rows)

    def remove(self, account: str, folder: str, key: str) -> bool:
        with self._write("cannot remove a message") as conn:
            where = "account = ? AND folder = ? AND key = ?"
            return self._delete(conn, where, (account, folder, key)) > 0

    def remove_many(self, account: str, folder: str, keys: Iterable[str]) -> int:
        keys_json = json.dumps(list(keys))
        with self._write("cannot remove messages") as conn:
            where = "account = ? AND folder = ? AND key IN (SELECT value FROM json_each(?))"
            return self._delete(conn, where, (account, folder, keys_json))

    def set_flags(
        self,
        account: str,
        folder: str,
        key: str,
        flags: str,
        pending: bool | None = None,
        subdir: str | None = None,
    ) -> int | None:
        """New flag letters (and subdir, pending if given); the row id, None if not indexed."""
        letters = _letters(flags)
        with self._write("cannot change flags") as conn:
            row = conn.execute(
                "SELECT id, flags FROM messages WHERE account = ? AND folder = ? AND key = ?",
                (account, folder, key),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE messages SET flags = ?, subdir = coalesce(?, subdir),"
                " pending = coalesce(?, pending) WHERE id = ?",
                (letters, subdir, None if pending is None else int(pending), row[0]),
            )
            self._bump(conn, account, folder, 0, _unread(letters) - _unread(row[1]))
            return int(row[0])

    def set_flags_many(
        self, account: str, folder: str, changes: Iterable[tuple[str, str, str]]
    ) -> int:
        """(key, flags, subdir) triples in one transaction: what a rescan found changed."""
        new = {k: (_letters(f), s) for k, f, s in changes}
        if not new:
            return 0
        with self._write("cannot change flags") as conn:
            old = conn.execute(
                "SELECT key, id, flags FROM messages WHERE account = ? AND folder = ?"
                " AND key IN (SELECT value FROM json_each(?))",
                (account, folder, json.dumps(list(new))),
            ).fetchall()
            conn.executemany(
                "UPDATE messages SET flags = ?, subdir = ? WHERE id = ?",
                [(*new[key], msg_id) for key, msg_id, _ in old],
            )
            unread = sum(_unread(new[key][0]) - _unread(flags) for key, _, flags in old)
            self._bump(conn, account, folder, 0, unread)
            return len(old)

    def set_pending(self, ids: Iterable[int], pending: bool) -> None:
        with self._write("cannot mark pending") as conn:
            conn.executemany(
                "UPDATE messages SET pending = ? WHERE id = ?", [(int(pending), i) for i in ids]
            )

    def set_server_id(self, msg_id: int, server: ServerId) -> None:
        """Record where the server keeps a message (after APPEND, COPYUID, UIDL)."""
        with self._write("cannot set server ids") as conn:
            conn.execute(
                "UPDATE messages SET uid = ?, uidvalidity = ?, modseq = ?, uidl = ? WHERE id = ?",
                (server.uid, server.uidvalidity, server.modseq, server.uidl, msg_id),
            )

    def move_row(
        self,
        account: str,
        folder: str,
        key: str,
        to_folder: str,
        stored: StoredFile | None = None,
        server: ServerId | None = None,
    ) -> int | None:
        """Point a row at its new folder, keeping id and thread. None if it was not indexed.

        The old server ids belong to the old folder, so they are replaced by
        `server` (or cleared). `stored` gives the new key/subdir/flags/mtime.
        """
        sid = server or ServerId()
        with self._write("cannot move a message") as conn:
            row = conn.execute(
                "SELECT id, flags FROM messages WHERE account = ? AND folder = ? AND key = ?",
                (account, folder, key),
            ).fetchone()
            if row is None:
                return None
            msg_id, old_flags = int(row[0]), row[1]
            new_key = stored.key if stored else key
            letters = _letters(stored.flags) if stored else old_flags
            # A stale row under the target name would break UNIQUE; the file is this one.
            self._delete(
                conn, "account = ? AND folder = ? AND key = ?", (account, to_folder, new_key)
            )
            conn.execute(
                "UPDATE messages SET folder = ?, key = ?, subdir = coalesce(?, subdir),"
                " flags = ?, mtime = coalesce(?, mtime), uid = ?, uidvalidity = ?, modseq = ?,"
                " uidl = ? WHERE id = ?",
                (
                    to_folder,
                    new_key,
                    stored.subdir if stored else None,
                    letters,
                    stored.mtime if stored else None,
                    sid.uid,
                    sid.uidvalidity,
                    sid.modseq,
                    sid.uidl,
                    msg_id,
                ),
            )
            self._bump(conn, account, folder, -1, -_unread(old_flags))
            self._bump(conn, account, to_folder, 1, _unread(letters))
            return msg_id

    def clear_account(self, account: str) -> None:
        """Forget every row and folder state of an account (the journal stays)."""
        with self._write("cannot clear an account") as conn:
            conn.execute(
                "DELETE FROM messages_fts WHERE rowid IN"
                " (SELECT id FROM messages WHERE account = ?)",
                (account,),
            )
            conn.execute("DELETE FROM msgrefs WHERE account = ?", (account,))
            conn.execute(
                "DELETE FROM fts_pending WHERE id IN (SELECT id FROM messages WHERE account = ?)",
                (account,),
            )
            conn.execute("DELETE FROM messages WHERE account = ?", (account,))
            conn.execute("DELETE FROM folder_stats WHERE account = ?", (account,))
            conn.execute("DELETE FROM folders WHERE account = ?", (account,))

    def remove_folder(self, account: str, folder: str) -> int:
        """Drop a folder's rows and state (it is gone from disk); returns rows removed."""
        with self._write("cannot remove a folder") as conn:
            params = (account, folder)
            conn.execute(
                "DELETE FROM messages_fts WHERE rowid IN"
                " (SELECT id FROM messages WHERE account = ? AND folder = ?)",
                params,
            )
            for table, column in (("msgrefs", "msg"), ("fts_pending", "id")):
                conn.execute(
                    f"DELETE FROM {table} WHERE {column} IN"
                    " (SELECT id FROM messages WHERE account = ? AND folder = ?)",
                    params,
                )
            n = conn.execute(
                "DELETE FROM messages WHERE account = ? AND folder = ?", params
            ).rowcount
            conn.execute("DELETE FROM folder_stats WHERE account = ? AND folder = ?", params)
            conn.execute("DELETE FROM folders WHERE account = ? AND name = ?", params)
            return n

    def rename_folder(self, account: str, old: str, new: str) -> None:
        """Rename a folder and its children in rows, counts and folder states."""
        prefix = old + "/"
        with self._write("cannot rename a folder") as conn:
            for table, column in (("messages", "folder"), ("folders", "name")):
                conn.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?)"
                    f" WHERE account = ? AND ({column} = ? OR substr({column}, 1, ?) = ?)",
                    (new, len(old) + 1, account, old, len(prefix), prefix),
                )
            self.recount(account)

    def recount(self, account: str | None = None) -> None:
        """Recompute folder counts from the rows (after renames, and as a safety net)."""
        where, params = ("WHERE account = ?", (account,)) if account else ("", ())
        with self._write("cannot recount") as conn:
            conn.execute(f"DELETE FROM folder_stats {where}", params)
            conn.execute(
                "INSERT INTO folder_stats(account, folder, total, unread)"
                " SELECT account, folder, count(*), sum(instr(flags, 'S') = 0)"
                f" FROM messages {where} GROUP BY account, folder",
                params,
            )

    # -- folder states

    def folder_state(self, account: str, name: str) -> FolderState | None:
        rows = self._read(
            "cannot read folder state",
            "SELECT account, name, role, uidvalidity, uidnext, highestmodseq, sync_state"
            " FROM folders WHERE account = ? AND name = ?",
            (account, name),
        )
        return _folder_state(rows[0]) if rows else None

    def folder_states(self, account: str) -> list[FolderState]:
        rows = self._read(
            "cannot read folder states",
            "SELECT account, name, role, uidvalidity, uidnext, highestmodseq, sync_state"
            " FROM folders WHERE account = ? ORDER BY name",
            (account,),
        )
        return [_folder_state(r) for r in rows]

    _UNSET: Any = object()

    def set_folder_state(
        self,
        account: str,
        name: str,
        *,
        role: FolderRole | None = _UNSET,
        uidvalidity: int | None = _UNSET,
        uidnext: int | None = _UNSET,
        highestmodseq: int | None = _UNSET,
        sync_state: str | None = _UNSET,
    ) -> None:
        """Create the folder row if needed and set only the fields given."""
        fields: dict[str, Any] = {}
        if role is not self._UNSET:
            fields["role"] = role.value if isinstance(role, FolderRole) else None
        for column, value in (
            ("uidvalidity", uidvalidity),
            ("uidnext", uidnext),
            ("highestmodseq", highestmodseq),
            ("sync_state", sync_state),
        ):
            if value is not self._UNSET:
                fields[column] = value
        with self._write("cannot save folder state") as conn:
            conn.execute(
                "INSERT INTO folders(account, name) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (account, name),
            )
            if fields:
                conn.execute(
                    f"UPDATE folders SET {', '.join(f'{c} = ?' for c in fields)}"
                    " WHERE account = ? AND name = ?",
                    (*fields.values(), account, name),
                )

    def delete_folder_state(self, account: str, name: str) -> None:
        with self._write("cannot delete folder state") as conn:
            conn.execute("DELETE FROM folders WHERE account = ? AND name = ?", (account, name))

    # -- reading

    def count(self, account: str, folder: str, unread_only: bool = False) -> int:
        rows = self._read(
            "cannot count",
            f"SELECT {'unread' if unread_only else 'total'} FROM folder_stats"
            " WHERE account = ? AND folder = ?",
            (account, folder),
        )
        return int(rows[0][0]) if rows else 0

    def folder_counts(self, account: str) -> dict[str, tuple[int, int]]:
        """{folder: (total, unread)} for folders that have rows; unread = no 'S'."""
        rows = self._read(
            "cannot count",
            "SELECT folder, total, unread FROM folder_stats WHERE account = ? AND total > 0",
            (account,),
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def unread_total(self, account: str) -> int:
        rows = self._read(
            "cannot count",
            "SELECT coalesce(sum(unread), 0) FROM folder_stats WHERE account = ?",
            (account,),
        )
        return int(rows[0][0])

    def indexed_folders(self, account: str) -> list[str]:
        rows = self._read(
            "cannot list folders",
            "SELECT folder FROM folder_stats WHERE account = ? AND total > 0"
            " UNION SELECT name FROM folders WHERE account = ?",
            (account, account),
        )
        return sorted(r[0] for r in rows)

    def page_ids(
        self,
        account: str,
        folder: str,
        offset: int,
        limit: int,
        sort: str = "date",
        descending: bool = True,
    ) -> list[int]:
        try:
            column = SORTS[sort]
        except KeyError:
            raise ValueError(f"sort must be one of {sorted(SORTS)}, not {sort!r}") from None
        if column in _SORT_INDEXES and column not in self._sort_indexes:
            self._make_sort_index(sort, column)
        offset, limit = max(0, int(offset)), max(0, int(limit))
        sql = (
            "SELECT id FROM messages WHERE account = ? AND folder = ?"
            " ORDER BY {col} {order}, id {order} LIMIT ? OFFSET ?"
        )
        with self._lock:
            try:
                # One snapshot for the count and the page, so a writer in another
                # process cannot shift rows between them.
                own = self._depth == 0
                if own:
                    self._conn.execute("BEGIN")
                try:
                    total = self.count(account, folder)
                    if offset >= total or not limit:
                        return []
                    reverse = offset + limit // 2 > total // 2
                    if reverse:
                        # OFFSET walks the index entry by entry: from the nearer end
                        # the walk is at most half the folder.
                        order = "ASC" if descending else "DESC"
                        params = (min(limit, total - offset), max(0, total - offset - limit))
                    else:
                        order = "DESC" if descending else "ASC"
                        params = (limit, offset)
                    rows = self._conn.execute(
                        sql.format(col=column, order=order), (account, folder, *params)
                    ).fetchall()
                finally:
                    if own:
                        self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _db_error("cannot read a page", exc) from exc
        ids = [r[0] for r in rows]
        if reverse:
            ids.reverse()
        return ids

    def _make_sort_index(self, sort: str, column: str) -> None:
        """Make the index of a sort order other than date, the first time it is used
        (make_index). If that fails (another writer held the index past the short
        wait, a read-only index), the page is read without it, slower, and the next
        try is SORT_INDEX_RETRY later."""
        name, create = _SORT_INDEXES[column]
        with self._lock:
            if self._sort_index_retry.get(column, 0.0) > time.monotonic():
                return
            try:
                made = self.make_index(name, create)
            except StoreError as exc:
                first = column not in self._sort_index_retry
                self._sort_index_retry[column] = time.monotonic() + SORT_INDEX_RETRY
                log.log(
                    logging.WARNING if first else logging.DEBUG,
                    "sorting by %s without its index for now: %s",
                    sort,
                    exc,
                )
                return
            if made:
                self._sort_indexes.add(column)

    def make_index(self, name: str, create: str, wait: float = INDEX_WAIT) -> bool:
        """Make an index a read wants (`create`: CREATE INDEX IF NOT EXISTS `name`),
        unless it is there; True once it is. StoreError if it cannot be made.

        Looked for first, which takes no lock: one made earlier, or by another
        process, costs no write. Making it waits at most `wait` for another writer
        (a sync in another process holding the write lock): the read it is for
        must not wait busy_timeout's seconds, and can go on without it. Never
        inside a transaction of the caller's (False), whose rollback would take the
        index along after the caller was told it is there.
        """
        with self._lock:
            try:
                found = self._conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
                ).fetchone()
                if found is not None:
                    return True
                if self._depth:
                    return False
                self._conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
                try:
                    with self._write(f"cannot make {name}") as conn:
                        conn.execute(create)
                finally:
                    self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            except sqlite3.Error as exc:
                raise _db_error(f"cannot make {name}", exc) from exc
            return True

    def page(
        self,
        account: str,
        folder: str,
        offset: int,
        limit: int,
        sort: str = "date",
        descending: bool = True,
    ) -> list[Envelope]:
        """One screenful of the list, sorted, ties broken by id in the same direction."""
        return self.envelopes(self.page_ids(account, folder, offset, limit, sort, descending))

    def envelopes(self, ids: Sequence[int]) -> list[Envelope]:
        """Envelopes for ids, in the order given; missing ids are skipped."""
        if not ids:
            return []
        by_id: dict[int, Envelope] = {}
        # Chunks stay under SQLite's bound-parameter limit on old builds.
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._read(
                "cannot read envelopes",
                f"SELECT {_ENVELOPE_COLUMNS} FROM messages"
                f" WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            by_id.update((r[0], _envelope(r)) for r in rows)
        return [by_id[i] for i in ids if i in by_id]

    def envelope(self, msg_id: int) -> Envelope | None:
        found = self.envelopes([msg_id])
        return found[0] if found else None

    def path_of(self, msg_id: int) -> tuple[str, str, str] | None:
        rows = self._read(
            "cannot look up a message",
            "SELECT account, folder, key FROM messages WHERE id = ?",
            (msg_id,),
        )
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def file_info(self, account: str, folder: str, key: str) -> IndexedFile | None:
        rows = self._read(
            "cannot look up a message",
            "SELECT id, flags, subdir FROM messages WHERE account = ? AND folder = ? AND key = ?",
            (account, folder, key),
        )
        return IndexedFile(rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def keys_in_folder(self, account: str, folder: str) -> dict[str, IndexedFile]:
        """{key: (id, flags, subdir)} for a rescan to compare against the directory."""
        rows = self._read(
            "cannot list a folder",
            "SELECT key, id, flags, subdir FROM messages WHERE account = ? AND folder = ?",
            (account, folder),
        )
        return {r[0]: IndexedFile(r[1], r[2], r[3]) for r in rows}

    def file_names(self, account: str, folder: str) -> tuple[set[str], set[str]]:
        """The file names the index expects in new/ and in cur/.

        A rescan compares these with os.listdir() as sets: for an unchanged
        100k folder that is a few C-level set operations instead of 100k Python
        objects. group_concat returns one string per subdir, split in C too.
        """
        result = []
        for subdir in ("new", "cur"):
            rows = self._read(
                "cannot list a folder",
                "SELECT group_concat(CASE WHEN subdir = 'new' AND flags = '' THEN key"
                " ELSE key || ':2,' || flags END, '/') FROM messages"
                " WHERE account = ? AND folder = ? AND subdir = ?",
                (account, folder, subdir),
            )
            joined = rows[0][0] if rows else None
            # "/" can appear in neither keys nor flags: it is a safe separator.
            result.append(set(joined.split("/")) if joined else set())
        return result[0], result[1]

    def files_info(self, account: str, folder: str, keys: Iterable[str]) -> dict[str, IndexedFile]:
        """keys_in_folder() for just these keys (those that have a row)."""
        rows = self._read(
            "cannot look up keys",
            "SELECT key, id, flags, subdir FROM messages WHERE account = ? AND folder = ?"
            " AND key IN (SELECT value FROM json_each(?))",
            (account, folder, json.dumps(list(keys))),
        )
        return {r[0]: IndexedFile(r[1], r[2], r[3]) for r in rows}

    def existing_keys(self, account: str, folder: str, keys: Iterable[str]) -> set[str]:
        """Which of `keys` have a row in the folder."""
        return set(self.files_info(account, folder, keys))

    def uids_in_folder(self, account: str, folder: str) -> dict[int, tuple[int, str, str]]:
        """{uid: (id, key, flags)} for rows that have a server UID."""
        rows = self._read(
            "cannot list uids",
            "SELECT uid, id, key, flags FROM messages WHERE account = ? AND folder = ?"
            " AND uid IS NOT NULL",
            (account, folder),
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def server_id(self, msg_id: int) -> ServerId | None:
        rows = self._read(
            "cannot read server ids",
            "SELECT uid, uidvalidity, modseq, uidl FROM messages WHERE id = ?",
            (msg_id,),
        )
        return ServerId(*rows[0]) if rows else None

    def find_by_message_id(self, account: str, message_id: str) -> list[MessageRef]:
        """Every copy of a message (all folders) by its Message-ID, with or without <>."""
        mid = message_id.strip()
        if mid and not mid.startswith("<"):
            mid = f"<{mid}>"
        rows = self._read(
            "cannot look up a message id",
            "SELECT account, folder, key, id FROM messages WHERE message_id = ? AND +account = ?"
            " ORDER BY id",
            (mid, account),
        )
        return [MessageRef(r[0], r[1], r[2], r[3]) for r in rows]

    def thread(self, thread_id: int) -> list[int]:
        rows = self._read(
            "cannot read a thread",
            "SELECT id FROM messages WHERE thread_id = ? ORDER BY date, id",
            (thread_id,),
        )
        return [r[0] for r in rows]

    def search(
        self, account: str, text: str, folder: str | None = None, limit: int = 500
    ) -> list[int]:
        """Ids whose subject, sender, recipients or body contain every word of `text`.

        Messages still waiting for fill_fts are matched on their header columns
        (every word as a substring), so a fresh download is searchable at once;
        their bodies count once fill_fts has run (fts_pending_count says how many).
        """
        words = [w for w in text.split() if w]
        if not words:
            return []
        # Each word quoted: user text is never FTS5 syntax, so no query can fail to parse.
        query = " ".join('"' + w.replace('"', '""') + '"' for w in words)
        likes = "".join(
            " AND (m.subject || ' ' || m.from_name || ' ' || m.from_addr || ' ' || m.to_addrs"
            " || ' ' || m.cc_addrs) LIKE ? ESCAPE '\\'"
            for _ in words
        )
        in_folder = " AND m.folder = ?" if folder is not None else ""
        where = [folder] if folder is not None else []
        # Two indexed walks, one per kind of row (a message is never in both).
        sql = (
            "SELECT m.id, m.date FROM messages_fts AS f JOIN messages AS m ON m.id = f.rowid"
            f" WHERE messages_fts MATCH ? AND m.account = ?{in_folder}"
            " UNION SELECT m.id, m.date FROM fts_pending AS p JOIN messages AS m ON m.id = p.id"
            f" WHERE m.account = ?{in_folder}{likes}"
            " ORDER BY 2 DESC, 1 DESC LIMIT ?"
        )
        params: list[Any] = [
            query,
            account,
            *where,
            account,
            *where,
            *(_like(w) for w in words),
            limit,
        ]
        return [r[0] for r in self._read("cannot search", sql, params)]

    # -- the full-text backlog (bodies of bulk-stored messages)

    def fts_pending_count(self, account: str | None = None) -> int:
        """How many messages (of `account`, or all) have no body text in search yet."""
        if account is None:
            rows = self._read("cannot count", "SELECT count(*) FROM fts_pending")
        else:
            rows = self._read(
                "cannot count",
                "SELECT count(*) FROM fts_pending AS p JOIN messages AS m ON m.id = p.id"
                " WHERE m.account = ?",
                (account,),
            )
        return int(rows[0][0])

    def fts_backlog(self, account: str, limit: int) -> list[tuple[int, str, str, str, str]]:
        """(id, folder, key, subdir, flags) of up to `limit` messages waiting for their
        body text, newest id first (recent mail becomes searchable first)."""
        return [
            (r[0], r[1], r[2], r[3], r[4])
            for r in self._read(
                "cannot read the full-text backlog",
                "SELECT m.id, m.folder, m.key, m.subdir, m.flags FROM fts_pending AS p"
                " JOIN messages AS m ON m.id = p.id WHERE m.account = ?"
                " ORDER BY p.id DESC LIMIT ?",
                (account, max(0, int(limit))),
            )
        ]

    def fill_fts(self, entries: Iterable[tuple[int, str, str, tuple[bool, str] | None]]) -> int:
        """Write the full-text rows of backlog messages, in one transaction.

        Entries are (id, folder, key, parse_body() of the file, or None if it
        could not be read: then the headers alone are indexed, so an unreadable
        file cannot keep the backlog busy forever). Subject and addresses come
        from the row. An entry whose row was moved, deleted or re-stored since
        fts_backlog() is skipped (if still pending, it comes round again). The
        full parse also settles has_attachment, which parse_headers guesses.
        Returns how many were written.
        """
        wanted = {msg_id: (folder, key, body) for msg_id, folder, key, body in entries}
        if not wanted:
            return 0
        with self._write("cannot index message bodies") as conn:
            current = conn.execute(
                "SELECT m.id, m.folder, m.key FROM fts_pending AS p JOIN messages AS m"
                " ON m.id = p.id WHERE p.id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(wanted)),),
            ).fetchall()
            ready = [
                (msg_id, wanted[msg_id][2])
                for msg_id, folder, key in current
                if wanted[msg_id][:2] == (folder, key)
            ]
            ids = [(msg_id,) for msg_id, _ in ready]
            conn.executemany("DELETE FROM fts_pending WHERE id = ?", ids)
            # Never two full-text rows for one message, whatever happened before.
            conn.executemany("DELETE FROM messages_fts WHERE rowid = ?", ids)
            conn.executemany(
                "INSERT INTO messages_fts(rowid, subject, sender, recipients, body)"
                " SELECT id, subject, trim(from_name || ' ' || from_addr),"
                " trim(to_addrs || ' ' || cc_addrs), ?2 FROM messages WHERE id = ?1",
                [(msg_id, body[1] if body else "") for msg_id, body in ready],
            )
            conn.executemany(
                "UPDATE messages SET has_attachment = ?2 WHERE id = ?1 AND has_attachment != ?2",
                [(msg_id, int(body[0])) for msg_id, body in ready if body is not None],
            )
        return len(ready)

    def execute_read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Raw read access under the lock (for the journal and diagnostics)."""
        return self._read("query failed", sql, params)


def _envelope(row: Sequence[Any]) -> Envelope:
    (
        msg_id, account, folder, key, date, from_name, from_addr, subject, size, flags,
        has_attachment, thread_id, pending, message_id,
    ) = row  # fmt: skip
    return Envelope(
        ref=MessageRef(account, folder, key, msg_id),
        date=date,
        sender=Address(from_name, from_addr),
        subject=subject,
        size=size,
        flags=FlagSet.from_maildir(flags),
        has_attachment=bool(has_attachment),
        thread_id=thread_id,
        pending=bool(pending),
        message_id=message_id,
    )


def _folder_state(row: Sequence[Any]) -> FolderState:
    role = None
    if row[2]:
        with contextlib.suppress(ValueError):
            role = FolderRole(row[2])
    return FolderState(row[0], row[1], role, row[3], row[4], row[5], row[6])


def move_aside(path: Path) -> Path:
    """Rename a broken index (with its -wal) to `<path>.corrupt-<unix time>`; kept, never
    deleted, so nothing in it is lost for good. Returns the new name."""
    base = f"{path}.corrupt-{int(time.time())}"
    target = base
    n = 1
    while os.path.exists(target):
        target = f"{base}-{n}"
        n += 1
    try:
        os.replace(path, target)
        for suffix in ("-wal", "-journal"):
            if os.path.exists(f"{path}{suffix}"):
                os.replace(f"{path}{suffix}", f"{target}{suffix}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}-shm")
    except OSError as exc:
        raise StoreError(f"cannot move the broken index {path} aside: {exc}") from exc
    return Path(target)


def _split_sql(script: str) -> list[str]:
    """Statements of the schema script; trigger bodies keep their inner semicolons."""
    statements: list[str] = []
    current: list[str] = []
    in_trigger = False
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        current.append(line)
        if stripped.upper().startswith("CREATE TRIGGER"):
            in_trigger = True
        if in_trigger:
            if stripped.upper() == "END;":
                statements.append("\n".join(current))
                current, in_trigger = [], False
        elif stripped.endswith(";"):
            statements.append("\n".join(current))
            current = []
    return statements
