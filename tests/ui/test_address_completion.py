"""Address completion in the built-in editor, under Pilot on the demo account.

Tab on a To/Cc/Bcc line completes from the address book (the demo's senders, ranked by
use), then from `[ui] address_book_cmd`, whose output is hostile until made inert, and
which may hang: the UI must keep taking keys and the command must be given up on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from compose_helpers import with_subject
from msgspec.structs import replace
from pilot_helpers import SIZE, EventLog, screen_text, wait_for, wait_ready
from textual.widgets import Static, TextArea

from tui_mail.config.schema import AppConfig
from tui_mail.ui.address_completion import completer_for
from tui_mail.ui.app import MailApp
from tui_mail.ui.screens.compose import ComposeScreen, start_compose
from tui_mail.ui.screens.compose_editor import EditorScreen, address_slot

HANNAH = "Hannah Kowalski <hannah.k@example.net>"


def _with_command(config: AppConfig, *argv: str) -> AppConfig:
    return replace(config, ui=replace(config.ui, address_book_cmd=argv))


@pytest.fixture(autouse=True)
def builtin_editor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)


async def _editor(pilot) -> tuple[EditorScreen, TextArea]:  # type: ignore[no-untyped-def]
    app = pilot.app
    start_compose(app, "new", None)
    await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen))
    editor = app.screen
    assert isinstance(editor, EditorScreen)
    area = editor.query_one(TextArea)
    assert area.cursor_location[0] == 1 and area.text.split("\n")[1] == "To:"
    return editor, area


def _line(area: TextArea, row: int = 1) -> str:
    return area.text.split("\n")[row]


def _completions(editor: EditorScreen) -> str:
    return str(editor.query_one("#editor-completions", Static).render())


def _notices(app: MailApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_tab_completes_a_known_sender_and_cycles(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        editor, area = await _editor(pilot)
        await pilot.press("space", *"hannah.k", "tab")
        await wait_for(pilot, lambda: _line(area) == f"To: {HANNAH}")
        assert area.cursor_location == (1, len(f"To: {HANNAH}"))
        assert "hannah.k@example.net" in _completions(editor)
        assert "Complete address" in screen_text(app)  # the footer offers the key

        # A second address after a comma; a name's word matches too ("Fischer").
        await pilot.press(",", "space", *"fisch", "tab")
        await wait_for(pilot, lambda: _line(area).endswith("Tom Fischer <tom@fischer.example>"))
        assert _line(area) == f"To: {HANNAH}, Tom Fischer <tom@fischer.example>"

        # Several matches: Tab again (nothing typed between) puts in the next one.
        lines = area.text.split("\n")
        cc_row = next(n for n, line in enumerate(lines) if line.startswith("Cc:"))
        area.move_cursor((cc_row, len(lines[cc_row])))
        await pilot.press("space", *"example.", "tab")
        # No address starts with "example.", no name word either: nothing is changed.
        await wait_for(pilot, lambda: "no address matches" in _completions(editor))
        assert _line(area, cc_row) == "Cc: example."
        area.replace("", (cc_row, 4), (cc_row, len(_line(area, cc_row))))
        area.move_cursor((cc_row, 4))
        await pilot.press(*"s", "tab")
        await wait_for(pilot, lambda: _line(area, cc_row) != "Cc: s")
        first = _line(area, cc_row)
        await pilot.press("tab")
        await wait_for(pilot, lambda: _line(area, cc_row) != first)
        second = _line(area, cc_row)
        assert first.startswith("Cc: ") and second.startswith("Cc: ") and "@" in second

        # Tab in the body is not completion: the text stays as it is.
        body_row = len(area.text.split("\n")) - 1
        area.move_cursor((body_row, 0))
        before = area.text
        completions = editor.completions
        await pilot.press("tab")
        await pilot.pause()
        assert area.text == before and editor.completions == completions

        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen))
        screen = app.screen
        assert isinstance(screen, ComposeScreen)
        draft = screen.session.draft
        assert draft is not None, screen.session.error
        assert [a.addr_spec for a in draft.to] == ["hannah.k@example.net", "tom@fischer.example"]
        assert draft.to[0].display_name == "Hannah Kowalski"


def test_address_slot_finds_the_address_being_typed() -> None:
    text = "From: me@x\nTo: Ann <a@x>, bo\n  ca, d\nSubject: hi\n\nTo: body"
    slot = address_slot(text, 1, 17)
    assert slot is not None and slot.prefix == "bo" and (slot.start, slot.end) == (15, 17)
    cont = address_slot(text, 2, 4)  # a folded continuation of To:
    assert cont is not None and cont.prefix == "ca" and (cont.start, cont.end) == (2, 4)
    assert address_slot(text, 0, 8) is None  # From: is not completed
    assert address_slot(text, 3, 10) is None  # nor Subject:
    assert address_slot(text, 5, 6) is None  # "To:" in the body is text


async def test_sent_recipients_complete_at_once(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        editor, area = await _editor(pilot)
        # Unknown yet; the Tab builds the book from the index now, so what follows the
        # send comes from recording the recipients, not from a later rebuild.
        await pilot.press("space", *"newcomer@nowhere.example", "tab")
        await wait_for(pilot, lambda: "no address matches" in _completions(editor))
        assert completer_for(app).loaded_at is not None
        lines = area.text.split("\n")
        subject_row = next(n for n, line in enumerate(lines) if line.startswith("Subject:"))
        area.move_cursor((subject_row, len(lines[subject_row])))
        await pilot.press("space", *"Hello newcomer")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(with_subject("Sent", "Hello newcomer")))
        await wait_for(pilot, lambda: app.screen is app.main)

        _, area = await _editor(pilot)
        await pilot.press("space", *"newcom", "tab")
        await wait_for(pilot, lambda: _line(area) == "To: newcomer@nowhere.example")


async def test_external_command_output_is_inert(
    demo_config: AppConfig, event_log: EventLog, tmp_path: Path
) -> None:
    script = tmp_path / "book.py"
    script.write_text(
        "import sys\n"
        "q = sys.argv[1]\n"
        "sys.stdout.write('searching for ' + q + '\\n')\n"
        "sys.stdout.write(q + '@ext.example\\t\\x1b[31mEvil\\x07 \\u202eName\\x1b]0;pwn\\x07\\n')\n"
        "sys.stdout.write('\\x1b[2J' + q + '@esc.example\\tClears the screen\\n')\n"
        "sys.stdout.write(q + '\\x1b[0m@esc2.example\\tEscape in the address\\n')\n"
    )
    app = MailApp(_with_command(demo_config, sys.executable, str(script), "{}"))
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        editor, area = await _editor(pilot)
        await pilot.press("space", *"zyx", "tab")
        await wait_for(pilot, lambda: "zyx@ext.example" in _line(area))
        line = _line(area)
        for bad in ("\x1b", "\x07", "\u202e"):
            assert bad not in area.text and bad not in _completions(editor)
            assert bad not in screen_text(app)
        assert "Evil" in line and "Name" in line
        # Only the one well-formed address was offered; the others carried escapes.
        assert "esc" not in _completions(editor)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen))
        screen = app.screen
        assert isinstance(screen, ComposeScreen)
        draft = screen.session.draft
        assert draft is not None, screen.session.error
        assert [a.addr_spec for a in draft.to] == ["zyx@ext.example"]


async def test_hanging_command_times_out_without_freezing(
    demo_config: AppConfig, event_log: EventLog, tmp_path: Path
) -> None:
    # A shell script whose child keeps the output pipe open: killing only the script
    # would still leave the reader waiting for `sleep` to end.
    script = tmp_path / "hang.sh"
    script.write_text("#!/bin/sh\nsleep 60\n")
    script.chmod(0o755)
    app = MailApp(_with_command(demo_config, str(script)))
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        completer = completer_for(app)
        completer.timeout = 1.0
        editor, area = await _editor(pilot)
        await pilot.press("space", *"qqzz", "tab")
        started = time.monotonic()
        # While the command hangs, keys are still typed: the UI is not blocked.
        await pilot.press(*"more")
        assert _line(area) == "To: qqzzmore" and editor.completions == 0
        await wait_for(pilot, lambda: editor.completions == 1)
        assert time.monotonic() - started < 30  # given up on, not waited out (60 s)
        await wait_for(pilot, lambda: any("timed out" in n for n in _notices(app)))
        # The late answer is for text that is gone: nothing was changed.
        assert _line(area) == "To: qqzzmore"
        # A completion that matches locally still works, the command giving up again.
        await pilot.press(",", "space", *"hannah.k", "tab")
        await wait_for(pilot, lambda: _line(area) == f"To: qqzzmore, {HANNAH}", timeout=20)
