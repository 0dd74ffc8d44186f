"""Building outgoing messages with the standard library's `email` package.

Everything that ends up in a header goes through these gates:

* `one_line()` replaces CR, LF and every other control or line-separator character
  with a space, so a value typed by the user or copied from a replied-to message
  (including one hidden in an RFC 2047 encoded word that decodes to CR/LF) can never
  start a new header line;
* addresses are parsed with the RFC 5322 parser behind `email.headerregistry`
  (`parse_address_list`): an item that is not exactly one valid mailbox is refused with
  an error naming the header and the bad part, and display names are made one line
  before they are put back. `email.utils.getaddresses` is deliberately not used on raw
  header text: before Python 3.11.10 it reads
  `=?utf-8?q?x=0D=0ABcc:_evil@example.com?= <bob@x>` as a group with a second
  recipient `_evil@example.com?=`.

* `header_text()` also decodes RFC 2047 encoded words until none is left. The header
  registry decodes encoded words in the text it is given and, before Python 3.11.10
  (CVE-2024-6923), writes the decoded text back unquoted when it folds: a subject
  `=?utf-8?q?x=0D=0ABcc:_evil@example.com?=` (typed, or double-encoded in a replied-to
  message so that one decoding still leaves an encoded word) became a real Bcc header.
  `message_bytes()` then checks the header block it wrote (`HeaderBlockError`), so
  anything that still slips through stops the message instead of sending it.

The same helpers give the outbox its envelope (`envelope()`) and strip Bcc at the byte
level (`strip_bcc()`), leaving every other byte of the message as it was.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterable, Sequence
from datetime import datetime

# `_header_value_parser` is the parser `email.headerregistry.AddressHeader` uses. Called
# directly because the public header classes build `Address` objects eagerly and raise
# ValueError on a display name that decodes to CR/LF, where we neutralise the name.
from email import _header_value_parser as _rfc5322
from email import errors, policy
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, make_msgid
from io import BytesIO
from pathlib import Path

from msgspec import Struct, field

from tui_mail.config.schema import AccountConfig
from tui_mail.core.errors import MailError
from tui_mail.core.sanitize import safe_filename

__all__ = [
    "AddressError",
    "Attachment",
    "ComposeError",
    "Draft",
    "HeaderBlockError",
    "build_message",
    "envelope",
    "header_text",
    "message_bytes",
    "one_line",
    "parse_address_list",
    "signature_block",
    "sniff_type",
    "strip_bcc",
]

# Control characters, DEL, NEL and the Unicode line/paragraph separators: anything a
# parser (ours, a server's, a terminal's) might take as the end of a line.
_LINE_BREAKING = re.compile("\r\n|[\x00-\x1f\x7f\x85\u2028\u2029]")
# Characters that make an addr-spec unusable as an SMTP envelope address (the SMTP
# backend refuses the same set): refuse them while the user can still fix the draft.
_BAD_IN_ADDR_SPEC = frozenset('<>(),;\\"')
# Obsolete syntax ("J. Doe <j@x>"), controls in a display name (made one line below)
# and a non-ASCII local part (sent with SMTPUTF8) do not make an address unusable.
_TOLERATED_DEFECTS = (
    errors.ObsoleteHeaderDefect,
    errors.NonPrintableDefect,
    errors.NonASCIILocalPartDefect,
)
_MSGID = re.compile(r"<[!-;=?-~]{1,250}>")  # printable ASCII without < and >
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")
MAX_REFERENCES = 20


class ComposeError(MailError):
    """The message cannot be built as it stands (bad address, unreadable attachment)."""


class AddressError(ComposeError):
    """One item of an address header is not a valid address."""

    def __init__(self, header: str, part: str, reason: str) -> None:
        self.header = header
        self.part = part
        self.reason = reason
        super().__init__(f"{header}: {part!r} is not a valid address ({reason})")


class HeaderBlockError(ComposeError):
    """The generated header block is not the one that was built (an injected line)."""


# --------------------------------------------------------------------------- text


def one_line(value: str) -> str:
    """`value` as one header-safe line: every line break or control becomes a space."""
    return _LINE_BREAKING.sub(" ", value).strip()


_DECODE_ROUNDS = 8


def header_text(value: str) -> str:
    """`value` as header text: one line, RFC 2047 encoded words decoded until none is
    left (see the module docstring), so the header registry has nothing to decode."""
    text = one_line(value)
    for _ in range(_DECODE_ROUNDS):
        if "=?" not in text:
            return text
        try:
            decoded = one_line(str(policy.SMTP.header_factory("X-Text", text)))
        except Exception:  # the registry's parser on garbage: keep the text, defused below
            break
        if decoded == text:
            return text
        text = decoded
    # Nested deeper than any real mail, or unparseable: break the "=?" so it stays text.
    return text.replace("=?", "= ?")


def _safe_display(address: Address) -> Address:
    name = header_text(address.display_name)
    if name == address.display_name:
        return address
    return Address(name, addr_spec=address.addr_spec)


# Characters that make a display name need quotes (RFC 5322 specials).
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]+')


def _set_addresses(msg: EmailMessage, name: str, addresses: Sequence[Address]) -> None:
    """Set an address header whose folded form still names exactly `addresses`.

    Python 3.11's folder drops the quotes of a display name when it refolds a long
    header: `"evil@evil.test, yyy…" <bob@x>` is written as `evil@evil.test, yyy… <bob@x>`,
    one recipient more. When that happens the display names go out without specials.
    """
    msg[name] = addresses
    if _addr_specs(_folded_value(msg, name), name) == [a.addr_spec for a in addresses]:
        return
    del msg[name]
    msg[name] = [
        Address(" ".join(_SPECIALS.sub(" ", a.display_name).split()), addr_spec=a.addr_spec)
        for a in addresses
    ]


def _folded_value(msg: EmailMessage, name: str) -> str:
    try:
        return msg.policy.fold(name, msg[name]).partition(":")[2]
    except Exception:  # the folder on something it cannot write: the gate decides later
        return ""


def _addr_specs(value: str, name: str) -> list[str]:
    return [a.addr_spec for a in parse_address_list(value, name, strict=False)]


def signature_block(account: AccountConfig) -> str:
    """The standard "-- " separator line and the account's signature, or ""."""
    signature = account.signature.replace("\r\n", "\n").strip("\n")
    return f"-- \n{signature}\n" if signature.strip() else ""


