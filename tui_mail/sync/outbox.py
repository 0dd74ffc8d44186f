"""The durable outbox: every send is written to disk first, then delivered exactly once.

States of a message (docs/outbox.md has the full story):

    queued --> sending --> sent
                  |------> failed   retry_at set: retried with backoff (4xx, no link)
                  |                 retry_at NULL: permanent (5xx, login refused)
                  '------> uncertain  interrupted mid-transaction: never resent by itself
    queued / failed / uncertain --> cancelled   (cancel / discard)
    failed / uncertain --> queued              (retry, the user's decision)

Where things are kept, and why:

* The message bytes are a file, `<data>/outbox/<account>/<name>.eml`, written to tmp/,
  fsynced and renamed in before its row exists. Not a BLOB in the index: the index is a
  cache that is moved aside and recreated when it is damaged (`MailIndex.was_reset`),
  and a message the user wrote must survive that; files also keep big attachments out
  of SQLite's WAL. A file found without a row is adopted as `uncertain`.
* The state is a row in the `outbox` table of the index DB (through
  `MailIndex.transaction()`, like seen.py), so the UI can list it with one query and a
  cancel racing a delivery is decided by one conditional UPDATE.
* `<name>.eml.sending`, an fsynced marker created before the row says `sending` and
  removed after the outcome is recorded. The index commits with synchronous=NORMAL,
  which survives a killed process but not a power cut; the marker does, so a `sending`
  state lost that way is still found and the message is not sent twice.
* Deliveries of one account hold an exclusive `flock` on `<account>/.lock` (released by
  the kernel when the process dies). A row found in `sending` while holding it belongs
  to nobody alive: that is how a restart recognises the interrupted send, and two
  processes (the TUI and `tui-mail send`) never send the same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from tui_mail import paths
from tui_mail.core import events as ev
from tui_mail.core.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    MailError,
    StoreError,
    TLSError,
)
from tui_mail.core.models import FolderRole
from tui_mail.core.redact import redact
from tui_mail.store.index import MailIndex
from tui_mail.sync.backoff import Backoff

if TYPE_CHECKING:
    from tui_mail.backends.base import SendBackend
    from tui_mail.config.schema import AccountConfig, AppConfig
    from tui_mail.store.account_store import AccountStore

log = logging.getLogger(__name__)

SaveSent = Callable[[bytes], Awaitable[None]]
Emit = Callable[[ev.Event], None]

EX_TEMPFAIL = 75  # sysexits.h: "try again later", what sendmail returns for a deferral
RETRY_BASE = 30.0  # seconds before the first retry; then x1.8 per attempt (Backoff)
RETRY_CAP = 3600.0
GIVE_UP_AFTER = 5 * 86400.0  # like an MTA's maximal queue lifetime
LOCK_WAIT = 60.0  # seconds to wait for another process's delivery run to finish
STALE_TMP = 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    file TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('queued', 'sending', 'sent', 'failed', 'cancelled', 'uncertain')),
    subject TEXT NOT NULL DEFAULT '',
    recipients TEXT NOT NULL DEFAULT '[]',
    message_id TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at REAL,
    last_error TEXT NOT NULL DEFAULT '',
    accepted TEXT NOT NULL DEFAULT '[]'
)
"""
_SCHEMA_INDEX = "CREATE INDEX IF NOT EXISTS outbox_by_account ON outbox(account, state)"
_COLUMNS = (
    "id, account, file, state, subject, recipients, message_id, created, updated,"
    " attempts, retry_at, last_error, accepted"
)
UNCERTAIN_REASON = (
    "interrupted during sending: the server may or may not have accepted it; "
    "resend it or discard it"
)


