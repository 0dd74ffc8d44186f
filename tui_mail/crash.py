"""Where unexpected errors go: a file for the bug report, one line for the user."""

from __future__ import annotations

import traceback
from datetime import datetime
from pathlib import Path

from tui_mail import paths
from tui_mail.core.redact import redact


def write_crash_report(error: BaseException | None = None) -> Path | str:
    """Save the current (or given) exception's traceback; return where it went."""
    try:
        crash_dir = paths.state_dir()
        crash_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        crash = crash_dir / f"crash-{stamp}.txt"
        text = (
            "".join(traceback.format_exception(error))
            if error is not None
            else traceback.format_exc()
        )
        crash.write_text(redact(text))  # a bug may have put a password in a message
        return crash
    except OSError:
        return "(no writable state directory)"


def crash_message(where: Path | str) -> str:
    return f"tui-mail: internal error; details were written to {where}. Please report it."
