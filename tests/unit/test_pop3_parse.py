"""Pure POP3 reply parsing: CAPA, UIDL/LIST listings, status lines, dot-stuffing."""

from __future__ import annotations

import base64

import pytest

from tui_mail.backends.pop3.parse import (
    SERVER_TEXT_LIMIT,
    auth_plain_token,
    parse_capa,
    parse_list_listing,
    parse_stat,
    parse_status,
    parse_uidl_listing,
    sasl_mechanisms,
    server_text,
    unstuff,
)
from tui_mail.core.errors import ProtocolError


def test_status_ok_and_err() -> None:
    ok = parse_status(b"+OK Dovecot ready.")
    assert ok.ok and ok.text == b"Dovecot ready."
    err = parse_status(b"-ERR [AUTH] Authentication failed.")
    assert not err.ok and err.code == "AUTH"
    assert parse_status(b"+OK").text == b""
    assert parse_status(b"-err [in-use] locked").code == "IN-USE"
    assert parse_status(b"-ERR [SYS/TEMP] later").code == "SYS/TEMP"
    assert parse_status(b"-ERR no code").code is None


@pytest.mark.parametrize("line", [b"", b"hello", b"+OKAY", b"+ ", b"* OK imap", b"-ERROR x"])
def test_status_malformed(line: bytes) -> None:
    with pytest.raises(ProtocolError, match="malformed reply"):
        parse_status(line)


def test_server_text_is_inert_and_bounded() -> None:
    text = server_text(b"\x1b]52;c;evil\x07 \xe2\x80\xae rtl " + b"x" * 500)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert len(text) == SERVER_TEXT_LIMIT and text.endswith("...")
    assert server_text(b"bad \xff utf8") == "bad \ufffd utf8"


def test_capa() -> None:
    caps = parse_capa(
        [b"CAPA\r\n", b"TOP\r\n", b"uidl\r\n", b"SASL PLAIN LOGIN\r\n", b"STLS\r\n", b"\r\n"]
    )
    assert set(caps) == {"CAPA", "TOP", "UIDL", "SASL", "STLS"}
    assert sasl_mechanisms(caps) == {"PLAIN", "LOGIN"}
    assert sasl_mechanisms(parse_capa([b"USER"])) == set()
    # Unreadable bytes do not fail the login: the capability is simply not recognised.
    assert "IMPLEMENTATION" in parse_capa([b"IMPLEMENTATION caf\xc3\xa9\r\n"])


def test_uidl_listing() -> None:
    lines = [b"1 000000010000abcd\r\n", b"2 whqtswO00WBw418f9t5JxYwZ\r\n", b"3 x"]
    assert parse_uidl_listing(lines) == [
        (1, "000000010000abcd"),
        (2, "whqtswO00WBw418f9t5JxYwZ"),
        (3, "x"),
    ]
    assert parse_uidl_listing([]) == []


@pytest.mark.parametrize(
    "line",
    [
        b"1",  # no id
        b"1 a b",  # id with a space
        b"x abc",  # number not a number
        b"0 abc",  # numbers start at 1
        b"-1 abc",
        b"1 caf\xc3\xa9",  # RFC 1939: 0x21..0x7E only
        b"1 " + b"a" * 256,  # bounded
        b"99999999999999 abc",
    ],
)
def test_uidl_listing_rejects(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_uidl_listing([line])


def test_uidl_listing_rejects_repeated_number() -> None:
    with pytest.raises(ProtocolError):
        parse_uidl_listing([b"1 a", b"1 b"])


def test_list_listing_and_stat() -> None:
    assert parse_list_listing([b"1 120\r\n", b"2 3000 extra\r\n"]) == {1: 120, 2: 3000}
    for bad in (b"1", b"1 -5", b"a 5", b"0 5"):
        with pytest.raises(ProtocolError):
            parse_list_listing([bad])
    assert parse_stat(parse_status(b"+OK 3 1200")) == (3, 1200)
    with pytest.raises(ProtocolError):
        parse_stat(parse_status(b"+OK three"))


def test_auth_plain_token() -> None:
    token = auth_plain_token("bob", "pässword")
    assert base64.b64decode(token) == b"\0bob\0p\xc3\xa4ssword"


def test_unstuff() -> None:
    assert unstuff(b"..two\r\n", True) == (b".two\r\n", False)
    assert unstuff(b".\r\n", True) == (b"", True)
    assert unstuff(b".\n", True) == (b"", True)
    assert unstuff(b".x\r\n", True) == (b"x\r\n", False)
    # The middle of a long line is never stuffed and never a terminator.
    assert unstuff(b".\r\n", False) == (b".\r\n", False)
    assert unstuff(b"..x", False) == (b"..x", False)
    assert unstuff(b"plain\r\n", True) == (b"plain\r\n", False)