# --------------------------------------------------------------------------- addresses


def _split_items(value: str) -> list[str]:
    """Split an address list at top-level commas (not inside quotes, comments, <> or a
    group), so an error can name the one bad item."""
    items: list[str] = []
    start = depth_comment = 0
    quoted = angle = group = escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or depth_comment):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif depth_comment:
            depth_comment += {"(": 1, ")": -1}.get(ch, 0)
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth_comment = 1
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == ":" and not angle:
            group = True
        elif ch == ";" and not angle:
            group = False
        elif ch == "," and not angle and not group:
            items.append(value[start:i])
            start = i + 1
    items.append(value[start:])
    return [item.strip() for item in items if item.strip()]


def _mailbox_problem(mailbox: object) -> str | None:
    """Why a parsed mailbox token is not a usable address, or None."""
    local = getattr(mailbox, "local_part", None)
    domain = getattr(mailbox, "domain", None)
    if getattr(mailbox, "token_type", "") == "invalid-mailbox":
        if local and not domain:
            return "missing @domain"
        return "not an address"
    if not local:
        return "missing the part before @"
    if not domain:
        return "missing @domain"
    for defect in getattr(mailbox, "all_defects", ()):
        if isinstance(defect, _TOLERATED_DEFECTS):
            continue
        return str(defect)
    addr_spec = str(getattr(mailbox, "addr_spec", ""))
    if any(c in _BAD_IN_ADDR_SPEC or c.isspace() or ord(c) < 32 for c in addr_spec):
        return "quotes, spaces or brackets in the address itself are not supported"
    if ".." in addr_spec or domain.startswith(".") or domain.endswith("."):
        return "misplaced dot"
    return None


