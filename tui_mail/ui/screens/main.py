"""The main screen: folders | message list (+ message view), status line, key hints.

Panes follow "attributes down, messages up": FolderPane and MessageList post
`Selected`; this screen sets what the others show. Core events from the
bridge arrive here as `CoreEvent` messages.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Container, Horizontal
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from tui_mail.config.schema import AppConfig
from tui_mail.core import events as ev
from tui_mail.core.commands import SetFlags, SyncNow
from tui_mail.core.flags import Flag
from tui_mail.core.models import Envelope
from tui_mail.core.sanitize import inert_line
from tui_mail.ui import keymap
from tui_mail.ui.messages import CoreEvent
from tui_mail.ui.mime import parse_message
from tui_mail.ui.widgets.folder_pane import FolderPane
from tui_mail.ui.widgets.message_list import MessageList
from tui_mail.ui.widgets.message_view import MessageView
from tui_mail.ui.widgets.status_line import StatusLine

SMALL_HEIGHT = 40  # below this, "auto" layout shows the message in place of the list


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        keymap.binding("back", "back"),
        keymap.binding("toggle_headers", "toggle_headers"),
        keymap.binding("next_folder", "next_folder"),
        keymap.binding("prev_folder", "prev_folder"),
        keymap.binding("toggle_folders", "toggle_folders"),
    ]

    def __init__(self, config: AppConfig, bridge: Any) -> None:
        super().__init__()
        self.config = config
        self.bridge = bridge
        self.index: Any = None
        self.stores: dict[str, Any] = {}
        self.shown: tuple[str, str] | None = None  # (account, folder) in the list
        self.viewing = False
        self._notice: tuple[str, bool] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="panes"):
            yield FolderPane(id="folders")
            with Container(id="mail"):
                yield MessageList(id="messages")
                yield MessageView(id="view")
        yield StatusLine(id="status")
        yield Footer()

    @property
    def folders(self) -> FolderPane:
        return self.query_one(FolderPane)

    @property
    def messages(self) -> MessageList:
        return self.query_one(MessageList)

    @property
    def view(self) -> MessageView:
        return self.query_one(MessageView)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    def on_mount(self) -> None:
        for account in self.config.accounts:
            self.folders.add_account(account)
            self.status.account(account)
        self._apply_layout()
        self.messages.focus()
        if self._notice is not None:
            self.show_notice(self._notice[0], error=self._notice[1])

    # --- data from the runtime ---------------------------------------------------------------

    def attach(self, index: Any, stores: dict[str, Any]) -> None:
        """The index and stores are open: show folders and the first folder (no network)."""
        self.index, self.stores = index, stores
        for account in self.config.accounts:
            self._refresh_counts(account)
        if self.shown is None:
            self._open_first_folder()

    def _refresh_counts(self, account: str) -> None:
        if self.index is None:
            return
        try:
            counts = self.index.folder_counts(account)
        except Exception as exc:
            self.status.set_error(account, f"index: {exc}")
            return
        self.folders.set_counts(account, counts)

    def _open_first_folder(self) -> None:
        for row in self.folders.rows:
            if row.kind == "folder":
                self.open_folder(row.account, row.name)
                return
        self.messages.set_empty_text(
            "No folders yet" if self.config.accounts else "No accounts configured"
        )

    def open_folder(self, account: str, folder: str, *, focus_list: bool = False) -> None:
        self.folders.select_folder(account, folder)
        if focus_list:
            self.messages.focus()
        if self.shown == (account, folder):
            return
        self.shown = (account, folder)
        self.close_message()
        self.status.set_location(f"{account}/{folder}")
        if self.index is not None:
            self.messages.show_folder(self.index, account, folder)

    @on(CoreEvent)
    def _core_event(self, message: CoreEvent) -> None:
        event = message.event
        account = event.account
        if isinstance(event, ev.ConnectionChanged):
            self.status.set_state(account, event.state, event.detail)
            self.folders.set_state(account, event.state)
            if event.detail and event.state in (
                ev.ConnectionState.OFFLINE,
                ev.ConnectionState.AUTH_FAILED,
            ):
                retry = f" (retry in {event.retry_in:.0f}s)" if event.retry_in else ""
                self.status.set_error(account, event.detail + retry)
        elif isinstance(event, ev.SyncProgress):
            self.status.set_progress(
                account, (event.folder, event.activity, event.done, event.total)
            )
        elif isinstance(event, ev.SyncFinished):
            self.status.set_progress(account, None)
            self._refresh_counts(account)
        elif isinstance(event, ev.FoldersListed):
            self.folders.set_folders(account, event.folders)
            if self.shown is None:
                self._open_first_folder()
        elif isinstance(event, ev.FolderUpdated):
            self.folders.update_folder(event.folder)
        elif isinstance(event, ev.MessagesChanged):
            if self.shown == (account, event.folder):
                self.messages.invalidate()
            self._refresh_counts(account)
        elif isinstance(event, ev.FlagsConfirmed):
            if self.shown and self.shown[0] == account:
                self.messages.invalidate()
        elif isinstance(event, ev.Failed | ev.BackendError | ev.UnsupportedReply):
            self.status.set_error(account, event.message)

    # --- panes -------------------------------------------------------------------------------

    @on(FolderPane.Selected)
    def _folder_selected(self, message: FolderPane.Selected) -> None:
        self.open_folder(message.account, message.folder, focus_list=message.focus_list)

    @on(MessageList.Selected)
    def _message_selected(self, message: MessageList.Selected) -> None:
        self.open_message(message.envelope)

    @on(MessageList.Failed)
    def _list_failed(self, message: MessageList.Failed) -> None:
        if self.shown:
            self.status.set_error(self.shown[0], message.message)

    def open_message(self, envelope: Envelope) -> None:
        self.viewing = True
        self.add_class("-viewing")
        self.view.show_loading(envelope)
        if self.has_class("-replace"):
            self.view.focus()
        self._load_message(envelope)
        self.refresh_bindings()

    @work(exclusive=True, group="open-message", exit_on_error=False)
    async def _load_message(self, envelope: Envelope) -> None:
        store = self.stores.get(envelope.ref.account)
        if store is None:
            self.view.show_error(envelope, f"no store for account {envelope.ref.account}")
            return
        try:
            raw = await asyncio.to_thread(store.read, envelope.ref)
            parsed = await asyncio.to_thread(parse_message, raw)
        except Exception as exc:
            self.view.show_error(envelope, str(exc) or type(exc).__name__)
            return
        if self.view.envelope is envelope:
            self.view.show_message(envelope, parsed)
        if Flag.SEEN not in envelope.flags and self.bridge is not None:
            cmd = SetFlags(refs=(envelope.ref,), add=frozenset({Flag.SEEN}))
            self.bridge.submit(envelope.ref.account, cmd)

    def close_message(self) -> None:
        if not self.viewing:
            return
        self.viewing = False
        self.remove_class("-viewing")
        self.view.clear()
        self.messages.focus()
        self.refresh_bindings()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.status.set_notice(f"{event.worker.name}: {error}", error=True)

    # --- layout --------------------------------------------------------------------------------

    def on_resize(self) -> None:
        self._apply_layout()

    def _apply_layout(self) -> None:
        mode = self.config.ui.layout
        if mode not in ("beside", "below"):
            mode = "replace" if self.size.height < SMALL_HEIGHT else "below"
        for name in ("replace", "below", "beside"):
            self.set_class(name == mode, f"-{name}")

    # --- actions ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("back", "toggle_headers"):
            return self.viewing
        return True

    def action_back(self) -> None:
        self.close_message()

    def action_toggle_headers(self) -> None:
        self.view.toggle_headers()

    def action_next_folder(self) -> None:
        self.folders.move(+1)

    def action_prev_folder(self) -> None:
        self.folders.move(-1)

    def action_toggle_folders(self) -> None:
        self.toggle_class("-no-folders")
        if self.has_class("-no-folders") and self.folders.has_focus:
            self.messages.focus()

    def sync_now(self) -> None:
        if self.bridge is None:
            return
        for account in self.config.accounts:
            self.bridge.submit(account, SyncNow())
        self.status.set_notice("")

    def show_notice(self, message: str, *, error: bool = False) -> None:
        self._notice = (message, error)  # kept for on_mount if we are not composed yet
        for status in self.query(StatusLine):
            status.set_notice(inert_line(message), error=error)
