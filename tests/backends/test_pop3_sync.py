"""POP3 end to end: `tui-mail sync` against the harness's Dovecot, as a user runs it.

Nothing lost, nothing duplicated: a second run fetches nothing, deletes reach
the server only for messages stored here, and a run killed at any point and
run again leaves exactly one local copy of each message.
"""

from __future__ import annotations

import mailbox
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from servers.harness import Mailstack, deliver_lmtp, reset_user_mail

pytestmark = pytest.mark.servers

USER = "bob"


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    reset_user_mail(mailstack, USER)
    yield mailstack


def message(n: int) -> bytes:
    body = "".join(f"line {i} of message {n}: grüße\n" for i in range(n % 40 + 1))
    return (
        f"From: Sender {n} <s{n}@example.test>\nTo: bob@localhost\n"
        f"Subject: pop3 sync {n}\nMessage-ID: <pop3-sync-{n}@example.test>\n"
        f"Date: Mon, 03 Nov 2025 10:{n % 60:02d}:00 +0000\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
        f"Content-Transfer-Encoding: 8bit\n\n{body}"
    ).encode()


def deliver(ms: Mailstack, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        deliver_lmtp(ms, USER, message(n))


def write_config(tmp_path: Path, ms: Mailstack, **options: object) -> Path:
    extra = "".join(
        f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in options.items()
    )
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[accounts.bob]
email = "bob@localhost"

[accounts.bob.receive]
backend = "pop3"
host = "{ms.host}"
port = {ms.pop3_port}
security = "starttls"
user = "{USER}"
password_command = "printf %s {ms.users[USER]}"
ca_file = "{ms.ca_file}"
{extra}
[accounts.bob.send]
backend = "local"
"""
    )
    path.chmod(0o600)
    return path


def run_sync(config: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui_mail", "--config", str(config), "sync"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
        **kw,  # type: ignore[arg-type]
    )


def local_root() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "tui-mail" / "mail" / "bob"


def local_inbox() -> mailbox.Maildir:
    return mailbox.Maildir(local_root(), factory=None, create=False)


def local_files() -> dict[str, list[bytes]]:
    """Every visible local copy (new/ and cur/), keyed by Message-ID."""
    found: dict[str, list[bytes]] = {}
    for sub in ("new", "cur"):
        for f in (local_root() / sub).iterdir():
            raw = f.read_bytes()
            found.setdefault(str(message_from_bytes(raw)["Message-ID"]), []).append(raw)
    return found


def local_ids() -> list[str]:
    return sorted(str(m["Message-ID"]) for m in local_inbox())


def server_count(ms: Mailstack) -> int:
    out = ms.doveadm("mailbox", "status", "-u", USER, "messages", "INBOX").stdout
    return int(out.split("=")[1])


def dovecot_files(ms: Mailstack) -> dict[str, bytes]:
    """Dovecot's stored copies keyed by Message-ID: LF on disk, as ours are."""
    found = {}
    for sub in ("new", "cur"):
        for f in (ms.dir / "mail" / USER / "Maildir" / sub).iterdir():
            raw = f.read_bytes()
            found[str(message_from_bytes(raw)["Message-ID"])] = raw
    return found


def test_500_messages_fetched_once_byte_identical(ms: Mailstack, tmp_path: Path) -> None:
    deliver(ms, 500)
    config = write_config(tmp_path, ms)
    first = run_sync(config)
    assert first.returncode == 0, first.stderr
    assert "500 new" in first.stderr
    server = dovecot_files(ms)
    local = local_files()
    assert len(server) == len(local) == 500
    assert {mid: copies for mid, copies in local.items()} == {
        mid: [raw] for mid, raw in server.items()
    }
    second = run_sync(config)
    assert second.returncode == 0, second.stderr
    assert "0 new" in second.stderr
    assert len(local_ids()) == 500
    assert server_count(ms) == 500  # kept on the server by default


def test_delete_after_download_removes_only_stored_mail(ms: Mailstack, tmp_path: Path) -> None:
    deliver(ms, 20)
    config = write_config(tmp_path, ms, delete_after_download=True)
    assert run_sync(config).returncode == 0
    assert server_count(ms) == 0
    assert len(local_ids()) == 20
    deliver(ms, 5, start=20)
    result = run_sync(config)
    assert result.returncode == 0, result.stderr
    assert server_count(ms) == 0
    assert local_ids() == sorted(f"<pop3-sync-{n}@example.test>" for n in range(25))


def test_a_local_delete_does_not_bring_the_message_back(ms: Mailstack, tmp_path: Path) -> None:
    deliver(ms, 3)
    config = write_config(tmp_path, ms)
    assert run_sync(config).returncode == 0
    inbox = local_inbox()
    inbox.remove(next(iter(inbox.keys())))
    assert run_sync(config).returncode == 0
    assert len(local_ids()) == 2


def test_killed_runs_leave_exactly_one_copy(ms: Mailstack, tmp_path: Path) -> None:
    """SIGKILL the sync mid-download several times, then let it finish."""
    deliver(ms, 400)
    server = dovecot_files(ms)
    config = write_config(tmp_path, ms, delete_after_download=True)
    root = local_root()
    for target in (40, 150, 300):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui_mail", "--config", str(config), "sync"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            stored = sum(1 for _ in (root / "cur").iterdir()) if (root / "cur").exists() else 0
            stored += sum(1 for _ in (root / "new").iterdir()) if (root / "new").exists() else 0
            if stored >= target:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = run_sync(config)
    assert final.returncode == 0, final.stderr
    # Every visible file is complete and unique; a write cut short stays in tmp/.
    assert local_files() == {mid: [raw] for mid, raw in server.items()}
    assert server_count(ms) == 0


def test_wrong_password_is_one_clear_error(ms: Mailstack, tmp_path: Path) -> None:
    config = write_config(tmp_path, ms)
    text = config.read_text().replace(ms.users[USER], "not-the-password")
    config.write_text(text)
    result = run_sync(config)
    assert result.returncode == 1
    assert "refused" in result.stderr
    assert "Traceback" not in result.stderr
    assert "not-the-password" not in result.stderr


KILL_BEFORE_DELE = """
import asyncio, os, sys
from tui_mail import paths
from tui_mail.backends.base import BackendContext
from tui_mail.backends.pop3.backend import Pop3ReceiveBackend
from tui_mail.config.load import load_config
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex
from tui_mail.store.seen import SeenServerIds
from tui_mail.sync.download import DeletePolicy, download


class DiesBeforeDele(Pop3ReceiveBackend):
    async def remove_from_server(self, folder, ids):
        os._exit(9)  # the process dies after every local write, before any DELE


async def main():
    account = load_config(paths.config_path(sys.argv[1])).accounts["bob"]
    backend = DiesBeforeDele(BackendContext(account, account.receive))
    store = AccountStore("bob", paths.mail_root("bob"), MailIndex.open(paths.index_path()))
    seen = SeenServerIds(paths.download_record_path())
    await backend.connect()
    await download(backend, store, seen, DeletePolicy(after_download=True))


asyncio.run(main())
"""


def test_killed_between_the_local_write_and_the_dele(ms: Mailstack, tmp_path: Path) -> None:
    deliver(ms, 30)
    config = write_config(tmp_path, ms, delete_after_download=True)
    script = tmp_path / "die_before_dele.py"
    script.write_text(KILL_BEFORE_DELE)
    died = subprocess.run([sys.executable, str(script), str(config)], timeout=120)
    assert died.returncode == 9
    assert len(local_ids()) == 30 and server_count(ms) == 30  # stored, nothing deleted yet
    rerun = run_sync(config)
    assert rerun.returncode == 0, rerun.stderr
    assert "0 new" in rerun.stderr
    assert local_ids() == sorted(f"<pop3-sync-{n}@example.test>" for n in range(30))
    assert server_count(ms) == 0


def test_a_connection_dropped_mid_retr_loses_nothing(ms: Mailstack, tmp_path: Path) -> None:
    big = "x" * 998 + "\n"
    for n in range(20):  # ~2 MB each, so the download takes long enough to be cut
        deliver_lmtp(ms, USER, message(n).replace(b"\n\n", b"\n\n" + (big * 2000).encode(), 1))
    server = dovecot_files(ms)
    config = write_config(tmp_path, ms, delete_after_download=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui_mail", "--config", str(config), "sync"],
        stderr=subprocess.PIPE,
        text=True,
    )
    root = local_root()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any((root / "new").glob("*")):
        time.sleep(0.002)
    ms.doveadm("kick", USER, check=False)  # the server drops the session mid-download
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "error" in err, "a dropped link gets a clear message"
    assert 0 < len(local_files()) < 20
    # Whatever was visible is whole; nothing half-written left tmp/.
    for mid, copies in local_files().items():
        assert copies == [server[mid]]
    rerun = run_sync(config)
    assert rerun.returncode == 0, rerun.stderr
    assert local_files() == {mid: [raw] for mid, raw in server.items()}
    assert server_count(ms) == 0


def test_an_untrusted_certificate_is_one_clear_error(ms: Mailstack, tmp_path: Path) -> None:
    config = write_config(tmp_path, ms)
    lines = config.read_text().splitlines()
    config.write_text("\n".join(line for line in lines if "ca_file" not in line))
    result = run_sync(config)
    assert result.returncode == 1
    assert "certificate" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert not (local_root() / "new").exists() or not any((local_root() / "new").iterdir())
