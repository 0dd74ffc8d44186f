"""`tui-mail fsck [--repair] [--server]` against a store synced from the real Dovecot.

Each test damages the index or the Maildir the way a crash, another tool or a
user's hand would, then checks that fsck names the damage, exits non-zero while
a problem remains, that --repair fixes the index only (no mail file deleted, no
server mail touched) and that the next sync gives a clean mirror again.
"""

from __future__ import annotations

import imaplib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.harness import Mailstack, reset_user_mail

from .faults import (
    assert_mirror,
    imap_config,
    index_file,
    load,
    local_root,
    message,
    read_maildir,
    server_maildir,
    tm,
)

pytestmark = [pytest.mark.servers, pytest.mark.usefixtures("fast_data")]

ALICE = "alice"


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    reset_user_mail(mailstack, ALICE)
    yield mailstack


def fsck(config: Path, *args: str) -> tuple[int, str]:
    r = tm(config, "fsck", *args)
    text = r.stdout + r.stderr
    assert "Traceback" not in text, text
    return r.returncode, r.stdout


def synced(ms: Mailstack, tmp_path: Path, inbox: int, work: int = 0) -> Path:
    load(ms, ALICE, "INBOX", inbox, 0)
    if work:
        load(ms, ALICE, "Work", work, 5000)
    config = imap_config(tmp_path, ms, ALICE)
    r = tm(config, "sync")
    assert r.returncode == 0, r.stderr
    return config


def all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and p.parent.name in ("new", "cur")}


