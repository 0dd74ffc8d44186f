"""Small modal dialogs of the composer and the outbox: a yes/no question, a path."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from tui_mail.core.sanitize import inert

DIALOG_CSS = """
    align: center middle;
    & > Vertical {
        width: 70; max-width: 100%; height: auto;
        border: round $primary; background: $surface; padding: 0 1;
    }
    & .dialog-hint { color: $text-muted; }
"""


class ConfirmScreen(ModalScreen[bool]):
    """A question answered with y or n (Esc is no): for what cannot be undone."""

    DEFAULT_CSS = "ConfirmScreen {" + DIALOG_CSS + "}"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n,escape,q", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            # The question may quote a subject: shown as plain text, controls made inert.
            yield Static(Content(inert(self.question)), markup=False)
            yield Static("y yes   n no", classes="dialog-hint", markup=False)

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PathPrompt(ModalScreen[str | None]):
    """Ask for a file path (Enter takes it, Esc cancels)."""

    DEFAULT_CSS = "PathPrompt {" + DIALOG_CSS + "}"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, markup=False)
            yield Input(self.value, placeholder="~/path/to/file", id="path")
            yield Static("Enter attach   Esc cancel", classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
