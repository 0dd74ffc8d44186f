"""Accounts and their folders, with unread/total counts and the link state.

Each account row ends in a glyph for its state (connected, syncing, offline,
auth failed); an account that is offline or failed to log in also gets a
line under it saying so, with the time of the next attempt.
"""

from __future__ import annotations

import time
from typing import ClassVar

from msgspec import Struct, field
from rich.cells import cell_len
from textual import on
from textual.binding import BindingType
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui_mail.core.events import ConnectionState
from tui_mail.core.models import Folder, FolderRole
from tui_mail.core.sanitize import inert_line
from tui_mail.ui import keymap

ROLE_ORDER = [
    FolderRole.INBOX,
    FolderRole.DRAFTS,
    FolderRole.SENT,
    FolderRole.ARCHIVE,
    FolderRole.JUNK,
    FolderRole.TRASH,
    FolderRole.NONE,
]
STATE_GLYPH = {
    ConnectionState.CONNECTED: ("●", "$sync-ok"),
    ConnectionState.LOCAL: ("●", "$sync-ok"),
    ConnectionState.CONNECTING: ("◌", "$warning"),
    ConnectionState.SYNCING: ("↻", "$warning"),
    ConnectionState.OFFLINE: ("○", "$text-muted"),
    ConnectionState.AUTH_FAILED: ("✗", "$sync-error"),
}
GUESSED_ROLES = {
    "inbox": FolderRole.INBOX,
    "sent": FolderRole.SENT,
    "drafts": FolderRole.DRAFTS,
    "trash": FolderRole.TRASH,
    "junk": FolderRole.JUNK,
    "spam": FolderRole.JUNK,
    "archive": FolderRole.ARCHIVE,
}


class _Account(Struct):
    state: ConnectionState | None = None
    retry_at: float | None = None
    folders: dict[str, Folder] = field(default_factory=dict)


class Row(Struct, frozen=True):
    # "account" | "state" | "folder" | "parent" (an implied level, not a folder)
    # | "group" (the "Searches" heading) | "virtual" (a unified inbox or saved search)
    kind: str
    account: str
    name: str = ""  # full folder name
    depth: int = 0


SEARCHES_HEADING = "Searches"
SELECTABLE = frozenset({"folder", "virtual"})


def guess_role(name: str) -> FolderRole:
    return GUESSED_ROLES.get(name.lower(), FolderRole.NONE)


def ordered_rows(account: str, folders: dict[str, Folder]) -> list[Row]:
    """INBOX first, then the other special folders, then the rest; children under parents."""

    def top_rank(name: str) -> tuple[int, str]:
        top = name.split("/", 1)[0]
        folder = folders.get(top)
        role = folder.role if folder is not None else FolderRole.NONE
        if role is FolderRole.NONE:
            role = guess_role(top)
        return (ROLE_ORDER.index(role), top.lower())

    rows = [Row("account", account)]
    seen: set[str] = set()
    for name in sorted(folders, key=lambda n: (top_rank(n), n.lower().split("/"))):
        parts = name.split("/")
        for depth in range(len(parts) - 1):
            parent = "/".join(parts[: depth + 1])
            if parent not in seen and parent not in folders:
                seen.add(parent)
                rows.append(Row("parent", account, parent, depth))
        seen.add(name)
        rows.append(Row("folder", account, name, len(parts) - 1))
    return rows


