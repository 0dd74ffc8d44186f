"""The query language: every operator, combinations, and errors that point at the bad part."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tui_mail.search.query import (
    And,
    Not,
    Or,
    QueryError,
    Term,
    describe_error,
    parse_query,
    resolve_date,
)


def terms(text: str) -> list[tuple[str, str]]:
    return [(t.field, t.value) for t in parse_query(text).terms()]


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("hello", "text", "hello"),
        ("from:alice@example.com", "from", "alice@example.com"),
        ("to:bob", "to", "bob"),
        ("cc:carol", "cc", "carol"),
        ("subject:report", "subject", "report"),
        ("body:invoice", "body", "invoice"),
        ("folder:Lists/py", "folder", "Lists/py"),
        ("in:INBOX", "folder", "INBOX"),
        ("account:work", "account", "work"),
        ("has:attachment", "has", "attachment"),
        ("has:attachments", "has", "attachment"),
        ("is:unread", "is", "unread"),
        ("is:READ", "is", "read"),
        ("is:flagged", "is", "flagged"),
        ("is:starred", "is", "starred"),
        ("is:answered", "is", "answered"),
        ("is:draft", "is", "draft"),
        ("before:2024-01-31", "before", "2024-01-31"),
        ("after:7d", "after", "7d"),
        ("FROM:x", "from", "x"),
    ],
)
def test_each_operator(text: str, field: str, value: str) -> None:
    root = parse_query(text).root
    assert isinstance(root, Term)
    assert (root.field, root.value) == (field, value)
    assert (root.pos, root.end) == (0, len(text))


def test_quoted_phrases_and_quoted_values() -> None:
    root = parse_query('"quarterly report" from:"Alice Smith"').root
    assert isinstance(root, And)
    phrase, sender = root.children
    assert isinstance(phrase, Term) and phrase.phrase and phrase.value == "quarterly report"
    assert isinstance(sender, Term) and sender.field == "from" and sender.value == "Alice Smith"
    escaped = parse_query(r'"say \"hi\" now"').root
    assert isinstance(escaped, Term) and escaped.value == 'say "hi" now'


def test_prefix_in_word_fields() -> None:
    for text, field in (("from:ali*", "from"), ("to:bo*", "to"), ("subject:rep*", "subject")):
        root = parse_query(text).root
        assert isinstance(root, Term) and root.prefix and root.field == field
        assert root.value == text.split(":")[1].rstrip("*")
    quoted = parse_query('from:"ali*"').root
    assert isinstance(quoted, Term) and not quoted.prefix
    folder = parse_query("folder:Lists/*").root
    assert isinstance(folder, Term) and folder.value == "Lists/*" and not folder.prefix


def test_prefix_word() -> None:
    root = parse_query("deplo*").root
    assert isinstance(root, Term) and root.prefix and root.value == "deplo"
    quoted = parse_query('"deplo*"').root
    assert isinstance(quoted, Term) and not quoted.prefix


def test_implicit_and_or_not_and_precedence() -> None:
    root = parse_query("a b OR c -d").root
    # OR binds looser than the implicit AND: (a b) OR (c -d).
    assert isinstance(root, Or)
    left, right = root.children
    assert isinstance(left, And) and [c.value for c in left.children] == ["a", "b"]  # type: ignore[union-attr]
    assert isinstance(right, And)
    assert isinstance(right.children[1], Not)
    assert terms("a AND b") == [("text", "a"), ("text", "b")]
    assert isinstance(parse_query("NOT from:x").root, Not)
    assert isinstance(parse_query("-from:x").root, Not)


def test_parentheses_and_flattening() -> None:
    root = parse_query("(a OR b) (c OR (d OR e))").root
    assert isinstance(root, And)
    first, second = root.children
    assert isinstance(first, Or) and len(first.children) == 2
    assert isinstance(second, Or) and len(second.children) == 3  # nested OR flattened
    assert terms("((a))") == [("text", "a")]
    assert isinstance(parse_query("((a))").root, Term)
    # Double negation cancels.
    assert isinstance(parse_query("-(-a)").root, Term)


def test_lowercase_operators_are_words() -> None:
    assert terms("cats or dogs and not mice") == [
        ("text", w) for w in ("cats", "or", "dogs", "and", "not", "mice")
    ]


def test_hyphenated_and_punctuated_words() -> None:
    assert terms("e-mail c++ 12:30") == [("text", "e-mail"), ("text", "c++"), ("text", "12:30")]


def _error(text: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse_query(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("", 0, "empty query"),
        ("   ", 3, "empty query"),
        ("hello frm:bob", 6, "did you mean 'from:'"),
        ("from: bob", 0, "needs a value"),
        ('subject:"unclosed', 8, "unclosed quote"),
        ('a "b', 2, "unclosed quote"),
        ("(a OR b", 0, "unclosed '('"),
        ("a b)", 3, "unmatched ')'"),
        ("()", 0, "empty parentheses"),
        ("OR a", 0, "before it"),
        ("a OR", 2, "after it"),
        ("a OR OR b", 2, "after it"),
        ("a AND", 2, "AND needs"),
        ("NOT", 0, "must be followed"),
        ("a - b", 2, "'-' must be followed"),
        ("is:unred", 3, "unknown is:unred"),
        ("has:pdf", 4, "has:attachment"),
        ("before:yesterdays", 7, "cannot read the date"),
        ("after:2024-02-30", 6, "not a real date"),
        ("after:2024/01/01", 6, "cannot read the date"),
        ("!!!", 0, "no letters or digits"),
        ("subject:--", 8, "needs letters or digits"),
        ("re: hello", 0, "unknown search operator 're:'"),
    ],
)
def test_errors_point_at_the_bad_part(text: str, position: int, fragment: str) -> None:
    err = _error(text)
    assert fragment in err.message
    assert err.position == position


def test_error_pointer_and_message() -> None:
    text = "from:alice is:unred"
    err = _error(text)
    assert err.pointer(text).splitlines() == [text, " " * 14 + "^" * 5]
    assert str(err).endswith("(at character 15)")
    shown = describe_error(text, err, "search: ")
    assert shown.startswith("search: unknown is:unred")
    assert shown.splitlines()[1:] == ["  " + text, "  " + " " * 14 + "^^^^^"]


def test_unknown_operator_suggests_quotes() -> None:
    err = _error("http://example.com")
    assert '"http://example.com"' in err.message
    assert err.length == len("http:")


def test_deep_nesting_is_refused_not_crashing() -> None:
    assert "too deeply" in _error("(" * 500 + "a" + ")" * 500).message
    assert "too deeply" in _error("-" * 500 + "a").message
    assert "too long" in _error("a " * 3000).message


def test_dates_resolve_to_local_midnight_and_ages() -> None:
    now = time.mktime(dt.datetime(2024, 3, 10, 15, 30).timetuple())
    day = parse_query("after:2024-03-01").terms()[0]
    assert day.timestamp(now) == int(time.mktime(dt.date(2024, 3, 1).timetuple()))
    week = parse_query("before:2w").terms()[0]
    assert week.timestamp(now) == int(now) - 14 * 86400
    for unit, days in (("d", 1), ("w", 7), ("m", 30), ("y", 365)):
        term = parse_query(f"after:3{unit}").terms()[0]
        assert term.date == ("rel", 3 * days)
    today = parse_query("after:today").terms()[0]
    assert today.timestamp(now) == int(time.mktime(dt.date(2024, 3, 10).timetuple()))
    assert resolve_date(("day", 1), now) == int(time.mktime(dt.date(2024, 3, 9).timetuple()))


def test_term_positions_cover_the_source() -> None:
    text = '  from:"A B"   -is:read (x OR "y z")'
    for t in parse_query(text).terms():
        assert text[t.pos : t.end].lstrip("-") in {'from:"A B"', "is:read", "x", '"y z"'}
