"""Replies and forwards: drafts prefilled from a stored message's raw bytes.

Nothing from the original reaches a header unchecked: addresses go through
`parse_address_list` (lenient: bad items are dropped, display names made one line),
the subject through `one_line`, message-ids through `message_ids`. Those are the
places where a replied-to header carrying CR/LF (typed raw, or hidden in an RFC 2047
encoded word) could otherwise become a new header line or a recipient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

from msgspec import Struct

from tui_mail.compose.build import (
    Attachment,
    Draft,
    header_fields,
    identity,
    message_ids,
    one_line,
    parse_address_list,
    signature_block,
    trim_references,
)
from tui_mail.config.schema import AccountConfig

__all__ = [
    "Original",
    "forward_attached",
    "forward_inline",
    "forward_subject",
    "new_message",
    "own_addresses",
    "parse_original",
    "quote",
    "reply",
    "reply_all",
    "reply_subject",
]

_RE_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|vs|ref|odp)(\[\d+\]|\(\d+\))?\s*:\s*)+", re.I)
_FWD_PREFIX = re.compile(r"^\s*((fwd?|wg|tr|rv|enc|vb|doorst)(\[\d+\])?\s*:\s*)+", re.I)


class Original(Struct, frozen=True):
    """What replying and forwarding need from a message, already made safe."""

    raw: bytes
    from_: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    mail_followup_to: tuple[Address, ...]
    delivered_to: tuple[Address, ...]
    subject: str
    date: str  # as shown in attributions, "" if missing or unreadable
    message_id: str
    references: tuple[str, ...]
    in_reply_to: str
    text: str
    attachments: tuple[Attachment, ...]


def _decoded(value: str) -> str:
    """An unstructured header value with RFC 2047 words decoded, as one line."""
    try:
        text = str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, AssertionError):
        text = value  # an unknown charset: show the words undecoded
    return one_line(text.encode("utf-8", "replace").decode("utf-8"))


def _addresses(fields: Sequence[tuple[str, str]], name: str) -> tuple[Address, ...]:
    found: list[Address] = []
    for field_name, value in fields:
        if field_name.lower() == name.lower():
            found.extend(parse_address_list(value, name, strict=False))
    return tuple(found)


def _first(fields: Sequence[tuple[str, str]], name: str) -> str:
    return next((v for n, v in fields if n.lower() == name.lower()), "")


def _attribution_date(value: str) -> str:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return ""
    if when is None:
        return ""
    return when.strftime("%Y-%m-%d %H:%M %z").strip()


def _html_to_text(html: str) -> str:
    # Imported here, not at module level: tui_mail.ui.mime is pure (no Textual) but the
    # layering rules forbid a load-time import of tui_mail.ui outside the UI.
    from tui_mail.ui.mime import html_to_text

    return html_to_text(html)[0]


def _part_text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError, KeyError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        content = _html_to_text(content)
    return content.replace("\r\n", "\n").replace("\r", "\n")


def _attachments(msg: EmailMessage) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    try:
        parts = list(msg.iter_attachments())
    except (AttributeError, KeyError, TypeError):
        return ()
    for part in parts:
        kind = part.get_content_type()
        try:
            if part.get_content_maintype() in ("message", "multipart"):
                inner = part.get_payload()
                body = inner[0] if isinstance(inner, list) and inner else inner
                data = body.as_bytes() if hasattr(body, "as_bytes") else str(body).encode()
            else:
                data = part.get_payload(decode=True) or b""
        except (LookupError, UnicodeError, ValueError, TypeError, KeyError):
            continue
        name = part.get_filename() or ("message.eml" if kind == "message/rfc822" else "")
        found.append(Attachment(one_line(name) or "attachment", data, kind))
    return tuple(found)


def parse_original(raw: bytes) -> Original:
    """Read the message being answered; never raises on a malformed message."""
    fields = header_fields(raw)
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    try:
        body = msg.get_body(preferencelist=("plain", "html"))
    except (KeyError, TypeError, AttributeError):
        body = None
    text = _part_text(body) if isinstance(body, EmailMessage) else ""
    own_id = message_ids(_first(fields, "Message-ID"))
    parent = message_ids(_first(fields, "In-Reply-To"))
    return Original(
        raw=raw,
        from_=_addresses(fields, "From"),
        to=_addresses(fields, "To"),
        cc=_addresses(fields, "Cc"),
        reply_to=_addresses(fields, "Reply-To"),
        mail_followup_to=_addresses(fields, "Mail-Followup-To"),
        delivered_to=(*_addresses(fields, "Delivered-To"), *_addresses(fields, "X-Original-To")),
        subject=_decoded(_first(fields, "Subject")),
        date=_attribution_date(_first(fields, "Date")),
        message_id=own_id[0] if own_id else "",
        references=tuple(message_ids(_first(fields, "References"))),
        in_reply_to=parent[0] if parent else "",
        text=text,
        attachments=_attachments(msg),
    )


# --------------------------------------------------------------------------- helpers


def own_addresses(account: AccountConfig) -> frozenset[str]:
    return frozenset(a.lower() for a in (account.email, *account.aliases))


def _is_own(address: Address, own: frozenset[str]) -> bool:
    return address.addr_spec.lower() in own


def _unique(addresses: Iterable[Address], drop: Iterable[str] = ()) -> tuple[Address, ...]:
    """First occurrence of each address (case-insensitive), without those in `drop`."""
    seen = {d.lower() for d in drop}
    out: list[Address] = []
    for a in addresses:
        key = a.addr_spec.lower()
        if key not in seen:
            seen.add(key)
            out.append(a)
    return tuple(out)


def reply_subject(subject: str) -> str:
    """ "Re: " once, however many Re:/Aw:/Sv: the original carried."""
    return "Re: " + _RE_PREFIX.sub("", one_line(subject))


def forward_subject(subject: str) -> str:
    return "Fwd: " + _FWD_PREFIX.sub("", one_line(subject))


def quote(text: str) -> str:
    """Every line prefixed with "> " (">" alone on empty lines: no trailing space)."""
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    return "\n".join(f"> {line}" if line.strip() else ">" for line in lines)


def _with_signature(text: str, account: AccountConfig) -> str:
    signature = signature_block(account)
    return f"{text}\n{signature}" if signature else text


def _sender_identity(original: Original, account: AccountConfig) -> Address:
    """Answer from the address (email or alias) the original was sent to."""
    # Spelled as configured, not as the sender happened to capitalise it.
    configured = {a.lower(): a for a in (account.email, *account.aliases)}
    for a in (*original.to, *original.cc, *original.delivered_to):
        mine = configured.get(a.addr_spec.lower())
        if mine:
            return identity(account, mine)
    return identity(account)


def _threading(original: Original) -> tuple[str, tuple[str, ...]]:
    """(In-Reply-To, References) for an answer to `original` (RFC 5322 3.6.4)."""
    refs = list(original.references)
    if not refs and original.in_reply_to:
        refs = [original.in_reply_to]
    if original.message_id:
        refs.append(original.message_id)
    return original.message_id, trim_references(refs)


def _who(addresses: Sequence[Address]) -> str:
    if not addresses:
        return "someone"
    first = addresses[0]
    return first.display_name or first.addr_spec


def _as_text(addresses: Sequence[Address]) -> str:
    return ", ".join(str(a) for a in addresses)


def _original(message: bytes | Original) -> Original:
    return message if isinstance(message, Original) else parse_original(message)


# --------------------------------------------------------------------------- drafts


def new_message(account: AccountConfig, to: Sequence[Address] = (), subject: str = "") -> Draft:
    signature = signature_block(account)
    return Draft(
        to=tuple(to),
        subject=one_line(subject),
        body=f"\n\n{signature}" if signature else "",
        from_=identity(account),
    )


def reply(
    message: bytes | Original,
    account: AccountConfig,
    *,
    reply_all: bool = False,
    use_followup_to: bool = True,
) -> Draft:
    """A reply to the author (Reply-To honoured), or with `reply_all` to everyone.

    Reply-all removes the user's own addresses (email and aliases) and duplicates; with
    `use_followup_to` a Mail-Followup-To header decides the recipients instead. Replying
    to one's own message goes to its recipients, not back to oneself.
    """
    original = _original(message)
    own = own_addresses(account)
    author = original.reply_to or original.from_
    sent_by_me = bool(author) and all(_is_own(a, own) for a in author)
    cc: tuple[Address, ...] = ()
    if reply_all and use_followup_to and original.mail_followup_to:
        to = _unique(original.mail_followup_to, own)
    elif sent_by_me:
        to = _unique(original.to, own)
        cc = _unique(original.cc, own) if reply_all else ()
    elif reply_all:
        to = _unique((*author, *original.to), own)
        cc = _unique(original.cc, [*own, *(a.addr_spec for a in to)])
    else:
        to = _unique(author)
    if not to and cc:
        to, cc = cc, ()
    if not to:  # a note to oneself: answer it to oneself
        to = _unique(author or original.from_)
    cc = _unique(cc, (a.addr_spec for a in to))

    in_reply_to, references = _threading(original)
    attribution = f"On {original.date}, {_who(original.from_)} wrote:"
    if not original.date:
        attribution = f"{_who(original.from_)} wrote:"
    quoted = quote(original.text)
    body = f"{attribution}\n{quoted}\n\n" if quoted else f"{attribution}\n\n"
    return Draft(
        to=to,
        cc=cc,
        subject=reply_subject(original.subject),
        body=_with_signature(body, account),
        from_=_sender_identity(original, account),
        in_reply_to=in_reply_to,
        references=references,
    )


def reply_all(message: bytes | Original, account: AccountConfig, **kwargs: bool) -> Draft:
    return reply(message, account, reply_all=True, **kwargs)


def _forward_references(original: Original) -> tuple[str, ...]:
    # References (not In-Reply-To): the forward joins the original's thread in the
    # user's own views without claiming to be an answer to it.
    return _threading(original)[1]


def forward_inline(message: bytes | Original, account: AccountConfig) -> Draft:
    """The original's text below a quoted header block, its attachments attached."""
    original = _original(message)
    block = ["-------- Forwarded message --------", f"Subject: {original.subject}"]
    if original.date:
        block.append(f"Date: {original.date}")
    for name, addresses in (("From", original.from_), ("To", original.to), ("Cc", original.cc)):
        if addresses:
            block.append(one_line(f"{name}: {_as_text(addresses)}"))
    text = original.text.rstrip("\n")
    body = "\n\n" + "\n".join(block) + "\n\n" + (f"{text}\n" if text else "")
    return Draft(
        subject=forward_subject(original.subject),
        body=_with_signature(body, account),
        from_=_sender_identity(original, account),
        attachments=original.attachments,
        references=_forward_references(original),
    )


def forward_attached(message: bytes | Original, account: AccountConfig) -> Draft:
    """The original attached whole (message/rfc822), byte for byte."""
    original = _original(message)
    name = (original.subject or "forwarded message")[:80]
    attachment = Attachment(f"{name}.eml", original.raw, "message/rfc822")
    signature = signature_block(account)
    return Draft(
        subject=forward_subject(original.subject),
        body=f"\n\n{signature}" if signature else "",
        from_=_sender_identity(original, account),
        attachments=(attachment,),
        references=_forward_references(original),
    )
