"""The pure IMAP response parser: framing, tokens, FETCH/ENVELOPE/LIST, codes, UID sets,
modified UTF-7, and the bounds that keep a hostile server from costing us memory."""

from __future__ import annotations

import pytest

from tui_mail.backends.imap.parse import (
    DEFAULT_LIMITS,
    RESPONSE_COST,
    TOKEN_COST,
    Continuation,
    FetchData,
    Framer,
    Limits,
    Literal,
    StatusResponse,
    Token,
    UidSet,
    Untagged,
    astring,
    decode_mutf7,
    encode_mutf7,
    parse_esearch,
    parse_fetch,
    parse_fetch_response,
    parse_internaldate,
    parse_list,
    parse_response,
    parse_search,
    parse_status_items,
    parse_vanished,
    token_bound,
    tokenize,
    uid_set,
    uid_set_chunks,
)
from tui_mail.core.errors import ProtocolError
from tui_mail.core.models import Address


def frames(
    data: bytes, limits: Limits = DEFAULT_LIMITS, chunk: int | None = None
) -> list[list[bytes]]:
    f = Framer(limits)
    out: list[list[bytes]] = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        f.feed(data[i : i + step])
        while (parts := f.next()) is not None:
            out.append(parts)
    return out


def one(data: bytes) -> StatusResponse | Untagged | Continuation:
    (parts,) = frames(data)
    return parse_response(parts)


# --------------------------------------------------------------------------- framing


def test_framer_splits_lines_and_literals_in_any_chunking() -> None:
    data = b"* 1 FETCH (UID 7 BODY[] {12}\r\nhello\r\nworld)\r\n* 2 EXISTS\r\nA1 OK done\r\n"
    expected = [
        [b"* 1 FETCH (UID 7 BODY[] {12}", b"hello\r\nworld", b")"],
        [b"* 2 EXISTS"],
        [b"A1 OK done"],
    ]
    for chunk in (None, 1, 2, 3, 7, 16):
        got = frames(data, chunk=chunk)
        assert got == expected, chunk
        assert all(type(p) is bytes for parts in got for p in parts)  # never bytearray


def test_literal_content_is_never_scanned_for_line_ends_or_markers() -> None:
    body = b"line {5}\r\n* 3 EXISTS\r\nA1 OK fake\r\n"
    data = b"* 1 FETCH (BODY[] {%d}\r\n" % len(body) + body + b")\r\nA1 OK real\r\n"
    got = frames(data, chunk=5)
    assert got[0] == [b"* 1 FETCH (BODY[] {%d}" % len(body), body, b")"]
    assert got[1] == [b"A1 OK real"]


def test_empty_literal_and_literal8() -> None:
    got = frames(b"* 1 FETCH (BODY[] {0}\r\n BINARY[] ~{2}\r\nab)\r\n")
    assert got == [[b"* 1 FETCH (BODY[] {0}", b"", b" BINARY[] ~{2}", b"ab", b")"]]


def test_line_over_limit_is_a_protocol_error_even_without_newline() -> None:
    limits = Limits(max_line=100)
    with pytest.raises(ProtocolError, match="line longer than 100"):
        frames(b"* OK " + b"x" * 200, limits, chunk=10)
    with pytest.raises(ProtocolError, match="line longer"):
        frames(b"* OK " + b"x" * 200 + b"\r\n", limits)
    assert frames(b"* OK " + b"x" * 90 + b"\r\n", limits)  # at the limit is fine
    # At the limit with its CR and LF in different reads: the same line, the same answer.
    at_limit = b"* OK " + b"x" * 95
    for chunk in (1, 7, 100, 101):
        assert frames(at_limit + b"\r\n", limits, chunk=chunk) == [[at_limit]], chunk
    with pytest.raises(ProtocolError, match="line longer"):
        frames(at_limit + b"xx", limits, chunk=101)  # no CR: over the limit, refused unfinished


def test_literal_over_limit_is_refused_before_reading_it() -> None:
    f = Framer(Limits(max_literal=1000))
    f.feed(b"* 1 FETCH (BODY[] {1001}\r\n")
    with pytest.raises(ProtocolError, match="literal of 1001 bytes"):
        f.next()
    f = Framer(Limits(max_literal=10**15, max_response=10**15))
    f.feed(b"* 1 FETCH (BODY[] {999999999999}\r\n")  # 12 digits: bounded by the limit
    assert f.next() is None


