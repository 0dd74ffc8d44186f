"""Terminal safety: escape sequences, C1 controls, bidi overrides and zero-width
characters from mail, folder names and server text never reach the terminal as
themselves. They show as visible placeholders, a one-line field stays on one line, and
a reversed attachment name shows its real extension.

The proof is taken on what the app writes: `terminal_stream` is the exact string the
driver would send to the terminal for a full repaint (Textual's own SGR, cursor and
OSC 8 sequences are allowed, nothing else). The last test does the same through the
installed `tui-mail` in a real tmux pane, where a leak would retitle the pane or fill a
paste buffer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from tmux_pane import SCRIPT, TMUX
from tmux_pane import Pane as TmuxPane

from hostile.hostile_mail import (
    ALL_ATTACKS,
    BIDI,
    FORBIDDEN,
    HOSTILE_ALERTS,
    HOSTILE_FOLDERS,
    OSC_52,
    OSC_TITLE,
    ZERO_WIDTH,
    foreign_controls,
    hostile_account,
    line_with,
    open_message,
    screen_lines,
    terminal_samples,
    terminal_stream,
)
from hostile.maildir_app import ACCOUNT, maildir_config, wait_for
from tui_mail.core import events as ev
from tui_mail.core.sanitize import inert, inert_line
from tui_mail.ui.app import MailApp
from tui_mail.ui.dialogs.attachments import AttachmentScreen
from tui_mail.ui.dialogs.picker import PickerScreen
from tui_mail.ui.screens.compose import ComposeScreen

# Wide enough that no header line wraps: one field on one screen line is then a
# statement about the field, not about the width.
WIDE = (220, 50)

PIECES = [
    ("OSC 0 title", OSC_TITLE),
    ("OSC 52 clipboard", OSC_52),
    ("all", ALL_ATTACKS),
    ("C1 controls", "".join(chr(c) for c in range(0x80, 0xA0))),
    ("C0 controls", "".join(chr(c) for c in range(0x20)) + "\x7f"),
    ("bidi", BIDI),
    ("zero width", ZERO_WIDTH + "\u200e\u200f\u061c\u180e\u2061"),
]


def assert_inert(app: MailApp, where: str) -> str:
    """No foreign control reaches the terminal; returns the stream for more checks."""
    stream = terminal_stream(app)
    leaked = foreign_controls(stream)
    assert not leaked, f"{where}: raw controls reach the terminal: {leaked[:5]}"
    return stream


@pytest.mark.parametrize(("what", "text"), PIECES, ids=[p[0] for p in PIECES])
def test_every_attack_character_becomes_a_visible_placeholder(what: str, text: str) -> None:
    for out in (inert(text), inert_line(text)):
        assert not FORBIDDEN.search(out.replace("\n", "").replace("\t", "")), (what, out)
        # Nothing is dropped silently: every control leaves something to see.
        assert len(out) >= len(text.replace("\ufeff", "")), (what, out)
    assert "\n" not in inert_line(text + "\r\nX-Injected: 1")


async def test_message_list_and_folder_pane_write_no_control_sequence(tmp_path: Path) -> None:
    samples = terminal_samples()
    root = tmp_path / "Maildir"
    count = hostile_account(root, samples, HOSTILE_FOLDERS)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count)
        await pilot.pause()
        assert_inert(app, "message list")
        lines = screen_lines(app)
        # One row per message: no subject or name broke onto a second line.
        rows = [line for line in lines if "2024-01-01" in line]
        assert len(rows) == count, "\n".join(lines)
        raw = line_with(lines, "RAWSUBJ")
        assert "RAWSUBJ ␛]0;PWNED-TITLE␇␛kPWNED-WINDOW␛\\␛[2J␛[H<9B>31m␇␈<RLO>tail" in raw
        q = line_with(lines, "QSUBJ")
        assert "QSUBJ ␛]52;c;" in q and "X-Injected" not in "".join(set(lines) - {q})
        b = line_with(lines, "BSUBJ")
        assert "BSUBJ <9D>0;PWNED-C1<9C>␛]8;;https://evil.example/␛\\click" in b
        sender = line_with(lines, "NAMEMARK")
        assert "NAMEMARK ␛]0;PWNED-TITL" in sender
        # The folder pane: the hostile names, cut to the pane, shown as text.
        assert any("FOLDMARK␛]" in line for line in lines), "\n".join(lines)
        assert any("Bidi<RLO>gp" in line for line in lines), "\n".join(lines)


async def test_each_hostile_message_opens_inert_in_every_view(tmp_path: Path) -> None:
    """Every sample opened, then with all headers (h) and as raw source (E)."""
    samples = terminal_samples()
    root = tmp_path / "Maildir"
    count = hostile_account(root, samples)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count)
        for sample in samples:
            lines = await open_message(pilot, app, f"<{sample.message_id}>")
            assert_inert(app, f"{sample.what}: view")
            assert any("␛" in line or "<9D>" in line or "<RLO>" in line for line in lines), (
                f"{sample.what}: no placeholder visible\n" + "\n".join(lines)
            )
            await pilot.press("h")
            await pilot.pause()
            assert_inert(app, f"{sample.what}: all headers")
            await pilot.press("h", "E")
            await wait_for(pilot, lambda: app.main.view.show_raw)
            assert_inert(app, f"{sample.what}: raw source")
            assert any("␛" in line for line in screen_lines(app)) or "html" in sample.message_id
            await pilot.press("E", "escape")
            await wait_for(pilot, lambda: app.main.view.envelope is None)


async def test_one_line_fields_stay_on_one_line_and_bodies_show_placeholders(
    tmp_path: Path,
) -> None:
    samples = terminal_samples()
    root = tmp_path / "Maildir"
    count = hostile_account(root, samples)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count)

        lines = await open_message(pilot, app, "<q-subject@x>")
        subject = line_with(lines, "Subject: QSUBJ")
        # CR LF inside the encoded word: still the subject's line, no header of its own.
        assert "␛]52;c;cm0gLXJmIH4=␇␛]2;PWNED-TITLE2␛\\␛P+q544e␛\\" in subject
        assert "X-Injected: 1" in subject
        assert not any(line.lstrip("▕ ").startswith("X-Injected") for line in lines)
        await pilot.press("escape")

        lines = await open_message(pilot, app, "<b-subject@x>")
        subject = line_with(lines, "Subject: BSUBJ")
        assert "<ZWSP><ZWNJ><ZWJ><WJ><ZWNBSP>" in subject
        assert "<LRE><RLE><PDF><LRO><RLO><LRI><RLI><FSI><PDI>line1" in subject
        assert "line2" in subject  # the LF inside the word did not start a new line
        sender = line_with(lines, "From: NAMEMARK")
        assert "␛]0;PWNED-TITLE␇␛[31m<RLO>moc.evil" in sender and "m@x.example" in sender
        await pilot.press("escape")

        for mid in ("<qp-body@x>", "<b64-body@x>"):
            lines = await open_message(pilot, app, mid)
            text = "\n".join(lines)
            assert "BODYMARK start" in text
            for shown in (
                "␛]0;PWNED-TITLE␇",
                "␛]52;c;",
                "␛P+q544e",
                "<9B>31m",
                "<9D>0;PWNED-C1<9C>",
                "␇␈␈␈",
                "<LRE><RLE><PDF><LRO><RLO><LRI><RLI><FSI><PDI>",
                "<ZWSP><ZWNJ><ZWJ><WJ><ZWNBSP>",
                "over␈␈␈␈written",
                "invoice<RLO>gpj.exe",
            ):
                assert shown in text, f"{mid}: {shown!r} not on screen\n{text}"
            # The lone CR ended a line (as a terminal would show it) rather than moving
            # the cursor back over "line".
            assert line_with(lines, "over␈").strip(" ▕").startswith("over")
            await pilot.press("escape")

        lines = await open_message(pilot, app, "<html-body@x>")
        text = "\n".join(lines)
        assert "HTMLMARK" in text and "␛]0;PWNED-TITLE␇" in text
        # The hostile href is listed as text, never as an OSC 8 link (checked above).
        assert "https://evil.example/␛]0;x" in text


async def test_reversed_attachment_name_shows_its_real_extension(tmp_path: Path) -> None:
    samples = terminal_samples()
    root = tmp_path / "Maildir"
    count = hostile_account(root, samples)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count)
        lines = await open_message(pilot, app, "<reversed@x>")
        stream = assert_inert(app, "reversed attachment")
        assert "\u202e" not in stream
        row = line_with(lines, "invoice<RLO>gpj.exe")
        assert "(saves as invoicegpj.exe)" in row  # ends in .exe, as the file would
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, AttachmentScreen))
        stream = assert_inert(app, "attachments dialog")
        assert "\u202e" not in stream
        lines = screen_lines(app)
        row = line_with(lines, "invoice<RLO>gpj.exe")
        assert "application/octet-stream" in row
        # The name it saves under (the dialog may wrap it onto the next line).
        assert any(line.strip(" │▊▎").endswith("invoicegpj.exe") for line in lines), lines
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, AttachmentScreen))

        lines = await open_message(pilot, app, "<esc-attachment@x>")
        assert_inert(app, "attachment name with escapes")
        row = line_with(lines, "ATTMARK")
        assert "ATTMARK␛]0;PWNED-TITLE␇␛]52;c;" in row and ".pdf" in row


async def test_hostile_folder_names_are_inert_in_pane_status_and_picker(tmp_path: Path) -> None:
    samples = terminal_samples()[:1]
    root = tmp_path / "Maildir"
    hostile_account(root, samples, HOSTILE_FOLDERS)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == 1)
        await wait_for(pilot, lambda: len(app.main.folders.folder_names(ACCOUNT)) > 4)
        names = app.main.folders.folder_names(ACCOUNT)
        hostile = next(n for n in names if n.startswith("FOLDMARK"))
        app.main.open_folder(ACCOUNT, hostile)
        await wait_for(pilot, lambda: app.main.messages.count == 1)
        await pilot.pause()
        assert_inert(app, "hostile folder open")
        status = screen_lines(app)[-2]
        assert f"{ACCOUNT}/FOLDMARK␛]0;PWNED-TITLE␇␛]52;c;" in status, status
        assert "␇␊NEXTLINE" in status, status  # the name's line break, shown on its line
        assert not any(line.lstrip().startswith("NEXTLINE") for line in screen_lines(app))
        # The move picker lists every folder name, filtered or not.
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, PickerScreen))
        assert_inert(app, "move picker")
        text = "\n".join(screen_lines(app))
        assert "Bidi<RLO>gpj.exe<ZWSP>" in text
        assert "FOLDMARK" not in text  # the open folder is not a target
        await pilot.press(*"gpj")
        await pilot.pause()
        assert_inert(app, "move picker, filtered")
        assert "Bidi<RLO>gpj.exe<ZWSP>" in "\n".join(screen_lines(app))
        await pilot.press("escape")


async def test_server_alerts_reach_the_status_line_inert(tmp_path: Path) -> None:
    """`* OK [ALERT]` and `* NO` text as the worker reports it, through the bridge."""
    root = tmp_path / "Maildir"
    hostile_account(root, terminal_samples()[:1])
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == 1)
        emitted: list[ev.Event] = []
        for alert in HOSTILE_ALERTS:
            emitted += [
                ev.BackendError(account=ACCOUNT, message=alert),
                ev.Failed(account=ACCOUNT, message=alert),
                ev.ConnectionChanged(
                    account=ACCOUNT, state=ev.ConnectionState.OFFLINE, detail=alert
                ),
            ]
        for event in emitted:
            app.bridge.emit(event)
            await pilot.pause()
            assert_inert(app, f"status after {type(event).__name__}")
            shown = app.main.status.render().plain
            assert "\n" not in shown
            lines = screen_lines(app)
            status = lines[-2]
            assert "ALERTMARK" in status or "NOMARK" in status or "AlertQuit" in status, status
            if "ALERTMARK" in status:
                assert "ALERTMARK ␛]0;PWNED-TITLE␇␛]52;c;" in status
            if "NOMARK" in status:
                # The CR LF of a second response line stayed in the one status line.
                assert "NOMARK ␛P+q544e" in status
                assert not any(line.startswith("* OK injected") for line in lines)
        assert app.is_running


# --- a real terminal ----------------------------------------------------------------

ORIGINAL_TITLE = "ORIGINAL-TITLE"


class Pane(TmuxPane):
    def show(self, fmt: str, target: str = "mail") -> str:
        return self.tmux("display-message", "-p", "-t", target, fmt).strip()

    def untouched(self) -> bool:
        return (
            self.show("#{pane_title}") == ORIGINAL_TITLE
            and self.show("#{window_name}") == "mailwin"
            and self.buffers() == ""
        )

    def buffers(self) -> str:
        return self.tmux("list-buffers", "-F", "#{buffer_name}:#{buffer_sample}")


@pytest.fixture
def hostile_pane(tmp_path: Path, isolated_dirs: SimpleNamespace) -> Iterator[Pane]:
    if TMUX is None or not SCRIPT.exists():
        pytest.skip("needs tmux and the installed tui-mail script")
    root = tmp_path / "Maildir"
    hostile_account(root, terminal_samples(), HOSTILE_FOLDERS[:2])
    config = tmp_path / "config.toml"
    config.write_text(
        f'[accounts.{ACCOUNT}]\nemail = "alice@example.test"\n'
        f'[accounts.{ACCOUNT}.receive]\nbackend = "maildir"\npath = "{root}"\n'
        f'[accounts.{ACCOUNT}.send]\nbackend = "local"\npath = "{tmp_path / "sent"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    env.update(TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8", TZ="UTC")
    env["TUI_MAIL_CONFIG"] = str(config)
    socket = f"tui-mail-hostile-{os.getpid()}-{time.monotonic_ns()}"
    p = Pane(socket, env)
    setenv = [f"{k}={v}" for k, v in env.items() if k.startswith(("XDG_", "TUI_MAIL_"))]
    args = ["-f", "/dev/null", "new-session", "-d", "-s", "mail", "-x", "160", "-y", "40"]
    for item in setenv:
        args += ["-e", item]
    # A shell first, so the options below are in place before the client draws a byte.
    p.tmux(*args, "sh")
    try:
        # Every attack would work here if it got through: OSC 52 fills a paste buffer,
        # OSC 0/2 retitles the pane, ESC k renames the window.
        p.tmux("set-option", "-g", "set-clipboard", "on")
        p.tmux("set-option", "-g", "allow-rename", "on")
        p.tmux("set-option", "-g", "automatic-rename", "off")
        p.tmux("rename-window", "-t", "mail", "mailwin")
        p.tmux("select-pane", "-t", "mail", "-T", ORIGINAL_TITLE)
        yield p
    finally:
        subprocess.run([TMUX or "tmux", "-L", socket, "kill-server"], capture_output=True, env=env)
        tmpdir = os.environ.get("TMUX_TMPDIR", "/tmp")
        Path(tmpdir, f"tmux-{os.getuid()}", socket).unlink(missing_ok=True)


def test_a_real_tmux_pane_keeps_its_title_clipboard_and_screen(hostile_pane: Pane) -> None:
    pane = hostile_pane
    # The control: the same attack, printed raw in a second window of this server,
    # does retitle that pane and fill a paste buffer. Without it, an unchanged title
    # below could mean a tmux that ignores the sequences, not a client that blocks them.
    pane.tmux("new-window", "-d", "-n", "control", "-t", "mail:", "sh")
    pane.tmux("select-pane", "-t", "mail:control", "-T", ORIGINAL_TITLE)
    pane.tmux(
        "send-keys",
        "-t",
        "mail:control",
        "-l",
        r"printf '\033]0;PWNED-TITLE\007\033]52;c;cm0gLXJmIH4=\007'",
    )
    pane.tmux("send-keys", "-t", "mail:control", "Enter")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pane.show("#{pane_title}", "mail:control") != (
        "PWNED-TITLE"
    ):
        time.sleep(0.1)
    assert pane.show("#{pane_title}", "mail:control") == "PWNED-TITLE"
    assert "rm -rf ~" in pane.buffers()
    pane.tmux("kill-window", "-t", "mail:control")
    for name in [line.split(":", 1)[0] for line in pane.buffers().splitlines()]:
        pane.tmux("delete-buffer", "-b", name)
    assert pane.buffers() == ""

    pane.tmux("send-keys", "-t", "mail:mailwin", "-l", f"exec {SCRIPT}")
    pane.tmux("send-keys", "-t", "mail:mailwin", "Enter")
    # Until the list shows, or an attack got through (then say which, not "timed out").
    pane.wait(lambda s: ("RAWSUBJ" in s and "BSUBJ" in s) or not pane.untouched(), timeout=60)
    assert pane.show("#{pane_title}") == ORIGINAL_TITLE, "the list retitled the pane"
    assert pane.show("#{window_name}") == "mailwin", "the list renamed the window"
    assert pane.buffers() == "", "the list set the clipboard"
    screen = pane.capture()
    assert "RAWSUBJ ␛]0;PWNED-TITLE␇␛kPWNED-WINDOW␛\\" in screen, screen
    # Open every message (headers and body), and its raw source (every header and byte).
    count = len(terminal_samples())
    bodies = 0
    pane.keys("g")
    for n in range(count):
        pane.keys("Enter")
        screen = pane.wait(lambda s: "Subject:" in s)
        if "BODYMARK" in screen:
            bodies += 1
            for shown in ("␛]0;PWNED-TITLE␇", "␛]52;c;", "<9B>31m", "<RLO>", "<ZWSP>"):
                assert shown in screen, f"{shown!r} not on the tmux screen:\n{screen}"
        pane.keys("E")
        pane.wait(lambda s: "Raw source" in s)
        pane.keys("E")
        pane.wait(lambda s: "Subject:" in s)
        time.sleep(0.3)
        assert pane.show("#{pane_title}") == ORIGINAL_TITLE, f"message {n} retitled the pane"
        assert pane.show("#{window_name}") == "mailwin", f"message {n} renamed the window"
        assert pane.buffers() == "", f"message {n} set the clipboard"
        # ESC [2J in a body did not clear the screen: the list is still above the view.
        assert "RAWSUBJ" in pane.capture() or n == 0
        pane.keys("Escape", "j")
    assert bodies == 2  # the quoted-printable and the base64 body
    pane.keys("q")


async def test_a_reply_quotes_hostile_mail_inert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The composer shows the quoted body and the Re: subject of a hostile message."""
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", shutil.which("true") or "true")  # leaves the draft as built
    samples = terminal_samples()
    root = tmp_path / "Maildir"
    count = hostile_account(root, samples)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count)
        for mid in ("<qp-body@x>", "<q-subject@x>"):
            await open_message(pilot, app, mid)
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen))
            screen = app.screen
            assert isinstance(screen, ComposeScreen)

            def drafted(screen: ComposeScreen = screen) -> bool:
                return screen.session.draft is not None and screen.edits > 0

            await wait_for(pilot, drafted)
            assert_inert(app, f"reply to {mid}")
            text = "\n".join(screen_lines(app))
            if mid == "<qp-body@x>":
                assert "> BODYMARK start" in text and "␛]0;PWNED-TITLE␇" in text, text
            else:
                # The subject of a reply is one header line: controls became spaces.
                assert line_with(screen_lines(app), "Re: QSUBJ")
            await pilot.press("q")
            await pilot.pause()
            await pilot.press("y")  # "Discard this message?"
            await wait_for(pilot, lambda: not isinstance(app.screen, ComposeScreen))
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.main.view.envelope is None)
