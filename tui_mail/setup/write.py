"""Add an account to config.toml without disturbing anything already in it.

The user's file is kept byte for byte: the new `[accounts.NAME]` tables are
rendered by tomlkit and appended (so the new account is also listed last).
Only when appending cannot work (an inline `accounts = {...}`) does tomlkit
merge the account into the parsed document, which still keeps comments.

The result is written to a temporary file beside the config (same file
system, so the rename is atomic), fsynced, validated with `load_config` (what
`tui-mail config check` runs), and only then renamed over the original. A
failure at any point leaves the original untouched and no temporary behind.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import stat
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import InlineTable, Table

from tui_mail.config.load import load_config, parse_config
from tui_mail.config.schema import AppConfig
from tui_mail.core.errors import ConfigError, MailError

HEADER = """\
# tui-mail configuration, written by `tui-mail setup`.
# `tui-mail config init` writes a template that explains every key;
# `tui-mail config check` validates this file.
"""


class WriteError(MailError):
    """The config could not be written; the original file is unchanged."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def account_table(
    fields: Mapping[str, Any],
    receive: Mapping[str, Any],
    send: Mapping[str, Any],
    comment: str | None = None,
) -> Table:
    """`[accounts.NAME]` with its receive and send sub-tables, keys in the given order."""
    table = tomlkit.table()
    if comment:
        table.add(tomlkit.comment(comment))
    for key, value in fields.items():
        table.add(key, value)
    for role, values in (("receive", receive), ("send", send)):
        sub = tomlkit.table()
        for key, value in values.items():
            sub.add(key, str(value) if isinstance(value, Path) else value)
        table.add(role, sub)
    return table


def _render(name: str, table: Table) -> str:
    doc = tomlkit.document()
    accounts = tomlkit.table(is_super_table=True)
    accounts.add(name, table)
    doc.add("accounts", accounts)
    return tomlkit.dumps(doc)


def merge_account(original: str | None, name: str, table: Table) -> str:
    """The config text with account `name` added; raises WriteError if it exists."""
    if original is None or not original.strip():
        return HEADER + "\n" + _render(name, table)
    try:
        doc = tomlkit.parse(original)
    except TOMLKitError as exc:
        raise WriteError(
            f"the existing config is not valid TOML ({exc})",
            "fix it first (`tui-mail config check` shows where), then run setup again",
        ) from None
    accounts = doc.get("accounts")
    if isinstance(accounts, Mapping) and name in accounts:
        raise WriteError(
            f"an account named {name!r} already exists", "choose another name with --account"
        )
    block = _render(name, table)
    appended = original + ("" if original.endswith("\n") else "\n") + "\n" + block
    if _adds_exactly(original, appended, name):
        return appended
    # Appending is not valid TOML here (e.g. `accounts = { ... }` inline): merge instead.
    try:
        if accounts is None:
            doc.add("accounts", tomlkit.table(is_super_table=True))
            accounts = doc["accounts"]
        # An inline table can only hold inline tables (and loses the comment).
        inline = isinstance(accounts, InlineTable)
        accounts[name] = _inline(table) if inline else table  # type: ignore[index]
        merged = tomlkit.dumps(doc)
    except (TOMLKitError, TypeError, ValueError):
        merged = ""
    if merged and _adds_exactly(original, merged, name):
        return merged
    raise WriteError(
        "cannot add the account to your config automatically",
        "add these lines to it by hand:\n" + block,
    )


def _inline(table: Mapping[str, Any]) -> InlineTable:
    out = tomlkit.inline_table()
    for key, value in table.items():
        out[key] = _inline(value) if isinstance(value, Mapping) else value
    return out


def _adds_exactly(original: str, new: str, name: str) -> bool:
    """`new` parses, and differs from `original` only by the account `name`."""
    try:
        before = tomllib.loads(original)
        after = tomllib.loads(new)
    except tomllib.TOMLDecodeError:
        return False
    added = after.get("accounts", {}).pop(name, None)
    if not after.get("accounts") and "accounts" not in before:
        after.pop("accounts", None)
    return added is not None and after == before


def check_existing(path: Path) -> str | None:
    """The current config text (None when there is none); WriteError if it has an error.

    A config with no account yet (what `config init` writes) is fine: setup fills it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise WriteError(f"cannot read {path}: {exc}") from None
    try:
        parse_config(text, path)
    except ConfigError as exc:
        if exc.key == "accounts" and exc.detail.startswith("no accounts configured"):
            return text
        raise WriteError(
            f"the existing config has an error: {exc}",
            "fix it first (`tui-mail config check`), then run setup again; nothing was changed",
        ) from None
    return text


def existing_accounts(path: Path) -> list[str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    accounts = data.get("accounts")
    return list(accounts) if isinstance(accounts, dict) else []


def add_account(path: Path, name: str, table: Table, *, private: bool) -> AppConfig:
    """Merge, write atomically, validate; the loaded config on success.

    `private` (a password is in the file) forces mode 0600; otherwise an
    existing file keeps its mode and a new one gets 0600.
    """
    original = check_existing(path)
    text = merge_account(original, name, table)
    return write_validated(path, text, private=private)


def write_validated(path: Path, text: str, *, private: bool) -> AppConfig:
    # A symlinked config (dotfile managers) stays a symlink: write its target.
    target = path.resolve() if path.is_symlink() else path
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        mode = 0o600 if private else stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            load_config(tmp)  # exactly what `tui-mail config check` runs
        except ConfigError as exc:
            raise WriteError(
                f"the new config did not validate, so it was not written: "
                f"{ConfigError(exc.detail, file=str(path), key=exc.key, line=exc.line)}",
                "this is a bug in tui-mail setup; please report it with the message above",
            ) from None
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)
    return load_config(path)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def setup_comment(source: str) -> str:
    today = datetime.date.today().isoformat()
    return f"added by `tui-mail setup` on {today} (servers found by {source})"
