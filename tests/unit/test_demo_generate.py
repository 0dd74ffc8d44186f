"""The demo mailbox generator: deterministic, big enough, and carrying every fixture.

Every message is parsed once with ``policy.default``.  The checks then read raw header
values (``raw_items``): a ``policy.default`` header lookup builds a header class each
time, and doing that for every header of 330 messages would take seconds.
"""

from __future__ import annotations

import email
import email.policy
import re
import struct
import zlib
from collections import Counter
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime

import pytest

from tui_mail.demo.generate import (
    DEFAULT_NOW,
    DEMO_EMAIL,
    ESCAPES_MESSAGE_ID,
    FOLDERS,
    HOSTILE_ATTACHMENT_MESSAGE_ID,
    HOSTILE_FILENAME,
    HTML_TRACKER_URL,
    MALFORMED_MESSAGE_ID,
    DemoMessage,
    generate_demo,
)

CHARSETS = {"utf-8", "iso-8859-1", "iso-8859-15", "windows-1252", "koi8-r", "iso-2022-jp", "gb2312"}
RESERVED = re.compile(r"(^|\.)(example\.(com|net|org)|example)$")
ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?[QqBb]\?")
OTHER_CHARSET = re.compile(rb'charset="?(?!utf-8"|us-ascii")[\w-]+')


@dataclass(frozen=True)
class Parsed:
    demo: DemoMessage
    msg: EmailMessage
    headers: dict[str, str]  # lower-cased name -> raw value of its first occurrence

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def decoded(self, name: str) -> str:
        return str(make_header(decode_header(self.header(name))))


@pytest.fixture(scope="module")
def demo() -> list[DemoMessage]:
    return generate_demo()