def test_response_over_limit_with_many_literals() -> None:
    limits = Limits(max_literal=100, max_response=250)
    data = b"* 1 FETCH (A {100}\r\n" + b"x" * 100 + b" B {100}\r\n" + b"y" * 100 + b" C {100}\r\n"
    with pytest.raises(ProtocolError, match="response larger"):
        frames(data, limits)


def test_bare_lf_is_accepted() -> None:
    assert frames(b"* 3 EXISTS\nA1 OK x\n") == [[b"* 3 EXISTS"], [b"A1 OK x"]]


def test_reset_drops_buffered_data() -> None:
    f = Framer()
    f.feed(b"A1 OK begin TLS\r\n* OK injected\r\n")
    assert f.next() == [b"A1 OK begin TLS"]
    f.reset()
    assert f.next() is None and f.buffered == 0


# --------------------------------------------------------------------------- tokens


def test_tokens_atoms_strings_nil_nested_lists() -> None:
    toks = tokenize([b'(a "b c" NIL nil "NIL" (d (e)) "q\\"x\\\\y" \\Seen BODY[1.2]<0>)'])
    assert toks == [
        ["a", b"b c", None, None, b"NIL", ["d", ["e"]], b'q"x\\y', "\\Seen", "BODY[1.2]<0>"]
    ]


def test_tokens_fetch_key_with_parenthesised_section() -> None:
    toks = tokenize([b"(BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)] {3}", b"abc", b")"])
    assert toks == [["BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)]", b"abc"]]


@pytest.mark.parametrize(
    "line",
    [b"(a b", b"a)", b'"unterminated', b"{3} x", b"a {3}"],
)
def test_malformed_tokens(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        tokenize([line])


def test_nesting_is_bounded_not_recursive() -> None:
    deep = b"(" * 5000 + b")" * 5000
    with pytest.raises(ProtocolError, match="nested too deeply"):
        tokenize([deep])
    assert tokenize([b"(" * 10 + b")" * 10], limits=Limits(max_depth=10))


def test_tokens_per_response_are_bounded_whatever_the_line_length_allows() -> None:
    # Two bytes of "()" are a ~64-byte list: the line bound alone let 8 MiB become ~300 MB.
    limits = Limits(max_tokens=10)
    assert len(tokenize([b"a " * 10], limits=limits)) == 10
    assert len(tokenize([b"()" * 10], limits=limits)) == 10
    assert tokenize([b"(a b c d e f g h i)"], limits=limits)  # the list and its nine atoms
    for flood in (b"a " * 11, b"()" * 11, b'""' * 11, b"(a b c d e f g h i j)"):
        with pytest.raises(ProtocolError, match="more than 10 tokens"):
            tokenize([flood], limits=limits)
    # A literal is a token too.
    with pytest.raises(ProtocolError, match="more than 1 tokens"):
        tokenize([b"a {1}", b"x", b""], limits=Limits(max_tokens=1))


def _count(tokens: list[Token]) -> int:
    return sum(1 + (_count(t) if isinstance(t, list) else 0) for t in tokens)


@pytest.mark.parametrize(
    "parts",
    [
        [b"* SEARCH 1 2 3 4 5"],
        [b'* LIST (\\HasNoChildren \\Sent) "/" "Sent Items"'],
        [b"()()()((()))"],
        [b'a"b"c"d"(e)f(g)h'],
        [b'""""""'],
        [b"(a)b(c)d(e)"],
        [b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (A B)]<0> {3}", b"abc", b" FLAGS (x))"],
        [b"x {1}", b"a", b" {2}", b"bc", b" ({0}", b"", b")"],
        [b"BODY[] NIL NIL (NIL NIL)   ()  "],
        [b"a[]b[]c[]d[]e[]"],  # a "[...]" section ends an atom: the next one may follow
        [b"* 1 FETCH (BODY[1]<0>x[2]y BINARY[3] {1}", b"z", b"w[]v)"],
    ],
)
def test_token_bound_is_never_below_what_tokenize_makes(parts: list[bytes]) -> None:
    assert _count(tokenize(parts)) <= token_bound(parts)


