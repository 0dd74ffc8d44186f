"""A blocking POP3 session on top of poplib.

Everything here blocks, so it runs only in the backend's worker thread (see
backend.py); the event loop never calls it directly. poplib supplies the
socket, the implicit-TLS wrap, the greeting and STLS. Replies are read here,
not through poplib's retr()/uidl()/capa(), because poplib

* caps every line at 2048 bytes, so one long line in a message (HTML mail
  often has them) would make that message unfetchable forever;
* strips line endings, so the caller could only guess the original bytes;
* has no bound on the number of lines, i.e. on memory.

This reader keeps the bytes as sent (only dot-stuffing is undone), bounds
status and listing lines, and bounds a message by `max_message_size`.

Every blocking socket call runs under the endpoint timeout (poplib passes it
to the socket), so a silent server fails one call after `timeout` seconds.
A server that trickles bytes is bounded by the size limits, not by a total
deadline: a large message on a slow link must be allowed to finish.

Any failure while a reply is in flight drops the connection without QUIT:
the session state is unknown, and POP3 commits DELE only at QUIT, so a drop
never deletes anything (RFC 1939 section 6, the UPDATE state).
"""

from __future__ import annotations

import contextlib
import logging
import poplib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from msgspec import Struct

from tui_mail.backends.pop3.parse import (
    Reply,
    auth_plain_token,
    parse_capa,
    parse_list_listing,
    parse_stat,
    parse_status,
    parse_uidl_listing,
    sasl_mechanisms,
    server_text,
    strip_eol,
    unstuff,
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

# Bound for one status or listing line: poplib's own _MAXLINE (RFC 1939 says 512).
MAX_LINE = 2048
# Bound for a whole CAPA / UIDL / LIST body, each line costed at its length plus
# LINE_COST (the bytes object and the list slot it takes here): ~400k messages
# of UIDL. Counting bytes alone would let 64 MiB of "1 a" lines cost 600 MiB.
MAX_LISTING = 32 * 1024 * 1024
LINE_COST = 48
# A message may exceed the size LIST announced (some servers count LF line
# endings) but not by this much: beyond it the server is sending garbage.
ANNOUNCED_SLACK = 64 * 1024
MAX_CAPA = 64 * 1024
# Message bytes are read and handed on in pieces of at most this size.
CHUNK = 64 * 1024
DEFAULT_MAX_MESSAGE_SIZE = 100 * 1024 * 1024

# RFC 3206 codes that mean "not now" rather than "wrong credentials".
_TRANSIENT_CODES = {"IN-USE", "SYS/TEMP", "LOGIN-DELAY"}


class Pop3Settings(Struct, frozen=True):
    host: str
    port: int
    security: Literal["tls", "starttls", "none"]
    user: str
    ca_file: Path | None
    timeout: float
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    key_path: str = ""  # for ConfigError messages

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


class _SinkFailed(Exception):
    """The caller's sink raised: re-raised as is, never mistaken for a network error."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class Pop3Session:
    """One POP3 connection. Not thread-safe: one worker thread calls it,
    except `abort()`, which any thread may call to unblock that worker."""

    def __init__(self, settings: Pop3Settings, password: Callable[[], str]) -> None:
        self.s = settings
        self._password = password
        self._pop: poplib.POP3 | None = None
        self._aborted = threading.Event()
        self.tls = False  # True once the connection is encrypted
        self.deleted: set[int] = set()  # message numbers marked with DELE this session

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._pop is not None

    def open(self) -> None:
        """Connect, secure the link as configured, authenticate."""
        s = self.s
        with self._guard():
            if s.security == "tls":
                ctx = self._tls_context()
                self._pop = poplib.POP3_SSL(s.host, s.port, timeout=s.timeout, context=ctx)
                self.tls = True
            else:
                self._pop = poplib.POP3(s.host, s.port, timeout=s.timeout)
            self._check_aborted()
            caps = self._capa()
            if s.security == "starttls":
                self._starttls(caps)
                # RFC 2595 section 4: capabilities learnt before TLS are void.
                caps = self._capa()
            self._check_aborted()
            self._login(caps or {})
            self._check_aborted()

    def quit(self) -> None:
        """QUIT: the server deletes what DELE marked (the UPDATE state) and hangs up."""
        with self._guard():
            reply = self._short("QUIT")
        self._drop()
        if not reply.ok:
            raise ProtocolError(
                f"the POP3 server {self.s.where} did not confirm QUIT, so messages marked "
                f"for deletion may still be there: {server_text(reply.text)}"
            )

    def abort(self) -> None:
        """Unblock the worker from any thread: shut the socket down, never QUIT.

        Only `shutdown()` on the raw socket is used here: it is safe across
        threads, and the worker then fails its read and drops the session.
        """
        self._aborted.set()
        pop = self._pop
        sock = getattr(pop, "sock", None) if pop is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def drop(self) -> None:
        """Close without QUIT (nothing marked this session is deleted). Never raises."""
        self._drop()

    # ------------------------------------------------------------------ commands

    def stat(self) -> tuple[int, int]:
        with self._guard():
            reply = self._short("STAT")
            if not reply.ok:
                raise ProtocolError(
                    f"the POP3 server {self.s.where} refused STAT: {server_text(reply.text)}"
                )
            return parse_stat(reply)

    def uidl_listing(self) -> list[tuple[int, str]]:
        with self._guard():
            lines = self._long("UIDL", MAX_LISTING)
            if lines is None:
                raise ProtocolError(
                    f"the POP3 server {self.s.where} does not support UIDL, which is needed "
                    "to know which messages were already downloaded"
                )
            return parse_uidl_listing(lines)

    def list_sizes(self) -> dict[int, int]:
        with self._guard():
            lines = self._long("LIST", MAX_LISTING)
            if lines is None:
                raise ProtocolError(f"the POP3 server {self.s.where} refused LIST")
            return parse_list_listing(lines)

    def retrieve(
        self, num: int, sink: Callable[[bytes], None], announced: int | None = None
    ) -> int:
        """RETR `num`, passing the message bytes to `sink` in pieces; returns the size.

        The bytes are exactly what the server sent (CRLF line endings on the
        wire), minus the dot-stuffing and the terminating ".\\r\\n" line.
        `announced`: the size LIST gave; a message far longer is a ProtocolError.
        """
        with self._guard():
            reply = self._short(f"RETR {num}")
        if not reply.ok:  # the session is still in sync: keep it
            raise ProtocolError(
                f"the POP3 server {self.s.where} refused to send message {num}: "
                f"{server_text(reply.text)}"
            )
        with self._guard():
            return self._read_message(num, sink, announced)

    def retrieve_bytes(self, num: int, announced: int | None = None) -> bytes:
        parts: list[bytes] = []
        self.retrieve(num, parts.append, announced)
        return b"".join(parts)

    def dele(self, num: int) -> None:
        """Mark `num` for deletion; the server deletes it only at QUIT."""
        with self._guard():
            reply = self._short(f"DELE {num}")
        if not reply.ok:
            raise ProtocolError(
                f"the POP3 server {self.s.where} refused to delete message {num}: "
                f"{server_text(reply.text)}"
            )
        self.deleted.add(num)

    def dele_many(self, nums: list[int]) -> None:
        for num in nums:
            if num not in self.deleted:
                self.dele(num)

    # ------------------------------------------------------------------ connection steps

    def _tls_context(self) -> ssl.SSLContext:
        key = f"{self.s.key_path}.ca_file" if self.s.key_path else None
        return client_context(self.s.ca_file, key)

    def _starttls(self, caps: dict[str, list[str]] | None) -> None:
        # Refuse before any credential is sent: a missing STLS may be an attacker
        # stripping it, and plaintext fallback is exactly what they want.
        if caps is None or "STLS" not in caps:
            raise TLSError(
                f"the POP3 server {self.s.where} does not offer STLS, but the account "
                'requires it (security = "starttls"); no credentials were sent. '
                'Use security = "tls" if the server has a TLS port'
            )
        ctx = self._tls_context()
        # Done here rather than by poplib's stls(), which repeats CAPA with no bound
        # on the number of lines; the effect is the same.
        reply = self._short("STLS")
        if not reply.ok:
            raise TLSError(
                f"the POP3 server {self.s.where} refused STLS: {server_text(reply.text)}"
                "; no credentials were sent"
            )
        pop = self._conn()
        old_file = pop.file
        try:
            pop.sock = ctx.wrap_socket(pop.sock, server_hostname=self.s.host)
        except (TimeoutError, ssl.SSLError) as exc:
            raise _stls_error(exc, self.s) from None
        # A fresh reader: anything buffered before the handshake was sent in
        # plaintext (possibly injected) and must not be read as a TLS reply.
        pop.file = pop.sock.makefile("rb")
        old_file.close()
        self.tls = True

    def _login(self, caps: dict[str, list[str]]) -> None:
        user = self.s.user
        password = self._password()
        if any(c in user + password for c in "\r\n\0"):
            # A line break would end the command early and inject another one.
            raise ConfigError(
                "the user name or password contains a line break or NUL, which POP3 cannot send",
                key=self.s.key_path or None,
            )
        if "PLAIN" in sasl_mechanisms(caps):
            reply = self._auth_plain(user, password)
        else:
            reply = self._short(f"USER {user}")
            if reply.ok:
                reply = self._short(f"PASS {password}")
        if not reply.ok:
            self._auth_failed(reply)

    def _auth_plain(self, user: str, password: str) -> Reply:
        token = auth_plain_token(user, password)
        self._send(f"AUTH PLAIN {token}")
        line = strip_eol(self._readline(MAX_LINE))
        if line == b"+" or line.startswith(b"+ "):
            # The server ignored the initial response and asks for it (RFC 5034).
            self._send(token)
            line = strip_eol(self._readline(MAX_LINE))
        return parse_status(line)

    def _auth_failed(self, reply: Reply) -> None:
        text = server_text(reply.text) or "(the server gave no reason)"
        who = f"POP3 login to {self.s.where} as {self.s.user}"
        if reply.code in _TRANSIENT_CODES:
            raise ConnectError(f"{who} is not possible right now: {text}")
        raise AuthError(f"{who} was refused: {text}")

    def _check_aborted(self) -> None:
        if self._aborted.is_set():
            raise ConnectError(f"the POP3 connection to {self.s.where} was cancelled")

    # ------------------------------------------------------------------ wire helpers

    def _conn(self) -> poplib.POP3:
        if self._pop is None or self._pop.file is None:
            raise ConnectError(f"the POP3 connection to {self.s.where} is closed")
        return self._pop

    def _send(self, line: str) -> None:
        # Straight to the socket poplib opened (and STLS replaced): its _putcmd is private.
        self._conn().sock.sendall(line.encode("utf-8") + b"\r\n")

    def _readline(self, limit: int) -> bytes:
        line: bytes = self._conn().file.readline(limit + 1)
        if not line:
            raise ConnectError(f"the POP3 server {self.s.where} closed the connection")
        if len(line) > limit and not line.endswith(b"\n"):
            raise ProtocolError(f"the POP3 server {self.s.where} sent a line that is too long")
        return line

    def _short(self, command: str) -> Reply:
        self._send(command)
        return parse_status(strip_eol(self._readline(MAX_LINE)))

    def _long(self, command: str, max_total: int) -> list[bytes] | None:
        """A multi-line command; None when the server answers -ERR."""
        reply = self._short(command)
        if not reply.ok:
            return None
        lines: list[bytes] = []
        total = 0
        while True:
            line, end = unstuff(self._readline(MAX_LINE), True)
            if end:
                return lines
            total += len(line) + LINE_COST
            if total > max_total:
                raise ProtocolError(
                    f"the POP3 server {self.s.where} sent a {command} reply larger than "
                    f"{max_total} bytes"
                )
            lines.append(line)

    def _capa(self) -> dict[str, list[str]] | None:
        lines = self._long("CAPA", MAX_CAPA)
        return None if lines is None else parse_capa(lines)

    def _read_message(
        self, num: int, sink: Callable[[bytes], None], announced: int | None = None
    ) -> int:
        file = self._conn().file
        limit = self.s.max_message_size
        if announced is not None:
            # An endless message from a server that announced a small one fails
            # after a little more than announced, not after max_message_size.
            limit = min(limit, 2 * announced + ANNOUNCED_SLACK)
        total = 0
        buf = bytearray()
        at_start = True
        while True:
            chunk: bytes = file.readline(CHUNK)
            if not chunk:
                raise ConnectError(
                    f"the POP3 server {self.s.where} closed the connection in the middle "
                    f"of message {num}"
                )
            data, end = unstuff(chunk, at_start)
            if end:
                break
            # A line longer than CHUNK arrives in pieces; only a piece that
            # follows a line ending can carry dot-stuffing or the terminator.
            at_start = chunk.endswith(b"\n")
            total += len(data)
            if total > limit:
                if limit < self.s.max_message_size:
                    raise ProtocolError(
                        f"the POP3 server {self.s.where} sent more of message {num} than the "
                        f"{announced} bytes it announced"
                    )
                raise ProtocolError(
                    f"message {num} on {self.s.where} is larger than max_message_size "
                    f"({limit} bytes)"
                )
            buf += data
            if len(buf) >= CHUNK:
                self._feed(sink, bytes(buf))
                buf.clear()
        if buf:
            self._feed(sink, bytes(buf))
        return total

    @staticmethod
    def _feed(sink: Callable[[bytes], None], data: bytes) -> None:
        try:
            sink(data)
        except Exception as exc:
            raise _SinkFailed(exc) from exc

    def _drop(self) -> None:
        pop, self._pop = self._pop, None
        if pop is not None:
            with contextlib.suppress(Exception):
                pop.close()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Map everything below the protocol to our errors; drop the link on any failure.

        A failure inside a command leaves the reply half-read, so the session
        cannot go on; dropping it (no QUIT) also undoes this session's DELEs.
        """
        s = self.s
        try:
            yield
        except BaseException as exc:
            self._drop()
            if isinstance(exc, _SinkFailed):
                raise exc.original from None
            if isinstance(exc, MailError | KeyboardInterrupt | SystemExit):
                raise
            raise _map_error(exc, s) from None


def _stls_error(exc: TimeoutError | ssl.SSLError, s: Pop3Settings) -> MailError:
    """A failed handshake after the server said +OK to STLS, named as such: a server
    that then stays silent or answers in plaintext is broken or has someone in the
    middle, which is a TLS failure, not a network one."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _map_error(exc, s)
    if isinstance(exc, TimeoutError):
        why = f"did not complete the TLS handshake within {s.timeout:g} seconds"
    elif exc.reason == "WRONG_VERSION_NUMBER":
        why = "then answered in plaintext instead of TLS"
    else:
        return _map_error(exc, s)
    return TLSError(
        f"the POP3 server {s.where} accepted STLS but {why} (a broken server or someone "
        "in the middle); no credentials were sent"
    )


def _proto_text(exc: poplib.error_proto) -> bytes | str:
    return exc.args[0] if exc.args else ""


def _map_error(exc: BaseException, s: Pop3Settings) -> MailError:
    where = s.where
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return TLSError(
            f"the TLS certificate of {where} was not accepted: {server_text(reason)}"
            + ("" if s.ca_file else " (set ca_file if the server uses a private CA)")
        )
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return ConnectError(f"the POP3 server {where} closed the TLS connection")
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"TLS with {where} failed: {server_text(exc.reason or str(exc))}")
    if isinstance(exc, TimeoutError):
        return ConnectError(f"the POP3 server {where} did not answer within {s.timeout:g} seconds")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(f"the POP3 server {where} refused the connection")
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"cannot resolve the POP3 host {s.host}: {exc.strerror}")
    if isinstance(exc, OSError):
        return ConnectError(f"the connection to {where} failed: {exc.strerror or exc}")
    if isinstance(exc, poplib.error_proto):
        text = _proto_text(exc)
        if isinstance(text, bytes) and text[:4].upper() == b"-ERR":
            # Only the greeting gets here with a server -ERR: the server is busy.
            return ConnectError(
                f"the POP3 server {where} refused the session: {server_text(text[4:])}"
            )
        if text == "-ERR EOF":
            return ConnectError(f"the POP3 server {where} closed the connection")
        return ProtocolError(f"the POP3 server {where} sent a bad reply: {server_text(text)}")
    if isinstance(exc, ValueError):  # e.g. undecodable bytes where text was due
        return ProtocolError(f"the POP3 server {where} sent a bad reply: {server_text(str(exc))}")
    log.exception("unexpected error in the POP3 session with %s", where)
    return ProtocolError(f"unexpected error talking to {where}: {type(exc).__name__}")