class State(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNCERTAIN = "uncertain"


ACTIVE = (State.QUEUED, State.SENDING, State.FAILED, State.UNCERTAIN)


class OutboxEntry(Struct, frozen=True):
    id: int
    account: str
    file: str
    state: State
    subject: str
    recipients: tuple[str, ...]
    message_id: str
    created: float
    updated: float
    attempts: int
    retry_at: float | None
    last_error: str
    accepted: tuple[str, ...]

    @property
    def will_retry(self) -> bool:
        return self.state is State.QUEUED or (
            self.state is State.FAILED and self.retry_at is not None
        )


class DeliveryResult(Struct, frozen=True):
    """What one delivery attempt did. `refused`: recipients the server turned down
    while accepting the message for the others (the message counts as sent)."""

    id: int
    state: State
    detail: str = ""
    retry_at: float | None = None
    accepted: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


class OutboxChanged(ev.Event, frozen=True, kw_only=True):
    """The account's outbox as it is now: every message not yet sent or cancelled."""

    entries: tuple[OutboxEntry, ...] = field(default_factory=tuple)


class OutboxBusy(MailError):
    """Another process is delivering this account's outbox right now."""


def _entry(row: Sequence[Any]) -> OutboxEntry:
    (id_, account, file, state, subject, rcpts, mid, created, updated) = row[:9]
    attempts, retry_at, error, accepted = row[9:]
    return OutboxEntry(
        id=int(id_),
        account=str(account),
        file=str(file),
        state=State(state),
        subject=str(subject),
        recipients=tuple(json.loads(rcpts)),
        message_id=str(mid),
        created=float(created),
        updated=float(updated),
        attempts=int(attempts),
        retry_at=None if retry_at is None else float(retry_at),
        last_error=str(error),
        accepted=tuple(json.loads(accepted)),
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on a directory
        if exc.errno not in (22, 95):  # EINVAL, EOPNOTSUPP
            raise
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _claim_lost(marker: Path, entry: OutboxEntry) -> bool:
    """A marker for an attempt the row does not count: the `sending` commit was lost
    (a power cut under synchronous=NORMAL), so that attempt may have reached the server."""
    try:
        claimed = int(marker.read_text().strip() or "0")
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # unreadable: assume the worst, the user decides
    return claimed > entry.attempts


def _summary(raw: bytes) -> tuple[str, list[str], str]:
    """(subject, recipients, message-id) for listing; raises for an unsendable message."""
    from email.header import decode_header, make_header

    from tui_mail.compose.build import ComposeError, header_fields, one_line, parse_address_list

    fields = header_fields(raw)
    recipients: list[str] = []
    for name, value in fields:
        if name.lower() in ("to", "cc", "bcc"):
            recipients += [a.addr_spec for a in parse_address_list(value, name)]
    if not recipients:
        raise ComposeError("the message has no recipients (To, Cc or Bcc)")
    subject = next((v for n, v in fields if n.lower() == "subject"), "")
    message_id = next((v for n, v in fields if n.lower() == "message-id"), "")
    try:
        subject = str(make_header(decode_header(subject)))
    except (LookupError, UnicodeError, ValueError):
        pass  # an unknown charset: list the subject undecoded
    return one_line(subject), list(dict.fromkeys(recipients)), one_line(message_id)


class Outbox:
    def __init__(
        self,
        index: MailIndex,
        root: Path | None = None,
        *,
        retry_base: float = RETRY_BASE,
        retry_cap: float = RETRY_CAP,
        give_up_after: float = GIVE_UP_AFTER,
        lock_wait: float = LOCK_WAIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.index = index
        self.root = Path(root) if root is not None else paths.data_dir() / "outbox"
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.give_up_after = give_up_after
        self.lock_wait = lock_wait
        self.clock = clock
        with index.transaction() as conn:
            conn.execute(_SCHEMA)
            conn.execute(_SCHEMA_INDEX)

    # ------------------------------------------------------------------ files

    def account_dir(self, account: str) -> Path:
        if not account or "/" in account or account in (".", ".."):
            raise ConfigError(f"invalid account name {account!r}")
        path = self.root / account
        (path / "tmp").mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _path(self, entry: OutboxEntry) -> Path:
        return self.account_dir(entry.account) / entry.file

    @staticmethod
    def _marker(path: Path) -> Path:
        return path.with_name(path.name + ".sending")

    def read(self, id: int) -> bytes:
        """The queued message as it was enqueued (Bcc included)."""
        entry = self.get(id)
        if entry is None:
            raise MailError(f"outbox: no message {id}")
        try:
            return self._path(entry).read_bytes()
        except OSError as exc:
            raise StoreError(f"outbox: cannot read message {id}: {exc.strerror}") from None

    # ------------------------------------------------------------------ queue

    def enqueue(self, account: str, raw: bytes) -> int:
        """Store `raw` durably and queue it; returns its id.

        Refuses (ComposeError) a message without recipients or with an invalid
        address: better now, at the keyboard, than as a failure hours later.
        """
        import uuid  # here: sending only, and `tui-mail sync` imports this module

        subject, recipients, message_id = _summary(raw)
        directory = self.account_dir(account)
        name = f"{int(self.clock())}.{uuid.uuid4().hex}.eml"
        tmp = directory / "tmp" / name
        try:
            _write_durably(tmp, raw)
            now = self.clock()
            # Rename and insert under the index's write lock: a recovery in another
            # process (which lists files under the same lock) never sees the file
            # without its row and adopts it.
            with self.index.transaction() as conn:
                os.replace(tmp, directory / name)
                _fsync_dir(directory)
                cur = conn.execute(
                    "INSERT INTO outbox(account, file, state, subject, recipients, message_id,"
                    " created, updated) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                    (account, name, subject, json.dumps(recipients), message_id, now, now),
                )
                new_id = int(cur.lastrowid or 0)
        except BaseException as exc:
            # Not queued: leave no file behind that a later recovery would adopt.
            for leftover in (tmp, directory / name):
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                why = exc.strerror or str(exc)
                raise StoreError(f"outbox: cannot store the message: {why}") from None
            raise
        return new_id

    def get(self, id: int) -> OutboxEntry | None:
        rows = self.index.execute_read(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (id,))
        return _entry(rows[0]) if rows else None

    def entries(
        self, account: str | None = None, states: Iterable[State] = ACTIVE
    ) -> list[OutboxEntry]:
        wanted = [State(s).value for s in states]
        sql = f"SELECT {_COLUMNS} FROM outbox WHERE state IN (SELECT value FROM json_each(?))"
        params: list[object] = [json.dumps(wanted)]
        if account is not None:
            sql += " AND account = ?"
            params.append(account)
        return [_entry(r) for r in self.index.execute_read(sql + " ORDER BY id", params)]

    def due(self, account: str, *, force: bool = False) -> list[OutboxEntry]:
        """Messages to try now. `force`: also those waiting for a retry (a manual flush)."""
        now = self.clock()
        return [
            e
            for e in self.entries(account, (State.QUEUED, State.FAILED))
            if e.state is State.QUEUED or (e.retry_at is not None and (force or e.retry_at <= now))
        ]

    def next_retry(self, account: str) -> float | None:
        """When the next delivery is due (a time.time() value), or None: for scheduling."""
        times = [
            (e.retry_at if e.state is State.FAILED else e.updated)
            for e in self.entries(account, (State.QUEUED, State.FAILED))
            if e.will_retry
        ]
        return min((t for t in times if t is not None), default=None)

    def _transition(self, id: int, to: State, allowed: Sequence[State], **values: object) -> bool:
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.index.transaction() as conn:
            cur = conn.execute(
                f"UPDATE outbox SET state = ?, updated = ?{', ' + sets if sets else ''}"
                " WHERE id = ? AND state IN (SELECT value FROM json_each(?))",
                (
                    to.value,
                    self.clock(),
                    *values.values(),
                    id,
                    json.dumps([s.value for s in allowed]),
                ),
            )
            return cur.rowcount == 1

    def cancel(self, id: int) -> None:
        """Queued or failed (or uncertain: "discard") -> cancelled; the file is deleted.

        Read the message first (`read`) to reopen it as a draft. Raises MailError when the
        message is being sent right now or is already sent.
        """
        allowed = (State.QUEUED, State.FAILED, State.UNCERTAIN)
        if not self._transition(id, State.CANCELLED, allowed, retry_at=None):
            entry = self.get(id)
            state = entry.state.value if entry else "unknown"
            raise MailError(f"outbox: message {id} cannot be cancelled: it is {state}")
        entry = self.get(id)
        if entry is not None:
            with contextlib.suppress(OSError):
                self._marker(self._path(entry)).unlink(missing_ok=True)
                self._path(entry).unlink(missing_ok=True)

    discard = cancel

    def retry(self, id: int) -> None:
        """Failed or uncertain -> queued now: the user decided to (re)send it."""
        entry = self.get(id)
        if entry is not None and not self._path(entry).exists():
            raise MailError(f"outbox: message {id} has no stored copy left to send")
        if not self._transition(
            id, State.QUEUED, (State.FAILED, State.UNCERTAIN), retry_at=None, last_error=""
        ):
            state = entry.state.value if entry else "unknown"
            raise MailError(f"outbox: message {id} cannot be retried: it is {state}")

    resend = retry

    def purge(self, older_than: float = 30 * 86400.0) -> int:
        """Forget sent and cancelled rows older than `older_than` seconds."""
        with self.index.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM outbox WHERE state IN ('sent', 'cancelled') AND updated < ?",
                (self.clock() - older_than,),
            )
            return cur.rowcount

    # ------------------------------------------------------------------ recovery

    def recover(self, account: str) -> list[int]:
        """Settle what an interrupted process left behind; returns ids now `uncertain`.

        Call only while holding the account's delivery lock (deliver_due does), so no
        live process is in the middle of one of these sends.
        """
        directory = self.account_dir(account)
        now = self.clock()
        uncertain: list[int] = []
        with self.index.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE account = ?", (account,)
            ).fetchall()
            entries = [_entry(r) for r in rows]
            known = {e.file for e in entries}
            for e in entries:
                path = directory / e.file
                marker = self._marker(path)
                if e.state is State.SENDING or (
                    e.state in (State.QUEUED, State.FAILED) and _claim_lost(marker, e)
                ):
                    # The window no client can close: we cannot know whether the server
                    # took it. Never resend by ourselves; the user decides.
                    conn.execute(
                        "UPDATE outbox SET state = 'uncertain', retry_at = NULL,"
                        " last_error = ?, updated = ? WHERE id = ?",
                        (UNCERTAIN_REASON, now, e.id),
                    )
                    uncertain.append(e.id)
                elif e.state in (State.QUEUED, State.FAILED) and not path.exists():
                    conn.execute(
                        "UPDATE outbox SET state = 'failed', retry_at = NULL, last_error = ?,"
                        " updated = ? WHERE id = ?",
                        ("the stored copy of this message is missing; nothing to send", now, e.id),
                    )
                elif e.state in (State.QUEUED, State.FAILED) and marker.exists():
                    marker.unlink(missing_ok=True)  # outcome recorded, cleanup interrupted
                elif e.state in (State.SENT, State.CANCELLED):
                    # Leftovers of a crash between recording the outcome and cleaning up.
                    with contextlib.suppress(OSError):
                        marker.unlink(missing_ok=True)
                        path.unlink(missing_ok=True)
            for path in sorted(directory.glob("*.eml")):
                if path.name in known:
                    continue
                # A file without a row: the index was reset, or rows were lost. It may
                # have been sent already, so it is not sent again without the user.
                try:
                    subject, recipients, message_id = _summary(path.read_bytes())
                except (OSError, MailError):
                    subject, recipients, message_id = path.name, [], ""
                cur = conn.execute(
                    "INSERT INTO outbox(account, file, state, subject, recipients, message_id,"
                    " created, updated, last_error) VALUES (?, ?, 'uncertain', ?, ?, ?, ?, ?, ?)",
                    (
                        account,
                        path.name,
                        subject,
                        json.dumps(recipients),
                        message_id,
                        path.stat().st_mtime,
                        now,
                        "found in the outbox without a record (the index was reset?); "
                        "it may have been sent already: resend it or discard it",
                    ),
                )
                uncertain.append(int(cur.lastrowid or 0))
            for marker in directory.glob("*.eml.sending"):
                if not marker.with_suffix("").exists():
                    marker.unlink(missing_ok=True)
            for tmp in (directory / "tmp").iterdir():
                with contextlib.suppress(OSError):
                    if now - tmp.stat().st_mtime > STALE_TMP:  # an enqueue that never finished
                        tmp.unlink()
        return uncertain

    # ------------------------------------------------------------------ delivery

    @contextlib.asynccontextmanager
    async def _delivery_lock(self, account: str) -> AsyncIterator[None]:
        lock_path = self.account_dir(account) / ".lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.lock_wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise OutboxBusy(
                            f"{account}: another tui-mail process is sending this account's "
                            "outbox; the message stays queued"
                        ) from None
                    await asyncio.sleep(0.1)
            yield
        finally:
            os.close(fd)  # also releases the lock

    def _retry_delay(self, attempts: int) -> float:
        return Backoff(
            base=self.retry_base, cap=self.retry_cap, attempts=max(0, attempts - 1)
        ).next_delay()

    def _claim(self, entry: OutboxEntry) -> OutboxEntry | None:
        """Marker, then `sending` (attempts + 1), if the message is still due.

        The marker holds the attempt number it stands for, so recovery can tell a claim
        whose outcome was recorded (attempts caught up) from one that was lost.
        """
        path = self._path(entry)
        if not path.exists():
            return None
        marker = self._marker(path)
        marker.unlink(missing_ok=True)
        _write_durably(marker, f"{entry.attempts + 1}\n".encode())
        _fsync_dir(path.parent)
        claimed = self._transition(
            entry.id,
            State.SENDING,
            (State.QUEUED, State.FAILED),
            attempts=entry.attempts + 1,
        )
        if not claimed:  # cancelled meanwhile
            marker.unlink(missing_ok=True)
            return None
        return self.get(entry.id)

    def _settle(self, entry: OutboxEntry, to: State, **values: object) -> None:
        """Record the outcome of a claimed message, then drop its marker."""
        self._transition(entry.id, to, (State.SENDING,), **values)
        path = self._path(entry)
        self._marker(path).unlink(missing_ok=True)
        if to in (State.SENT, State.CANCELLED):
            path.unlink(missing_ok=True)

    def _failure(self, entry: OutboxEntry, exc: MailError) -> DeliveryResult:
        """failed, with a retry time when the error is temporary and we have not given up.

        `retryable` is what the error class says: ConnectError and SMTP 4xx replies yes;
        5xx, AuthError, TLSError, ConfigError no.
        """
        from tui_mail.compose.build import one_line

        reason = one_line(str(exc)) or type(exc).__name__
        retryable = bool(getattr(exc, "retryable", False))
        if retryable and self.clock() - entry.created > self.give_up_after:
            retryable = False
            reason = f"gave up after {entry.attempts} attempts: {reason}"
        retry_at = self.clock() + self._retry_delay(entry.attempts) if retryable else None
        return DeliveryResult(entry.id, State.FAILED, reason, retry_at)

    async def deliver_due(
        self,
        account: str,
        send_backend: SendBackend,
        save_sent: SaveSent | None = None,
        *,
        force: bool = False,
        sender: str | None = None,
        own_addresses: Sequence[str] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> list[DeliveryResult]:
        """Send every due message of `account`, each at most once; one result each.

        `sender`/`own_addresses` default to the send backend's account. `save_sent`
        gets the message as enqueued (Bcc included: it is the user's own record) after
        it is recorded as sent; its failure is noted, never turned into a resend.
        `on_change` is called after every state change (to refresh a display).
        """
        cfg = getattr(getattr(send_backend, "ctx", None), "account", None)
        default_sender = sender if sender is not None else getattr(cfg, "email", "")
        own = list(own_addresses or ([cfg.email, *cfg.aliases] if cfg is not None else []))
        changed = on_change or (lambda: None)
        results: list[DeliveryResult] = []
        async with self._delivery_lock(account):
            if await asyncio.to_thread(self.recover, account):
                changed()
            pending = await asyncio.to_thread(self.due, account, force=force)
            session_error: MailError | None = None
            for queued in pending:
                entry = await asyncio.to_thread(self._claim, queued)
                if entry is None:
                    continue
                changed()
                raw: bytes | None = None
                if session_error is not None:
                    # The server cannot be reached or refuses us: the same answer holds
                    # for the rest of this run, so record it without another connection.
                    result = self._failure(entry, session_error)
                else:
                    result, error, raw = await self._deliver_one(
                        entry, send_backend, default_sender, own
                    )
                    if isinstance(error, ConnectError | TLSError | AuthError | ConfigError):
                        session_error = error
                await asyncio.to_thread(self._record, entry, result)
                results.append(result)
                changed()
                if result.state is State.SENT and save_sent is not None and raw is not None:
                    await self._save_copy(entry, raw, save_sent)
        return results

    def _record(self, entry: OutboxEntry, result: DeliveryResult) -> None:
        if result.state is State.SENT:
            self._settle(
                entry,
                State.SENT,
                retry_at=None,
                last_error=result.detail if result.refused else "",
                accepted=json.dumps(list(result.accepted)),
            )
        else:
            self._settle(entry, result.state, retry_at=result.retry_at, last_error=result.detail)

    async def _deliver_one(
        self, entry: OutboxEntry, backend: SendBackend, default_sender: str, own: Sequence[str]
    ) -> tuple[DeliveryResult, MailError | None, bytes | None]:
        """One SMTP transaction: (result, the MailError if it failed, the message)."""
        from tui_mail.compose.build import envelope, one_line, strip_bcc

        try:
            raw = await asyncio.to_thread(self._path(entry).read_bytes)
            sender, recipients = envelope(raw, default_sender, own)
            wire = strip_bcc(raw)
        except OSError as exc:
            reason = f"cannot read the stored message: {exc.strerror or exc}"
            return DeliveryResult(entry.id, State.FAILED, reason), None, None
        except MailError as exc:  # the envelope cannot be made: permanent
            return DeliveryResult(entry.id, State.FAILED, one_line(str(exc))), exc, None
        try:
            sent = await backend.send(wire, sender, recipients)
        except MailError as exc:
            if getattr(exc, "delivery_uncertain", False):
                # A transport that can tell the link dropped after the final "." (and
                # before the reply) says so: the same window as a kill, same answer.
                reason = f"{UNCERTAIN_REASON} ({one_line(str(exc))})"
                return DeliveryResult(entry.id, State.UNCERTAIN, reason), None, raw
            return self._failure(entry, exc), exc, raw
        except asyncio.CancelledError:
            # Stopped mid-transaction: the row stays `sending` (and the marker stays),
            # so the next run marks it uncertain instead of guessing.
            raise
        except Exception as exc:  # a bug: we cannot tell whether the data went out
            log.exception("outbox: sending message %s failed unexpectedly", entry.id)
            # redact(): the reason is shown and stored in the index; a bug's text may
            # carry the password it was handling.
            reason = f"{UNCERTAIN_REASON} (internal error: {redact(str(exc))})"
            return DeliveryResult(entry.id, State.UNCERTAIN, reason), None, raw
        accepted = tuple(sent.accepted)
        refused = tuple(r for r in recipients if r not in accepted)
        detail = one_line(sent.detail)
        if refused:
            detail = one_line(f"not sent to {', '.join(refused)}: {detail}")
        return DeliveryResult(entry.id, State.SENT, detail, None, accepted, refused), None, raw

    async def _save_copy(self, entry: OutboxEntry, raw: bytes, save_sent: SaveSent) -> None:
        from tui_mail.compose.build import one_line

        try:
            await save_sent(raw)
        except Exception as exc:  # the message is sent; a missing copy must not resend it
            log.warning("outbox: message %s was sent but its Sent copy failed: %s", entry.id, exc)
            note = one_line(f"sent, but saving the Sent copy failed: {exc}")
            with self.index.transaction() as conn:
                conn.execute("UPDATE outbox SET last_error = ? WHERE id = ?", (note, entry.id))


# ---------------------------------------------------------------------- the worker's entry


def local_sent_saver(store: AccountStore, emit: Emit | None = None) -> SaveSent:
    """A SaveSent that files the copy in the account's local Sent folder (Maildir and
    POP3 accounts; an IMAP account passes one that APPENDs to the server instead)."""

    async def save(raw: bytes) -> None:
        folders = await asyncio.to_thread(store.folders)
        sent = next((f.name for f in folders if f.role is FolderRole.SENT), "Sent")
        await asyncio.to_thread(store.deliver, sent, raw, "S")
        if emit is not None:
            emit(ev.MessagesChanged(account=store.account, folder=sent))

    return save


LOCAL_SENT = object()  # flush_outbox's default: save the Sent copy in the local store


async def flush_outbox(
    account_cfg: AccountConfig,
    store: AccountStore,
    send_backend: SendBackend,
    emit: Emit,
    *,
    save_sent: SaveSent | object | None = LOCAL_SENT,
    force: bool = False,
    outbox: Outbox | None = None,
) -> list[DeliveryResult]:
    """Deliver the account's due messages; what AccountWorker and `tui-mail send` call.

    Emits `OutboxChanged` after every state change (and `MessagesChanged` for the local
    Sent folder). `save_sent`: LOCAL_SENT (the local Sent folder), None (the server
    files sent mail itself) or an async callable given the message bytes.
    """
    box = outbox or Outbox(store.index)
    name = account_cfg.name

    def changed() -> None:
        emit(OutboxChanged(account=name, entries=tuple(box.entries(name))))

    saver: SaveSent | None
    if save_sent is LOCAL_SENT:
        saver = local_sent_saver(store, emit)
    else:
        saver = save_sent  # type: ignore[assignment]
    return await box.deliver_due(
        name,
        send_backend,
        saver,
        force=force,
        sender=account_cfg.email,
        own_addresses=[account_cfg.email, *account_cfg.aliases],
        on_change=changed,
    )


def describe(result: DeliveryResult) -> str:
    """One line for the user about one delivery attempt."""
    if result.state is State.SENT:
        if result.refused:
            return f"sent to {', '.join(result.accepted)}; {result.detail}"
        return f"sent to {', '.join(result.accepted)}"
    if result.state is State.FAILED and result.retry_at is not None:
        when = time.strftime("%H:%M:%S", time.localtime(result.retry_at))
        return f"not sent yet, queued for retry at {when}: {result.detail}"
    if result.state is State.UNCERTAIN:
        return result.detail
    return f"not sent: {result.detail}"


# ---------------------------------------------------------------------- headless (`tui-mail send`)


class SendOutcome(Struct, frozen=True):
    exit_code: int
    lines: tuple[str, ...]


def pick_account(config: AppConfig, raw: bytes | None, wanted: str | None) -> list[str]:
    """--account, else the account whose address is the message's From, else the only one."""
    if wanted is not None:
        if wanted not in config.accounts:
            known = ", ".join(config.accounts) or "none"
            raise ConfigError(f"no account named {wanted!r}; accounts: {known}")
        return [wanted]
    if raw is None:
        return list(config.accounts)
    from tui_mail.compose.build import header_fields, parse_address_list

    senders = [
        a.addr_spec.lower()
        for n, v in header_fields(raw)
        if n.lower() == "from"
        for a in parse_address_list(v, "From", strict=False)
    ]
    for name, account in config.accounts.items():
        if any(s in {a.lower() for a in (account.email, *account.aliases)} for s in senders):
            return [name]
    if len(config.accounts) == 1:
        return list(config.accounts)
    raise ConfigError("the From address matches no account; choose one with --account NAME")


def _exit_code(results: Sequence[DeliveryResult]) -> int:
    """1 if anything ended for good unsent (refused, uncertain), else 75 if anything
    waits for a retry, else 0."""
    if any(r.state in (State.UNCERTAIN, State.CANCELLED) for r in results):
        return 1
    if any(r.state is State.FAILED and r.retry_at is None for r in results):
        return 1
    return EX_TEMPFAIL if any(r.state is State.FAILED for r in results) else 0


async def headless_send(
    config: AppConfig,
    *,
    account: str | None = None,
    raw: bytes | None = None,
    flush_only: bool = False,
    index_path: Path | None = None,
) -> SendOutcome:
    """`tui-mail send`: enqueue `raw` (unless `flush_only`) and deliver right away through
    `flush_outbox`, the worker's own path. A manual flush (`flush_only`) also tries
    messages whose retry time has not come yet, as `postqueue -f` does.

    Exit codes: 0 sent (or nothing was due), 75 (EX_TEMPFAIL) queued for a retry,
    1 not sent and not retried (refused, login failed, uncertain: the user decides).
    Lines are printed only for what did not simply go out.
    """
    # Imported here: the runtime imports the worker, which imports this module.
    from tui_mail.backends.base import BackendContext
    from tui_mail.backends.registry import make_receive, make_send
    from tui_mail.compose.build import add_missing_headers
    from tui_mail.core.capabilities import Capability
    from tui_mail.store.account_store import AccountStore
    from tui_mail.sync.runtime import store_root

    names = pick_account(config, raw, account)
    index = MailIndex.open(index_path or paths.index_path())
    lines: list[str] = []
    results: list[DeliveryResult] = []
    try:
        box = Outbox(index)
        new_id: int | None = None
        if raw is not None and not flush_only:
            cfg = config.accounts[names[0]]
            new_id = await asyncio.to_thread(box.enqueue, cfg.name, add_missing_headers(raw, cfg))
        for name in names:
            cfg = config.accounts[name]
            try:
                receive = make_receive(BackendContext(cfg, cfg.receive))
            except MailError:
                receive = None  # only decides where the Sent copy goes
            # IMAP keeps Sent on the server: the worker APPENDs it; the CLI does not.
            server_folders = receive is not None and receive.has(Capability.SERVER_FLAGS)
            store = AccountStore(name, store_root(cfg, receive), index)
            try:
                backend = make_send(BackendContext(cfg, cfg.send))
            except MailError as exc:
                lines.append(f"{name}: cannot send ({exc}); the outbox keeps the message")
                results.append(DeliveryResult(new_id or 0, State.FAILED, str(exc), None))
                continue
            try:
                done = await flush_outbox(
                    cfg,
                    store,
                    backend,
                    lambda _event: None,
                    save_sent=None if server_folders else LOCAL_SENT,
                    force=flush_only,
                    outbox=box,
                )
            except OutboxBusy as exc:
                lines.append(str(exc))
                results.append(DeliveryResult(new_id or 0, State.FAILED, str(exc), 0.0))
                continue
            finally:
                await backend.close()
            results += done
            lines += [
                f"{name}: message {r.id}: {describe(r)}"
                for r in done
                if r.state is not State.SENT or r.refused
            ]
            lines += [
                f"{name}: message {e.id} ({e.subject}) is uncertain: {e.last_error}; "
                f"`tui-mail send --retry {e.id}` sends it again, `--cancel {e.id}` drops it"
                for e in box.entries(name, (State.UNCERTAIN,))
            ]
        if new_id is None:
            return SendOutcome(_exit_code(results), tuple(lines))
        mine = [r for r in results if r.id == new_id]
        # Not attempted at all (another process was delivering): it is queued.
        return SendOutcome(_exit_code(mine) if mine else EX_TEMPFAIL, tuple(lines))
    finally:
        index.close()


def accounts_with_due_mail(names: Sequence[str], index_path: Path | None = None) -> list[str]:
    """Those of `names` with outbox messages due now: `tui-mail sync` sends them first,
    so a send queued while offline leaves with the next cron run. Asking makes
    nothing: without an index (a first sync) or an outbox in it, none was queued."""
    path = index_path or paths.index_path()
    if not path.exists():
        return []
    index = MailIndex.open(path)
    try:
        if not index.execute_read(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'"
        ):
            return []
        box = Outbox(index)
        return [name for name in names if box.due(name)]
    finally:
        index.close()


def outbox_listing(config: AppConfig, account: str | None, index_path: Path | None = None) -> str:
    """`tui-mail send --list`: every message not yet sent or cancelled, one per line."""
    names = pick_account(config, None, account)
    index = MailIndex.open(index_path or paths.index_path())
    try:
        box = Outbox(index)
        out = []
        for name in names:
            for e in box.entries(name):
                when = (
                    time.strftime(" retry %H:%M:%S", time.localtime(e.retry_at))
                    if e.retry_at
                    else ""
                )
                error = f" ({e.last_error})" if e.last_error else ""
                out.append(
                    f"{e.id}\t{name}\t{e.state.value}{when}\t{', '.join(e.recipients)}"
                    f"\t{e.subject}{error}"
                )
        return "\n".join(out)
    finally:
        index.close()


def outbox_action(config: AppConfig, action: str, id: int, index_path: Path | None = None) -> str:
    """`tui-mail send --retry ID` / `--cancel ID`."""
    index = MailIndex.open(index_path or paths.index_path())
    try:
        box = Outbox(index)
        if action == "retry":
            box.retry(id)
            return f"message {id} queued again"
        box.cancel(id)
        return f"message {id} cancelled"
    finally:
        index.close()
