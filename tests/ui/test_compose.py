"""Composing in the TUI, at 80x24 on the demo account (its send backend is local
delivery: mail to the demo's own address lands in its INBOX, a copy in Sent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compose_helpers import (
    body_of,
    install_editor,
    notice,
    read_message,
    rows,
    with_subject,
)
from pilot_helpers import SIZE, EventLog, screen_text, wait_for, wait_ready

from tui_mail.config.schema import AppConfig
from tui_mail.core.flags import Flag
from tui_mail.demo.generate import DEMO_EMAIL
from tui_mail.ui.app import MailApp
from tui_mail.ui.screens.compose import ComposeScreen, start_compose
from tui_mail.ui.screens.compose_dialogs import ConfirmScreen
from tui_mail.ui.screens.compose_editor import EditorScreen


def _compose_screen(app: MailApp) -> ComposeScreen | None:
    return app.screen if isinstance(app.screen, ComposeScreen) else None


async def _open(pilot, mode: str, ref=None) -> ComposeScreen:  # type: ignore[no-untyped-def]
    """Start the composer and wait until the editor's text came back."""
    app = pilot.app
    start_compose(app, mode, ref)
    await wait_for(pilot, lambda: _compose_screen(app) is not None)
    screen = _compose_screen(app)
    assert screen is not None
    await wait_for(pilot, lambda: screen.edits > 0)  # the editor runs after the first frame
    return screen


async def test_compose_new_and_send_to_self(
    demo_config: AppConfig, event_log: EventLog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = install_editor(monkeypatch, tmp_path)
    monkeypatch.setenv("EDIT_TO", f"Me Myself <{DEMO_EMAIL}>")
    monkeypatch.setenv("EDIT_SUBJECT", "Grüße from the composer")
    monkeypatch.setenv("EDIT_BODY", "A line written in the editor.")
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        screen = await _open(pilot, "new")
        draft = screen.session.draft
        assert draft is not None and not screen.session.error
        assert [a.addr_spec for a in draft.to] == [DEMO_EMAIL]
        text = screen_text(app)
        assert "Grüße from the composer" in text and "A line written in the editor." in text
        assert "Send" in text and "Postpone" in text  # the footer offers the keys

        # The editor got the text form in a private file, removed afterwards.
        call = json.loads(log.read_text().splitlines()[0])
        assert call["argv"][0] == "-x"
        assert call["file_mode"] == 0o600 and call["dir_mode"] == 0o700
        assert not Path(call["path"]).parent.exists()
        assert call["text"].startswith("From: Demo User <you@demo.example>\nTo:")
        assert "Sent from the tui-mail demo" in call["text"]  # the signature

        await pilot.press("y")
        await wait_for(pilot, lambda: "sent" in notice(app) and "sending" not in notice(app))
        assert _compose_screen(app) is None
        subject = "Grüße from the composer"
        await wait_for(pilot, lambda: bool(with_subject("INBOX", subject)))
        sent = with_subject("Sent", subject)
        assert len(sent) == 1
        msg = read_message(sent[0])
        assert "A line written in the editor." in body_of(msg)
        assert msg["Message-ID"] and msg["Date"]
        assert Flag.SEEN in sent[0].flags


async def test_reply_keeps_threading_and_quotes(
    demo_config: AppConfig, event_log: EventLog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install_editor(monkeypatch, tmp_path)
    monkeypatch.setenv("EDIT_BODY", "My answer on top.")
    original = next(
        env
        for env in rows("INBOX")
        if env.message_id and env.sender.addr != DEMO_EMAIL and "Re:" not in env.subject
    )
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        screen = await _open(pilot, "reply", original.ref)
        draft = screen.session.draft
        assert draft is not None
        assert draft.in_reply_to == original.message_id
        assert draft.references[-1] == original.message_id
        assert [a.addr_spec for a in draft.to] == [original.sender.addr]
        assert "wrote:" in draft.body and "\n> " in draft.body
        await pilot.press("y")
        subject = draft.subject
        await wait_for(pilot, lambda: bool(with_subject("Sent", subject)))
        msg = read_message(with_subject("Sent", subject)[0])
        assert msg["In-Reply-To"] == original.message_id
        assert original.message_id in str(msg["References"]).split()
        body = body_of(msg)
        assert body.startswith("My answer on top.") and "\n> " in body
        # The original is marked answered.
        await wait_for(
            pilot,
            lambda: any(
                Flag.ANSWERED in env.flags
                for env in rows("INBOX")
                if env.message_id == original.message_id
            ),
        )


async def test_bad_address_shows_the_error_and_keeps_the_draft(
    demo_config: AppConfig, event_log: EventLog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = install_editor(monkeypatch, tmp_path)
    monkeypatch.setenv("EDIT_TO", "bob@, carol@example.org")
    monkeypatch.setenv("EDIT_SUBJECT", "Keep this draft")
    monkeypatch.setenv("EDIT_BODY", "Precious words.")
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        screen = await _open(pilot, "new")
        session = screen.session
        assert session.draft is None
        assert session.error_line == 2 and "To" in session.error and "bob@" in session.error
        text = screen_text(app)
        assert "line 2" in text and "bob@" in text
        await pilot.press("y")  # refused: nothing is sent, the screen stays
        await pilot.pause()
        assert _compose_screen(app) is screen
        assert not with_subject("Sent", "Keep this draft")

        # Edit again: the editor gets the same text, bad line included, and can fix it.
        monkeypatch.setenv("EDIT_TO", DEMO_EMAIL)
        monkeypatch.delenv("EDIT_BODY")
        await pilot.press("e")
        await wait_for(pilot, lambda: session.draft is not None)
        second = json.loads(log.read_text().splitlines()[1])
        assert "To: bob@, carol@example.org" in second["text"]
        assert "Precious words." in second["text"]
        assert "bob@" not in screen_text(app).split("Subject")[0]
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(with_subject("Sent", "Keep this draft")))
        assert "Precious words." in body_of(
            read_message(with_subject("Sent", "Keep this draft")[0])
        )


async def test_editor_failure_keeps_the_text(
    demo_config: AppConfig, event_log: EventLog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install_editor(monkeypatch, tmp_path)
    monkeypatch.setenv("EDIT_EXIT", "1")  # like vim's :cq
    monkeypatch.setenv("EDIT_SUBJECT", "never taken")
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        start_compose(app, "new", None)
        await wait_for(pilot, lambda: _compose_screen(app) is not None)
        screen = _compose_screen(app)
        assert screen is not None
        await pilot.pause(0.2)
        assert "never taken" not in screen.session.text
        assert screen.session.draft is not None  # the untouched draft is still usable
        # q asks first; n keeps the message.
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is app.main)


async def test_builtin_editor_without_editor_variable(
    demo_config: AppConfig, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        start_compose(app, "new", None)
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen))
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        from textual.widgets import TextArea

        area = editor.query_one(TextArea)
        assert area.text.startswith("From: Demo User <you@demo.example>\nTo:")
        assert area.cursor_location[0] == 1  # on the empty To: line
        await pilot.press("space", *"you", "@", *"demo.example")
        lines = area.text.split("\n")
        subject_row = next(n for n, line in enumerate(lines) if line.startswith("Subject:"))
        area.move_cursor((subject_row, len(lines[subject_row])))
        await pilot.press("space", *"Typed", "space", *"here")
        area.move_cursor((subject_row + 2, 0))
        await pilot.press(*"Body", "enter")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: _compose_screen(app) is not None)
        screen = _compose_screen(app)
        assert screen is not None
        draft = screen.session.draft
        assert draft is not None, screen.session.error
        assert [a.addr_spec for a in draft.to] == [DEMO_EMAIL]
        assert draft.subject == "Typed here" and draft.body.startswith("Body\n")
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(with_subject("Sent", "Typed here")))
        await wait_for(pilot, lambda: bool(with_subject("INBOX", "Typed here")))


