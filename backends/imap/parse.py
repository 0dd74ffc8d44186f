"""Pure IMAP response parsing (RFC 3501, 4315 UIDPLUS, 6154 SPECIAL-USE, 7162 CONDSTORE/QRESYNC).

No I/O here. The client feeds raw bytes to a `Framer`, which cuts them into
responses (a line, or lines joined by literals read by their announced size),
and `parse_response()` turns one into a typed value. Every rule about what a
server may send is therefore unit-testable without a server.

Representation of parsed tokens (`Token`):

* an atom is a `str` (undecodable bytes kept via surrogateescape, so a mailbox
  name sent as an atom can be turned back into the exact wire bytes);
* a quoted string or a literal is `bytes` (literals are `bytes`, never
  `bytearray`, so `email.message_from_bytes` and hashing work);
* NIL is `None`;
* a parenthesised list is a `list` of tokens.

Bounds: a line longer than `Limits.max_line`, a literal larger than
`Limits.max_literal`, a response larger than `Limits.max_response`, one of more
than `Limits.max_tokens` tokens or lists nested deeper than `Limits.max_depth`
raise `ProtocolError` (and the client bounds what one command may collect by
`Limits.max_untagged`, tokens included); nothing a server sends can make us
buffer without limit or recurse.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import calendar
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeAlias

from msgspec import Struct, field

from tui_mail.core.errors import ProtocolError
from tui_mail.core.models import Address
from tui_mail.core.sanitize import inert_line

Token: TypeAlias = "str | bytes | list[Token] | None"

# Error messages quote at most this much of what the server said.
SERVER_TEXT_LIMIT = 200

STATUS_WORDS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})

# --------------------------------------------------------------------------- bounds


class Limits(Struct, frozen=True):
    """What one server response may cost us. Defaults fit real mailboxes:
    a `* SEARCH` line of a million UIDs is ~7 MiB; a message up to 100 MiB."""

    max_line: int = 8 * 1024 * 1024
    max_literal: int = 100 * 1024 * 1024
    max_response: int = 110 * 1024 * 1024
    max_depth: int = 64
    # Tokens (atoms, strings, NIL, lists) in one response: a `* SEARCH` as long as
    # max_line allows (~1.19M UIDs of 7 digits). A token is 60-80 bytes of Python
    # objects, so the line length alone did not bound what a response becomes:
    # 8 MiB of "()" parsed into 4M lists, ~300 MB.
    max_tokens: int = 1_300_000
    # Untagged responses kept for one command (LIST, SEARCH, STATUS...), each
    # costed at its size, `RESPONSE_COST` and `TOKEN_COST` per token it may hold
    # (`token_bound`): a server that never completes a command but keeps talking
    # would otherwise grow memory without end, and the silence timeout never
    # fires on a server that talks. The longest SEARCH line costs ~85 MiB.
    max_untagged: int = 96 * 1024 * 1024


# What one parsed response costs beyond its bytes, for max_untagged: the response,
# and each token (a small str, and its slot in the list that holds it; a list
# costs more, but token_bound counts each "(" three times).
RESPONSE_COST = 512
TOKEN_COST = 64


DEFAULT_LIMITS = Limits()


def server_reason(raw: bytes | str) -> str:
    """`server_text` for the reason of a refusal, which a server may leave out."""
    return server_text(raw) or "(the server gave no reason)"


def server_text(raw: bytes | str) -> str:
    """Server-supplied text made safe to show: decoded, inert, bounded."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = inert_line(text.strip())
    if len(text) > SERVER_TEXT_LIMIT:
        text = text[: SERVER_TEXT_LIMIT - 3] + "..."
    return text


# --------------------------------------------------------------------------- framing

# "{123}", "{123+}" (LITERAL+ in server data is not allowed, but harmless) or
# "~{123}" (RFC 3516 literal8) at the very end of a line.
_LITERAL_AT_END = re.compile(rb"~?\{([0-9]{1,12})\+?\}\Z")


