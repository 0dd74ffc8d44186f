"""Reply, reply-all and forward: recipients, threading headers, quoting, identity,
and header injection carried in from the message being answered."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from msgspec.structs import replace

from tui_mail.compose.build import build_message, envelope, message_bytes, strip_bcc
from tui_mail.compose.reply import (
    forward_attached,
    forward_inline,
    forward_subject,
    new_message,
    parse_original,
    quote,
    reply,
    reply_all,
    reply_subject,
)
from tui_mail.config.schema import AccountConfig, EndpointConfig

ACCOUNT = AccountConfig(
    name="alice",
    email="alice@example.com",
    receive=EndpointConfig(backend="maildir", path=Path("/nonexistent")),
    send=EndpointConfig(backend="local"),
    display_name="Alice Liddell",
    signature="Alice\n",
    aliases=("a.liddell@example.org",),
)
EVIL = "evil@example.com"


def original(headers: str, body: str = "Hello Alice,\n\nhow are you?\n") -> bytes:
    return (headers.strip("\n").replace("\n", "\r\n") + "\r\n\r\n" + body).encode()


BASIC = original(
    """
From: Bob Builder <bob@example.net>
To: Alice <ALICE@example.com>, Carol <carol@example.net>
Cc: dave@example.net, a.liddell@example.org, carol@example.net
Subject: Re: RE: Aw: Plans
Date: Mon, 03 Nov 2025 10:30:00 +0100
Message-ID: <m3@example.net>
In-Reply-To: <m2@example.net>
References: <m1@example.net> <m2@example.net>
"""
)


def specs(addresses) -> list[str]:
    return [a.addr_spec for a in addresses]


def test_reply_goes_to_the_author_with_threading_and_quote() -> None:
    draft = reply(BASIC, ACCOUNT)
    assert specs(draft.to) == ["bob@example.net"]
    assert draft.to[0].display_name == "Bob Builder"
    assert draft.cc == ()
    assert draft.subject == "Re: Plans"
    assert draft.in_reply_to == "<m3@example.net>"
    assert draft.references == ("<m1@example.net>", "<m2@example.net>", "<m3@example.net>")
    assert draft.from_ is not None and draft.from_.addr_spec == "alice@example.com"
    assert draft.from_.display_name == "Alice Liddell"
    assert draft.body == (
        "On 2025-11-03 10:30 +0100, Bob Builder wrote:\n"
        "> Hello Alice,\n>\n> how are you?\n\n\n-- \nAlice\n"
    )
    raw = message_bytes(build_message(draft, ACCOUNT))
    got = message_from_bytes(raw, policy=policy.default)
    assert got["In-Reply-To"] == "<m3@example.net>"
    assert got["References"] == "<m1@example.net> <m2@example.net> <m3@example.net>"


def test_reply_all_removes_own_addresses_aliases_and_duplicates() -> None:
    draft = reply_all(BASIC, ACCOUNT)
    assert specs(draft.to) == ["bob@example.net", "carol@example.net"]
    assert specs(draft.cc) == ["dave@example.net"]
    # Addressed to the main address first: answer from it.
    assert draft.from_ is not None and draft.from_.addr_spec == "alice@example.com"


def test_reply_from_the_alias_the_message_was_sent_to() -> None:
    raw = original("From: bob@example.net\nTo: A.Liddell@Example.org\nSubject: x")
    draft = reply(raw, ACCOUNT)
    assert draft.from_ is not None
    assert draft.from_.addr_spec == "a.liddell@example.org"  # as configured
    assert draft.from_.display_name == "Alice Liddell"


def test_reply_to_is_honoured() -> None:
    raw = original(
        "From: Bob <bob@example.net>\nReply-To: list@example.org\nTo: alice@example.com\n"
        "Cc: carol@example.net\nSubject: x\nMessage-ID: <a@b>"
    )
    assert specs(reply(raw, ACCOUNT).to) == ["list@example.org"]
    everyone = reply_all(raw, ACCOUNT)
    assert specs(everyone.to) == ["list@example.org"]
    assert specs(everyone.cc) == ["carol@example.net"]
    # No References in the original: the new one is just its Message-ID.
    assert everyone.references == ("<a@b>",)


def test_mail_followup_to_is_optional() -> None:
    raw = original(
        "From: bob@example.net\nTo: list@example.org\nCc: carol@example.net\n"
        "Mail-Followup-To: list@example.org, alice@example.com\nSubject: x"
    )
    draft = reply_all(raw, ACCOUNT)
    assert specs(draft.to) == ["list@example.org"] and draft.cc == ()
    draft = reply_all(raw, ACCOUNT, use_followup_to=False)
    assert specs(draft.to) == ["bob@example.net", "list@example.org"]
    assert specs(draft.cc) == ["carol@example.net"]


def test_replying_to_my_own_message_goes_to_its_recipients() -> None:
    raw = original(
        "From: Alice <alice@example.com>\nTo: bob@example.net\nCc: carol@example.net\nSubject: x"
    )
    assert specs(reply(raw, ACCOUNT).to) == ["bob@example.net"]
    draft = reply_all(raw, ACCOUNT)
    assert specs(draft.to) == ["bob@example.net"] and specs(draft.cc) == ["carol@example.net"]
    note = original("From: alice@example.com\nTo: alice@example.com\nSubject: note")
    assert specs(reply_all(note, ACCOUNT).to) == ["alice@example.com"]


def test_only_cc_left_moves_to_to() -> None:
    raw = original("From: alice@example.com\nTo: a.liddell@example.org\nCc: x@example.net")
    draft = reply_all(raw, ACCOUNT)
    assert specs(draft.to) == ["x@example.net"] and draft.cc == ()


def test_references_are_trimmed() -> None:
    refs = " ".join(f"<r{i}@example.net>" for i in range(60))
    raw = original(f"From: b@example.net\nMessage-ID: <last@example.net>\nReferences: {refs}")
    draft = reply(raw, ACCOUNT)
    assert len(draft.references) == 20
    assert draft.references[0] == "<r0@example.net>"
    assert draft.references[-2:] == ("<r59@example.net>", "<last@example.net>")


@pytest.mark.parametrize(
    ("subject", "re", "fwd"),
    [
        ("Plans", "Re: Plans", "Fwd: Plans"),
        ("Re: Plans", "Re: Plans", "Fwd: Re: Plans"),
        ("RE: re: Aw: SV: Plans", "Re: Plans", "Fwd: RE: re: Aw: SV: Plans"),
        ("Re[2]: Plans", "Re: Plans", "Fwd: Re[2]: Plans"),
        ("Fwd: FW: Plans", "Re: Fwd: FW: Plans", "Fwd: Plans"),
        ("", "Re: ", "Fwd: "),
    ],
)
def test_prefixes_do_not_stack(subject: str, re: str, fwd: str) -> None:
    assert reply_subject(subject) == re
    assert forward_subject(subject) == fwd


def test_quote() -> None:
    assert quote("a\n\n> b\n  \nc\n\n\n") == "> a\n>\n> > b\n>\n> c"
    assert quote("") == ""


def test_html_only_original_is_quoted_as_text() -> None:
    msg = EmailMessage()
    msg["From"] = "bob@example.net"
    msg["Subject"] = "html"
    msg.set_content("<p>Hello <b>Alice</b></p><p>Second<br>line</p>", subtype="html")
    draft = reply(msg.as_bytes(), ACCOUNT)
    assert "> Hello Alice\n>\n> Second\n> line" in draft.body
    assert "<p>" not in draft.body


def test_multipart_alternative_prefers_the_plain_part() -> None:
    msg = EmailMessage()
    msg["From"] = "bob@example.net"
    msg.set_content("plain text ü")
    msg.add_alternative("<p>html text</p>", subtype="html")
    msg.add_attachment(b"\x00\x01", maintype="application", subtype="octet-stream", filename="b")
    got = parse_original(msg.as_bytes())
    assert got.text == "plain text ü\n"
    assert [(a.filename, a.data) for a in got.attachments] == [("b", b"\x00\x01")]


def test_new_message_has_identity_and_signature() -> None:
    draft = new_message(ACCOUNT, subject="hi\r\nBcc: x@y")
    assert draft.subject == "hi Bcc: x@y"
    assert draft.body == "\n\n-- \nAlice\n"
    assert str(draft.from_) == "Alice Liddell <alice@example.com>"
    plain = AccountConfig(
        name="p", email="p@example.com", receive=ACCOUNT.receive, send=ACCOUNT.send
    )
    assert new_message(plain).body == ""


# --------------------------------------------------------------------------- forwarding


def test_forward_inline_has_header_block_text_and_attachments() -> None:
    msg = EmailMessage()
    msg["From"] = "Bob <bob@example.net>"
    msg["To"] = "alice@example.com"
    msg["Subject"] = "Report"
    msg["Date"] = "Mon, 03 Nov 2025 10:30:00 +0000"
    msg["Message-ID"] = "<rep@example.net>"
    msg.set_content("numbers inside\n")
    msg.add_attachment(b"%PDF-1.4 data", maintype="application", subtype="pdf", filename="r.pdf")
    draft = forward_inline(msg.as_bytes(), ACCOUNT)
    assert draft.subject == "Fwd: Report"
    assert draft.to == ()
    assert draft.body == (
        "\n\n-------- Forwarded message --------\nSubject: Report\n"
        "Date: 2025-11-03 10:30 +0000\nFrom: Bob <bob@example.net>\n"
        "To: alice@example.com\n\nnumbers inside\n\n-- \nAlice\n"
    )
    assert [(a.filename, a.data) for a in draft.attachments] == [("r.pdf", b"%PDF-1.4 data")]
    assert draft.in_reply_to == "" and draft.references == ("<rep@example.net>",)


def test_forward_as_attachment_carries_the_original_byte_identical() -> None:
    raw = (
        b"From: Bob <bob@example.net>\r\nTo: alice@example.com\r\nSubject: caf\xc3\xa9 8bit\r\n"
        b"Message-ID: <orig@example.net>\r\nX-Folded: a\r\n\tb\r\n\r\n"
        b"body \xc3\xa9\r\n--not-a-boundary\r\n.\r\n"
    )
    draft = forward_attached(raw, ACCOUNT)
    draft = replace(draft, to=reply(raw, ACCOUNT).to)
    out = message_bytes(build_message(draft, ACCOUNT))
    got = message_from_bytes(out, policy=policy.default)
    (part,) = list(got.iter_attachments())
    assert part.get_content_type() == "message/rfc822"
    assert part.get_filename() == "café 8bit.eml"
    assert part["Content-Transfer-Encoding"] == "8bit"
    assert raw in out  # byte for byte, folded header and 8-bit body included
    start = out.index(raw)
    assert out[start + len(raw) : start + len(raw) + 4] == b"\r\n--"


def test_forward_as_attachment_of_an_lf_message_uses_crlf() -> None:
    raw = b"From: bob@example.net\nSubject: lf\n\nbody\n"
    draft = forward_attached(raw, ACCOUNT)
    out = message_bytes(build_message(draft, ACCOUNT, require_recipients=False))
    assert raw.replace(b"\n", b"\r\n") in out


# --------------------------------------------------------------------------- injection


HOSTILE = original(
    f"""
