"""The few fields the index needs, from raw message bytes. Never raises.

Two entry points: `parse_message` (everything, body text for full-text search
included) and `parse_headers` (the list fields only, ~10x faster: a bulk
download stores rows with it and leaves the body text to a later pass).

Mail in the wild is broken in every way a parser can imagine (8-bit headers,
RFC 2047 words split mid-character, unknown charsets, dates in no format at
all), and a hostile sender can do worse. The index must still get a row, so
every step here degrades to "best effort" instead of failing. Structure comes
from the compat32 parser (it never raises on content); header decoding is our
own so that mixed raw UTF-8 and encoded words both come out right.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re
from collections.abc import Callable, Iterator
from datetime import date as _date
from typing import TYPE_CHECKING

from msgspec import Struct

from tui_mail.core.models import Address
from tui_mail.core.sanitize import inert_line

if TYPE_CHECKING:
    from email.message import Message

# The stdlib's email package (~4 ms to import, a tenth of a sync's own start-up, in
# both processes of a first sync) is only for the odd header and the body pass:
# each function that needs it imports it.

# A message bigger than this is parsed from its first part only: headers and the
# text body come first in practice, and the MIME headers of the attachments that
# follow are enough for has_attachment even when their bodies are cut off.
MAX_PARSE_BYTES = 2 * 1024 * 1024
BODY_TEXT_LIMIT = 64 * 1024
MAX_HEADER_CHARS = 64 * 1024
MAX_ADDRESSES = 500
MAX_REFERENCES = 100
MAX_PARTS = 500

_EMPTY = Address("", "")

# Charset names seen in real mail that Python's codec registry does not know.
_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "gb2312": "gb18030",  # senders mean the superset
    "gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "x-sjis": "shift_jis",
    "windows-874": "cp874",
    "x-mac-roman": "mac_roman",
    "unicode-1-1-utf-7": "utf-7",
    "ansi_x3.4-1968": "ascii",
}
_NOT_SIGNATURES = frozenset(
    {
        "application/pgp-signature",
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
        "application/pgp-encrypted",
        "application/pgp-keys",
    }
)
# Possessive: each run stops at a "?" anyway, and backtracking into one only
# tried every shorter run before failing.
_ENCODED_WORD = re.compile(r"=\?([^?\s]++)\?([qQbB])\?([^?]*+)\?=")
_MSGID = re.compile(r"<([^<>\s]+)>")
# One "<id>" and nothing else but the line's CR: what _msg_ids() would return
# unchanged (printable ASCII, no blank, no other bracket, at most 998 characters).
_ONE_MSGID = re.compile(r"(<[!-;=?-~]{1,996}>)\r?")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_Q_LONE_EQUALS = re.compile(rb"=(?![0-9A-Fa-f]{2})")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")
_ADDR_FALLBACK = re.compile(r"[^\s<>\"',;:()]+@[^\s<>\"',;:()]+")
_HARD_ADDRESS = re.compile(r'["()\\;:\[\]]')
_ADDR_SPEC = r"[^\s<>@,]+@[^\s<>@,]+"
_SIMPLE_ADDRESS = re.compile(rf"\s*(?:([^<>@,]*?)\s*<({_ADDR_SPEC})>|({_ADDR_SPEC}))\s*")
# Starts with a literal, which the engine scans for as fast as bytes.find.
_HEAD_END = re.compile(rb"\n\r?\n")
_LINE_END = re.compile(r"\r?\n")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ANGLE_ADDRESS = re.compile(r"\s*([^,<]*?)\s*<([^<>\s@]+@[^<>\s]+)>\s*(?:,|$)")
_SPACES = re.compile(r"\s+")
# The header fields the index reads, found in one C-level pass over the header
# block (a Python loop over every line, Received and DKIM included, cost more
# than all the decoding). Same rules as split_headers: a field starts a line, its
# name is followed directly by ":", continuation lines start with a blank.
# Searched in "\n" + head: a literal "\n" where "^" with re.M would be, which the
# engine finds faster. re.A: the head is ASCII (8-bit bytes are surrogates), so
# ASCII case folding is the same and cheaper than Unicode's. Possessive repeats:
# nothing after them can fail, so the engine need not keep backtracking state.
_INDEX_FIELDS = re.compile(
    r"\n(from|sender|to|cc|subject|date|message-id|in-reply-to|references|list-id|received"
    r"|content-type|content-disposition):[ \t]*+(.*+(?:\n[ \t].*+)*+)",
    re.I | re.A,
)
_MIME_FIELDS = re.compile(
    r"^(content-type|content-disposition):[ \t]*(.*(?:\n[ \t].*)*)", re.I | re.M
)
_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')
_PARAM_SECTION = re.compile(r"\*(?:\d+\*?)?$")
# The usual RFC 5322 date ("Tue, 2 Jan 2024 10:00:00 +0100"); anything else goes
# through email.utils, ~10x slower.
_DATE = re.compile(
    r"(?:[A-Za-z]{3},\s*)?(\d{1,2}\s+[A-Za-z]{3}\s+\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"\s+([+-]\d{4})(?:\s|$)"
)
# The same with single spaces, as nearly every mailer writes it, matched on the
# raw value (ASCII by its classes, at most the line's CR after it): cheaper, and
# in what it matches _DATE finds the same fields.
_COMMON_DATE = re.compile(
    r"(?:[A-Za-z]{3}, )?([0-9]{1,2} [A-Za-z]{3} [0-9]{4}) ([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
    r" ([+-][0-9]{4})\r?"
)
_EPOCH_DAY = _date(1970, 1, 1).toordinal()
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


class ParsedHeaders(Struct, frozen=True):
    date: int
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    message_id: str  # "<id>" with brackets, "" if none
    in_reply_to: str
    references: tuple[str, ...]
    has_attachment: bool
    list_id: str
    # For full-text search only; at most BODY_TEXT_LIMIT characters. None: not
    # extracted (parse_headers), the index queues the message for fill_fts.
    body_text: str | None


def empty_headers(date: int = 0) -> ParsedHeaders:
    return ParsedHeaders(date, _EMPTY, (), (), "", "", "", (), False, "", "")


# --- text helpers ----------------------------------------------------------------


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes in a declared charset -> text, never failing."""
    name = (charset or "").strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    if name and name not in ("us-ascii", "ascii", "unknown-8bit", "x-unknown", "8bit"):
        try:
            codecs.lookup(name)
        except LookupError:
            name = ""
        else:
            try:
                return data.decode(name, "replace")
            except Exception:  # some codecs fail on odd input despite "replace"
                name = ""
    # No usable charset: most undeclared 8-bit mail is UTF-8, the rest Windows-1252.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _fix_8bit(value: str) -> str:
    # The bytes parser keeps undecodable header bytes as surrogate escapes.
    if value.isascii():
        return value
    try:
        raw = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return value
    return decode_bytes(raw, None)