class Framer:
    """Cuts a byte stream into responses: `[line, literal, line, literal, ..., line]`.

    Lines are given without their CRLF; a line that ends with `{n}` is
    followed by exactly n literal bytes, then the rest of the response
    continues on the next line. Each search for a line end starts where the
    previous one stopped, so a line arriving in many pieces costs one scan,
    and literals are sliced by their announced size, never scanned.
    """

    __slots__ = ("_buf", "_limits", "_need", "_parts", "_pos", "_scan", "_size")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed data in _buf
        self._scan = 0  # where the next search for "\n" starts
        self._parts: list[bytes] = []  # pieces of the response being assembled
        self._need = -1  # bytes of literal still expected; -1 while reading a line
        self._size = 0  # bytes in _parts so far

    def feed(self, data: bytes) -> None:
        buf = self._buf
        if self._pos:
            # Drop what was consumed, but only when it is worth the copy: once
            # per feed and only if it is most of the buffer, so the cost stays
            # linear in the stream size.
            if self._pos >= len(buf):
                buf.clear()
                self._scan = 0
                self._pos = 0
            elif self._pos > 65536 and self._pos * 2 > len(buf):
                del buf[: self._pos]
                self._scan -= self._pos
                self._pos = 0
        buf += data

    def reset(self) -> None:
        """Forget everything buffered (after STARTTLS: it came in plaintext)."""
        self._buf = bytearray()
        self._pos = self._scan = self._size = 0
        self._parts = []
        self._need = -1

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def next(self) -> list[bytes] | None:
        """The next complete response, or None until more data is fed."""
        buf = self._buf
        limits = self._limits
        while True:
            if self._need >= 0:
                end = self._pos + self._need
                if len(buf) < end:
                    return None
                with memoryview(buf) as view:
                    literal = view[self._pos : end].tobytes()
                self._parts.append(literal)
                self._pos = self._scan = end
                self._need = -1
            nl = buf.find(b"\n", self._scan)
            if nl < 0:
                # +1: the line's CR may be here while its LF has not arrived yet.
                if len(buf) - self._pos > limits.max_line + 1:
                    raise ProtocolError(
                        f"the IMAP server sent a line longer than {limits.max_line} bytes"
                    )
                self._scan = len(buf)
                return None
            start = self._pos
            end = nl - 1 if nl > start and buf[nl - 1] == 13 else nl
            if end - start > limits.max_line:
                raise ProtocolError(
                    f"the IMAP server sent a line longer than {limits.max_line} bytes"
                )
            with memoryview(buf) as view:
                line = view[start:end].tobytes()  # one copy, not bytearray then bytes
            self._pos = self._scan = nl + 1
            self._size += len(line)
            if line[-1:] == b"}":
                m = _LITERAL_AT_END.search(line, max(0, len(line) - 16))
                if m is not None:
                    size = int(m.group(1))
                    if size > limits.max_literal:
                        raise ProtocolError(
                            f"the IMAP server announced a literal of {size} bytes, more than "
                            f"the limit of {limits.max_literal}"
                        )
                    self._size += size
                    if self._size > limits.max_response:
                        raise ProtocolError(
                            f"the IMAP server sent a response larger than {limits.max_response}"
                            " bytes"
                        )
                    self._parts.append(line)
                    self._need = size
                    continue
            self._parts.append(line)
            parts, self._parts, self._size = self._parts, [], 0
            return parts

    def fetches(self, out: list[FetchData]) -> bool:
        """Parse the responses of the bulk download shape (`_BULK_FETCH`) at the
        front of the buffer into `out`, in order; `next()` takes over at the first
        response of any other shape.

        True when the next response has that shape but has not all arrived: the
        caller then waits for more data rather than calling `next()`, which would
        take it apart the slow way. Only complete responses are consumed, and only
        those the bounds of `next()` allow (any other goes to `next()`, which
        raises), so both ways agree on every byte and every error.
        """
        if self._need >= 0 or self._parts:
            return False  # inside a response next() has begun
        buf = self._buf
        pos = self._pos
        max_line = self._limits.max_line
        max_literal = self._limits.max_literal
        max_response = self._limits.max_response
        match = _BULK_FETCH.match
        flag_tuples = _FLAG_TUPLES
        append = out.append
        waiting = False
        with memoryview(buf) as view:
            while (m := match(buf, pos)) is not None:
                seq, uid, flags, modseq, size_text = m.groups()
                start = m.end()
                size = int(size_text)
                end = start + size
                line_len = start - 2 - pos
                if line_len > max_line or size > max_literal or line_len + size > max_response:
                    break
                if not buf.startswith(b")\r\n", end):
                    tail = buf[end : end + 3]
                    waiting = len(tail) < 3 and b")\r\n".startswith(tail)
                    break
                uid_n = int(uid)
                if not uid_n:
                    break  # an error, which next() and parse_fetch_response() report
                flag_tuple = flag_tuples.get(flags)
                if flag_tuple is None:
                    flag_tuple = _flag_tuple(flags)
                append(
                    FetchData(
                        seq=int(seq),
                        uid=uid_n,
                        flags=flag_tuple,
                        modseq=None if modseq is None else int(modseq),
                        body=view[start:end].tobytes(),
                    )
                )
                pos = end + 3
        self._pos = self._scan = pos
        return waiting


