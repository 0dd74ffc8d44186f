"""The one place where the UI meets the account workers.

The Bridge owns the `Runtime` (imported lazily, after the first frame),
turns every core Event into a Textual Message posted to one target (the
main screen), and forwards Commands. It never speaks a protocol itself.

Flooding: SyncProgress is throttled here (the newest per account is posted
at most every `PROGRESS_INTERVAL` seconds, and always before any other event
of that account, so the order stays right), and the wrapper messages use
`can_replace` so what still queues up collapses.

Besides the main screen, code that needs the outcome of one command (the composer
waits for its Send or Append) uses `request()`, and `listeners` see every event
(the outbox view follows OutboxChanged without the main screen knowing about it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tui_mail.core import events as ev
from tui_mail.core.commands import Command
from tui_mail.ui.messages import ErrorEvent, wrap

if TYPE_CHECKING:
    from textual.message_pump import MessagePump

    from tui_mail.config.schema import AccountConfig, AppConfig

PROGRESS_INTERVAL = 0.05
_TERMINAL = (ev.Done, ev.Failed, ev.Cancelled, ev.UnsupportedReply)


def _default_runtime_factory(config: AppConfig) -> Any:
    from tui_mail.sync.runtime import Runtime

    return Runtime(config)


def _preload(config: AppConfig) -> None:
    from tui_mail.sync.runtime import preload

    preload(config)


class Bridge:
    def __init__(
        self,
        config: AppConfig,
        target: MessagePump,
        runtime_factory: Callable[[AppConfig], Any] | None = None,
    ) -> None:
        self.config = config
        self.target = target
        self._factory = runtime_factory or _default_runtime_factory
        self.runtime: Any = None
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._pending: dict[str, ev.SyncProgress] = {}
        self._flush: asyncio.TimerHandle | None = None
        # Command id -> future resolved by that command's terminal reply (see request()).
        self._waiting: dict[int, asyncio.Future[ev.Event]] = {}
        self.listeners: list[Callable[[ev.Event], None]] = []

    # --- lifecycle ---------------------------------------------------------------

    def create(self) -> Any:
        """Build the Runtime (opens the index and the stores; no network)."""
        if self.runtime is None:
            self.runtime = self._factory(self.config)
        return self.runtime

    async def preload(self) -> None:
        """Import the sync engine and the backends in a thread: done on the loop,
        those imports would freeze the keys for a few hundred milliseconds."""
        if self.runtime is None and self._factory is _default_runtime_factory:
            await asyncio.to_thread(_preload, self.config)

    @property
    def index(self) -> Any:
        return self.runtime.index if self.runtime is not None else None

    @property
    def stores(self) -> dict[str, Any]:
        return dict(self.runtime.stores) if self.runtime is not None else {}

    async def start(self) -> None:
        """Start one worker per account on the running loop; returns at once."""
        self.create()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        await self.runtime.start(self.emit)
        self._started = True

    async def stop(self, timeout: float = 3.0) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        for future in self._waiting.values():
            if not future.done():
                future.set_result(ev.Cancelled(account=""))
        self._waiting.clear()
        if self.runtime is None or not self._started:
            return
        self._started = False
        try:
            await asyncio.wait_for(self.runtime.stop(), timeout)
        except (TimeoutError, asyncio.CancelledError):
            pass
        except Exception:  # shutting down: nothing useful to show any more
            pass

    def add_account(self, account: AccountConfig) -> str | None:
        """Start a worker for an account added while running; why not, or None."""
        if self.runtime is None or not self._started:
            return "the accounts are not started yet"
        try:
            self.runtime.add_account(account)
        except Exception as exc:  # AccountLocked, a store that cannot be made: one line
            return str(exc) or type(exc).__name__
        return None

    # --- commands ------------------------------------------------------------------

    def submit(self, account: str, command: Command) -> bool:
        """Send a command; a problem comes back as a Failed event, never raises."""
        if self.runtime is None or not self._started:
            self._post(ev.Failed(account=account, message="not connected yet"))
            return False
        try:
            self.runtime.submit(account, command)
        except Exception as exc:
            self._post(
                ev.Failed(account=account, in_reply_to=command.id, message=str(exc) or repr(exc))
            )
            return False
        return True

    def request(self, account: str, command: Command) -> asyncio.Future[ev.Event]:
        """Send a command; the future gets its terminal reply (Done, Failed, ...).

        The reply is still posted to the main screen as usual. Call on the loop thread.
        """
        future: asyncio.Future[ev.Event] = asyncio.get_running_loop().create_future()
        self._waiting[command.id] = future
        if not self.submit(account, command) and not future.done():
            self._waiting.pop(command.id, None)
            future.set_result(
                ev.Failed(account=account, in_reply_to=command.id, message="not connected yet")
            )
        return future

    # --- events --------------------------------------------------------------------

    def emit(self, event: ev.Event) -> None:
        """Called by the account workers for every event (on the loop thread)."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._thread:
            loop.call_soon_threadsafe(self.emit, event)
            return
        if isinstance(event, ev.SyncProgress) and loop is not None:
            self._pending[event.account] = event
            if self._flush is None:
                self._flush = loop.call_later(PROGRESS_INTERVAL, self._flush_progress)
            return
        pending = self._pending.pop(event.account, None)
        if pending is not None:
            self._post(pending)
        self._post(event)

    def _flush_progress(self) -> None:
        self._flush = None
        pending, self._pending = self._pending, {}
        for event in pending.values():
            self._post(event)

    def _post(self, event: ev.Event) -> None:
        if event.in_reply_to is not None and isinstance(event, _TERMINAL):
            future = self._waiting.pop(event.in_reply_to, None)
            if future is not None and not future.done():
                future.set_result(event)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not stop events reaching the screen
                pass
        try:
            self.target.post_message(wrap(event))
        except Exception:  # the screen is gone (shutting down)
            pass

    def post_error(self, account: str, message: str) -> None:
        self.target.post_message(ErrorEvent(ev.Failed(account=account, message=message)))
