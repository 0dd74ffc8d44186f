"""`?`: every action with the keys that are bound to it right now."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from tui_mail.ui import keymap


def help_content(keys: dict[str, str], preset: str) -> Content:
    """A table of action, keys and where it applies, from the effective keymap."""
    key_w = max(len(keymap.display_keys(k)) for k in keys.values())
    desc_w = max(len(a.description) for a in keymap.ACTIONS.values())
    parts: list[Content | str | tuple[str, str]] = [
        (f"Keys ({preset} preset, with your [keys] overrides)\n\n", "bold")
    ]
    for action_id, action in keymap.ACTIONS.items():
        shown = keymap.display_keys(keys.get(action_id, ""))
        parts.append((shown.ljust(key_w + 2), "bold $accent"))
        parts.append(action.description.ljust(desc_w + 2))
        parts.append((f"{action.context}\n", "$text-muted"))
    parts.append(("\nEsc or q closes this screen.", "$text-muted"))
    return Content.assemble(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close", show=True),
        keymap.binding("next", "scroll_down", show=False),
        keymap.binding("prev", "scroll_up", show=False),
        keymap.binding("page_down", "page_down", show=False),
        keymap.binding("page_up", "page_up", show=False),
        keymap.binding("top", "scroll_top", show=False),
        keymap.binding("bottom", "scroll_bottom", show=False),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: auto; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    HelpScreen Static { width: auto; }
    """

    def __init__(self, keys: dict[str, str], preset: str) -> None:
        super().__init__()
        self.keys = keys
        self.preset = preset

    def on_mount(self) -> None:
        keymap.rebind(self, self.keys)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_content(self.keys, self.preset), markup=False)

    def action_scroll_down(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_down()

    def action_scroll_up(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_up()

    def action_page_down(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_page_down()

    def action_page_up(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_page_up()

    def action_scroll_top(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_home(animate=False)

    def action_scroll_bottom(self) -> None:
        self.query_one("#help", VerticalScroll).scroll_end(animate=False)