class FolderPane(OptionList, inherit_bindings=False):
    BINDINGS: ClassVar[list[BindingType]] = [
        keymap.binding("next", "cursor_down"),
        keymap.binding("prev", "cursor_up"),
        keymap.binding("page_down", "page_down"),
        keymap.binding("page_up", "page_up"),
        keymap.binding("top", "first"),
        keymap.binding("bottom", "last"),
        keymap.binding("open", "select", show=False),
    ]

    class Selected(Message):
        """A folder was chosen (highlighted) in the pane."""

        def __init__(self, account: str, folder: str, *, focus_list: bool = False) -> None:
            super().__init__()
            self.account = account
            self.folder = folder
            self.focus_list = focus_list

    class VirtualSelected(Message):
        """A virtual folder (unified inbox, saved search) was chosen in the pane."""

        def __init__(self, name: str, *, focus_list: bool = False) -> None:
            super().__init__()
            self.name = name
            self.focus_list = focus_list

    def __init__(self, **kwargs: object) -> None:
        super().__init__(markup=False, **kwargs)  # type: ignore[arg-type]
        self.accounts: dict[str, _Account] = {}
        self.rows: list[Row] = []
        # The "Searches" group, in order: name -> (total, unread), None until counted.
        self.virtual: dict[str, tuple[int, int] | None] = {}

    # --- attributes down --------------------------------------------------------------

    def add_account(self, account: str) -> None:
        self.accounts.setdefault(account, _Account())
        self._rebuild()

    def set_folders(self, account: str, folders: list[Folder] | tuple[Folder, ...]) -> None:
        self.accounts.setdefault(account, _Account()).folders = {f.name: f for f in folders}
        self._rebuild()

    def set_counts(self, account: str, counts: dict[str, tuple[int, int]]) -> None:
        entry = self.accounts.setdefault(account, _Account())
        for name, (total, unread) in counts.items():
            old = entry.folders.get(name) or Folder(account, name, guess_role(name))
            entry.folders[name] = Folder(account, name, old.role, int(total), int(unread))
        self._rebuild()

    def update_folder(self, folder: Folder) -> None:
        self.accounts.setdefault(folder.account, _Account()).folders[folder.name] = folder
        self._rebuild()

    def set_virtual(self, names: list[str]) -> None:
        """The virtual folders shown at the top (counts come later, see set_virtual_counts)."""
        self.virtual = {name: self.virtual.get(name) for name in names}
        self._rebuild()

    def set_virtual_counts(self, counts: dict[str, tuple[int, int]]) -> None:
        changed = False
        for name, value in counts.items():
            if name in self.virtual and self.virtual[name] != value:
                self.virtual[name] = value
                changed = True
        if changed:
            self._rebuild()

    def set_state(
        self, account: str, state: ConnectionState, retry_in: float | None = None
    ) -> None:
        entry = self.accounts.setdefault(account, _Account())
        entry.state = state
        entry.retry_at = time.time() + retry_in if retry_in else None
        self._rebuild()

    def folder_names(self, account: str) -> list[str]:
        """The account's folders in pane order (for pickers)."""
        return [r.name for r in self.rows if r.kind == "folder" and r.account == account]

    def folder_with_role(self, account: str, role: FolderRole) -> str | None:
        entry = self.accounts.get(account)
        if entry is None:
            return None
        for name, folder in entry.folders.items():
            if folder.role is role:
                return name
        for name in entry.folders:
            if guess_role(name) is role:
                return name
        return None

    def folder(self, account: str, name: str) -> Folder | None:
        entry = self.accounts.get(account)
        return entry.folders.get(name) if entry else None

    @property
    def selected(self) -> Row | None:
        index = self.highlighted
        if index is None or not (0 <= index < len(self.rows)):
            return None
        row = self.rows[index]
        return row if row.kind == "folder" else None

    @property
    def selected_virtual(self) -> str | None:
        """The name of the highlighted virtual folder, if one is highlighted."""
        index = self.highlighted
        if index is None or not (0 <= index < len(self.rows)):
            return None
        row = self.rows[index]
        return row.name if row.kind == "virtual" else None

    def select_virtual(self, name: str) -> bool:
        for i, row in enumerate(self.rows):
            if row.kind == "virtual" and row.name == name:
                self.highlighted = i
                return True
        return False

    def select_folder(self, account: str, name: str) -> bool:
        for i, row in enumerate(self.rows):
            if row.kind == "folder" and row.account == account and row.name == name:
                self.highlighted = i
                return True
        return False

    def move(self, delta: int) -> None:
        """Highlight the next/previous folder (skipping headers) and open it."""
        start = self.highlighted if self.highlighted is not None else -1
        i = start + delta
        while 0 <= i < len(self.rows):
            if self.rows[i].kind in SELECTABLE:
                self.highlighted = i
                return
            i += delta

    # --- rendering --------------------------------------------------------------------

    def _rebuild(self) -> None:
        """Re-render every prompt; restructure only when the rows changed."""
        rows: list[Row] = []
        if self.virtual:
            rows.append(Row("group", ""))
            rows += [Row("virtual", "", name) for name in self.virtual]
        for account, entry in self.accounts.items():
            account_rows = ordered_rows(account, entry.folders)
            if entry.state in (ConnectionState.OFFLINE, ConnectionState.AUTH_FAILED):
                account_rows.insert(1, Row("state", account))
            rows += account_rows
        width = max(6, self.scrollable_content_region.width or 17)
        if rows == self.rows and self.option_count == len(rows):
            for i, row in enumerate(rows):
                self.replace_option_prompt_at_index(i, self._prompt(row, width))
            return
        keep = self.selected
        keep_virtual = self.selected_virtual
        self.rows = rows
        self.set_options(
            Option(self._prompt(row, width), disabled=row.kind not in SELECTABLE) for row in rows
        )
        if keep is not None:
            self.select_folder(keep.account, keep.name)
        elif keep_virtual is not None:
            self.select_virtual(keep_virtual)

    def _prompt(self, row: Row, width: int) -> Content:
        if row.kind == "group":
            return Content.styled(_cut(SEARCHES_HEADING, width), "bold")
        if row.kind == "virtual":
            counts = self.virtual.get(row.name)
            total, unread = counts if counts is not None else (0, 0)
            # Not counted yet: no number rather than a wrong "0".
            text = "" if counts is None else f"{unread}/{total}" if unread else str(total)
            return _count_line(" ", inert_line(row.name), text, unread, width)
        entry = self.accounts[row.account]
        if row.kind == "account":
            glyph, style = STATE_GLYPH.get(entry.state, ("·", "$text-muted"))  # type: ignore[arg-type]
            name = _cut(inert_line(row.account), width - 2)
            pad = " " * max(1, width - cell_len(name) - 1)
            return Content.assemble((name, "bold"), pad, (glyph, style))
        if row.kind == "state":
            if entry.state is ConnectionState.AUTH_FAILED:
                text = " login failed"  # fits the narrow pane (13 cells)
            elif entry.retry_at:
                text = f" retry {time.strftime('%H:%M', time.localtime(entry.retry_at))}"
            else:
                text = " offline"
            style = "$sync-error" if entry.state is ConnectionState.AUTH_FAILED else "$text-muted"
            return Content.styled(_cut(text, width), style)
        indent = " " * (row.depth + 1)
        label = inert_line(row.name.rsplit("/", 1)[-1])
        if row.kind == "parent":
            return Content.assemble(indent, (_cut(label, width - len(indent)), "$text-muted"))
        folder = entry.folders[row.name]
        counts = f"{folder.unread}/{folder.total}" if folder.unread else str(folder.total)
        return _count_line(indent, label, counts, folder.unread, width)

    def on_resize(self) -> None:
        if self.rows:
            self._rebuild()

    # --- messages up -------------------------------------------------------------------

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        row = self.selected
        if row is not None:
            self.post_message(self.Selected(row.account, row.name))
        elif (name := self.selected_virtual) is not None:
            self.post_message(self.VirtualSelected(name))

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        row = self.selected
        if row is not None:
            self.post_message(self.Selected(row.account, row.name, focus_list=True))
        elif (name := self.selected_virtual) is not None:
            self.post_message(self.VirtualSelected(name, focus_list=True))


def _count_line(indent: str, label: str, counts: str, unread: int, width: int) -> Content:
    """A folder line: the name (bold when it has unread mail), counts right-aligned."""
    room = width - len(indent) - len(counts) - 1
    if room < 4:  # too narrow for counts: name only
        counts, room = "", width - len(indent)
    label = _cut(label, room)
    pad = " " * max(0, width - len(indent) - cell_len(label) - len(counts))
    name_style = "bold $mail-unread" if unread else ""
    return Content.assemble(indent, (label, name_style), pad, (counts, "$text-muted"))


def _cut(text: str, width: int) -> str:
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    out = ""
    for ch in text:
        if cell_len(out + ch) > width - 1:
            break
        out += ch
    return out + "…"
