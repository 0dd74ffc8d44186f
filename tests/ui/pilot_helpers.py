"""Helpers for the Pilot tests (imported by name: tests/ui is on sys.path)."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable

from rich.console import Console

from tui_mail.core import events as ev
from tui_mail.ui.messages import CoreEvent

SIZE = (80, 24)


class EventLog:
    """Every core event the main screen received, for `message_hook`."""

    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def __call__(self, message: object) -> None:
        if isinstance(message, CoreEvent):
            self.events.append(message.event)

    def of(self, kind: type[ev.Event]) -> list[ev.Event]:
        return [e for e in self.events if isinstance(e, kind)]


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the UI")
        await pilot.pause(0.02)
    await pilot.pause()


async def wait_ready(pilot, log: EventLog) -> None:
    """The runtime started, the first sync finished, and the list shows rows."""
    app = pilot.app
    await wait_for(
        pilot,
        lambda: bool(log.of(ev.SyncFinished)) and app.main.messages.count > 0,
    )
    await asyncio.sleep(0)
    await pilot.pause()


def screen_text(app) -> str:
    """The current screen as plain text (what a terminal would show, minus colour)."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text(styles=False)
