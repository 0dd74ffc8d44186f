"""Helpers for the crash and fault tests (test_crash_faults.py, test_fsck.py).

Tests only. The real Dovecot and Postfix of the harness do the protocol; what
they cannot do by themselves (drop a link after exactly N bytes) is done by
`CutProxy`, a byte-counting TCP relay in front of them. TLS passes through it
untouched, so the client still verifies the real server's certificate.

The oracle for "nothing lost, nothing duplicated" is read with neither
tui-mail's code nor its index: the server's own Maildir on disk (Dovecot's
files) and the local Maildir, both keyed by Message-ID.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from servers.harness import Mailstack

from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex

MID = re.compile(rb"^Message-ID: *(<[^>]+>)", re.M | re.I)
LOADMAIL = Path(__file__).parents[1] / "servers" / "loadmail.py"
TM = [sys.executable, "-m", "tui_mail"]


# --------------------------------------------------------------------------- config, CLI


def imap_config(tmp_path: Path, ms: Mailstack, user: str, *, port: int | None = None) -> Path:
    path = tmp_path / f"config-{user}.toml"
    path.write_text(
        f"""
[accounts.{user}]
email = "{user}@localhost"

[accounts.{user}.receive]
backend = "imap"
host = "{ms.host}"
port = {port or ms.imaps_port}
security = "tls"
user = "{user}"
password_command = "printf %s {ms.users[user]}"
timeout = 10
ca_file = "{ms.ca_file}"

[accounts.{user}.send]
backend = "local"
"""
    )
    path.chmod(0o600)
    return path


def pop3_config(tmp_path: Path, ms: Mailstack, user: str, *, delete: bool) -> Path:
    path = tmp_path / f"config-{user}-pop3.toml"
    path.write_text(
        f"""
[accounts.{user}]
email = "{user}@localhost"

[accounts.{user}.receive]
backend = "pop3"
host = "{ms.host}"
port = {ms.pop3s_port}
security = "tls"
user = "{user}"
password_command = "printf %s {ms.users[user]}"
ca_file = "{ms.ca_file}"
delete_after_download = {str(delete).lower()}

[accounts.{user}.send]
backend = "local"
"""
    )
    path.chmod(0o600)
    return path


def tm(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TM, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        stdin=subprocess.DEVNULL,
    )


def spawn(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*TM, "--config", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=os.environ.copy(),
    )


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"not within {timeout:g}s: {what}")


def kill_when(proc: subprocess.Popen[str], check: Callable[[], bool], timeout: float = 60) -> bool:
    """SIGKILL `proc` as soon as `check()` holds; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if check():
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            return True
        time.sleep(0.002)
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)
    return False


# --------------------------------------------------------------------------- mail on both sides


def data_home() -> Path:
    return Path(os.environ["XDG_DATA_HOME"])


def local_root(account: str) -> Path:
    return data_home() / "tui-mail" / "mail" / account


def index_file() -> Path:
    return data_home() / "tui-mail" / "index.sqlite3"


def folder_dir(root: Path, folder: str) -> Path:
    return root if folder == "INBOX" else root / ("." + folder.replace("/", "."))


def count_files(root: Path, folder: str = "INBOX") -> int:
    n = 0
    for sub in ("new", "cur"):
        with contextlib.suppress(FileNotFoundError):
            n += len(os.listdir(folder_dir(root, folder) / sub))
    return n


def read_maildir(root: Path, folder: str = "INBOX") -> dict[str, list[bytes]]:
    """Message-ID -> the bytes of every visible copy (new/ and cur/)."""
    out: dict[str, list[bytes]] = {}
    base = folder_dir(root, folder)
    for sub in ("new", "cur"):
        d = base / sub
        if not d.is_dir():
            continue
        for path in d.iterdir():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            m = MID.search(data)
            assert m, f"a visible file without a Message-ID (half-written?): {path}"
            out.setdefault(m.group(1).decode(), []).append(data)
    return out


