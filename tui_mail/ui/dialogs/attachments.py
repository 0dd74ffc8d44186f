"""The attachments of the open message: Enter opens one, s saves it."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui_mail.core.sanitize import inert_line, safe_filename
from tui_mail.ui.mime import Attachment, human_size


class AttachmentScreen(ModalScreen[tuple[str, int] | None]):
    """Dismisses with ("open" | "save", attachment number) or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss(None)", "Close"),
        Binding("s,w", "choose('save')", "Save"),
        Binding("enter,o", "choose('open')", "Open", priority=True),
    ]
    DEFAULT_CSS = """
    AttachmentScreen { align: center middle; }
    AttachmentScreen > Vertical {
        width: 70; max-width: 100%; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    AttachmentScreen .title { text-style: bold; }
    AttachmentScreen OptionList { height: auto; max-height: 12; border: none; }
    """

    def __init__(self, attachments: list[Attachment]) -> None:
        super().__init__()
        self.attachments = attachments

    def compose(self) -> ComposeResult:
        options = []
        for n, att in enumerate(self.attachments, 1):
            name = inert_line(att.filename) or "(no name)"
            options.append(
                Option(
                    Content.assemble(
                        f"[{n}] ",
                        (name, "bold"),
                        f"  {inert_line(att.content_type)}, {human_size(att.size)}",
                        (f"  → {safe_filename(att.filename)}", "$text-muted"),
                    )
                )
            )
        with Vertical():
            yield Static("Attachments: Enter opens, s saves, Esc closes", classes="title")
            yield OptionList(*options)

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        if options.option_count:
            options.highlighted = 0

    def action_choose(self, what: str) -> None:
        index = self.query_one(OptionList).highlighted
        if index is not None:
            self.dismiss((what, index))
