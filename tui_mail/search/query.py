"""The search query language: text in, a small syntax tree out. No I/O, no SQL.

    meeting notes                 free text (subject and body), every word must match
    "exact phrase"  deplo*        a phrase; a word prefix
    from:alice  to:bob  cc:x      a word of the name or address (from:example.com, from:ali*)
    subject:report  body:invoice  words in that part only
    folder:INBOX  folder:Lists/*  account:work
    has:attachment  is:unread is:read is:flagged is:answered is:draft
    after:2024-01-01  before:2024-02-01   (after: includes the day, before: does not)
    after:7d  before:2w  after:today       (d w m y: days, weeks, 30 days, 365 days)
    -word  -from:x  NOT x   a OR b   ( ... )   implicit AND between terms

Operators OR, AND and NOT are recognised in capitals only, so a search for
the English words still works in lower case. Every error is a `QueryError`
carrying the character position of the bad part, for a caret under it.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import re
import time
from collections.abc import Callable
from typing import Literal, Union

from msgspec import Struct

# Field name -> canonical field. `in:` is Gmail's spelling of folder:.
FIELDS: dict[str, str] = {
    "from": "from",
    "to": "to",
    "cc": "cc",
    "subject": "subject",
    "body": "body",
    "folder": "folder",
    "in": "folder",
    "account": "account",
    "has": "has",
    "is": "is",
    "before": "before",
    "after": "after",
}
# Value of is: -> (flag letter, wanted present). Aliases read like other clients.
IS_VALUES: dict[str, tuple[str, bool]] = {
    "unread": ("S", False),
    "read": ("S", True),
    "seen": ("S", True),
    "flagged": ("F", True),
    "starred": ("F", True),
    "answered": ("R", True),
    "replied": ("R", True),
    "draft": ("D", True),
}
HAS_VALUES = ("attachment", "attachments", "attach")
# Fields that go to the full-text table (word semantics) rather than a column.
FTS_FIELDS = frozenset({"text", "subject", "body"})
_UNITS = {"d": 1, "w": 7, "m": 30, "y": 365}
_FIELD_PREFIX = re.compile(r"([A-Za-z]+):")
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_RELATIVE = re.compile(r"(\d{1,5})([dwmy])", re.I)
_OPERATORS = {"OR", "AND", "NOT"}
_MAX_DEPTH = 100  # of nested parentheses / NOTs: deeper is a mistake or an attack


class QueryError(ValueError):
    """A query that cannot be read. `position` is a 0-based index into the text."""

    def __init__(self, message: str, position: int, length: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.length = max(1, length)

    def pointer(self, text: str, indent: int = 0) -> str:
        """Two lines: the query, and a caret line under the bad part."""
        return f"{' ' * indent}{text}\n{' ' * (indent + self.position)}{'^' * self.length}"

    def __str__(self) -> str:
        return f"{self.message} (at character {self.position + 1})"


DateSpec = tuple[Literal["abs"], _dt.date] | tuple[Literal["rel"], int] | tuple[Literal["day"], int]


class Term(Struct, frozen=True):
    """One condition. `field` is canonical ("text" for free text); `pos`/`end` locate it."""

    field: str
    value: str
    pos: int
    end: int
    phrase: bool = False  # the value was quoted
    prefix: bool = False  # a word field's value ending in "*" (deplo*, from:ali*)
    date: DateSpec | None = None  # before:/after:, already validated

    def timestamp(self, now: float | None = None) -> int:
        """The unix time of a before:/after: boundary (local midnight for calendar days)."""
        assert self.date is not None
        return resolve_date(self.date, now)


class Not(Struct, frozen=True):
    child: Node


class And(Struct, frozen=True):
    children: tuple[Node, ...]


class Or(Struct, frozen=True):
    children: tuple[Node, ...]


Node = Union[Term, Not, And, Or]  # noqa: UP007 - a runtime alias used by isinstance users


class Query(Struct, frozen=True):
    text: str
    root: Node

    def terms(self) -> list[Term]:
        out: list[Term] = []
        _collect(self.root, out)
        return out


def _collect(node: Node, out: list[Term]) -> None:
    if isinstance(node, Term):
        out.append(node)
    elif isinstance(node, Not):
        _collect(node.child, out)
    else:
        for child in node.children:
            _collect(child, out)


def resolve_date(spec: DateSpec, now: float | None = None) -> int:
    now = time.time() if now is None else now
    kind, value = spec
    if kind == "abs":
        assert isinstance(value, _dt.date)
        return int(time.mktime(value.timetuple()))
    if kind == "day":  # today (0) / yesterday (1): local midnight
        assert isinstance(value, int)
        day = _dt.date.fromtimestamp(now) - _dt.timedelta(days=value)
        return int(time.mktime(day.timetuple()))
    assert isinstance(value, int)
    return int(now) - value * 86400


# --------------------------------------------------------------------------- lexer


class _Tok(Struct, frozen=True):
    kind: str  # "(" ")" "OR" "AND" "NOT" "-" "TERM"
    pos: int
    end: int
    field: str = ""  # TERM: the field as typed ("" for free text)
    field_pos: int = 0
    value: str = ""
    quoted: bool = False


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """The phrase starting at the quote at `start`; returns (value, index after it)."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise QueryError('unclosed quote: add the closing "', start)


