"""Pilot tests at 80x24 on the real demo account (Maildir + index + Runtime)."""

from __future__ import annotations

from msgspec.structs import replace
from pilot_helpers import SIZE, EventLog, screen_text, wait_for, wait_ready

from tui_mail import paths
from tui_mail.config.schema import AppConfig, UiConfig
from tui_mail.core import events as ev
from tui_mail.core.flags import Flag
from tui_mail.core.sanitize import inert_line
from tui_mail.demo.generate import ESCAPES_MESSAGE_ID, HOSTILE_ATTACHMENT_MESSAGE_ID
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex
from tui_mail.ui.app import MailApp
from tui_mail.ui.screens.help import HelpScreen

HOSTILE_SUBJECT = "\x1b]0;pwned\x07\x1b[31m [bold red]x[/] [@click=app.quit]q[/] \u202eevil"


def _index_rows(account: str, folder: str) -> list:
    index = MailIndex.open(paths.index_path())
    try:
        return index.page(account, folder, 0, 10_000)
    finally:
        index.close()


def _counts(account: str) -> dict[str, tuple[int, int]]:
    index = MailIndex.open(paths.index_path())
    try:
        return index.folder_counts(account)
    finally:
        index.close()


def _row_of(rows: list, message_id: str) -> int:
    for n, env in enumerate(rows):
        if env.message_id.strip("<>") == message_id.strip("<>"):
            return n
    raise AssertionError(f"{message_id} not in the list")


