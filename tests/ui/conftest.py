"""Fixtures for the Pilot tests: the real demo account, built once per session.

`demo_config` copies a session-wide demo (Maildir + index) into this test's
own XDG data dir (set by the top-level `isolated_dirs` fixture), so a test
that marks a message read or delivers one never affects another test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pilot_helpers import EventLog

from tui_mail.config.schema import AppConfig
from tui_mail.demo.setup import ensure_demo


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("demo-template")
    mp = pytest.MonkeyPatch()
    try:
        for name in ("config", "data", "state", "cache"):
            d = base / name
            d.mkdir()
            mp.setenv(f"XDG_{name.upper()}_HOME", str(d))
        ensure_demo()
    finally:
        mp.undo()
    return base / "data"


@pytest.fixture
def demo_config(demo_template: Path, isolated_dirs) -> AppConfig:
    shutil.copytree(demo_template, isolated_dirs.data, dirs_exist_ok=True)
    return ensure_demo()  # already complete: only a rescan


@pytest.fixture
def event_log() -> EventLog:
    return EventLog()
