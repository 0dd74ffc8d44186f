"""The message list: a Line-API ScrollView over the index, one row per message.

Nothing is a widget per row. `virtual_size` comes from the source's count;
`render_line(y)` reads the row from an LRU cache of pages of `PAGE_SIZE`
envelopes, each page one query, so a 100k folder costs only the pages on
screen. A source is a folder in some sort order (`FolderSource`, paged by
the index) or a fixed list of ids (`IdSource`: search results, the threaded
order), so virtual folders scroll the same way.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

from msgspec.structs import replace
from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui_mail.core.flags import Flag
from tui_mail.core.models import Address, Envelope
from tui_mail.core.sanitize import inert_line
from tui_mail.ui import keymap

PAGE_SIZE = 100
CACHE_PAGES = 16
CACHE_STRIPS = 600  # rendered rows kept: about ten screens
MARKS_WIDTH = 6
DATE_WIDTH = 10
SORT_LABELS = {"date": "date", "from": "sender", "subject": "subject", "size": "size"}
SORT_CYCLE = ("date", "from", "subject", "size")
MAX_INDENT = 6  # deeper replies stop moving right, so the subject stays readable


class ListSource(Protocol):
    """What the list scrolls over."""

    label: str

    def count(self) -> int: ...

    def page(self, offset: int, limit: int) -> list[Envelope]: ...

    def refresh(self) -> None: ...


class FolderSource:
    """One folder, sorted by the index (each sort column has its own SQL index, made
    at the first page in that order)."""

    def __init__(
        self, index: Any, account: str, folder: str, sort: str = "date", descending: bool = True
    ) -> None:
        self.index, self.account, self.folder = index, account, folder
        self.sort, self.descending = sort, descending
        self.label = f"{account}/{folder}"

    def count(self) -> int:
        return int(self.index.count(self.account, self.folder))

    def page(self, offset: int, limit: int) -> list[Envelope]:
        return list(
            self.index.page(self.account, self.folder, offset, limit, self.sort, self.descending)
        )

    def refresh(self) -> None:
        pass  # every page is a fresh query


class IdSource:
    """A fixed list of message ids: search results, or a folder in thread order."""

    def __init__(
        self,
        index: Any,
        ids: Sequence[int],
        label: str,
        depths: dict[int, int] | None = None,
        *,
        account: str | None = None,
        folder: str | None = None,
    ) -> None:
        self.index = index
        self.ids = list(ids)
        self.label = label
        self.depths = depths or {}
        self.account, self.folder = account, folder  # set for a threaded folder

    def count(self) -> int:
        return len(self.ids)

    def page(self, offset: int, limit: int) -> list[Envelope]:
        envs = self.index.envelopes(self.ids[offset : offset + limit])
        if self.depths:
            envs = [replace(e, thread_depth=self.depths.get(e.ref.id or 0, 0)) for e in envs]
        return envs

    def refresh(self) -> None:
        """Drop ids whose message is gone (deleted for good), so rows never shift to blanks."""
        if not self.ids:
            return
        rows = self.index.execute_read(
            "SELECT id FROM messages WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(self.ids),),
        )
        alive = {r[0] for r in rows}
        if len(alive) != len(self.ids):
            self.ids = [i for i in self.ids if i in alive]


def format_date(ts: int, now: float | None = None) -> str:
    """Today: "14:05"; this year: "Mar 07"; older (or future): "2023-11-30"."""
    try:
        when = datetime.fromtimestamp(ts)
        today = datetime.fromtimestamp(time.time() if now is None else now)
    except (OverflowError, OSError, ValueError):
        return "?"
    if when.date() == today.date():
        return when.strftime("%H:%M")
    if when.year == today.year and when <= today:
        return when.strftime("%b %d")
    return when.strftime("%Y-%m-%d")


def marks(env: Envelope, selected: bool = False) -> str:
    """Six fixed columns: * selected, pending ~, N unread, F flagged, R answered, @ attachment."""
    flags = env.flags
    return "".join(
        (
            "*" if selected else " ",
            "~" if env.pending else " ",
            "N" if Flag.SEEN not in flags else " ",
            "F" if Flag.FLAGGED in flags else " ",
            "R" if Flag.ANSWERED in flags else " ",
            "@" if env.has_attachment else " ",
        )
    )


def sender_text(sender: Address) -> str:
    """The list's sender column: the name, unless the name poses as another address
    ("paypal@paypal.com" <evil@x>), then the real address first."""
    name, addr = sender.name.strip(), sender.addr
    if "@" in name and addr and name.lower() != addr.lower():
        return f"{addr} ({name})"
    return name or addr


def fit(text: str, width: int) -> str:
    """Exactly `width` cells: padded, or cut with an ellipsis."""
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


class MessageList(ScrollView, can_focus=True, inherit_bindings=False):
    BINDINGS: ClassVar[list[BindingType]] = [
        keymap.binding("next", "cursor_down"),
        keymap.binding("prev", "cursor_up"),
        keymap.binding("page_down", "cursor_page_down"),
        keymap.binding("page_up", "cursor_page_up"),
        keymap.binding("top", "cursor_top"),
        keymap.binding("bottom", "cursor_bottom"),
        keymap.binding("open", "open"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "message-list--cursor",
        "message-list--selected",
        "message-list--unread",
        "message-list--flagged",
        "message-list--pending",
        "message-list--marks",
        "message-list--date",
        "message-list--sender",
        "message-list--empty",
    }

    DEFAULT_CSS = """
    MessageList {
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    """

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Selected(Message):
        """Enter (or a click) on a row: open this message."""

        def __init__(self, envelope: Envelope) -> None:
            super().__init__()
            self.envelope = envelope

    class Failed(Message):
        """The index could not be read; shown in the status line."""

        def __init__(self, message: str) -> None:
            super().__init__()
            self.message = message

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index: Any = None
        self.source: ListSource | None = None
        self.account: str | None = None  # the folder shown (None for a search)
        self.folder: str | None = None
        self.sort = "date"
        self.descending = True
        self.threaded = False
        self.count = 0
        self.empty_text = "Loading…"
        self.selected_ids: set[int] = set()  # marked rows, by index id (stable across moves)
        self._pages: OrderedDict[int, list[Envelope]] = OrderedDict()
        self._failed = False
        self._frame_styles: dict[str, Style] | None = None
        # Rendered rows: (row, width, selected) -> (envelope, strip). The envelope is
        # compared by identity, so a page read again from the index is drawn again.
        self._strips: OrderedDict[tuple[int, int, bool], tuple[Envelope, Strip]] = OrderedDict()
        self._prerender_pending = False
        self.now: float | None = None  # fixed clock for tests
        self._date_cache: dict[int, str] = {}
        self._date_minute = -1

    # --- data -------------------------------------------------------------------------

    def show_folder(self, index: Any, account: str, folder: str) -> None:
        """Point the list at a folder (in the current sort) and put the cursor on top."""
        self.index, self.account, self.folder = index, account, folder
        self.show_source(FolderSource(index, account, folder, self.sort, self.descending))

    def show_source(self, source: ListSource, *, keep_cursor: bool = False) -> None:
        """Show any source: a folder, a thread order, search results."""
        self.index = getattr(source, "index", self.index)
        self.account = getattr(source, "account", None)
        self.folder = getattr(source, "folder", None)
        if not keep_cursor:
            self.selected_ids.clear()
        self.source = source
        self.empty_text = (
            "No messages in this folder" if self.folder is not None else "Nothing found"
        )
        if keep_cursor:
            self.invalidate(refresh_source=False)
            return
        self._reload()
        self.cursor = 0
        self.scroll_to(y=0, animate=False, immediate=True)

    @property
    def label(self) -> str:
        """What the status line shows: where we are and in which order."""
        if self.source is None:
            return ""
        if self.folder is None:
            return self.source.label
        order = "threads" if self.threaded else SORT_LABELS.get(self.sort, self.sort)
        arrow = "↓" if self.descending else "↑"
        return f"{self.source.label}  {order}{arrow}"

    def invalidate(self, *, refresh_source: bool = True) -> None:
        """Rows changed (MessagesChanged): forget the cache, keep the cursor where it was."""
        key = self.current.ref.key if self.current is not None else None
        old = self.cursor
        if refresh_source and self.source is not None:
            try:
                self.source.refresh()
            except Exception as exc:
                self._report(exc)
        self._reload()
        if key is not None:
            # Usually the row is still there, often at the same place.
            for row in range(max(0, old - 2), min(self.count, old + 3)):
                env = self.envelope_at(row)
                if env is not None and env.ref.key == key:
                    old = row
                    break
        self.cursor = max(0, min(old, self.count - 1))

    def _reload(self) -> None:
        self._pages.clear()
        self._strips.clear()
        self._failed = False
        count = 0
        if self.source is not None:
            try:
                count = int(self.source.count())
            except Exception as exc:
                self._report(exc)
        self.count = count
        self.virtual_size = Size(0, count)
        self.refresh()
        self._schedule_prerender()

    def envelope_at(self, row: int) -> Envelope | None:
        if row < 0 or row >= self.count or self.source is None:
            return None
        page_no, offset = divmod(row, PAGE_SIZE)
        page = self._pages.get(page_no)
        if page is None:
            try:
                page = self.source.page(page_no * PAGE_SIZE, PAGE_SIZE)
            except Exception as exc:
                self._report(exc)
                page = []
            self._pages[page_no] = page
            while len(self._pages) > CACHE_PAGES:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(page_no)
        return page[offset] if offset < len(page) else None

    @property
    def current(self) -> Envelope | None:
        return self.envelope_at(self.cursor)

    # --- selection ----------------------------------------------------------------------

    def toggle_selected(self) -> None:
        """Mark or unmark the cursor's row and step down, as mutt's tag does."""
        env = self.current
        if env is None or env.ref.id is None:
            return
        self.selected_ids ^= {env.ref.id}
        self.refresh_line(self.cursor)
        self.cursor += 1

    def clear_selection(self) -> None:
        if self.selected_ids:
            self.selected_ids.clear()
            self.refresh()

    def targets(self) -> list[Envelope]:
        """What an action applies to: every selected message, else the cursor's."""
        if self.selected_ids and self.index is not None:
            try:
                return list(self.index.envelopes(sorted(self.selected_ids)))
            except Exception as exc:
                self._report(exc)
                return []
        env = self.current
        return [env] if env is not None else []

    def _report(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            self.post_message(self.Failed(f"index: {exc}"))

    # --- cursor -------------------------------------------------------------------------

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, self.count - 1)) if self.count else 0

    def watch_cursor(self, old: int, new: int) -> None:
        height = self.scrollable_content_region.height
        top = round(self.scroll_y)
        if height > 0 and new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif height > 0 and new >= top + height:
            self.scroll_to(y=new - height + 1, animate=False, immediate=True)
        else:
            # No scroll: only the two rows whose cursor style changed are repainted.
            # (A scroll repaints everything; refreshing lines as well drew twice.)
            self.refresh_line(old)
            self.refresh_line(new)

    @property
    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_cursor_down(self) -> None:
        self.cursor += 1

    def action_cursor_up(self) -> None:
        self.cursor -= 1

    def action_cursor_page_down(self) -> None:
        self.cursor += self._page_rows

    def action_cursor_page_up(self) -> None:
        self.cursor -= self._page_rows

    def action_cursor_top(self) -> None:
        self.cursor = 0

    def action_cursor_bottom(self) -> None:
        self.cursor = self.count - 1

    def action_open(self) -> None:
        env = self.current
        if env is not None:
            self.post_message(self.Selected(env))

    def _on_click(self, event: events.Click) -> None:
        row = event.y + round(self.scroll_y)
        if 0 <= row < self.count:
            self.cursor = row
            if event.chain >= 2:
                self.action_open()

    # --- rendering ---------------------------------------------------------------------

    def _styles(self) -> dict[str, Style]:
        get = self.get_component_rich_style
        styles = {
            name: get(f"message-list--{name}", partial=True)
            for name in (
                "cursor",
                "selected",
                "unread",
                "flagged",
                "pending",
                "marks",
                "date",
                "sender",
            )
        }
        styles["base"] = self.rich_style
        styles["empty"] = get("message-list--empty", partial=True)
        return styles

    def render_lines(self, crop: Region) -> list[Strip]:
        # Styles are looked up once per paint, not once per row.
        self._frame_styles = self._styles()
        try:
            return super().render_lines(crop)
        finally:
            self._frame_styles = None

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        row = round(self.scroll_y) + y
        if self.count == 0:
            st = self._frame_styles or self._styles()
            base = st["base"]
            if y == 0:
                text = fit(" " + self.empty_text, width)
                return Strip([Segment(text, base + st["empty"])], width)
            return Strip.blank(width, base)
        env = self.envelope_at(row)
        if env is None:
            return Strip.blank(width, (self._frame_styles or self._styles())["base"])
        if row == self.cursor:  # its colour also follows focus: never cached
            return self._render_row(env, width, self._frame_styles or self._styles(), True)
        return self._cached_row(row, env, width)

    def _cached_row(self, row: int, env: Envelope, width: int) -> Strip:
        selected = env.ref.id is not None and env.ref.id in self.selected_ids
        key = (row, width, selected)
        hit = self._strips.get(key)
        if hit is not None and hit[0] is env:
            self._strips.move_to_end(key)
            return hit[1]
        strip = self._render_row(env, width, self._frame_styles or self._styles(), False)
        self._strips[key] = (env, strip)
        while len(self._strips) > CACHE_STRIPS:
            self._strips.popitem(last=False)
        return strip

    def notify_style_update(self) -> None:
        # Theme, CSS or pseudo-class (focus, hover) changed: every row's colours may have.
        self._strips.clear()
        super().notify_style_update()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._schedule_prerender()

    def _schedule_prerender(self) -> None:
        if not self._prerender_pending:
            self._prerender_pending = True
            self.call_after_refresh(self._prerender)

    def _prerender(self) -> None:
        """Render the screenful below and the one above while idle.

        Called after the frame that scrolled, so the page-down the user is
        likely to press next finds its rows (and their index page) ready and
        draws only the cursor row.
        """
        self._prerender_pending = False
        height = self.scrollable_content_region.height
        width = self.scrollable_content_region.width
        if height <= 0 or width <= 0 or self.count == 0 or not self.is_mounted:
            return
        top = round(self.scroll_y)
        self._frame_styles = self._styles()
        try:
            for row in (*range(top + height, top + 2 * height), *range(top - height, top)):
                if 0 <= row < self.count and row != self.cursor:
                    env = self.envelope_at(row)
                    if env is not None:
                        self._cached_row(row, env, width)
        finally:
            self._frame_styles = None

    def _render_row(
        self, env: Envelope, width: int, st: dict[str, Style], is_cursor: bool
    ) -> Strip:
        base = st["base"]
        row_style = base
        if Flag.SEEN not in env.flags:
            row_style += st["unread"]
        if Flag.FLAGGED in env.flags:
            row_style += st["flagged"]
        cursor = st["cursor"] if is_cursor else Style()
        selected = env.ref.id is not None and env.ref.id in self.selected_ids
        if selected:
            row_style += st["selected"]

        sender_w = max(8, min(24, width // 4))
        subject_w = width - MARKS_WIDTH - DATE_WIDTH - sender_w - 3
        if subject_w < 8:  # very narrow: drop the date
            date_w = 0
            subject_w = width - MARKS_WIDTH - sender_w - 2
        else:
            date_w = DATE_WIDTH

        mark_text = marks(env, selected)
        segments = [
            Segment(mark_text[0], row_style + st["marks"] + cursor),
            Segment(mark_text[1], row_style + st["pending"] + cursor),
            Segment(mark_text[2:], row_style + st["marks"] + cursor),
            Segment(" ", row_style + cursor),
        ]
        if date_w:
            date = self._date_text(env.date)
            segments.append(Segment(fit(date, date_w) + " ", row_style + st["date"] + cursor))
        sender = inert_line(sender_text(env.sender)) or "(no sender)"
        subject = inert_line(env.subject) or "(no subject)"
        if self.threaded and env.thread_depth > 0:
            depth = min(env.thread_depth, MAX_INDENT)
            subject = "  " * (depth - 1) + "└ " + subject
        segments.append(Segment(fit(sender, sender_w) + " ", row_style + st["sender"] + cursor))
        segments.append(Segment(fit(subject, max(0, subject_w)), row_style + cursor))
        return Strip(segments).adjust_cell_length(width, base + cursor)

    def _date_text(self, ts: int) -> str:
        """format_date, cached per minute of the clock: a page of rows costs no strftime."""
        minute = int((time.time() if self.now is None else self.now) // 60)
        if minute != self._date_minute:
            self._date_cache.clear()
            self._strips.clear()  # "14:05" may have become "Mar 07"
            self._date_minute = minute
        text = self._date_cache.get(ts)
        if text is None:
            if len(self._date_cache) > 50_000:
                self._date_cache.clear()
            text = self._date_cache[ts] = format_date(ts, self.now)
        return text

    def on_resize(self) -> None:
        self.refresh()

    def on_focus(self) -> None:
        self.refresh_line(self.cursor)  # the cursor colour depends on focus

    def on_blur(self) -> None:
        self.refresh_line(self.cursor)

    def set_empty_text(self, text: str) -> None:
        self.empty_text = text
        if self.count == 0:
            self.refresh()
