"""A tmux pane driven from a test: send-keys in, capture-pane out, on a private socket.

Shared by the TUI's real-terminal test (tests/ui/test_tmux.py) and the terminal
safety test (tests/hostile/test_terminal_safety.py). Not a test module itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

TMUX = shutil.which("tmux")
SCRIPT = Path(sys.executable).parent / "tui-mail"


class Pane:
    """The window "mail" of a tmux server on its own socket (`-L socket`)."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            [TMUX or "tmux", "-L", self.socket, *args],
            check=True,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=20,
        ).stdout

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "mail")

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "mail", key)
            time.sleep(0.15)  # one key per frame, as a person types

    def wait(self, condition: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            try:
                text = self.capture()
            except subprocess.CalledProcessError:
                text = ""
            if condition(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"timed out; the pane shows:\n{text}")

    def alive(self) -> bool:
        result = subprocess.run(
            [TMUX or "tmux", "-L", self.socket, "has-session", "-t", "mail"],
            capture_output=True,
            env=self.env,
        )
        return result.returncode == 0
