"""`tui-mail sync` (one shot, --dry-run, --watch) and the account worker against the
harness's Dovecot: what issue 3 says the IMAP sync must show. The server side is set
up and checked with imaplib, LMTP and Dovecot's own files, never with the code under
test; the CLI runs as a child process with a config file, as a user runs it."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import mailbox
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from servers.harness import (
    Mailstack,
    deliver_lmtp,
    dovecot_restored,
    dovecot_running,
    reset_user_mail,
    start_mailstack,
    stop_dovecot,
)

from tui_mail.backends.base import BackendContext, SearchTerm
from tui_mail.backends.imap.backend import ImapReceiveBackend
from tui_mail.config.load import load_config
from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.core.capabilities import Capability
from tui_mail.core.flags import Flag
from tui_mail.core.models import ServerId
from tui_mail.store.index import MailIndex
from tui_mail.sync.lock import AccountLock
from tui_mail.sync.runtime import Runtime

pytestmark = pytest.mark.servers

USER = "alice"
MID = re.compile(rb"^Message-ID: *(<[^>]+>)", re.M | re.I)
LOADMAIL = Path(__file__).parents[1] / "servers" / "loadmail.py"


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    reset_user_mail(mailstack, USER)
    yield mailstack


@pytest.fixture(autouse=True)
def tmpfs_data(isolated_dirs: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The mail store on tmpfs when there is one: these tests store thousands of
    fsynced files, and a disk's fsync would make them take many times longer."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield Path(isolated_dirs.data)
        return
    d = Path(tempfile.mkdtemp(prefix="tui-mail-test.", dir=shm))
    monkeypatch.setenv("XDG_DATA_HOME", str(d))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- helpers


def write_config(
    tmp_path: Path,
    ms: Mailstack,
    *,
    security: str = "tls",
    port: int | None = None,
    password: str | None = None,
    ca_file: bool = True,
    host: str | None = None,
    extra: str = "",
) -> Path:
    if port is None:
        port = ms.imaps_port if security == "tls" else ms.imap_port
    secret = ms.users[USER] if password is None else password
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[accounts.alice]
email = "alice@localhost"

[accounts.alice.receive]
backend = "imap"
host = "{host or ms.host}"
port = {port}
security = "{security}"
user = "{USER}"
password_command = "printf %s {secret}"
timeout = 10
{f'ca_file = "{ms.ca_file}"' if ca_file else ""}
{extra}

[accounts.alice.send]
backend = "local"
"""
    )
    return path


