"""Turn raw message bytes into what the message view shows.

Pure (stdlib `email` and `html.parser`, no Textual), tolerant: a malformed
message still yields headers, some text and a list of problems, never an
exception. The strings returned are decoded but NOT yet made inert: the view
passes every one of them through `tui_mail.core.sanitize` before display.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from html.parser import HTMLParser

MAIN_HEADERS = ("From", "To", "Cc", "Date", "Subject")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int


@dataclass
class ParsedMessage:
    headers: list[tuple[str, str]] = field(default_factory=list)  # every header, decoded
    body: str = ""
    body_type: str = "none"  # "plain" | "html" | "none"
    links: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

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
    try:
        text = str(make_header(decode_header(text)))
    except Exception:
        pass
    return re.sub(r"\r?\n[ \t]*", " ", text).strip()


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
    defects = getattr(msg, "defects", [])
    if defects:
        out.problems.append("message defects: " + ", ".join(type(d).__name__ for d in defects[:5]))
    return out


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
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _attachments(msg: Message, body: Message | None, out: ParsedMessage) -> list[Attachment]:
    found: list[Attachment] = []
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
    for part in parts:
        try:
            name = part.get_filename() or ""
        except Exception:
            name = ""
        try:
            payload = part.get_payload(decode=True)
            size = len(payload) if isinstance(payload, bytes) else 0
        except Exception:
            size = 0
        try:
            ctype = part.get_content_type()
        except Exception:
            ctype = "application/octet-stream"
        found.append(Attachment(decode_header_value(name) if name else "", ctype, size))
    return found


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


# --- HTML -> text ---------------------------------------------------------------------

_BLOCK = frozenset(
    "p div section article header footer main nav aside table tr ul ol dl h1 h2 h3 h4 h5 h6"
    " blockquote pre hr form center address figure figcaption details summary".split()
)
_SKIP = frozenset("script style head title template noscript svg object iframe".split())
_VOID = frozenset("br hr img meta link input area base col embed source track wbr".split())


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.links: list[str] = []
        self._skip = 0
        self._pre = 0
        self._href: list[str | None] = []
        self._lists: list[list[int]] = []  # [counter] per open list; -1 for bullets

    def _newlines(self, n: int) -> None:
        """End the current line and leave `n - 1` blank lines (none at the start)."""
        have = 0
        for chunk in reversed(self.out):
            stripped = chunk.rstrip("\n \t")
            have += chunk[len(stripped) :].count("\n")
            if stripped:
                break
        else:
            return  # nothing written yet: no leading blank lines
        if have < n:
            self.out.append("\n" * (n - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            if tag not in _VOID:
                self._skip += 1
            return
        if self._skip:
            return
        a = dict(attrs)
        if tag == "br":
            self.out.append("\n")
        elif tag == "hr":
            self._newlines(1)
            self.out.append("-" * 20)
            self._newlines(1)
        elif tag in ("ul", "ol"):
            self._newlines(1 if self._lists else 2)
            self._lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            self._newlines(1)
            depth = max(0, len(self._lists) - 1)
            counter = self._lists[-1] if self._lists else [-1]
            if counter[0] >= 0:
                counter[0] += 1
                self.out.append("  " * depth + f"{counter[0]}. ")
            else:
                self.out.append("  " * depth + "* ")
        elif tag in ("td", "th"):
            self.out.append("  ")
        elif tag in _BLOCK:
            self._newlines(2 if tag not in ("div", "tr") else 1)
            if tag == "pre":
                self._pre += 1
        elif tag == "a":
            href = (a.get("href") or "").strip()
            self._href.append(href if href and not href.startswith(("#", "javascript:")) else None)
        elif tag == "img":
            alt = (a.get("alt") or "").strip()
            if alt:
                self.out.append(f"[image: {alt}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
            return
        if self._skip:
            return
        if tag == "a":
            href = self._href.pop() if self._href else None
            if href:
                if href in self.links:
                    number = self.links.index(href) + 1
                else:
                    self.links.append(href)
                    number = len(self.links)
                self.out.append(f"[{number}]")
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._newlines(2 if not self._lists else 1)
        elif tag in _BLOCK:
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
            self._newlines(2 if tag not in ("div", "tr") else 1)

    def handle_data(self, data: str) -> None:
        if self._skip or not data:
            return
        if self._pre:
            self.out.append(data)
            return
        text = re.sub(r"\s+", " ", data)
        last = self.out[-1] if self.out else "\n"
        if text.startswith(" ") and (last.endswith((" ", "\n")) or not self.out):
            text = text.lstrip(" ")
        if text:
            self.out.append(text)


def html_to_text(html: str) -> tuple[str, list[str]]:
    """Readable text and the numbered links ("text[1]" ... "[1] url" at the end)."""
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; this is belt and braces
        pass
    text = "".join(parser.out)
    text = "\n".join(line.rstrip() for line in text.splitlines())
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    if parser.links:
        listing = "\n".join(f"[{i}] {url}" for i, url in enumerate(parser.links, 1))
        text = f"{text}\n\nLinks:\n{listing}"
    return text, parser.links
