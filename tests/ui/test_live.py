"""Live updates through the real worker, connection states, status line, small terminals."""

from __future__ import annotations

import os
import time

import pytest
from msgspec.structs import replace
from pilot_helpers import SIZE, EventLog, screen_text, wait_for, wait_ready

from tui_mail import paths
from tui_mail.config.schema import AppConfig, UiConfig
from tui_mail.core import events as ev
from tui_mail.core.commands import SyncNow
from tui_mail.store.journal import Journal
from tui_mail.ui.app import MailApp
from tui_mail.ui.messages import ProgressEvent

NEW_MAIL = (
    b"From: Another Tool <tool@example.org>\r\nTo: you@demo.example\r\n"
    b"Subject: delivered behind our back\r\nDate: Tue, 1 Jan 2036 00:00:00 +0000\r\n"
    b"Message-ID: <behind-our-back@example.org>\r\n\r\nhello\r\n"
)


def deliver_like_another_tool(name: str = "2082758400.M1P1.othertool") -> None:
    """What procmail or fdm would do: write in tmp/, rename into new/."""
    root = paths.demo_root()
    tmp = root / "tmp" / name
    tmp.write_bytes(NEW_MAIL)
    os.rename(tmp, root / "new" / name)


async def test_mail_added_by_another_tool_appears_after_sync_now(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        messages = app.main.messages
        count = messages.count
        total_before = app.main.folders.folder("demo", "INBOX").total
        deliver_like_another_tool()
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: messages.count == count + 1)
        assert messages.envelope_at(0).subject == "delivered behind our back"
        assert "delivered behind our" in screen_text(app)
        await wait_for(pilot, lambda: app.main.folders.folder("demo", "INBOX").total > total_before)


async def test_remote_flag_change_appears_without_a_key_press(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        messages = app.main.messages
        env = messages.envelope_at(0)
        assert env is not None and messages.render_line(0).text[3] != "F"
        # Another client flags it (renames the file), then the worker's poll comes round:
        # here the poll's own SyncNow, submitted as the timer would, not a key.
        root = paths.demo_root()
        old = next(
            p
            for sub in ("cur", "new")
            for p in (root / sub).iterdir()
            if p.name.startswith(env.ref.key)
        )
        letters = old.name.split(":2,", 1)[1] if ":2," in old.name else ""
        os.rename(old, root / "cur" / f"{env.ref.key}:2,{''.join(sorted(letters + 'F'))}")
        app.bridge.submit("demo", SyncNow())
        await wait_for(pilot, lambda: messages.render_line(0).text[3] == "F")


async def test_connection_states_in_folder_pane_and_status(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        retry_at = time.strftime("%H:%M", time.localtime(time.time() + 600))
        app.bridge.emit(
            ev.ConnectionChanged(
                account="demo",
                state=ev.ConnectionState.OFFLINE,
                detail="connection refused",
                retry_in=600,
            )
        )
        await pilot.pause()
        text = screen_text(app)
        assert f" retry {retry_at}" in text  # the folder pane, under the account
        assert "demo:offline" in text and "connection refused" in text  # the status line
        app.bridge.emit(
            ev.ConnectionChanged(
                account="demo", state=ev.ConnectionState.AUTH_FAILED, detail="bad password"
            )
        )
        await pilot.pause()
        text = screen_text(app)
        assert "login failed" in text and "bad password" in text
        app.bridge.emit(ev.ConnectionChanged(account="demo", state=ev.ConnectionState.LOCAL))
        await pilot.pause()
        text = screen_text(app)
        assert "login failed" not in text and "bad password" not in text
        assert "demo:local" in text


async def test_progress_burst_is_coalesced(demo_config: AppConfig, event_log: EventLog) -> None:
    seen: list[object] = []

    def hook(message: object) -> None:
        event_log(message)
        if isinstance(message, ProgressEvent):
            seen.append(message)

    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await wait_ready(pilot, event_log)
        seen.clear()
        for n in range(1, 2001):
            app.bridge.emit(
                ev.SyncProgress(
                    account="demo", folder="INBOX", activity="fetching", done=n, total=2000
                )
            )
        await wait_for(pilot, lambda: "2000/2000" in screen_text(app))
        assert len(seen) < 20  # 2000 updates, a handful of repaints


async def test_pending_mark_and_count(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        index = app.main.index
        env = app.main.messages.envelope_at(0)
        index.set_pending([env.ref.id], True)
        Journal(index).add("demo", "set_flags", {"id": env.ref.id})
        app.bridge.emit(ev.MessagesChanged(account="demo", folder="INBOX"))
        await wait_for(pilot, lambda: app.main.messages.render_line(0).text[1] == "~")
        assert "1 pending" in screen_text(app)


async def test_errors_go_to_the_status_line(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        app.bridge.emit(ev.BackendError(account="demo", message="disk \x1b[2J full"))
        await pilot.pause()
        text = screen_text(app)
        assert "disk ␛[2J full" in text and "\x1b" not in text
        assert app.is_running


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40)])
async def test_layout_readable_at_small_sizes(
    demo_config: AppConfig, event_log: EventLog, size: tuple[int, int]
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=size, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        lines = screen_text(app).splitlines()
        assert len(lines) == size[1]
        first = app.main.messages.envelope_at(0)
        assert first.subject[:6] in lines[0]  # the top row shows a subject
        assert "INBOX" in lines[-2]  # the status line is there
        assert app.main.folders.outer_size.width == (14 if size[0] < 70 else 18)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.view.parsed is not None)
        assert "Subject:" in screen_text(app)


@pytest.mark.parametrize("theme", ["default", "light", "high-contrast", "ansi-16", "mono-256"])
async def test_every_shipped_theme_renders(
    demo_config: AppConfig, event_log: EventLog, theme: str
) -> None:
    app = MailApp(replace(demo_config, ui=UiConfig(theme=theme)))
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        assert app.theme == theme
        assert not app.main.status.notice  # no theme warning
        await pilot.press("space", "enter")
        await wait_for(pilot, lambda: app.main.view.parsed is not None)
        assert "Subject:" in app.export_screenshot()