def test_the_longest_search_line_fits_the_default_bounds() -> None:
    """A server without ESEARCH lists a folder's UIDs in one line: as many as
    max_line holds (UIDs 1, 2, 3...: the most numbers a line can carry) must pass
    every other bound too."""
    limits = Limits()
    uids = b" ".join(b"%d" % i for i in range(1, 1_300_000))
    line = (b"* SEARCH " + uids)[: limits.max_line]
    line = line[: line.rindex(b" ")]
    assert line.count(b" ") > 1_180_000
    # What the client charges it: its bytes, the response, a token per UID.
    assert token_bound([line]) <= limits.max_tokens
    assert len(line) + RESPONSE_COST + TOKEN_COST * token_bound([line]) < limits.max_untagged


def test_non_utf8_atom_round_trips_to_bytes() -> None:
    (tok,) = tokenize([b"caf\xe9"])
    assert isinstance(tok, str)
    assert tok.encode("utf-8", "surrogateescape") == b"caf\xe9"


# --------------------------------------------------------------------------- responses


def test_status_responses_and_codes() -> None:
    r = one(b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n")
    assert isinstance(r, StatusResponse)
    assert (r.tag, r.status, r.text) == ("*", "OK", "UIDs valid")
    assert r.code is not None and r.code.name == "UIDVALIDITY" and r.code.number() == 3857529045

    r = one(b"T4 OK [APPENDUID 38505 3955] APPEND completed\r\n")
    assert isinstance(r, StatusResponse) and r.tag == "T4"
    assert r.code is not None and r.code.args == ["38505", "3955"]

    r = one(b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n")
    assert isinstance(r, StatusResponse) and r.code is not None
    assert r.code.args == [["\\Deleted", "\\Seen", "\\*"]]

    r = one(b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] ready\r\n")
    assert isinstance(r, StatusResponse) and r.code is not None
    assert r.code.args == ["IMAP4rev1", "STARTTLS", "AUTH=PLAIN"]

    r = one(b"* OK [HIGHESTMODSEQ 715194045007] Highest\r\n")
    assert isinstance(r, StatusResponse) and r.code is not None and r.code.number() == 715194045007

    r = one(b"T1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
    assert isinstance(r, StatusResponse) and r.status == "NO"
    assert r.code is not None and r.code.name == "AUTHENTICATIONFAILED"

    r = one(b"* BYE\r\n")
    assert isinstance(r, StatusResponse) and r.status == "BYE" and r.text == ""

    r = one(b"* OK [REFERRAL imap://a;AUTH=*@b/] odd\r\n")  # odd codes do not fail
    assert isinstance(r, StatusResponse) and r.code is not None and r.code.name == "REFERRAL"


def test_untagged_data_and_continuation() -> None:
    assert one(b"* 23 EXISTS\r\n") == Untagged("EXISTS", 23, [])
    assert one(b"* 4 expunge\r\n") == Untagged("EXPUNGE", 4, [])
    r = one(b"* CAPABILITY IMAP4rev1 IDLE\r\n")
    assert r == Untagged("CAPABILITY", None, ["IMAP4rev1", "IDLE"])
    assert one(b"+ idling\r\n") == Continuation(b"idling")
    assert one(b"+\r\n") == Continuation(b"")


@pytest.mark.parametrize("line", [b"garbage", b"A1 MAYBE x", b"* 12345678901 EXISTS"])
def test_malformed_responses(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_response([line])


def test_search_esearch_status_vanished() -> None:
    r = one(b"* SEARCH 2 84 882 (MODSEQ 917162500)\r\n")
    assert isinstance(r, Untagged)
    assert parse_search(r.args) == ([2, 84, 882], 917162500)
    r = one(b'* ESEARCH (TAG "T3") UID ALL 1:3,9 COUNT 4\r\n')
    assert isinstance(r, Untagged)
    assert parse_esearch(r.args) == {"UID": None, "ALL": "1:3,9", "COUNT": "4"}
    r = one(b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n")
    assert isinstance(r, Untagged)
    assert parse_status_items(r.args) == (b"blurdybloop", {"MESSAGES": 231, "UIDNEXT": 44292})
    r = one(b"* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n")
    assert isinstance(r, Untagged)
    earlier, gone = parse_vanished(r.args)
    assert (
        earlier
        and 41 in gone
        and 42 not in gone
        and 540 in gone
        and len(gone) == 1 + 74 + 1 + 92 + 327
    )
    r = one(b"* VANISHED 7\r\n")
    assert isinstance(r, Untagged)
    assert parse_vanished(r.args) == (False, UidSet.parse("7"))


# --------------------------------------------------------------------------- FETCH


def fetch(data: bytes) -> FetchData:
    (parts,) = frames(data)
    got = parse_fetch_response(parts)
    assert got is not None
    r = parse_response(parts)
    assert isinstance(r, Untagged) and r.number is not None
    slow = parse_fetch(r.number, r.args)
    assert got == slow  # the fast path and the general parser agree
    return got


def test_fetch_body_flags_size_date_modseq() -> None:
    d = fetch(
        b"* 12 FETCH (UID 40 MODSEQ (624140003) FLAGS (\\Seen $Forwarded) RFC822.SIZE 11"
        b' INTERNALDATE "17-Jul-1996 02:44:25 -0700" BODY[] {10}\r\nhello\r\nyou)\r\n'
    )
    assert (d.seq, d.uid, d.modseq, d.size) == (12, 40, 624140003, 11)
    assert d.flags == ("\\Seen", "$Forwarded")
    assert d.body == b"hello\r\nyou" and type(d.body) is bytes
    assert d.internaldate == "17-Jul-1996 02:44:25 -0700"


def test_fetch_flags_only_and_empty_flags() -> None:
    assert fetch(b"* 3 FETCH (UID 9 FLAGS ())\r\n").flags == ()
    d = fetch(b"* 3 FETCH (FLAGS (\\Answered) UID 9)\r\n")
    assert (d.uid, d.flags, d.body) == (9, ("\\Answered",), None)


def test_fetch_other_items_take_the_general_path() -> None:
    d = fetch(
        b"* 1 FETCH (UID 2 BODY[HEADER.FIELDS (MESSAGE-ID)] {21}\r\n"
        b'Message-ID: <a@b>\r\n\r\n X-GM-LABELS ("\\\\Inbox"))\r\n'
    )
    assert d.uid == 2
    assert d.item("BODY[HEADER.FIELDS") == b"Message-ID: <a@b>\r\n\r\n"
    assert d.items["X-GM-LABELS"] == [b"\\Inbox"]
    assert fetch(b"* 1 FETCH (UID 2 BODY[] NIL)\r\n").body is None
    assert fetch(b'* 1 FETCH (UID 2 BODY[] "tiny")\r\n').body == b"tiny"


def test_non_fetch_is_none_and_bad_fetch_raises() -> None:
    assert parse_fetch_response([b"* 3 EXISTS"]) is None
    with pytest.raises(ProtocolError):
        parse_fetch_response([b"* 3 FETCH (UID)"])
    with pytest.raises(ProtocolError):
        parse_fetch_response([b"* 3 FETCH (UID x)"])


def test_envelope_with_nil_groups_literals_and_quoted_specials() -> None:
    data = (
        b'* 1 FETCH (UID 5 ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
        b'"=?utf-8?q?Gr=C3=BC=C3=9Fe?= \\"quoted\\" (x)" '
        b'(("Terry \\"T\\" Gray" NIL "gray" "cac.washington.edu")) '
        b"NIL "
        b"NIL "
        b'(("undisclosed" NIL "list" NIL)(NIL NIL "a" "b.example")(NIL NIL NIL NIL)) '
        b"((NIL NIL {6}\r\nimap )"
        b' "cac.washington.edu")) '
        b"NIL "
        b'NIL "<B27397-0100000@cac.washington.edu>"))\r\n'
    )
    env = fetch(data).envelope
    assert env is not None
    assert env.date.startswith("Wed, 17 Jul 1996")
    assert env.subject == 'Grüße "quoted" (x)'
    assert env.from_ == (Address('Terry "T" Gray', "gray@cac.washington.edu"),)
    assert env.sender == () and env.reply_to == ()
    assert env.to == (Address("", "a@b.example"),)  # group markers dropped
    assert env.cc == (Address("", "imap )@cac.washington.edu"),)
    assert env.bcc == () and env.in_reply_to == ""
    assert env.message_id == "<B27397-0100000@cac.washington.edu>"


def test_malformed_envelope() -> None:
    with pytest.raises(ProtocolError, match="ENVELOPE"):
        parse_fetch(1, [["ENVELOPE", ["too", "short"]]])
    with pytest.raises(ProtocolError, match="address"):
        parse_fetch(
            1, [["ENVELOPE", [None, None, [["x"]], None, None, None, None, None, None, None]]]
        )


def test_internaldate() -> None:
    assert parse_internaldate("17-Jul-1996 02:44:25 -0700") == 837596665
    assert parse_internaldate(" 7-Jan-2020 00:00:00 +0000") == 1578355200
    assert parse_internaldate("17-Foo-1996 02:44:25 -0700") is None
    assert parse_internaldate("yesterday") is None


# --------------------------------------------------------------------------- fast paths
# Framer.fetches() (bulk downloads, parsed in the buffer) and the line-level fast
# path of parse_fetch_response() must give, for every byte stream and every way
# it is cut into reads, exactly what the general path gives: Framer.next(), then
# parse_response() and parse_fetch(), the same responses and the same error.

Outcome = tuple[list[object], str | None]

# Starts like a response of the bulk shape, so a literal is never parsed as one.
_BODY = b"* 2 FETCH (UID 9 FLAGS () BODY[] {3}\r\nabc)\r\nFrom: a@b\r\n\r\n) {3}\r\nT1 OK x\r\n"


def _bulk(first: bytes, body: bytes = _BODY, close: bytes = b")\r\n") -> bytes:
    return first + b" {%d}\r\n" % len(body) + body + close


# Each a whole response (or a run of them), from the one shape Framer.fetches()
# takes to near misses that must go the general way, malformed ones included.
FETCH_CORPUS: list[bytes] = [
    _bulk(b"* 12 FETCH (UID 345 FLAGS (\\Seen) MODSEQ (7) BODY[]"),
    _bulk(b"* 12 FETCH (UID 345 FLAGS (\\Seen) BODY[]"),
    _bulk(b"* 1 FETCH (UID 1 FLAGS () MODSEQ (2) BODY[]"),
    _bulk(b"* 1 FETCH (UID 4294967295 FLAGS (\\Seen \\Answered $Forwarded $x) BODY[]"),
    _bulk(b"* 1 FETCH (UID 01 FLAGS ( \\Seen  \\Flagged ) MODSEQ (00000000000000000009) BODY[]"),
    _bulk(b"* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[]", b""),
    _bulk(b"* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[]", b"x" * 600),
    # flags the tokenizer reads otherwise than a split on whitespace would
    _bulk(b"* 1 FETCH (UID 7 FLAGS (\\Seen NIL nil) BODY[]"),
    _bulk(b"* 1 FETCH (UID 7 FLAGS (\\Seen\tx $a\xc2\xa0b $c\x1cd \xff\xfe \x00) BODY[]"),
    _bulk(b"* 1 FETCH (UID 7 FLAGS (a}b \\* % ~) BODY[]"),
    _bulk(b'* 1 FETCH (UID 7 FLAGS (\\Seen "q") BODY[]'),
    _bulk(b"* 1 FETCH (UID 7 FLAGS ((nested)) BODY[]"),
    _bulk(b"* 1 FETCH (UID 7 FLAGS (\\Se\ren) BODY[]"),
    _bulk(b"* 1 FETCH (UID 7 FLAGS (" + b"\\" * 64 + b'") BODY[]'),  # no regex blow-up
    _bulk(b"* 1 FETCH (UID 7 FLAGS (\\Seen[x]) BODY[]"),
    # numbers
    _bulk(b"* 1 FETCH (UID 0 FLAGS (\\Seen) BODY[]"),
    _bulk(b"* 1 FETCH (UID 12345678901 FLAGS (\\Seen) BODY[]"),
    _bulk(b"* 12345678901 FETCH (UID 5 FLAGS (\\Seen) BODY[]"),
    _bulk(b"* 1 FETCH (UID 5 FLAGS (\\Seen) MODSEQ (123456789012345678901) BODY[]"),
    _bulk(b"* 1 FETCH (UID 5 FLAGS (\\Seen) MODSEQ (7 8) BODY[]"),
    _bulk(b"* 1 FETCH (UID 5 FLAGS (\\Seen) MODSEQ () BODY[]"),
    _bulk(b"* 1 FETCH (UID 5FLAGS (\\Seen) BODY[]"),
    _bulk(b"* 1 FETCH (UID 5BODY[]"),
    _bulk(b"* 1 FETCH (RFC822.SIZE 5UID 7 BODY[]"),
    # other spellings, orders and items
    _bulk(b"* 12 fetch (uid 5 flags (\\Seen) body[]"),
    _bulk(b"* 12 FETCH  (UID 5 FLAGS (\\Seen) BODY[]"),
    _bulk(b"* 12 FETCH (FLAGS (\\Seen) UID 5 BODY[]"),
    _bulk(b"* 12 FETCH (UID 5 MODSEQ (3) FLAGS (\\Seen) BODY[]"),
    _bulk(b"* 12 FETCH (UID 5 FLAGS (\\Seen)BODY[]"),
    _bulk(b"* 12 FETCH (UID 5 FLAGS (\\Seen) RFC822.SIZE 99 BODY[]"),
    _bulk(b'* 12 FETCH (UID 5 INTERNALDATE "17-Jul-1996 02:44:25 \xc3\xa9" FLAGS () BODY[]'),
    _bulk(b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[]", close=b" UID 6)\r\n"),
    _bulk(b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] BINARY[]"),
    _bulk(b"* 12 FETCH (UID 5 FLAGS (\\Seen) RFC822"),
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] ~{3}\r\nabc)\r\n",
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3+}\r\nabc)\r\n",
    b'* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] "tiny")\r\n',
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] NIL)\r\n",
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3}\r\nabc)\r\n",
    # line ends and what follows the literal
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3}\nabc)\n",
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3}\r\nabc)\n",
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3}\r\r\nabc)\r\n",
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3}\r\nabc) \r\n",
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3}\r\nabc))\r\n",
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3}\r\nabc)x\r\n",
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3}\r\nabc\r\n",
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {4}\r\nabc)\r\n* 1 EXISTS\r\n",
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {2}\r\nabc)\r\n",
    b"* 12 FETCH (UID 5 FLAGS (\\Seen) BODY[] {3}\r\nabc)\r\n)\r\n",
    # unsolicited flag changes and other responses in between
    b"* 3 FETCH (UID 9 FLAGS (\\Seen NIL))\r\n",
    b"* 3 FETCH (FLAGS (\\Seen) MODSEQ (9))\r\n",
    b"* 3 FETCH (UID 9 FLAGS (\\Seen $a\xc2\xa0b))\r\n",
    b"* 3 FETCH (UID)\r\n",
    b"* 5 EXISTS\r\n* OK [ALERT] FETCH (UID 1 FLAGS () BODY[] {3}\r\nT1 OK done\r\n",
    b"+ go on\r\n",
]


