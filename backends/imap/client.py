"""An asyncio IMAP4rev1 client: one connection, tagged commands, streaming FETCH.

Why not aioimaplib (which stays in pyproject for now)
-----------------------------------------------------
docs PERFORMANCE.md and AIOIMAPLIB.md measured and listed what its 2.0.3
does: a FETCH is quadratic in its size (17 s for 10k messages where mbsync
takes 0.4 s), one TLS read of >1000 short lines raises RecursionError, FETCH
commands cannot be pipelined, there is no STARTTLS, a dropped connection can
hang a pending command, and unsolicited responses go to whatever command is
pending. Bulk FETCH therefore needs a reader of our own anyway, and sharing
one socket between aioimaplib's protocol (for the other commands) and ours
(for FETCH) would mean handing a transport back and forth between two state
machines that both believe they own it. The rest of IMAP that we use (LOGIN,
AUTHENTICATE, SELECT, LIST, STORE, MOVE, APPEND, IDLE) is small once the
response parser exists, so the whole client is ours.

Design
------
* `ImapConnection` is an `asyncio.Protocol`. `data_received` feeds a
  `Framer` (one `find` per line, literals sliced by announced size) and
  dispatches each response synchronously: a tagged one completes its
  command, a FETCH goes to the active fetch stream (or the pending
  command), anything else is appended to the oldest pending command, and
  EXISTS / EXPUNGE / VANISHED / RECENT / unrequested FETCH also set
  `changed` so IDLE can wake.
* Every wait is bounded by `timeout` seconds *of silence*: a long FETCH
  that keeps receiving data is fine, a server that stops talking is not.
  A timeout, a drop, a malformed response or a cancelled command marks the
  connection dead (`ConnectError`, retryable): its state is unknown, so
  callers throw it away and reconnect; nothing is ever retried on it.
* STARTTLS upgrades the transport with `loop.start_tls`, after discarding
  everything received before the handshake (it came in plaintext and may
  be injected), and asks CAPABILITY again. A server that lacks or refuses
  STARTTLS, or greets with PREAUTH on a STARTTLS account, is a `TLSError`
  before any credential is sent; there is no plaintext fallback.
* Bulk FETCH is pipelined (`fetch_stream`: a window of commands in flight)
  with flow control: when the consumer falls behind by more than
  `_HIGH_WATER` bytes, reading pauses, so memory stays bounded by a few
  batches however large the folder.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal as TypingLiteral
from typing import TypeVar

import msgspec.structs
from msgspec import Struct, field

from tui_mail.backends.imap.parse import (
    DEFAULT_LIMITS,
    RESPONSE_COST,
    TOKEN_COST,
    Continuation,
    FetchData,
    Framer,
    Limits,
    Literal,
    StatusResponse,
    Untagged,
    astring,
    capabilities_from,
    parse_fetch_response,
    parse_response,
    server_reason,
    server_text,
    token_bound,
)
from tui_mail.core.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    MailError,
    ProtocolError,
    TLSError,
)
from tui_mail.core.tls import client_context

log = logging.getLogger(__name__)

# Fetch stream flow control: pause reading above this many queued body bytes,
# resume below the low mark.
_HIGH_WATER = 32 * 1024 * 1024
_LOW_WATER = 8 * 1024 * 1024
# RFC 2177: clients re-issue IDLE at least every 29 minutes.
MAX_IDLE = 25 * 60.0
# How many unsolicited responses are kept for inspection.
_ALERTS_KEEP = 4
_UNSOLICITED_KEEP = 10000
_CHANGE_NAMES = frozenset({"EXISTS", "EXPUNGE", "VANISHED", "RECENT"})

Reply = StatusResponse | Untagged | FetchData
_T = TypeVar("_T")


class ImapSettings(Struct, frozen=True):
    host: str
    port: int
    security: TypingLiteral["tls", "starttls", "none"]
    user: str
    ca_file: Path | None
    timeout: float
    limits: Limits = DEFAULT_LIMITS
    key_path: str = ""  # for ConfigError messages
    source_address: tuple[str, int] | None = None  # bind locally (tests)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


class CommandResult(Struct):
    status: StatusResponse
    untagged: list[Reply] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status.status == "OK"

    def named(self, name: str) -> list[Untagged]:
        return [r for r in self.untagged if isinstance(r, Untagged) and r.name == name]

    def fetches(self) -> list[FetchData]:
        return [r for r in self.untagged if isinstance(r, FetchData)]

    def codes(self) -> dict[str, StatusResponse]:
        """Response codes of untagged OK/NO lines and the tagged reply, by code name."""
        out: dict[str, StatusResponse] = {}
        for r in [*self.untagged, self.status]:
            if isinstance(r, StatusResponse) and r.code is not None:
                out[r.code.name] = r
        return out


class _Pending:
    __slots__ = ("cost", "future", "starttls", "stream", "tag", "untagged")

    def __init__(self, tag: str, future: asyncio.Future[StatusResponse]) -> None:
        self.tag = tag
        self.future = future
        self.untagged: list[Reply] = []
        self.cost = 0  # what `untagged` holds, in bytes (see Limits.max_untagged)
        self.stream: _FetchStream | None = None
        self.starttls = False


class _FetchStream:
    """FETCH responses and command completions of a pipelined fetch, in wire order."""

    def __init__(self, conn: ImapConnection) -> None:
        self.conn = conn
        self.items: collections.deque[FetchData | StatusResponse] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.queued = 0  # body bytes waiting for the consumer
        self.paused = False

    def put(self, item: FetchData | StatusResponse) -> None:
        self.items.append(item)
        if isinstance(item, FetchData) and item.body is not None:
            self.queued += len(item.body)
            if self.queued > _HIGH_WATER and not self.paused:
                self.paused = True
                self.conn.pause_reading()
        self.wake()

    def put_many(self, batch: list[FetchData]) -> None:
        """`put` of each item in turn."""
        self.items.extend(batch)
        # Nothing is taken out meanwhile and a pause only changes what the
        # transport reads next, so one check after the batch is one per item.
        self.queued += sum([len(d.body) for d in batch if d.body is not None])
        if self.queued > _HIGH_WATER and not self.paused:
            self.paused = True
            self.conn.pause_reading()
        self.wake()

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def pop(self) -> FetchData | StatusResponse:
        item = self.items.popleft()
        if isinstance(item, FetchData) and item.body is not None:
            self.queued -= len(item.body)
            if self.paused and self.queued < _LOW_WATER:
                self.paused = False
                self.conn.resume_reading()
        return item


class ImapConnection(asyncio.Protocol):
    """One IMAP connection. Not safe to share between event loops."""

    def __init__(self, settings: ImapSettings) -> None:
        self.s = settings
        self.capabilities: frozenset[str] = frozenset()
        self.tls = False
        self.authenticated = False
        self.selected: bytes | None = None  # wire name of the selected mailbox
        self.changed = asyncio.Event()  # set by unsolicited mailbox updates
        self.unsolicited: collections.deque[Reply] = collections.deque(maxlen=_UNSOLICITED_KEEP)
        # [ALERT] texts (RFC 3501 7.1: the client must show them), as inert text; a
        # few only, so a server repeating one cannot flood the status line.
        self.alerts: collections.deque[str] = collections.deque(maxlen=_ALERTS_KEEP)
        self.commands_sent = 0  # for tests and benchmarks: round trips cost
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._framer = Framer(settings.limits)
        self._pending: dict[str, _Pending] = {}
        self._order: collections.deque[_Pending] = collections.deque()
        self._tag = 0
        self._greeting: asyncio.Future[StatusResponse] = self._loop.create_future()
        self._cont: asyncio.Future[bytes] | None = None
        self._cont_lock = asyncio.Lock()  # one command at a time may wait for "+"
        self._stream: _FetchStream | None = None
        self._dead: ConnectError | None = None
        self._failure: MailError | None = None
        self._discard = False  # between STARTTLS OK and the TLS handshake
        self._last_activity = self._loop.time()
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._bye: str | None = None

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._discard or self._dead is not None:
            return
        self._last_activity = self._loop.time()
        framer = self._framer
        try:
            framer.feed(data)
            while True:
                stream = self._stream
                if stream is not None:
                    # A bulk download's responses, parsed in the buffer: where
                    # _dispatch() would send them too, in the same order.
                    batch: list[FetchData] = []
                    waiting = framer.fetches(batch)
                    if batch:
                        stream.put_many(batch)
                    if waiting:
                        return
                parts = framer.next()
                if parts is None:
                    return
                self._dispatch(parts)
                if self._discard or self._dead is not None:
                    # STARTTLS accepted: whatever followed in this read was sent in
                    # plaintext before the handshake, so it is dropped unread.
                    framer.reset()
                    return
        except MailError as exc:
            self._die(str(exc), exc)
        except Exception as exc:  # a parser bug must not leave the connection half-read
            log.exception("imap %s: cannot handle a response", self.s.where)
            self._die(f"cannot handle a response from {self.s.where}: {type(exc).__name__}")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._dead is None:
            why = f": {self._bye}" if self._bye else ""
            self._die(f"the IMAP server {self.s.where} closed the connection{why}")

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_reading(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and self._dead is None:
            # Silence while we were not reading is ours, not the server's.
            self._last_activity = self._loop.time()
            self._transport.resume_reading()

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, parts: list[bytes]) -> None:
        line = parts[0]
        if line[:2] == b"* " and line.find(b" FETCH ", 2, 24) > 0:
            data = parse_fetch_response(parts, self.s.limits)
            if data is not None:
                if self._stream is not None:
                    self._stream.put(data)
                    return
                self._note_change(data)
                self._keep(data, parts)
                return
        resp = parse_response(parts, self.s.limits)
        if isinstance(resp, Continuation):
            if self._cont is not None and not self._cont.done():
                self._cont.set_result(resp.text)
            else:
                raise ProtocolError(f"the IMAP server {self.s.where} sent an unexpected '+'")
            return
        if isinstance(resp, StatusResponse) and resp.code is not None:
            if resp.code.name == "ALERT":
                self.alerts.append(server_text(resp.text))
        if isinstance(resp, StatusResponse) and resp.tag != "*":
            self._complete(resp)
            return
        if not self._greeting.done():
            if isinstance(resp, StatusResponse):
                self._greeting.set_result(resp)
                return
            raise ProtocolError(f"the IMAP server {self.s.where} sent no greeting")
        if isinstance(resp, StatusResponse):
            if resp.status == "BYE":
                self._bye = server_text(resp.text)
            if resp.code is not None and resp.code.name == "CAPABILITY":
                self.capabilities = capabilities_from(resp.code.args)
        else:
            if resp.name == "CAPABILITY":
                self.capabilities = capabilities_from(resp.args)
            if resp.name in _CHANGE_NAMES:
                self._note_change(resp)
        self._keep(resp, parts)

    def _keep(self, resp: Reply, parts: list[bytes]) -> None:
        """Give an untagged response to the oldest pending command, within its budget."""
        if not self._order:
            return
        pending = self._order[0]
        # EXPUNGE is never read from a result (the change is noted above): not kept,
        # so one UID MOVE of 200k messages stays within the budget.
        keep = not (isinstance(resp, Untagged) and resp.name == "EXPUNGE")
        cost = sum(map(len, parts))
        if keep:
            # What the parsed tokens hold, not only their bytes: "()" is 2 bytes
            # on the wire and ~64 as a Python list in a list.
            cost += RESPONSE_COST + TOKEN_COST * token_bound(parts)
        else:
            cost += 128
        pending.cost += cost
        limit = self.s.limits.max_untagged
        if pending.cost > limit:
            raise ProtocolError(
                f"the IMAP server {self.s.where} sent more than {limit} bytes of responses "
                "to one command"
            )
        if keep:
            pending.untagged.append(resp)

    def _note_change(self, resp: Reply) -> None:
        if isinstance(resp, FetchData) and resp.body is not None:
            # Kept for inspection only: 10000 unrequested bodies would be gigabytes.
            resp = msgspec.structs.replace(resp, body=None)
        self.unsolicited.append(resp)
        self.changed.set()

    def _complete(self, resp: StatusResponse) -> None:
        pending = self._pending.pop(resp.tag, None)
        if pending is None:
            raise ProtocolError(
                f"the IMAP server {self.s.where} answered a command we did not send"
            )
        with contextlib.suppress(ValueError):
            self._order.remove(pending)
        if resp.code is not None and resp.code.name == "CAPABILITY":
            self.capabilities = capabilities_from(resp.code.args)
        if pending.starttls and resp.status == "OK":
            # From here until the handshake, nothing received may be believed.
            self._discard = True
            self.pause_reading()
        if pending.stream is not None:
            pending.stream.put(resp)
        if not pending.future.done():
            pending.future.set_result(resp)

    def _die(self, reason: str, cause: BaseException | None = None) -> None:
        if self._dead is not None:
            return
        self._dead = ConnectError(reason)
        # What is in flight now fails with the cause itself (an oversized literal
        # is not a network problem); later calls just find the connection dead.
        err: MailError = cause if isinstance(cause, ProtocolError) else self._dead
        if isinstance(cause, ProtocolError):
            # Says "this ended the session" to callers that would otherwise go on
            # with the next folder and show the account connected (sync/imap_sync.py).
            cause.connection_lost = True  # type: ignore[attr-defined]
        self._failure = err
        transport = self._transport
        if transport is not None:
            transport.abort()
        for fut in [
            self._greeting,
            self._cont,
            self._drain_waiter,
            *(p.future for p in self._pending.values()),
        ]:
            if fut is not None and not fut.done():
                fut.set_exception(err)
                fut.exception()  # mark retrieved: nobody may be waiting on it
        self._pending.clear()
        self._order.clear()
        if self._stream is not None:
            self._stream.wake()
        self.changed.set()  # wake an IDLE waiter so it sees the death

    # ------------------------------------------------------------------ state

    @property
    def alive(self) -> bool:
        return self._dead is None

    def _check_alive(self) -> None:
        if self._dead is not None:
            raise self._dead

    def abort(self) -> None:
        """Drop the connection at once (no LOGOUT)."""
        self._die(f"the IMAP connection to {self.s.where} was closed")

    # ------------------------------------------------------------------ waiting

    async def _wait(self, fut: asyncio.Future[_T]) -> _T:
        """Await `fut`, failing after `timeout` seconds without traffic either way."""
        timeout = self.s.timeout
        try:
            while True:
                if fut.done():
                    return fut.result()
                remaining = self._last_activity + timeout - self._loop.time()
                if remaining <= 0:
                    self._die(
                        f"the IMAP server {self.s.where} did not answer within {timeout:g} seconds"
                    )
                    if not fut.done():
                        # A future _die does not fail itself (the asyncio.wait of
                        # _await_continuation): the connection's error, not an
                        # InvalidStateError from asking it for a result.
                        self._check_alive()
                    return fut.result()  # raises the ConnectError set by _die
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(fut), remaining)
        except asyncio.CancelledError:
            # Abandoned mid-command: the reply is still coming, so the
            # connection's state is unknown from here on.
            self._die(f"an IMAP command to {self.s.where} was cancelled")
            raise

    def _write(self, data: bytes) -> None:
        self._check_alive()
        assert self._transport is not None
        self._last_activity = self._loop.time()
        self._transport.write(data)

    async def _drain(self) -> None:
        if self._write_paused:
            self._drain_waiter = self._loop.create_future()
            await self._wait(self._drain_waiter)

    def _new_pending(self, command: bytes = b"") -> _Pending:
        self._tag += 1
        tag = f"T{self._tag}"
        pending = _Pending(tag, self._loop.create_future())
        self._pending[tag] = pending
        self._order.append(pending)
        self.commands_sent += 1
        if log.isEnabledFor(logging.DEBUG):
            # The verb only, never the arguments: they may hold a password or a token.
            # (TUI_MAIL_DEBUG=tui_mail.backends.imap.client writes these to the log.)
            log.debug("imap %s > %s %s", self.s.where, tag, _verb(command))
        return pending

    async def _await_continuation(self, pending: _Pending) -> bool:
        """True when the server said "+", False when it completed the command instead."""
        assert self._cont is not None
        cont = self._cont
        waiter = asyncio.ensure_future(
            asyncio.wait({cont, pending.future}, return_when=asyncio.FIRST_COMPLETED)
        )
        try:
            await self._wait(waiter)
        finally:
            waiter.cancel()
        if cont.done() and not cont.cancelled():
            cont.result()  # re-raises a connection failure
            return True
        return False

    # ------------------------------------------------------------------ commands

    async def command(self, *args: bytes, starttls: bool = False) -> CommandResult:
        """Send `args` joined by spaces as one tagged command; wait for its completion.

        A `Literal` argument is sent as a literal (LITERAL+ when the server
        has it, else after the server's "+"). Returns NO/BAD as a result;
        use `check()` to turn them into errors.
        """
        self._check_alive()
        segments = self._segments(args)
        if len(segments) == 1:
            pending = self._new_pending(segments[0])
            pending.starttls = starttls
            self._write(pending.tag.encode() + b" " + segments[0])
            await self._drain()
            status = await self._wait(pending.future)
            return CommandResult(status, pending.untagged)
        async with self._cont_lock:
            pending = self._new_pending(segments[0])
            last = len(segments) - 1
            for i, seg in enumerate(segments):
                if i < last:
                    # Armed before the write: the "+" may arrive during the drain.
                    self._cont = self._loop.create_future()
                self._write(pending.tag.encode() + b" " + seg if i == 0 else seg)
                await self._drain()
                # The segment ended with {n}: the server must say "+" before the bytes.
                if i < last and not await self._await_continuation(pending):
                    break
            self._cont = None
            status = await self._wait(pending.future)
        return CommandResult(status, pending.untagged)

    def _segments(self, args: Sequence[bytes]) -> list[bytes]:
        """The command split where a synchronising literal needs the server's "+"."""
        caps = self.capabilities
        segments: list[bytes] = []
        cur = bytearray()
        for i, arg in enumerate(args):
            if i:
                cur += b" "
            if isinstance(arg, Literal):
                if "LITERAL+" in caps or ("LITERAL-" in caps and len(arg) <= 4096):
                    cur += b"{%d+}\r\n" % len(arg)
                else:
                    cur += b"{%d}\r\n" % len(arg)
                    segments.append(bytes(cur))
                    cur = bytearray()
                cur += arg
            else:
                cur += arg
        cur += b"\r\n"
        segments.append(bytes(cur))
        return segments

    async def check(self, *args: bytes, what: str = "") -> CommandResult:
        """`command()`, raising ProtocolError unless the server answers OK."""
        result = await self.command(*args)
        if not result.ok:
            verb = what or args[0].decode("ascii", "replace")
            why = server_reason(result.status.text)
            raise ProtocolError(f"the IMAP server {self.s.where} refused {verb}: {why}")
        return result

    async def pipeline(self, commands: Sequence[Sequence[bytes]]) -> list[CommandResult]:
        """Send simple commands (no literals) back to back; their results, in order.

        One round trip instead of one per command (STATUS of every folder).
        Servers answer commands in order, so each untagged reply arrives while
        its own command is the oldest pending one and lands in its result.
        """
        self._check_alive()
        pendings = []
        for args in commands:
            if any(isinstance(a, Literal) for a in args):
                raise ValueError("pipeline() sends no literals")
            line = b" ".join(args)
            pending = self._new_pending(line)
            self._write(pending.tag.encode() + b" " + line + b"\r\n")
            pendings.append(pending)
        await self._drain()
        results = []
        for pending in pendings:
            status = await self._wait(pending.future)
            results.append(CommandResult(status, pending.untagged))
        return results

    async def fetch_stream(
        self,
        commands: Iterable[bytes],
        window: int = 2,
        on_untagged: Callable[[Reply], None] | None = None,
    ) -> AsyncIterator[FetchData]:
        """Pipeline the FETCH `commands` (without tag), `window` in flight; yield each FETCH.

        Other untagged responses seen meanwhile (VANISHED, EXISTS...) go to
        `on_untagged`. A NO/BAD completion raises ProtocolError. Leaving the
        iteration early drops the connection: its replies are still coming.
        """
        self._check_alive()
        if self._stream is not None:
            raise RuntimeError("one fetch stream at a time")
        stream = _FetchStream(self)
        self._stream = stream
        todo = iter(commands)
        inflight: collections.deque[_Pending] = collections.deque()
        finished = False

        def send_next() -> None:
            cmd = next(todo, None)
            if cmd is None:
                return
            pending = self._new_pending(cmd)
            pending.stream = stream
            inflight.append(pending)
            self._write(pending.tag.encode() + b" " + cmd + b"\r\n")

        try:
            for _ in range(max(1, window)):
                send_next()
            while inflight:
                if not stream.items:
                    if self._failure is not None:
                        raise self._failure
                    stream.waiter = self._loop.create_future()
                    await self._wait(stream.waiter)
                    stream.waiter = None
                    continue
                item = stream.pop()
                if isinstance(item, FetchData):
                    yield item
                    continue
                done = inflight.popleft()
                if on_untagged is not None:
                    for r in done.untagged:
                        on_untagged(r)
                if item.status != "OK":
                    raise ProtocolError(
                        f"the IMAP server {self.s.where} refused FETCH: {server_text(item.text)}"
                    )
                send_next()
            finished = True
        finally:
            self._stream = None
            if stream.paused:
                self.resume_reading()
            if not finished:
                self._die(f"a FETCH from {self.s.where} was interrupted")

    # ------------------------------------------------------------------ session

    async def open(
        self, password: Callable[[], str], oauth_token: Callable[[], str] | None = None
    ) -> None:
        """Connect, secure as configured, authenticate. TLSError/AuthError/ConnectError."""
        s = self.s
        ctx = tls_context(s) if s.security != "none" else None
        try:
            async with asyncio.timeout(s.timeout):
                if s.security == "tls":
                    await self._loop.create_connection(
                        lambda: self,
                        s.host,
                        s.port,
                        ssl=ctx,
                        server_hostname=s.host,
                        ssl_handshake_timeout=s.timeout,
                        local_addr=s.source_address,
                    )
                    self.tls = True
                else:
                    await self._loop.create_connection(
                        lambda: self, s.host, s.port, local_addr=s.source_address
                    )
        except Exception as exc:
            self.abort()
            raise map_error(exc, s) from None
        try:
            greeting = await self._wait(self._greeting)
            if greeting.status == "BYE":
                raise ConnectError(
                    f"the IMAP server {s.where} refused the session: {server_text(greeting.text)}"
                )
            if greeting.code is not None and greeting.code.name == "CAPABILITY":
                self.capabilities = capabilities_from(greeting.code.args)
            preauth = greeting.status == "PREAUTH"
            if s.security == "starttls":
                if preauth:
                    raise TLSError(
                        f"the IMAP server {s.where} greeted with PREAUTH, so STARTTLS is "
                        'impossible, but the account requires it (security = "starttls")'
                    )
                if not self.capabilities:
                    await self.capability()
                if "STARTTLS" not in self.capabilities:
                    raise TLSError(
                        f"the IMAP server {s.where} does not offer STARTTLS, but the account "
                        'requires it (security = "starttls"); no credentials were sent. '
                        'Use security = "tls" if the server has a TLS port'
                    )
                assert ctx is not None
                await self._starttls(ctx)
            if preauth:
                self.authenticated = True
            else:
                if not self.capabilities or self.s.security == "starttls":
                    await self.capability()  # RFC 3501 6.2.1: the old list is void after TLS
                await self._login(password, oauth_token)
            if not self.capabilities:
                await self.capability()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, MailError) or not isinstance(exc, Exception):
                raise
            raise map_error(exc, s) from None

    async def _starttls(self, ctx: ssl.SSLContext) -> None:
        s = self.s
        result = await self.command(b"STARTTLS", starttls=True)
        if not result.ok:
            raise TLSError(
                f"the IMAP server {s.where} refused STARTTLS: {server_text(result.status.text)}"
                "; no credentials were sent"
            )
        assert self._transport is not None
        try:
            async with asyncio.timeout(s.timeout):
                transport = await self._loop.start_tls(
                    self._transport,
                    self,
                    ctx,
                    server_hostname=s.host,
                    ssl_handshake_timeout=s.timeout,
                )
        except Exception as exc:
            raise _starttls_error(exc, s, "IMAP") from None
        if transport is None:
            raise ConnectError(f"the IMAP server {s.where} closed the connection during STARTTLS")
        self._transport = transport
        self._framer.reset()
        self._discard = False
        self.capabilities = frozenset()
        # Untagged EXISTS/EXPUNGE/BYE seen before the handshake came in plaintext and
        # may be forged: none of it may wake an IDLE or describe the mailbox.
        self.unsolicited.clear()
        self.alerts.clear()
        self.changed.clear()
        self._bye = None
        self.tls = True

    async def capability(self) -> frozenset[str]:
        result = await self.check(b"CAPABILITY")
        for r in result.named("CAPABILITY"):
            self.capabilities = capabilities_from(r.args)
        return self.capabilities

    async def _login(
        self, password: Callable[[], str], oauth_token: Callable[[], str] | None
    ) -> None:
        s = self.s
        caps = self.capabilities
        who = f"IMAP login to {s.where} as {s.user}"
        if oauth_token is not None:
            if "AUTH=XOAUTH2" not in caps:
                raise AuthError(f"{who}: the server does not offer XOAUTH2")
            token = oauth_token()
            raw = f"user={s.user}\x01auth=Bearer {token}\x01\x01".encode()
            result = await self._authenticate(b"XOAUTH2", raw, abort_reply=b"")
        else:
            secret = password()
            if any(c in s.user + secret for c in "\r\n\0"):
                raise ConfigError(
                    "the user name or password contains a line break or NUL, which IMAP "
                    "cannot send",
                    key=s.key_path or None,
                )
            if "AUTH=PLAIN" in caps:
                raw = b"\0" + s.user.encode() + b"\0" + secret.encode()
                result = await self._authenticate(b"PLAIN", raw, abort_reply=b"*")
            elif "LOGINDISABLED" in caps:
                raise AuthError(
                    f"{who}: the server refuses to log in on this connection (LOGINDISABLED)"
                    + ("" if self.tls else '; use security = "tls" or "starttls"')
                )
            else:
                result = await self.command(
                    b"LOGIN", astring(s.user.encode()), astring(secret.encode())
                )
        if not result.ok:
            code = result.status.code.name if result.status.code else ""
            text = server_reason(result.status.text)
            if code in ("UNAVAILABLE", "INUSE", "LIMIT"):
                raise ConnectError(f"{who} is not possible right now: {text}")
            raise AuthError(f"{who} was refused: {text}")
        self.authenticated = True

    async def _authenticate(self, mech: bytes, raw: bytes, abort_reply: bytes) -> CommandResult:
        """SASL with a single client message (PLAIN, XOAUTH2), SASL-IR when offered."""
        b64 = base64.b64encode(raw)
        async with self._cont_lock:
            pending = self._new_pending(b"AUTHENTICATE")
            self._cont = self._loop.create_future()
            if "SASL-IR" in self.capabilities:
                self._write(pending.tag.encode() + b" AUTHENTICATE " + mech + b" " + b64 + b"\r\n")
            else:
                self._write(pending.tag.encode() + b" AUTHENTICATE " + mech + b"\r\n")
                if await self._await_continuation(pending):
                    self._cont = self._loop.create_future()
                    self._write(b64 + b"\r\n")
            # A further "+" is an error challenge (XOAUTH2 sends JSON): answer it so
            # the server completes with NO.
            while not pending.future.done():
                if await self._await_continuation(pending):
                    self._cont = self._loop.create_future()
                    self._write(abort_reply + b"\r\n")
            self._cont = None
            status = await self._wait(pending.future)
        return CommandResult(status, pending.untagged)

    async def enable(self, *extensions: bytes) -> frozenset[str]:
        result = await self.command(b"ENABLE", *extensions)
        enabled: set[str] = set()
        for r in result.named("ENABLED"):
            enabled |= capabilities_from(r.args)
        return frozenset(enabled)

    async def idle(self, timeout: float) -> bool:
        """IDLE until the server reports a change or `timeout` passes; then DONE.

        True if a change was reported (now, or since the last call). The
        caller resyncs: a push says "look", never what to believe.
        """
        self._check_alive()
        if self.changed.is_set():
            self.changed.clear()
            return True
        timeout = min(timeout, MAX_IDLE)
        async with self._cont_lock:
            pending = self._new_pending(b"IDLE")
            self._cont = self._loop.create_future()
            self._write(pending.tag.encode() + b" IDLE\r\n")
            if not await self._await_continuation(pending):
                self._cont = None
                status = pending.future.result()
                raise ProtocolError(
                    f"the IMAP server {self.s.where} refused IDLE: {server_text(status.text)}"
                )
            self._cont = None
            changed = False
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self.changed.wait()
                        changed = True
            except asyncio.CancelledError:
                # Leave the connection out of IDLE: the next command (LOGOUT at
                # shutdown) would be taken for a bad DONE and never answered.
                if self._dead is None and self._transport is not None:
                    self._write(b"DONE\r\n")
                raise
            self._check_alive()
            self._write(b"DONE\r\n")
            await self._wait(pending.future)
        self.changed.clear()
        return changed

    async def logout(self) -> None:
        """LOGOUT politely (bounded), then close. Never raises.

        Not after a command was cancelled while the server was to say "+" (an
        interrupted AUTHENTICATE or literal): LOGOUT would be read as its data,
        and the wait for an answer that never comes would hold up the shutdown.
        """
        if self._dead is None and self._transport is not None and self._cont is None:
            try:
                async with asyncio.timeout(min(self.s.timeout, 5.0)):
                    await self.command(b"LOGOUT")
            except (MailError, TimeoutError, OSError):
                pass
        self.abort()