From: =?utf-8?q?Eve=0D=0ABcc:_{EVIL}?= <eve@example.net>
To: alice@example.com, =?utf-8?q?x=0D=0ABcc:_{EVIL}?= <carol@example.net>
Cc: "Mallory\r\n Bcc: {EVIL}" <mallory@example.net>
Subject: =?utf-8?q?hi=0D=0ABcc:_{EVIL}?=
Message-ID: <h1@example.net>
References: <h0@example.net>
 =?utf-8?q?=0D=0ABcc:_{EVIL}?= <x@y>
""",
    f"Bcc: {EVIL}\n",
)


@pytest.mark.parametrize("make", [reply, reply_all, forward_inline, forward_attached])
def test_hostile_original_adds_no_header_and_no_recipient(make) -> None:
    draft = make(HOSTILE, ACCOUNT)
    if not draft.to:
        draft = replace(draft, to=reply(HOSTILE, ACCOUNT).to)
    raw = message_bytes(build_message(draft, ACCOUNT))
    head = raw.split(b"\r\n\r\n", 1)[0]
    field_names = [
        line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line[:1] not in b" \t"
    ]
    assert b"bcc" not in field_names
    assert len(field_names) == len(set(field_names))
    assert not re.search(rb"(?im)^bcc:", head)
    _, rcpts = envelope(raw, ACCOUNT.email, [ACCOUNT.email])
    assert EVIL not in rcpts
    assert set(rcpts) <= {"eve@example.net", "carol@example.net", "mallory@example.net"}
    assert strip_bcc(raw) == raw
    got = message_from_bytes(raw, policy=policy.default)
    assert "\n" not in str(got["Subject"]) and "\r" not in str(got["Subject"])
    assert got["Subject"].endswith(f"hi Bcc: {EVIL}")


def test_hostile_original_parsed_safely() -> None:
    got = parse_original(HOSTILE)
    assert got.subject == f"hi Bcc: {EVIL}"
    assert [(a.display_name, a.addr_spec) for a in got.from_] == [
        (f"Eve Bcc: {EVIL}", "eve@example.net")
    ]
    assert got.references == ("<h0@example.net>", "<x@y>")
    assert specs(reply_all(HOSTILE, ACCOUNT).to) == ["eve@example.net", "carol@example.net"]
    assert specs(reply_all(HOSTILE, ACCOUNT).cc) == ["mallory@example.net"]


def test_garbage_original_does_not_raise() -> None:
    for raw in (b"", b"\r\n\r\n", b"no headers at all", b"From: <<<>>>\r\nTo: ,,,@\r\n\r\n\xff"):
        draft = reply_all(raw, ACCOUNT)
        assert draft.subject.startswith("Re: ")