# The shape every response to a bulk download takes on Dovecot (the order other
# servers use too), with the CRLF that ends its first line:
#   * 12 FETCH (UID 345 FLAGS (\Seen) MODSEQ (7) BODY[] {544}
_BULK_FETCH = re.compile(
    rb"\* ([0-9]{1,10}) FETCH \(UID ([0-9]{1,10}) FLAGS \(([^()\"{}\[\]\r\n]*)\)"
    rb"(?: MODSEQ \(([0-9]{1,20})\))? BODY\[\] \{([0-9]{1,12})\}\r\n"
)
# Flag lists already turned into tuples: a folder has a handful of combinations.
# Bounded in entries and in key size, so a server inventing keywords cannot make
# it hold more than a few MiB.
_FLAG_TUPLES: dict[bytes, tuple[str, ...]] = {}
_FLAG_TUPLES_MAX = 1024
_FLAG_KEY_MAX = 256


def _flag_tuple(raw: bytes) -> tuple[str, ...]:
    """The flags of `FLAGS (raw)` as parse_fetch() has them: atoms only (NIL is no flag).

    `raw` holds none of ( ) " { } [ ] CR LF, so its tokens are the same here as
    within the whole response.
    """
    tokens = tokenize([b"(" + raw + b")"])[0]
    found = tuple(f for f in tokens if isinstance(f, str)) if isinstance(tokens, list) else ()
    if len(raw) <= _FLAG_KEY_MAX:
        if len(_FLAG_TUPLES) >= _FLAG_TUPLES_MAX:
            _FLAG_TUPLES.clear()
        _FLAG_TUPLES[raw] = found
    return found


# --------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    rb" *(?:"
    rb"(\()"  # 1 open
    rb"|(\))"  # 2 close
    rb'|"((?:[^"\\\r\n]|\\.)*)"'  # 3 quoted
    rb"|~?\{[0-9]{1,12}\+?\}(\Z)"  # 4 literal marker (only at the end of a line)
    # 5 atom, including FETCH keys such as BODY[HEADER.FIELDS (A B)]<0>
    rb'|([^ ()"{\[\]\r\n]+(?:\[[^\]\r\n]*\](?:<[0-9.]+>)?)?)'
    rb")"
)
_UNESCAPE = re.compile(rb"\\(.)")


def _atom(raw: bytes) -> str | None:
    if len(raw) == 3 and raw.upper() == b"NIL":
        return None
    return raw.decode("utf-8", "surrogateescape")


def tokenize(parts: Sequence[bytes], pos: int = 0, limits: Limits = DEFAULT_LIMITS) -> list[Token]:
    """Tokens of a framed response from byte `pos` of its first line on.

    Iterative (a stack, not recursion), so a deeply nested list can only
    exceed `limits.max_depth`, never Python's stack; and at most
    `limits.max_tokens` of them, whatever the line length allows.
    """
    top: list[Token] = []
    cur = top
    stack: list[list[Token]] = []
    index = 0
    line = parts[0]
    match = _TOKEN.match
    left = limits.max_tokens
    while True:
        if pos >= len(line):
            break
        m = match(line, pos)
        if m is None:
            if not line[pos:].strip(b" "):
                break  # trailing spaces
            raise ProtocolError(
                f"the IMAP server sent a response we cannot parse: {server_text(line)!r}"
            )
        pos = m.end()
        kind = m.lastindex
        if kind != 2:  # every kind but ")" adds a token
            left -= 1
            if left < 0:
                raise ProtocolError(
                    f"the IMAP server sent a response of more than {limits.max_tokens} tokens"
                )
        if kind == 5:
            cur.append(_atom(m.group(5)))
        elif kind == 3:
            raw = m.group(3)
            cur.append(_UNESCAPE.sub(rb"\1", raw) if b"\\" in raw else raw)
        elif kind == 1:
            if len(stack) >= limits.max_depth:
                raise ProtocolError("the IMAP server sent lists nested too deeply")
            new: list[Token] = []
            cur.append(new)
            stack.append(cur)
            cur = new
        elif kind == 2:
            if not stack:
                raise ProtocolError(
                    f"the IMAP server sent an unbalanced ')': {server_text(line)!r}"
                )
            cur = stack.pop()
        elif kind == 4:
            if index + 2 >= len(parts):
                raise ProtocolError("the IMAP server sent a literal marker with no literal")
            cur.append(parts[index + 1])
            index += 2
            line = parts[index]
            pos = 0
    if stack:
        raise ProtocolError(f"the IMAP server sent an unclosed '(': {server_text(parts[0])!r}")
    return top