def _verb(command: bytes) -> str:
    """The command name of a command line ("UID FETCH", "LOGIN"): safe to log."""
    words = command.split(None, 2)
    if not words:
        return "?"
    name = words[0].upper()
    if name == b"UID" and len(words) > 1:
        name += b" " + words[1].upper()
    return name.decode("ascii", "replace")


_CONTEXTS: dict[Path | None, ssl.SSLContext] = {}


def tls_context(s: ImapSettings) -> ssl.SSLContext:
    """System trust store plus the account's `ca_file`; host names are checked.

    Cached per ca_file: the IDLE connection and every reconnect would load the
    ca_file again (and, where the system keeps its CAs as one bundle, parse ~22 ms
    of it). A context holds no per-connection state.
    """
    ctx = _CONTEXTS.get(s.ca_file)
    if ctx is None:
        key = f"{s.key_path}.ca_file" if s.key_path else None
        ctx = _CONTEXTS[s.ca_file] = client_context(s.ca_file, key)
    return ctx


def _starttls_error(exc: BaseException, s: ImapSettings, proto: str) -> MailError:
    """A failed handshake after the server said OK to STARTTLS, named as such.

    A server that accepts STARTTLS and then never speaks TLS (silence, or plaintext)
    is broken or has someone in the middle: that is a TLS failure, not a network one.
    """
    if isinstance(exc, TimeoutError | ConnectionAbortedError):  # asyncio's handshake timeout
        why = f"did not complete the TLS handshake within {s.timeout:g} seconds"
    elif isinstance(exc, ssl.SSLError) and exc.reason == "WRONG_VERSION_NUMBER":
        why = "then answered in plaintext instead of TLS"
    else:
        return map_error(exc, s)
    return TLSError(
        f"the {proto} server {s.where} accepted STARTTLS but {why} (a broken server or "
        "someone in the middle); no credentials were sent"
    )


def map_error(exc: BaseException, s: ImapSettings) -> MailError:
    """Errors below the protocol as our own, each one line fit for the user."""
    where = s.where
    if isinstance(exc, MailError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return TLSError(
            f"the TLS certificate of {where} was not accepted: {server_text(reason)}"
            + ("" if s.ca_file else " (set ca_file if the server uses a private CA)")
        )
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return ConnectError(f"the IMAP server {where} closed the TLS connection")
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"TLS with {where} failed: {server_text(exc.reason or str(exc))}")
    if isinstance(exc, TimeoutError):
        return ConnectError(f"the IMAP server {where} did not answer within {s.timeout:g} seconds")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(f"the IMAP server {where} refused the connection")
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"cannot resolve the IMAP host {s.host}: {exc.strerror}")
    if isinstance(exc, OSError):
        return ConnectError(f"the connection to {where} failed: {exc.strerror or exc}")
    log.error("unexpected error talking to %s: %r", where, exc)
    return ProtocolError(f"unexpected error talking to {where}: {type(exc).__name__}")
