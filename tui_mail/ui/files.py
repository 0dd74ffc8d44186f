"""Saving and opening attachments: the only places the UI writes files for the user.

Pure (no Textual). Names that came from mail go through `safe_filename`, so a
hostile name cannot climb out of the chosen folder; files are created with
`O_EXCL | O_NOFOLLOW`, so an existing file is never replaced unless the user
said so, and a symlink planted at the target is never followed, even then.
Opening runs an argument list (never a shell) on a copy in a private 0700
temporary folder.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tui_mail.core.sanitize import safe_filename


class SaveError(Exception):
    """A save that did not happen; the message is for the status line."""


class TargetExists(SaveError):
    """The file is already there: ask before replacing it."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} already exists")
        self.path = path


def default_save_dir(configured: str = "") -> Path:
    if configured:
        return Path(configured).expanduser()
    downloads = Path.home() / "Downloads"
    return downloads if downloads.is_dir() else Path.home()


def target_path(folder: str | Path, filename: str | None) -> Path:
    """Where an attachment would be saved: the folder plus its safe name."""
    return Path(folder).expanduser() / safe_filename(filename)


def save_attachment(data: bytes, target: Path, *, overwrite: bool = False) -> Path:
    """Write `data` to `target`; `TargetExists` unless `overwrite`; never through a symlink."""
    folder = target.parent
    if not folder.is_dir():
        raise SaveError(f"{folder} is not a folder")
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise SaveError(f"{target}: {exc.strerror}") from exc
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise SaveError(f"{target} is a symbolic link; not writing through it")
        if not stat.S_ISREG(st.st_mode):
            raise SaveError(f"{target} exists and is not a regular file")
        if not overwrite:
            raise TargetExists(target)
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    # O_EXCL when the user did not agree to replace: a file that appeared since the
    # check above (or a symlink someone raced in) makes this fail instead of winning.
    flags |= os.O_TRUNC if overwrite and st is not None else os.O_EXCL
    try:
        fd = os.open(target, flags, 0o644)
    except FileExistsError:
        raise TargetExists(target) from None
    except OSError as exc:
        raise SaveError(f"{target}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise SaveError(f"{target}: {exc.strerror}") from exc
    return target


def command_for(command: Sequence[str], path: Path) -> list[str]:
    """The argument list to run: "{}" items become the path, else it is appended."""
    args = [str(a) for a in command]
    if any(a == "{}" for a in args):
        return [str(path) if a == "{}" else a for a in args]
    return [*args, str(path)]


class TempFiles:
    """Private temp folders for opened attachments, removed when the app exits.

    A viewer started by xdg-open usually reads the file after our child has
    exited, so the copy must outlive the command; it goes at quit instead.
    """

    def __init__(self) -> None:
        self.dirs: list[Path] = []

    def write(self, data: bytes, filename: str | None) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="tui-mail-"))  # mode 0700
        self.dirs.append(folder)
        return save_attachment(data, folder / safe_filename(filename))

    def cleanup(self) -> None:
        for folder in self.dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self.dirs.clear()


def open_with(command: Sequence[str], path: Path) -> subprocess.Popen[bytes]:
    """Start the configured program on `path`, detached from our terminal.

    No shell is involved, and the program gets no access to the TUI's
    terminal (stdin/stdout/stderr to /dev/null), so it cannot corrupt the screen.
    """
    if not command:
        raise SaveError('no [ui] open_command configured (for example ["xdg-open"])')
    args = command_for(command, path)
    try:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise SaveError(f"cannot run {args[0]}: {exc.strerror or exc}") from exc
