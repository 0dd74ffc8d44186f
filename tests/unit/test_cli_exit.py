"""How the `tui-mail` command ends (cli.run): flushed output, the exit code, no
traceback, whatever the state of its standard streams."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _tui_mail(*args: str, close_stdout: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui_mail", *args],
        capture_output=not close_stdout,
        stdout=subprocess.DEVNULL if close_stdout else None,
        stderr=subprocess.PIPE if close_stdout else None,
        text=True,
        timeout=60,
        env=os.environ.copy(),
        # Started with descriptor 1 closed, as some daemons and cron wrappers do.
        preexec_fn=(lambda: os.close(1)) if close_stdout else None,
    )


def test_output_is_flushed_and_the_code_kept(tmp_path: Path) -> None:
    done = _tui_mail("--config", str(tmp_path / "config.toml"), "config", "path")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "config.toml")  # printed, not lost
    missing = _tui_mail("--config", str(tmp_path / "nope.toml"), "sync")
    assert missing.returncode != 0 and "nope.toml" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_closed_stdout_is_no_traceback(tmp_path: Path) -> None:
    done = _tui_mail("--config", str(tmp_path / "config.toml"), "config", "path", close_stdout=True)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