def _read_word(text: str, i: int) -> int:
    while i < len(text) and not text[i].isspace() and text[i] not in '()"':
        i += 1
    return i


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()":
            toks.append(_Tok(ch, i, i + 1))
            i += 1
            continue
        if ch == "-":
            if i + 1 >= n or text[i + 1].isspace() or text[i + 1] == ")":
                raise QueryError("'-' must be followed by what to exclude, e.g. -from:bob", i)
            toks.append(_Tok("-", i, i + 1))
            i += 1
            continue
        if ch == '"':
            value, end = _read_quoted(text, i)
            toks.append(_Tok("TERM", i, end, value=value, quoted=True))
            i = end
            continue
        m = _FIELD_PREFIX.match(text, i)
        if m:
            vstart = m.end()
            if vstart < n and text[vstart] == '"':
                value, end = _read_quoted(text, vstart)
                quoted = True
            else:
                end = _read_word(text, vstart)
                value, quoted = text[vstart:end], False
            toks.append(_Tok("TERM", i, end, m.group(1), i, value, quoted))
            i = end
            continue
        end = _read_word(text, i)
        word = text[i:end]
        if word in _OPERATORS:
            toks.append(_Tok(word, i, end))
        else:
            toks.append(_Tok("TERM", i, end, value=word))
        i = end
    return toks


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _lex(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.parse_or()
        tok = self.peek()
        if tok is not None:  # only a ")" can stop parse_or early
            raise QueryError("unmatched ')': there is no '(' before it", tok.pos)
        return node

    def parse_or(self) -> Node:
        first = self.peek()
        if first is not None and first.kind == "OR":
            raise QueryError("OR needs a search term before it", first.pos, 2)
        children = [self.parse_and()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.take()
            nxt = self.peek()
            if nxt is None or nxt.kind in (")", "OR"):
                raise QueryError("OR needs a search term after it", tok.pos, 2)
            children.append(self.parse_and())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def parse_and(self) -> Node:
        children: list[Node] = []
        while (tok := self.peek()) is not None and tok.kind not in ("OR", ")"):
            if tok.kind == "AND":
                self.take()
                nxt = self.peek()
                if not children or nxt is None or nxt.kind in ("OR", ")", "AND"):
                    raise QueryError("AND needs a search term on both sides", tok.pos, 3)
                continue
            children.append(self.parse_unary())
        if not children:
            tok = self.peek()
            if tok is None:
                raise QueryError("empty query: type something to search for", len(self.text))
            raise QueryError("nothing to search for before ')'", tok.pos)
        return children[0] if len(children) == 1 else And(tuple(children))

    def parse_unary(self) -> Node:
        tok = self.take()
        if tok.kind in ("-", "NOT"):
            nxt = self.peek()
            if nxt is None or nxt.kind in (")", "OR", "AND"):
                raise QueryError(
                    f"'{tok.kind}' must be followed by what to exclude", tok.pos, tok.end - tok.pos
                )
            return Not(self.nested(self.parse_unary, tok))
        if tok.kind == "(":
            return self.nested(self.parse_group, tok)
        assert tok.kind == "TERM", tok
        return _term(tok)

    def parse_group(self) -> Node:
        open_tok = self.toks[self.i - 1]
        nxt = self.peek()
        if nxt is not None and nxt.kind == ")":
            raise QueryError("empty parentheses", open_tok.pos, nxt.end - open_tok.pos)
        inner = self.parse_or()
        close = self.peek()
        if close is None:
            raise QueryError("unclosed '(': add a ')'", open_tok.pos)
        self.take()
        return inner

    def nested(self, parse: Callable[[], Node], tok: _Tok) -> Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise QueryError("the query nests too deeply", tok.pos)
        try:
            return parse()
        finally:
            self.depth -= 1


def _has_word(value: str) -> bool:
    # The full-text tokenizer keeps letters and digits only: "!!!" would match nothing.
    return any(ch.isalnum() for ch in value)


def _term(tok: _Tok) -> Term:
    value = tok.value
    if not tok.field:
        prefix = not tok.quoted and len(value) > 1 and value.endswith("*")
        if prefix:
            value = value.rstrip("*")
        if not _has_word(value):
            what = f'"{tok.value}"' if tok.quoted else f"'{tok.value}'"
            raise QueryError(
                f"{what} has no letters or digits to search for", tok.pos, tok.end - tok.pos
            )
        return Term("text", value, tok.pos, tok.end, tok.quoted, prefix)
    name = tok.field.lower()
    field = FIELDS.get(name)
    vpos = tok.field_pos + len(tok.field) + 1
    vlen = max(1, tok.end - vpos)
    if field is None:
        close = difflib.get_close_matches(name, list(FIELDS), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}:'?" if close else ""
        raise QueryError(
            f"unknown search operator '{tok.field}:'{hint} (known: {', '.join(_KNOWN)});"
            f' to search for the text itself, put it in quotes: "{tok.field}:{value}"',
            tok.pos,
            len(tok.field) + 1,
        )
    if not value.strip() and not tok.quoted:
        raise QueryError(
            f"'{tok.field}:' needs a value right after the colon (no space), e.g. "
            f"{tok.field}:something",
            tok.pos,
            len(tok.field) + 1,
        )
    if field in FTS_FIELDS and not _has_word(value):
        raise QueryError(f"'{name}:' needs letters or digits to search for", vpos, vlen)
    if field in ("from", "to", "cc", "folder", "account") and not value.strip():
        raise QueryError(f"'{name}:' needs a value", vpos, vlen)
    if field == "is":
        key = value.lower()
        if key not in IS_VALUES:
            raise QueryError(
                f"unknown is:{value}; use one of is:{', is:'.join(IS_VALUES)}", vpos, vlen
            )
        value = key
    elif field == "has":
        if value.lower() not in HAS_VALUES:
            raise QueryError(f"unknown has:{value}; use has:attachment", vpos, vlen)
        value = "attachment"
    elif field in ("before", "after"):
        return Term(field, value, tok.pos, tok.end, tok.quoted, date=_date(value, vpos, vlen))
    elif field in _WORD_FIELDS and not tok.quoted and len(value) > 1 and value.endswith("*"):
        return Term(field, value.rstrip("*"), tok.pos, tok.end, False, prefix=True)
    return Term(field, value, tok.pos, tok.end, tok.quoted)


_KNOWN = [f"{f}:" for f in FIELDS if f != "in"]
# Fields matched by words in the full-text index, where "*" asks for a prefix.
_WORD_FIELDS = frozenset({"subject", "body", "from", "to", "cc"})


def _date(value: str, pos: int, length: int) -> DateSpec:
    v = value.strip().lower()
    if v == "today":
        return ("day", 0)
    if v == "yesterday":
        return ("day", 1)
    m = _RELATIVE.fullmatch(v)
    if m:
        return ("rel", int(m.group(1)) * _UNITS[m.group(2).lower()])
    m = _ISO_DATE.fullmatch(v)
    if m:
        try:
            return ("abs", _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))))
        except ValueError as exc:
            raise QueryError(f"not a real date: {value} ({exc})", pos, length) from None
    raise QueryError(
        f"cannot read the date '{value}': write 2024-01-31, or an age like 7d, 2w, 3m, 1y,"
        " or today / yesterday",
        pos,
        length,
    )


def parse_query(text: str) -> Query:
    """Parse a query; raises QueryError(message, position) on anything it cannot read."""
    if len(text) > 4000:
        raise QueryError("the query is too long (4000 characters at most)", 4000)
    return Query(text, _simplify(_Parser(text).parse()))


def _simplify(node: Node) -> Node:
    """Flatten nested AND/OR and drop double negation, so compilers see fewer shapes."""
    if isinstance(node, Term):
        return node
    if isinstance(node, Not):
        child = _simplify(node.child)
        return child.child if isinstance(child, Not) else Not(child)
    kind = type(node)
    flat: list[Node] = []
    for child in node.children:
        c = _simplify(child)
        if isinstance(c, kind):
            flat.extend(c.children)  # type: ignore[union-attr]
        else:
            flat.append(c)
    return flat[0] if len(flat) == 1 else kind(tuple(flat))  # type: ignore[arg-type]


def describe_error(text: str, exc: QueryError, prefix: str = "") -> str:
    """The message plus the query with a caret under the bad part (for terminals)."""
    return f"{prefix}{exc.message}\n{exc.pointer(text, indent=2)}"