def _general(pieces: list[bytes], limits: Limits) -> Outcome:
    out: list[object] = []
    framer = Framer(limits)
    try:
        for piece in pieces:
            framer.feed(piece)
            while (parts := framer.next()) is not None:
                resp = parse_response(parts, limits)
                if isinstance(resp, Untagged) and resp.name == "FETCH" and resp.number is not None:
                    out.append(parse_fetch(resp.number, resp.args))
                else:
                    out.append(resp)
    except ProtocolError as exc:
        return out, str(exc)
    return out, None


def _client_way(pieces: list[bytes], limits: Limits) -> Outcome:
    """What ImapConnection.data_received does during a bulk download."""
    out: list[object] = []
    framer = Framer(limits)
    try:
        for piece in pieces:
            framer.feed(piece)
            while True:
                batch: list[FetchData] = []
                waiting = framer.fetches(batch)
                assert all(type(d.body) is bytes for d in batch)
                out.extend(batch)
                if waiting:
                    break
                parts = framer.next()
                if parts is None:
                    break
                data = parse_fetch_response(parts, limits)
                out.append(data if data is not None else parse_response(parts, limits))
    except ProtocolError as exc:
        return out, str(exc)
    return out, None


_GOOD = _bulk(b"* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (2) BODY[]")
_GOOD_LINE = _GOOD.split(b"\r\n", 1)[0]
# Each bound just at what _GOOD needs, or just below.
_TIGHT = [
    DEFAULT_LIMITS,
    Limits(max_line=len(_GOOD_LINE)),
    Limits(max_literal=len(_BODY)),
    Limits(max_literal=len(_BODY) - 1),
    Limits(max_response=len(_GOOD_LINE) + len(_BODY)),
]


