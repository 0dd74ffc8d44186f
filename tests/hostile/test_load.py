"""Load: five IMAP accounts on the real Dovecot, a few hundred messages each, all
syncing at once in the TUI, while keys are pressed and the time until each key's
effect is on screen is measured.

Key latency is measured from the key event entering the app's message queue
(as a terminal driver posts it) to the end of the first screen refresh after
the cursor moved: "the key was handled and painted". Three figures are kept:
`handled` (wall clock, queue -> the action ran), `painted` (wall clock, ->
the refresh after it) and `busy`: the CPU time the event loop's thread spent
in that interval, i.e. what the app's own message loop took to get through
everything queued before the key, the key itself and the frame.

The 100 ms bound is asserted on the p95 of `busy`. Wall-clock time on the
shared 2-core machine also counts other processes (load averages of 5-7
were seen while this was written, p95 `painted` then swung between 20 and
150 ms from run to run), so the wall-clock p95 gets a generous bound that
still catches the UI thread being blocked (a synchronous import of the
sync engine used to cost 300-600 ms right at start-up; it now runs in a
thread). The figures are printed with -s.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from servers.harness import Mailstack, add_user, load_mail, reset_user_mail
from textual import events

from hostile.scripted import screen_text
from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig
from tui_mail.core import events as ev

pytestmark = pytest.mark.servers

ACCOUNTS = 5
MESSAGES = 500  # per account
P95_LIMIT = 0.100  # seconds of the loop's own time per key (p95)
WALL_P95_LIMIT = 0.300  # seconds, wall clock, on a shared machine (p95)
MIN_SAMPLES = 15  # keys measured while the syncs are running


def load_account(ms: Mailstack, n: int) -> AccountConfig:
    user = f"load{n}"
    ep = EndpointConfig(
        backend="imap",
        host=ms.host,
        port=ms.imap_port,
        security="starttls",
        user=user,
        password=ms.users[user],
        ca_file=ms.ca_file,
        timeout=30.0,
        key_path=f"accounts.{user}.receive",
    )
    return AccountConfig(user, f"{user}@localhost", ep, EndpointConfig(backend="local"))


@pytest.fixture
def five_accounts(mailstack: Mailstack) -> AppConfig:
    accounts = {}
    for n in range(1, ACCOUNTS + 1):
        user = f"load{n}"
        add_user(mailstack, user, f"{user}pass")
        reset_user_mail(mailstack, user)  # the same count on every run of the session
        load_mail(mailstack, user, MESSAGES)
        accounts[user] = load_account(mailstack, n)
    return AppConfig(path=None, accounts=accounts)


class KeyTimer:
    """Posts a key as the terminal driver does and times its effect."""

    def __init__(self, app: Any, widget: Any, action: str) -> None:
        self.app = app
        self.handled: list[float] = []
        self.painted: list[float] = []
        self.busy: list[float] = []  # CPU time of the loop's thread, post -> painted
        self._t0 = self._c0 = 0.0
        self._done: asyncio.Event = asyncio.Event()
        original: Callable[[], None] = getattr(widget, action)

        def timed() -> None:
            original()
            self.handled.append(time.perf_counter() - self._t0)
            # Runs once the frame showing the moved cursor has been refreshed.
            app.call_after_refresh(self._painted)

        setattr(widget, action, timed)

    def _painted(self) -> None:
        self.painted.append(time.perf_counter() - self._t0)
        self.busy.append(time.thread_time() - self._c0)
        self._done.set()

    async def press(self, key: str) -> None:
        self._done.clear()
        self._t0 = time.perf_counter()
        self._c0 = time.thread_time()
        event = events.Key(key, key)
        event.set_sender(self.app)
        self.app._driver.send_message(event)
        await asyncio.wait_for(self._done.wait(), 10)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


async def test_keys_stay_fast_while_five_accounts_sync(five_accounts: AppConfig) -> None:
    from tui_mail.ui.app import MailApp

    finished: set[str] = set()

    def hook(message: object) -> None:
        event = getattr(message, "event", None)
        if isinstance(event, ev.SyncFinished):
            finished.add(event.account)

    app = MailApp(five_accounts)
    async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
        messages = app.main.messages
        deadline = time.monotonic() + 60
        # From the first frame on: the list fills while the keys are pressed (on an
        # empty list the key is handled and a frame painted all the same).
        timer_down = KeyTimer(app, messages, "action_cursor_down")
        timer_up = KeyTimer(app, messages, "action_cursor_up")
        during = 0
        keys = 0
        while len(finished) < ACCOUNTS or keys < 2 * MIN_SAMPLES:
            assert time.monotonic() < deadline, f"syncs did not finish: {sorted(finished)}"
            syncing = len(finished) < ACCOUNTS
            await (timer_down if keys % 2 == 0 else timer_up).press("j" if keys % 2 == 0 else "k")
            keys += 1
            during += syncing
            await asyncio.sleep(0.02)  # a fast typist: 50 keys a second at most
        painted = timer_down.painted + timer_up.painted
        handled = timer_down.handled + timer_up.handled
        busy = timer_down.busy + timer_up.busy
        print(
            f"\nkeys {len(painted)} ({during} during the syncs): handled p50 "
            f"{statistics.median(handled) * 1000:.1f} ms p95 {p95(handled) * 1000:.1f} ms; "
            f"painted p50 {statistics.median(painted) * 1000:.1f} ms "
            f"p95 {p95(painted) * 1000:.1f} ms max {max(painted) * 1000:.1f} ms; "
            f"loop CPU p95 {p95(busy) * 1000:.1f} ms"
        )
        assert during >= MIN_SAMPLES, f"only {during} keys while syncing"
        assert p95(busy) < P95_LIMIT, f"loop p95 {p95(busy) * 1000:.0f} ms"
        assert p95(painted) < WALL_P95_LIMIT, f"wall p95 {p95(painted) * 1000:.0f} ms"
        # Everything arrived, and the screen says so.
        index = app.bridge.index
        for name in five_accounts.accounts:
            assert index.count(name, "INBOX") == MESSAGES
        assert "load1" in screen_text(app)
        await pilot.press("q")