def server_maildir(ms: Mailstack, user: str, folder: str = "INBOX") -> dict[str, list[bytes]]:
    return read_maildir(ms.dir / "mail" / user / "Maildir", folder)


def assert_mirror(
    ms: Mailstack, user: str, folder: str = "INBOX", count: int | None = None
) -> None:
    """Every server message exactly once locally, byte for byte; nothing extra."""
    server = server_maildir(ms, user, folder)
    local = read_maildir(local_root(user), folder)
    if count is not None:
        assert len(server) == count, f"the server lost mail: {len(server)} != {count}"
    assert all(len(v) == 1 for v in server.values()), "duplicates on the server"
    dups = [mid for mid, copies in local.items() if len(copies) > 1]
    assert not dups, f"{len(dups)} messages are duplicated locally, e.g. {dups[:3]}"
    assert set(local) == set(server), (
        f"missing locally: {sorted(set(server) - set(local))[:5]},"
        f" extra locally: {sorted(set(local) - set(server))[:5]}"
    )
    for mid, [raw] in server.items():
        assert local[mid] == [raw], f"{mid}: local bytes differ from the server's"


def load(ms: Mailstack, user: str, folder: str, count: int, start: int) -> None:
    """MULTIAPPEND through Dovecot's normal save path (tests/servers/loadmail.py)."""
    subprocess.run(
        [
            sys.executable,
            str(LOADMAIL),
            "append",
            *("--host", ms.host, "--port", str(ms.imap_port)),
            *("--user", user, "--password", ms.users[user]),
            *("--mailbox", folder, "--count", str(count), "--start", str(start)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def message(n: int, tag: str, body_lines: int = 5) -> bytes:
    body = "".join(f"line {i} of {tag} {n}\n" for i in range(body_lines))
    return (
        f"From: Bob <bob@localhost>\nTo: someone@localhost\nSubject: {tag} {n}\n"
        f"Message-ID: <{tag}-{n}@faults.test>\nDate: Mon, 03 Nov 2025 10:00:00 +0000\n"
        f"\n{body}"
    ).encode()


# --------------------------------------------------------------------------- a cutting relay


class CutProxy:
    """A TCP relay to 127.0.0.1:`target` that drops its first connection after
    `server_bytes` bytes came from the server, or `client_bytes` from the client
    (counted from the start of the connection). Later connections pass unchanged.

    The relay closes both sides at once, as a dead link or a crashed server
    would: whatever was in flight is lost mid-response or mid-literal.
    """

    def __init__(
        self, target: int, *, server_bytes: int | None = None, client_bytes: int | None = None
    ) -> None:
        self.target = target
        self.server_bytes = server_bytes
        self.client_bytes = client_bytes
        self.cut = threading.Event()
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            first = self.connections == 1
            threading.Thread(target=self._relay, args=(client, first), daemon=True).start()

    def _relay(self, client: socket.socket, first: bool) -> None:
        try:
            server = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        except OSError:
            client.close()
            return
        counts = {client: 0, server: 0}
        limits = {
            client: self.client_bytes if first else None,
            server: self.server_bytes if first else None,
        }
        other = {client: server, server: client}
        try:
            while not self._closed.is_set():
                ready, _, _ = select.select([client, server], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    limit = limits[s]
                    if limit is not None and counts[s] + len(data) >= limit:
                        other[s].sendall(data[: max(0, limit - counts[s])])
                        self.cut.set()
                        return
                    counts[s] += len(data)
                    other[s].sendall(data)
        except OSError:
            return
        finally:
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        self._thread.join(5)


ALICE = "alice"
BOB = "bob"
TM_SEND = [sys.executable, "-m", "tui_mail"]


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return result.stderr


def open_store(account: str) -> AccountStore:
    return AccountStore(account, local_root(account), MailIndex(index_file()))
