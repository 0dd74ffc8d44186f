"""The text form of a draft edited in $EDITOR (or the built-in editor).

    From: Alice <alice@example.com>
    To: Bob <bob@example.com>, carol@example.com
    Cc:
    Bcc:
    Subject: Lunch
    Attach: ~/menu.pdf
    Attach: #1 original.eml (message/rfc822, 2.1 KB)

    The body starts after the first empty line.

`Attach: PATH` adds a file; `Attach: #N ...` keeps the N-th attachment the draft already
holds in memory (a forwarded message); deleting the line drops it. A header line may
continue on following lines that start with a space or tab (long To lists).

`parse_draft` never raises on what the user typed: it returns a `DraftError` naming
the line, the header and the bad part, so the compose screen can show it and reopen the
same text. Unknown header names are errors too: a typo such as "Ccc:" must not quietly
drop recipients.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from pathlib import Path

from msgspec import Struct
from msgspec.structs import replace

from tui_mail.compose.build import AddressError, Attachment, Draft, one_line, parse_address_list

__all__ = ["KNOWN_HEADERS", "DraftError", "parse_draft", "render_draft"]

KNOWN_HEADERS = ("From", "To", "Cc", "Bcc", "Reply-To", "Subject", "Attach")
_ADDRESS_HEADERS = ("From", "To", "Cc", "Bcc", "Reply-To")
_SINGLE = ("From", "Subject")  # may appear once; address lists may repeat and add up
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]?(.*)$")
_INLINE_REF = re.compile(r"^#(\d+)\b")


class DraftError(Struct, frozen=True):
    """Why the edited text is not a valid draft. `str()` is the message to show."""

    message: str
    line: int = 0  # 1-based line in the text, 0 when not tied to one line
    header: str = ""
    part: str = ""

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def render_draft(draft: Draft, default_from: str = "") -> str:
    """The editable text of `draft` (every header line present, even when empty)."""
    sender = str(draft.from_) if draft.from_ is not None else default_from
    lines = [f"From: {sender}"]
    for name, addresses in (("To", draft.to), ("Cc", draft.cc), ("Bcc", draft.bcc)):
        lines.append(f"{name}: {', '.join(str(a) for a in addresses)}".rstrip())
    if draft.reply_to:
        lines.append(f"Reply-To: {', '.join(str(a) for a in draft.reply_to)}")
    lines.append(f"Subject: {one_line(draft.subject)}".rstrip())
    lines.extend(f"Attach: {p}" for p in draft.attach_paths)
    for n, a in enumerate(draft.attachments, 1):
        lines.append(f"Attach: #{n} {one_line(a.filename)} ({a.mime_type}, {_size(len(a.data))})")
    return "\n".join(lines) + "\n\n" + draft.body


def _logical_headers(
    lines: list[str],
) -> tuple[list[tuple[int, str, str]], int] | DraftError:
    """[(line number, name, value)] and the index of the first body line."""
    fields: list[tuple[int, str, str]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            return fields, i + 1
        if line[:1] in (" ", "\t"):
            if not fields:
                return DraftError("the text must start with a header such as To:", i + 1)
            number, name, value = fields[-1]
            fields[-1] = (number, name, f"{value} {line.strip()}".strip())
            continue
        match = _HEADER_LINE.match(line)
        if match is None:
            return DraftError(
                f"{line.strip()[:40]!r} is not a header line (Name: value); leave an empty "
                "line between the headers and the text",
                i + 1,
            )
        fields.append((i + 1, match.group(1), match.group(2).strip()))
    return fields, len(lines)


def _canonical(name: str) -> str | None:
    return next((k for k in KNOWN_HEADERS if k.lower() == name.lower()), None)


def parse_draft(text: str, base: Draft | None = None) -> Draft | DraftError:
    """Read the edited text back. `base`: the draft it was rendered from, whose hidden
    parts (In-Reply-To, References, in-memory attachments, extra headers) carry over."""
    base = base or Draft()
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    parsed = _logical_headers(lines)
    if isinstance(parsed, DraftError):
        return parsed
    fields, body_start = parsed
    values: dict[str, list[Address]] = {name: [] for name in _ADDRESS_HEADERS}
    seen: set[str] = set()
    subject = ""
    paths: list[Path] = []
    kept: list[Attachment] = []
    for number, raw_name, value in fields:
        name = _canonical(raw_name)
        if name is None:
            return DraftError(
                f"unknown header {raw_name!r} (known: {', '.join(KNOWN_HEADERS)})",
                number,
                raw_name,
            )
        if name in _SINGLE and name in seen:
            return DraftError(f"{name} appears more than once", number, name)
        seen.add(name)
        if name in _ADDRESS_HEADERS:
            try:
                values[name].extend(parse_address_list(value, name))
            except AddressError as exc:
                return DraftError(str(exc), number, name, exc.part)
        elif name == "Subject":
            subject = one_line(value)
        elif name == "Attach" and value:
            ref = _INLINE_REF.match(value)
            if ref:
                n = int(ref.group(1))
                if not 1 <= n <= len(base.attachments):
                    return DraftError(f"Attach: there is no attachment #{n}", number, name, value)
                kept.append(base.attachments[n - 1])
                continue
            path = Path(value).expanduser()
            if not path.is_file():
                why = "is a directory" if path.is_dir() else "no such file"
                return DraftError(f"Attach: {value}: {why}", number, name, value)
            paths.append(path)
    senders = values["From"]
    if len(senders) > 1:
        return DraftError("From must be a single address", 0, "From")
    return replace(
        base,
        from_=senders[0] if senders else base.from_,
        to=tuple(values["To"]),
        cc=tuple(values["Cc"]),
        bcc=tuple(values["Bcc"]),
        reply_to=tuple(values["Reply-To"]),
        subject=subject,
        body="\n".join(lines[body_start:]),
        attach_paths=tuple(paths),
        attachments=tuple(kept),
    )
