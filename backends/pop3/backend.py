"""POP3 as a receive backend: one server folder (INBOX), ids are UIDLs.

Session model, and why deleting is safe
---------------------------------------
A POP3 session sees a fixed snapshot of the maildrop: messages that arrive
later show up only in the next session, so the sync engine calls `close()`
after each run and connects again at the next poll. Within one session:

1. `fetch_new()` lists UIDLs once and RETRs those not in `known`;
2. the engine stores each message durably (fsync, index);
3. `remove_from_server()` sends DELE for stored ones; the server only *marks*
   them;
4. `close()` sends QUIT, and only then does the server delete them.

If the connection drops anywhere before QUIT is acknowledged (crash, network,
`abort()`, a cancelled task), the server deletes nothing: RFC 1939 section 6
applies DELE only in the UPDATE state that QUIT enters. So a DELE sent for a
durably stored message can at worst be lost, never applied to mail we lack,
and the next run simply sends it again.

Threading
---------
poplib blocks, so every call runs in a worker thread. Each connection has its
own single-thread executor rather than `asyncio.to_thread`: the one thread
serialises commands on the socket even when an awaiting task is cancelled
half-way (a cancelled `to_thread` call keeps running and a second call could
interleave on the same socket). A cancelled call shuts the socket down,
which unblocks the worker and drops the session without QUIT.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tui_mail.backends.base import BackendContext, ProgressCallback, ReceiveBackend
from tui_mail.backends.pop3.client import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Pop3Session,
    Pop3Settings,
)
from tui_mail.config.schema import DEFAULT_PORTS
from tui_mail.config.secrets import resolve_password
from tui_mail.core.capabilities import Capabilities, Capability
from tui_mail.core.errors import ConfigError, ConnectError, ProtocolError, Unsupported
from tui_mail.core.models import RemoteMessage, ServerId

log = logging.getLogger(__name__)

T = TypeVar("T")

INBOX = "INBOX"


class _Connection:
    """A session plus the one thread allowed to touch it, and what it listed."""

    def __init__(self, session: Pop3Session, label: str) -> None:
        self.session = session
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pop3-{label}")
        self.listing: list[tuple[int, str]] | None = None  # (msg number, uidl), server order
        self.by_uidl: dict[str, int] = {}
        self.sizes: dict[int, int] = {}

    def finish(self) -> None:
        """Drop the socket (queued behind any running call) and retire the thread."""
        self.executor.submit(self.session.drop)
        self.executor.shutdown(wait=False)


class Pop3ReceiveBackend(ReceiveBackend):
    """POP3 over TLS or STLS (or plaintext on loopback, as the config allows).

    Options (`[accounts.NAME.receive]`): `max_message_size` (bytes, default
    100 MiB; larger messages are skipped and reported). `delete_after_download`
    and `delete_after_days` are policy for the sync engine, which calls
    `remove_from_server()`; the backend only carries out the DELE.
    """

    name = "pop3"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        ep = ctx.endpoint
        key = ep.key_path
        if not ep.host:
            raise ConfigError("a pop3 account needs `host`", key=f"{key}.host" if key else None)
        if not ep.user:
            raise ConfigError("a pop3 account needs `user`", key=f"{key}.user" if key else None)
        if ep.security == "none" and not (ep.allow_plaintext or _is_loopback(ep.host)):
            # The config loader already refuses this; a hand-built config must not slip by.
            raise ConfigError(
                f'security = "none" to {ep.host} would send the password unencrypted',
                key=f"{key}.security" if key else None,
            )
        max_size = ep.options.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE)
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size <= 0:
            raise ConfigError(
                "max_message_size must be a positive number of bytes",
                key=f"{key}.max_message_size" if key else None,
            )
        self.settings = Pop3Settings(
            host=ep.host,
            port=ep.port or DEFAULT_PORTS[("pop3", ep.security)],
            security=ep.security,
            user=ep.user,
            ca_file=ep.ca_file,
            timeout=ep.timeout,
            max_message_size=max_size,
            key_path=key,
        )
        self._conn: _Connection | None = None
        self._connecting: asyncio.Lock | None = None

    @property
    def capabilities(self) -> Capabilities:
        # One folder, flags stay local: POP3 has nothing else to offer.
        return frozenset({Capability.DELETE_AFTER_DOWNLOAD})

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Open and authenticate a session unless one is open. AuthError, TLSError,
        ConnectError, ProtocolError, ConfigError (password_command) may be raised."""
        await self._ensure_connection()

    async def close(self) -> None:
        """QUIT, which makes the server apply this session's DELEs. Never raises;
        use `quit()` to learn whether the server confirmed."""
        try:
            await self.quit()
        except Exception as exc:
            log.warning("pop3 %s: closing: %s", self.settings.where, exc)

    async def quit(self) -> None:
        """QUIT and wait for the server's answer. Raises ConnectError/ProtocolError
        when it is not confirmed: then some marked messages may not be deleted
        (they are still known, so the next run only marks them again)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await self._call(conn, conn.session.quit)
        finally:
            conn.finish()

    async def abort(self) -> None:
        """Drop the connection without QUIT: nothing marked this session is deleted."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.session.abort()
            conn.finish()

    async def check(self) -> str:
        """Log in, count the messages, log out."""
        conn = await self._ensure_connection()
        count, _size = await self._call(conn, conn.session.stat)
        how = "TLS" if conn.session.tls else "no encryption"
        await self.quit()
        return (
            f"POP3 {self.settings.where} ({how}) as {self.settings.user}: "
            f"{count} message{'s' if count != 1 else ''} on the server"
        )

    # ------------------------------------------------------------------ receiving

    async def fetch_new(
        self, folder: str, known: set[str], progress: ProgressCallback | None = None
    ) -> AsyncIterator[RemoteMessage]:
        """Yield every message whose UIDL is not in `known`, oldest first.

        `raw` is the message as the server sends it (CRLF line endings), with
        POP3 dot-stuffing undone. A message over `max_message_size` (by LIST)
        or one the server refuses to send is skipped, so it cannot block newer
        mail; after all others were yielded, a ProtocolError names the skipped.
        """
        _check_folder(folder)
        conn = await self._ensure_listing()
        limit = self.settings.max_message_size
        assert conn.listing is not None
        todo = [
            (num, uidl)
            for num, uidl in conn.listing
            if uidl not in known and num not in conn.session.deleted
        ]
        too_big = [(num, uidl) for num, uidl in todo if conn.sizes.get(num, 0) > limit]
        todo = [item for item in todo if item not in too_big]
        total = len(todo)
        if progress is not None:
            progress(0, total)
        refused: list[str] = []
        for done, (num, uidl) in enumerate(todo, start=1):
            if conn is not self._conn:
                raise ConnectError(
                    f"the POP3 session with {self.settings.where} ended during the download"
                )
            try:
                raw = await self._call(conn, conn.session.retrieve_bytes, num, conn.sizes.get(num))
            except ProtocolError as exc:
                if not conn.session.connected:
                    raise  # the reply was cut or malformed: the session is gone
                # A -ERR to RETR (say, another client deleted it) leaves the session usable.
                log.warning("pop3 %s: %s", self.settings.where, exc)
                refused.append(uidl)
                continue
            if progress is not None:
                progress(done, total)
            yield RemoteMessage(folder=INBOX, raw=raw, server_id=ServerId(uidl=uidl))
        problems = []
        if too_big:
            names = ", ".join(f"{uidl} ({conn.sizes[num]} bytes)" for num, uidl in too_big[:5])
            problems.append(f"{len(too_big)} exceed max_message_size ({limit} bytes): {names}")
        if refused:
            problems.append(f"{len(refused)} the server would not send: {', '.join(refused[:5])}")
        if problems:
            raise ProtocolError(
                f"some messages on {self.settings.where} were not downloaded; "
                + "; ".join(problems)
            )

    async def retrieve_to(self, uidl: str, sink: Callable[[bytes], None]) -> int:
        """Stream one message into `sink` in pieces of at most 64 KiB; returns its size.

        `sink` runs in the worker thread (so it may write to a file without
        blocking the event loop) and must not touch the event loop. If it
        raises, the connection is dropped and its exception propagates.
        ProtocolError when `uidl` is not on the server in this session.
        """
        conn = await self._ensure_listing()
        num = conn.by_uidl.get(uidl)
        if num is None or num in conn.session.deleted:
            raise ProtocolError(f"message {uidl} is not on the POP3 server {self.settings.where}")
        return await self._call(conn, conn.session.retrieve, num, sink, conn.sizes.get(num))

    async def remove_from_server(self, folder: str, ids: Sequence[ServerId]) -> None:
        """Mark these messages with DELE; `close()` (QUIT) makes it happen.

        Call only for messages whose local copy is durable. Ids not on the
        server (already deleted) are skipped, so a repeat is harmless.
        """
        _check_folder(folder)
        conn = await self._ensure_listing()
        nums: list[int] = []
        for sid in ids:
            if sid.uidl is None:
                raise ValueError("POP3 deletes by UIDL; this ServerId has none")
            num = conn.by_uidl.get(sid.uidl)
            if num is not None:
                nums.append(num)
        if nums:
            await self._call(conn, conn.session.dele_many, nums)

    async def list_ids(self, folder: str) -> list[str]:
        return await self.uidls()

    async def uidls(self) -> list[str]:
        """The UIDLs on the server in this session, oldest first (for delete_after_days)."""
        conn = await self._ensure_listing()
        assert conn.listing is not None
        return [uidl for num, uidl in conn.listing if num not in conn.session.deleted]

    # ------------------------------------------------------------------ internals

    async def _ensure_connection(self) -> _Connection:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # two callers must not open two sessions
            if self._conn is not None and self._conn.session.connected:
                return self._conn
            if self._conn is not None:  # dropped after an error: start afresh
                self._conn.finish()
                self._conn = None
            ep = self.ctx.endpoint
            session = Pop3Session(self.settings, lambda: resolve_password(ep))
            conn = _Connection(session, self.ctx.account.name)
            try:
                await self._call(conn, session.open)
            except BaseException:
                conn.finish()
                raise
            self._conn = conn
            return conn

    async def _ensure_listing(self) -> _Connection:
        conn = await self._ensure_connection()
        if conn.listing is None:
            listing = await self._call(conn, conn.session.uidl_listing)
            sizes = await self._call(conn, conn.session.list_sizes)
            by_uidl: dict[str, int] = {}
            kept: list[tuple[int, str]] = []
            for num, uidl in listing:
                if uidl in by_uidl:
                    # A broken server gave two messages one id: fetching or deleting
                    # by that id would be ambiguous, so only the first is used.
                    log.warning("pop3 %s: duplicate UIDL %s", self.settings.where, uidl)
                    continue
                by_uidl[uidl] = num
                kept.append((num, uidl))
            conn.listing, conn.by_uidl, conn.sizes = kept, by_uidl, sizes
        return conn

    async def _call(self, conn: _Connection, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` on the connection's thread; on cancel, drop the connection."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(conn.executor, fn, *args)
        except asyncio.CancelledError:
            conn.session.abort()
            if self._conn is conn:
                self._conn = None
            conn.finish()
            raise
        except BaseException:
            if not conn.session.connected and self._conn is conn:
                self._conn = None  # the session dropped itself; the next call reconnects
                conn.finish()
            raise


def _check_folder(folder: str) -> None:
    if folder.upper() != INBOX:
        raise Unsupported(f"POP3 has only the INBOX folder, not {folder!r}")


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
