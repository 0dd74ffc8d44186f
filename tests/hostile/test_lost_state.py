"""Lost local state and two syncs at once, against the real Dovecot (the rest of the
crash and fault suite is test_crash_faults.py): after each, a normal run loses
nothing, duplicates nothing and pushes no deletion the user did not make.

`tui-mail` runs as a child process, as a user runs it, and is SIGKILLed at chosen
points; links are cut after N bytes by a relay in front of the real server
(faults.CutProxy); the disk fills up on a small tmpfs. The server's own Maildir on
disk is the oracle for what must be there (faults.assert_mirror).
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.harness import Mailstack, reset_user_mail

from .faults import (
    ALICE,
    BOB,
    assert_mirror,
    count_files,
    imap_config,
    index_file,
    load,
    local_root,
    ok,
    spawn,
    tm,
    wait_for,
)

pytestmark = [pytest.mark.servers, pytest.mark.usefixtures("fast_data")]


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    for user in (ALICE, BOB):
        reset_user_mail(mailstack, user)
    yield mailstack


# --------------------------------------------------------------------------- lost local state


@pytest.mark.parametrize(
    "damage", ["truncate-index", "garbage-index", "delete-index", "delete-maildir", "delete-files"]
)
def test_lost_local_state_recovers_and_deletes_nothing_on_the_server(
    ms: Mailstack, tmp_path: Path, damage: str
) -> None:
    load(ms, ALICE, "INBOX", 300, 0)
    load(ms, ALICE, "Work", 100, 5000)
    config = imap_config(tmp_path, ms, ALICE)
    ok(tm(config, "sync"))
    root = local_root(ALICE)
    index = index_file()
    if damage == "truncate-index":
        with open(index, "r+b") as f:
            f.truncate(index.stat().st_size // 2)
    elif damage == "garbage-index":
        index.write_bytes(b"\x00garbage" * 1000)
    elif damage == "delete-index":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{index}{suffix}").unlink(missing_ok=True)
    elif damage == "delete-maildir":
        shutil.rmtree(root)
    else:
        for folder, step in (("INBOX", 15), ("Work", 10)):
            base = root if folder == "INBOX" else root / ".Work"
            for path in sorted((base / "cur").iterdir())[::step]:
                path.unlink()  # removed behind tui-mail's back, not deleted by the user
    out = ok(tm(config, "sync"))
    assert "error" not in out, out
    # Every message still on the server (nothing expunged), and once here again.
    assert_mirror(ms, ALICE, "INBOX", 300)
    assert_mirror(ms, ALICE, "Work", 100)
    assert "sync done: 0 new, 0 removed" in ok(tm(config, "sync"))
    ok(tm(config, "fsck", "--server"))


# --------------------------------------------------------------------------- two at once


def test_two_syncs_of_one_account_the_second_refuses(ms: Mailstack, tmp_path: Path) -> None:
    load(ms, ALICE, "INBOX", 300, 0)
    config = imap_config(tmp_path, ms, ALICE)
    root = local_root(ALICE)
    first = spawn(config, "sync", "--watch", "--interval", "30")
    try:
        wait_for(lambda: count_files(root) >= 1, 30, "the first sync to start")
        second = tm(config, "sync")
        assert second.returncode == 1
        assert f"locked by process {first.pid}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        repair = tm(config, "fsck", "--repair")
        assert repair.returncode == 1 and "locked by process" in repair.stderr, repair
        wait_for(lambda: count_files(root) == 300, 30, "the first sync to finish")
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(20) == 0
    ok(tm(config, "sync"))
    assert_mirror(ms, ALICE, "INBOX", 300)
