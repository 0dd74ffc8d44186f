"""The composer's state and the parts of composing that are not widgets.

A `ComposeSession` holds the text the user edits (the headers-as-text form of
`compose.headers_text`) together with the `Draft` it was rendered from, because the
text's "Attach: #N" lines and the hidden threading headers refer to that draft. The
text is the source of truth: it is what goes back into the editor, so a draft whose
headers do not parse is never lost, only shown with its error.

The external editor runs on a file in a fresh private directory (mkdtemp: mode 0700)
that is removed afterwards; its argv comes from `shlex.split($VISUAL or $EDITOR)` plus
the file name, never a shell string, so nothing from a message reaches a shell.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from msgspec import Struct, field
from msgspec.structs import replace

from tui_mail.compose.build import (
    ComposeError,
    Draft,
    build_message,
    header_fields,
    message_bytes,
    parse_address_list,
)
from tui_mail.compose.headers_text import DraftError, parse_draft, render_draft
from tui_mail.compose.reply import (
    forward_attached,
    forward_inline,
    new_message,
    parse_original,
    reply,
)
from tui_mail.config.schema import AccountConfig
from tui_mail.core.models import MessageRef

MODES = ("new", "reply", "reply_all", "forward", "forward_attached", "resume")
MODE_TITLES = {
    "new": "New message",
    "reply": "Reply",
    "reply_all": "Reply to all",
    "forward": "Forward",
    "forward_attached": "Forward as attachment",
    "resume": "Draft",
}


def draft_from_message(raw: bytes) -> Draft:
    """A stored message (a postponed draft, or a message to "edit as new") as a Draft.

    In-Reply-To and References carry over, so a resumed reply stays in its thread; Bcc
    is read too, since a draft we saved keeps it.
    """
    original = parse_original(raw)
    bcc = tuple(
        a
        for name, value in header_fields(raw)
        if name.lower() == "bcc"
        for a in parse_address_list(value, "Bcc", strict=False)
    )
    return Draft(
        to=original.to,
        cc=original.cc,
        bcc=bcc,
        subject=original.subject,
        body=original.text,
        from_=original.from_[0] if original.from_ else None,
        reply_to=original.reply_to,
        attachments=original.attachments,
        in_reply_to=original.in_reply_to,
        references=original.references,
    )


def initial_draft(mode: str, account: AccountConfig, raw: bytes | None) -> Draft:
    """The draft a compose `mode` starts from; `raw` is the message it refers to."""
    if mode == "new" or raw is None:
        if mode != "new":
            raise ComposeError(f"{MODE_TITLES.get(mode, mode)}: no message selected")
        return new_message(account)
    if mode == "reply":
        return reply(raw, account)
    if mode == "reply_all":
        return reply(raw, account, reply_all=True)
    if mode == "forward":
        return forward_inline(raw, account)
    if mode == "forward_attached":
        return forward_attached(raw, account)
    if mode == "resume":
        return draft_from_message(raw)
    raise ComposeError(f"unknown compose mode {mode!r}")


class ComposeSession(Struct):
    """One message being composed, from the first edit until it is sent or saved."""

    account: AccountConfig
    mode: str
    base: Draft  # what `text` was rendered from ("Attach: #N" refers to its attachments)
    text: str
    replaces: MessageRef | None = None  # the postponed draft this one supersedes
    source: MessageRef | None = None  # the message replied to / forwarded (gets flagged)
    error: str = ""  # why the text cannot be used as it stands (shown, never lost)
    error_line: int = 0
    draft: Draft | None = field(default=None)  # the parsed text, when it parses

    @classmethod
    def start(
        cls,
        account: AccountConfig,
        mode: str,
        draft: Draft,
        *,
        replaces: MessageRef | None = None,
        source: MessageRef | None = None,
    ) -> ComposeSession:
        session = cls(account, mode, draft, render_draft(draft), replaces, source)
        session.update(session.text)
        return session

    def update(self, text: str) -> bool:
        """Take the edited text; False (with `error` set) when it does not parse."""
        self.text = text
        parsed = parse_draft(text, self.base)
        if isinstance(parsed, DraftError):
            self.draft = None
            self.error, self.error_line = _describe(parsed, text), parsed.line
            return False
        self.draft = parsed
        self.error, self.error_line = "", 0
        return True

    def fail(self, message: str) -> None:
        """A problem found later (building, sending): shown, the text kept as it is."""
        self.error, self.error_line = message, 0

    def attach(self, path: str) -> None:
        """Add a file (checked now, read again at send time); raises ComposeError."""
        if self.draft is None:
            raise ComposeError("fix the draft first (e edits it)")
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            why = "it is a directory" if file.is_dir() else "no such file"
            raise ComposeError(f"cannot attach {file}: {why}")
        try:  # readable now; its content is read when the message is built
            with file.open("rb"):
                pass
        except OSError as exc:
            raise EditorUnavailable(f"cannot attach {file}: {exc.strerror or exc}") from None
        draft = replace(self.draft, attach_paths=(*self.draft.attach_paths, file))
        self.base = draft
        self.update(render_draft(draft))

    def message(self, *, require_recipients: bool = True) -> tuple[bytes, str]:
        """(the message bytes, its Message-ID); raises ComposeError."""
        if self.draft is None:
            raise ComposeError(self.error or "the draft cannot be read")
        msg = build_message(self.draft, self.account, require_recipients=require_recipients)
        return message_bytes(msg), str(msg["Message-ID"])


def _describe(error: DraftError, text: str) -> str:
    """The parse error with the offending line quoted, so it can be found at a glance."""
    lines = text.replace("\r\n", "\n").split("\n")
    if not error.part and 1 <= error.line <= len(lines):  # the message names no part
        bad = lines[error.line - 1].strip()
        if bad and bad not in str(error):
            return f"{error}: {bad[:60]}"
    return str(error)


# --------------------------------------------------------------------------- the editor


def editor_argv() -> list[str] | None:
    """The user's editor command ($VISUAL, then $EDITOR, as mutt and git read them),
    split like a shell would but never run by one; None when neither is set."""
    for name in ("VISUAL", "EDITOR"):
        value = os.environ.get(name, "").strip()
        if value:
            try:
                argv = shlex.split(value)
            except ValueError as exc:
                raise ComposeError(f"${name} cannot be read ({exc}): {value!r}") from None
            if argv:
                return argv
    return None


class DraftFile:
    """The draft text in a file only the user can read, in a directory of its own.

    A directory of our own (not a fixed name in /tmp) so no other user can plant a
    symlink or read the draft; editors that write a backup or swap file next to it
    leave nothing behind either, since the whole directory goes afterwards.
    """

    def __init__(self, text: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tui-mail-"))
        # .eml: vim, emacs and others switch to their mail mode (wrapping, quoting).
        self.path = self.dir / "draft.eml"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)

    def read(self) -> str:
        # An editor set to another encoding must not lose the draft: undecodable
        # bytes become U+FFFD, visible in the review screen.
        return self.path.read_bytes().decode("utf-8", errors="replace")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class EditorUnavailable(ComposeError):
    """The editor command could not be started at all (not found, not executable)."""


def run_editor(argv: list[str], text: str) -> str:
    """Run the editor on `text` (blocking) and return what it saved.

    Raises ComposeError when it cannot be started or exits with an error (vim's :cq
    is the usual way to say "abandon these changes"); the caller keeps the old text.
    """
    file = DraftFile(text)
    try:
        try:
            done = subprocess.run([*argv, str(file.path)], check=False)
        except OSError as exc:
            raise EditorUnavailable(
                f"cannot run the editor {argv[0]!r}: {exc.strerror or exc}"
            ) from None
        if done.returncode != 0:
            raise ComposeError(
                f"the editor exited with status {done.returncode}; its changes were not taken"
            )
        return file.read()
    finally:
        file.remove()
