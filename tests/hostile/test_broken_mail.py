"""Broken mail: every message of a large corpus of malformed mail (tests/hostile/
broken_corpus.py: Python's own email test data, hand-written nasty samples, seeded
mutations) is indexed, and opens in the message view, at least as its raw text with
a notice, in bounded time. Generated mutations (hypothesis) add more cases for the
two parsers.

A 500 KiB subject must not freeze the UI: the list row and the view render within a
couple of seconds, and the app answers keys afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile.broken_corpus import MIN_SIZE, SUBJECT_500K, corpus, nasty_samples, stdlib_data_dir
from hostile.maildir_app import SIZE, envelopes, fill, maildir_config, wait_for
from hostile.scripted import no_traceback, screen_text
from tui_mail.store.parse import BODY_TEXT_LIMIT, MAX_HEADER_CHARS
from tui_mail.store.parse import parse_body as index_body
from tui_mail.store.parse import parse_headers as index_headers
from tui_mail.store.parse import parse_message as index_parse
from tui_mail.ui.app import MailApp
from tui_mail.ui.mime import ParsedMessage, parse_message
from tui_mail.ui.widgets.message_view import MessageView

# Per message, parse plus render; generous for a shared 2-core machine: a freeze is
# tens of seconds, not a few.
SECONDS = 5.0
# Opening a 500 KiB-subject message, drawing it, all headers on and off: about 0.5 s
# here (it was up to 2.5 s, and a second per redraw, before the view cut long headers).
RENDER_SECONDS = 3.0
CORPUS = corpus()


def _corpus_ids() -> list[str]:
    return sorted(CORPUS)


def rendered(parsed: ParsedMessage, raw: bytes) -> str:
    """What the view would show: headers (all of them), body, links, attachments."""
    parts = [
        MessageView.header_content(parsed, all_headers=True),
        MessageView.body_content(parsed),
        MessageView.link_list(parsed),
        MessageView.attachment_content(parsed),
        MessageView.raw_content(raw),
    ]
    return "\n".join(p.plain for p in parts)


def test_the_corpus_is_large_and_varied() -> None:
    assert len(CORPUS) >= MIN_SIZE
    kinds = {name.split("/", 1)[0] for name in CORPUS}
    assert {"nasty", "mutated"} <= kinds
    if stdlib_data_dir() is not None:
        assert "stdlib" in kinds and sum(n.startswith("stdlib/") for n in CORPUS) >= 40
    nasty = nasty_samples()
    for needed in (
        "boundary-never-appears",
        "multipart-never-split",
        "unknown-charset",
        "bad-base64-chars",
        "bad-qp",
        "header-8bit-latin1",
        "header-500k-subject",
        "nesting-2000-multipart",
        "not-mail-binary",
        "empty-file",
        "only-headers-no-blank",
        "nul-bytes-everywhere",
    ):
        assert needed in nasty
    assert len(nasty["header-500k-subject"]) > SUBJECT_500K


@pytest.mark.parametrize("name", _corpus_ids())
def test_every_message_is_indexed(name: str) -> None:
    """The index's two parsers and its body pass never raise and stay bounded (the
    view side of each message is checked in the TUI test below, on what it shows)."""
    raw = CORPUS[name]
    start = time.monotonic()
    row = index_parse(raw, mtime=1_700_000_000)
    fast = index_headers(raw, mtime=1_700_000_000)
    index_body(raw)
    assert row.date and fast.date  # the mtime fallback at worst: the row sorts somewhere
    assert len(row.subject) <= MAX_HEADER_CHARS and len(row.body_text or "") <= BODY_TEXT_LIMIT
    assert "\x1b" not in row.subject and "\x00" not in row.subject
    elapsed = time.monotonic() - start
    assert elapsed < SECONDS, f"{name}: {elapsed:.1f} s"


def assert_viewable(parsed: ParsedMessage, raw: bytes, what: str) -> None:
    """What the view shows for `raw` is inert text with a body (the text, "(empty)" or
    "(this message has no text part)"), a notice for every problem, the raw bytes
    as text for something that is not mail."""
    text = rendered(parsed, raw)
    assert no_traceback(text)
    assert "\x1b" not in text and "\x00" not in text, what  # nothing acts on the terminal
    assert MessageView.body_content(parsed).plain.strip(), what
    if parsed.problems:
        assert "! " in MessageView.header_content(parsed).plain, what
    if not parsed.headers and raw.strip():
        assert parsed.body.strip() or parsed.attachments, what


def test_a_structure_the_stdlib_cannot_take_apart_shows_the_raw_text() -> None:
    """A charset name with a NUL made the codec lookup raise ValueError, which escaped
    parse_message: the view said "Could not open this message" instead of showing it."""
    raw = nasty_samples()["charset-with-nul"]
    parsed = parse_message(raw)
    assert "café" in parsed.body and parsed.problems
    assert "! " in MessageView.header_content(parsed).plain


# --------------------------------------------------------------------------- generated

_SEEDS = {k: v for k, v in nasty_samples().items() if len(v) < 64 * 1024}
_SEED_NAMES = sorted(_SEEDS)
_INSERTS = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"\r",
        b"\x00",
        b"\xff",
        b"--B\r\n",
        b"--B--\r\n",
        b"\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=B\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"=?utf-8?q?=0D=0A?=",
        b"=?x-unknown?b?////?=",
        b"charset=x-evil",
        b"; filename*0*=utf-8''%00%2F..",
        b"=",
        b"=\r\n",
        b":",
        b" ",
    ]
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(_SEEDS[draw(st.sampled_from(_SEED_NAMES))])
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.integers(0, 3))
        if action == 0:
            data[where:where] = draw(_INSERTS)
        elif action == 1:
            data[where:where] = draw(st.binary(max_size=32))
        elif action == 2:
            del data[where : where + draw(st.integers(1, 64))]
        else:
            data = data[:where]
    return bytes(data)


@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=mutated())
def test_generated_mutations_never_break_indexing_or_the_view(raw: bytes) -> None:
    start = time.monotonic()
    row = index_parse(raw, mtime=1_700_000_000)
    assert row.date == index_headers(raw, mtime=1_700_000_000).date or row.date
    assert_viewable(parse_message(raw), raw, repr(raw[:60]))
    assert time.monotonic() - start < SECONDS


# --------------------------------------------------------------------------- in the TUI


_BIG_HEADERS = "nasty/header-500k"


async def test_every_message_opens_in_the_tui(tmp_path: Path) -> None:
    """The whole corpus in one Maildir: the account indexes every file, and each
    message opens in the view (never "Could not open this message"); the app then
    still answers a key."""
    root = tmp_path / "Maildir"
    # The 500 KiB headers have their own test below, with the same checks and timing.
    count = fill(root, (v for k, v in CORPUS.items() if not k.startswith(_BIG_HEADERS)))
    app = MailApp(maildir_config(root))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count, timeout=60)
        view = app.main.view
        errors: list[str] = []
        show_error = view.show_error

        def record_error(envelope: object, message: str) -> None:
            errors.append(message)
            show_error(envelope, message)  # type: ignore[arg-type]

        view.show_error = record_error  # type: ignore[method-assign]
        slow: list[tuple[float, str]] = []
        for env in envelopes(app):
            start = time.monotonic()
            app.main.open_message(env)
            await wait_for(
                pilot,
                lambda env=env: bool(errors) or (view.envelope is env and view.parsed is not None),
                timeout=30,
            )
            elapsed = time.monotonic() - start
            if elapsed > SECONDS:
                slow.append((elapsed, env.subject[:40]))
            assert not errors, f"{env.subject[:60]!r} did not open: {errors}"
            assert view.raw is not None
            assert_viewable(view.parsed, view.raw, env.subject[:60])
            assert screen_text(app).strip()
        assert not slow, slow
        text = screen_text(app)
        assert no_traceback(text)
        app.main.close_message()
        await pilot.press("j")
        await wait_for(pilot, lambda: app.main.messages.cursor == 1)


async def test_a_500k_subject_does_not_freeze_the_ui(tmp_path: Path) -> None:
    samples = nasty_samples()
    names = [n for n in samples if n.startswith("header-500k")]
    root = tmp_path / "Maildir"
    fill(root, (samples[n] for n in names))
    app = MailApp(maildir_config(root))
    async with app.run_test(size=SIZE) as pilot:
        start = time.monotonic()
        await wait_for(pilot, lambda: app.main.messages.count == len(names), timeout=30)
        text = screen_text(app)  # the rows, drawn
        assert "SSSSSSSSSS" in text and "word word" in text
        assert time.monotonic() - start < SECONDS * 2  # start-up and indexing included
        for env in envelopes(app):
            start = time.monotonic()
            app.main.open_message(env)
            await wait_for(
                pilot,
                lambda env=env: app.main.view.envelope is env and app.main.view.parsed is not None,
            )
            assert_viewable(app.main.view.parsed, app.main.view.raw, env.subject[:20])
            # Shown cut, with a note that says so (the raw source has all of it).
            parsed = app.main.view.parsed
            assert "[…" in MessageView.header_content(parsed).plain
            assert screen_text(app).strip()
            await pilot.press("h")  # every header, the 500 KiB one at full length
            screen_text(app)
            await pilot.press("h")
            elapsed = time.monotonic() - start
            assert elapsed < RENDER_SECONDS, f"{env.subject[:20]}: {elapsed:.1f} s"
            # The app answers: a key closes the view at once.
            start = time.monotonic()
            await pilot.press("escape")
            await wait_for(pilot, lambda: not app.main.viewing)
            assert time.monotonic() - start < RENDER_SECONDS