def token_bound(parts: Sequence[bytes]) -> int:
    """At most how many tokens `tokenize` makes of a framed response, counted in C.

    A token starts a line, or follows a space, a parenthesis, a quoted string or
    an atom's "[...]" section (`a[]b[]` is two atoms); a ")" must close a "(" (or
    tokenizing fails there), so each "(" stands for itself, the token after it
    and the token after its ")". The literals of a response are its odd parts,
    one token each, counted by the line they end.
    """
    return sum(
        2 + p.count(b" ") + 3 * p.count(b"(") + p.count(b'"') + p.count(b"]") for p in parts[::2]
    )


# --------------------------------------------------------------------------- responses


class ResponseCode(Struct, frozen=True):
    """`[NAME args]` of a status response, e.g. ("UIDVALIDITY", ["3857529045"])."""

    name: str
    args: list[Token] = field(default_factory=list)

    def number(self) -> int:
        return to_int(self.args[0] if self.args else None, self.name)


class StatusResponse(Struct, frozen=True):
    """OK/NO/BAD/BYE/PREAUTH, tagged (`tag` = the tag) or untagged (`tag` = "*")."""

    tag: str
    status: str
    code: ResponseCode | None
    text: str


class Untagged(Struct, frozen=True):
    """Any other untagged response: `* [number] NAME args...`."""

    name: str  # upper-cased: "FETCH", "EXISTS", "LIST", "CAPABILITY", "VANISHED", ...
    number: int | None
    args: list[Token]


class Continuation(Struct, frozen=True):
    text: bytes


Response = StatusResponse | Untagged | Continuation

_CODE = re.compile(rb"\[([^\]\r\n]*)\] ?")


def _status(tag: str, status: str, rest: bytes, limits: Limits) -> StatusResponse:
    code = None
    m = _CODE.match(rest)
    if m is not None:
        inner = m.group(1)
        name, _, args_raw = inner.partition(b" ")
        args: list[Token] = []
        if args_raw:
            try:
                args = tokenize([args_raw], 0, limits)
            except ProtocolError:
                # An odd code (e.g. a REFERRAL URL) is no reason to fail the command.
                args = [args_raw]
        code = ResponseCode(name.decode("ascii", "replace").upper(), args)
        rest = rest[m.end() :]
    return StatusResponse(tag, status, code, rest.decode("utf-8", "replace"))


def parse_response(parts: Sequence[bytes], limits: Limits = DEFAULT_LIMITS) -> Response:
    """Type one framed response. Raises ProtocolError on malformed input."""
    line = parts[0]
    if line[:1] == b"+":
        return Continuation(line[2:] if line[1:2] == b" " else line[1:])
    sp = line.find(b" ")
    if sp <= 0:
        raise ProtocolError(f"the IMAP server sent a malformed response: {server_text(line)!r}")
    tag = line[:sp].decode("ascii", "replace")
    sp2 = line.find(b" ", sp + 1)
    word_end = len(line) if sp2 < 0 else sp2
    word = line[sp + 1 : word_end]
    rest_at = word_end + 1
    if tag != "*":
        status = word.upper().decode("ascii", "replace")
        if status not in ("OK", "NO", "BAD"):
            raise ProtocolError(
                f"the IMAP server sent a malformed tagged response: {server_text(line)!r}"
            )
        if len(parts) > 1:
            raise ProtocolError("the IMAP server sent a literal in a tagged response")
        return _status(tag, status, line[rest_at:], limits)
    if word.isdigit():
        if len(word) > 10:
            raise ProtocolError(f"the IMAP server sent a bad number: {server_text(word)!r}")
        number = int(word)
        sp3 = line.find(b" ", rest_at)
        name_end = len(line) if sp3 < 0 else sp3
        name = line[rest_at:name_end].upper().decode("ascii", "replace")
        args = tokenize(parts, name_end, limits) if name_end < len(line) else []
        return Untagged(name, number, args)
    upper = word.upper().decode("ascii", "replace")
    if upper in STATUS_WORDS:
        if len(parts) > 1:
            raise ProtocolError("the IMAP server sent a literal in a status response")
        return _status("*", upper, line[rest_at:] if sp2 >= 0 else b"", limits)
    args = tokenize(parts, rest_at, limits) if sp2 >= 0 else []
    return Untagged(upper, None, args)


# --------------------------------------------------------------------------- values


