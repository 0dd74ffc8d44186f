"""A list with a fuzzy filter: pick a folder to move/copy to, or an account."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from tui_mail.core.sanitize import inert_line


def highlight(matcher: Matcher, text: str) -> Content:
    """`text` as plain text with the letters `matcher` matched highlighted.

    Not `Matcher.highlight`: it parses its argument as Textual markup, and a folder
    name is data from a server ("[@click=app.quit]x" would become an action, an
    unfinished "[link=" tag an exception).
    """
    content = Content(text)
    score, offsets = matcher.fuzzy_search.match(matcher.query, text)
    if score:
        for offset in offsets:
            if not text[offset].isspace():
                content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


def fuzzy_filter(query: str, choices: list[str]) -> list[tuple[str, Content]]:
    """Choices matching `query` (best first) with the matched letters highlighted.

    Names are made inert first: a folder name comes from a server.
    """
    if not query.strip():
        return [(c, Content(inert_line(c))) for c in choices]
    matcher = Matcher(query.strip())
    scored = []
    for n, choice in enumerate(choices):
        shown = inert_line(choice)
        score = matcher.match(shown)
        if score > 0:
            scored.append((-score, n, choice, highlight(matcher, shown)))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [(choice, content) for _, _, choice, content in scored]


class PickerScreen(ModalScreen[str | None]):
    """Type to filter, Enter picks the highlighted entry, Esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("down", "cursor(1)", show=False, priority=True),
        Binding("up", "cursor(-1)", show=False, priority=True),
    ]
    DEFAULT_CSS = """
    PickerScreen { align: center middle; }
    PickerScreen > Vertical {
        width: 60; max-width: 100%; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    PickerScreen #picker-title { text-style: bold; }
    PickerScreen Input { margin: 0; border: tall $panel; }
    PickerScreen OptionList { height: auto; max-height: 14; border: none; }
    """

    def __init__(self, title: str, choices: list[str]) -> None:
        super().__init__()
        self.title_text = title
        self.choices = choices
        self.shown: list[str] = list(choices)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(self.title_text), id="picker-title")
            yield Input(placeholder="type to filter", id="picker-filter")
            yield OptionList(*self._options(""), id="picker-list")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        options = self.query_one(OptionList)
        if options.option_count:
            options.highlighted = 0

    def _options(self, query: str) -> list[Option]:
        matches = fuzzy_filter(query, self.choices)
        self.shown = [choice for choice, _ in matches]
        return [Option(content) for _, content in matches]

    @on(Input.Changed)
    def _filter(self, event: Input.Changed) -> None:
        options = self.query_one(OptionList)
        options.set_options(self._options(event.value))
        if options.option_count:
            options.highlighted = 0

    def action_cursor(self, delta: int) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            current = options.highlighted if options.highlighted is not None else 0
            options.highlighted = max(0, min(options.option_count - 1, current + delta))

    @on(Input.Submitted)
    def _submitted(self) -> None:
        options = self.query_one(OptionList)
        index = options.highlighted
        if index is not None and 0 <= index < len(self.shown):
            self.dismiss(self.shown[index])

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        if 0 <= event.option_index < len(self.shown):
            self.dismiss(self.shown[event.option_index])
