"""A bug in a Textual handler ends the app with one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_handler_bug_prints_one_line_and_writes_a_crash_file(tmp_path: Path) -> None:
    script = tmp_path / "boom.py"
    script.write_text(
        "from tui_mail.ui.app import MailApp\n"
        "from tui_mail.demo.setup import demo_config\n"
        "import pathlib, tui_mail.ui.app as ui_app\n"
        "class Boom(MailApp):\n"
        "    CSS_PATH = str(pathlib.Path(ui_app.__file__).parent / 'styles/app.tcss')\n"
        "    def on_mount(self):\n"
        "        raise RuntimeError('secret-message-body')\n"
        "app = Boom(demo_config(), start_runtime=False)\n"
        "app.run(headless=True)\n"
        "raise SystemExit(app.return_code)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output and "secret-message-body" not in output
    assert "internal error" in output
    assert output.count("internal error") == 1
    crashes = (Path(os.environ["XDG_STATE_HOME"]) / "tui-mail").glob("crash-*.txt")
    assert any("secret-message-body" in c.read_text() for c in crashes)
