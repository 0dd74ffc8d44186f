"""Where things live on disk. Every other module asks here."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "tui-mail"
CONFIG_ENV = "TUI_MAIL_CONFIG"


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config wins, then $TUI_MAIL_CONFIG, then the platform default."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    return default_config_path()


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP_NAME))


def mail_root(account: str) -> Path:
    """The Maildir++ root of an account whose mail we download ourselves."""
    return data_dir() / "mail" / account


def index_path() -> Path:
    """One SQLite index for all accounts, so unified views are one query."""
    return data_dir() / "index.sqlite3"


def demo_root() -> Path:
    return mail_root("demo")


def download_record_path() -> Path:
    """Which server messages were ever stored; kept apart from the rebuildable index."""
    return data_dir() / "downloaded.sqlite3"
