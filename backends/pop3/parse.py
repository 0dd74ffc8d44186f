"""Pure parsing of POP3 replies (RFC 1939, RFC 2449 CAPA, RFC 3206 response codes).

No I/O here: the client reads lines off the wire and hands them in, so every
rule about what a server may say is unit-testable without a server. Anything
malformed raises `ProtocolError`; server text that ends up in an error message
goes through `server_text()` so it is short and inert on a terminal.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

from msgspec import Struct

from tui_mail.core.errors import ProtocolError
from tui_mail.core.sanitize import inert_line

# Error messages quote at most this much of what the server said.
SERVER_TEXT_LIMIT = 200

# RFC 1939 says 1..70 printable characters; real servers sometimes exceed 70,
# so allow more but keep it bounded (the id is stored in the index).
UIDL_MAX_LEN = 255
_UIDL_RE = re.compile(rb"[\x21-\x7e]{1,%d}" % UIDL_MAX_LEN)
# A message number or a size: plain ASCII digits, bounded so int() stays cheap.
_NUMBER_RE = re.compile(rb"[0-9]{1,12}")
_CODE_RE = re.compile(rb"\[([\x21-\x5c\x5e-\x7e]{1,64})\]")


class Reply(Struct, frozen=True):
    """A one-line status reply: `ok` for "+OK", False for "-ERR"."""

    ok: bool
    text: bytes  # what follows the status indicator, leading space removed

    @property
    def code(self) -> str | None:
        """The RFC 2449/3206 response code, e.g. "AUTH", "IN-USE", "SYS/TEMP"."""
        m = _CODE_RE.match(self.text)
        return m.group(1).decode("ascii").upper() if m else None


def parse_status(line: bytes) -> Reply:
    """Split "+OK text" / "-ERR text" (line terminator already removed)."""
    for prefix, ok in ((b"+OK", True), (b"-ERR", False)):
        if line[: len(prefix)].upper() == prefix:
            rest = line[len(prefix) :]
            if rest and rest[:1] not in (b" ", b"\t"):
                break  # "+OKAY" is not a status indicator
            return Reply(ok, rest.lstrip(b" \t"))
    raise ProtocolError(f"the POP3 server sent a malformed reply: {server_text(line)!r}")


def server_text(raw: bytes | str) -> str:
    """Server-supplied text made safe to show: decoded, inert, bounded."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = inert_line(text.strip())
    if len(text) > SERVER_TEXT_LIMIT:
        text = text[: SERVER_TEXT_LIMIT - 3] + "..."
    return text


def strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


def parse_capa(lines: Iterable[bytes]) -> dict[str, list[str]]:
    """CAPA body lines -> {"STLS": [], "SASL": ["PLAIN", "LOGIN"], ...}.

    Names are upper-cased (RFC 2449: case-insensitive). Non-ASCII bytes are
    replaced rather than rejected: a capability we cannot read is one we do
    not use, which is never a reason to fail the login.
    """
    caps: dict[str, list[str]] = {}
    for raw in lines:
        words = strip_eol(raw).decode("ascii", "replace").split()
        if words:
            caps[words[0].upper()] = words[1:]
    return caps


def sasl_mechanisms(caps: dict[str, list[str]]) -> set[str]:
    return {m.upper() for m in caps.get("SASL", [])}


def _number(token: bytes, what: str, line: bytes) -> int:
    if not _NUMBER_RE.fullmatch(token):
        raise ProtocolError(f"the POP3 server sent a bad {what}: {server_text(line)!r}")
    return int(token)


def parse_uidl_listing(lines: Iterable[bytes]) -> list[tuple[int, str]]:
    """UIDL body lines -> [(message number, unique id)], in server order.

    A malformed line fails the whole listing: guessing could map an id to the
    wrong message, and a later DELE would then remove mail we never stored.
    """
    out: list[tuple[int, str]] = []
    seen_nums: set[int] = set()
    for raw in lines:
        line = strip_eol(raw)
        parts = line.split()
        if len(parts) != 2:
            raise ProtocolError(f"the POP3 server sent a bad UIDL line: {server_text(line)!r}")
        num = _number(parts[0], "message number", line)
        if num < 1 or num in seen_nums:
            raise ProtocolError(f"the POP3 server sent a bad UIDL line: {server_text(line)!r}")
        if not _UIDL_RE.fullmatch(parts[1]):
            raise ProtocolError(f"the POP3 server sent a bad unique id: {server_text(line)!r}")
        seen_nums.add(num)
        out.append((num, parts[1].decode("ascii")))
    return out


def parse_list_listing(lines: Iterable[bytes]) -> dict[int, int]:
    """LIST body lines -> {message number: size in octets}."""
    sizes: dict[int, int] = {}
    for raw in lines:
        line = strip_eol(raw)
        parts = line.split()
        # RFC 1939 allows extra fields after the size ("future extensions").
        if len(parts) < 2:
            raise ProtocolError(f"the POP3 server sent a bad LIST line: {server_text(line)!r}")
        num = _number(parts[0], "message number", line)
        if num < 1:
            raise ProtocolError(f"the POP3 server sent a bad LIST line: {server_text(line)!r}")
        sizes[num] = _number(parts[1], "message size", line)
    return sizes


def parse_stat(reply: Reply) -> tuple[int, int]:
    """ "+OK 3 1200" -> (3, 1200)."""
    parts = reply.text.split()
    if len(parts) < 2:
        raise ProtocolError(f"the POP3 server sent a bad STAT reply: {server_text(reply.text)!r}")
    return (
        _number(parts[0], "message count", reply.text),
        _number(parts[1], "mailbox size", reply.text),
    )


def auth_plain_token(user: str, password: str) -> str:
    """The base64 SASL PLAIN initial response (RFC 4616), authzid empty."""
    raw = b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def unstuff(line: bytes, at_line_start: bool) -> tuple[bytes, bool]:
    """Undo dot-stuffing for one chunk of a multi-line reply.

    Returns (payload, is_terminator). `line` is a chunk as read off the wire
    with its line ending kept; `at_line_start` says whether it starts a line
    (a long line arrives in several chunks and only the first may be stuffed).
    """
    if not at_line_start or line[:1] != b".":
        return line, False
    if line in (b".\r\n", b".\n"):
        return b"", True
    return line[1:], False
