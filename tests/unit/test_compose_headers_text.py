"""The $EDITOR text form of a draft: rendering, parsing back, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui_mail.compose.build import Attachment, Draft, parse_address_list
from tui_mail.compose.headers_text import DraftError, parse_draft, render_draft


def addrs(text: str) -> tuple:
    return tuple(parse_address_list(text))


def test_round_trip(tmp_path: Path) -> None:
    file = tmp_path / "menu.pdf"
    file.write_bytes(b"%PDF-1.4")
    forwarded = Attachment("orig.eml", b"From: x@y\r\n\r\nhi\r\n", "message/rfc822")
    draft = Draft(
        from_=addrs("Alïce <alice@example.com>")[0],
        to=addrs('"Doe, Jane" <jane@example.net>, bob@example.net'),
        cc=addrs("Zoë <zoe@example.net>"),
        subject="Grüße",
        body="Hello\n\nText with\nFrom: not a header\n",
        attachments=(forwarded,),
        attach_paths=(file,),
        in_reply_to="<p@example.net>",
        references=("<r@example.net>", "<p@example.net>"),
    )
    text = render_draft(draft)
    assert text.splitlines()[:7] == [
        "From: Alïce <alice@example.com>",
        'To: "Doe, Jane" <jane@example.net>, bob@example.net',
        "Cc: Zoë <zoe@example.net>",
        "Bcc:",
        "Subject: Grüße",
        f"Attach: {file}",
        "Attach: #1 orig.eml (message/rfc822, 17 B)",
    ]
    back = parse_draft(text, draft)
    assert back == draft


def test_edits_are_read_back(tmp_path: Path) -> None:
    base = Draft(subject="old", in_reply_to="<p@x>", references=("<p@x>",))
    text = (
        "from: Alice <alice@example.com>\n"
        "To: bob@example.net,\n"
        "  carol@example.net\n"
        "To: dave@example.net\n"
        "BCC:   secret@example.net   \n"
        "Subject:  new subject  \n"
        "Reply-To: list@example.org\n"
        "\n"
        "Body line 1\r\n\nTo: still body\n"
    )
    got = parse_draft(text, base)
    assert isinstance(got, Draft), got
    assert [a.addr_spec for a in got.to] == [
        "bob@example.net",
        "carol@example.net",
        "dave@example.net",
    ]
    assert [a.addr_spec for a in got.bcc] == ["secret@example.net"]
    assert [a.addr_spec for a in got.reply_to] == ["list@example.org"]
    assert got.subject == "new subject"
    assert got.body == "Body line 1\n\nTo: still body\n"
    assert got.in_reply_to == "<p@x>" and got.references == ("<p@x>",)
    assert got.from_ is not None and got.from_.addr_spec == "alice@example.com"


def test_empty_from_keeps_the_identity() -> None:
    base = Draft(from_=addrs("Alice <alice@example.com>")[0])
    got = parse_draft("From:\nTo: b@example.net\n\nhi", base)
    assert isinstance(got, Draft) and got.from_ == base.from_


def test_removing_an_inline_attachment_line_drops_it() -> None:
    base = Draft(attachments=(Attachment("a.eml", b"x"), Attachment("b.txt", b"y")))
    got = parse_draft("To: b@example.net\nAttach: #2 b.txt\n\n", base)
    assert isinstance(got, Draft)
    assert [a.filename for a in got.attachments] == ["b.txt"]


@pytest.mark.parametrize(
    ("text", "line", "header", "part", "words"),
    [
        ("To: bob@example.net, bob@\n\nbody", 1, "To", "bob@", "To: 'bob@' is not a valid"),
        ("To: ok@example.net\nCc: Bob Smith\n\n", 2, "Cc", "Bob Smith", "Cc: 'Bob Smith'"),
        ("To: a@example.net\nCcc: b@example.net\n\n", 2, "Ccc", "", "unknown header 'Ccc'"),
        ("To: a@example.net\nhello there\n", 2, "", "", "not a header line"),
        ("  To: a@example.net\n\n", 1, "", "", "must start with a header"),
        ("Subject: a\nSubject: b\n\n", 2, "Subject", "", "Subject appears more than once"),
        ("From: a@example.net, b@example.net\n\n", 0, "From", "", "single address"),
        ("To: a@example.net\nAttach: #3 gone\n\n", 2, "Attach", "#3 gone", "no attachment #3"),
        ("To: a@example.net\nAttach: /no/such/file.pdf\n\n", 2, "Attach", "", "no such file"),
    ],
)
def test_errors_name_the_line_header_and_part(
    text: str, line: int, header: str, part: str, words: str
) -> None:
    got = parse_draft(text)
    assert isinstance(got, DraftError)
    assert words in got.message
    assert got.line == line
    assert got.header == header
    if part:
        assert got.part == part
    assert str(got) == (f"line {line}: {got.message}" if line else got.message)


def test_attach_a_directory_is_an_error(tmp_path: Path) -> None:
    got = parse_draft(f"To: a@example.net\nAttach: {tmp_path}\n\n")
    assert isinstance(got, DraftError) and "is a directory" in got.message


def test_no_body_separator_means_headers_only() -> None:
    got = parse_draft("To: a@example.net\nSubject: s")
    assert isinstance(got, Draft) and got.body == "" and got.subject == "s"


def test_injection_attempts_in_the_text_stay_in_their_header() -> None:
    # The text is split into lines first, so a typed CR/LF can only ever start a line
    # that is read as a header line itself, where it must pass the same checks.
    got = parse_draft("To: a@example.net\rBcc: evil@example.com\n\n")
    assert isinstance(got, Draft)
    assert [a.addr_spec for a in got.bcc] == ["evil@example.com"]  # visibly the user's own
    got = parse_draft("Subject: x\u2028Bcc: evil@example.com\nTo: a@example.net\n\n")
    assert isinstance(got, Draft)
    assert got.subject == "x Bcc: evil@example.com" and got.bcc == ()
