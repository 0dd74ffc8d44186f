"""Merging an account into config.toml: comments and accounts kept, all or nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tui_mail.config.load import load_config
from tui_mail.config.template import write_template
from tui_mail.setup import write as writer
from tui_mail.setup.write import WriteError, account_table, add_account, merge_account

EXISTING = """\
# My mail setup -- do not lose this comment.
[ui]
theme = "default"   # aligned comment, odd spacing kept

# Work: the important one
[accounts.work]
email = "me@work.example"
signature = "-- \\nMe"

[accounts.work.receive]
backend = "maildir"
path = "~/Maildir-work"  # synced by mbsync

[keys]
sync_now = ["ctrl+r", "f5"]

# Home, defined after [keys] on purpose
[accounts.home]
email = "me@home.example"

[accounts.home.receive]
backend = "maildir"
path = "~/Maildir-home"
# trailing comment without a newline at the end"""


def third(port: int = 993, backend: str = "imap", password: str | None = None):
    receive: dict[str, object] = {
        "backend": backend,
        "host": "imap.example.com",
        "port": port,
        "security": "tls",
        "user": "me@example.com",
    }
    if password is None:
        receive["password_command"] = "pass show mail/new"
    else:
        receive["password"] = password
    send = {
        "backend": "smtp",
        "host": "smtp.example.com",
        "port": 465,
        "security": "tls",
        "user": "me@example.com",
        "password_command": "pass show mail/new",
    }
    return account_table({"email": "me@example.com", "name": "Me"}, receive, send, "added")


def test_third_account_keeps_comments_and_both_accounts(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(EXISTING)
    path.chmod(0o640)
    cfg = add_account(path, "new", third(), private=False)
    text = path.read_text()
    assert text.startswith(EXISTING + "\n")  # every byte of the user's file, untouched
    assert "# added\n" in text
    assert list(cfg.accounts) == ["work", "home", "new"]
    new = cfg.accounts["new"]
    assert (new.receive.backend, new.receive.host, new.receive.port) == (
        "imap",
        "imap.example.com",
        993,
    )
    assert new.send.password_command == "pass show mail/new"
    assert new.display_name == "Me"
    assert cfg.accounts["work"].signature == "-- \nMe"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # no password in it: mode kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "xdg"]


def test_password_in_the_file_forces_0600(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(EXISTING)
    path.chmod(0o644)
    cfg = add_account(path, "new", third(password='se"cret\\'), private=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cfg.accounts["new"].receive.password == 'se"cret\\'
    assert not cfg.warnings


def test_new_file_and_template_file(tmp_path: Path) -> None:
    fresh = tmp_path / "sub" / "config.toml"
    cfg = add_account(fresh, "new", third(), private=False)
    assert list(cfg.accounts) == ["new"]
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert fresh.read_text().startswith("# tui-mail configuration, written by `tui-mail setup`")

    template = tmp_path / "template.toml"
    write_template(template)
    original = template.read_text()
    cfg = add_account(template, "new", third(), private=False)
    assert template.read_text().startswith(original)
    assert list(cfg.accounts) == ["new"]


def test_existing_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="already exists"):
        merge_account(EXISTING, "home", third())


def test_invalid_result_keeps_the_original(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(EXISTING)
    before = path.stat()
    # Port 143 with security "tls" is refused by the validator.
    with pytest.raises(WriteError, match="did not validate"):
        add_account(path, "new", third(port=143), private=False)
    assert path.read_text() == EXISTING
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "xdg"]


def test_a_crash_while_writing_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(EXISTING)

    def boom(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.os, "fsync", boom)
    with pytest.raises(OSError):
        add_account(path, "new", third(), private=False)
    assert path.read_text() == EXISTING
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "xdg"]


def test_broken_existing_config_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    broken = EXISTING.replace('theme = "default"', "theme = default")
    path.write_text(broken)
    with pytest.raises(WriteError, match="existing config"):
        add_account(path, "new", third(), private=False)
    assert path.read_text() == broken


def test_symlinked_config_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "tui-mail.toml"
    real.parent.mkdir()
    real.write_text(EXISTING)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    add_account(link, "new", third(), private=False)
    assert link.is_symlink()
    assert "[accounts.new]" in real.read_text()
    assert list(load_config(link).accounts) == ["work", "home", "new"]


def test_inline_accounts_table_is_merged_by_tomlkit() -> None:
    original = (
        "# inline style\n"
        'accounts = { home = { email = "h@x.example", '
        'receive = { backend = "maildir", path = "~/M" } } }\n'
    )
    text = merge_account(original, "new", third())
    assert text.startswith("# inline style\n")
    cfg_path = Path(os.devnull)  # only parsed, never read from disk
    from tui_mail.config.load import parse_config

    cfg = parse_config(text, cfg_path)
    assert list(cfg.accounts) == ["home", "new"]