async def test_startup_message_flow(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        states = [e.state for e in event_log.of(ev.ConnectionChanged)]
        assert ev.ConnectionState.LOCAL in states
        assert event_log.of(ev.FoldersListed)
        assert not event_log.of(ev.Failed) and not event_log.of(ev.BackendError)
        assert "demo:local" in screen_text(app)


async def test_folder_pane_lists_inbox_and_counts(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        pane = [line[:17] for line in screen_text(app).splitlines()]
        total, unread = _counts("demo")["INBOX"]
        inbox = next(line for line in pane if line.strip().startswith("INBOX"))
        assert inbox.rstrip().endswith(f"{unread}/{total}" if unread else str(total))
        assert any(line.strip().startswith("Sent") for line in pane)
        assert any(line.strip().startswith("Lists") for line in pane)
        assert pane[0].startswith("demo")


async def test_list_shows_rows_from_the_index(demo_config: AppConfig, event_log: EventLog) -> None:
    rows = _index_rows("demo", "INBOX")
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        messages = app.main.messages
        assert messages.count == len(rows)
        text = screen_text(app)
        for env in rows[:5]:
            subject = inert_line(env.subject)[:20].rstrip()
            assert subject in text, subject
        unread_mark = "  N" if Flag.SEEN not in rows[0].flags else "   "  # select, pending, N
        assert messages.render_line(0).text.startswith(unread_mark)


async def test_j_k_and_jumps_move_the_cursor(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        messages = app.main.messages
        assert messages.cursor == 0
        await pilot.press("j", "j", "j")
        assert messages.cursor == 3
        await pilot.press("k")
        assert messages.cursor == 2
        await pilot.press("G")
        assert messages.cursor == messages.count - 1
        assert messages.scroll_y > 0  # the cursor stays visible
        await pilot.press("g")
        assert messages.cursor == 0
        await pilot.press("pagedown")
        assert messages.cursor > 10


async def test_enter_shows_the_message(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        screen = app.main
        env = screen.messages.current
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.view.parsed is not None)
        parsed = screen.view.parsed
        text = screen_text(app)
        assert "From:" in text and "Subject:" in text
        first_line = next(line for line in parsed.body.splitlines() if line.strip())
        assert first_line.strip()[:30] in text
        assert screen.messages.styles.display == "none"  # 80x24: the view replaces the list
        assert "Message-ID:" not in text
        await pilot.press("h")
        assert "Message-ID:" in screen_text(app)
        await pilot.press("h")
        assert "Message-ID:" not in screen_text(app)
        # Opening an unread message marks it read through the worker.
        if Flag.SEEN not in env.flags:
            await wait_for(pilot, lambda: Flag.SEEN in screen.messages.envelope_at(0).flags)
        await pilot.press("q")  # back to the list, not quit
        assert app.is_running
        assert not screen.viewing
        assert screen.messages.has_focus


async def test_hostile_subject_renders_inert(demo_config: AppConfig, event_log: EventLog) -> None:
    # Deliver a hostile message through the real store; its date puts it on top.
    index = MailIndex.open(paths.index_path())
    try:
        store = AccountStore("demo", paths.demo_root(), index)
        raw = (
            f"From: [b]Mallory[/b] \x1b[5m <m@evil.example>\r\n"
            f"To: you@demo.example\r\nSubject: {HOSTILE_SUBJECT}\r\n"
            "Date: Tue, 1 Jan 2036 00:00:00 +0000\r\nMessage-ID: <hostile-test@evil.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "body \x1b]0;pwned\x07 [@click=app.quit]click[/] \x1b[2J\r\n"
        ).encode()
        store.deliver("INBOX", raw, "")
    finally:
        index.close()
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        row = app.main.messages.render_line(0).text
        assert "\x1b" not in row
        assert "␛]0;pwned␇" in row and "[bold red]" in row  # shown as text, not applied
        text = screen_text(app)
        svg = app.export_screenshot()
        assert "\x1b" not in text and "\x1b" not in svg
        assert "\u202e" not in text
        await pilot.click("MessageList", offset=(30, 0))  # an @click in markup would quit
        assert app.is_running
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.view.parsed is not None)
        text = screen_text(app)
        assert "\x1b" not in text and "\x1b" not in app.export_screenshot()
        assert "[@click=app.quit]click[/]" in text
        assert "\u241b]0;pwned\u2407\u241b[31m [bold red]x[/]" in text  # the subject, wrapped
        assert "<RLO>evil" in text and "\u202e" not in text
        assert app.is_running


async def test_demo_escape_and_attachment_messages(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    rows = _index_rows("demo", "INBOX")
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        screen = app.main
        for message_id in (ESCAPES_MESSAGE_ID, HOSTILE_ATTACHMENT_MESSAGE_ID):
            screen.messages.cursor = _row_of(rows, message_id)
            await pilot.pause()
            assert "\x1b" not in screen_text(app)
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.view.parsed is not None)
            text = screen_text(app)
            assert "\x1b" not in text and "\x1b" not in app.export_screenshot()
            if message_id == HOSTILE_ATTACHMENT_MESSAGE_ID:
                assert "saves as passwd" in text
            await pilot.press("escape")
            await pilot.pause()


async def test_help_screen_lists_the_active_keys(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "Reply to all" in text and "Move to a folder" in text
        await pilot.press("G")  # the list is longer than 24 rows: it scrolls
        await pilot.pause()
        text = screen_text(app)
        assert "Next folder" in text and "Quit" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        assert app.is_running


async def test_key_overrides_and_bad_names_warn(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    config = replace(
        demo_config,
        ui=UiConfig(theme="no-such-theme", keys="vim"),
        key_overrides={"next": "n", "frobnicate": "x"},
    )
    app = MailApp(config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        assert app.theme == "default"
        notice = app.main.status.notice
        assert "no-such-theme" in notice and "frobnicate" in notice
        await pilot.press("n")
        assert app.main.messages.cursor == 1
        await pilot.press("j")  # no longer bound to next
        assert app.main.messages.cursor == 1
        await pilot.press("question_mark")
        assert "n " in screen_text(app)


async def test_mutt_preset(demo_config: AppConfig, event_log: EventLog) -> None:
    config = replace(demo_config, ui=UiConfig(keys="mutt", theme="mono-256"))
    app = MailApp(config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        assert app.theme == "mono-256"
        await pilot.press("asterisk")
        assert app.main.messages.cursor == app.main.messages.count - 1
        await pilot.press("equals_sign")
        assert app.main.messages.cursor == 0


async def test_folders_switch_and_hide(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        screen = app.main
        first = screen.shown
        await pilot.press("J")
        await wait_for(pilot, lambda: screen.shown != first)
        account, folder = screen.shown
        assert screen.messages.count == len(_index_rows(account, folder))
        await pilot.press("K")
        await wait_for(pilot, lambda: screen.shown == first)
        await pilot.press("backslash")
        assert screen.folders.styles.display == "none"
        assert not screen_text(app).splitlines()[0].startswith("demo")
        await pilot.press("backslash")
        assert screen.folders.styles.display == "block"


async def test_sync_now_reports_progress_and_finishes(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        before = len(event_log.of(ev.SyncFinished))
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(event_log.of(ev.SyncFinished)) > before)
        assert app.main.status.accounts["demo"].progress is None
        assert not event_log.of(ev.Failed)