def to_int(value: Token, what: str = "number") -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    raise ProtocolError(f"the IMAP server sent a bad {what}: {server_text(repr(value))}")


def to_bytes(value: Token) -> bytes:
    """An astring/nstring as bytes (an atom is turned back into its wire bytes)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise ProtocolError(f"the IMAP server sent {server_text(repr(value))} where a string was due")


def to_text(value: Token) -> str:
    if value is None:
        return ""
    return to_bytes(value).decode("utf-8", "replace")


def capabilities_from(tokens: Iterable[Token]) -> frozenset[str]:
    """Capability atoms, upper-cased ("IMAP4REV1", "AUTH=PLAIN", "IDLE", ...)."""
    return frozenset(t.upper() for t in tokens if isinstance(t, str))


# --------------------------------------------------------------------------- FETCH

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_INTERNALDATE = re.compile(
    r"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\s*\Z"
)


def parse_internaldate(text: str) -> int | None:
    """ "17-Jul-1996 02:44:25 -0700" -> unix seconds; None if malformed.

    Done by hand because strptime's %b depends on the process locale.
    """
    m = _INTERNALDATE.match(text)
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
    month = _MONTHS.get(mon.upper())
    if month is None:
        return None
    try:
        t = calendar.timegm((int(year), month, int(day), int(hh), int(mm), int(ss), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    offset = (int(zh) * 3600 + int(zm) * 60) * (1 if sign == "+" else -1)
    return t - offset


class ImapEnvelope(Struct, frozen=True):
    date: str
    subject: str
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    in_reply_to: str
    message_id: str


def _decode_words(value: Token) -> str:
    """An nstring as text, RFC 2047 encoded words decoded when well-formed."""
    text = to_text(value)
    if "=?" in text:
        # Imported here: most callers never see an encoded word, and the import
        # shows in the start-up time of a headless sync.
        from email.header import decode_header, make_header

        try:
            text = str(make_header(decode_header(text)))
        except (ValueError, LookupError, UnicodeError, binascii.Error):
            pass  # a broken encoded word is shown as sent
    return text


def _addresses(value: Token) -> tuple[Address, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ProtocolError("the IMAP server sent a bad ENVELOPE address list")
    out: list[Address] = []
    for item in value:
        if not isinstance(item, list) or len(item) != 4:
            raise ProtocolError("the IMAP server sent a bad ENVELOPE address")
        name, _adl, mailbox, host = item
        if host is None:
            continue  # RFC 3501 group syntax: start (mailbox = group name) or end marker
        addr = f"{to_text(mailbox)}@{to_text(host)}" if mailbox is not None else to_text(host)
        out.append(Address(_decode_words(name), addr))
    return tuple(out)


def parse_envelope(value: Token) -> ImapEnvelope:
    if not isinstance(value, list) or len(value) != 10:
        raise ProtocolError("the IMAP server sent a malformed ENVELOPE")
    date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = value
    return ImapEnvelope(
        date=to_text(date),
        subject=_decode_words(subject),
        from_=_addresses(from_),
        sender=_addresses(sender),
        reply_to=_addresses(reply_to),
        to=_addresses(to),
        cc=_addresses(cc),
        bcc=_addresses(bcc),
        in_reply_to=to_text(in_reply_to),
        message_id=to_text(message_id),
    )


class FetchData(Struct):
    """One `* n FETCH (...)` response, the common items typed, the rest in `items`."""

    seq: int
    uid: int | None = None
    flags: tuple[str, ...] | None = None
    size: int | None = None
    internaldate: str | None = None
    modseq: int | None = None
    body: bytes | None = None  # BODY[] / BODY.PEEK[] / RFC822 / BINARY[]
    envelope: ImapEnvelope | None = None
    items: dict[str, Token] = field(default_factory=dict)  # key upper-cased

    def item(self, prefix: str) -> Token:
        """The first item whose key starts with `prefix` (e.g. "BODY[HEADER.FIELDS")."""
        prefix = prefix.upper()
        for key, value in self.items.items():
            if key.startswith(prefix):
                return value
        return None


_BODY_KEYS = frozenset({"BODY[]", "RFC822", "BINARY[]"})


def _nonzero_uid(uid: int) -> int:
    # UIDs start at 1 (RFC 3501 nz-number); a 0 would be stored as a real message id.
    if uid == 0:
        raise ProtocolError("the IMAP server sent UID 0 in a FETCH response")
    return uid


def parse_fetch(seq: int, args: Sequence[Token]) -> FetchData:
    """The data of `* seq FETCH (key value ...)`."""
    if len(args) != 1 or not isinstance(args[0], list) or len(args[0]) % 2:
        raise ProtocolError("the IMAP server sent a malformed FETCH response")
    items = args[0]
    data = FetchData(seq)
    for i in range(0, len(items), 2):
        key = items[i]
        value = items[i + 1]
        if not isinstance(key, str):
            raise ProtocolError("the IMAP server sent a malformed FETCH item name")
        k = key.upper()
        if k == "UID":
            data.uid = _nonzero_uid(to_int(value, "UID"))
        elif k == "FLAGS":
            if not isinstance(value, list):
                raise ProtocolError("the IMAP server sent malformed FLAGS")
            data.flags = tuple(f for f in value if isinstance(f, str))
        elif k in _BODY_KEYS:
            data.body = value if isinstance(value, bytes) or value is None else to_bytes(value)
        elif k == "RFC822.SIZE":
            data.size = to_int(value, "RFC822.SIZE")
        elif k == "MODSEQ":
            if not isinstance(value, list) or len(value) != 1:
                raise ProtocolError("the IMAP server sent a malformed MODSEQ")
            data.modseq = to_int(value[0], "MODSEQ")
        elif k == "INTERNALDATE":
            data.internaldate = to_text(value)
        elif k == "ENVELOPE":
            data.envelope = parse_envelope(value)
        else:
            data.items[k] = value
    return data


# The shapes bulk downloads and flag syncs produce, parsed with two regex calls
# instead of the general tokenizer (which costs ~10x more per response):
#   * 12 FETCH (UID 40 MODSEQ (7) FLAGS (\Seen) RFC822.SIZE 99 BODY[] {99}  + literal + ")"
#   * 12 FETCH (UID 40 FLAGS (\Seen $Label))
# Anything else (ENVELOPE, quoted specials, other items) takes the general path.
# A number must end at a space or ")": the tokenizer reads "5FLAGS" as one atom.
# Every repetition below consumes characters its neighbour cannot, so a failing
# match costs time linear in the line, whatever a server puts in it.
_FAST_FETCH = re.compile(
    rb"\* ([0-9]{1,10}) FETCH \(((?:(?:UID [0-9]{1,10}(?=[ )])|MODSEQ \([0-9]{1,20}\)"
    rb"|FLAGS \([^()\"{}\[\]\r\n]*\)|RFC822\.SIZE [0-9]{1,20}(?=[ )])"
    rb'|INTERNALDATE "[^"\\\r\n]*") ?)*)(?:(BODY\[\] )~?\{([0-9]{1,12})\}|\))\Z'
)
_FAST_ITEM = re.compile(
    rb'(UID|MODSEQ|FLAGS|RFC822\.SIZE|INTERNALDATE) (?:([0-9]+)|\(([^()]*)\)|"([^"]*)")'
)


def parse_fetch_response(
    parts: Sequence[bytes], limits: Limits = DEFAULT_LIMITS
) -> FetchData | None:
    """A framed `* n FETCH` response as FetchData; None if it is another response."""
    line = parts[0]
    m = _FAST_FETCH.match(line)
    if m is not None and (
        (m.group(3) is None and len(parts) == 1)
        or (m.group(3) is not None and len(parts) == 3 and parts[2] == b")")
    ):
        data = FetchData(int(m.group(1)))
        for key, num, paren, quoted in _FAST_ITEM.findall(m.group(2)):
            if key == b"UID":
                data.uid = _nonzero_uid(int(num))
            elif key == b"FLAGS":
                flags = _FLAG_TUPLES.get(paren)
                data.flags = _flag_tuple(paren) if flags is None else flags
            elif key == b"MODSEQ":
                data.modseq = int(paren)
            elif key == b"RFC822.SIZE":
                data.size = int(num)
            else:
                data.internaldate = quoted.decode("utf-8", "replace")
        if m.group(3) is not None:
            data.body = parts[1]
        return data
    resp = parse_response(parts, limits)
    if isinstance(resp, Untagged) and resp.name == "FETCH" and resp.number is not None:
        return parse_fetch(resp.number, resp.args)
    return None


# --------------------------------------------------------------------------- LIST / STATUS


class ListEntry(Struct, frozen=True):
    attributes: frozenset[str]  # lower-cased: "\\noselect", "\\haschildren", "\\sent", ...
    delimiter: str | None
    name: bytes  # as on the wire (modified UTF-7 unless UTF8=ACCEPT is on)

    @property
    def selectable(self) -> bool:
        return not ({"\\noselect", "\\nonexistent"} & self.attributes)


def parse_list(args: Sequence[Token]) -> ListEntry:
    """`* LIST (attrs) delim name [extended items]` (also LSUB)."""
    if len(args) < 3 or not isinstance(args[0], list):
        raise ProtocolError("the IMAP server sent a malformed LIST response")
    attrs = frozenset(a.lower() for a in args[0] if isinstance(a, str))
    delim_tok = args[1]
    delimiter = None if delim_tok is None else to_bytes(delim_tok).decode("utf-8", "replace")
    if delimiter is not None and len(delimiter) != 1:
        raise ProtocolError("the IMAP server sent a bad hierarchy delimiter")
    name = to_bytes(args[2])
    return ListEntry(attrs, delimiter, name)


def parse_status_items(args: Sequence[Token]) -> tuple[bytes, dict[str, int]]:
    """`* STATUS name (MESSAGES 3 UIDNEXT 9 ...)` -> (name, {"MESSAGES": 3, ...})."""
    if len(args) != 2 or not isinstance(args[1], list) or len(args[1]) % 2:
        raise ProtocolError("the IMAP server sent a malformed STATUS response")
    items = args[1]
    out: dict[str, int] = {}
    for i in range(0, len(items), 2):
        key = items[i]
        if isinstance(key, str):
            out[key.upper()] = to_int(items[i + 1], key)
    return to_bytes(args[0]), out


def parse_search(args: Sequence[Token]) -> tuple[list[int], int | None]:
    """`* SEARCH 2 5 9 (MODSEQ 917)` -> ([2, 5, 9], 917)."""
    numbers: list[int] = []
    modseq = None
    for tok in args:
        if isinstance(tok, list):
            if len(tok) == 2 and isinstance(tok[0], str) and tok[0].upper() == "MODSEQ":
                modseq = to_int(tok[1], "MODSEQ")
            continue
        numbers.append(to_int(tok, "SEARCH result"))
    return numbers, modseq


def parse_esearch(args: Sequence[Token]) -> dict[str, Token]:
    """`* ESEARCH (TAG "A1") UID ALL 1:5,9 COUNT 6` -> {"UID": None, "ALL": "1:5,9", ...}."""
    out: dict[str, Token] = {}
    i = 0
    if args and isinstance(args[0], list):
        i = 1  # the correlator
    while i < len(args):
        key = args[i]
        if not isinstance(key, str):
            raise ProtocolError("the IMAP server sent a malformed ESEARCH response")
        k = key.upper()
        if k == "UID":
            out[k] = None
            i += 1
            continue
        out[k] = args[i + 1] if i + 1 < len(args) else None
        i += 2
    return out


def parse_vanished(args: Sequence[Token]) -> tuple[bool, UidSet]:
    """`* VANISHED (EARLIER) 41,43:116` -> (True, the set)."""
    earlier = False
    rest = list(args)
    if rest and isinstance(rest[0], list):
        earlier = any(isinstance(t, str) and t.upper() == "EARLIER" for t in rest[0])
        rest = rest[1:]
    if len(rest) != 1 or not isinstance(rest[0], str):
        raise ProtocolError("the IMAP server sent a malformed VANISHED response")
    return earlier, UidSet.parse(rest[0])


# --------------------------------------------------------------------------- UID sets

_MAX_UID = 0xFFFFFFFF


class UidSet:
    """A set of UIDs kept as sorted, merged ranges (a server may say 1:4294967295).

    Membership is a bisect; iterating expands, so callers intersect with
    what they know instead of iterating a set a server sent them.
    """

    __slots__ = ("_ends", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        merged: list[list[int]] = []
        for lo, hi in sorted((min(a, b), max(a, b)) for a, b in ranges):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self._starts = [r[0] for r in merged]
        self._ends = [r[1] for r in merged]

    @classmethod
    def parse(cls, text: str) -> UidSet:
        ranges: list[tuple[int, int]] = []
        for piece in text.split(","):
            lo, sep, hi = piece.partition(":")
            a = _set_number(lo, text)
            b = _set_number(hi, text) if sep else a
            ranges.append((a, b))
        return cls(ranges)

    @classmethod
    def of(cls, uids: Iterable[int]) -> UidSet:
        return cls((u, u) for u in uids)

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, int):
            return False
        i = bisect.bisect_right(self._starts, uid) - 1
        return i >= 0 and uid <= self._ends[i]

    def __len__(self) -> int:
        return sum(e - s + 1 for s, e in zip(self._starts, self._ends, strict=True))

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __iter__(self) -> Iterator[int]:
        for s, e in zip(self._starts, self._ends, strict=True):
            yield from range(s, e + 1)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UidSet) and self.ranges() == other.ranges()

    def __hash__(self) -> int:
        return hash(tuple(self.ranges()))

    def __str__(self) -> str:
        return ",".join(
            str(s) if s == e else f"{s}:{e}" for s, e in zip(self._starts, self._ends, strict=True)
        )

    def __repr__(self) -> str:
        return f"UidSet({str(self)!r})"


def _set_number(text: str, whole: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise ProtocolError(f"the IMAP server sent a bad UID set: {server_text(whole)!r}")
    n = int(text)
    if not 0 < n <= _MAX_UID:
        raise ProtocolError(f"the IMAP server sent a bad UID set: {server_text(whole)!r}")
    return n


def uid_set(uids: Iterable[int]) -> str:
    """Compact sequence-set text for a command: [1, 2, 3, 7] -> "1:3,7"."""
    return str(UidSet.of(uids))


def uid_set_chunks(uids: Iterable[int], most: int, max_text: int) -> list[str]:
    """Sequence-set texts that cover `uids` in order, each of at most `most` UIDs and
    (a single range being shorter than any sane limit) `max_text` characters."""
    wanted = sorted(set(uids))
    out: list[str] = []
    pieces: list[str] = []
    length = count = 0
    i, n = 0, len(wanted)
    while i < n:
        # The run of consecutive UIDs from i, no longer than this chunk has room for.
        j, stop = i, min(n, i + most - count)
        while j + 1 < stop and wanted[j + 1] == wanted[j] + 1:
            j += 1
        piece = str(wanted[i]) if j == i else f"{wanted[i]}:{wanted[j]}"
        if pieces and length + 1 + len(piece) > max_text:
            out.append(",".join(pieces))
            pieces, length, count = [], 0, 0
            continue  # the run again, with the room of an empty chunk
        length += len(piece) + (1 if pieces else 0)
        pieces.append(piece)
        count += j - i + 1
        i = j + 1
        if count >= most:
            out.append(",".join(pieces))
            pieces, length, count = [], 0, 0
    if pieces:
        out.append(",".join(pieces))
    return out


# --------------------------------------------------------------------------- modified UTF-7

_B64_CHARS = re.compile(rb"[A-Za-z0-9+,]*\Z")


def decode_mutf7(raw: bytes) -> str:
    """RFC 3501 5.1.3 modified UTF-7 -> text. ValueError if `raw` is not valid."""
    out: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        amp = raw.find(b"&", i)
        plain = raw[i:] if amp < 0 else raw[i:amp]
        for c in plain:
            if not 0x20 <= c <= 0x7E:
                raise ValueError("modified UTF-7 allows only printable ASCII")
        out.append(plain.decode("ascii"))
        if amp < 0:
            break
        dash = raw.find(b"-", amp + 1)
        if dash < 0:
            raise ValueError("unterminated modified UTF-7 shift")
        encoded = raw[amp + 1 : dash]
        if not encoded:
            out.append("&")
        else:
            if not _B64_CHARS.match(encoded):
                raise ValueError("bad modified base64")
            b64 = encoded.replace(b",", b"/")
            try:
                data = base64.b64decode(b64 + b"=" * (-len(b64) % 4), validate=True)
            except binascii.Error as exc:
                raise ValueError(f"bad modified base64: {exc}") from None
            if len(data) % 2:
                raise ValueError("modified UTF-7 run is not whole UTF-16 units")
            out.append(data.decode("utf-16-be"))  # lone surrogates raise UnicodeDecodeError
        i = dash + 1
    return "".join(out)


def encode_mutf7(text: str) -> bytes:
    """Text -> RFC 3501 modified UTF-7 (the form mailbox names take on the wire)."""
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be", "surrogatepass")
            out.extend(b"&" + base64.b64encode(data).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for ch in text:
        o = ord(ch)
        if 0x20 <= o <= 0x7E:
            flush()
            out.extend(b"&-" if ch == "&" else ch.encode("ascii"))
        else:
            pending.append(ch)
    flush()
    return bytes(out)


# --------------------------------------------------------------------------- command text


class Literal(bytes):
    """A command argument that must go out as a literal ({n} + bytes)."""


def astring(value: bytes) -> bytes:
    """An argument as a quoted string when it can be one, else a `Literal`.

    Quoted strings may not hold CR, LF, NUL or 8-bit bytes (RFC 3501 9).
    """
    if any(b in value for b in (b"\r", b"\n", b"\0")) or not value.isascii():
        return Literal(value)
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