def parse_address_list(value: str, header: str = "To", *, strict: bool = True) -> list[Address]:
    """The mailboxes of one address header value, each checked.

    `strict`: raise `AddressError` naming the first bad item (for what the user typed or
    is sending). Otherwise bad items are skipped (for a message being replied to).
    Group syntax ("undisclosed-recipients:;") is accepted and yields its members.
    Display names come back as one line; duplicates are kept (callers decide).
    """
    # Unfold first (CRLF + WSP is a fold, not a break); any other CR/LF is hostile.
    value = re.sub(r"\r?\n(?=[ \t])", "", value)
    value = re.sub(r"\r\n|[\r\n]", " ", value)
    found: list[Address] = []
    for item in _split_items(value):
        try:
            parsed, rest = _rfc5322.get_address_list(item)
            problem = "unexpected text after the address" if rest.strip() else None
            mailboxes = [mb for addr in parsed.addresses for mb in addr.all_mailboxes]
            if problem is None and not mailboxes and ":" not in item:
                problem = "not an address"
        except Exception:  # the stdlib parser raises IndexError etc. on some garbage
            problem, mailboxes = "not an address", []
        addresses: list[Address] = []
        for mailbox in mailboxes if problem is None else ():
            problem = _mailbox_problem(mailbox)
            if problem:
                break
            try:
                addresses.append(
                    Address(header_text(mailbox.display_name or ""), addr_spec=mailbox.addr_spec)
                )
            except (ValueError, IndexError) as exc:
                problem = str(exc) or "not an address"
                break
        if problem is None:
            found.extend(addresses)
        elif strict:
            raise AddressError(header, one_line(item), problem)
    return found


def _format_addresses(addresses: Iterable[Address]) -> str:
    return ", ".join(str(a) for a in addresses)


# --------------------------------------------------------------------------- attachments

# (offset, magic, type). Content is trusted over the name: "photo.txt" holding a PNG
# is sent as image/png, so the recipient's client renders it rather than garbles it.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"%PDF-", "application/pdf"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"%!PS", "application/postscript"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\x00\x00\x01\x00", "image/vnd.microsoft.icon"),
    (4, b"ftyp", "video/mp4"),
    (257, b"ustar", "application/x-tar"),
)
# Containers whose name tells the real type better (a .docx is a zip, an .m4a is mp4).
_CONTAINERS = {"application/zip": ("application",), "video/mp4": ("video", "audio")}
_COMPRESSION = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
}


def _magic(data: bytes) -> str | None:
    for offset, magic, kind in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return kind
    if data[:4] == b"RIFF" and data[8:12] in (b"WEBP", b"WAVE"):
        return "image/webp" if data[8:12] == b"WEBP" else "audio/wav"
    return None