def _q_decode(text: str) -> bytes:
    data = text.encode("utf-8", "surrogateescape").replace(b"_", b" ")
    if _Q_LONE_EQUALS.search(data) is None:
        # Every "=" starts an escape: binascii decodes those alike, without a
        # Python call per escape (its other rules are all about other "="s).
        return binascii.a2b_qp(data)
    return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def _b_decode(text: str) -> bytes:
    data = _NOT_BASE64.sub("", text)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
    data += "=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        return b""


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words, best effort.

    Adjacent words in one charset are joined before decoding, because encoders
    split multi-byte characters across words; whitespace between two encoded
    words is dropped, as the RFC says.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = bytearray()
    pending_charset = ""
    pos = 0  # also: 0 until the first word, which ends further on
    for m in _ENCODED_WORD.finditer(value):
        between = value[pos : m.start()]
        if between and not (pos and between.isspace()):
            if pending:
                out.append(decode_bytes(bytes(pending), pending_charset))
                pending.clear()
            out.append(between)
        charset, kind, text = m.groups()
        charset = charset.split("*", 1)[0].lower()  # RFC 2231 language suffix
        data = _q_decode(text) if kind in "qQ" else _b_decode(text)
        if pending and charset != pending_charset:
            out.append(decode_bytes(bytes(pending), pending_charset))
            pending.clear()
        pending += data
        pending_charset = charset
        pos = m.end()
    if pending:
        out.append(decode_bytes(bytes(pending), pending_charset))
    out.append(value[pos:])
    return "".join(out)