@pytest.mark.parametrize("limits", _TIGHT)
@pytest.mark.parametrize("data", FETCH_CORPUS)
def test_fetch_fast_paths_agree_with_the_general_parser(data: bytes, limits: Limits) -> None:
    assert _client_way([data], limits) == _general([data], limits)
    pieces = [data[i : i + 1] for i in range(len(data))]
    assert _client_way(pieces, limits) == _general(pieces, limits)


@pytest.mark.parametrize("limits", _TIGHT)
def test_fetch_fast_paths_agree_at_every_split(limits: Limits) -> None:
    for data in FETCH_CORPUS:
        stream = _GOOD + data + _GOOD + b"T1 OK done\r\n"
        for i in range(len(stream) + 1):
            pieces = [stream[:i], stream[i:]]
            assert _client_way(pieces, limits) == _general(pieces, limits), (data, i)


def test_fetch_fast_path_takes_the_bulk_shape() -> None:
    responses = [
        _bulk(b"* %d FETCH (UID %d FLAGS (\\Seen) MODSEQ (%d) BODY[]" % (n, n + 100, n))
        for n in range(1, 41)
    ]
    data = b"".join(responses)
    framer = Framer()
    framer.feed(data[:-1])
    got: list[FetchData] = []
    assert framer.fetches(got)  # the last one has not all arrived: wait for it
    assert len(got) == 39 and framer.buffered == len(responses[-1]) - 1
    framer.feed(data[-1:])
    assert not framer.fetches(got) and framer.buffered == 0
    assert [(d.seq, d.uid, d.modseq, d.flags, d.body) for d in got] == [
        (n, n + 100, n, ("\\Seen",), _BODY) for n in range(1, 41)
    ]
    assert got == _general([data], DEFAULT_LIMITS)[0]


