"""run_query on the demo account, checked against the Python oracle; folders; IMAP; CLI."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_search_oracle import Record, expected, load_records

from tui_mail import paths
from tui_mail.backends.base import SearchTerm
from tui_mail.cli import main
from tui_mail.demo.generate import DEFAULT_NOW, generate_demo
from tui_mail.demo.setup import DEMO_ACCOUNT, ensure_demo
from tui_mail.search.imap import server_search_plan, server_searches
from tui_mail.search.query import QueryError, parse_query
from tui_mail.search.run import (
    SEARCH_INDEX,
    SearchFolder,
    compile_query,
    count_query,
    fts_expression,
    ids_for_uids,
    run_query,
    virtual_folders,
)
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex

NOW = float(DEFAULT_NOW)


def _demo_index(root: Path, fill: bool) -> tuple[MailIndex, Path]:
    """The demo account indexed the way ensure_demo does it (bulk: bodies pending),
    and with `fill` the full-text backlog worked off as the sync worker would."""
    db = root / "index.sqlite3"
    index = MailIndex.open(db)
    store = AccountStore(DEMO_ACCOUNT, root / "mail", index)
    by_folder: dict[str, list[tuple[bytes, str, None]]] = {}
    for message in generate_demo():
        by_folder.setdefault(message.folder, []).append((message.raw, message.flags, None))
    for folder, messages in by_folder.items():
        store.deliver_many(folder, messages)
    while fill and store.fill_fts():
        pass
    return index, db


@pytest.fixture(scope="module", params=["filled", "pending"])
def demo_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MailIndex, Path]]:
    """Both states of the index: every body searchable, or none yet (just delivered)."""
    index, db = _demo_index(tmp_path_factory.mktemp("demo-search"), request.param == "filled")
    assert (index.fts_pending_count() == 0) == (request.param == "filled")
    yield index, db
    index.close()


@pytest.fixture(scope="module")
def records(demo_db: tuple[MailIndex, Path]) -> list[Record]:
    return load_records(demo_db[1])


@pytest.fixture
def index(demo_db: tuple[MailIndex, Path]) -> MailIndex:
    return demo_db[0]


DEMO_QUERIES = [
    "textual",
    "release planning",
    '"release planning"',
    "planning -release",
    "relea*",
    "subject:planning",
    "body:thanks",
    "from:chloé",
    "from:chloe",
    "from:sofia.rossi@example.net",
    "from:example.net",
    "from:forge subject:oauth2",
    "from:sof*",
    "from:forg",
    "to:kenj* -cc:priya",
    "subject:plan*",
    "body:thank*",
    "to:you@demo.example",
    "to:textual",
    "cc:demo",
    "cc:you",
    "folder:INBOX",
    "folder:inbox",
    "folder:lists/*",
    "folder:Sent is:read",
    "folder:nosuch",
    "account:demo",
    "account:nobody",
    "has:attachment",
    "is:unread",
    "is:read",
    "is:flagged",
    "is:answered",
    "is:draft",
    "is:read -is:answered",
    "after:30d",
    "before:90d",
    "before:2025-06-01",
    "after:2025-01-01 before:2025-03-01",
    "after:today",
    "is:flagged OR has:attachment",
    "(textual OR python) -folder:Archive",
    "NOT textual",
    "-from:forge",
    "-textual -python",
    "textual OR from:sofia",
    "-(is:unread OR is:flagged)",
    "(release OR textual) (planning OR survey)",
    "textual has:attachment OR is:flagged -folder:Sent",
    'subject:"[textual-users]"',
    "café",
    "-café is:unread",
    "to:demo -to:kenji",
    "release -subject:release",
    "release -(subject:release)",
    "-(release planning)",
]


@pytest.mark.parametrize("text", DEMO_QUERIES)
def test_demo_queries_match_the_oracle(index: MailIndex, records: list[Record], text: str) -> None:
    query = parse_query(text)
    assert run_query(index, query, now=NOW) == expected(records, query, NOW)


def test_the_demo_queries_are_not_trivial(index: MailIndex, records: list[Record]) -> None:
    sizes = [len(run_query(index, parse_query(q), now=NOW)) for q in DEMO_QUERIES]
    total = len(records)
    # Most queries find something and leave something out: agreement means something.
    # (Before the bodies are indexed, body: finds nothing; a few others are meant empty.)
    assert sum(0 < n < total for n in sizes) >= len(DEMO_QUERIES) - 9


@pytest.mark.parametrize(
    "text",
    [
        "'; DROP TABLE messages; --",
        '"a"" OR ""b"',
        "NEAR(release planning)",
        "subject:release* OR body:*",
        "{subject}:x",
        'from:"x\\" OR 1=1 --"',
        "release^ planning:",
        "%_%",
        "from:%",
        "to:_",
        "folder:%",
    ],
)
def test_hostile_text_is_only_data(index: MailIndex, records: list[Record], text: str) -> None:
    try:
        query = parse_query(text)
    except Exception as exc:  # a QueryError is fine; nothing else is
        assert type(exc).__name__ == "QueryError"
        return
    assert run_query(index, query, now=NOW) == expected(records, query, NOW)
    where, _ = compile_query(query, [("demo", "INBOX")], now=NOW)
    for term in query.terms():
        if term.field not in ("is", "has", "before", "after", "folder") and len(term.value) > 3:
            assert term.value not in where  # user text travels as parameters only
    assert index.execute_read("SELECT count(*) FROM messages")[0][0] == len(records)


def test_fts_groups_one_match_per_and() -> None:
    expr = fts_expression(parse_query("a b -c").root)
    col = "{subject body}"
    assert expr == f'(({col} : "a") AND ({col} : "b")) NOT ({col} : "c")'
    assert fts_expression(parse_query("-c").root) is None  # FTS5 NOT needs a left side
    assert fts_expression(parse_query("a is:unread").root) is None
    where, params = compile_query(parse_query("a b -c is:unread"), [])
    assert where.count("MATCH") == 1
    assert len(params) == 1
    where, _ = compile_query(parse_query("-a -b"), [])
    assert where.count("NOT IN") == 2


def test_accounts_limit_and_counts(index: MailIndex) -> None:
    query = parse_query("is:unread")
    all_ids = run_query(index, query)
    assert run_query(index, query, accounts=["demo"]) == all_ids
    assert run_query(index, query, accounts=[]) == []
    assert run_query(index, query, accounts=["other"]) == []
    assert run_query(index, query, limit=5) == all_ids[:5]
    assert run_query(index, query, limit=0) == []
    total, unread = count_query(index, query)
    assert total == unread == len(all_ids)
    total, unread = count_query(index, parse_query("folder:INBOX"))
    assert (total, unread) == index.folder_counts("demo")["INBOX"]


def test_the_search_index_is_created_once(index: MailIndex) -> None:
    run_query(index, parse_query("is:flagged"))
    names = {r[0] for r in index.execute_read("SELECT name FROM sqlite_master")}
    assert "messages_search_by_date" in names
    assert "IF NOT EXISTS" in SEARCH_INDEX


def test_a_search_does_not_wait_long_for_a_writer_to_make_its_index(tmp_path: Path) -> None:
    """A sync in another process holding the write lock: the first search goes on
    without messages_search_by_date after INDEX_WAIT (not busy_timeout's 5 s), and
    the next search, the lock released, makes it."""
    index = MailIndex(tmp_path / "index.sqlite3")
    other = sqlite3.connect(index.path, isolation_level=None)

    def names() -> set[str]:
        return {r[0] for r in index.execute_read("SELECT name FROM sqlite_master")}

    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        assert run_query(index, parse_query("is:flagged")) == []
        assert time.monotonic() - started < 2.0
        assert "messages_search_by_date" not in names()
        other.execute("ROLLBACK")
        run_query(index, parse_query("is:flagged"))
        assert "messages_search_by_date" in names()
    finally:
        other.close()
        index.close()


def test_search_folder_pages_like_a_folder(index: MailIndex) -> None:
    folder = SearchFolder.run(index, "unread", parse_query("is:unread"))
    assert folder.total == index.unread_total("demo")
    page = folder.page(index, 0, 10)
    assert [e.ref.id for e in page] == folder.ids[:10]
    assert all("S" not in e.flags.to_maildir() for e in page)
    assert [e.date for e in page] == sorted((e.date for e in page), reverse=True)
    assert folder.page(index, folder.total, 10) == []
    # Acting on a result acts on the real message; a refresh shows the change.
    first = page[0]
    index.set_flags(first.ref.account, first.ref.folder, first.ref.key, "S")
    try:
        assert folder.page(index, 0, 1)[0].ref == first.ref  # ids fixed until refresh
        folder.refresh(index)
        assert first.ref.id not in folder.ids
    finally:
        index.set_flags(first.ref.account, first.ref.folder, first.ref.key, "")


def test_search_folder_merges_server_hits(index: MailIndex) -> None:
    folder = SearchFolder.run(index, "q", parse_query("subject:planning"))
    extra = run_query(index, parse_query("is:flagged"), limit=3)
    folder.merge_ids(index, extra)
    assert set(extra) <= set(folder.ids)
    dates = [e.date for e in index.envelopes(folder.ids)]
    assert dates == sorted(dates, reverse=True)


def test_ids_for_uids(tmp_path: Path) -> None:
    from tui_mail.core.models import ServerId
    from tui_mail.store.maildir import StoredFile
    from tui_mail.store.parse import empty_headers

    idx = MailIndex.open(tmp_path / "i.sqlite3")
    try:
        stored = StoredFile("INBOX", "k1", "cur", "", tmp_path, 1, 0.0)
        (msg_id,) = idx.upsert_many("a", "INBOX", [(stored, empty_headers(1), ServerId(uid=7))])
        assert ids_for_uids(idx, "a", "INBOX", [7, 8]) == ([msg_id], [8])
    finally:
        idx.close()


def test_virtual_folders_and_live_counts(index: MailIndex) -> None:
    folders = virtual_folders({"Flagged": "is:flagged", "broken": "frm:x"})
    assert [f.name for f in folders] == ["Unified inbox", "Flagged"]  # bad query skipped
    unified, flagged = folders
    assert unified.unified_inbox
    assert unified.counts(index) == index.folder_counts("demo")["INBOX"]
    assert unified.counts(index, accounts=["other"]) == (0, 0)
    opened = unified.open(index)
    assert opened.total == index.count("demo", "INBOX")
    total, _ = flagged.counts(index)
    assert total == len(run_query(index, parse_query("is:flagged")))


# --------------------------------------------------------------------------- IMAP


def _plan(text: str, folder: str = "INBOX") -> list[list[SearchTerm]] | None:
    return server_searches(parse_query(text), "work", folder, now=NOW)


def test_server_terms_each_operator() -> None:
    T = SearchTerm
    assert _plan("hello") == [[T("text", "hello")]]
    assert _plan('from:bob to:ann cc:x subject:"a b" body:y') == [
        [T("from", "bob"), T("to", "ann"), T("cc", "x"), T("subject", "a b"), T("body", "y")]
    ]
    assert _plan("is:unread is:read is:flagged is:answered is:draft") == [
        [
            T("seen", None, True),
            T("seen", None, False),
            T("flagged", None, False),
            T("answered", None, False),
            T("draft", None, False),
        ]
    ]
    assert _plan("-is:flagged -is:unread") == [[T("flagged", None, True), T("seen", None, False)]]
    assert _plan("has:attachment") == [[T("header:Content-Type", "multipart/mixed")]]
    assert _plan("after:2024-03-07 before:2024-04-01") == [
        [T("since", dt.date(2024, 3, 7)), T("before", dt.date(2024, 4, 1))]
    ]
    assert _plan("-from:x") == [[T("from", "x", True)]]


def test_server_terms_or_and_negated_groups() -> None:
    T = SearchTerm
    # ORs multiply out into separate searches whose union is the answer.
    assert _plan("(a OR b) is:flagged") == [
        [T("text", "a"), T("flagged")],
        [T("text", "b"), T("flagged")],
    ]
    assert _plan("-(a OR b)") == [[T("text", "a", True), T("text", "b", True)]]
    assert _plan("-(a b)") == [[T("text", "a", True)], [T("text", "b", True)]]
    with pytest.raises(QueryError):
        _plan(" ".join(f"(a{i} OR b{i})" for i in range(6)))  # 64 searches: refused


def test_server_terms_fold_folder_and_account() -> None:
    q = "folder:INBOX OR (folder:Archive is:flagged)"
    assert _plan(q, "INBOX") == [[]]  # everything there
    assert _plan(q, "Archive") == [[SearchTerm("flagged")]]
    assert _plan(q, "Sent") is None  # not asked at all
    assert _plan("account:home x") is None
    assert _plan("account:work x") == [[SearchTerm("text", "x")]]
    assert _plan("-folder:Trash", "Trash") is None
    plan = server_search_plan(parse_query("is:unread -folder:Trash"), "w", ["INBOX", "Trash"])
    assert plan == {"INBOX": [[SearchTerm("seen", None, True)]]}


def test_server_terms_are_what_the_imap_backend_accepts() -> None:
    from tui_mail.backends.imap.backend import search_keys

    for text in ("hello -from:x is:unread has:attachment after:7d", "-(a OR b) before:2024-01-01"):
        for conj in _plan(text) or []:
            assert search_keys(conj)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def demo_installed() -> None:
    ensure_demo()


def test_cli_search_prints_inert_lines(
    demo_installed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "verify", "your", "mailbox"]) == 0
    out = capsys.readouterr().out
    assert "URGENT" in out
    assert "\x1b" not in out and "\x07" not in out
    assert main(["search", "--format", "json", "--limit", "2", "is:unread"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert {"id", "subject", "folder", "flags"} <= set(json.loads(lines[0]))
    assert main(["search", "--format", "{folder}|{from_addr}", "folder:Sent"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("Sent|") for line in lines)
    assert main(["search", "--account", "demo", "--", "-is:read", "folder:INBOX"]) == 0


def test_cli_search_errors(demo_installed: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "from:alice", "is:unred"]) == 2
    err = capsys.readouterr().err
    assert "unknown is:unred" in err
    assert "  from:alice is:unred\n" in err
    assert "  " + " " * 14 + "^^^^^" in err
    assert main(["search", "zzzznothing"]) == 1
    assert main(["search", "--format", "{nope}", "x"]) == 2
    assert main(["search", "--account", "nobody", "x"]) == 2
    assert "nobody" in capsys.readouterr().err
    assert main(["search", "--limit", "0", "x"]) == 2


def test_config_searches_are_checked(tmp_path: Path) -> None:
    from tui_mail.config.load import parse_config
    from tui_mail.core.errors import ConfigError

    base = '[accounts.a]\nemail = "a@b.example"\nreceive = { backend = "maildir", path = "m" }\n'
    cfg = parse_config(base + '[searches]\nflagged = "is:flagged"\n', tmp_path / "c.toml")
    assert cfg.searches == {"flagged": "is:flagged"}
    with pytest.raises(ConfigError) as info:
        parse_config(base + '[searches]\nbad = "from:x is:unred"\n', tmp_path / "c.toml")
    assert "searches.bad" in str(info.value)
    assert "character 11" in str(info.value) and "unknown is:unred" in str(info.value)
    with pytest.raises(ConfigError):
        parse_config(base + "[searches]\nbad = 3\n", tmp_path / "c.toml")
    cfg = parse_config(base + '[ui]\naddress_book_cmd = ["abook", "{}"]\n', tmp_path / "c.toml")
    assert cfg.ui.address_book_cmd == ("abook", "{}")
    with pytest.raises(ConfigError):
        parse_config(base + '[ui]\naddress_book_cmd = "abook"\n', tmp_path / "c.toml")


def test_quotes_and_syntax_in_values(index: MailIndex, records: list[Record]) -> None:
    # Quotes, parentheses and operator words inside values: still one parameter each,
    # the statement still runs, and the answer is still the oracle's.
    query = parse_query('from:"\'" to:"\\"" subject:")(x" -"NOT" OR "a AND b" body:x\'y')
    where, params = compile_query(query, [("demo", "INBOX")])
    assert where.count("?") == len(params)
    assert run_query(index, query, now=NOW) == expected(records, query, NOW)


def test_cli_search_indexes_bodies_a_sync_left_for_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A one-shot `tui-mail sync` stores headers only and leaves bodies pending; the
    # first search must still find a word that is only in a body.
    mail = tmp_path / "Mail"
    config = tmp_path / "config.toml"
    config.write_text(
        '[accounts.home]\nemail = "h@localhost"\n'
        f'[accounts.home.receive]\nbackend = "maildir"\npath = "{mail}"\n'
    )
    index = MailIndex(paths.index_path())
    store = AccountStore("home", mail, index)
    raw = b"From: a@example.org\nSubject: plain\n\nthe word zebracorn is only here\n"
    store.index_files("INBOX", store.write_files("INBOX", [(raw, "", None)] * 3))
    assert index.fts_pending_count("home") == 3
    index.close()

    assert main(["--config", str(config), "search", "zebracorn"]) == 0
    assert capsys.readouterr().out.count("plain") == 3
    with MailIndex(paths.index_path()) as index:
        assert index.fts_pending_count("home") == 0
    # Without a usable config the index alone still answers (headers only).
    assert main(["--config", str(tmp_path / "missing.toml"), "search", "subject:plain"]) == 0
