"""The installed `tui-mail demo` in a real tmux pane: send-keys in, capture-pane out.

This is the one test that goes through a real terminal (tmux's), the real
console script, the real Textual driver and the real worker, as a user on a
server would. Its own tmux socket and its own XDG folders keep it away from
any other tmux server and from the user's mail.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tmux_pane import SCRIPT, TMUX, Pane

from tui_mail import paths
from tui_mail.store.index import MailIndex

pytestmark = pytest.mark.skipif(
    TMUX is None or not SCRIPT.exists(), reason="needs tmux and the installed tui-mail script"
)


@pytest.fixture
def pane(isolated_dirs) -> Iterator[Pane]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    env.update(TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8", TZ="UTC")
    socket = f"tui-mail-test-{os.getpid()}-{time.monotonic_ns()}"
    p = Pane(socket, env)
    xdg = [f"{k}={v}" for k, v in env.items() if k.startswith("XDG_")]
    args = ["new-session", "-d", "-s", "mail", "-x", "80", "-y", "24"]
    for item in xdg:
        args += ["-e", item]
    p.tmux(*args, f"{SCRIPT} demo")
    try:
        yield p
    finally:
        subprocess.run([TMUX or "tmux", "-L", socket, "kill-server"], capture_output=True, env=env)
        tmpdir = os.environ.get("TMUX_TMPDIR", "/tmp")
        Path(tmpdir, f"tmux-{os.getuid()}", socket).unlink(missing_ok=True)


def flags_on_disk(message_id: str) -> str:
    index = MailIndex.open(paths.index_path())
    try:
        ref = index.find_by_message_id("demo", message_id)[0]
        info = index.file_info("demo", ref.folder, ref.key)
        return info.flags if info else ""
    finally:
        index.close()


def test_demo_in_a_real_tmux_pane(pane: Pane) -> None:
    screen = pane.wait(lambda s: "demo/INBOX" in s and "Parcel Tracking" in s, timeout=60)
    lines = screen.splitlines()
    assert lines[0].startswith("demo") and "INBOX" in lines[1]
    assert "\x1b" not in screen
    # A flag toggle on the second row reaches the Maildir through the worker.
    pane.keys("j", "s")
    screen = pane.wait(lambda s: "1 message flagged" in s)
    row = screen.splitlines()[1]
    assert row.split("▕", 1)[1][3] == "F", row
    index = MailIndex.open(paths.index_path())
    try:
        env = index.page("demo", "INBOX", 1, 1)[0]
    finally:
        index.close()
    assert "F" in flags_on_disk(env.message_id)
    # Help lists the keys; Esc closes it.
    pane.keys("?")
    pane.wait(lambda s: "Keys (vim preset" in s)
    pane.keys("Escape")
    pane.wait(lambda s: "Keys (vim preset" not in s and "demo/INBOX" in s)
    # Open the message (the view replaces the list at 24 rows) and go back.
    pane.keys("Enter")
    pane.wait(lambda s: "From:" in s and "Subject:" in s)
    pane.keys("q")
    pane.wait(lambda s: "From:" not in s and "demo/INBOX" in s)
    # Search, then quit.
    pane.keys("/")
    pane.wait(lambda s: "Search all accounts" in s)
    pane.tmux("send-keys", "-t", "mail", "-l", "parcel")
    pane.keys("Enter")
    pane.wait(lambda s: "search: parcel" in s)
    pane.keys("Escape", "q")
    deadline = time.monotonic() + 15
    while pane.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pane.alive(), "q did not quit"
