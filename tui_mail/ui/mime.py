"""Turn raw message bytes into what the message view shows.

Pure (stdlib `email` plus html2text, no Textual), tolerant: a malformed
message still yields headers, some text and a list of problems, never an
exception. The strings returned are decoded but NOT yet made inert: the view
passes every one of them through `tui_mail.core.sanitize` before display.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from typing import Any

from msgspec import Struct, field

from tui_mail.compose.build import AddressError, header_fields, parse_address_list

MAIN_HEADERS = ("From", "To", "Cc", "Date", "Subject")
# A header value longer than this is decoded from its start only (a 500 KiB subject
# of encoded words took seconds); the raw source view still has all of it.
HEADER_DECODE_LIMIT = 64 * 1024


class Attachment(Struct, frozen=True):
    filename: str
    content_type: str
    size: int


class ParsedMessage(Struct):
    headers: list[tuple[str, str]] = field(default_factory=list)  # every header, decoded
    body: str = ""
    body_type: str = "none"  # "plain" | "html" | "none"
    links: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Where a reply goes (addr-specs), shown when the From line alone could mislead:
    # a Reply-To, several authors, a name that looks like an address, a bad From.
    reply_to: list[str] = field(default_factory=list)
    show_reply_to: bool = False

    def header(self, name: str) -> str:
        lower = name.lower()
        values = [v for k, v in self.headers if k.lower() == lower]
        return ", ".join(values)


def _undo_surrogates(text: str) -> str:
    """Raw 8-bit header bytes arrive as surrogate escapes: decode them as UTF-8 or Latin-1."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def decode_header_value(value: object) -> str:
    """RFC 2047 words decoded and folding removed; the raw text on any problem."""
    text = _undo_surrogates(str(value))
    cut = len(text) > HEADER_DECODE_LIMIT
    if cut:
        text = text[:HEADER_DECODE_LIMIT]
    try:
        text = str(make_header(decode_header(text)))
    except Exception:
        pass
    text = re.sub(r"\r?\n[ \t]*", " ", text).strip()
    return f"{text} […]" if cut else text


def parse_message(raw: bytes) -> ParsedMessage:
    out = ParsedMessage()
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:  # not expected from the stdlib parser, but never fatal
        out.problems.append(f"could not parse the message: {exc}")
        out.body = raw.decode("utf-8", errors="replace")
        out.body_type = "plain"
        return out

    try:
        for name, value in msg.raw_items():
            out.headers.append((str(name), decode_header_value(value)))
    except Exception as exc:
        out.problems.append(f"headers: {exc}")

    try:
        _check_sender(raw, out)
    except Exception as exc:  # a parser bug on garbage must not lose the message
        out.problems.append(f"sender: {exc}")
        out.show_reply_to = True

    try:
        body_part = _find_body(msg, out)
        if body_part is not None:
            text = _part_text(body_part, out)
            if body_part.get_content_subtype() == "html":
                out.body, out.links = html_to_text(text)
                out.body_type = "html"
            else:
                out.body = text
                out.body_type = "plain"
        out.attachments = _attachments(msg, body_part, out)
    except Exception as exc:  # a structure the stdlib cannot take apart: the raw text
        out.problems.append(f"could not read the message structure: {exc}; showing it raw")
        out.body, out.links, out.body_type = raw.decode("utf-8", errors="replace"), [], "plain"
    defects = getattr(msg, "defects", [])
    if defects:
        out.problems.append("message defects: " + ", ".join(type(d).__name__ for d in defects[:5]))
    return out


def _check_sender(raw: bytes, out: ParsedMessage) -> None:
    """Who a reply goes to, read the way `tui_mail.compose.reply` reads it, and warnings
    for a From that says less than it seems to: two From headers, a display name that
    looks like another address, items that are not addresses."""
    fields = header_fields(raw)
    froms = [value for name, value in fields if name.lower() == "from"]
    reply_tos = [value for name, value in fields if name.lower() == "reply-to"]
    if len(froms) > 1:
        out.problems.append(f"{len(froms)} From headers: the sender is ambiguous")
    authors = [a for value in froms for a in _addresses_checked(value, "From", out)]
    replies = [a for value in reply_tos for a in _addresses_checked(value, "Reply-To", out)]
    misleading = False
    for a in (*authors, *replies):
        name = a.display_name.strip()
        if "@" in name and name.lower() != a.addr_spec.lower():
            misleading = True
            out.problems.append(
                f"the name \u201c{name}\u201d looks like an address; the address is {a.addr_spec}"
            )
    if froms and not authors:
        out.problems.append("From has no valid address")
    elif not froms:
        out.problems.append("no From header")
    target = replies or authors
    out.reply_to = list(dict.fromkeys(a.addr_spec for a in target))
    out.show_reply_to = (
        misleading
        or len(froms) != 1
        or len(authors) != 1
        or any(a.addr_spec.lower() != authors[0].addr_spec.lower() for a in replies)
        or any(p.startswith(("From:", "Reply-To:")) for p in out.problems)
    )


def _addresses_checked(value: str, header: str, out: ParsedMessage) -> list[Address]:
    try:
        return parse_address_list(value, header)
    except AddressError as exc:
        out.problems.append(str(exc))
        return parse_address_list(value, header, strict=False)


