"""The built-in editor, for when neither $VISUAL nor $EDITOR is set.

The same text form as an external editor gets (headers, an empty line, the body), so
the composer has one path: text in, text out, parsed the same way.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static, TextArea


class EditorScreen(Screen[str]):
    """Edit the draft text; Ctrl+S or Esc returns it (nothing typed is thrown away:
    the review screen that follows can still cancel the whole message)."""

    DEFAULT_CSS = """
    EditorScreen { layout: vertical; }
    EditorScreen > #editor-title { height: 1; background: $panel; padding: 0 1; }
    EditorScreen > TextArea { height: 1fr; border: none; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "done", "Done", show=True, priority=True),
        Binding("escape", "done", "Done", show=False),
    ]

    def __init__(self, text: str, title: str = "Compose") -> None:
        super().__init__()
        self.text = text
        self.title_text = title

    def compose(self) -> ComposeResult:
        yield Static(
            f"{self.title_text} — headers, an empty line, then the text.  ^S done",
            id="editor-title",
            markup=False,
        )
        # tab_behavior "focus": Esc and Tab are not typed into the text but reach us.
        area = TextArea(self.text, soft_wrap=True, tab_behavior="focus", id="draft-text")
        yield area
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