def _unfold(value: str) -> str:
    return value[:MAX_HEADER_CHARS].replace("\r", "").replace("\n", "")


def clean_text(value: str) -> str:
    """One line of display text: runs of white space become one space, and other
    control characters (terminal escapes) visible placeholders, the same ones
    the message view shows, so a hostile subject looks hostile in the list too."""
    if value.isprintable() and "  " not in value:
        return value.strip()  # the usual case, without two regex passes
    return inert_line(_SPACES.sub(" ", value)).strip()


def _header_text(value: str | None) -> str:
    if not value:
        return ""
    # Most subjects are one line of plain ASCII: nothing to unfold, decode or clean.
    text = value[:-1] if value[-1] == "\r" else value
    if (
        text.isascii()
        and text.isprintable()
        and "=?" not in text
        and "  " not in text
        and len(value) <= MAX_HEADER_CHARS
    ):
        return text.strip()
    return clean_text(decode_words(_fix_8bit(_unfold(value))))


def _simple_addresses(raw: str) -> list[tuple[str, str]] | None:
    """The common shapes ("Name <a@b>, c@d") by regex; None for anything harder.

    email.utils.getaddresses walks the header a character at a time in Python
    (~25 us per header); with quotes, comments, groups or escapes it still does.
    """
    if _HARD_ADDRESS.search(raw):
        return None
    pairs = []
    for part in raw.split(","):
        if not part.strip():
            continue
        m = _SIMPLE_ADDRESS.fullmatch(part)
        if m is None:
            return None
        pairs.append((m.group(1), m.group(2)) if m.group(2) else ("", m.group(3)))
    return pairs


def _addresses(value: str | None) -> tuple[Address, ...]:
    """Memoised by the raw header: the same From and To lines come back all the time
    (a list, the user's own address), and parsing one costs ~3 us."""
    if not value:
        return ()
    found = _ADDRESS_CACHE.get(value)
    if found is None:
        if len(_ADDRESS_CACHE) >= 4096:
            _ADDRESS_CACHE.clear()  # bounded, whatever a mailbox holds
        found = _ADDRESS_CACHE[value] = tuple(_parse_addresses(value))
    return found


_ADDRESS_CACHE: dict[str, tuple[Address, ...]] = {}


def _parse_addresses(value: str) -> list[Address]:
    raw = _fix_8bit(_unfold(value))
    pairs = _simple_addresses(raw)
    if pairs is None:
        try:
            import email.utils

            pairs = email.utils.getaddresses([raw])
        except Exception:
            pairs = []
        if "@" in raw and any("@" not in addr for _, addr in pairs):
            # Specials in an unquoted name ("[b]Mallory[/b] <m@x>") derail the
            # RFC parser; the display name is whatever precedes "<addr>".
            pairs = [m.groups() for m in _ANGLE_ADDRESS.finditer(raw)] or pairs
    result: list[Address] = []
    for name, addr in pairs:
        name = clean_text(decode_words(name))
        addr = clean_text(addr).replace(" ", "")
        if name or addr:
            result.append(Address(name, addr))
        if len(result) >= MAX_ADDRESSES:
            break
    if not result and "@" in raw:
        # getaddresses gave up (unbalanced quotes and the like): take what looks like mail.
        result = [Address("", a) for a in _ADDR_FALLBACK.findall(raw)[:MAX_ADDRESSES]]
    return result


def _msg_ids(value: str | None) -> list[str]:
    if not value:
        return []
    one = _ONE_MSGID.fullmatch(value)
    if one is not None:
        return [one.group(1)]
    return _all_msg_ids(value)


