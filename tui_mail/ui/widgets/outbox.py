"""The outbox in the UI: what is waiting to go out, and the user's say over it.

`OutboxTracker` keeps each account's outbox as the workers last reported it
(`OutboxChanged`, through a bridge listener), read from the index once at start so
messages left from an earlier run show up before any delivery. `OutboxScreen` lists
every entry with its state — queued, sending, failed (with the reason and the next
retry, or "permanent"), uncertain — and offers:

    r  retry a failed message now; "resend" an uncertain one (after a warning: it may
       have been delivered already, docs/outbox.md)
    d  cancel / discard (confirmed)
    f  send everything due now, including messages waiting out a backoff
    Esc/q  close
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.core.sanitize import inert_line
from tui_mail.sync.outbox import OutboxChanged, OutboxEntry, State
from tui_mail.ui.screens.compose_dialogs import ConfirmScreen

if TYPE_CHECKING:
    from tui_mail.ui.app import MailApp

PROBLEMS = (State.FAILED, State.UNCERTAIN)


def entry_state(entry: OutboxEntry, now: float | None = None) -> str:
    """The state in words: "failed, retry at 14:03:22 (2 attempts)", "uncertain", ..."""
    if entry.state is State.FAILED:
        if entry.retry_at is None:
            return "failed (permanent)"
        when = time.strftime("%H:%M:%S", time.localtime(entry.retry_at))
        attempts = f", {entry.attempts} attempts" if entry.attempts > 1 else ""
        return f"failed, retry at {when}{attempts}"
    if entry.state is State.UNCERTAIN:
        return "uncertain: resend or discard"
    return entry.state.value


def entry_prompt(entry: OutboxEntry, width: int = 74) -> Content:
    """Two or three lines: state, recipients and subject, the last error."""
    style = {
        State.FAILED: "bold $error",
        State.UNCERTAIN: "bold $warning",
        State.SENDING: "bold $accent",
    }.get(entry.state, "bold")
    who = ", ".join(entry.recipients) or "(no recipients)"
    lines: list[Content | str | tuple[str, str]] = [
        (f"#{entry.id} ", "$text-muted"),
        (f"{inert_line(entry.account)}  ", "bold"),
        (entry_state(entry), style),
        "\n  ",
        (_cut(inert_line(entry.subject) or "(no subject)", width // 2), "bold"),
        f"  to {_cut(inert_line(who), width // 2 - 5)}",
    ]
    if entry.last_error:
        lines += ["\n  ", (_cut(inert_line(entry.last_error), width - 2), "$text-muted")]
    return Content.assemble(*lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


class OutboxTracker:
    """Every account's unsent messages, as last reported; tells an open OutboxScreen."""

    def __init__(self, app: MailApp) -> None:
        self.app = app
        self.entries: dict[str, tuple[OutboxEntry, ...]] = {}

    def start(self) -> None:
        """Read the outbox from the index and follow OutboxChanged from now on."""
        bridge = self.app.bridge
        bridge.listeners.append(self.on_event)
        if bridge.index is None:
            return
        from tui_mail.sync.outbox import Outbox

        box = Outbox(bridge.index)
        for account in self.app.config.accounts:
            self.entries[account] = tuple(box.entries(account))
        self._changed(notify_problems=True)

    def flush_leftovers(self) -> None:
        """Deliver what an earlier run left queued, once the workers run.

        The worker schedules retries only for what it tried itself; and a `sending` row
        that a crash interrupted is settled (as uncertain) only by a delivery run.
        """
        for account, entries in self.entries.items():
            if any(e.will_retry or e.state is State.SENDING for e in entries):
                self.app.bridge.submit(account, cmd.FlushOutbox())

    def reload(self, account: str) -> None:
        index = self.app.bridge.index
        if index is None:
            return
        from tui_mail.sync.outbox import Outbox

        self.entries[account] = tuple(Outbox(index).entries(account))
        self._changed()

    def on_event(self, event: ev.Event) -> None:
        if isinstance(event, OutboxChanged):
            before = {e.id for e in self.all() if e.state in PROBLEMS}
            self.entries[event.account] = tuple(event.entries)
            now = {e.id for e in self.all() if e.state in PROBLEMS}
            self._changed(notify_problems=bool(now - before))

    def all(self) -> list[OutboxEntry]:
        return [e for entries in self.entries.values() for e in entries]

    def count(self, account: str | None = None) -> int:
        if account is None:
            return len(self.all())
        return len(self.entries.get(account, ()))

    def _changed(self, *, notify_problems: bool = False) -> None:
        for screen in self.app.screen_stack:
            if isinstance(screen, OutboxScreen):
                screen.show_entries()
        problems = [e for e in self.all() if e.state in PROBLEMS]
        if notify_problems and problems:
            self.app.main.show_notice(
                f"outbox: {len(problems)} message(s) not sent{outbox_hint(self.app)}",
                error=True,
            )


class OutboxScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    OutboxScreen { align: center middle; }
    OutboxScreen > Vertical {
        width: 78; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    OutboxScreen #outbox-title { text-style: bold; }
    OutboxScreen OptionList { height: auto; max-height: 16; border: none; padding: 0; }
    OutboxScreen #outbox-empty { color: $text-muted; }
    OutboxScreen .outbox-hint { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", show=True),
        Binding("r", "retry", "Retry/resend", show=True),
        Binding("d", "cancel_entry", "Cancel", show=True),
        Binding("f", "flush", "Send now", show=True),
        Binding("j", "cursor(1)", "Down", show=False),
        Binding("k", "cursor(-1)", "Up", show=False),
    ]

    def __init__(self, tracker: OutboxTracker) -> None:
        super().__init__()
        self.tracker = tracker
        self.shown: list[OutboxEntry] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Outbox", id="outbox-title", markup=False)
            yield Static("The outbox is empty: everything was sent.", id="outbox-empty")
            yield OptionList(id="outbox-list")
            yield Static(
                "r retry/resend   d cancel   f send now   Esc close",
                classes="outbox-hint",
                markup=False,
            )

    def on_mount(self) -> None:
        self.show_entries()
        self.query_one(OptionList).focus()

    def show_entries(self) -> None:
        listing = self.query_one(OptionList)
        keep = self.selected
        entries = sorted(self.tracker.all(), key=lambda e: e.id)
        self.shown = entries
        listing.set_options(Option(entry_prompt(e), id=str(e.id)) for e in entries)
        listing.display = bool(entries)
        self.query_one("#outbox-empty").display = not entries
        self.query_one("#outbox-title", Static).update(f"Outbox ({len(entries)})")
        if entries:
            ids = [e.id for e in entries]
            listing.highlighted = ids.index(keep.id) if keep and keep.id in ids else 0

    @property
    def selected(self) -> OutboxEntry | None:
        listing = self.query_one(OptionList)
        i = listing.highlighted
        return self.shown[i] if i is not None and 0 <= i < len(self.shown) else None

    @property
    def app_(self) -> MailApp:
        return self.app  # type: ignore[return-value]

    # --- actions ----------------------------------------------------------------------

    def action_close(self) -> None:
        self.dismiss()

    def action_cursor(self, delta: int) -> None:
        listing = self.query_one(OptionList)
        if delta > 0:
            listing.action_cursor_down()
        else:
            listing.action_cursor_up()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()  # Enter on an entry: nothing to open; r and d act on it

    def action_retry(self) -> None:
        entry = self.selected
        if entry is None:
            return
        if entry.state is State.UNCERTAIN:
            question = (
                f"“{entry.subject}” may already have been delivered (sending was "
                "interrupted). Send it again anyway?"
            )
            self._confirm_then(question, entry, cmd.RetryOutbox(outbox_id=entry.id), "resent")
        elif entry.state is State.FAILED:
            self._submit(entry, cmd.RetryOutbox(outbox_id=entry.id), "sent")
        else:
            self.notify(f"#{entry.id} is {entry.state.value}: nothing to retry", markup=False)

    def action_cancel_entry(self) -> None:
        entry = self.selected
        if entry is None:
            return
        if entry.state is State.SENDING:
            self.notify(f"#{entry.id} is being sent right now", markup=False)
            return
        verb = "Discard" if entry.state is State.UNCERTAIN else "Cancel"
        question = f"{verb} “{entry.subject}”? It will not be sent."
        self._confirm_then(question, entry, cmd.CancelOutbox(outbox_id=entry.id), "cancelled")

    def action_flush(self) -> None:
        for account in _accounts(self.tracker.all()):
            self.app_.run_worker(
                self._request(account, cmd.FlushOutbox(force=True), "flushed", None),
                group="outbox",
                exit_on_error=False,
            )

    def _confirm_then(
        self, question: str, entry: OutboxEntry, command: cmd.Command, done: str
    ) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._submit(entry, command, done)

        self.app.push_screen(ConfirmScreen(question), answered)

    def _submit(self, entry: OutboxEntry, command: cmd.Command, done: str) -> None:
        self.app_.run_worker(
            self._request(entry.account, command, done, entry),
            group="outbox",
            exit_on_error=False,
        )

    async def _request(
        self, account: str, command: cmd.Command, done: str, entry: OutboxEntry | None
    ) -> None:
        app = self.app_
        reply = await app.bridge.request(account, command)
        what = f"#{entry.id} “{entry.subject}”" if entry is not None else f"{account} outbox"
        if isinstance(reply, ev.Done):
            app.notify(inert_line(f"{what}: {done}"), markup=False)
        else:
            message = getattr(reply, "message", "") or "cancelled"
            app.notify(inert_line(f"{what}: {message}"), severity="error", markup=False)
        # The worker reports deliveries itself; a refused retry or cancel it may not.
        self.tracker.reload(account)


def _accounts(entries: Iterable[OutboxEntry]) -> list[str]:
    return list(dict.fromkeys(e.account for e in entries))


def outbox_hint(app: Any) -> str:
    """ " (press <key>)" with the key the user has for the outbox, or "" if none."""
    from tui_mail.ui.keymap import display_keys

    keys = getattr(getattr(app, "keys", None), "keys", {}).get("outbox", "")
    return f" (press {display_keys(keys).split()[0]})" if keys else ""


def open_outbox(app: Any) -> None:
    """Show the outbox (the `outbox` action)."""
    tracker = getattr(app, "outbox", None)
    if tracker is None:
        app.notify("the outbox is not loaded yet", markup=False)
        return
    if not any(isinstance(s, OutboxScreen) for s in app.screen_stack):
        app.push_screen(OutboxScreen(tracker))