def cli(config: Path, *args: str, debug: bool = False) -> subprocess.CompletedProcess[str]:
    env = os.environ.copy()
    if debug:
        env["TUI_MAIL_DEBUG"] = "tui_mail.backends.imap.client"
    return subprocess.run(
        [sys.executable, "-m", "tui_mail", "--config", str(config), "sync", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


class Watch:
    """`tui-mail sync --watch` as a child; its stderr lines are collected as they come."""

    def __init__(self, config: Path, interval: float = 1.0) -> None:
        self.lines: list[str] = []
        self.stop_seconds = 0.0
        argv = ["sync", "--watch", "--interval", str(interval)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tui_mail", "--config", str(config), *argv],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=os.environ.copy(),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        finally:
            self.stop_seconds = time.monotonic() - start
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            self._reader.join(5)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `check` until true; the seconds it took. Fails after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:g}s: {what}")


def local_root(_dirs: SimpleNamespace | None = None) -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "tui-mail" / "mail" / USER


def maildir_path(root: Path, folder: str) -> Path:
    return root if folder == "INBOX" else root / ("." + folder.replace("/", "."))


def read_maildir(root: Path, folder: str = "INBOX") -> dict[str, list[tuple[bytes, str]]]:
    """Message-ID -> [(bytes, flag letters)] of every copy in a Maildir folder."""
    out: dict[str, list[tuple[bytes, str]]] = {}
    base = maildir_path(root, folder)
    for sub in ("new", "cur"):
        d = base / sub
        if not d.is_dir():
            continue
        for path in d.iterdir():
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # renamed by a flag change while we looked
                continue
            m = MID.search(data)
            assert m, path
            letters = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
            out.setdefault(m.group(1).decode(), []).append((data, letters))
    return out


def server_maildir(ms: Mailstack) -> Path:
    return ms.dir / "mail" / USER / "Maildir"


def imap(ms: Mailstack) -> imaplib.IMAP4_SSL:
    c = imaplib.IMAP4_SSL(ms.host, ms.imaps_port, ssl_context=ms.ssl_context(), timeout=10)
    c.login(USER, ms.users[USER])
    return c


def server_flags(ms: Mailstack, folder: str = "INBOX") -> dict[str, str]:
    """Message-ID -> the FLAGS list as the server reports it."""
    c = imap(ms)
    try:
        c.select(folder, readonly=True)
        _, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        out = {}
        for item in data:
            if isinstance(item, tuple):
                m = MID.search(item[1])
                if m:
                    flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                    out[m.group(1).decode()] = flags.group(1).decode() if flags else ""
        return out
    finally:
        c.logout()


def sample(n: int, tag: str = "cli") -> bytes:
    return (
        f"From: Bob <bob@localhost>\nTo: alice@localhost\nSubject: {tag} {n}\n"
        f"Message-ID: <{tag}-{n}@tui-mail.test>\nDate: Mon, 03 Nov 2025 10:00:00 +0000\n"
        f"\nbody {n}\n"
    ).encode()


def append(ms: Mailstack, folder: str, data: bytes, flags: str = "") -> None:
    c = imap(ms)
    try:
        c.create(folder)
        c.append(folder, flags, imaplib.Time2Internaldate(time.time()), data)
    finally:
        c.logout()


def load(ms: Mailstack, folder: str, count: int, start: int) -> None:
    """Bulk-load with MULTIAPPEND (tests/servers/loadmail.py): 2/3 \\Seen, 1/17 \\Flagged."""
    where = ["--host", ms.host, "--port", str(ms.imap_port)]
    who = ["--user", USER, "--password", ms.users[USER]]
    what = ["--mailbox", folder, "--count", str(count), "--start", str(start)]
    subprocess.run(
        [sys.executable, str(LOADMAIL), "append", *where, *who, *what],
        check=True,
        capture_output=True,
        timeout=60,
    )


def commands_in_log(dirs: SimpleNamespace) -> list[str]:
    """The IMAP commands the child logged (TUI_MAIL_DEBUG): one verb per command."""
    log = Path(dirs.state) / "tui-mail" / "tui-mail.log"
    return re.findall(r"imap \S+ > T\d+ (.+)$", log.read_text(), re.M)


# --------------------------------------------------------------------------- a full mirror


def test_three_folders_2000_messages_byte_identical_then_a_cheap_resync(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace
) -> None:
    load(ms, "INBOX", 1000, 0)
    load(ms, "Work", 600, 10000)
    load(ms, "Lists/Python", 400, 20000)
    config = write_config(tmp_path, ms)
    first = cli(config)
    assert first.returncode == 0, first.stderr
    assert "sync done: 2000 new, 0 removed, 0 changed" in first.stderr

    root = local_root(isolated_dirs)
    for folder, count in (("INBOX", 1000), ("Work", 600), ("Lists/Python", 400)):
        server = read_maildir(server_maildir(ms), folder)
        local = read_maildir(root, folder)
        assert len(server) == count and set(local) == set(server), folder
        for mid, [(data, letters)] in server.items():
            assert local[mid] == [(data, letters)], mid  # one copy, same bytes, same flags
    # Another Maildir reader sees the same mail.
    md = mailbox.Maildir(root, factory=None, create=False)
    assert len(md) == 1000
    assert len(md.get_folder("Work")) == 600 and len(md.get_folder("Lists.Python")) == 400
    assert sum(1 for m in md if "F" in m.get_flags()) == len(range(0, 1000, 17))

    log = Path(isolated_dirs.state) / "tui-mail" / "tui-mail.log"
    log.write_text("")
    again = cli(config, debug=True)
    assert again.returncode == 0, again.stderr
    assert "sync done: 0 new, 0 removed, 0 changed" in again.stderr
    sent = commands_in_log(isolated_dirs)
    # Log in, LIST, one pipelined STATUS per folder, LOGOUT: no SELECT, no FETCH, no SEARCH.
    assert set(sent) <= {"AUTHENTICATE", "CAPABILITY", "ENABLE", "LIST", "STATUS", "LOGOUT"}
    assert len(sent) <= 5 + sent.count("STATUS") and sent.count("STATUS") <= 9, sent
    assert read_maildir(root, "Work") == read_maildir(server_maildir(ms), "Work")


def test_dry_run_prints_the_plan_and_changes_nothing(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace
) -> None:
    for n in range(5):
        deliver_lmtp(ms, USER, sample(n))
    config = write_config(tmp_path, ms)
    assert cli(config).returncode == 0
    c = imap(ms)
    c.select("INBOX")
    c.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
    c.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    for n in (5, 6):
        deliver_lmtp(ms, USER, sample(n))
    append(ms, "Fresh", sample(7))
    root = local_root(isolated_dirs)
    before_local = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    before_server = server_flags(ms)

    dry = cli(config, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    out = dry.stderr
    assert "alice: dry run: create local folder 'Fresh'" in out
    assert "alice: dry run: INBOX: fetch 2 new messages (UIDs 6-7)" in out
    assert re.search(r"INBOX: set local flags of \S+ to F", out), out
    assert re.search(r"INBOX: delete local copy \S+ \(UID 2 is gone on the server\)", out), out
    assert "Fresh: fetch 1 new message" in out
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before_local
    assert server_flags(ms) == before_server
    # Nothing was applied, so the real run still has all of it to do.
    real = cli(config)
    assert "sync done: 3 new, 1 removed, 1 changed" in real.stderr, real.stderr


def test_changes_by_another_client_appear_after_sync(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace
) -> None:
    for n in range(4):
        deliver_lmtp(ms, USER, sample(n))
    config = write_config(tmp_path, ms)
    assert cli(config).returncode == 0
    c = imap(ms)
    c.select("INBOX")
    c.uid("STORE", "1", "+FLAGS", "(\\Seen \\Flagged)")
    c.uid("MOVE", "2", "Archive")
    c.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    c.expunge()
    c.logout()
    r = cli(config)
    assert r.returncode == 0, r.stderr
    root = local_root(isolated_dirs)
    inbox = read_maildir(root)
    assert sorted(inbox) == ["<cli-0@tui-mail.test>", "<cli-3@tui-mail.test>"]
    assert inbox["<cli-0@tui-mail.test>"][0][1] == "FS"
    assert list(read_maildir(root, "Archive")) == ["<cli-1@tui-mail.test>"]


# --------------------------------------------------------------------------- --watch and the lock


def test_watch_follows_every_change_within_seconds_and_locks_the_account(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace
) -> None:
    for n in range(3):
        deliver_lmtp(ms, USER, sample(n))
    for n in (10, 11):
        append(ms, "Work", sample(n))
    config = write_config(tmp_path, ms)
    root = local_root(isolated_dirs)
    watch = Watch(config, interval=0.5)
    try:
        wait_for(
            lambda: len(read_maildir(root)) == 3 and len(read_maildir(root, "Work")) == 2,
            30,
            "the first sync",
        )

        # A second sync of the same account is refused while this one runs.
        second = cli(config)
        assert second.returncode != 0
        assert f"account 'alice' is locked by process {watch.proc.pid}" in second.stderr

        # New mail (LMTP) - IDLE on INBOX.
        deliver_lmtp(ms, USER, sample(3))
        took = wait_for(lambda: "<cli-3@tui-mail.test>" in read_maildir(root), 5, "delivery")
        assert took < 5

        c = imap(ms)
        c.select("INBOX")
        # A flag set by another client.
        c.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
        wait_for(
            lambda: read_maildir(root)["<cli-0@tui-mail.test>"][0][1] == "F", 5, "a flag change"
        )
        # A move to a folder IDLE does not watch (found by the periodic STATUS).
        c.uid("MOVE", "2", "Work")
        wait_for(
            lambda: (
                "<cli-1@tui-mail.test>" not in read_maildir(root)
                and "<cli-1@tui-mail.test>" in read_maildir(root, "Work")
            ),
            5,
            "a move",
        )
        # A flag change and a delete in that other folder.
        c.select("Work")
        c.uid("STORE", "1", "+FLAGS", "(\\Seen)")
        c.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.logout()
        wait_for(
            lambda: (
                "<cli-11@tui-mail.test>" not in read_maildir(root, "Work")
                and read_maildir(root, "Work")["<cli-10@tui-mail.test>"][0][1] == "S"
            ),
            5,
            "a flag change and a delete in Work",
        )
        assert all(len(v) == 1 for f in ("INBOX", "Work") for v in read_maildir(root, f).values())
    finally:
        rc = watch.stop()
    assert rc == 0, watch.text  # SIGTERM ends it cleanly
    # No goodbye waits out a timeout (LOGOUT sent into IDLE once took 5 s).
    assert watch.stop_seconds < 3, watch.stop_seconds
    assert "Traceback" not in watch.text
    assert "alice: connected" in watch.text
    lock = AccountLock(USER)  # the lock went with it
    lock.acquire()
    lock.release()


def test_watch_shows_offline_and_reconnects_after_the_server_restarts(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace
) -> None:
    deliver_lmtp(ms, USER, sample(0))
    config = write_config(tmp_path, ms)
    root = local_root(isolated_dirs)
    with dovecot_restored(ms):
        watch = Watch(config, interval=1.0)
        try:
            wait_for(lambda: len(read_maildir(root)) == 1, 30, "the first sync")
            stop_dovecot(ms)
            wait_for(lambda: "alice: offline:" in watch.text, 10, "an offline line")
            assert "retrying in" in watch.text
            start_mailstack(ms.dir)
            deliver_lmtp(ms, USER, sample(1))
            wait_for(lambda: len(read_maildir(root)) == 2, 30, "the reconnect and sync")
        finally:
            rc = watch.stop(signal.SIGINT)  # Ctrl-C
    assert rc == 0, watch.text
    assert watch.stop_seconds < 3, watch.stop_seconds
    assert watch.text.count("alice: connected") >= 2, watch.text
    assert "Traceback" not in watch.text


# --------------------------------------------------------------------------- failures


async def test_cut_mid_sync_gives_a_clear_error_and_the_next_run_completes(
    ms: Mailstack,
    tmp_path: Path,
    isolated_dirs: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tui_mail.sync.imap_sync.DELIVER_BATCH", 20)
    # An event per message (not the status line's 20 a second), to time the cut by.
    monkeypatch.setattr("tui_mail.sync.account.PROGRESS_INTERVAL", 0.0)
    load(ms, "INBOX", 600, 0)
    config_path = write_config(tmp_path, ms)
    events: list[ev.Event] = []
    replies: dict[int, asyncio.Future[ev.Event]] = {}

    def on_event(event: ev.Event) -> None:
        events.append(event)
        if isinstance(event, ev.SyncProgress) and event.done >= 100 and dovecot_running(ms):
            stop_dovecot(ms)  # blocks the loop a moment: the cut lands mid-FETCH
        fut = replies.get(event.in_reply_to or -1)
        if fut is not None and not fut.done():
            fut.set_result(event)

    root = local_root(isolated_dirs)
    with dovecot_restored(ms):
        runtime = Runtime(load_config(config_path))
        backend = runtime.receive_backend(USER)
        assert isinstance(backend, ImapReceiveBackend)
        backend.batch = 20  # many FETCH commands, so the cut lands between and inside them
        await runtime.start(on_event, initial_sync=False, poll=False)
        try:
            sync = cmd.SyncNow()
            replies[sync.id] = asyncio.get_running_loop().create_future()
            runtime.submit(USER, sync)
            reply = await asyncio.wait_for(replies[sync.id], 60)
        finally:
            await runtime.stop()
        assert isinstance(reply, ev.Failed), reply
        assert "127.0.0.1" in reply.message and "Traceback" not in reply.message
        partial = len(read_maildir(root))
        assert 20 <= partial < 600

        # While the server is down: one clear line, a failure exit.
        down = await asyncio.to_thread(cli, config_path)
        assert down.returncode == 1
        assert down.stderr.strip().splitlines() == [
            f"alice: error: the IMAP server {ms.host}:{ms.imaps_port} refused the connection"
        ]
        start_mailstack(ms.dir)

    after = await asyncio.to_thread(cli, config_path)
    assert after.returncode == 0, after.stderr
    assert f"sync done: {600 - partial} new" in after.stderr
    local = read_maildir(root)
    assert len(local) == 600 and all(len(copies) == 1 for copies in local.values())
    assert set(local) == set(read_maildir(server_maildir(ms)))


class FakeServer:
    """A TCP server that greets as IMAP without STARTTLS and records what it gets."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)  # so the thread sees `closed` and ends
        self.port = self.sock.getsockname()[1]
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        caps = b"IMAP4rev1 AUTH=PLAIN LOGIN IDLE"
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                conn.sendall(b"* OK [CAPABILITY " + caps + b"] fake ready\r\n")
                buf = b""
                while chunk := conn.recv(4096):
                    self.received += chunk
                    buf += chunk
                    while b"\r\n" in buf:
                        line, buf = buf.split(b"\r\n", 1)
                        tag = line.split(b" ", 1)[0]
                        if b"CAPABILITY" in line.upper():
                            conn.sendall(b"* CAPABILITY " + caps + b"\r\n" + tag + b" OK\r\n")
                        else:
                            conn.sendall(tag + b" BAD no\r\n")

    def close(self) -> None:
        self.closed.set()
        self._thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("case", ["password", "port", "certificate", "starttls", "not-tls"])
def test_each_connection_failure_is_one_clear_line(
    ms: Mailstack, tmp_path: Path, case: str
) -> None:
    secret = ms.users[USER]
    fake = FakeServer() if case in ("starttls", "not-tls") else None
    try:
        if case == "password":
            secret = "Wr0ng-S3cret"
            config = write_config(tmp_path, ms, password=secret)
            expected = "was refused"
        elif case == "port":
            with socket.create_server(("127.0.0.1", 0)) as s:
                closed = s.getsockname()[1]  # free once closed: nothing listens there
            config = write_config(tmp_path, ms, port=closed)
            expected = "refused the connection"
        elif case == "certificate":
            config = write_config(tmp_path, ms, ca_file=False, host="localhost")
            expected = "certificate"
        elif case == "starttls":
            assert fake is not None
            config = write_config(tmp_path, ms, security="starttls", port=fake.port)
            expected = "does not offer STARTTLS"
        else:
            assert fake is not None  # TLS configured, the port speaks plaintext
            config = write_config(tmp_path, ms, security="tls", port=fake.port)
            expected = "TLS"
        r = cli(config)
    finally:
        if fake is not None:
            fake.close()
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1
    assert len(lines) == 1 and lines[0].startswith("alice: error: "), r.stderr
    assert expected in lines[0], lines[0]
    assert secret not in r.stderr
    if fake is not None:
        assert secret.encode() not in fake.received  # never on the wire in plaintext
        assert b"LOGIN" not in fake.received.upper() and b"AUTHENTICATE" not in fake.received


@pytest.mark.parametrize("case", ["password", "certificate"])
def test_watch_gives_up_with_one_line_on_what_no_retry_fixes(
    ms: Mailstack, tmp_path: Path, case: str
) -> None:
    if case == "password":
        config = write_config(tmp_path, ms, password="Wr0ng-S3cret")
        expected = "alice: auth failed: IMAP login"
    else:
        config = write_config(tmp_path, ms, ca_file=False, host="localhost")
        expected = "alice: offline: the TLS certificate of localhost"
    env = os.environ.copy()
    r = subprocess.run(
        [sys.executable, "-m", "tui_mail", "--config", str(config), "sync", "--watch"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 1
    [line] = r.stderr.strip().splitlines()
    assert line.startswith(expected), line
    assert "Wr0ng-S3cret" not in r.stderr


# --------------------------------------------------------------------------- the worker


class Recorder:
    def __init__(self) -> None:
        self.seen: list[ev.Event] = []
        self.waiters: dict[int, asyncio.Future[ev.Event]] = {}

    def __call__(self, event: ev.Event) -> None:
        self.seen.append(event)
        fut = self.waiters.get(event.in_reply_to or -1)
        if fut is not None and not fut.done():
            fut.set_result(event)

    async def run(self, runtime: Runtime, command: cmd.Command) -> ev.Event:
        self.waiters[command.id] = asyncio.get_running_loop().create_future()
        runtime.submit(USER, command)
        return await asyncio.wait_for(self.waiters[command.id], 60)


async def test_uidvalidity_reset_no_dup_no_loss_and_the_pending_change_hits_the_right_message(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace
) -> None:
    for n in range(5):
        append(ms, "Work", sample(n, "uv"))
    rec = Recorder()
    runtime = Runtime(load_config(write_config(tmp_path, ms)))
    await runtime.start(rec, initial_sync=False, poll=False)
    try:
        assert isinstance(await rec.run(runtime, cmd.SyncNow()), ev.Done)
        old = runtime.index.folder_state(USER, "Work")
        assert old is not None
        # Offline, the user flags uv-2 (UID 3 under the old UIDVALIDITY).
        await rec.run(runtime, cmd.Disconnect())
        [ref] = [r for r in runtime.index.find_by_message_id(USER, "<uv-2@tui-mail.test>")]
        reply = await rec.run(runtime, cmd.SetFlags(refs=(ref,), add=frozenset({Flag.FLAGGED})))
        assert isinstance(reply, ev.Done)

        # The folder is rebuilt on the server in another order: UID 3 is now uv-1.
        c = imap(ms)
        c.delete("Work")
        while True:
            c.create("Work")
            c.select("Work")
            validity = int(c.response("UIDVALIDITY")[1][0])
            if validity != old.uidvalidity:
                break
            c.close()
            c.delete("Work")
            time.sleep(0.3)
        for n in (4, 1, 2, 0, 9):  # uv-3 is gone, uv-9 is new
            c.append("Work", "", imaplib.Time2Internaldate(time.time()), sample(n, "uv"))
        c.logout()

        rec.seen.clear()
        assert isinstance(await rec.run(runtime, cmd.SyncNow()), ev.Done)
        notices = [e.message for e in rec.seen if isinstance(e, ev.BackendError)]
        assert any("Work" in m and "UIDVALIDITY" in m for m in notices), notices
    finally:
        await runtime.stop()

    flags = server_flags(ms, "Work")
    assert "\\Flagged" in flags["<uv-2@tui-mail.test>"]
    assert [m for m, f in flags.items() if "\\Flagged" in f] == ["<uv-2@tui-mail.test>"]
    local = read_maildir(local_root(isolated_dirs), "Work")
    assert all(len(copies) == 1 for copies in local.values())  # no duplicate
    assert set(local) == set(flags) | {"<uv-3@tui-mail.test>"}  # no loss: uv-3 stays local
    assert local["<uv-2@tui-mail.test>"][0][1] == "F"


async def test_a_local_addition_is_appended_once_and_never_downloaded_again(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace
) -> None:
    good = load_config(write_config(tmp_path, ms))
    with socket.create_server(("127.0.0.1", 0)) as s:
        closed = s.getsockname()[1]
    (tmp_path / "offline").mkdir()
    offline = load_config(write_config(tmp_path / "offline", ms, port=closed))

    async def session(config: AppConfig, *commands: cmd.Command) -> list[ev.Event]:
        rec = Recorder()
        runtime = Runtime(config)
        await runtime.start(rec, initial_sync=False, poll=False, connect=False)
        try:
            return [await rec.run(runtime, c) for c in commands]
        finally:
            await runtime.stop()

    assert isinstance((await session(good, cmd.SyncNow()))[0], ev.Done)
    # Saved while the server cannot be reached: kept here, journalled.
    one = sample(1, "draft")
    replies = await session(
        offline, cmd.Append(folder="Drafts", raw=one, flags=frozenset({Flag.SEEN}))
    )
    assert isinstance(replies[0], ev.Done), replies
    # Online: the next sync uploads it; another one is appended at once.
    two = sample(2, "draft")
    replies = await session(
        good, cmd.SyncNow(), cmd.Append(folder="Drafts", raw=two), cmd.SyncNow()
    )
    assert all(isinstance(r, ev.Done) for r in replies), replies

    assert server_flags(ms, "Drafts") == {
        "<draft-1@tui-mail.test>": "\\Seen",
        "<draft-2@tui-mail.test>": "",
    }
    local = read_maildir(local_root(isolated_dirs), "Drafts")
    assert local == {
        "<draft-1@tui-mail.test>": [(one, "S")],
        "<draft-2@tui-mail.test>": [(two, "")],
    }
    index = MailIndex(Path(os.environ["XDG_DATA_HOME"]) / "tui-mail" / "index.sqlite3")
    try:
        rows = index.page(USER, "Drafts", 0, 10)
        assert len(rows) == 2 and not any(r.pending for r in rows)
        assert all((index.server_id(r.ref.id) or ServerId()).uid for r in rows)  # type: ignore[arg-type]
    finally:
        index.close()


# --------------------------------------------------------------------------- server search


async def test_server_search(ms: Mailstack) -> None:
    words = ["Grüße aus Köln", "plain subject", "another one"]
    for n, subject in enumerate(words):
        from email.header import Header

        encoded = Header(subject, "utf-8").encode()
        deliver_lmtp(
            ms,
            USER,
            f"From: Sender{n} <s{n}@example.test>\nTo: alice@localhost\nSubject: {encoded}\n"
            f"Message-ID: <search-{n}@tui-mail.test>\n\nthe body has word{n} in it\n".encode(),
        )
    c = imap(ms)
    c.select("INBOX")
    c.uid("STORE", "2", "+FLAGS", "(\\Seen)")
    c.logout()
    ep = EndpointConfig(
        backend="imap",
        host=ms.host,
        port=ms.imaps_port,
        security="tls",
        user=USER,
        password=ms.users[USER],
        ca_file=ms.ca_file,
        timeout=10.0,
    )
    b = ImapReceiveBackend(
        BackendContext(AccountConfig(USER, "alice@localhost", ep, EndpointConfig("local")), ep)
    )
    try:
        assert b.has(Capability.SERVER_SEARCH)

        async def uids(*terms: SearchTerm) -> list[int | None]:
            return [s.uid for s in await b.search("INBOX", list(terms))]

        assert await uids(SearchTerm("subject", "grüße")) == [1]  # UTF-8, any case
        assert await uids(SearchTerm("from", "s2@example")) == [3]
        assert await uids(SearchTerm("body", "word1")) == [2]
        assert await uids(SearchTerm("seen"), SearchTerm("text", "word")) == [2]
        assert await uids(SearchTerm("seen", negate=True)) == [1, 3]
        assert await uids(SearchTerm("subject", "subject", negate=True)) == [1, 3]
        assert await uids(SearchTerm("header:Message-ID", "<search-2@tui-mail.test>")) == [3]
        assert await uids(SearchTerm("subject", 'quote " and \\ back')) == []
        assert len(await uids()) == 3
        found = await b.search("INBOX", [SearchTerm("subject", "another")])
        state = await b.folder_state("INBOX")
        assert found[0].uidvalidity == state.uidvalidity
    finally:
        await b.close()
