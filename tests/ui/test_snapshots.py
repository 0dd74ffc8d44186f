"""Screen snapshots at a fixed clock: the text of the screen, compared with a stored copy.

Text, not SVG: a diff of a failing snapshot reads like the terminal, and it
does not change with Textual's SVG export. The clock is fixed (the demo's own
"now", TZ=UTC), and so is the last-sync time, so nothing depends on the day
the tests run. After an intended change of the layout, regenerate with
`UPDATE_SNAPSHOTS=1 pytest tests/ui/test_snapshots.py` and read the diff.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from pilot_helpers import EventLog, screen_text, wait_for, wait_ready

from tui_mail.config.schema import AppConfig
from tui_mail.demo.generate import DEFAULT_NOW
from tui_mail.ui.app import MailApp
from tui_mail.ui.dialogs.picker import PickerScreen
from tui_mail.ui.screens.help import HelpScreen

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def check(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        if not os.environ.get("UPDATE_SNAPSHOTS") and os.environ.get("CI"):
            pytest.fail(f"snapshot {path} is missing (make it with UPDATE_SNAPSHOTS=1)")
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name}: the screen changed (UPDATE_SNAPSHOTS=1 to accept)"


async def snapshot(
    config: AppConfig,
    log: EventLog,
    name: str,
    size: tuple[int, int] = (80, 24),
    steps: Callable[[object, MailApp], Awaitable[None]] | None = None,
) -> None:
    app = MailApp(config)
    async with app.run_test(size=size, message_hook=log) as pilot:
        await wait_ready(pilot, log)
        # The hook sees SyncFinished when it is posted; wait until the screen handled it.
        await wait_for(pilot, lambda: app.main.status.account("demo").last_sync is not None)
        app.main.messages.now = DEFAULT_NOW
        app.main.status.account("demo").last_sync = DEFAULT_NOW
        app.main.messages.refresh()
        app.main.status.refresh()
        if steps is not None:
            await steps(pilot, app)
        await pilot.pause()
        check(name, screen_text(app))


async def test_snapshot_list(demo_config: AppConfig, event_log: EventLog) -> None:
    await snapshot(demo_config, event_log, "list_80x24")


async def test_snapshot_list_small(demo_config: AppConfig, event_log: EventLog) -> None:
    await snapshot(demo_config, event_log, "list_60x20", size=(60, 20))


async def test_snapshot_message(demo_config: AppConfig, event_log: EventLog) -> None:
    async def steps(pilot, app: MailApp) -> None:
        await pilot.press("j", "enter")
        await wait_for(pilot, lambda: app.main.view.parsed is not None)

    await snapshot(demo_config, event_log, "message_80x24", steps=steps)


async def test_snapshot_selection_and_threads(demo_config: AppConfig, event_log: EventLog) -> None:
    async def steps(pilot, app: MailApp) -> None:
        await pilot.press("T")
        await wait_for(pilot, lambda: app.main.messages.source.__class__.__name__ == "IdSource")
        await pilot.press("space", "j", "space")

    await snapshot(demo_config, event_log, "threads_selected_80x24", steps=steps)


async def test_snapshot_move_picker(demo_config: AppConfig, event_log: EventLog) -> None:
    async def steps(pilot, app: MailApp) -> None:
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, PickerScreen))
        await pilot.press(*"list")

    await snapshot(demo_config, event_log, "move_picker_80x24", steps=steps)


async def test_snapshot_help(demo_config: AppConfig, event_log: EventLog) -> None:
    async def steps(pilot, app: MailApp) -> None:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))

    await snapshot(demo_config, event_log, "help_80x24", steps=steps)