def sql(query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    db = sqlite3.connect(index_file())
    try:
        with db:
            return db.execute(query, params).fetchall()
    finally:
        db.close()


def test_a_clean_store_is_ok(ms: Mailstack, tmp_path: Path) -> None:
    config = synced(ms, tmp_path, 40, 10)
    code, out = fsck(config, "--server")
    assert code == 0, out
    assert " folders, 50 message files, 50 index rows" in out
    assert out.rstrip().endswith("alice: OK")
    assert "PROBLEM" not in out


def test_each_mismatch_is_reported_then_repaired_without_deleting_mail(
    ms: Mailstack, tmp_path: Path
) -> None:
    config = synced(ms, tmp_path, 60, 20)
    root = local_root(ALICE)
    inbox = sorted((root / "cur").iterdir())
    # A file no row knows (another tool delivered it; or a crash before the row).
    (root / "cur" / "1700000000.M1P1Q1Rfeed.fsck:2,S").write_bytes(message(1, "extra"))
    inbox[0].unlink()  # a row whose file is gone
    key, _, letters = inbox[1].name.partition(":2,")
    inbox[1].rename(inbox[1].with_name(f"{key}:2,F{letters}"))  # flags changed by hand
    # Two rows claiming one server UID; folder counts off.
    (a, uid_b) = sql(
        "SELECT id, (SELECT uid FROM messages WHERE folder = 'Work' AND id != m.id"
        " LIMIT 1) FROM messages m WHERE folder = 'Work' LIMIT 1"
    )[0]
    sql("UPDATE messages SET uid = ? WHERE id = ?", (uid_b, a))
    sql("UPDATE folder_stats SET total = 999 WHERE folder = 'Work'")
    before = all_files(root)

    code, out = fsck(config)
    assert code == 1, out
    for expected in (
        "PROBLEM: INBOX: 1 file has no index row: 1700000000.M1P1Q1Rfeed.fsck",
        "PROBLEM: INBOX: 1 index row names a file that is gone",
        "the next sync downloads again from the server",
        "PROBLEM: INBOX: 1 row differs from the flags in the file name",
        "PROBLEM: Work: 1 server UID is claimed by more than one local copy",
        "PROBLEM: Work: folder counts say (999,",
        "alice: 5 problems left",
    ):
        assert expected in out, out
    assert all_files(root) == before  # a check changes nothing

    code, out = fsck(config, "--repair")
    assert code == 0, out
    assert out.count("repaired: ") == 5 and "alice: OK" in out, out
    assert all_files(root) == before  # the repair neither: no mail file deleted
    code, out = fsck(config)
    assert code == 0 and "PROBLEM" not in out, out

    r = tm(config, "sync")
    assert r.returncode == 0, r.stderr
    local = read_maildir(root)
    server = server_maildir(ms, ALICE)
    assert local.pop("<extra-1@faults.test>") == [message(1, "extra")]  # kept, local only
    assert local == server  # the vanished one is back; nothing twice
    assert_mirror(ms, ALICE, "Work", 20)  # both UID claimants matched again, no copies
    code, out = fsck(config, "--server")
    assert code == 0, out


def test_a_truncated_index_is_reported_then_moved_aside_and_rebuilt(
    ms: Mailstack, tmp_path: Path
) -> None:
    config = synced(ms, tmp_path, 300)
    index = index_file()
    with open(index, "r+b") as f:
        f.truncate(index.stat().st_size // 2)
    size = index.stat().st_size

    code, out = fsck(config)
    assert code == 1, out
    assert f"PROBLEM: the index {index} is" in out and "fsck --repair" in out
    assert index.stat().st_size == size  # only reported: nothing moved without --repair

    code, out = fsck(config, "--repair")
    assert code == 0, out
    assert "repaired: the index was" in out and ".corrupt-" in out
    assert "alice: repaired: INBOX: 300 files have no index row" in out
    kept = [p for p in index.parent.glob("index.sqlite3.corrupt-*") if p.suffix != ".db"]
    assert [p.name for p in kept if not p.name.endswith("-wal")], kept  # kept, not deleted
    r = tm(config, "sync")
    assert r.returncode == 0, r.stderr
    assert "sync done: 0 new, 0 removed" in r.stderr  # matched by Message-ID, not fetched
    assert_mirror(ms, ALICE, "INBOX", 300)


def test_server_check_notes_gone_mail_and_repairs_lost_local_copies(
    ms: Mailstack, tmp_path: Path
) -> None:
    config = synced(ms, tmp_path, 30)
    root = local_root(ALICE)
    c = imaplib.IMAP4_SSL(ms.host, ms.imaps_port, ssl_context=ms.ssl_context())
    c.login(ALICE, ms.users[ALICE])
    c.select("INBOX")
    c.uid("STORE", "1:2", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    code, out = fsck(config, "--server")
    assert code == 0, out  # mail expunged on the server is a sync away, not damage
    assert "note: INBOX: 2 local copies are no longer on the server (UIDs 1, 2)" in out

    for path in sorted((root / "cur").iterdir())[10:13]:
        path.unlink()
    code, out = fsck(config, "--server", "--repair")
    assert code == 0, out
    assert "repaired: INBOX: 3 index rows name files that are gone" in out, out
    assert "repaired: INBOX: 3 messages on the server have no local copy" in out, out
    r = tm(config, "sync")
    assert r.returncode == 0, r.stderr
    assert "sync done: 3 new, 2 removed" in r.stderr
    assert_mirror(ms, ALICE, "INBOX", 28)
    code, out = fsck(config, "--server")
    assert code == 0 and "PROBLEM" not in out, out


def test_a_local_duplicate_is_reported_and_never_deleted(ms: Mailstack, tmp_path: Path) -> None:
    config = synced(ms, tmp_path, 10)
    root = local_root(ALICE)
    original = sorted((root / "cur").iterdir())[0]
    copy = root / "cur" / ("1700000001.M2P2Q2Rdup.fsck:2," + original.name.split(":2,")[1])
    shutil.copyfile(original, copy)
    code, out = fsck(config, "--repair")
    assert code == 0, out  # the index now knows the copy; locally that is all we can see
    assert "note: INBOX: 1 Message-ID has several local copies" in out
    code, out = fsck(config, "--server", "--repair")
    assert code == 1, out  # the server has one: a real duplicate, for the user to decide
    assert "PROBLEM: INBOX: 1 message has more local copies than the server has" in out
    assert "fsck never deletes mail" in out
    assert copy.exists() and original.exists()
