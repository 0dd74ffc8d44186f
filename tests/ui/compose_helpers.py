"""Helpers for the composer's Pilot tests: a scripted $EDITOR and index look-ups."""

from __future__ import annotations

import shlex
import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from tui_mail import paths
from tui_mail.core.models import Envelope
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex

# The "editor": sets To/Subject when EDIT_TO/EDIT_SUBJECT are set, appends EDIT_BODY to
# the text, and logs what it was given (path, modes, the text) to EDIT_LOG.
EDITOR_SCRIPT = r"""
import json, os, stat, sys
path = sys.argv[-1]
text = open(path, encoding="utf-8").read()
log = os.environ.get("EDIT_LOG")
if log:
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps({
            "argv": sys.argv[1:],
            "path": path,
            "file_mode": stat.S_IMODE(os.stat(path).st_mode),
            "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode),
            "text": text,
        }) + "\n")
head, sep, body = text.partition("\n\n")
lines = head.split("\n")
for name in ("To", "Subject"):
    value = os.environ.get("EDIT_" + name.upper())
    if value is not None:
        lines = [f"{name}: {value}" if l.startswith(name + ":") else l for l in lines]
extra = os.environ.get("EDIT_BODY", "")
body = (extra + "\n" + body) if extra else body
with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n\n" + body)
sys.exit(int(os.environ.get("EDIT_EXIT", "0")))
"""


def install_editor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Set $EDITOR to the script (and clear $VISUAL, which would win); returns the log."""
    script = tmp_path / "editor.py"
    script.write_text(EDITOR_SCRIPT)
    log = tmp_path / "editor.log"
    monkeypatch.delenv("VISUAL", raising=False)
    # A path with a space: the command is split like a shell would, never run by one.
    monkeypatch.setenv("EDITOR", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} -x")
    monkeypatch.setenv("EDIT_LOG", str(log))
    for name in ("EDIT_TO", "EDIT_SUBJECT", "EDIT_BODY", "EDIT_EXIT"):
        monkeypatch.delenv(name, raising=False)
    return log


def rows(folder: str, account: str = "demo") -> list[Envelope]:
    index = MailIndex.open(paths.index_path())
    try:
        return list(index.page(account, folder, 0, 10_000))
    except Exception:
        return []  # the folder does not exist yet
    finally:
        index.close()


def with_subject(folder: str, subject: str) -> list[Envelope]:
    return [env for env in rows(folder) if env.subject == subject]


def read_message(env: Envelope) -> EmailMessage:
    index = MailIndex.open(paths.index_path())
    try:
        raw = AccountStore(env.ref.account, paths.demo_root(), index).read(env.ref)
    finally:
        index.close()
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def body_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def notice(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.main.status.notice)