def _find_body(msg: Message, out: ParsedMessage) -> Message | None:
    try:
        if isinstance(msg, EmailMessage):
            part = msg.get_body(preferencelist=("plain", "html"))
            if part is not None:
                return part
    except Exception as exc:
        out.problems.append(f"body: {exc}")
    try:
        for part in msg.walk():
            if part.get_content_maintype() == "text" and not part.get_filename():
                return part
    except Exception as exc:
        out.problems.append(f"body: {exc}")
    return None


def _part_text(part: Message, out: ParsedMessage) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except Exception as exc:
        out.problems.append(f"body decoding: {exc}")
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        payload = str(part.get_payload() or "").encode("utf-8", "replace")
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except (LookupError, ValueError):  # unknown, or a name no codec lookup accepts (NUL)
        return payload.decode("utf-8", errors="replace")


def _attachment_parts(msg: Message, body: Message | None, out: ParsedMessage) -> list[Message]:
    try:
        parts = list(msg.iter_attachments()) if isinstance(msg, EmailMessage) else []
    except Exception:
        parts = []
    if not parts:
        try:
            parts = [
                p
                for p in msg.walk()
                if p is not body and not p.is_multipart() and p.get_filename() is not None
            ]
        except Exception as exc:
            out.problems.append(f"attachments: {exc}")
            parts = []
    return parts


def _payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return b""
    if isinstance(payload, bytes):
        return payload
    if part.get_content_maintype() == "message":
        # An attached message (message/rfc822): the bytes of the message itself.
        try:
            return _inner_bytes(part)
        except Exception:
            return b""
    return b""


def _inner_bytes(part: Message) -> bytes:
    inner = part.get_payload()
    if isinstance(inner, list) and inner:
        inner = inner[0]
    if isinstance(inner, Message):
        return inner.as_bytes(policy=email.policy.default)
    return str(inner or "").encode("utf-8", "replace")


def _attachments(msg: Message, body: Message | None, out: ParsedMessage) -> list[Attachment]:
    found: list[Attachment] = []
    for part in _attachment_parts(msg, body, out):
        try:
            name = part.get_filename() or ""
        except Exception:
            name = ""
        size = len(_payload(part))
        try:
            ctype = part.get_content_type()
        except Exception:
            ctype = "application/octet-stream"
        found.append(Attachment(decode_header_value(name) if name else "", ctype, size))
    return found


def attachment_data(raw: bytes, number: int) -> bytes:
    """The decoded bytes of attachment `number` (0-based, as `parse_message` lists them)."""
    out = ParsedMessage()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = _attachment_parts(msg, _find_body(msg, out), out)
    if not 0 <= number < len(parts):
        raise IndexError(f"no attachment {number + 1}")
    return _payload(parts[number])


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


# --- HTML -> text ---------------------------------------------------------------------
#
# html2text (a maintained converter, GPL-3.0 like this project) does the layout:
# lists, tables, quotes, headings, entities, broken markup. It never fetches
# anything; it only reads the string. Its Markdown link and image syntax is
# then rewritten here into the numbered form the view shows ("text[1]" and a
# "Links:" list), and images become "[image: alt]" with their URL dropped, so
# a tracking pixel's address is never even displayed.

# "(target)" of a Markdown link: <...>, or a URL that may hold balanced parentheses,
# then an optional "title".
_TARGET = r"\((<[^>]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)(?:\s+\"[^\"]*\")?\)"
_IMAGE = re.compile(r"!\[([^\[\]]*)\]" + _TARGET)
_LINK = re.compile(r"\[([^\[\]]*)\]" + _TARGET)
_SAFE_LINK_PREFIXES = ("#", "javascript:", "data:", "vbscript:")


def _converter() -> Any:
    import html2text  # imported on first use: not needed for plain-text mail

    h = html2text.HTML2Text()
    h.body_width = 0  # the view wraps to the pane; fixed wrapping would break twice
    h.unicode_snob = True  # keep the real characters, not ASCII look-alikes
    h.inline_links = True  # rewritten to numbered links below
    h.use_automatic_links = False
    h.protect_links = True
    h.ignore_emphasis = True  # "**" around words is noise in a terminal
    h.images_to_alt = False
    h.ignore_images = False
    h.single_line_break = False
    h.mark_code = False
    h.wrap_links = False
    return h


def html_to_text(html: str) -> tuple[str, list[str]]:
    """Readable text and the numbered links ("text[1]" ... "[1] url" at the end)."""
    try:
        text = _converter().handle(html)
    except Exception:  # html2text is lenient; a converter bug must not lose the message
        text = re.sub(r"<[^>]*>", " ", html)
    links: list[str] = []

    def image(m: re.Match[str]) -> str:
        alt = m.group(1).strip()
        # Private-use brackets for now, so a linked image still matches _LINK.
        return f"\ue000image: {alt}\ue001" if alt else ""

    def link(m: re.Match[str]) -> str:
        label, href = m.group(1), m.group(2).strip().strip("<>").strip()
        href = re.sub(r"\\([()\[\]])", r"\1", href)  # html2text escapes parentheses
        if not href or href.lower().startswith(_SAFE_LINK_PREFIXES):
            return label
        if href not in links:
            links.append(href)
        return f"{label}[{links.index(href) + 1}]"

    text = _IMAGE.sub(image, text)
    text = _LINK.sub(link, text).replace("\ue000", "[").replace("\ue001", "]")
    text = "\n".join(line.rstrip() for line in text.splitlines())
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    if links:
        listing = "\n".join(f"[{i}] {url}" for i, url in enumerate(links, 1))
        text = f"{text}\n\nLinks:\n{listing}"
    return text, links
