"""The issue-6 extras under Pilot: mouse, new-mail notification, OSC 8 links, OSC 52 copy.

Escape sequences are asserted as the driver would write them: the tests
record `app._driver.write` (copy_to_clipboard and the notifications write
through it) and `app.bell`.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from msgspec.structs import replace
from pilot_helpers import SIZE, EventLog, screen_text, wait_for, wait_ready
from textual import events

from tui_mail import paths
from tui_mail.config.load import parse_config
from tui_mail.config.schema import AppConfig, UiConfig
from tui_mail.core import events as ev
from tui_mail.core.errors import ConfigError
from tui_mail.core.flags import Flag
from tui_mail.ui import keymap
from tui_mail.ui.app import MailApp
from tui_mail.ui.dialogs.picker import PickerScreen
from tui_mail.ui.screens.help import HelpScreen
from tui_mail.ui.widgets.message_list import MessageList
from tui_mail.ui.widgets.message_view import MessageView

LINKS = ("https://one.example/a?b=1", "mailto:two@example.org")
# Dated 2036: it sorts above every demo message, so it is row 0 of INBOX.
LINK_MAIL = (
    "From: Link Sender <links@sender.example>\r\nTo: you@demo.example\r\n"
    "Subject: two links\r\nDate: Tue, 1 Jan 2036 00:00:00 +0000\r\n"
    "Message-ID: <two-links@sender.example>\r\n\r\n"
    f"see {LINKS[0]} and write to {LINKS[1]}.\r\n"
).encode()


def deliver(name: str = "2082758400.M1P1.extras", raw: bytes = LINK_MAIL) -> None:
    """New mail as a delivery agent writes it: tmp/, then a rename into new/."""
    root = paths.demo_root()
    (root / "tmp" / name).write_bytes(raw)
    os.rename(root / "tmp" / name, root / "new" / name)


def record_writes(app: MailApp) -> list[str]:
    """Everything written to the terminal from now on (the headless driver drops it)."""
    written: list[str] = []
    driver = app._driver
    assert driver is not None
    original = driver.write

    def write(data: str) -> None:
        written.append(data)
        original(data)

    driver.write = write  # type: ignore[method-assign]
    return written


def osc52(text: str) -> str:
    return f"\x1b]52;c;{base64.b64encode(text.encode()).decode()}\a"


# --------------------------------------------------------------------------- mouse


async def test_click_selects_a_row_and_double_click_opens_it(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        screen = app.main
        assert screen.messages.cursor == 0
        await pilot.click(MessageList, offset=(20, 3))
        assert screen.messages.cursor == 3
        assert not screen.viewing  # one click only moves the cursor
        wanted = screen.messages.current
        await pilot.click(MessageList, offset=(20, 3), times=2)
        await wait_for(pilot, lambda: screen.view.parsed is not None)
        assert screen.viewing and screen.view.envelope == wanted


async def test_wheel_scrolls_the_list(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        messages = app.main.messages
        assert messages.count > messages.scrollable_content_region.height  # room to scroll
        top_subject = messages.envelope_at(0).subject
        # Pilot has no wheel helper; this posts the event the driver would.
        await pilot._post_mouse_events([events.MouseScrollDown], MessageList, offset=(20, 3))
        await wait_for(pilot, lambda: messages.scroll_y > 0)
        first_row = screen_text(app).splitlines()[0]
        assert top_subject[:20] not in first_row
        await pilot._post_mouse_events([events.MouseScrollUp], MessageList, offset=(20, 3))
        await wait_for(pilot, lambda: messages.scroll_y == 0)


async def test_click_on_a_folder_opens_it(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        screen = app.main
        assert screen.shown == ("demo", "INBOX")
        rows = screen.folders.rows
        sent = next(i for i, r in enumerate(rows) if r.kind == "folder" and r.name == "Sent")
        await pilot.click("#folders", offset=(3, sent - round(screen.folders.scroll_y)))
        await wait_for(pilot, lambda: screen.shown == ("demo", "Sent"))
        assert screen.messages.folder == "Sent"
        assert screen.messages.has_focus  # a click chooses, as Enter does


# --------------------------------------------------------------------------- notify


def _with_ui(config: AppConfig, **ui: object) -> AppConfig:
    return replace(config, ui=replace(config.ui, **ui))


async def _new_mail_arrives(app: MailApp, pilot, log: EventLog) -> None:
    inbox = app.main.folders.folder("demo", "INBOX")
    unread = inbox.unread
    deliver()
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: app.main.folders.folder("demo", "INBOX").unread > unread)
    await pilot.pause()


async def test_notify_bell_rings_on_new_mail(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(_with_ui(demo_config, notify="bell"))
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        rings: list[int] = []
        app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
        await pilot.press("j")
        await pilot.press("ctrl+r")  # a sync that brings nothing new: silent
        await pilot.pause(0.3)
        assert rings == []
        await _new_mail_arrives(app, pilot, event_log)
        assert rings == [1]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("osc9", "\x1b]9;1 new message in demo\x07"),
        ("osc777", "\x1b]777;notify;tui-mail;1 new message in demo\x07"),
    ],
)
async def test_notify_desktop_sequences(
    demo_config: AppConfig, event_log: EventLog, how: str, expected: str
) -> None:
    app = MailApp(_with_ui(demo_config, notify=how))
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        written = record_writes(app)
        await _new_mail_arrives(app, pilot, event_log)
        assert expected in written


async def test_notify_off_by_default(demo_config: AppConfig, event_log: EventLog) -> None:
    assert UiConfig().notify == "off"
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        rings: list[int] = []
        app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
        written = record_writes(app)
        await _new_mail_arrives(app, pilot, event_log)
        assert rings == []
        assert not [w for w in written if "\x1b]9;" in w or "\x1b]777;" in w]


async def test_notify_silent_when_a_read_message_moves_back(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    # Undoing a delete moves the message back into INBOX: added, but no new mail.
    app = MailApp(_with_ui(demo_config, notify="bell"))
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        rings: list[int] = []
        app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
        messages = app.main.messages
        row = next(r for r in range(messages.count) if Flag.SEEN in messages.envelope_at(r).flags)
        messages.cursor = row
        count = messages.count
        await pilot.press("d")
        await wait_for(pilot, lambda: messages.count == count - 1)
        await pilot.press("u")
        await wait_for(pilot, lambda: messages.count == count)
        await pilot.pause(0.2)
        assert event_log.of(ev.MessagesChanged)
        assert rings == []


async def test_notify_not_for_the_first_sync(demo_config: AppConfig) -> None:
    # Mail that came while tui-mail was closed is found by the first sync: no bell.
    deliver()
    log = EventLog()
    app = MailApp(_with_ui(demo_config, notify="bell"))
    rings: list[int] = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        await wait_ready(pilot, log)
        await wait_for(pilot, lambda: app.main.messages.envelope_at(0).subject == "two links")
        assert rings == []


def test_notify_config_is_checked(tmp_path: Path) -> None:
    base = '[accounts.a]\nemail = "a@example.org"\n[accounts.a.receive]\nbackend = "maildir"\n'
    base += f'path = "{tmp_path}"\n'
    config = parse_config(base + '[ui]\nnotify = "osc777"\nhyperlinks = false\n', tmp_path / "c")
    assert config.ui.notify == "osc777" and config.ui.hyperlinks is False
    with pytest.raises(ConfigError, match="osc9"):
        parse_config(base + '[ui]\nnotify = "loud"\n', tmp_path / "c")
    with pytest.raises(ConfigError):
        parse_config(base + '[ui]\nhyperlinks = "yes"\n', tmp_path / "c")


# --------------------------------------------------------------------------- links, clipboard


async def _open_link_mail(app: MailApp, pilot, log: EventLog) -> None:
    await wait_ready(pilot, log)
    deliver()
    app.main.sync_now()  # not a key: this runs under both presets
    await wait_for(pilot, lambda: app.main.messages.envelope_at(0).subject == "two links")
    app.main.messages.cursor = 0
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.main.view.parsed is not None)


def _link_styles(view: MessageView) -> list[str]:
    body = view.query_one("#view-body").visual
    return [str(span.style) for span in body.spans if "link" in str(span.style)]


async def test_links_are_osc8_hyperlinks_unless_turned_off(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await _open_link_mail(app, pilot, event_log)
        styles = _link_styles(app.main.view)
        assert any(LINKS[0] in s for s in styles) and any(LINKS[1] in s for s in styles)
        assert f"[1] {LINKS[0]}" in screen_text(app)

    log = EventLog()
    app = MailApp(_with_ui(demo_config, hyperlinks=False))
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        await _open_link_mail(app, pilot, log)
        assert _link_styles(app.main.view) == []
        assert f"[1] {LINKS[0]}" in screen_text(app)  # still listed, only not clickable


async def test_copy_link_picks_one_and_writes_osc52(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await _open_link_mail(app, pilot, event_log)
        written = record_writes(app)
        await pilot.press("U")
        await wait_for(pilot, lambda: isinstance(app.screen, PickerScreen))
        await pilot.press("down", "enter")  # the second link
        await wait_for(pilot, lambda: not isinstance(app.screen, PickerScreen))
        assert osc52(LINKS[1]) in written
        assert app.clipboard == LINKS[1]
        assert "copied link [2]" in app.main.status.notice


async def test_copy_address_from_list_and_view(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(_with_ui(demo_config, keys="mutt"))  # same key in both presets
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        written = record_writes(app)
        env = app.main.messages.current
        await pilot.press("Y")
        assert osc52(env.sender.addr) in written
        before = list(written)
        await pilot.press("U")  # copy_link works in the view only: nothing is copied here
        assert written == before and app.clipboard == env.sender.addr
        await _open_link_mail(app, pilot, event_log)
        await pilot.press("Y")
        assert osc52("links@sender.example") in written


async def test_copied_text_is_made_inert(demo_config: AppConfig, event_log: EventLog) -> None:
    # A control character in the address cannot reach the clipboard (or the terminal).
    raw = LINK_MAIL.replace(b"links@sender.example", b"evil\x07@sender.example")
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        deliver(raw=raw)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.main.messages.envelope_at(0).subject == "two links")
        await pilot.press("g")
        await pilot.press("Y")
        assert app.clipboard and "\x07" not in app.clipboard


async def test_new_actions_have_keys_help_and_overrides(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    for preset in keymap.PRESETS.values():
        assert preset["copy_link"] and preset["copy_address"]
    config = replace(demo_config, key_overrides={"copy_address": "ctrl+y"})
    app = MailApp(config)
    async with app.run_test(size=(100, 80), message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "Copy a link of the message" in text and "Copy the sender's address" in text
        assert "^y" in text
        await pilot.press("escape")
        env = app.main.messages.current
        await pilot.press("ctrl+y")
        assert app.clipboard == env.sender.addr


# --------------------------------------------------------------------------- speed work


async def test_first_frame_already_shows_the_list(demo_config: AppConfig) -> None:
    # The index opens when the main screen mounts, before its first frame and
    # before the runtime: the list has rows before any worker event arrives.
    log = EventLog()
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        await pilot.pause()
        assert app.main.messages.count > 0
        assert app.read_index is not None
        assert "Loading" not in screen_text(app)
        await wait_ready(pilot, log)


async def test_rows_are_cached_prerendered_and_restyled(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        messages = app.main.messages
        height = messages.scrollable_content_region.height
        await pilot.press("pagedown", "pagedown")
        await pilot.pause(0.1)
        top = round(messages.scroll_y)
        assert top > 0
        # The screenful below is rendered while idle, ready for the next page-down.
        below = [r for r in range(top + height, min(top + 2 * height, messages.count))]
        assert below and all(
            any(key[0] == r for key in messages._strips) for r in below if r != messages.cursor
        )
        row = next(r for r in range(top, top + height) if r != messages.cursor)
        width = messages.scrollable_content_region.width
        before = messages._strips[(row, width, False)][1]
        app.theme = "light"  # a new theme restyles every row, cached or not
        await pilot.pause(0.2)
        after = messages.render_line(row - top)
        assert [s.style for s in after] != [s.style for s in before]
        # Selecting a row shows its mark at once (the cache key has the selection).
        messages.cursor = row
        await pilot.press("x")
        await pilot.pause()
        assert messages.render_line(row - top).text.startswith("*")