def _all_msg_ids(value: str) -> list[str]:
    ids = [f"<{clean_text(i)}>" for i in _MSGID.findall(_fix_8bit(_unfold(value)))]
    return list(dict.fromkeys(i for i in ids if len(i) <= 998))


def _message_id(value: str | None) -> str:
    if value:
        one = _ONE_MSGID.fullmatch(value)
        if one is not None:
            return one.group(1)
    ids = _msg_ids(value)
    if ids:
        return ids[0]
    # Some generators forget the brackets; the bare token still identifies the message.
    token = clean_text(_fix_8bit(_unfold(value or ""))).split(" ")[0].strip("<>")
    return f"<{token}>" if token and len(token) <= 996 else ""


def _fast_timestamp(day: str, hour: str, minute: str, sec: str | None, zone: str) -> int | None:
    """The timestamp of the fields _DATE (or _COMMON_DATE) found; None leaves the
    date to email.utils."""
    h, mi, s = _CLOCK.get(hour, 99), _CLOCK.get(minute, 99), _CLOCK.get(sec or "0", 99)
    if not (h < 24 and mi < 60 and s < 61):
        return None
    # Mail of one mailbox comes from a few days and zones: memoised, they leave
    # a date three dict lookups on top of its regex.
    start = _DAY_START.get(day)
    if start is None:
        if len(_DAY_START) >= 4096:
            _DAY_START.clear()  # bounded, whatever a mailbox holds
        start = _DAY_START[day] = _day_start(day)
    offset = _ZONE_OFFSET.get(zone)
    if offset is None:
        if len(_ZONE_OFFSET) >= 4096:
            _ZONE_OFFSET.clear()
        offset = _ZONE_OFFSET[zone] = _zone_offset(zone)
    if start == _NOT_FAST or offset == _NOT_FAST:
        return None
    return start + h * 3600 + mi * 60 + s - offset


# Hours, minutes and seconds as _DATE finds them, up to a leap second; a dict
# lookup costs a third of int().
_CLOCK = {f"{n:02d}": n for n in range(61)} | {str(n): n for n in range(10)}
# Neither a day's start nor a zone's offset: both are whole minutes.
_NOT_FAST = -1
_DAY_START: dict[str, int] = {}
_ZONE_OFFSET: dict[str, int] = {}


def _day_start(day: str) -> int:
    """Seconds from the epoch to the start of "2 Jan 2024" (UTC), or _NOT_FAST."""
    d_text, mon, y_text = day.split()
    month = _MONTHS.get(mon.lower())
    y, d = int(y_text), int(d_text)
    if month is None or not (y >= 100 and 1 <= d <= 31):
        # The odd ones go to email.utils, as they always did ("0099" is 1999 there).
        return _NOT_FAST
    # What parsedate_tz + mktime_tz (calendar.timegm) give for the same fields,
    # without timegm's tuple and Python frames: day 31 of a 30-day month rolls over.
    return (_date(y, month, 1).toordinal() - _EPOCH_DAY + d - 1) * 86400


def _zone_offset(zone: str) -> int:
    """Seconds east of UTC of "+0100"; _NOT_FAST for "-0000" (local time to email.utils)."""
    if zone == "-0000":
        return _NOT_FAST
    offset = int(zone[1:3]) * 3600 + int(zone[3:5]) * 60
    return -offset if zone[0] == "-" else offset


def _timestamp(value: str | None) -> int | None:
    if not value:
        return None
    m = _COMMON_DATE.fullmatch(value)
    if m is None and value.isascii() and "\n" not in value:
        m = _DATE.match(value.strip())
    if m is not None:
        fast = _fast_timestamp(*m.groups())
        if fast is not None:
            return fast if -(2**31) < fast < 2**34 else None
    return _stdlib_timestamp(value)


