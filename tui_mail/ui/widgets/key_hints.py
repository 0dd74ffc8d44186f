"""One line of key hints from the active bindings, drawn as text.

Textual's Footer mounts one widget per key and recomposes them whenever the
bindings change (opening a message, moving focus): on this app that was a
large part of the time to open a message. This draws the same hints as a
single `Content`, so a bindings change is one repaint.
"""

from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from tui_mail.ui.keymap import display_keys


class KeyHints(Widget):
    DEFAULT_CSS = """
    KeyHints { height: 1; background: $footer-background; color: $footer-foreground;
               text-wrap: nowrap; text-overflow: clip; }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen: object) -> None:
        self.refresh()

    def render(self) -> Content:
        parts: list[Content | str | tuple[str, str]] = []
        seen: set[str] = set()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.show or not active.enabled or binding.action in seen:
                continue
            seen.add(binding.action)
            shown = binding.key_display or display_keys(key)
            parts += [" ", (shown, "bold $footer-key-foreground"), f" {binding.description} "]
        return Content.assemble(*parts)
