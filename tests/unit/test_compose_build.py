"""Building messages: encodings, attachments, Date/Message-ID, addresses, header injection."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from tui_mail.compose.build import (
    AddressError,
    Attachment,
    ComposeError,
    Draft,
    add_missing_headers,
    build_message,
    envelope,
    header_fields,
    message_bytes,
    one_line,
    parse_address_list,
    sniff_type,
    strip_bcc,
    trim_references,
)
from tui_mail.config.schema import AccountConfig, EndpointConfig

ACCOUNT = AccountConfig(
    name="alice",
    email="alice@example.com",
    receive=EndpointConfig(backend="maildir", path=Path("/nonexistent")),
    send=EndpointConfig(backend="local"),
    display_name="Alïce Ünicode",
    signature="Alice\nExample Corp",
    aliases=("a.l@example.org",),
)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
EVIL = "evil@example.com"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def addrs(text: str) -> tuple:
    return tuple(parse_address_list(text))


def headers_of(raw: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return re.split(rb"\r\n(?![ \t])", head)


def build(draft: Draft, **kw) -> bytes:
    return message_bytes(build_message(draft, ACCOUNT, **kw))


def test_non_ascii_round_trip() -> None:
    subject = "Grüße aus Köln – ✓ 日本語 " + "lang " * 20
    draft = Draft(
        to=addrs('Bøb Ñandú <bob@example.net>, "Doe, Jane" <jane@example.net>'),
        cc=addrs("Zoë <zoe@example.net>"),
        subject=subject,
        body="Hallo Bob,\n\nΩμέγα, naïve café.\n.a line starting with a dot\n",
    )
    raw = build(draft)
    assert raw.isascii() or b"Content-Transfer-Encoding: 8bit" in raw
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii(), "non-ASCII headers must be RFC 2047 encoded"
    assert b"=?utf-8?" in head
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))  # RFC 5322 hard limit
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    got = message_from_bytes(raw, policy=policy.default)
    assert got["Subject"] == subject.strip()
    assert [a.display_name for a in got["To"].addresses] == ["Bøb Ñandú", "Doe, Jane"]
    assert got["Cc"].addresses[0].display_name == "Zoë"
    assert got["From"].addresses[0].display_name == "Alïce Ünicode"
    assert got["From"].addresses[0].addr_spec == "alice@example.com"
    assert got.get_content_type() == "text/plain"
    assert got.get_content_charset() == "utf-8"
    assert got.get_content().replace("\r\n", "\n") == draft.body


def test_date_and_message_id() -> None:
    when = datetime(2025, 11, 3, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    raw = build(Draft(to=addrs("bob@example.net")), now=when)
    got = message_from_bytes(raw, policy=policy.default)
    assert got["Date"] == "Mon, 03 Nov 2025 10:30:00 +0100"
    assert parsedate_to_datetime(str(got["Date"])) == when
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", str(got["Message-ID"]))
    other = message_from_bytes(build(Draft(to=addrs("bob@example.net"))), policy=policy.default)
    assert other["Message-ID"] != got["Message-ID"]
    # Default: now, in the local time zone (an offset, never "-0000").
    date = parsedate_to_datetime(str(other["Date"]))
    assert date.tzinfo is not None
    assert abs((date - datetime.now(UTC)).total_seconds()) < 60


def test_attachments_binary_and_text_arrive_byte_identical(tmp_path: Path) -> None:
    binary = bytes(range(256)) * 33
    text = "Zeile 1\r\nzeile 2 ünï\n\tno final newline".encode()
    pdf = tmp_path / "report"
    pdf.write_bytes(b"%PDF-1.7\n" + binary)
    draft = Draft(
        to=addrs("bob@example.net"),
        body="see attached\n",
        attachments=(
            Attachment("blob.bin", binary),
            Attachment("notes ü.txt", text),
            Attachment("photo.txt", PNG),  # content wins over the name
        ),
        attach_paths=(pdf,),
    )
    got = message_from_bytes(build(draft), policy=policy.default)
    assert got.get_content_type() == "multipart/mixed"
    assert got.get_body(("plain",)).get_content().replace("\r\n", "\n") == "see attached\n"
    parts = list(got.iter_attachments())
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [
        ("blob.bin", "application/octet-stream"),
        ("notes ü.txt", "text/plain"),
        ("photo.txt", "image/png"),
        ("report", "application/pdf"),
    ]
    contents = [p.get_payload(decode=True) for p in parts]
    assert contents == [binary, text, PNG, pdf.read_bytes()]
    assert all("MIME-Version" not in p for p in parts)


def test_missing_attachment_is_a_clear_error(tmp_path: Path) -> None:
    draft = Draft(to=addrs("bob@example.net"), attach_paths=(tmp_path / "nope.pdf",))
    with pytest.raises(ComposeError, match=r"cannot attach .*nope\.pdf"):
        build(draft)


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"%PDF-1.4", "x", "application/pdf"),
        (PNG, "x.jpg", "image/png"),
        (b"\xff\xd8\xff\xe0", "x", "image/jpeg"),
        (b"GIF89a...", "x", "image/gif"),
        (b"PK\x03\x04rest", "a.docx", DOCX),
        (b"PK\x03\x04rest", "a.bin", "application/zip"),
        (b"PK\x03\x04rest", "photo.png", "application/zip"),
        (b"\x1f\x8b\x08", "a.tar.gz", "application/gzip"),
        (b"RIFF\0\0\0\0WEBPVP8", "x", "image/webp"),
        (b"hello\n", "x.csv", "text/csv"),
        (b"hello\n", "noname", "text/plain"),
        (b"\x00\x01\x02\x03", "noname", "application/octet-stream"),
        (b"\x00\x01\x02\x03", "binary.txt", "application/octet-stream"),
    ],
)
def test_sniff_type(data: bytes, name: str, expected: str) -> None:
    assert sniff_type(data, name) == expected


def test_no_recipients_is_refused_unless_a_draft() -> None:
    with pytest.raises(ComposeError, match="no recipients"):
        build(Draft(subject="x"))
    assert b"Subject: x" in build(Draft(subject="x"), require_recipients=False)


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("text", "part", "reason"),
    [
        ("bob", "bob", "missing @domain"),
        ("bob@", "bob@", "not an address"),
        ("good@example.com, bad@", "bad@", "not an address"),
        ("Bob Smith bob@example.com", "Bob Smith bob@example.com", ""),
        ("alice@example.org)<bob@example.org>", "alice@example.org)<bob@example.org>", ""),
        ("a@b c@d", "a@b c@d", ""),
        ('"a b"@example.com', '"a b"@example.com', "quotes, spaces"),
        ("x <>", "x <>", ""),
    ],
)
def test_invalid_addresses_name_the_bad_part(text: str, part: str, reason: str) -> None:
    with pytest.raises(AddressError) as err:
        parse_address_list(text, "Cc")
    assert err.value.header == "Cc"
    assert err.value.part == part
    assert reason in err.value.reason
    assert str(err.value).startswith(f"Cc: {part!r} is not a valid address")


def test_valid_address_forms() -> None:
    got = parse_address_list(
        '"Doe, Jane" <jane@example.com>, J. Doe <j@example.com>, bob@example.com (Bob),'
        " undisclosed-recipients:;, team: x@example.com, y@example.com;, <z@example.com>"
    )
    assert [(a.display_name, a.addr_spec) for a in got] == [
        ("Doe, Jane", "jane@example.com"),
        ("J. Doe", "j@example.com"),
        ("", "bob@example.com"),
        ("", "x@example.com"),
        ("", "y@example.com"),
        ("", "z@example.com"),
    ]


def test_lenient_parsing_skips_bad_items() -> None:
    got = parse_address_list("bad@, ok@example.com, worse", strict=False)
    assert [a.addr_spec for a in got] == ["ok@example.com"]


# --------------------------------------------------------------------------- injection


def assert_no_injection(raw: bytes, allowed_rcpts: set[str]) -> None:
    names = [h.split(b":", 1)[0].strip().lower() for h in headers_of(raw)]
    assert b"bcc" not in names or names.count(b"bcc") == 1
    assert names.count(b"to") <= 1 and names.count(b"cc") <= 1
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        assert not line.lower().startswith(b"bcc: evil"), line
    _, rcpts = envelope(raw, ACCOUNT.email, [ACCOUNT.email])
    assert set(rcpts) == allowed_rcpts
    assert EVIL not in rcpts


@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\u2028", "\x85", "\x0b"])
def test_cr_lf_typed_in_subject_does_not_make_a_header(breaker: str) -> None:
    draft = Draft(to=addrs("bob@example.net"), subject=f"hello{breaker}Bcc: {EVIL}", body="x\n")
    raw = build(draft)
    assert_no_injection(raw, {"bob@example.net"})
    got = message_from_bytes(raw, policy=policy.default)
    assert got["Subject"] == f"hello Bcc: {EVIL}"
    assert "Bcc" not in got


def test_cr_lf_in_a_display_name_or_extra_header_is_neutralised() -> None:
    to = addrs(f"=?utf-8?q?Bob=0D=0ABcc:_{EVIL}?= <bob@example.net>")
    assert to[0].display_name == f"Bob Bcc: {EVIL}"
    draft = Draft(to=to, extra=(("X-Note", f"a\r\nBcc: {EVIL}"),))
    assert_no_injection(build(draft), {"bob@example.net"})


def test_cr_lf_in_a_typed_address_is_refused() -> None:
    # Made one line, the rest is not a second header; and since the item is not one
    # valid address either, it is refused rather than guessed at.
    with pytest.raises(
        AddressError, match=re.escape("To: 'bob@example.net Bcc: evil@example.com'")
    ):
        parse_address_list(f"bob@example.net\r\nBcc: {EVIL}", "To")
    with pytest.raises(AddressError):
        parse_address_list(f"bob@example.net\nBcc: {EVIL}", "To")


def test_one_line() -> None:
    assert one_line(" a\r\nb\tc\x00d\x1b[31m\u2029 ") == "a b c d [31m"


def test_envelope_is_not_fooled_by_an_encoded_word_group() -> None:
    # email.utils.getaddresses (before 3.11.10) reads this as a group with a member
    # "_evil@example.com?=".
    raw = (
        f"From: alice@example.com\r\nTo: =?utf-8?q?x=0D=0ABcc:_{EVIL}?= <bob@example.net>\r\n"
        "Subject: hi\r\n\r\nbody\r\n"
    ).encode()
    assert envelope(raw, "alice@example.com") == ("alice@example.com", ["bob@example.net"])


def test_envelope_refuses_invalid_recipients_and_picks_the_sender() -> None:
    raw = b"From: Other <other@example.org>\r\nTo: bob@\r\n\r\nx\r\n"
    with pytest.raises(AddressError, match="To: 'bob@'"):
        envelope(raw, "alice@example.com")
    raw = b"From: A <a.l@example.org>\nTo: b@example.net\nCc: b@example.net, c@x.org\n\nx\n"
    assert envelope(raw, "alice@example.com", ["alice@example.com", "a.l@example.org"]) == (
        "a.l@example.org",
        ["b@example.net", "c@x.org"],
    )
    # From is not one of ours: the login's own address goes in MAIL FROM.
    assert envelope(raw, "alice@example.com")[0] == "alice@example.com"
    with pytest.raises(ComposeError, match="no recipients"):
        envelope(b"From: a@example.com\r\nSubject: x\r\n\r\nx\r\n", "a@example.com")


def test_strip_bcc_keeps_every_other_byte() -> None:
    raw = (
        b"From: a@example.com\r\nBcc: x@example.com,\r\n  y@example.com\r\n"
        b"To: b@example.com\r\nresent-bcc : z@example.com\r\nSubject: Bcc: in subject\r\n"
        b"\r\nBcc: in the body stays\r\n"
    )
    assert strip_bcc(raw) == (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Bcc: in subject\r\n"
        b"\r\nBcc: in the body stays\r\n"
    )
    lf = b"To: b@example.com\nBcc: x@example.com\n\nbody\n"
    assert strip_bcc(lf) == b"To: b@example.com\n\nbody\n"


def test_bcc_is_in_the_built_message_and_gone_on_the_wire() -> None:
    raw = build(Draft(to=addrs("bob@example.net"), bcc=addrs("Secret <s@example.org>")))
    assert b"\r\nBcc: Secret <s@example.org>\r\n" in raw
    assert envelope(raw, ACCOUNT.email)[1] == ["bob@example.net", "s@example.org"]
    wire = strip_bcc(raw)
    assert b"s@example.org" not in wire
    assert len(raw) - len(wire) == len(b"Bcc: Secret <s@example.org>\r\n")


def test_references_are_trimmed_keeping_root_and_recent() -> None:
    refs = [f"<r{i}@example.com>" for i in range(50)]
    trimmed = trim_references(refs)
    assert len(trimmed) == 20
    assert trimmed[0] == "<r0@example.com>" and trimmed[-1] == "<r49@example.com>"
    assert trimmed[1] == "<r31@example.com>"
    raw = build(Draft(to=addrs("b@example.net"), references=tuple(refs), in_reply_to=refs[-1]))
    got = message_from_bytes(raw, policy=policy.default)
    assert str(got["In-Reply-To"]) == "<r49@example.com>"
    assert str(got["References"]).split() == list(trimmed)


def test_add_missing_headers_for_sendmail_style_input() -> None:
    raw = b"To: bob@example.net\nSubject: hi\n\nbody\n"
    full = add_missing_headers(raw, ACCOUNT)
    names = [n.lower() for n, _ in header_fields(full)]
    assert names[:3] == ["from", "date", "message-id"]
    assert full.endswith(raw)
    assert b"\r\n" not in full  # keeps the input's line endings
    complete = b"From: x@example.com\nDate: Mon, 03 Nov 2025 10:00:00 +0000\nMessage-ID: <a@b>\n\nx"
    assert add_missing_headers(complete, ACCOUNT) == complete