def _stdlib_timestamp(value: str) -> int | None:
    """The date as email.utils reads it: what the fast path gives where it applies."""
    import email.utils

    try:
        parsed = email.utils.parsedate_tz(clean_text(_fix_8bit(_unfold(value))))
        if parsed is None:
            return None
        ts = int(email.utils.mktime_tz(parsed))
    except Exception:
        return None
    # Year 1 or 9999 is not a date, it is a bug; let the fallbacks speak instead.
    return ts if -(2**31) < ts < 2**34 else None


@functools.cache
def _html_parts() -> Callable[[str], list[str]]:
    """The text pieces of an HTML document; the parser is built on first use:
    html.parser costs ~3 ms to import, and only HTML-only bodies need it (an
    initial sync never does)."""
    from html.parser import HTMLParser

    class HtmlText(HTMLParser):
        _SKIP = frozenset({"script", "style", "head", "title"})
        _BLOCK = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table"})

        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.size = 0
            self.skip = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in self._SKIP:
                self.skip += 1
            elif tag in self._BLOCK:
                self.parts.append("\n")

        def handle_endtag(self, tag: str) -> None:
            if tag in self._SKIP and self.skip:
                self.skip -= 1

        def handle_data(self, data: str) -> None:
            if not self.skip and self.size < BODY_TEXT_LIMIT:
                self.parts.append(data)
                self.size += len(data)

    def parts(html: str) -> list[str]:
        parser = HtmlText()
        try:
            parser.feed(html)
            parser.close()
        except Exception:
            pass
        return parser.parts

    return parts


def html_to_text(html: str) -> str:
    parts = _html_parts()(html[: BODY_TEXT_LIMIT * 8])
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(parts).splitlines())
    return "\n".join(line for line in lines if line)


# --- MIME structure --------------------------------------------------------------


