"""Crashes and faults against the real Dovecot and Postfix: after each, a normal run
loses nothing, duplicates nothing and pushes no deletion the user did not make.

`tui-mail` runs as a child process, as a user runs it, and is SIGKILLed at chosen
points; links are cut after N bytes by a relay in front of the real server
(faults.CutProxy); the disk fills up on a small tmpfs. The server's own Maildir on
disk is the oracle for what must be there (faults.assert_mirror).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.harness import (
    Mailstack,
    deliver_lmtp,
    dovecot_restored,
    reset_user_mail,
    start_mailstack,
    stop_dovecot,
)

from tui_mail.core.flags import Flag, FlagSet
from tui_mail.core.models import MessageRef
from tui_mail.store.journal import Journal
from tui_mail.sync.plan import APPEND
from tui_mail.sync.server_ops import record_flag_change

from .faults import (
    ALICE,
    BOB,
    TM_SEND,
    CutProxy,
    assert_mirror,
    count_files,
    imap_config,
    index_file,
    kill_when,
    load,
    local_root,
    message,
    ok,
    open_store,
    pop3_config,
    read_maildir,
    server_maildir,
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


# --------------------------------------------------------------------------- SIGKILL


def test_imap_initial_sync_killed_at_many_points(ms: Mailstack, tmp_path: Path) -> None:
    load(ms, ALICE, "INBOX", 700, 0)
    load(ms, ALICE, "Work", 200, 5000)
    config = imap_config(tmp_path, ms, ALICE)
    root = local_root(ALICE)
    killed = 0
    # Cumulative: each run goes on from what the killed ones left. 1 and 120 land in
    # the first batch's files before any index row; 650 after a committed batch.
    for target in (1, 120, 480, 650):
        proc = spawn(config, "sync")
        killed += kill_when(proc, lambda t=target: count_files(root) >= t)
    assert killed >= 3, "the sync finished before it could be killed"
    out = ok(tm(config, "sync"))
    assert "error" not in out
    assert_mirror(ms, ALICE, "INBOX", 700)
    assert_mirror(ms, ALICE, "Work", 200)
    assert "sync done: 0 new, 0 removed" in ok(tm(config, "sync"))
    ok(tm(config, "fsck", "--server"))


def test_imap_incremental_sync_killed_between_files_and_rows(ms: Mailstack, tmp_path: Path) -> None:
    """A later sync killed after writing files but before their index rows: the
    next run must adopt those files by Message-ID, not download second copies."""
    load(ms, ALICE, "INBOX", 50, 0)
    config = imap_config(tmp_path, ms, ALICE)
    ok(tm(config, "sync"))
    load(ms, ALICE, "INBOX", 450, 50)
    root = local_root(ALICE)
    assert kill_when(spawn(config, "sync"), lambda: count_files(root) >= 250)
    out = ok(tm(config, "sync"))
    assert_mirror(ms, ALICE, "INBOX", 500)
    assert "sync done: " in out
    ok(tm(config, "fsck", "--server"))


def test_flag_push_killed_at_several_points_converges(ms: Mailstack, tmp_path: Path) -> None:
    load(ms, ALICE, "INBOX", 400, 0)
    config = imap_config(tmp_path, ms, ALICE)
    ok(tm(config, "sync"))
    # Flag every message here, offline, exactly as the worker does for a key press:
    # the file renamed, the row pending, a journal entry in the same transaction.
    store = open_store(ALICE)
    journal = Journal(store.index)
    rows = store.index.execute_read(
        "SELECT id, key FROM messages WHERE account = ? AND folder = 'INBOX'", (ALICE,)
    )
    add = frozenset({Flag.FLAGGED})
    for msg_id, key in rows:
        ref = MessageRef(ALICE, "INBOX", key, msg_id)
        found = store.locate(ref)
        assert found is not None
        letters = FlagSet.from_maildir(found.flags).with_(Flag.FLAGGED).to_maildir()
        with store.index.transaction():
            new = store.set_flags(ref, letters, pending=True)
            record_flag_change(journal, new, msg_id, add, frozenset())
    store.index.close()
    for delay in (0.5, 0.8, 1.2):
        proc = spawn(config, "sync")
        time.sleep(delay)  # wherever it is then: connecting, STOREs, bookkeeping
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    ok(tm(config, "sync"))
    assert_mirror(ms, ALICE, "INBOX", 400)  # no message lost or expunged on the server
    flagged = [p.name for p in (ms.dir / "mail" / ALICE / "Maildir" / "cur").iterdir()]
    assert len(flagged) == 400 and all("F" in n.split(":2,")[1] for n in flagged)
    db = sqlite3.connect(index_file())
    try:
        assert db.execute("SELECT count(*) FROM journal").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM messages WHERE pending != 0").fetchone() == (0,)
    finally:
        db.close()


def test_pop3_download_killed_early_and_late_with_delete_after_download(
    ms: Mailstack, tmp_path: Path
) -> None:
    """tests/backends/test_pop3_sync.py kills at 40/150/300 of 400; these are the
    edges: right after the first file, and with one message to go."""
    for n in range(60):
        deliver_lmtp(ms, BOB, message(n, "pop3kill", 40))
    server = server_maildir(ms, BOB)
    config = pop3_config(tmp_path, ms, BOB, delete=True)
    root = local_root(BOB)
    for target in (1, 59):
        kill_when(spawn(config, "sync"), lambda t=target: count_files(root) >= t)
    ok(tm(config, "sync"))
    local = read_maildir(root)
    assert local == server, "every message exactly once, byte for byte"
    out = ms.doveadm("mailbox", "status", "-u", BOB, "messages", "INBOX").stdout
    assert out.split() == ["INBOX", "messages=0"]  # deleted only after a durable copy
    assert "0 new" in ok(tm(config, "sync"))


def test_send_killed_while_waiting_for_the_server_is_sent_once(
    ms: Mailstack, tmp_path: Path
) -> None:
    """Killed while connected to a server that has not answered yet: per
    docs/outbox.md the attempt becomes `uncertain` (never resent by itself) and
    one retry sends it exactly once. tests/backends/test_send_e2e.py covers the
    kill after DATA."""
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never greets
    token = f"sendkill-{os.getpid()}"
    raw = (
        f"From: alice@localhost\nTo: bob@localhost\nSubject: {token}\n"
        f"Message-ID: <{token}@faults.test>\n\nonce\n"
    ).encode()
    try:
        config = smtp_config(tmp_path, ms, silent.getsockname()[1])
        proc = subprocess.Popen(
            [*TM_SEND, "--config", str(config), "send"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=os.environ.copy(),
        )
        assert proc.stdin is not None
        proc.stdin.write(raw)
        proc.stdin.close()
        assert kill_when(proc, lambda: outbox_states() == ["sending"], 30)
    finally:
        silent.close()
    direct = smtp_config(tmp_path, ms, ms.submission_port)
    settle_send(direct, ms, token, "")


def outbox_states() -> list[str]:
    if not index_file().exists():
        return []
    db = sqlite3.connect(index_file(), timeout=5)
    try:
        return [r[0] for r in db.execute("SELECT state FROM outbox ORDER BY id")]
    except sqlite3.Error:
        return []
    finally:
        db.close()


def settle_send(direct: Path, ms: Mailstack, token: str, first_err: str) -> None:
    """The message reaches bob exactly once: by the next flush, or, when it is
    `uncertain`, only after the user's --retry (and never by a flush)."""
    listing = tm(direct, "send", "--list").stdout
    assert token in listing, listing
    flushed = tm(direct, "send", "--flush")
    assert flushed.returncode == 0, flushed.stderr
    if outbox_states() == ["uncertain"]:
        time.sleep(0.5)
        assert server_maildir(ms, BOB) == {}, "an uncertain message was resent by itself"
        assert "--retry" in flushed.stderr + first_err, flushed.stderr
        db = sqlite3.connect(index_file())
        try:
            (ident,) = db.execute("SELECT id FROM outbox").fetchone()
        finally:
            db.close()
        assert tm(direct, "send", "--retry", str(ident)).returncode == 0
    wait_for(lambda: len(server_maildir(ms, BOB)) == 1, 20, "the delivery to bob")
    assert tm(direct, "send", "--flush").returncode == 0
    time.sleep(0.5)  # a second copy would arrive as fast as the first
    assert [len(v) for v in server_maildir(ms, BOB).values()] == [1]
    assert outbox_states() == ["sent"]


