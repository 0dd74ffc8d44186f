"""The bridge: events become Messages without flooding; failures never escape."""

from __future__ import annotations

import asyncio

from pilot_helpers import SIZE, screen_text, wait_for

from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig
from tui_mail.core import events as ev
from tui_mail.core.commands import SyncNow
from tui_mail.ui.app import MailApp
from tui_mail.ui.bridge import PROGRESS_INTERVAL, Bridge
from tui_mail.ui.messages import ErrorEvent, ProgressEvent, wrap


class Target:
    def __init__(self) -> None:
        self.posted: list[object] = []

    def post_message(self, message: object) -> bool:
        self.posted.append(message)
        return True


class FakeRuntime:
    def __init__(self, config: AppConfig) -> None:
        self.index = None
        self.stores: dict[str, object] = {}
        self.submitted: list[object] = []

    async def start(self, emit) -> None:
        self.emit = emit

    def submit(self, account: str, command: object) -> None:
        if account != "a":
            raise KeyError(account)
        self.submitted.append(command)

    async def stop(self) -> None:
        pass


def _config() -> AppConfig:
    account = AccountConfig(
        name="a",
        email="a@example.org",
        receive=EndpointConfig(backend="maildir"),
        send=EndpointConfig(backend="local"),
    )
    return AppConfig(path=None, accounts={"a": account})


def _progress(n: int, account: str = "a") -> ev.SyncProgress:
    return ev.SyncProgress(account=account, folder="INBOX", activity="fetching", done=n, total=1000)


async def test_progress_bursts_are_coalesced_and_ordered() -> None:
    target = Target()
    bridge = Bridge(_config(), target, FakeRuntime)  # type: ignore[arg-type]
    await bridge.start()
    for n in range(1000):
        bridge.emit(_progress(n))
    assert target.posted == []  # nothing yet: throttled
    await asyncio.sleep(PROGRESS_INTERVAL * 3)
    assert len(target.posted) == 1
    assert target.posted[0].event.done == 999
    # A terminal event flushes the account's pending progress first.
    bridge.emit(_progress(5))
    bridge.emit(ev.SyncFinished(account="a"))
    kinds = [type(m.event).__name__ for m in target.posted[1:]]
    assert kinds == ["SyncProgress", "SyncFinished"]
    await bridge.stop()


async def test_submit_problems_become_failed_events() -> None:
    target = Target()
    bridge = Bridge(_config(), target, FakeRuntime)  # type: ignore[arg-type]
    assert not bridge.submit("a", SyncNow())  # not started yet
    await bridge.start()
    assert bridge.submit("a", SyncNow())
    assert not bridge.submit("nope", SyncNow())
    errors = [m for m in target.posted if isinstance(m, ErrorEvent)]
    assert len(errors) == 2
    await bridge.stop()


def test_can_replace_is_per_account() -> None:
    a1, a2, b = wrap(_progress(1)), wrap(_progress(2)), wrap(_progress(3, "b"))
    assert isinstance(a1, ProgressEvent)
    assert a1.can_replace(a2)
    assert not a1.can_replace(b)
    failed = wrap(ev.Failed(account="a", message="x"))
    assert not failed.can_replace(wrap(ev.Failed(account="a", message="y")))


async def test_runtime_that_fails_to_start_shows_in_the_status_line() -> None:
    def broken(config: AppConfig) -> object:
        raise RuntimeError("index is on fire \x1b[31m")

    app = MailApp(_config(), runtime_factory=broken)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "on fire" in app.main.status.notice)
        text = screen_text(app)
        assert "index is on fire" in text
        assert "\x1b" not in text
        assert app.is_running
        await pilot.press("j", "enter", "question_mark", "escape")  # nothing to show, no crash
        assert app.is_running