def _leaves(msg: Message) -> Iterator[tuple[Message, str, bool]]:
    """(part, content type, under multipart/encrypted), depth-first, iterative.

    Iterative with a part cap because a hostile message can nest thousands of
    multiparts, which would blow the recursion limit of Message.walk().
    """
    from email.message import Message

    stack: list[tuple[Message, bool]] = [(msg, False)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, encrypted = stack.pop()
        seen += 1
        try:
            ctype = part.get_content_type()
        except Exception:
            ctype = "text/plain"
        if ctype.startswith("multipart/"):
            payload = part.get_payload()
            if isinstance(payload, list):
                inner = encrypted or ctype == "multipart/encrypted"
                stack.extend((p, inner) for p in reversed(payload) if isinstance(p, Message))
            continue
        yield part, ctype, encrypted


def _is_attachment(part: Message, ctype: str, encrypted: bool) -> bool:
    if encrypted or ctype in _NOT_SIGNATURES:
        return False
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    if disposition == "attachment":
        return True
    if ctype in ("message/rfc822", "message/global"):
        return True
    maintype = ctype.split("/", 1)[0]
    if maintype in ("application", "audio", "video", "model", "font"):
        return True
    try:
        filename = part.get_filename()
    except Exception:
        filename = None
    # Images without a file name are usually inline pictures of an HTML body.
    return bool(filename) and disposition != "inline"


def _part_text(part: Message) -> str:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if not isinstance(data, bytes):
        return ""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(data[: BODY_TEXT_LIMIT * 4], charset)


def _structure(msg: Message) -> tuple[bool, str]:
    has_attachment = False
    plain: str | None = None
    html: Message | None = None
    for part, ctype, encrypted in _leaves(msg):
        if _is_attachment(part, ctype, encrypted):
            has_attachment = True
        elif plain is None and ctype == "text/plain" and not encrypted:
            plain = _part_text(part)
        elif html is None and ctype == "text/html" and not encrypted:
            html = part
        if has_attachment and plain is not None:
            break
    if plain is not None:
        text = plain
    elif html is not None:
        text = html_to_text(_part_text(html))
    else:
        text = ""
    return has_attachment, _BODY_CONTROL.sub(" ", text)[:BODY_TEXT_LIMIT]


# --- entry point -----------------------------------------------------------------


def parse_message(raw: bytes, mtime: float | None = None) -> ParsedHeaders:
    """Parse what the index needs. Date falls back to Received, then `mtime`, then 0."""
    fallback = int(mtime) if mtime is not None else 0
    try:
        return _parse(raw, fallback)
    except Exception:
        pass
    try:
        # Something new went wrong: headers alone, through the stdlib, still give a row.
        import email.parser

        msg = email.parser.BytesHeaderParser().parsebytes(raw[:MAX_PARSE_BYTES])
        return _from_headers(list(msg.raw_items()), fallback, False, "")
    except Exception:
        return empty_headers(fallback)


def parse_headers(raw: bytes, mtime: float | None = None) -> ParsedHeaders:
    """The list fields only (body_text None), for bulk stores; like parse_message otherwise.

    No email.parser: the fields come from one regex pass over the header block,
    and has_attachment from a walk over MIME part headers found with bytes.find.
    The walk follows the stdlib's rules closely but not to the last defect; the
    body pass (AccountStore.fill_fts, which parses fully) corrects the flag.
    """
    fallback = int(mtime) if mtime is not None else 0
    try:
        data = raw if len(raw) <= MAX_PARSE_BYTES else raw[:MAX_PARSE_BYTES]
        head, body = _split_head(data)
        first: dict[str, str] = {}
        for name, value in _INDEX_FIELDS.findall("\n" + head.decode("ascii", "surrogateescape")):
            first.setdefault(name.lower(), value)
        ctype = first.get("content-type")
        if "content-disposition" not in first and (
            ctype is None or (ctype[:5].lower() == "text/" and "name" not in ctype.lower())
        ):
            # A single text part without a file name, most mail: what the walk
            # below would decide, without the MIME type's parsing.
            has_attachment = False
        else:
            try:
                has_attachment = _fast_has_attachment(first, body)
            except Exception:
                has_attachment = False
        return _from_fields(first, fallback, has_attachment, None)
    except Exception:
        return parse_message(raw, mtime)


def _split_head(data: bytes, part: bool = False) -> tuple[bytes, bytes]:
    """(header block, body), as split_headers cuts them, but with a regex that
    starts with "\n" (an optional CR first is tried at every position: 5x slower on a
    short head).

    A MIME part (`part`) that starts with a blank line has no headers, as the
    stdlib's parser reads it; split_headers looks for the first blank line anywhere.
    """
    if part and data[:1] in (b"\n", b"\r"):
        if data[:1] == b"\n":
            return b"", data[1:]
        if data[:2] == b"\r\n":
            return b"", data[2:]
    m = _HEAD_END.search(data)
    if m is None:
        return data, b""
    end, after = m.span()
    if after - end == 3 and data[after : after + 1] == b"\n":
        # "\n\r\n\n": a "\n\r\n" ends the head only when it ends before the first
        # "\n\n" starts; this one overlaps it, so the "\n\n" ends the head.
        end, after = end + 2, after + 1
    if end and data[end - 1] == 0x0D:
        end -= 1
    return data[:end], data[after:]


def _mime_type(value: str | None, default: str = "text/plain") -> str:
    # Message.get_content_type(): a value without exactly one "/" is text/plain.
    if value is None:
        return default
    ctype = _unfold(value).split(";", 1)[0].strip().lower()
    return ctype if ctype.count("/") == 1 else "text/plain"


def _param(value: str | None, name: str) -> str | None:
    """A Content-Type/-Disposition parameter (RFC 2231 sections count as present)."""
    if not value:
        return None
    for m in _PARAM.finditer(_unfold(value)):
        if _PARAM_SECTION.sub("", m.group(1)).lower() == name:
            v = m.group(2).strip()
            if v.startswith('"'):
                v = v[1:-1] if len(v) > 1 and v.endswith('"') else v[1:]
            return v
    return None


def _part_is_attachment(fields: dict[str, str], ctype: str, encrypted: bool) -> bool:
    """_is_attachment() on header fields instead of a parsed Message."""
    if encrypted or ctype in _NOT_SIGNATURES:
        return False
    cd = fields.get("content-disposition")
    disposition = _unfold(cd).split(";", 1)[0].strip().lower() if cd is not None else None
    if disposition == "attachment":
        return True
    if ctype in ("message/rfc822", "message/global"):
        return True
    if ctype.split("/", 1)[0] in ("application", "audio", "video", "model", "font"):
        return True
    ct = fields.get("content-type")
    # Both parameters end in "name": without it (most text parts) there is no file name.
    if "name" not in (cd or "").lower() and "name" not in (ct or "").lower():
        return False
    filename = _param(cd, "filename")
    if filename is None:
        filename = _param(ct, "name")
    return bool(filename and filename.strip()) and disposition != "inline"


def _mime_parts(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts of a multipart body: lines "--boundary" (then blanks) split it,
    "--boundary--" ends it; the preamble and epilogue are not parts."""
    delim = b"--" + boundary
    parts: list[bytes] = []
    start = -1
    pos = 0
    while len(parts) < MAX_PARTS:
        i = body.find(delim, pos)
        if i < 0:
            break
        pos = i + len(delim)
        if i and body[i - 1] != 0x0A:
            continue  # not at the start of a line
        eol = body.find(b"\n", pos)
        rest = body[pos : eol if eol >= 0 else len(body)]
        closing = rest[:2] == b"--"
        if (rest[2:] if closing else rest).strip(b" \t\r"):
            continue  # "--boundaryX": another boundary that starts the same
        if start >= 0:
            end = i - 1 if i else 0
            parts.append(body[start : end - 1 if body[end - 1 : end] == b"\r" else end])
        if closing:
            return parts
        start = pos = eol + 1 if eol >= 0 else len(body)
    if start >= 0:
        parts.append(body[start:])
    return parts


def _fast_has_attachment(fields: dict[str, str], body: bytes) -> bool:
    """_structure()'s has_attachment without building Message objects: stops at the first."""
    stack: list[tuple[dict[str, str], bytes, bool, str]] = [(fields, body, False, "text/plain")]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, data, encrypted, default = stack.pop()
        seen += 1
        ctype = _mime_type(part.get("content-type"), default)
        if not ctype.startswith("multipart/"):
            if _part_is_attachment(part, ctype, encrypted):
                return True
            continue
        boundary = _param(part.get("content-type"), "boundary")
        if not boundary or not boundary.rstrip():
            continue  # the stdlib keeps such a body as text: no parts, no attachment
        inner = encrypted or ctype == "multipart/encrypted"
        # Parts of a digest are messages unless they say otherwise (RFC 2046 5.1.5).
        child_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
        raw_boundary = boundary.rstrip().encode("ascii", "surrogateescape")
        for sub in reversed(_mime_parts(data, raw_boundary)):
            head, sub_body = _split_head(sub, part=True)
            sub_fields: dict[str, str] = {}
            for name, value in _MIME_FIELDS.findall(head.decode("ascii", "surrogateescape")):
                sub_fields.setdefault(name.lower(), value)
            stack.append((sub_fields, sub_body, inner, child_default))
    return False


def _cut_at_blank_line(data: bytes) -> tuple[bytes, bytes]:
    """(head, body) around the first blank line: the leftmost match of the regex
    CR? LF CR? LF, found as LF CR? LF (`_HEAD_END`), whose leading literal is
    scanned for like bytes.find; the optional CR in front would be tried at
    every position (3.2 -> 0.7 us a message)."""
    m = _HEAD_END.search(data)
    if m is None:
        return data, b""
    start = m.start()
    # A CR just before belongs to the match; none can start earlier, or an earlier
    # LF CR? LF would have been found.
    if start and data[start - 1] == 0x0D:
        start -= 1
    return data[:start], data[m.end() :]


def split_headers(data: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """(name, raw value) pairs in order, and the body; like compat32, but ~10x faster.

    Values keep their folding (CRLF + whitespace); 8-bit bytes stay surrogate-
    escaped as the stdlib's bytes parser leaves them. Lines without a colon
    (an mbox "From " line, garbage) are skipped.
    """
    head, body = _cut_at_blank_line(data)
    headers: list[list[str]] = []
    for line in _LINE_END.split(head.decode("ascii", "surrogateescape")):
        if line[:1] in (" ", "\t"):
            if headers:
                headers[-1][1] += "\r\n" + line
            continue
        name, sep, value = line.partition(":")
        if sep and name and not name[-1].isspace():
            headers.append([name, value.lstrip(" \t")])
    return [(h[0], h[1]) for h in headers], body


def _parse(raw: bytes, fallback: int) -> ParsedHeaders:
    data = raw if len(raw) <= MAX_PARSE_BYTES else raw[:MAX_PARSE_BYTES]
    headers, body = split_headers(data)
    has_attachment, text = _body(data, headers, body)
    return _from_headers(headers, fallback, has_attachment, text)


def parse_body(raw: bytes) -> tuple[bool, str]:
    """(has_attachment, body text) exactly as parse_message finds them, without
    decoding the list fields: the full-text pass already has those in the row."""
    data = raw if len(raw) <= MAX_PARSE_BYTES else raw[:MAX_PARSE_BYTES]
    try:
        headers, body = split_headers(data)
        return _body(data, headers, body)
    except Exception:
        return False, ""


def _body(data: bytes, headers: list[tuple[str, str]], body: bytes) -> tuple[bool, str]:
    import email.parser
    from email.message import Message

    ctype = next((v for n, v in headers if n.lower() == "content-type"), "")
    if ctype.split(";", 1)[0].strip().lower().startswith(("multipart/", "message/")):
        # Only a multipart needs the real MIME parser (the slow part of parsing).
        # The parsers' default policy is compat32 (importing email.policy to name
        # it costs the sync's start-up ~5 ms of header-registry imports).
        msg = email.parser.BytesParser().parsebytes(data)
    else:
        # A single part: give the stdlib Message just the MIME headers and the body,
        # so decoding and attachment rules are the same as for a parsed part.
        msg = Message()
        for name, value in headers:
            if name.lower() in ("content-type", "content-transfer-encoding", "content-disposition"):
                msg[name] = value
        msg.set_payload(body.decode("ascii", "surrogateescape"))
    try:
        return _structure(msg)
    except Exception:
        return False, ""


def _from_headers(
    headers: list[tuple[str, str]], fallback: int, has_attachment: bool, body: str | None
) -> ParsedHeaders:
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name.lower(), value if isinstance(value, str) else str(value))
    return _from_fields(first, fallback, has_attachment, body)


def _from_fields(
    first: dict[str, str], fallback: int, has_attachment: bool, body: str | None
) -> ParsedHeaders:
    """The row's fields from {lower-case name: first raw value}.

    Absent fields are tested here rather than in the helpers: most mail has no
    Cc, References or List-Id, and each call that returns nothing costs."""
    get = first.get
    date = _timestamp(get("date"))
    if date is None:
        received = get("received")
        date = _timestamp(received.rpartition(";")[2] if received else None)
        if date is None:
            date = fallback
    senders = _addresses(get("from")) or _addresses(get("sender"))
    value = get("references")
    refs = tuple(_msg_ids(value)[-MAX_REFERENCES:]) if value else ()
    value = get("in-reply-to")
    reply_ids = _msg_ids(value) if value else None
    list_id = get("list-id")
    if list_id:
        list_ids = _msg_ids(list_id)
        list_id = list_ids[0][1:-1] if list_ids else _header_text(list_id)
    else:
        list_id = ""
    value = get("cc")
    return ParsedHeaders(
        date=date,
        sender=senders[0] if senders else _EMPTY,
        to=_addresses(get("to")),
        cc=_addresses(value) if value else (),
        subject=_header_text(get("subject")),
        message_id=_message_id(get("message-id")),
        in_reply_to=reply_ids[0] if reply_ids else "",
        references=refs,
        has_attachment=has_attachment,
        list_id=list_id,
        body_text=body,
    )
