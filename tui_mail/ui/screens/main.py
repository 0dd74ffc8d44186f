"""The main screen: folders | message list (+ message view), status line, key hints.

Panes follow "attributes down, messages up": FolderPane and MessageList post
`Selected`; this screen sets what the others show. Core events from the
bridge arrive here as `CoreEvent` messages. Every mail action becomes a core
Command sent through the bridge to the account worker; the list changes
when the worker's MessagesChanged comes back, never before, so what is shown
is what the store holds. Errors go to the status line, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Container, Horizontal
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tui_mail.config.schema import AppConfig
from tui_mail.core import events as ev
from tui_mail.core.commands import Command, Delete, Move, Search, SetFlags, SyncNow
from tui_mail.core.flags import Flag
from tui_mail.core.models import Envelope, FolderRole
from tui_mail.core.sanitize import inert_line
from tui_mail.ui import keymap
from tui_mail.ui.messages import CoreEvent
from tui_mail.ui.undo import FlagUndo, MoveUndo, UndoEntry, group_by_account, plural
from tui_mail.ui.virtual import VirtualFolders
from tui_mail.ui.widgets.folder_pane import FolderPane
from tui_mail.ui.widgets.key_hints import KeyHints
from tui_mail.ui.widgets.message_list import SORT_CYCLE, SORT_LABELS, IdSource, MessageList
from tui_mail.ui.widgets.message_view import MessageView
from tui_mail.ui.widgets.status_line import StatusLine

SMALL_HEIGHT = 40  # below this, "auto" layout shows the message in place of the list
NARROW_WIDTH = 70  # below this the folder pane gets narrower
LAYOUT_CYCLE = ("auto", "beside", "below")
COMPOSE_MODES = {
    "compose": "new",
    "reply": "reply",
    "reply_all": "reply_all",
    "forward": "forward",
    "forward_attached": "forward_attached",
}
VIEW_ONLY = frozenset({"toggle_headers", "attachments", "raw_source", "copy_link"})
# What `[ui] notify` writes for new mail. OSC 9 (iTerm2, kitty, WezTerm, foot) and
# OSC 777 (VTE) show a desktop notification; the text is fixed, never from mail.
NOTIFY_TITLE = "tui-mail"
NOTIFY_SEQUENCES = {
    "osc9": "\x1b]9;{text}\x07",
    "osc777": "\x1b]777;notify;{title};{text}\x07",
}
LIST_ACTIONS = {
    "next": "cursor_down",
    "prev": "cursor_up",
    "page_down": "cursor_page_down",
    "page_up": "cursor_page_up",
    "top": "cursor_top",
    "bottom": "cursor_bottom",
    "open": "open",
}

F = TypeVar("F", bound=Callable[..., Any])


def _module_exists(name: str) -> bool:
    """Whether another part of the app (built separately) is installed yet."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def guarded(method: F) -> F:
    """An action that fails shows one line in the status line instead of crashing the app."""

    @functools.wraps(method)
    def wrapper(self: MainScreen, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            self.show_notice(f"{method.__name__.removeprefix('action_')}: {exc}", error=True)
            return None

    return wrapper  # type: ignore[return-value]


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        keymap.binding("back", "back"),
        keymap.binding("toggle_headers", "toggle_headers"),
        keymap.binding("next_folder", "next_folder"),
        keymap.binding("prev_folder", "prev_folder"),
        keymap.binding("toggle_folders", "toggle_folders"),
        *(
            keymap.binding(action_id)
            for action_id in (
                "reply",
                "reply_all",
                "forward",
                "forward_attached",
                "resume_draft",
                "compose",
                "delete",
                "archive",
                "move",
                "copy",
                "toggle_read",
                "toggle_flagged",
                "mark_thread_read",
                "mark",
                "clear_marks",
                "undo",
                "search",
                "search_server",
                "sort",
                "reverse_sort",
                "toggle_threads",
                "attachments",
                "raw_source",
                "copy_link",
                "copy_address",
                "switch_account",
                "toggle_layout",
                "palette",
            )
        ),
    ]

    def __init__(self, config: AppConfig, bridge: Any) -> None:
        super().__init__()
        self.config = config
        self.bridge = bridge
        self.index: Any = None
        self.stores: dict[str, Any] = {}
        self.shown: tuple[str, str] | None = None  # (account, folder) in the list
        # The real folder last shown: Esc from a search or a virtual folder goes back
        # there (the pane's highlight is on the virtual row, not on a folder).
        self.last_folder: tuple[str, str] | None = None
        self.search_text: str | None = None  # set while the list shows search results
        # A server search in flight: command id -> account, and the ids found so far.
        self._server_pending: dict[int, str] = {}
        self._server_ids: set[int] = set()
        self._server_text: str | None = None
        self.viewing = False
        self.layout_mode = config.ui.layout if config.ui.layout in LAYOUT_CYCLE else "auto"
        self.undo_entry: UndoEntry | None = None
        self._undo_waiting = False  # undo asked for while its commands still run
        self._notice: tuple[str, bool] | None = None
        self._temp_files: Any = None
        self.when_mounted: Callable[[], None] | None = None  # the app opens the index here
        self._live: set[str] = set()  # accounts past their first sync: new mail is news
        self.virtual = VirtualFolders(self)  # the "Searches" group of the folder pane

    def compose(self) -> ComposeResult:
        with Horizontal(id="panes"):
            yield FolderPane(id="folders")
            with Container(id="mail"):
                yield MessageList(id="messages")
                yield MessageView(id="view")
        yield StatusLine(id="status")
        yield KeyHints(id="keys")

    @property
    def folders(self) -> FolderPane:
        return self.query_one(FolderPane)

    @property
    def mail_box(self) -> Container:
        return self.query_one("#mail", Container)

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
        keys = getattr(self.app, "keys", None)
        if keys is not None:
            keymap.rebind(self, keys.keys)  # the panes are composed by now
        for account in self.config.accounts:
            self.folders.add_account(account)
            self.status.account(account)
        self.virtual.mount()
        self._apply_layout()
        self.view.hyperlinks = self.config.ui.hyperlinks
        self.messages.focus()
        if self._notice is not None:
            self.show_notice(self._notice[0], error=self._notice[1])
        if self.when_mounted is not None:
            ready, self.when_mounted = self.when_mounted, None
            ready()

    # --- data from the runtime ---------------------------------------------------------------

    def attach(self, index: Any, stores: dict[str, Any]) -> None:
        """The index and stores are open: show folders and the first folder (no network)."""
        self.index, self.stores = index, stores
        for account in self.config.accounts:
            self._refresh_counts(account)
        if self.shown is None and self.search_text is None:
            self._open_first_folder()

    def add_account(self, config: AppConfig, account: str, stores: dict[str, Any]) -> None:
        """An account started while running (the setup screen): pane rows, status, counts."""
        self.config = config
        self.stores = stores
        self.folders.add_account(account)
        self.status.account(account)
        self.virtual.mount()  # a second account brings the unified inbox
        self._refresh_counts(account)

    def _refresh_counts(self, account: str) -> None:
        if self.index is None:
            return
        try:
            counts = self.index.folder_counts(account)
            pending = int(
                self.index.execute_read(
                    "SELECT count(*) FROM journal WHERE account = ?", (account,)
                )[0][0]
            )
        except Exception as exc:
            self.status.set_error(account, f"index: {exc}")
            return
        self.folders.set_counts(account, counts)
        self.status.set_pending(account, pending)
        self.virtual.changed()

    def _open_first_folder(self, account: str | None = None) -> None:
        for row in self.folders.rows:
            if row.kind == "folder" and (account is None or row.account == account):
                self.open_folder(row.account, row.name)
                return
        self.messages.set_empty_text(
            "No folders yet" if self.config.accounts else "No accounts configured"
        )

    def open_folder(self, account: str, folder: str, *, focus_list: bool = False) -> None:
        self.folders.select_folder(account, folder)
        if focus_list:
            self.messages.focus()
        if self.shown == (account, folder) and self.search_text is None:
            return
        self.shown = self.last_folder = (account, folder)
        self.search_text = None
        self.close_message()
        if self.index is not None:
            if self.messages.threaded:
                self._load_threads(account, folder)
            else:
                self.messages.show_folder(self.index, account, folder)
        self._update_location()
        self.refresh_bindings()

    def _update_location(self) -> None:
        self.status.set_location(self.messages.label or "")

    @on(CoreEvent)
    def _core_event(self, message: CoreEvent) -> None:
        event = message.event
        account = event.account
        if event.in_reply_to in self._server_pending and self._server_reply(event):
            return
        if isinstance(event, ev.ConnectionChanged):
            self.status.set_state(account, event.state, event.detail, event.retry_in)
            self.folders.set_state(account, event.state, event.retry_in)
        elif isinstance(event, ev.SyncProgress):
            self.status.set_progress(
                account, (event.folder, event.activity, event.done, event.total)
            )
        elif isinstance(event, ev.SyncFinished):
            self.status.set_progress(account, None)
            self.status.set_synced(account, event.finished_at)
            self._refresh_counts(account)
            self._live.add(account)
        elif isinstance(event, ev.FoldersListed):
            self.folders.set_folders(account, event.folders)
            self._refresh_counts(account)
            if self.shown is None and self.search_text is None:
                self._open_first_folder()
        elif isinstance(event, ev.FolderUpdated):
            self.folders.update_folder(event.folder)
            self.virtual.changed()
        elif isinstance(event, ev.MessagesChanged):
            unread_before = self._unread(account, event.folder)
            self._messages_changed(account, event.folder)
            if event.added and event.in_reply_to is None:
                self._maybe_notify(account, event.folder, unread_before)
        elif isinstance(event, ev.FlagsConfirmed):
            if self.search_text is not None or (self.shown and self.shown[0] == account):
                self.messages.invalidate()
            self._refresh_counts(account)
        elif isinstance(event, ev.Failed | ev.BackendError | ev.UnsupportedReply):
            self.status.set_error(account, event.message)
        if event.in_reply_to is not None:
            self._command_finished(event)

    def _messages_changed(self, account: str, folder: str) -> None:
        if self.search_text is not None:
            self.messages.invalidate()  # results may have moved or gone; ids are kept
        elif self.shown == (account, folder):
            if self.messages.threaded:
                self._load_threads(account, folder, keep_cursor=True)
            else:
                self.messages.invalidate()
        self._refresh_counts(account)

    def _unread(self, account: str, folder: str) -> int:
        entry = self.folders.folder(account, folder)
        return entry.unread if entry is not None else 0

    def _maybe_notify(self, account: str, folder: str, unread_before: int) -> None:
        """[ui] notify: new unread mail in an inbox, after the account's first sync.

        The first sync only catches up with what came while we were away, and a
        move (an undo, say) into the inbox brings no unread mail, so neither rings.
        """
        how = self.config.ui.notify
        if how == "off" or account not in self._live:
            return
        entry = self.folders.folder(account, folder)
        is_inbox = folder.upper() == "INBOX" or (
            entry is not None and entry.role is FolderRole.INBOX
        )
        if not is_inbox or self._unread(account, folder) <= unread_before:
            return
        if how == "bell":
            self.app.bell()
            return
        sequence = NOTIFY_SEQUENCES.get(how)
        driver = self.app._driver
        if sequence is None or driver is None:
            return
        # Only the account name (the user's own config, made inert) and a count.
        n = self._unread(account, folder) - unread_before
        text = inert_line(f"{plural(n, 'new message')} in {account}").replace(";", ",")
        driver.write(sequence.format(title=NOTIFY_TITLE, text=text))

    def _command_finished(self, event: ev.Event) -> None:
        entry = self.undo_entry
        if entry is None or event.in_reply_to not in entry.command_ids:
            return
        entry.command_ids.discard(event.in_reply_to)  # type: ignore[arg-type]
        if not entry.command_ids and self._undo_waiting:
            self._undo_waiting = False
            self.action_undo()

    # --- panes -------------------------------------------------------------------------------

    @on(FolderPane.Selected)
    def _folder_selected(self, message: FolderPane.Selected) -> None:
        self.open_folder(message.account, message.folder, focus_list=message.focus_list)

    @on(FolderPane.VirtualSelected)
    def _virtual_selected(self, message: FolderPane.VirtualSelected) -> None:
        self.virtual.open(message.name, focus_list=message.focus_list)

    def show_results(self, source: IdSource, text: str) -> None:
        """Show a virtual folder's messages; `text` is its query (what "/" starts from).

        Set as search results are (search_text), so changes, back and the first
        folder opening on a later FoldersListed all treat it as one.
        """
        self.close_message()
        self.search_text = text
        self.shown = None
        self.messages.show_source(source)
        self._update_location()
        self.refresh_bindings()

    @on(MessageList.Selected)
    def _message_selected(self, message: MessageList.Selected) -> None:
        self.open_message(message.envelope)

    @on(MessageList.Failed)
    def _list_failed(self, message: MessageList.Failed) -> None:
        account = self.shown[0] if self.shown else next(iter(self.config.accounts), "")
        self.status.set_error(account, message.message)

    def open_message(self, envelope: Envelope) -> None:
        self.viewing = True
        # Classes go on #mail, not the screen: a class change restyles the whole
        # subtree, and the screen's subtree (footer, folder pane) is most of the app.
        self.mail_box.add_class("-viewing")
        self.view.show_loading(envelope)
        if self.mail_box.has_class("-replace"):
            self.view.focus()
        self._load_message(envelope)
        self.refresh_bindings()

    @work(exclusive=True, group="open-message", exit_on_error=False)
    async def _load_message(self, envelope: Envelope) -> None:
        store = self.stores.get(envelope.ref.account)
        if store is None:
            self.view.show_error(envelope, f"no store for account {envelope.ref.account}")
            return
        # Imported here: the MIME parser pulls in email and compose, not needed to start.
        from tui_mail.ui.mime import parse_message

        try:
            raw = await asyncio.to_thread(store.read, envelope.ref)
            parsed = await asyncio.to_thread(parse_message, raw)
        except Exception as exc:
            self.view.show_error(envelope, str(exc) or type(exc).__name__)
            return
        if self.view.envelope is envelope:
            self.view.show_message(envelope, parsed, raw)
        if Flag.SEEN not in envelope.flags and self.bridge is not None:
            cmd = SetFlags(refs=(envelope.ref,), add=frozenset({Flag.SEEN}))
            self.bridge.submit(envelope.ref.account, cmd)

    def close_message(self) -> None:
        if not self.viewing:
            return
        self.viewing = False
        self.mail_box.remove_class("-viewing")
        self.view.clear()
        self.messages.focus()
        self.refresh_bindings()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.status.set_notice(inert_line(f"{event.worker.name}: {error}"), error=True)

    # --- layout -------------------------------------------------------------------------------

    def on_resize(self) -> None:
        self._apply_layout()

    def _apply_layout(self) -> None:
        mode = self.layout_mode
        if mode not in ("beside", "below"):
            mode = "replace" if self.size.height < SMALL_HEIGHT else "below"
        for name in ("replace", "below", "beside"):
            self.mail_box.set_class(name == mode, f"-{name}")
        self.set_class(0 < self.size.width < NARROW_WIDTH, "-narrow")

    # --- action plumbing ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in VIEW_ONLY:
            return self.viewing
        if action == "back":
            return self.viewing or self.search_text is not None
        return True

    async def run_named_action(self, action_id: str) -> None:
        """Run an action by its keymap id (the command palette uses this)."""
        if action_id in ("quit", "help", "sync_now", "palette"):
            await self.app.run_action(action_id)
        elif action_id in LIST_ACTIONS:
            await self.messages.run_action(LIST_ACTIONS[action_id])
        elif action_id in VIEW_ONLY and not self.viewing:
            self.show_notice("open a message first")
        else:
            await self.run_action(action_id)

    def _submit(self, account: str, command: Command) -> int | None:
        if self.bridge is None or not self.bridge.submit(account, command):
            return None
        return command.id

    def _targets(self) -> list[Envelope]:
        """The selected messages, else the open one, else the cursor's; fresh from the index."""
        if self.viewing and not self.messages.selected_ids and self.view.envelope is not None:
            envs = [self.view.envelope]
        else:
            envs = self.messages.targets()
        ids = [e.ref.id for e in envs if e.ref.id is not None]
        if self.index is not None and len(ids) == len(envs):
            fresh = self.index.envelopes(ids)
            if fresh:
                return list(fresh)
        return envs

    def _need_targets(self) -> list[Envelope]:
        envs = self._targets()
        if not envs:
            self.show_notice("no message here")
        return envs

    def _done_with_targets(self) -> None:
        self.messages.clear_selection()

    # --- compose (the compose screens are another module; see start_compose) ------------------

    def _start_compose(self, mode: str) -> None:
        ref = None
        if mode != "new":
            envs = self._need_targets()
            if not envs:
                return
            ref = envs[0].ref
        if not _module_exists("tui_mail.ui.screens.compose"):
            self.show_notice("composing is not available in this build yet", error=True)
            return
        module = importlib.import_module("tui_mail.ui.screens.compose")
        start = getattr(module, "start_compose", None)
        if start is None:
            self.show_notice("composing is not available in this build yet", error=True)
            return
        start(self.app, mode, ref)

    @guarded
    def action_compose(self) -> None:
        self._start_compose("new")

    @guarded
    def action_reply(self) -> None:
        self._start_compose("reply")

    @guarded
    def action_reply_all(self) -> None:
        self._start_compose("reply_all")

    @guarded
    def action_forward(self) -> None:
        self._start_compose("forward")

    @guarded
    def action_forward_attached(self) -> None:
        self._start_compose("forward_attached")

    @guarded
    def action_resume_draft(self) -> None:
        self._start_compose("resume")

    # --- flags --------------------------------------------------------------------------------

    def _set_flag(self, envs: list[Envelope], flag: Flag, on: bool, what: str) -> None:
        changing = [e for e in envs if (flag in e.flags) != on]
        if not changing:
            self.show_notice(f"already {what}")
            return
        add = frozenset({flag}) if on else frozenset()
        remove = frozenset() if on else frozenset({flag})
        refs = tuple(e.ref for e in changing)
        entry = FlagUndo(refs, add, remove, f"{plural(len(refs), 'message')} {what}")
        for account, group in group_by_account(refs).items():
            command_id = self._submit(account, SetFlags(refs=tuple(group), add=add, remove=remove))
            if command_id is not None:
                entry.command_ids.add(command_id)
        self.undo_entry = entry
        self._done_with_targets()
        self.show_notice(entry.description)

    @guarded
    def action_toggle_read(self) -> None:
        envs = self._need_targets()
        if envs:
            on = not all(Flag.SEEN in e.flags for e in envs)
            self._set_flag(envs, Flag.SEEN, on, "marked read" if on else "marked unread")

    @guarded
    def action_toggle_flagged(self) -> None:
        envs = self._need_targets()
        if envs:
            on = not all(Flag.FLAGGED in e.flags for e in envs)
            self._set_flag(envs, Flag.FLAGGED, on, "flagged" if on else "unflagged")

    @guarded
    def action_mark_thread_read(self) -> None:
        envs = self._need_targets()
        if not envs or self.index is None:
            return
        ids: list[int] = []
        for thread_id in {e.thread_id for e in envs if e.thread_id is not None}:
            ids += self.index.thread(thread_id)
        members = self.index.envelopes(sorted(set(ids))) if ids else envs
        self._set_flag(list(members), Flag.SEEN, True, "marked read (thread)")

    # --- moving -------------------------------------------------------------------------------

    def _move(self, envs: list[Envelope], to_folder: str, *, copy: bool = False) -> None:
        envs = [e for e in envs if copy or e.ref.folder != to_folder]
        if not envs:
            self.show_notice(f"already in {inert_line(to_folder)}")
            return
        verb = "copied" if copy else "moved"
        what = f"{plural(len(envs), 'message')} {verb} to {to_folder}"
        entry = MoveUndo.of(envs, to_folder, what)
        by_source: dict[tuple[str, str], list[Envelope]] = {}
        for env in envs:
            by_source.setdefault((env.ref.account, env.ref.folder), []).append(env)
        for (account, _), group in by_source.items():
            refs = tuple(e.ref for e in group)
            command_id = self._submit(account, Move(refs=refs, to_folder=to_folder, copy=copy))
            if command_id is not None:
                entry.command_ids.add(command_id)
        if not copy:
            self.undo_entry = entry  # a copy is not undone: the original never moved
            self.close_message()
        self._done_with_targets()
        self.show_notice(entry.description)

    def _pick_folder(self, envs: list[Envelope], copy: bool) -> None:
        from tui_mail.ui.dialogs.picker import PickerScreen

        accounts = {e.ref.account for e in envs}
        if len(accounts) != 1:
            self.show_notice("select messages of one account to move or copy", error=True)
            return
        account = accounts.pop()
        current = {e.ref.folder for e in envs}
        choices = [f for f in self.folders.folder_names(account) if copy or f not in current]
        verb = "Copy" if copy else "Move"
        title = f"{verb} {plural(len(envs), 'message')} to…"

        def chosen(folder: str | None) -> None:
            if folder:
                self._move(envs, folder, copy=copy)

        self.app.push_screen(PickerScreen(title, choices), chosen)

    @guarded
    def action_move(self) -> None:
        envs = self._need_targets()
        if envs:
            self._pick_folder(envs, copy=False)

    @guarded
    def action_copy(self) -> None:
        envs = self._need_targets()
        if envs:
            self._pick_folder(envs, copy=True)

    @guarded
    def action_archive(self) -> None:
        envs = self._need_targets()
        if not envs:
            return
        for account in {e.ref.account for e in envs}:
            archive = self.folders.folder_with_role(account, FolderRole.ARCHIVE)
            if archive is None:
                self.show_notice(f"{account} has no Archive folder", error=True)
                continue
            self._move([e for e in envs if e.ref.account == account], archive)

    @guarded
    def action_delete(self) -> None:
        envs = self._need_targets()
        if not envs:
            return
        for account in {e.ref.account for e in envs}:
            mine = [e for e in envs if e.ref.account == account]
            trash = self.folders.folder_with_role(account, FolderRole.TRASH) or "Trash"
            for_good = [e for e in mine if e.ref.folder == trash]
            to_trash = [e for e in mine if e.ref.folder != trash]
            if to_trash:
                self._delete(account, to_trash, trash)
            if for_good:
                self._confirm_delete_for_good(account, for_good)

    def _delete(self, account: str, envs: list[Envelope], trash: str) -> None:
        entry = MoveUndo.of(envs, trash, f"{plural(len(envs), 'message')} moved to {trash}")
        command_id = self._submit(account, Delete(refs=tuple(e.ref for e in envs)))
        if command_id is not None:
            entry.command_ids.add(command_id)
        self.undo_entry = entry
        self.close_message()
        self._done_with_targets()
        self.show_notice(entry.description)

    def _confirm_delete_for_good(self, account: str, envs: list[Envelope]) -> None:
        from tui_mail.ui.dialogs.prompt import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self._submit(account, Delete(refs=tuple(e.ref for e in envs)))
                self.close_message()
                self._done_with_targets()
                self.show_notice(f"{plural(len(envs), 'message')} deleted for good")

        question = f"Delete {plural(len(envs), 'message')} for good? This cannot be undone."
        self.app.push_screen(ConfirmScreen(question), answered)

    @guarded
    def action_undo(self) -> None:
        entry = self.undo_entry
        if entry is None:
            self.show_notice("nothing to undo")
            return
        if entry.command_ids:
            # The change is still on its way; undo right after it, in order.
            self._undo_waiting = True
            self.show_notice("undo: waiting for the change to finish…")
            return
        self.undo_entry = None
        commands, missing = entry.inverse(self.index)
        for account, command in commands:
            self._submit(account, command)
        if not commands:
            self.show_notice(f"cannot undo: {entry.description} (the messages moved on)")
            return
        note = f"; {missing} could not be found" if missing else ""
        self.show_notice(f"undone: {entry.description}{note}")

    # --- selection ----------------------------------------------------------------------------

    def action_mark(self) -> None:
        self.messages.toggle_selected()
        n = len(self.messages.selected_ids)
        self.show_notice(f"{plural(n, 'message')} selected" if n else "")

    def action_clear_marks(self) -> None:
        self.messages.clear_selection()
        self.show_notice("")

    # --- list order ---------------------------------------------------------------------------

    @guarded
    def action_sort(self) -> None:
        messages = self.messages
        current = SORT_CYCLE.index(messages.sort) if messages.sort in SORT_CYCLE else 0
        messages.sort = SORT_CYCLE[(current + 1) % len(SORT_CYCLE)]
        messages.descending = messages.sort in ("date", "size")  # newest / biggest first
        messages.threaded = False
        self._reshow()
        self.show_notice(f"sorted by {SORT_LABELS[messages.sort]}")

    @guarded
    def action_reverse_sort(self) -> None:
        self.messages.descending = not self.messages.descending
        self._reshow()

    @guarded
    def action_toggle_threads(self) -> None:
        self.messages.threaded = not self.messages.threaded
        self._reshow()
        self.show_notice("threaded view" if self.messages.threaded else "flat view")

    def _reshow(self) -> None:
        if self.shown is None or self.index is None or self.search_text is not None:
            return
        account, folder = self.shown
        if self.messages.threaded:
            self._load_threads(account, folder)
        else:
            self.messages.show_folder(self.index, account, folder)
        self._update_location()

    @work(exclusive=True, group="threads", exit_on_error=False)
    async def _load_threads(self, account: str, folder: str, keep_cursor: bool = False) -> None:
        from tui_mail.ui.threads import load_thread_order

        descending = self.messages.descending
        ids, depths = await asyncio.to_thread(
            load_thread_order, self.index, account, folder, descending
        )
        if self.shown != (account, folder) or not self.messages.threaded:
            return  # the user moved on while this ran
        source = IdSource(
            self.index, ids, f"{account}/{folder}", depths, account=account, folder=folder
        )
        self.messages.show_source(source, keep_cursor=keep_cursor)
        self._update_location()

    # --- search -------------------------------------------------------------------------------

    def action_search(self) -> None:
        from tui_mail.ui.dialogs.prompt import PromptScreen

        def entered(text: str | None) -> None:
            if text is not None and text.strip():
                self.run_search(text.strip())

        placeholder = "words, or from:… subject:… is:unread …"
        self.app.push_screen(
            PromptScreen("Search all accounts", self.search_text or "", placeholder), entered
        )

    def action_search_server(self) -> None:
        """Search the index now, and ask every server account too (UID SEARCH); its
        matches not downloaded yet are fetched, and the results grow when they answer."""
        from tui_mail.ui.dialogs.prompt import PromptScreen

        def entered(text: str | None) -> None:
            if text is not None and text.strip():
                self.run_server_search(text.strip())

        placeholder = "words, or from:… subject:… is:unread …"
        self.app.push_screen(
            PromptScreen(
                "Search all accounts and their servers", self.search_text or "", placeholder
            ),
            entered,
        )

    def run_server_search(self, text: str) -> None:
        self.run_search(text)
        if self.index is None:
            return
        self._server_pending.clear()
        self._server_ids = set()
        self._server_text = text
        for account in self.config.accounts:
            command_id = self._submit(account, Search(query=text, server=True))
            if command_id is not None:
                self._server_pending[command_id] = account
        if self._server_pending:
            self.show_notice("searching on the servers…")

    def _server_reply(self, event: ev.Event) -> bool:
        """Collect a server search's replies; True when the event needs nothing more."""
        if isinstance(event, ev.SearchResults):
            self._server_ids.update(r.id for r in event.refs if r.id is not None)
            return True
        if not isinstance(event, ev.Done | ev.Failed | ev.Cancelled | ev.UnsupportedReply):
            return False
        self._server_pending.pop(event.in_reply_to, None)  # type: ignore[arg-type]
        if isinstance(event, ev.Failed):
            self.status.set_error(event.account, event.message)
            self.show_notice(f"{event.account}: {event.message}", error=True)
        if not self._server_pending and self._server_text is not None:
            text, self._server_text = self._server_text, None
            self._merge_server_results(text, set(self._server_ids))
        return True  # an account that cannot search (Maildir, POP3) is no error here

    # Its own group: "search"'s exclusive workers would cancel the local search.
    @work(exclusive=True, group="server_search", exit_on_error=False)
    async def _merge_server_results(self, text: str, found: set[int]) -> None:
        def merged() -> list[int]:
            assert self.index is not None
            ids = self._query(text)  # downloaded matches are in the index now
            extra = found.difference(ids)
            if not extra:
                return ids
            envs = self.index.envelopes([*ids, *extra])
            envs.sort(key=lambda e: (e.date or 0, e.ref.id or 0), reverse=True)
            return [e.ref.id for e in envs if e.ref.id is not None]

        # A local-only account answers before the local search has shown its results.
        while self.search_text != text and any(
            w.group == "search" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
            for w in self.workers
        ):
            await asyncio.sleep(0.05)
        if self.search_text != text:
            return  # another search, or back to a folder, meanwhile
        try:
            ids = await asyncio.to_thread(merged)
        except Exception as exc:
            self.show_notice(f"search: {exc}", error=True)
            return
        if self.search_text != text:
            return
        label = f"search: {text} ({plural(len(ids), 'result')}, with the servers)"
        self.messages.show_source(IdSource(self.index, ids, label), keep_cursor=True)
        self._update_location()

    def run_search(self, text: str) -> None:
        if self.index is None:
            self.show_notice("the index is not open yet", error=True)
            return
        self._search(text)

    @work(exclusive=True, group="search", exit_on_error=False)
    async def _search(self, text: str) -> None:
        try:
            ids = await asyncio.to_thread(self._query, text)
        except Exception as exc:
            self.show_notice(f"search: {exc}", error=True)
            return
        self.close_message()
        self.search_text = text
        self.shown = None
        label = f"search: {text} ({plural(len(ids), 'result')})"
        self.messages.show_source(IdSource(self.index, ids, label))
        self._update_location()
        self.refresh_bindings()

    def _query(self, text: str) -> list[int]:
        """The search module's query language when it is installed; else plain words (FTS)."""
        accounts = list(self.config.accounts)
        parse = run = None
        for name in ("tui_mail.search.query", "tui_mail.search.run", "tui_mail.search"):
            if _module_exists(name):
                module = importlib.import_module(name)
                parse = parse or getattr(module, "parse_query", None)
                run = run or getattr(module, "run_query", None)
        if parse is not None and run is not None:
            return list(run(self.index, parse(text), accounts))
        ids: list[int] = []
        for account in accounts:
            ids += self.index.search(account, text)
        if len(accounts) > 1:
            envs = self.index.envelopes(ids)
            ids = [e.ref.id for e in sorted(envs, key=lambda e: e.date, reverse=True)]
        return ids

    # --- view ---------------------------------------------------------------------------------

    def action_back(self) -> None:
        if self.viewing:
            self.close_message()
        elif self.search_text is not None:
            account, folder = self._last_folder()
            self.search_text = None
            self.shown = None
            self.open_folder(account, folder, focus_list=True)

    def _last_folder(self) -> tuple[str, str]:
        row = self.folders.selected
        if row is not None:
            return row.account, row.name
        if self.last_folder is not None:
            return self.last_folder
        account = next(iter(self.config.accounts))
        return account, "INBOX"

    def action_toggle_headers(self) -> None:
        self.view.toggle_headers()

    def action_raw_source(self) -> None:
        self.view.toggle_raw()

    # --- clipboard (OSC 52: the terminal sets the clipboard, over ssh too) ---------------

    def _copy(self, text: str, what: str) -> None:
        # inert_line: no control character from mail reaches the clipboard (Textual
        # base64-encodes the payload, so nothing can end the escape sequence early).
        text = inert_line(text)
        self.app.copy_to_clipboard(text)
        self.show_notice(f"copied {what}: {text}")

    @guarded
    def action_copy_link(self) -> None:
        links = self.view.links()
        if not links:
            self.show_notice("this message has no links")
            return
        if len(links) == 1:
            self._copy(links[0], "link [1]")
            return
        from tui_mail.ui.dialogs.picker import PickerScreen

        choices = [f"[{n}] {url}" for n, url in enumerate(links, 1)]

        def chosen(choice: str | None) -> None:
            if choice in choices:
                n = choices.index(choice)
                self._copy(links[n], f"link [{n + 1}]")

        self.app.push_screen(PickerScreen("Copy which link?", choices), chosen)

    @guarded
    def action_copy_address(self) -> None:
        env = self.view.envelope if self.viewing else self.messages.current
        if env is None:
            self.show_notice("no message here")
            return
        address = env.sender.addr
        if not address:
            self.show_notice("this message has no sender address")
            return
        self._copy(address, "address")

    @guarded
    def action_attachments(self) -> None:
        from tui_mail.ui.dialogs.attachments import AttachmentScreen

        parsed, raw = self.view.parsed, self.view.raw
        if parsed is None or raw is None:
            self.show_notice("the message is still loading")
            return
        if not parsed.attachments:
            self.show_notice("this message has no attachments")
            return

        def chosen(choice: tuple[str, int] | None) -> None:
            if choice is None:
                return
            what, number = choice
            if what == "open":
                self._open_attachment(raw, number, parsed.attachments[number].filename)
            else:
                self._ask_save(raw, number, parsed.attachments[number].filename)

        self.app.push_screen(AttachmentScreen(parsed.attachments), chosen)

    def _ask_save(self, raw: bytes, number: int, filename: str) -> None:
        from tui_mail.ui.dialogs.prompt import PromptScreen
        from tui_mail.ui.files import default_save_dir

        def entered(folder: str | None) -> None:
            if folder and folder.strip():
                self._save_attachment(raw, number, filename, folder.strip())

        start = str(default_save_dir(self.config.ui.save_dir))
        self.app.push_screen(PromptScreen("Save into folder", start), entered)

    @work(group="attachments", exit_on_error=False)
    async def _save_attachment(
        self, raw: bytes, number: int, filename: str, folder: str, overwrite: bool = False
    ) -> None:
        from tui_mail.ui.dialogs.prompt import ConfirmScreen
        from tui_mail.ui.files import SaveError, TargetExists, save_attachment, target_path
        from tui_mail.ui.mime import attachment_data

        target = target_path(folder, filename)
        try:
            data = await asyncio.to_thread(attachment_data, raw, number)
            saved = await asyncio.to_thread(save_attachment, data, target, overwrite=overwrite)
        except TargetExists as exc:

            def answered(yes: bool | None) -> None:
                if yes:
                    self._save_attachment(raw, number, filename, folder, overwrite=True)

            question = f"{inert_line(str(exc.path))} exists. Replace it?"
            self.app.push_screen(ConfirmScreen(question), answered)
            return
        except (SaveError, OSError, IndexError) as exc:
            self.show_notice(f"not saved: {exc}", error=True)
            return
        self.show_notice(f"saved {saved}")

    @work(group="attachments", exit_on_error=False)
    async def _open_attachment(self, raw: bytes, number: int, filename: str) -> None:
        from tui_mail.ui.files import SaveError, TempFiles, open_with
        from tui_mail.ui.mime import attachment_data

        if self._temp_files is None:
            self._temp_files = TempFiles()
        try:
            data = await asyncio.to_thread(attachment_data, raw, number)
            path = await asyncio.to_thread(self._temp_files.write, data, filename)
            open_with(self.config.ui.open_command, path)
        except (SaveError, OSError, IndexError) as exc:
            self.show_notice(f"cannot open: {exc}", error=True)
            return
        self.show_notice(f"opened {path.name} with {self.config.ui.open_command[0]}")

    def cleanup(self) -> None:
        """Remove the temp copies of opened attachments (at quit)."""
        if self._temp_files is not None:
            self._temp_files.cleanup()

    # --- folders, accounts, layout ------------------------------------------------------------

    def action_next_folder(self) -> None:
        self.folders.move(+1)

    def action_prev_folder(self) -> None:
        self.folders.move(-1)

    def action_toggle_folders(self) -> None:
        self.toggle_class("-no-folders")
        if self.has_class("-no-folders") and self.folders.has_focus:
            self.messages.focus()

    def action_switch_account(self) -> None:
        accounts = list(self.config.accounts)
        if len(accounts) < 2:
            self.show_notice("there is only one account")
            return
        current = self.shown[0] if self.shown else accounts[0]
        nxt = accounts[(accounts.index(current) + 1) % len(accounts)]
        self.switch_to_account(nxt)

    def switch_to_account(self, account: str) -> None:
        self._open_first_folder(account)
        self.messages.focus()
        self.show_notice(f"account {account}")

    def action_toggle_layout(self) -> None:
        current = LAYOUT_CYCLE.index(self.layout_mode) if self.layout_mode in LAYOUT_CYCLE else 0
        self.layout_mode = LAYOUT_CYCLE[(current + 1) % len(LAYOUT_CYCLE)]
        self._apply_layout()
        self.show_notice(f"layout: {self.layout_mode}")

    def action_palette(self) -> None:
        self.app.action_command_palette()

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
