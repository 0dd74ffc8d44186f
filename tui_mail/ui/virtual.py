"""The "Searches" group of the folder pane: the unified inbox and the saved searches.

The engine is `tui_mail.search.run` (`virtual_folders`, `VirtualFolder.counts`,
`VirtualFolder.open`); this module puts it on screen. Counts are read off the UI
thread, never before the first frame, and re-read when mail changes, at most once
per RECOUNT_INTERVAL however many events arrive: a sync storing thousands of
messages must not queue a count query per message.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from tui_mail.ui.widgets.message_list import IdSource

if TYPE_CHECKING:
    from tui_mail.search.run import VirtualFolder
    from tui_mail.ui.screens.main import MainScreen

RECOUNT_INTERVAL = 0.5  # seconds between two count passes, at most


class VirtualSource(IdSource):
    """A virtual folder's messages in the list: search results that know their folder."""

    def __init__(self, index: Any, ids: list[int], name: str) -> None:
        super().__init__(index, ids, name)
        self.virtual = name


class VirtualFolders:
    """Which virtual folders the pane shows, their live counts, and opening one."""

    def __init__(self, screen: MainScreen) -> None:
        self.screen = screen
        self.folders: dict[str, VirtualFolder] = {}
        self._ready = False  # the first frame is painted: counting may start
        self._dirty = False  # something changed since the last count pass began
        self._scheduled = False  # a timer for the next pass is set
        self._running = False  # a pass is reading the index
        self._last = 0.0  # when the last pass began (monotonic)

    @property
    def accounts(self) -> list[str]:
        return list(self.screen.config.accounts)

    def mount(self) -> None:
        """Put the group in the pane; counts follow once the first frame is out."""
        config = self.screen.config
        if not config.searches and len(config.accounts) < 2:
            return  # nothing to show: the search module need not even load
        from tui_mail.search.run import virtual_folders

        found = virtual_folders(config.searches)
        # One account's unified inbox is its INBOX: only worth a row for two or more.
        self.folders = {
            f.name: f for f in found if not (f.unified_inbox and len(config.accounts) < 2)
        }
        if not self.folders:
            return
        self.screen.folders.set_virtual(list(self.folders))
        self.screen.call_after_refresh(self._first_frame_done)

    def _first_frame_done(self) -> None:
        self._ready = True
        self.changed()

    def changed(self) -> None:
        """Mail or flags changed: recount soon (coalesced, see RECOUNT_INTERVAL)."""
        if not self.folders:
            return
        self._dirty = True
        if not self._ready or self._scheduled or self._running:
            return  # the pass in flight (or the one after it) picks this up
        self._scheduled = True
        delay = self._last + RECOUNT_INTERVAL - time.monotonic()
        if delay > 0:
            self.screen.set_timer(delay, self._start_pass)
        else:  # Textual's timers divide by their delay: a zero one never fires
            self.screen.call_later(self._start_pass)

    def _start_pass(self) -> None:
        self._scheduled = False
        if self.screen.index is None:
            return  # attach() calls changed() again once the index is open
        self._running = True
        self._dirty = False
        self._last = time.monotonic()
        self.screen.run_worker(
            self._pass(), group="virtual-counts", exit_on_error=False, name="searches"
        )

    def _shown(self) -> VirtualSource | None:
        source = self.screen.messages.source
        return source if isinstance(source, VirtualSource) else None

    async def _pass(self) -> None:
        try:
            index = self.screen.index
            shown = self._shown()
            shown_folder = self.folders.get(shown.virtual) if shown is not None else None
            counts, ids = await asyncio.to_thread(self._read, index, shown_folder)
            self.screen.folders.set_virtual_counts(counts)
            # The open virtual folder follows too (new mail in an inbox, a message no
            # longer flagged): same source object, so the cursor stays on its message.
            if shown is not None and ids is not None and self._shown() is shown:
                if ids != shown.ids:
                    shown.ids = ids
                    self.screen.messages.invalidate(refresh_source=False)
        except Exception as exc:
            self.screen.show_notice(f"searches: {exc}", error=True)
        finally:
            self._running = False
            if self._dirty:
                self.changed()

    def _read(
        self, index: Any, shown: VirtualFolder | None
    ) -> tuple[dict[str, tuple[int, int]], list[int] | None]:
        """Every folder's (total, unread), and the open one's ids (in a thread)."""
        accounts = self.accounts
        counts = {name: f.counts(index, accounts) for name, f in self.folders.items()}
        ids = shown.open(index, accounts).ids if shown is not None else None
        return counts, ids

    def open(self, name: str, *, focus_list: bool = False) -> None:
        """Show a virtual folder's messages in the list, like a search result."""
        folder = self.folders.get(name)
        if folder is None:
            return
        if focus_list:
            self.screen.messages.focus()
        shown = self._shown()
        if shown is not None and shown.virtual == name and self.screen.search_text is not None:
            return  # already shown (the pane re-highlights it when its rows change)
        if self.screen.index is None:
            self.screen.show_notice("the index is not open yet", error=True)
            return
        self.screen.run_worker(
            self._open(folder), group="virtual-open", exclusive=True, exit_on_error=False
        )

    async def _open(self, folder: VirtualFolder) -> None:
        index = self.screen.index
        try:
            result = await asyncio.to_thread(folder.open, index, self.accounts)
        except Exception as exc:
            self.screen.show_notice(f"{folder.name}: {exc}", error=True)
            return
        if self.screen.folders.selected_virtual != folder.name:
            return  # the user moved on while the query ran
        self.screen.show_results(VirtualSource(index, result.ids, folder.name), folder.query.text)
