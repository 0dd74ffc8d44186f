"""Address completion: seen and sent-to addresses ranked by use, plus an external command."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui_mail.addressbook import (
    AddressBook,
    command_argv,
    parse_address_text,
    parse_command_output,
    query_address_command,
    run_address_command,
)
from tui_mail.core.models import Address
from tui_mail.store.index import MailIndex, format_addresses
from tui_mail.store.maildir import StoredFile
from tui_mail.store.parse import ParsedHeaders

ME = Address("Me", "me@home.example")


def _msg(
    n: int, sender: Address, to: tuple[Address, ...], cc: tuple[Address, ...] = ()
) -> tuple[StoredFile, ParsedHeaders, None]:
    parsed = ParsedHeaders(n, sender, to, cc, "s", f"<{n}@x>", "", (), False, "", "")
    return StoredFile("INBOX", f"k{n}", "cur", "S", Path("/x"), 1, 0.0), parsed, None


ANN = Address("Ann Lee", "ann@work.example")
BOB = Address("Bob Stone", "bob@work.example")
CAROL = Address('Carol "CJ" Jones', "carol@else.example")
DAN = Address("", "dan@else.example")
ZOE = Address("Zoë Ångström", "zoe@umlaut.example")


@pytest.fixture
def index(tmp_path: Path) -> Iterator[MailIndex]:
    idx = MailIndex.open(tmp_path / "i.sqlite3")
    items = [
        _msg(1, ANN, (ME,)),
        _msg(2, ANN, (ME, BOB)),
        _msg(3, ANN, (ME,), (CAROL,)),
        _msg(4, BOB, (ME,)),
        _msg(5, ME, (DAN,)),  # the user wrote to Dan twice: Dan outranks Ann
        _msg(6, ME, (DAN, ZOE)),
        _msg(7, Address("Ann L.", "ANN@work.example"), (ME,)),  # newest spelling, other case
    ]
    idx.upsert_many("acct", "INBOX", items)
    yield idx
    idx.close()


def test_ranked_by_use_sent_first(index: MailIndex) -> None:
    book = AddressBook([ME.addr])
    book.load(index)
    assert [a.addr for a in book.complete_local("", 10)] == []  # nothing typed, nothing offered
    addrs = [c.addr.lower() for c in book.ranked()]
    # Sent-to counts five times: Dan (sent 2) and Zoë (sent 1) before Ann (seen 4).
    assert addrs[:3] == ["dan@else.example", "zoe@umlaut.example", "ann@work.example"]
    assert ME.addr not in addrs  # your own address is not offered
    ann = next(c for c in book.ranked() if c.addr.lower() == "ann@work.example")
    assert (ann.seen, ann.sent, ann.name) == (4, 0, "Ann L.")


def test_prefixes_match_address_name_and_words(index: MailIndex) -> None:
    book = AddressBook([ME.addr])
    book.load(index)
    assert [a.addr for a in book.complete("ann")] == ["ANN@work.example"]
    assert [a.addr for a in book.complete("stone")] == ["bob@work.example"]
    assert [a.addr for a in book.complete("CJ")] == []  # not the start of a word
    assert [a.name for a in book.complete('"cj"')] == ['Carol "CJ" Jones']
    assert [a.addr for a in book.complete("zo")] == ["zoe@umlaut.example"]
    assert [a.addr for a in book.complete("ångs")] == ["zoe@umlaut.example"]
    assert len(book.complete("", 5)) == 0
    assert [a.addr for a in book.complete("d", 1)] == ["dan@else.example"]


def test_note_sent_counts_at_once(index: MailIndex) -> None:
    book = AddressBook([ME.addr])
    book.load(index)
    for _ in range(3):
        book.note_sent([BOB])
    assert book.ranked()[0].addr == "bob@work.example"
    book.note_sent([Address("New Person", "new@x.example"), Address("", "not an address")])
    assert [a.name for a in book.complete("new")] == ["New Person"]
    assert book.complete("not") == []


def test_parse_the_index_address_text() -> None:
    people = [ANN, Address('Smith, "J"', "js@x.example"), DAN, Address("a\\b", "ab@x.example")]
    assert parse_address_text(format_addresses(people)) == people
    assert parse_address_text("") == []


def test_external_command_argv() -> None:
    assert command_argv(["abook", "--mutt-query", "{}"], "ann") == ["abook", "--mutt-query", "ann"]
    assert command_argv(["khard", "email", "--parsable"], "ann") == [
        "khard",
        "email",
        "--parsable",
        "ann",
    ]


def test_external_command_output() -> None:
    text = (
        "searching...\n"
        "ann@ext.example\tAnn External\tfriends\n"
        "\n"
        "bad line without address\n"
        "x@y.example\t\x1b[31mEvil\x1b[0m\n"
        "plain@z.example\n"
    )
    found = parse_command_output(text)
    assert [a.addr for a in found] == ["ann@ext.example", "x@y.example", "plain@z.example"]
    assert found[0].name == "Ann External"
    assert "\x1b" not in found[1].name


def test_external_command_runs_without_a_shell(tmp_path: Path, index: MailIndex) -> None:
    script = tmp_path / "book.py"
    script.write_text(
        "import sys\n"
        "q = sys.argv[1]\n"
        "print(f'{q}-ext@x.example\\tFrom Command')\n"
        "print('ann@work.example\\tDuplicate of a local one')\n"
    )
    command = [sys.executable, str(script), "{}"]
    # Shell syntax in what was typed is just an argument (and not an address).
    assert run_address_command(command, "a; rm -rf ~") == [
        Address("Duplicate of a local one", "ann@work.example")
    ]
    book = AddressBook([ME.addr], command)
    book.load(index)
    got = book.complete("ann", 5)
    assert [a.addr for a in got] == ["ANN@work.example", "ann-ext@x.example"]


def test_external_command_failures_are_empty(tmp_path: Path) -> None:
    assert run_address_command([str(tmp_path / "missing")], "x") == []
    assert run_address_command([sys.executable, "-c", "import time; time.sleep(5)"], "x", 0.2) == []
    assert run_address_command([sys.executable, "-c", "raise SystemExit(3)"], "x") == []


def test_escapes_never_make_an_address() -> None:
    text = "a\x1b[2J@x.example\tName\nb@x\x07.example\n\u202eevil@x.example\nok@x.example\n"
    assert [a.addr for a in parse_command_output(text)] == ["ok@x.example"]


def test_a_hung_command_is_killed_with_its_children(tmp_path: Path) -> None:
    # The shell's child holds the output pipe: only killing the whole group ends it.
    script = tmp_path / "hang.sh"
    script.write_text("#!/bin/sh\necho 'early@x.example'\nsleep 60\n")
    script.chmod(0o755)
    started = time.monotonic()
    found, problem = query_address_command([str(script)], "x", 0.5)
    assert found == [] and "timed out after 0.5 s" in problem
    assert time.monotonic() - started < 20
    missing, problem = query_address_command([str(tmp_path / "missing")], "x")
    assert missing == [] and "missing" in problem and "No such file" in problem