def _looks_like_text(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a character cut at the sample's end
            return False
    controls = sum(1 for b in sample if b < 32 and b not in b"\t\n\r\f")
    return controls <= len(sample) // 100


def sniff_type(data: bytes, filename: str) -> str:
    """MIME type from the content (magic numbers), then the name, then text/binary."""
    sniffed = _magic(data)
    named, encoding = mimetypes.guess_type(filename, strict=False)
    if encoding in _COMPRESSION:
        named = _COMPRESSION[encoding]
    if named == "application/octet-stream":
        named = None  # ".bin" says nothing
    if sniffed in _CONTAINERS and named and named.split("/")[0] in _CONTAINERS[sniffed]:
        return named
    if sniffed:
        return sniffed
    if named:
        if named.startswith("text/") and not _looks_like_text(data):
            return "application/octet-stream"
        return named
    return "text/plain" if _looks_like_text(data) else "application/octet-stream"


class Attachment(Struct, frozen=True):
    """One attached file. `content_type` "" means: sniff it from the data and name."""

    filename: str
    data: bytes
    content_type: str = ""

    @classmethod
    def from_path(cls, path: str | Path) -> Attachment:
        p = Path(path).expanduser()
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ComposeError(f"cannot attach {p}: {exc.strerror or exc}") from None
        return cls(p.name, data)

    @property
    def mime_type(self) -> str:
        if self.content_type and _CONTENT_TYPE.match(self.content_type):
            return self.content_type.lower()
        return sniff_type(self.data, self.filename)


# --------------------------------------------------------------------------- drafts


class Draft(Struct, frozen=True):
    """A message being composed, before it becomes bytes.

    `from_` None means the account's identity. `attachments` are held in memory
    (a forwarded message, a resumed draft's files); `attach_paths` are read when the
    message is built, so the file's content at send time is what goes out.
    """

    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    subject: str = ""
    body: str = ""
    from_: Address | None = None
    reply_to: tuple[Address, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    attach_paths: tuple[Path, ...] = ()
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    extra: tuple[tuple[str, str], ...] = field(default=())  # e.g. Mail-Followup-To

    @property
    def recipients(self) -> tuple[Address, ...]:
        return (*self.to, *self.cc, *self.bcc)


def identity(account: AccountConfig, addr_spec: str | None = None) -> Address:
    """The account's From: display name and address (or one of its aliases)."""
    return Address(one_line(account.display_name), addr_spec=addr_spec or account.email)


def message_ids(value: str) -> list[str]:
    """The <msg-id>s in a header value; anything else (CR/LF included) is dropped, and so
    is an id holding "=?": the header registry would decode it as an encoded word."""
    return [i for i in _MSGID.findall(value) if "=?" not in i]


def trim_references(refs: Sequence[str], limit: int = MAX_REFERENCES) -> tuple[str, ...]:
    """Keep the thread root and the most recent parents (RFC 5322 3.6.4 allows this):
    threading needs both ends, and a 50-deep chain makes a header servers truncate."""
    unique = list(dict.fromkeys(refs))
    if len(unique) <= limit:
        return tuple(unique)
    return (unique[0], *unique[-(limit - 1) :])


def _domain(account: AccountConfig) -> str:
    domain = account.email.rpartition("@")[2] or "localhost"
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "localhost"


def build_message(
    draft: Draft,
    account: AccountConfig,
    *,
    now: datetime | None = None,
    message_id: str | None = None,
    require_recipients: bool = True,
) -> EmailMessage:
    """The message for `draft`, with Date, Message-ID and (if any) Bcc set.

    Bcc stays in the built message: the outbox strips it before transmission and takes
    the envelope recipients from To, Cc and Bcc, like `sendmail -t`.
    """
    if require_recipients and not draft.recipients:
        raise ComposeError("the message has no recipients (To, Cc or Bcc)")
    sender = _safe_display(draft.from_ or identity(account))
    to, cc, bcc, reply_to = (
        tuple(_safe_display(a) for a in addresses)
        for addresses in (draft.to, draft.cc, draft.bcc, draft.reply_to)
    )
    everyone = (sender, *to, *cc, *bcc, *reply_to)
    # Headers are written in RFC 2047 unless an address itself is not ASCII, which
    # only SMTPUTF8 can carry (the SMTP backend asks the server for it).
    pol = policy.SMTP if all(a.addr_spec.isascii() for a in everyone) else policy.SMTPUTF8
    msg = EmailMessage(policy=pol)
    when = now or datetime.now().astimezone()
    msg["Date"] = format_datetime(when if when.tzinfo else when.astimezone())
    _set_addresses(msg, "From", (sender,))
    for name, addresses in (("To", to), ("Cc", cc), ("Bcc", bcc), ("Reply-To", reply_to)):
        if addresses:
            _set_addresses(msg, name, addresses)
    msg["Subject"] = header_text(draft.subject)
    msg["Message-ID"] = message_id or make_msgid(domain=_domain(account))
    parent = message_ids(draft.in_reply_to)
    if parent:
        msg["In-Reply-To"] = parent[0]
    refs = trim_references([r for ref in draft.references for r in message_ids(ref)])
    if refs:
        msg["References"] = " ".join(refs)
    for name, value in draft.extra:
        msg[one_line(name)] = header_text(value)

    body = draft.body.replace("\r\n", "\n").replace("\r", "\n")
    msg.set_content(body, subtype="plain", charset="utf-8")
    files = [*draft.attachments, *(Attachment.from_path(p) for p in draft.attach_paths)]
    for attachment in files:
        _attach(msg, attachment)
    return msg


def _attach(msg: EmailMessage, attachment: Attachment) -> None:
    filename = safe_filename(one_line(attachment.filename))
    kind = attachment.mime_type
    if kind == "message/rfc822":
        _attach_message(msg, attachment.data, filename)
        return
    maintype, _, subtype = kind.partition("/")
    # A MIMEPart rather than msg.add_attachment(), which gives each part a stray
    # MIME-Version header. Bytes always go base64: the attachment arrives byte for byte,
    # text included (no charset guessing, no line-ending conversion on the way).
    part = MIMEPart(policy=msg.policy)
    part.set_content(
        attachment.data,
        maintype=maintype,
        subtype=subtype,
        disposition="attachment",
        filename=filename,
    )
    _mixed(msg).attach(part)


def _mixed(msg: EmailMessage) -> EmailMessage:
    if msg.get_content_type() != "multipart/mixed":
        msg.make_mixed()
    return msg


def _attach_message(msg: EmailMessage, raw: bytes, filename: str) -> None:
    """A message/rfc822 part whose payload is `raw` itself (in CRLF wire form).

    Re-serialising a parsed copy would refold its headers; forwarding as attachment
    must carry the original byte for byte. RFC 2046 forbids base64 here, so 8-bit
    content goes as 8bit (the SMTP backend asks for 8BITMIME).
    """
    part = MIMEPart(policy=msg.policy)
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = "attachment"
    part.set_param("filename", filename, header="Content-Disposition")
    part["Content-Transfer-Encoding"] = "7bit" if raw.isascii() else "8bit"
    wire = re.sub(rb"\r?\n", b"\r\n", raw)
    if not wire.endswith(b"\r\n"):
        wire += b"\r\n"
    # The generator writes a str payload of a message/* part as it is; surrogateescape
    # lets BytesGenerator turn it back into the original bytes.
    part.set_payload(wire.decode("ascii", "surrogateescape"))
    _mixed(msg).attach(part)


class _Generator(BytesGenerator):
    """BytesGenerator that writes a message/rfc822 part's undecodable bytes back as they
    were (the stock one encodes that payload as strict ASCII and fails on 8-bit mail)."""

    def _encode(self, s: str) -> bytes:
        return s.encode("ascii", "surrogateescape")


def message_bytes(msg: EmailMessage) -> bytes:
    """The message as bytes with CRLF line endings (the wire form).

    Use this rather than `msg.as_bytes()`: only this writes a forwarded 8-bit message
    byte for byte.
    """
    out = BytesIO()
    _Generator(out, policy=msg.policy.clone(linesep="\r\n")).flatten(msg)
    data = out.getvalue()
    _check_header_block(data, msg)
    return data


def _check_header_block(data: bytes, msg: EmailMessage) -> None:
    """Refuse bytes whose top-level header block is not exactly the headers set on `msg`:
    the last gate against a value the generator wrote as more than one header (the
    stdlib verifies this itself only from Python 3.11.10 on)."""
    end = data.find(b"\r\n\r\n")
    head = data[:end] if end >= 0 else data
    written: list[str] = []
    for line in head.split(b"\r\n"):
        if b"\r" in line or b"\n" in line or b"\x00" in line:
            raise HeaderBlockError("a header value contains a line break; not built")
        if line[:1] in (b" ", b"\t") and written:
            continue
        name, colon, _ = line.partition(b":")
        if not colon:
            raise HeaderBlockError("a header value would break the header block; not built")
        written.append(name.decode("ascii", "replace").strip().lower())
    if sorted(written) != sorted(k.lower() for k in msg.keys()):
        raise HeaderBlockError("a header value would add a header line; the message was not built")
    # And every address header written names exactly the addresses that were set.
    fields = header_fields(data)
    for name, header in msg.items():
        addresses = getattr(header, "addresses", None)
        if addresses is None:
            continue
        value = next((v for n, v in fields if n.lower() == name.lower()), "")
        if _addr_specs(value, name) != [a.addr_spec for a in addresses]:
            raise HeaderBlockError(f"{name} would be written with other addresses; not built")


# --------------------------------------------------------------------------- raw messages


def _header_end(raw: bytes) -> int:
    """Offset where the header block ends (start of the blank line), or len(raw)."""
    for match in re.finditer(rb"\r?\n", raw):
        nxt = match.end()
        if raw[nxt : nxt + 2] == b"\r\n" or raw[nxt : nxt + 1] == b"\n":
            return nxt
    return len(raw)


def _header_lines(raw: bytes) -> list[bytes]:
    """The header block's lines (with their line endings), folds kept as separate lines."""
    if raw.startswith((b"\r\n", b"\n")):
        return []
    return raw[: _header_end(raw)].splitlines(keepends=True)


def header_fields(raw: bytes) -> list[tuple[str, str]]:
    """(name, unfolded raw value) of every top-level header, in order, undecoded.

    Our own byte-level reader rather than `email.parser`: the outbox must read the same
    header block it strips Bcc from, and nothing here decodes RFC 2047 words.
    """
    fields: list[tuple[str, str]] = []
    for line in _header_lines(raw):
        text = line.decode("utf-8", "surrogateescape").rstrip("\r\n")
        if text[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + text)
        elif ":" in text:
            name, _, value = text.partition(":")
            fields.append((name.strip(), value.strip()))
    return fields


def strip_bcc(raw: bytes) -> bytes:
    """`raw` without its Bcc and Resent-Bcc fields (continuation lines included);
    every other byte unchanged."""
    lines = _header_lines(raw)
    kept: list[bytes] = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower() if b":" in line else b""
        dropping = name in (b"bcc", b"resent-bcc")
        if not dropping:
            kept.append(line)
    return b"".join(kept) + raw[sum(len(x) for x in lines) :]


def envelope(raw: bytes, default_sender: str, own: Iterable[str] = ()) -> tuple[str, list[str]]:
    """(envelope sender, recipients from To, Cc and Bcc) of a complete message.

    Raises `AddressError` for an invalid recipient (nothing is sent to a list we
    misread) and `ComposeError` when there is no recipient. The sender is the From (or
    Sender) address when it is one of `own` (the account's addresses), otherwise
    `default_sender`: submission servers refuse a MAIL FROM the login does not own.
    """
    fields = header_fields(raw)
    recipients: list[str] = []
    for name, value in fields:
        if name.lower() in ("to", "cc", "bcc"):
            for address in parse_address_list(value, name):
                recipients.append(address.addr_spec)
    recipients = list(dict.fromkeys(recipients))
    if not recipients:
        raise ComposeError("the message has no recipients (To, Cc or Bcc)")
    own_lower = {a.lower() for a in own} | {default_sender.lower()}
    sender = default_sender
    for wanted in ("sender", "from"):
        values = [v for n, v in fields if n.lower() == wanted]
        candidates = parse_address_list(values[0], wanted, strict=False) if values else []
        if candidates and candidates[0].addr_spec.lower() in own_lower:
            sender = candidates[0].addr_spec
            break
    return sender, recipients


def add_missing_headers(raw: bytes, account: AccountConfig, now: datetime | None = None) -> bytes:
    """Prepend From, Date and Message-ID when a message handed to `tui-mail send` lacks
    them (as sendmail does), so the copy that goes out is complete."""
    names = {name.lower() for name, _ in header_fields(raw)}
    newline = b"\r\n" if b"\r\n" in raw[: _header_end(raw) + 2] else b"\n"
    extra = EmailMessage(policy=policy.SMTP)
    if "from" not in names:
        extra["From"] = identity(account)
    if "date" not in names:
        extra["Date"] = format_datetime(now or datetime.now().astimezone())
    if "message-id" not in names:
        extra["Message-ID"] = make_msgid(domain=_domain(account))
    if not len(extra):
        return raw
    head = extra.as_bytes(policy=policy.SMTP.clone(linesep="\n")).split(b"\n\n", 1)[0]
    return head.replace(b"\n", newline) + newline + raw
