"""The built-in editor, for when neither $VISUAL nor $EDITOR is set.

The same text form as an external editor gets (headers, an empty line, the body), so
the composer has one path: text in, text out, parsed the same way.

Tab on a To:, Cc: or Bcc: line completes the address being typed (the text after the
last comma) from the address book: people seen in mail and written to, ranked by use,
then the optional `address_book_cmd`. The look-up runs in a worker; if the text or
the cursor moved before it answered, the answer is dropped. Tab again, with nothing
typed in between, cycles to the next match; the matches are listed under the text,
made inert (an external command's output is not trusted).
"""

from __future__ import annotations

import re
from email.headerregistry import Address as HeaderAddress
from typing import TYPE_CHECKING, ClassVar

from msgspec import Struct
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static, TextArea

from tui_mail.core.models import Address
from tui_mail.core.sanitize import inert_line

if TYPE_CHECKING:
    from tui_mail.ui.address_completion import AddressCompleter

ADDRESS_HEADERS = frozenset({"to", "cc", "bcc"})
_HEADER_NAME = re.compile(r"([A-Za-z][A-Za-z0-9-]*):")


class AddressSlot(Struct, frozen=True):
    """The address being typed: on `row`, columns `start` to `end`, and its text."""

    row: int
    start: int
    end: int
    prefix: str  # from `start` to the cursor: what completion matches


def address_slot(text: str, row: int, column: int) -> AddressSlot | None:
    """Where the cursor sits in a To/Cc/Bcc header (or its continuation), or None."""
    lines = text.split("\n")
    if not 0 <= row < len(lines):
        return None
    if any(not line.strip() for line in lines[: row + 1]):
        return None  # the body (or the blank line before it)
    head = row
    while head > 0 and lines[head][:1] in (" ", "\t"):
        head -= 1
    match = _HEADER_NAME.match(lines[head])
    if match is None or match.group(1).lower() not in ADDRESS_HEADERS:
        return None
    line = lines[row]
    column = min(column, len(line))
    floor = match.end() if head == row else 0
    if column < floor:
        return None
    start = max(floor, line.rfind(",", floor, column) + 1)
    while start < column and line[start] in " \t":
        start += 1
    comma = line.find(",", column)
    end = len(line) if comma < 0 else comma
    end = max(column, len(line[:end].rstrip()))
    return AddressSlot(row, start, end, line[start:column])


def address_text(address: Address) -> str:
    """How a match goes into the header: `Name <addr>`, the name quoted when needed."""
    name = inert_line(address.name).strip()
    if name:
        try:
            return str(HeaderAddress(display_name=name, addr_spec=address.addr))
        except (ValueError, IndexError):  # a name or address email cannot render
            pass
    return address.addr


class _Cycle(Struct):
    """The last completion put in, so another Tab can replace it with the next match."""

    slot: AddressSlot
    matches: list[Address]
    shown: int
    end: int  # column after the inserted text
    text: str  # the whole text right after inserting


class EditorScreen(Screen[str]):
    """Edit the draft text; Ctrl+S or Esc returns it (nothing typed is thrown away:
    the review screen that follows can still cancel the whole message)."""

    DEFAULT_CSS = """
    EditorScreen { layout: vertical; }
    EditorScreen > #editor-title { height: 1; background: $panel; padding: 0 1; }
    EditorScreen > TextArea { height: 1fr; border: none; padding: 0 1; }
    EditorScreen > #editor-completions {
        height: auto; max-height: 3; padding: 0 1; background: $panel; display: none;
    }
    EditorScreen.-completions > #editor-completions { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "done", "Done", show=True, priority=True),
        Binding("escape", "done", "Done", show=False),
        Binding("tab", "complete_address", "Complete address", show=True),
    ]

    def __init__(
        self, text: str, title: str = "Compose", completer: AddressCompleter | None = None
    ) -> None:
        super().__init__()
        self.text = text
        self.title_text = title
        self.completer = completer
        self._cycle: _Cycle | None = None
        self.completions = 0  # answers that came back (for tests)

    def compose(self) -> ComposeResult:
        yield Static(
            f"{self.title_text} — headers, an empty line, then the text.  ^S done",
            id="editor-title",
            markup=False,
        )
        # tab_behavior "focus": Esc and Tab are not typed into the text but reach us.
        area = TextArea(self.text, soft_wrap=True, tab_behavior="focus", id="draft-text")
        yield area
        yield Static(id="editor-completions", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        area = self.query_one(TextArea)
        area.focus()
        # Start on the first empty header (usually To:), else at the top of the body.
        lines = self.text.split("\n")
        row = next((n for n, line in enumerate(lines) if line.rstrip().endswith(":")), None)
        if row is None:
            row = next((n + 1 for n, line in enumerate(lines) if not line.strip()), 0)
        row = min(row, len(lines) - 1)
        area.move_cursor((row, len(lines[row])))

    def action_done(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    # --- address completion -------------------------------------------------------------

    def action_complete_address(self) -> None:
        area = self.query_one(TextArea)
        row, column = area.cursor_location
        slot = address_slot(area.text, row, column)
        if slot is None or self.completer is None:
            raise SkipAction()  # not in an address header: Tab keeps its usual meaning
        cycle = self._cycle
        if (
            cycle is not None
            and area.text == cycle.text
            and (row, column)
            == (
                cycle.slot.row,
                cycle.end,
            )
        ):
            self._put(cycle, (cycle.shown + 1) % len(cycle.matches))
            return
        self._cycle = None
        if not slot.prefix.strip():
            self._show_line("type the start of a name or address, then Tab")
            return
        self._show_line(f"looking up “{inert_line(slot.prefix)}”…")
        self.run_worker(
            self._look_up(slot, area.text),
            group="address-completion",
            exclusive=True,
            exit_on_error=False,
        )

    async def _look_up(self, slot: AddressSlot, text: str) -> None:
        assert self.completer is not None
        try:
            matches, problem = await self.completer.complete(slot.prefix)
        except Exception as exc:  # never a traceback in the editor: say it, keep typing
            matches, problem = [], f"address completion failed: {exc}"
        self.completions += 1
        if problem:  # said even when the answer itself comes too late to use
            self.notify(inert_line(problem), severity="warning", markup=False)
        area = self.query_one(TextArea)
        if area.text != text or area.cursor_location != (slot.row, len(slot.prefix) + slot.start):
            self._show_line("")
            return  # typed on meanwhile: this answer is for text that is gone
        if not matches:
            self._show_line(f"no address matches “{inert_line(slot.prefix)}”")
            return
        self._put(_Cycle(slot, matches, 0, slot.end, text), 0)

    def _put(self, cycle: _Cycle, choice: int) -> None:
        """Replace the slot's text (or the previous match) with match number `choice`."""
        area = self.query_one(TextArea)
        inserted = address_text(cycle.matches[choice])
        row, start = cycle.slot.row, cycle.slot.start
        area.replace(inserted, (row, start), (row, cycle.end))
        end = start + len(inserted)
        area.move_cursor((row, end))
        self._cycle = _Cycle(cycle.slot, cycle.matches, choice, end, area.text)
        listed = [
            f"{'▸' if n == choice else ' '}{inert_line(a.name) + ' ' if a.name else ''}"
            f"<{inert_line(a.addr)}>"
            for n, a in enumerate(cycle.matches)
        ]
        more = "  (Tab: next)" if len(cycle.matches) > 1 else ""
        self._show_line("  ".join(listed) + more)

    def _show_line(self, text: str) -> None:
        self.query_one("#editor-completions", Static).update(Content(inert_line(text)))
        self.set_class(bool(text), "-completions")
