"""parse_message: right on good mail, never raising on bad mail."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable

import pytest

from tui_mail.core.models import Address
from tui_mail.store.parse import BODY_TEXT_LIMIT, decode_words, parse_message


def test_ordinary_message() -> None:
    raw = (
        b"Received: from x by y; Tue, 2 Jan 2024 10:00:00 +0000\r\n"
        b"From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <jm@example.org>\r\n"
        b'To: alice@example.org, "Bob, Jr." <bob@example.org>\r\n'
        b"Cc: =?iso-8859-1?q?Ren=E9?= <rene@example.org>\r\n"
        b"Subject: =?utf-8?b?SGVsbG8g?=\r\n =?utf-8?b?d8O2cmxk?=\r\n"
        b"Date: Mon, 1 Jan 2024 10:00:00 +0100\r\n"
        b"Message-ID: <abc@example.org>\r\n"
        b"In-Reply-To: <parent@example.org> (your message)\r\n"
        b"References: <root@example.org>\r\n <parent@example.org>\r\n"
        b"List-Id: Python Dev <python-dev.python.org>\r\n"
        b"\r\nHello there\r\n"
    )
    p = parse_message(raw)
    assert p.date == 1704099600
    assert p.sender == Address("Jörg Müller", "jm@example.org")
    assert p.to == (Address("", "alice@example.org"), Address("Bob, Jr.", "bob@example.org"))
    assert p.cc == (Address("René", "rene@example.org"),)
    assert p.subject == "Hello wörld"
    assert p.message_id == "<abc@example.org>"
    assert p.in_reply_to == "<parent@example.org>"
    assert p.references == ("<root@example.org>", "<parent@example.org>")
    assert p.list_id == "python-dev.python.org"
    assert p.body_text.strip() == "Hello there"
    assert p.has_attachment is False


def test_multibyte_character_split_across_encoded_words() -> None:
    # "ü" is C3 BC; encoders may put the two bytes into two words.
    assert decode_words("=?utf-8?q?gr=C3?= =?utf-8?q?=BCn?=") == "grün"
    assert decode_words("a =?utf-8?q?b?= c") == "a b c"
    assert decode_words("=?bogus-charset?q?caf=E9?=") == "café"
    assert decode_words("=?utf-8?b?not base64!!?=") is not None


def test_eight_bit_headers_and_fallback_date() -> None:
    latin = parse_message("Subject: caf\xe9\n\nx".encode("latin-1"), mtime=1234.5)
    assert latin.subject == "café" and latin.date == 1234
    utf8 = parse_message("Subject: café ☕\nFrom: Zoë <z@x>\n\nx".encode(), mtime=None)
    assert utf8.subject == "café ☕" and utf8.sender.name == "Zoë" and utf8.date == 0
    received = parse_message(b"Received: by x; Wed, 3 Jan 2024 00:00:00 +0000\n\nx", 5)
    assert received.date == 1704240000


def test_terminal_escapes_do_not_survive() -> None:
    p = parse_message(b"Subject: \x1b[31mred\x1b[0m\x07\nFrom: \x1b]0;x\x07 <a@b>\n\nbody")
    assert "\x1b" not in p.subject and "\x07" not in p.subject
    assert "\x1b" not in p.sender.name
    assert p.subject == "␛[31mred␛[0m␇"


def test_attachments_and_html() -> None:
    raw = (
        b"From: a@b\nContent-Type: multipart/mixed; boundary=XX\n\n"
        b"--XX\nContent-Type: multipart/alternative; boundary=YY\n\n"
        b"--YY\nContent-Type: text/html; charset=utf-8\n\n"
        b"<p>Hi <b>there</b></p><script>x()</script>\n"
        b"--YY--\n"
        b"--XX\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=a.pdf\n"
        b"Content-Transfer-Encoding: base64\n\nJVBERi0=\n--XX--\n"
    )
    p = parse_message(raw)
    assert p.has_attachment is True
    assert p.body_text == "Hi there"
    signed = (
        b"Content-Type: multipart/signed; boundary=S\n\n--S\nContent-Type: text/plain\n\nhi\n"
        b"--S\nContent-Type: application/pgp-signature\n\nsig\n--S--\n"
    )
    assert parse_message(signed).has_attachment is False
    qp = (
        b"Content-Type: text/plain; charset=iso-8859-1\n"
        b"Content-Transfer-Encoding: quoted-printable\n\ncaf=E9\n"
    )
    assert parse_message(qp).body_text.strip() == "café"


def test_body_is_truncated() -> None:
    p = parse_message(b"Subject: big\n\n" + b"word " * 100_000)
    assert len(p.body_text) == BODY_TEXT_LIMIT


MALFORMED = [
    b"",
    b"\n\n\n",
    b"no headers at all",
    b"\x00\x01\x02\xff\xfe",
    b"From: \nTo: \nCc: ,,,,\nDate: \nSubject:\n\n",
    b"Date: yesterday at noon\nDate: Thu, 31 Feb 99999 99:99:99 +9999\n\n",
    b"Date: Mon, 1 Jan 10000 00:00:00 +0000\n\n",
    b'From: "unterminated <a@b>\nTo: <<<>>>@@@\n\n',
    b"From: =?utf-8?q?broken\nSubject: =?x?b?!!!?= =?utf-8?B?====?= =?utf-8?Q?=ZZ?=\n\n",
    b"Subject: =?unknown-8bit?q?=FF=FE?=\nContent-Type: text/plain; charset=klingon\n\n\xff\xfe",
    b"Content-Type: multipart/mixed\n\nno boundary",
    b'Content-Type: multipart/mixed; boundary=""\n\n--\n--\n',
    b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!not base64!!!",
    b"Content-Type: message/rfc822\n\nFrom: inner\n",
    b"Message-ID: " + b"<" * 5000 + b"\nReferences: " + b"<a@b> " * 5000 + b"\n\n",
    b"To: " + b"a@b, " * 20_000 + b"\n\n",
    b"Subject: " + b"x" * 200_000 + b"\n\n",
    b"From: a\r\n\tb\r\n c <d@e>\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=B\n\n"
    + b"--B\nContent-Type: multipart/mixed; boundary=B\n\n" * 2000,
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_never_raises(raw: bytes) -> None:
    p = parse_message(raw, mtime=42.0)
    assert isinstance(p.subject, str) and isinstance(p.date, int)
    assert len(p.to) <= 500


def test_random_garbage_never_raises() -> None:
    rng = random.Random(7)
    pieces = [b"From: ", b"=?utf-8?q?", b"?=", b"\n", b"\r\n", b":", b"<", b">", b"\xff"]
    pieces += [b"--B\n", b"Content-Type: multipart/mixed; boundary=B\n", b"Date: ", b'"', b","]
    for _ in range(300):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 60)))
        parse_message(raw)
        parse_message(bytes(rng.randrange(256) for _ in range(rng.randrange(200))))


def test_markup_like_names_keep_their_address() -> None:
    p = parse_message(b"From: [b]Mallory[/b] <m@x.example>\nTo: [i]B <b@y.example>\n\nx")
    assert (p.sender.name, p.sender.addr) == ("[b]Mallory[/b]", "m@x.example")
    assert [a.addr for a in p.to] == ["b@y.example"]


# --- parse_headers: the bulk path must give the same row as parse_message ---------

_MIME_SHAPES = [
    # attachment by disposition, by type, by file name; inline image; digest; encrypted
    b"Content-Type: multipart/mixed; boundary=X\n\n--X\nContent-Type: text/plain\n\nhi\n"
    b"--X\nContent-Type: image/png; name=a.png\n\nPNG\n--X--\n",
    b"Content-Type: multipart/related; boundary=X\n\n--X\nContent-Type: text/html\n\n<p>\n"
    b"--X\nContent-Type: image/png\nContent-Disposition: inline; filename=a.png\n\nPNG\n--X--\n",
    b"Content-Type: multipart/mixed; boundary=X\n\n--X\nContent-Type: text/plain\n\nhi\n"
    b"--X\nContent-Type: text/plain\nContent-Disposition: attachment\n\nnotes\n--X--\n",
    b'Content-Type: multipart/mixed; boundary="a b;c"\n\npreamble\n--a b;c\n\nno headers\n'
    b"--a b;c\nContent-Type: text/csv;\n name*=utf-8''%C3%A4.csv\n\n1,2\n--a b;c--\nepilogue\n",
    b"Content-Type: multipart/digest; boundary=D\n\n--D\n\nFrom: x\n\ninner\n--D--\n",
    b"Content-Type: multipart/encrypted; boundary=E\n\n--E\nContent-Type: application/pgp-"
    b"encrypted\n\nVersion: 1\n--E\nContent-Type: application/octet-stream\n\n---BEGIN\n--E--\n",
    # a line that starts with the boundary but is another one; CRLF everywhere
    b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
    b"--BX\r\nContent-Type: application/pdf\r\n\r\n%PDF is text\r\n--B\r\n\r\nx\r\n--B--\r\n",
    b"Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: multipart/alternative;"
    b" boundary=C\n\n--C\nContent-Type: text/plain\n\na\n--C\nContent-Type: text/html\n\n<b>\n"
    b"--C--\n--B\nContent-Type: message/rfc822\n\nFrom: y\n\nz\n--B--\n",
    b"Content-Type: application/pdf\n\n%PDF",
    b'Content-Type: text/plain; name=""\nContent-Disposition: inline\n\nx',
    b"Content-Type: text\n\nno slash",
    b"Date: Sun, 31 Jun 2024 10:00:00 -0000\nSubject: local time\n\nx",
    b"Date: 1 Feb 2024 25:61:00 +0100\n\nx",
    b"Date: Mon, 1 Jan 0099 10:00:00 +0000\n\nx",
    b"Date: Fri, 29 Feb 2008 23:59:60 +1400 (a comment)\n\nx",
    b"\nFrom: after a blank line\n\nx",
]


def _corpus() -> list[bytes]:
    from tui_mail.demo.generate import generate_demo

    rng = random.Random(3)
    pieces = [b"From: ", b"=?utf-8?q?", b"?=", b"\n", b"\r\n", b":", b"<", b">", b"\xff"]
    pieces += [b"--B\n", b"Content-Type: multipart/mixed; boundary=B\n", b"Date: ", b'"', b","]
    garbage = [
        b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 60))) for _ in range(300)
    ]
    return [d.raw for d in generate_demo()] + MALFORMED + _MIME_SHAPES + garbage


def test_parse_headers_gives_the_same_row_as_parse_message() -> None:
    from msgspec.structs import replace

    from tui_mail.store.parse import parse_body, parse_headers

    corpus = _corpus()
    for raw in corpus:
        full = parse_message(raw, mtime=42.0)
        fast = parse_headers(raw, mtime=42.0)
        assert fast.body_text is None
        assert replace(full, body_text=None) == fast, raw[:200]
        assert parse_body(raw) == (full.has_attachment, full.body_text), raw[:200]
    # The shapes above must really exercise both answers.
    assert {parse_headers(raw).has_attachment for raw in _MIME_SHAPES} == {True, False}


# --- parse_headers' fast paths: each gives what the general path (or the code it
# replaced) gives, on the corpora above, the hostile one and edge cases -----------

_OLD_FIELDS = re.compile(
    r"^(from|sender|to|cc|subject|date|message-id|in-reply-to|references|list-id|received"
    r"|content-type|content-disposition):[ \t]*(.*(?:\n[ \t].*)*)",
    re.I | re.M,
)
_EDGE_DATES = [
    "Fri, 27 Nov 2026 04:19:25 +0000", "27 Nov 2026 4:19:25 +0100", "27 Nov 2026 04:19 +0000",
    "Sun, 1 Jan 1960 00:00:00 -0130", "Thu, 1 Jan 1970 00:00:00 +0000", "1 Jan 0099 1:00:00 +0000",
    "31 Feb 2024 23:59:60 +1400", "Tue, 32 Jan 2024 10:00:00 +0100", "2 Foo 2024 1:00:00 +0100",
    "Tue, 2 Jan 2024 24:00:00 +0100", "Tue, 2 Jan 2024 10:60:00 +0100", "2 jan 2024 1:00:61 +9999",
    "Tue, 2 Jan 2024 10:00:00 -0000", "Tue, 2 Jan 9999 23:59:59 -2359", "2 Jan 2024 1:00:00 GMT",
    "Tue,  2 Jan 2024 1:00:00 +0100", "Tue, 2\x1cJan 2024 10:00:00 +0100", "2 Jan 2024 1:00 +01000",
    "2 Jan 2024 1:00:00 +0100 (CET)", "2 Jan 2024 10:00:00 +0100x", "2 Jan 2024 10:00:00 +0100\r\r",
    " 2 Jan 2024 10:00:00 +0100", "\x0b2 Jan 2024 10:00:00 +0100", "2 Jan 2024 10:00:00 +0100\n",
    "Tue, \u0662 Jan 2024 10:00:00 +0100", "2 Jan 2024 10:00:00 +0100\r\n\t(folded)", "yesterday",
]  # fmt: skip
_EDGE_IDS = [
    "<a@b>", "<a@b> ", " <a@b>", "<a b@c>", "<a@b><c@d>", "<<a@b>>", "a@b", "<>", "<a@b>\r",
    "<" + "x" * 996 + ">", "<" + "x" * 997 + ">", "<a\x7fb>", "<a\x1cb>", "<a\tb>", "<a@b>(c)",
    "<a@b>\r\r", "\r<a@b>", "<a@b> <a@b>", "<\xe4@b>", "<a@b\udcff>", "<=?utf-8?q?x?=@b>",
    "<a@b>\r\n\t<c@d>",
]  # fmt: skip
_EDGE_TEXT = [
    "plain", " plain ", "two  spaces", "tab\there", "=?utf-8?q?Gr=C3=BC=C3=9Fe_=E2=80=93_x?=",
    "=?", "=?utf-8?q?a=5Fb_c=zz=?=", "=?utf-8?Q?=c3=bC?= =?utf-8?Q?x?=", "=?utf-8?q?=?=",
    "=?utf-8?q?a=3?=", "=?iso-8859-1?q?caf=E9=?=", "=?utf-8?q?==41?=", "=?utf-8?q?a=\r\n b?=",
    "caf\udce9", "\x1b[31mred", "x" * 70_000, "\r", "a\rb", "ends in space ",
]  # fmt: skip


def _old_split_head(data: bytes) -> tuple[bytes, bytes]:
    """_split_head as it was, with two bytes.find."""
    i = data.find(b"\n\n")
    j = data.find(b"\n\r\n", 0, i if i >= 0 else len(data))
    if j >= 0:
        end, after = j, j + 3
    elif i >= 0:
        end, after = i, i + 2
    else:
        return data, b""
    if end and data[end - 1] == 0x0D:
        end -= 1
    return data[:end], data[after:]


def _outcome(f: Callable[[str], object], value: str) -> object:
    """f(value), or the type of what it raised (a charset name with a NUL, say)."""
    try:
        return f(value)
    except Exception as exc:
        return type(exc)


def _old_timestamp(value: str) -> int | None:
    """_timestamp as it was: one regex, int() and datetime for every date."""
    from datetime import date

    from tui_mail.store.parse import _stdlib_timestamp

    m = re.match(
        r"(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
        r"\s+([+-])(\d{2})(\d{2})(?:\s|$)",
        value.strip(),
    )
    if m is None or not value.isascii() or "\n" in value:
        return _stdlib_timestamp(value)
    day, mon, year, hour, minute, sec, sign, zh, zm = m.groups()
    months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    y, d, h, mi, s = int(year), int(day), int(hour), int(minute), int(sec or 0)
    if mon.lower() not in months or not (y >= 100 and 1 <= d <= 31 and h < 24 and mi < 60):
        return _stdlib_timestamp(value)
    if s >= 61 or (sign == "-" and zh == zm == "00"):
        return _stdlib_timestamp(value)
    offset = (int(zh) * 3600 + int(zm) * 60) * (-1 if sign == "-" else 1)
    days = date(y, months.index(mon.lower()) + 1, 1).toordinal() - date(1970, 1, 1).toordinal()
    ts = (days + d - 1) * 86400 + h * 3600 + mi * 60 + s - offset
    return ts if -(2**31) < ts < 2**34 else None


def _fast_path_corpus() -> list[bytes]:
    from hostile.broken_corpus import corpus

    rng = random.Random(11)
    ends = [
        b"\n",
        b"\r\n",
        b"\r",
        b"\n\r",
        b"\n\n",
        b"\n\r\n",
        b"\n\r\n\n",
        b"\r\n\r\n",
        b"\n\n\r\n",
    ]
    names = ["From", "to", "CC", "Subject", "Date", "Message-ID", "In-Reply-To", "References"]
    names += ["List-Id", "Received", "Sender", "Content-Type", "Content-Disposition", "Subject "]
    values = _EDGE_DATES + _EDGE_IDS + _EDGE_TEXT[:-4] + ["Name <a@b>", "attachment", "text"]
    values += [
        "text/plain; name=a.txt",
        "TEXT/x",
        "\r\n\ttext/plain",
        "by y; 2 Jan 2024 1:00 +0100",
    ]
    made = []
    for _ in range(1500):
        nl = rng.choice([b"\n", b"\r\n", b"\r\n"])
        head = nl.join(
            f"{rng.choice(names)}:{rng.choice(['', ' ', chr(9)])}{rng.choice(values)}".encode(
                "utf-8", "surrogateescape"
            )
            for _ in range(rng.randrange(8))
        )
        body = rng.choice([b"x", b"--B\nContent-Type: application/pdf\n\nx\n--B--\n", b"\n\nx"])
        made.append(head + rng.choice(ends) + body)
    return _corpus() + list(corpus().values()) + made


def test_parse_headers_fast_paths_agree_with_the_general_ones() -> None:
    from msgspec.structs import fields, replace

    from tui_mail.store import parse as p

    values: set[str] = set(_EDGE_DATES + _EDGE_IDS + _EDGE_TEXT)
    for raw in _fast_path_corpus():
        head, body = p._split_head(raw)
        assert (head, body) == _old_split_head(raw), raw[:200]
        text = head.decode("ascii", "surrogateescape")
        found = p._INDEX_FIELDS.findall("\n" + text)
        assert found == _OLD_FIELDS.findall(text), raw[:200]
        first: dict[str, str] = {}
        for name, value in found:
            first.setdefault(name.lower(), value)
        try:
            walked = p._fast_has_attachment(first, body)
        except Exception:
            walked = False
        row = p.parse_headers(raw, 42.0)
        assert row.has_attachment == walked, raw[:200]
        # Built positionally: the same frozen value _from_fields builds by keyword.
        rebuilt = p.ParsedHeaders(*(getattr(row, f.name) for f in fields(p.ParsedHeaders)))
        assert row == rebuilt and hash(row) == hash(rebuilt) and replace(row) == row
        with pytest.raises(AttributeError):
            row.subject = "x"
        values.update(v for _, v in found)
        values.update(v[:-1] for _, v in found if v.endswith("\r"))
    for value in sorted(values):
        if not value:
            continue
        assert p._timestamp(value) == _old_timestamp(value), value
        assert p._msg_ids(value) == p._all_msg_ids(value), value
        ids = p._all_msg_ids(value)
        if ids:
            assert p._message_id(value) == ids[0], value
        general = _outcome(lambda v: p.clean_text(p.decode_words(p._fix_8bit(p._unfold(v)))), value)
        assert _outcome(p._header_text, value) == general, value


def test_q_decoding_agrees_with_the_escape_by_escape_rule() -> None:
    from tui_mail.store.parse import _Q_ESCAPE, _q_decode

    def by_escape(text: str) -> bytes:
        data = text.encode("utf-8", "surrogateescape").replace(b"_", b" ")
        return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)

    rng = random.Random(5)
    alphabet = ["=", "=", "A", "f", "0", "9", "G", "z", "_", " ", "\r", "\n", "\udcff", "é", "\x00"]
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        assert _q_decode(text) == by_escape(text), text


def test_the_blank_line_cut_is_the_leftmost_cr_lf_cr_lf_match() -> None:
    """split_headers' fast cut against the plain regex it replaces, on every
    string of up to 7 pieces of CR, LF and text, and on random longer ones."""
    from tui_mail.store.parse import _cut_at_blank_line

    oracle = re.compile(rb"\r?\n\r?\n")

    def expected(data: bytes) -> tuple[bytes, bytes]:
        m = oracle.search(data)
        return (data[: m.start()], data[m.end() :]) if m else (data, b"")

    pieces = [b"\r", b"\n", b"a", b":"]
    for n in range(8):
        for combo in itertools.product(pieces, repeat=n):
            data = b"".join(combo)
            assert _cut_at_blank_line(data) == expected(data), data
    rng = random.Random(7)
    longer = [*pieces, b"\r\n", b"\n\n", b"\r\n\r\n", b"\n\r", b"Subject: x"]
    for _ in range(20000):
        data = b"".join(rng.choice(longer) for _ in range(rng.randint(8, 30)))
        assert _cut_at_blank_line(data) == expected(data), data
