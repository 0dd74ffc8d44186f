"""Fixtures shared by the fault tests of this folder (crash, lost state, fsck)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture
def fast_data(isolated_dirs: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The store on tmpfs when there is one: thousands of fsynced files otherwise
    make these tests many times slower. Modules opt in with usefixtures."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield Path(isolated_dirs.data)
        return
    d = Path(tempfile.mkdtemp(prefix="tui-mail-faults.", dir=shm))
    monkeypatch.setenv("XDG_DATA_HOME", str(d))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