def test_fetch_fast_path_leaves_a_begun_response_to_next() -> None:
    framer = Framer()
    framer.feed(b"* 1 FETCH (UID 1 BODY[HEADER] {%d}\r\n" % len(_GOOD))
    assert framer.next() is None
    framer.feed(_GOOD + b")\r\n" + _GOOD)
    got: list[FetchData] = []
    assert not framer.fetches(got) and not got  # _GOOD here is the literal's content
    assert framer.next() == [b"* 1 FETCH (UID 1 BODY[HEADER] {%d}" % len(_GOOD), _GOOD, b")"]
    assert not framer.fetches(got) and len(got) == 1 and got[0].body == _BODY


# --------------------------------------------------------------------------- LIST


def test_list_entries() -> None:
    r = one(b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n')
    assert isinstance(r, Untagged)
    e = parse_list(r.args)
    assert (
        e.attributes == {"\\hasnochildren", "\\sent"} and e.delimiter == "/" and e.name == b"Sent"
    )
    assert e.selectable

    r = one(b'* LIST (\\Noselect) "." {9}\r\nfoo.bar\r\n\r\n')
    assert isinstance(r, Untagged)
    e = parse_list(r.args)
    assert e.name == b"foo.bar\r\n" and not e.selectable and e.delimiter == "."

    r = one(b'* LIST () NIL "&ZeVnLIqe-" ("CHILDINFO" ("SUBSCRIBED"))\r\n')
    assert isinstance(r, Untagged)
    e = parse_list(r.args)
    assert e.delimiter is None and decode_mutf7(e.name) == "日本語"

    r = one(b'* LIST () "\\\\" "a\\\\b"\r\n')
    assert isinstance(r, Untagged)
    e = parse_list(r.args)
    assert e.delimiter == "\\" and e.name == b"a\\b"

    with pytest.raises(ProtocolError):
        parse_list([["\\Noselect"], b"//", b"x"])


# --------------------------------------------------------------------------- UID sets


@pytest.mark.parametrize(
    ("uids", "most", "max_text"),
    [
        (list(range(1, 3335)), 5000, 8000),  # a folder's first sync: one command
        (list(range(1, 20001)), 5000, 8000),
        (list(range(1, 20001, 2)), 5000, 8000),  # sparse: cut by the text length
        (list(range(1, 20001, 2)), 700, 8000),
        ([9, 1, 2, 2, 3, 100, 101, 7], 3, 10),  # unsorted, repeated
        ([4294967295, 4294967294, 1], 2, 12),
        (list(range(1, 50)) + list(range(60, 70, 3)), 10, 9),
        ([], 10, 10),
    ],
)
def test_uid_set_chunks_cover_every_uid_once_within_both_bounds(
    uids: list[int], most: int, max_text: int
) -> None:
    chunks = uid_set_chunks(uids, most, max_text)
    sets = [UidSet.parse(c) for c in chunks]
    assert [u for s in sets for u in s] == sorted(set(uids))
    assert all(len(s) <= most and len(c) <= max_text for s, c in zip(sets, chunks, strict=True))
    # Cut only where a bound made it: no chunk could have taken the next one's first run.
    for c, s, nxt in zip(chunks, sets, sets[1:], strict=False):
        first = nxt.ranges()[0]
        run = str(first[0]) if first[0] == first[1] else f"{first[0]}:{first[1]}"
        assert len(s) == most or len(c) + 1 + len(run) > max_text


def test_uid_set_chunks_of_a_whole_folder_is_one_range() -> None:
    assert uid_set_chunks(range(1, 3335), 5000, 8000) == ["1:3334"]
    assert uid_set_chunks(range(1, 12001), 5000, 8000) == ["1:5000", "5001:10000", "10001:12000"]


def test_uid_sets() -> None:
    s = UidSet.parse("5:3,9,10,1")
    assert list(s) == [1, 3, 4, 5, 9, 10] and str(s) == "1,3:5,9:10" and len(s) == 6
    assert uid_set([7, 1, 2, 3, 3]) == "1:3,7"
    huge = UidSet.parse("1:4294967295")  # never expanded to test membership or size
    assert 4294967295 in huge and 0 not in huge and len(huge) == 4294967295
    for bad in ("", "1:*", "0", "a", "1,,2", "4294967296", "12345678901"):
        with pytest.raises(ProtocolError):
            UidSet.parse(bad)


# --------------------------------------------------------------------------- modified UTF-7


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("INBOX", b"INBOX"),
        ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Entwürfe", b"Entw&APw-rfe"),
        ("A & B", b"A &- B"),
        ("&&", b"&-&-"),
        ("😀 emoji", b"&2D3eAA- emoji"),
        ("tab\there", b"tab&AAk-here"),
        ("", b""),
    ],
)
def test_mutf7_round_trips(text: str, wire: bytes) -> None:
    assert encode_mutf7(text) == wire
    assert decode_mutf7(wire) == text


@pytest.mark.parametrize(
    "wire",
    [b"&", b"&Jjo", b"&Jj*-", b"caf\xe9", b"a\tb", b"&AGE", b"&2D3-"],
)
def test_mutf7_rejects_invalid(wire: bytes) -> None:
    with pytest.raises((ValueError, UnicodeDecodeError)):
        decode_mutf7(wire)


def test_mutf7_many_random_round_trips() -> None:
    import random

    rng = random.Random(5)
    alphabet = "abc&-/. ~" + "äöüß日本語" + "\U0001f600" + "\x01"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        wire = encode_mutf7(text)
        assert wire.isascii() and decode_mutf7(wire) == text


# --------------------------------------------------------------------------- command text


def test_astring_quotes_or_makes_a_literal() -> None:
    assert astring(b"INBOX") == b'"INBOX"'
    assert astring(b'a"b\\c') == b'"a\\"b\\\\c"'
    for raw in (b"p\xc3\xa4ss", b"a\r\nb", b"nul\0"):
        lit = astring(raw)
        assert isinstance(lit, Literal) and lit == raw
