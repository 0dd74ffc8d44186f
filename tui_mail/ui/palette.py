"""The command palette: every action, every folder and every account, fuzzy-searchable."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.markup import escape

from tui_mail.core.sanitize import inert_line
from tui_mail.ui import keymap
from tui_mail.ui.dialogs.picker import highlight


class MailCommands(Provider):
    def _entries(self) -> list[tuple[str, Callable[[], Any], str]]:
        app: Any = self.app
        main = getattr(app, "main", None)
        if main is None:
            return []
        keys: dict[str, str] = app.keys.keys
        entries: list[tuple[str, Callable[[], Any], str]] = []
        for action in keymap.ACTIONS.values():
            if action.id == "palette":
                continue
            shown = keymap.display_keys(keys.get(action.id, ""))
            entries.append((action.description, partial(main.run_named_action, action.id), shown))
        for row in main.folders.rows:
            if row.kind == "folder":
                label = f"Go to folder {inert_line(row.account)}/{inert_line(row.name)}"
                entries.append(
                    (label, partial(main.open_folder, row.account, row.name, focus_list=True), "")
                )
        for account in main.config.accounts:
            entries.append(
                (
                    f"Switch to account {inert_line(account)}",
                    partial(main.switch_to_account, account),
                    "",
                )
            )
        return entries

    # The palette reads a str prompt or help as markup; folder and account names are
    # data, so they go in as Content and the help (key names, "[" included) escaped.
    async def discover(self) -> Hits:
        for text, callback, help_text in self._entries():
            yield DiscoveryHit(Content(text), callback, text=text, help=_help(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._entries():
            score = matcher.match(text)
            if score > 0:
                shown = highlight(matcher, text)
                yield Hit(score, shown, callback, text=text, help=_help(help_text))


def _help(help_text: str) -> str | None:
    return escape(help_text) if help_text else None