def smtp_config(tmp_path: Path, ms: Mailstack, port: int) -> Path:
    path = tmp_path / f"config-send-{port}.toml"
    path.write_text(
        f"""
[accounts.alice]
email = "alice@localhost"

[accounts.alice.receive]
backend = "maildir"
path = "{tmp_path / "Maildir"}"

[accounts.alice.send]
backend = "smtp"
host = "127.0.0.1"
port = {port}
security = "starttls"
timeout = 5
user = "alice"
password_command = "printf %s {ms.users["alice"]}"
ca_file = "{ms.ca_file}"
"""
    )
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------- cut links


def test_link_cut_mid_fetch_then_a_clean_run(ms: Mailstack, tmp_path: Path) -> None:
    load(ms, ALICE, "INBOX", 1200, 0)
    size = sum(len(c) for copies in server_maildir(ms, ALICE).values() for c in copies)
    # Past the first stored batches (100, 100, 200, 400 messages), well before the end.
    proxy = CutProxy(ms.imaps_port, server_bytes=size * 3 // 4)
    try:
        config = imap_config(tmp_path, ms, ALICE, port=proxy.port)
        cut = tm(config, "sync")
        assert proxy.cut.is_set()
        assert cut.returncode == 1, cut.stderr
        assert "Traceback" not in cut.stderr and "alice: error:" in cut.stderr
        assert 200 <= count_files(local_root(ALICE)) < 1200
        ok(tm(config, "sync"))  # the relay passes the second connection
    finally:
        proxy.close()
    assert_mirror(ms, ALICE, "INBOX", 1200)


def test_link_cut_mid_append_then_a_clean_run(ms: Mailstack, tmp_path: Path) -> None:
    load(ms, ALICE, "Work", 5, 100)
    direct = imap_config(tmp_path, ms, ALICE)
    ok(tm(direct, "sync"))
    # A message filed into Work here (as the worker's Append does): stored, pending,
    # journalled; the next sync APPENDs it. Big, so the cut lands inside the literal.
    raw = message(1, "append-cut", 20_000)
    store = open_store(ALICE)
    with store.index.transaction():
        ref = store.deliver("Work", raw, "S")
        assert ref.id is not None
        store.index.set_pending([ref.id], True)
        Journal(store.index).add(ALICE, APPEND, {"id": ref.id, "folder": "Work", "key": ref.key})
    store.index.close()
    proxy = CutProxy(ms.imaps_port, client_bytes=200_000)
    try:
        config = imap_config(tmp_path, ms, ALICE, port=proxy.port)
        cut = tm(config, "sync")
        assert proxy.cut.is_set(), cut.stderr
        assert cut.returncode == 1 and "Traceback" not in cut.stderr, cut.stderr
        ok(tm(config, "sync"))
        ok(tm(config, "sync"))
    finally:
        proxy.close()
    assert_mirror(ms, ALICE, "Work", 6)  # on the server once, here once, same bytes
    db = sqlite3.connect(index_file())
    try:
        assert db.execute(
            "SELECT count(*) FROM messages WHERE folder = 'Work' AND uid IS NOT NULL"
        ).fetchone() == (6,)
    finally:
        db.close()


def test_link_cut_mid_data_is_sent_once_or_marked_uncertain(ms: Mailstack, tmp_path: Path) -> None:
    token = f"datacut-{os.getpid()}"
    body = "".join(f"line {i} of a long message\n" for i in range(20_000))
    raw = (
        f"From: alice@localhost\nTo: bob@localhost\nSubject: {token}\n"
        f"Message-ID: <{token}@faults.test>\n\n{body}"
    ).encode()
    proxy = CutProxy(ms.submission_port, client_bytes=200_000)
    try:
        config = smtp_config(tmp_path, ms, proxy.port)
        first = subprocess.run(
            [*TM_SEND, "--config", str(config), "send"],
            input=raw,
            capture_output=True,
            timeout=60,
            env=os.environ.copy(),
        )
    finally:
        proxy.close()
    assert proxy.cut.is_set()
    err = first.stderr.decode()
    assert first.returncode in (1, 75) and "Traceback" not in err, err
    time.sleep(1)
    assert server_maildir(ms, BOB) == {}, "a cut before the final dot delivers nothing"
    direct = smtp_config(tmp_path, ms, ms.submission_port)
    settle_send(direct, ms, token, err)


# --------------------------------------------------------------------------- server restart


def test_dovecot_restarted_during_idle_reconnects_and_picks_up_new_mail(
    ms: Mailstack, tmp_path: Path
) -> None:
    deliver_lmtp(ms, ALICE, message(0, "idle"))
    config = imap_config(tmp_path, ms, ALICE)
    root = local_root(ALICE)
    lines: list[str] = []
    with dovecot_restored(ms):
        proc = subprocess.Popen(
            [*TM_SEND, "--config", str(config), "sync", "--watch", "--interval", "1"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=os.environ.copy(),
        )
        reader = threading.Thread(
            target=lambda: lines.extend(line.rstrip() for line in proc.stderr or ()),
            daemon=True,
        )
        reader.start()
        try:
            wait_for(lambda: count_files(root) == 1, 30, "the first sync")
            time.sleep(1.0)  # IDLE is running on its own connection now
            stop_dovecot(ms)
            start_mailstack(ms.dir)  # a restart: back at once
            deliver_lmtp(ms, ALICE, message(1, "idle"))
            wait_for(lambda: count_files(root) == 2, 40, "the mail delivered after the restart")
            deliver_lmtp(ms, ALICE, message(2, "idle"))
            wait_for(lambda: count_files(root) == 3, 20, "push working again")
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(20)
            reader.join(5)
    text = "\n".join(lines)
    assert rc == 0, text
    assert "Traceback" not in text
    assert_mirror(ms, ALICE, "INBOX", 3)


# --------------------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    mnt = Path(tempfile.mkdtemp(prefix="tui-mail-full.", dir="/tmp"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.strip()}")
    monkeypatch.setenv("XDG_DATA_HOME", str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


def test_disk_full_while_writing_the_maildir(
    ms: Mailstack, tmp_path: Path, small_disk: Path
) -> None:
    for n in range(120):  # ~12 KB each: about 1.5 MB for a 1 MB disk
        deliver_lmtp(ms, ALICE, message(n, "full", 400))
    server = server_maildir(ms, ALICE)
    config = imap_config(tmp_path, ms, ALICE)
    full = tm(config, "sync")
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr
    assert "No space left on device" in full.stderr, full.stderr
    root = local_root(ALICE)
    local = read_maildir(root)  # every visible file is complete: it has its header...
    assert local and len(local) < 120
    for mid, copies in local.items():
        assert copies == server[mid], f"{mid}: a visible file is cut short"  # ...and all bytes
    check = tm(config, "fsck")
    assert "Traceback" not in check.stdout + check.stderr
    for bad in ("stale-row", "flags", "duplicate", "index"):  # no row names a missing file
        assert f"PROBLEM: INBOX: {bad}" not in check.stdout, check.stdout
    again = tm(config, "sync")  # still full: the same clear error, nothing worse
    assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    ok(tm(config, "sync"))
    assert_mirror(ms, ALICE, "INBOX", 120)
    ok(tm(config, "fsck", "--server"))