async def test_attach_from_the_review_screen(
    demo_config: AppConfig, event_log: EventLog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install_editor(monkeypatch, tmp_path)
    monkeypatch.setenv("EDIT_TO", DEMO_EMAIL)
    monkeypatch.setenv("EDIT_SUBJECT", "With a file")
    data = bytes(range(256)) * 4
    (tmp_path / "blob.bin").write_bytes(data)
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        screen = await _open(pilot, "new")
        await pilot.press("a")
        await pilot.pause()
        from textual.widgets import Input

        app.screen.query_one(Input).value = str(tmp_path / "nothing-here")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen)
        assert not screen.session.draft.attach_paths  # type: ignore[union-attr]
        await pilot.press("a")
        await pilot.pause()
        app.screen.query_one(Input).value = str(tmp_path / "blob.bin")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen)
        assert "blob.bin" in screen_text(app)
        # The text form now carries the file, so editing again keeps it.
        assert f"Attach: {tmp_path / 'blob.bin'}" in screen.session.text
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(with_subject("Sent", "With a file")))
        msg = read_message(with_subject("Sent", "With a file")[0])
        parts = list(msg.iter_attachments())
        assert [p.get_filename() for p in parts] == ["blob.bin"]
        assert parts[0].get_payload(decode=True) == data


async def test_postpone_and_resume_a_draft(
    demo_config: AppConfig, event_log: EventLog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install_editor(monkeypatch, tmp_path)
    monkeypatch.setenv("EDIT_TO", "Friend <friend@example.org>")
    monkeypatch.setenv("EDIT_SUBJECT", "Postponed one")
    monkeypatch.setenv("EDIT_BODY", "first version")
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        await _open(pilot, "new")
        await pilot.press("p")
        await wait_for(pilot, lambda: "draft saved to Drafts" in notice(app))
        await wait_for(pilot, lambda: bool(with_subject("Drafts", "Postponed one")))
        drafts = with_subject("Drafts", "Postponed one")
        assert len(drafts) == 1
        assert Flag.DRAFT in drafts[0].flags and Flag.SEEN in drafts[0].flags

        # Resume, change, postpone again: one draft, the new one.
        monkeypatch.delenv("EDIT_TO")
        monkeypatch.setenv("EDIT_BODY", "second version")
        screen = await _open(pilot, "resume", drafts[0].ref)
        assert screen.session.replaces == drafts[0].ref
        assert "resumed draft" in screen_text(app)
        assert "first version" in screen.session.text
        await pilot.press("p")

        def replaced() -> bool:  # the new draft saved, then the old one deleted
            keys = [e.ref.key for e in with_subject("Drafts", "Postponed one")]
            return len(keys) == 1 and keys[0] != drafts[0].ref.key

        await wait_for(pilot, replaced)
        again = with_subject("Drafts", "Postponed one")
        body = body_of(read_message(again[0]))
        assert "second version" in body and "first version" in body

        # Resume and send: the draft goes, the message is sent once.
        monkeypatch.delenv("EDIT_BODY")
        await _open(pilot, "resume", again[0].ref)
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(with_subject("Sent", "Postponed one")))
        await wait_for(pilot, lambda: not with_subject("Drafts", "Postponed one"))
        msg = read_message(with_subject("Sent", "Postponed one")[0])
        assert str(msg["To"]) == "Friend <friend@example.org>"
        assert len(with_subject("Sent", "Postponed one")) == 1