@pytest.fixture(scope="module")
def parsed(demo: list[DemoMessage]) -> list[Parsed]:
    out = []
    for m in demo:
        msg = email.message_from_bytes(m.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        headers: dict[str, str] = {}
        for name, value in msg.raw_items():
            headers.setdefault(name.lower(), value)
        out.append(Parsed(m, msg, headers))
    return out


@pytest.fixture(scope="module")
def by_id(parsed: list[Parsed]) -> dict[str, Parsed]:
    return {p.header("Message-ID"): p for p in parsed}


def test_same_seed_and_now_give_the_same_bytes(demo: list[DemoMessage]) -> None:
    assert generate_demo(seed=1, now=DEFAULT_NOW) == demo


def test_folder_sizes(demo: list[DemoMessage]) -> None:
    counts = Counter(m.folder for m in demo)
    assert set(counts) == set(FOLDERS)
    assert len(demo) >= 320
    assert counts["INBOX"] >= 110
    assert counts["Archive"] >= 70
    assert 35 <= counts["Sent"] <= 50
    assert counts["Lists/python-dev"] >= 40
    assert counts["Lists/textual-users"] >= 40


def test_every_message_parses(parsed: list[Parsed]) -> None:
    for p in parsed:
        assert b"\r\n" not in p.demo.raw.split(b"\n\n", 1)[0]
        for name in ("From", "To", "Subject", "Message-ID"):
            assert p.header(name), (p.header("Message-ID"), name)
        defects = [d for part in p.msg.walk() for d in part.defects]
        if p.header("Message-ID") == MALFORMED_MESSAGE_ID:
            assert defects
            assert p.msg["Date"] is None
            str(p.msg["Subject"])  # broken encoded-words still decode to something
        else:
            assert not defects, (p.header("Message-ID"), defects)


def test_message_ids_are_unique(parsed: list[Parsed]) -> None:
    ids = Counter(p.header("Message-ID") for p in parsed)
    assert max(ids.values()) == 1


def test_dates_match_headers_and_span_the_last_18_months(parsed: list[Parsed]) -> None:
    dates = [p.demo.date for p in parsed]
    assert all(DEFAULT_NOW - 550 * 86400 <= d <= DEFAULT_NOW for d in dates)
    assert max(dates) - min(dates) > 365 * 86400
    for p in parsed:
        if p.header("Date"):
            assert int(parsedate_to_datetime(p.header("Date")).timestamp()) == p.demo.date


def test_flags(demo: list[DemoMessage]) -> None:
    for m in demo:
        assert set(m.flags) <= set("DFPRST")
        assert m.flags == "".join(sorted(m.flags))
    assert {m.flags for m in demo if m.folder == "Sent"} == {"S"}
    inbox = [m for m in demo if m.folder == "INBOX"]
    assert 0.2 <= sum("S" not in m.flags for m in inbox) / len(inbox) <= 0.3
    assert all("S" in m.flags for m in demo if m.folder == "Archive")
    assert sum("F" in m.flags for m in demo) >= 5
    assert sum("R" in m.flags for m in demo) >= 10
    assert any("P" in m.flags for m in demo)


def test_threads(parsed: list[Parsed], by_id: dict[str, Parsed]) -> None:
    assert max(len(p.header("References").split()) for p in parsed) >= 15
    replies = [p for p in parsed if p.header("In-Reply-To")]
    assert len(replies) >= 150
    spanning = set()
    for p in replies:
        refs = p.header("References").split()
        assert refs[-1] == p.header("In-Reply-To")
        assert p.decoded("Subject").startswith(("Re: ", "Fwd: "))
        parent = by_id[p.header("In-Reply-To")].demo
        assert parent.date < p.demo.date
        if {parent.folder, p.demo.folder} == {"INBOX", "Archive"}:
            spanning.add(refs[0])
    assert len(spanning) >= 2
    quoting = [p for p in replies if b"\n> " in p.demo.raw]  # 7bit and QP bodies
    assert len(quoting) >= 100


def test_the_users_replies_are_in_sent(parsed: list[Parsed]) -> None:
    for p in parsed:
        from_user = getaddresses([p.header("From")])[0][1] == DEMO_EMAIL
        if p.demo.folder == "Sent":
            assert from_user
        elif p.demo.folder in ("INBOX", "Archive"):
            assert not from_user
    assert sum(p.demo.folder == "Sent" and bool(p.header("In-Reply-To")) for p in parsed) >= 25


def test_html_only_and_alternative_messages(parsed: list[Parsed]) -> None:
    html_only = [p for p in parsed if p.header("Content-Type").startswith("text/html")]
    assert len(html_only) >= 2
    for p in html_only:
        html = p.msg.get_content()
        assert "<a href=" in html
        assert f'<img src="{HTML_TRACKER_URL}"' in html
    alternatives = [p for p in parsed if b"multipart/alternative" in p.demo.raw]
    assert len(alternatives) >= 4


def test_attachments(parsed: list[Parsed], by_id: dict[str, Parsed]) -> None:
    candidates = [p.msg for p in parsed if b"filename" in p.demo.raw]
    parts = [a for msg in candidates for a in msg.iter_attachments() if a.get_filename()]
    assert len({id(msg) for msg in candidates if any(msg.iter_attachments())}) >= 10
    types = {a.get_content_type() for a in parts}
    assert {"text/plain", "text/csv", "image/png", "application/pdf"} <= types
    assert any(not str(a.get_filename()).isascii() for a in parts)
    for part in parts:
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        if part.get_content_type() == "image/png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
            width, height = struct.unpack(">II", data[16:24])
            (size,) = struct.unpack(">I", data[33:37])
            assert data[37:41] == b"IDAT"
            assert len(zlib.decompress(data[41 : 41 + size])) == height * (1 + 3 * width)
        if part.get_content_type() == "application/pdf":
            assert data.startswith(b"%PDF-") and data.endswith(b"%%EOF\n")
    hostile = by_id[HOSTILE_ATTACHMENT_MESSAGE_ID].msg
    assert HOSTILE_FILENAME in {a.get_filename() for a in hostile.iter_attachments()}


def test_charsets_in_headers_and_bodies(parsed: list[Parsed]) -> None:
    header_charsets = {
        cs.lower()
        for p in parsed
        for name in ("From", "Subject")
        for cs in ENCODED_WORD.findall(p.header(name))
    }
    assert header_charsets >= CHARSETS
    body_charsets = set()
    for p in parsed:
        if OTHER_CHARSET.search(p.demo.raw):
            for part in p.msg.walk():
                if (charset := part.get_content_charset()) is not None:
                    body_charsets.add(charset)
                    part.get_content()  # decodes in its charset
    assert body_charsets | {"utf-8"} >= CHARSETS
    names = {getaddresses([p.decoded("From")])[0][0] for p in parsed}
    assert {"José Müller", "Zoë Ångström", "Дмитрий Петров", "山田太郎", "王芳"} <= names


def test_hostile_fixtures_are_in_inbox(by_id: dict[str, Parsed]) -> None:
    escapes = by_id[ESCAPES_MESSAGE_ID]
    assert escapes.demo.folder == "INBOX"
    for text in (str(escapes.msg["Subject"]), escapes.msg.get_content()):
        assert "\x1b[31m" in text and "\x1b]0;pwned\x07" in text
    assert "\x1b" in str(escapes.msg["From"])
    assert by_id[MALFORMED_MESSAGE_ID].demo.folder == "INBOX"
    assert by_id[HOSTILE_ATTACHMENT_MESSAGE_ID].demo.folder == "INBOX"


def test_mailing_list_headers(parsed: list[Parsed]) -> None:
    for p in parsed:
        if p.demo.folder.startswith("Lists/"):
            name = p.demo.folder.split("/", 1)[1]
            assert f"<{name}." in p.header("List-Id")
            assert p.header("List-Post").startswith(f"<mailto:{name}@")


def test_only_reserved_domains(parsed: list[Parsed]) -> None:
    for p in parsed:
        fields = [p.header(name) for name in ("From", "To", "Cc", "Reply-To")]
        for _, addr in getaddresses([f for f in fields if f]):
            assert RESERVED.search(addr.rsplit("@", 1)[1].lower()), addr


def test_bodies_vary_in_size(parsed: list[Parsed]) -> None:
    plain = [p for p in parsed if p.header("Content-Type").startswith("text/plain")]
    lines = [p.demo.raw.split(b"\n\n", 1)[1].count(b"\n") for p in plain]
    assert max(lines) >= 180 and min(lines) <= 8
    signed = [p for p in parsed if re.search(rb"\n--( |=20)\n", p.demo.raw)]
    assert len(signed) >= 10
