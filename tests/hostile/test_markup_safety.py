"""Markup safety: text from mail or a server that looks like Textual markup ("[b]",
"[/", "[@click=app.quit]x[/]", "[link=...]") shows verbatim everywhere it appears,
never becomes a style, an action or a link, and never raises.

Found by this suite: the folder picker and the command palette passed folder names
through `Matcher.highlight` / a str prompt, both of which parse markup, so a folder
named "[link=https://evil]x[/link]" crashed the app and "[@click=app.quit]x" became a
clickable action.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.cells import cell_len
from textual.pilot import Pilot

from hostile.hostile_mail import (
    MARKUP,
    MARKUP_TEXT,
    hostile_account,
    markup_samples,
    open_message,
    osc8_targets,
    screen_lines,
    terminal_stream,
)
from hostile.maildir_app import ACCOUNT, maildir_config, wait_for
from tui_mail.core import events as ev
from tui_mail.ui.app import MailApp
from tui_mail.ui.dialogs.picker import PickerScreen, fuzzy_filter
from tui_mail.ui.screens.compose import ComposeScreen

WIDE = (220, 50)
MARKUP_FOLDERS = [
    "[b]FoldBold",
    "[@click=app.quit]FoldQuit",
    "[link=https:evil.example]FoldLink",
    "[on red]FoldRed[/on red",
    "[/FoldSlash",  # "/" also nests: the pane shows "[" with a child "FoldSlash"
]
ALERTS = [
    "[ALERT] [@click=app.quit]AlertQuit[/] [link=https://evil.example]AlertLink[/link]",
    "NO [b]AlertBold [/ [on red]",
]


class Spy:
    """Records what a click could make the app do: quit, open a URL, run an action."""

    def __init__(self, app: MailApp) -> None:
        self.exits: list[object] = []
        self.urls: list[str] = []
        self.actions: list[str] = []
        original_run_action = app.run_action

        async def run_action(action: str, *args: object, **kwargs: object) -> bool:
            self.actions.append(str(action))
            return await original_run_action(action, *args, **kwargs)  # type: ignore[arg-type]

        app.exit = lambda *a, **k: self.exits.append(a)  # type: ignore[method-assign]
        app.open_url = lambda url, **k: self.urls.append(url)  # type: ignore[method-assign]
        app.run_action = run_action  # type: ignore[method-assign]


def positions(lines: list[str], text: str) -> list[tuple[int, int]]:
    """Screen cells (x, y) of every occurrence of `text`, a few cells into it."""
    found = []
    for y, line in enumerate(lines):
        start = line.find(text)
        while start != -1:
            found.append((cell_len(line[:start]) + min(3, len(text) - 1), y))
            start = line.find(text, start + 1)
    return found


async def click_everywhere(pilot: Pilot[int], app: MailApp, spy: Spy, texts: list[str]) -> int:
    """Click on every visible occurrence of each text; returns how many clicks."""
    clicks = 0
    for text in texts:
        for x, y in positions(screen_lines(app), text):
            await pilot.click(offset=(x, y))
            await pilot.pause()
            clicks += 1
            assert app.is_running, f"clicking {text!r} ended the app"
    assert not spy.exits, f"a click asked the app to exit: {spy.exits}"
    assert not [u for u in spy.urls if "evil" in u], f"a click opened {spy.urls}"
    assert not [a for a in spy.actions if "quit" in a or "dismiss" in a], spy.actions
    return clicks


async def test_markup_in_subjects_names_bodies_and_attachments_shows_verbatim(
    tmp_path: Path,
) -> None:
    samples = markup_samples()
    root = tmp_path / "Maildir"
    count = hostile_account(root, samples)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count)
        lines = screen_lines(app)
        for n, text in enumerate(MARKUP):
            assert any(f"MK{n} {text}" in line for line in lines), (text, lines)
        for n, text in enumerate(MARKUP):
            lines = await open_message(pilot, app, f"<markup-{n}@x>")
            screen = "\n".join(lines)
            assert f"Subject: MK{n} {text}" in screen, screen
            assert f"MKBODY{n} {text}" in screen, screen
            assert MARKUP_TEXT in screen, screen
            # The From line: the name, quoted as sent, and the address.
            assert any("From:" in line and text in line for line in lines), screen
            # "[link=...]" made no hyperlink: the only OSC 8 links are the view's own
            # numbered list of URLs found in the text ("[1] https://...").
            for url in osc8_targets(terminal_stream(app)):
                assert any(line.strip(" ▕").endswith(f"] {url}") for line in lines), url
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.main.view.envelope is None)

        screen = "\n".join(await open_message(pilot, app, "<markup-attachment@x>"))
        assert "[@click=app.quit]ATT[/].pdf" in screen, screen
        await pilot.press("v")
        await wait_for(pilot, lambda: "Attachments: Enter opens" in "\n".join(screen_lines(app)))
        assert "[@click=app.quit]ATT[/].pdf" in "\n".join(screen_lines(app))
        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: app.main.view.envelope is None)

        screen = "\n".join(await open_message(pilot, app, "<markup-encoded@x>"))
        for shown in (
            "Subject: [@click=app.quit]QMK[/]",
            "[@click=app.quit]NMK[/]",
            "[@click=app.quit]B64MK[/] [link=https://evil.example]y[/link]",
        ):
            assert shown in screen, screen
        assert app.is_running


async def test_clicking_and_pressing_over_markup_runs_nothing(tmp_path: Path) -> None:
    samples = markup_samples()
    root = tmp_path / "Maildir"
    count = hostile_account(root, samples, MARKUP_FOLDERS)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count)
        spy = Spy(app)
        targets = ["[@click=app.quit]", "[link=", "[@click=screen.dismiss]", "[b]", "[/"]
        clicks = await click_everywhere(pilot, app, spy, targets)
        for n in (MARKUP.index("[@click=app.quit]x[/]"), MARKUP.index("[/")):
            await pilot.press("escape")
            # A click on a folder row opened that folder: back to the markup mail.
            app.main.open_folder(ACCOUNT, "INBOX")
            await wait_for(pilot, lambda: app.main.messages.count == count)
            await open_message(pilot, app, f"<markup-{n}@x>")
            clicks += await click_everywhere(pilot, app, spy, targets)
            await pilot.press("enter", "space", "enter")  # keys over the open message
            await pilot.pause()
            assert app.is_running
        assert clicks >= 10, f"only {clicks} clicks landed on markup-looking text"
        assert not spy.exits and app.is_running


async def test_markup_folder_names_show_verbatim_in_pane_picker_and_palette(
    tmp_path: Path,
) -> None:
    root = tmp_path / "Maildir"
    hostile_account(root, markup_samples()[:1], MARKUP_FOLDERS)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == 1)
        await wait_for(
            pilot, lambda: len(app.main.folders.folder_names(ACCOUNT)) >= len(MARKUP_FOLDERS)
        )
        spy = Spy(app)
        pane = "\n".join(screen_lines(app))
        # The pane cuts long names ("[@click=app…"): the start shows as typed.
        for shown in ("[b]FoldBold", "[@click=app", "[link=https", "[on red]FoldRed", "FoldSlash"):
            assert shown in pane, pane
        await click_everywhere(pilot, app, spy, ["[@click=app", "[link=https"])

        # The move picker: the folder list, then filtered (the fuzzy highlighter).
        app.main.open_folder(ACCOUNT, "INBOX", focus_list=True)
        await wait_for(pilot, lambda: app.main.messages.count == 1)
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, PickerScreen))
        picker = "\n".join(screen_lines(app))
        assert (
            "[@click=app.quit]FoldQuit" in picker and "[link=https:evil.example]FoldLink" in picker
        )
        for query in ("fold", "click", "link", "[/"):
            await pilot.press(*query)
            await pilot.pause()
            assert app.is_running and isinstance(app.screen, PickerScreen)
            for _ in query:
                await pilot.press("backspace")
        await pilot.press(*"foldquit")
        await pilot.pause()
        assert "[@click=app.quit]FoldQuit" in "\n".join(screen_lines(app))
        await click_everywhere(pilot, app, spy, ["[@click=app.quit]FoldQuit"])
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, PickerScreen))

        # The command palette lists every folder too ("Go to folder ...").
        await pilot.press("colon")
        await pilot.pause()
        await pilot.press(*"fold")
        await wait_for(
            pilot,
            lambda: (
                "Go to folder hostile/[@click=app.quit]FoldQuit" in "\n".join(screen_lines(app))
            ),
        )
        screen = "\n".join(screen_lines(app))
        assert "Go to folder hostile/[link=https:evil.example]FoldLink" in screen, screen
        assert app.is_running
        await pilot.press("escape")
        assert not spy.exits and app.is_running


def test_fuzzy_filter_never_reads_markup() -> None:
    names = [*MARKUP_FOLDERS, "[link=https://evil.example]y[/link]", "[", "]", "[/]"]
    for query in ("", "f", "click", "link", "[", "/", "]"):
        for choice, content in fuzzy_filter(query, names):
            assert content.plain == choice
            assert not any(span.style and "link" in str(span.style) for span in content.spans)


async def test_markup_in_server_alerts_shows_verbatim(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    hostile_account(root, markup_samples()[:1])
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == 1)
        spy = Spy(app)
        for alert in ALERTS:
            for event in (
                ev.BackendError(account=ACCOUNT, message=alert),
                ev.ConnectionChanged(
                    account=ACCOUNT, state=ev.ConnectionState.OFFLINE, detail=alert
                ),
            ):
                app.bridge.emit(event)
                await pilot.pause()
                status = screen_lines(app)[-2]
                assert alert[:40] in status, status
                await click_everywhere(pilot, app, spy, ["[@click=app.quit]", "[link="])
        assert app.is_running


async def test_a_reply_to_markup_mail_shows_it_verbatim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", shutil.which("true") or "true")  # leaves the draft as built
    samples = markup_samples()
    root = tmp_path / "Maildir"
    count = hostile_account(root, samples)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count)
        n = MARKUP.index("[@click=app.quit]x[/]")
        await open_message(pilot, app, f"<markup-{n}@x>")
        spy = Spy(app)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen))
        screen = app.screen
        assert isinstance(screen, ComposeScreen)
        await wait_for(pilot, lambda: screen.session.draft is not None and screen.edits > 0)
        text = "\n".join(screen_lines(app))
        assert f"Re: MK{n} [@click=app.quit]x[/]" in text, text
        assert f"> MKBODY{n} [@click=app.quit]x[/]" in text, text
        await click_everywhere(pilot, app, spy, ["[@click=app.quit]"])
        assert isinstance(app.screen, ComposeScreen)
