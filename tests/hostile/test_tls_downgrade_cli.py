"""STARTTLS downgrades end to end: `tui-mail sync` / `tui-mail send` as a user runs them,
with the config pointing at the MITM of tests/hostile/mitm.py in front of the REAL
Dovecot and Postfix.

Each test first syncs (or sends) through the same proxy in its harmless ``pass`` mode,
so the store is real and the path is proven, then new mail arrives on the server and
the attack starts. Pass: exit status 1 with exactly one stderr line giving the reason
(no traceback), the local store exactly as it was, nothing secret in plaintext, and
for a send: the message kept in the outbox, not lost and not sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from servers.harness import Mailstack, deliver_lmtp, reset_user_mail

from hostile.mitm import (
    Mitm,
    Mode,
    assert_nothing_leaked,
    assert_one_clear_line,
    refusal_for,
    run_cli,
    store_snapshot,
    write_config,
)

pytestmark = pytest.mark.servers

TIMEOUT = 2  # seconds: how long "OK but never TLS" is waited for


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    for user in ("alice", "bob"):
        reset_user_mail(mailstack, user)
    yield mailstack


def secret_file(tmp_path: Path, ms: Mailstack, user: str) -> Path:
    path = tmp_path / f"{user}.secret"
    path.write_text(ms.users[user])
    path.chmod(0o600)
    return path


def receive_config(tmp_path: Path, ms: Mailstack, backend: str, user: str, port: int) -> Path:
    return write_config(
        tmp_path / "config.toml",
        user,
        f"{user}@localhost",
        {
            "backend": backend,
            "host": "localhost",
            "port": port,
            "security": "starttls",
            "user": user,
            "password_command": f"cat {secret_file(tmp_path, ms, user)}",
            "ca_file": str(ms.ca_file),
            "timeout": TIMEOUT,
        },
        {"backend": "local", "path": str(tmp_path / "sent")},
    )


def mail_files(snapshot: dict[str, object]) -> int:
    files = snapshot["files"]
    assert isinstance(files, dict)
    return sum(1 for name in files if Path(name).parent.name in ("cur", "new"))


def message(token: str) -> bytes:
    return (
        f"From: alice@localhost\r\nTo: bob@localhost\r\nSubject: plans {token}\r\n"
        f"Message-ID: <{token}@localhost>\r\n\r\nBODY-{token}\r\n"
    ).encode()


IMAP_ATTACKS: list[tuple[Mode, bytes | None, tuple[str, ...]]] = [
    ("strip", None, ("does not offer STARTTLS", "no credentials were sent")),
    ("refuse", refusal_for("imap", "BAD"), ("refused STARTTLS",)),
    ("fake-ok", None, ("accepted STARTTLS", "did not complete the TLS handshake")),
    ("fake-ok-plaintext", None, ("accepted STARTTLS", "plaintext")),
    ("preauth", None, ("PREAUTH", "starttls")),
]


@pytest.mark.parametrize(
    "mode, refusal, words",
    IMAP_ATTACKS,
    ids=["strip", "refuse", "ok-then-silence", "ok-then-plaintext", "preauth"],
)
def test_imap_sync_under_a_downgrade_fails_clearly_and_keeps_the_store(
    ms: Mailstack,
    tmp_path: Path,
    isolated_dirs: SimpleNamespace,
    mode: Mode,
    refusal: bytes | None,
    words: tuple[str, ...],
) -> None:
    deliver_lmtp(ms, "alice", message(uuid.uuid4().hex))
    with Mitm("imap", (ms.host, ms.imap_port), "pass") as good:
        config = receive_config(tmp_path, ms, "imap", "alice", good.port)
        first = run_cli(config, "sync")
        assert first.returncode == 0, first.stderr
    before = store_snapshot(isolated_dirs.data, "alice")
    assert mail_files(before) == 1, before
    deliver_lmtp(ms, "alice", message(uuid.uuid4().hex))  # what a working sync would fetch

    with Mitm("imap", (ms.host, ms.imap_port), mode, refusal=refusal) as mitm:
        config = receive_config(tmp_path, ms, "imap", "alice", mitm.port)
        result = run_cli(config, "sync")
        mitm.wait_closed()
    line = assert_one_clear_line(result, *words)
    assert line.startswith("alice: error: ")
    assert store_snapshot(isolated_dirs.data, "alice") == before
    assert_nothing_leaked(mitm, "alice", ms.users["alice"])


POP3_ATTACKS: list[tuple[Mode, bytes | None, tuple[str, ...]]] = [
    ("strip", None, ("does not offer STLS", "no credentials were sent")),
    ("refuse", refusal_for("pop3"), ("refused STLS",)),
    ("fake-ok", None, ("accepted STLS", "did not complete the TLS handshake")),
]


@pytest.mark.parametrize(
    "mode, refusal, words", POP3_ATTACKS, ids=["strip", "refuse", "ok-then-silence"]
)
def test_pop3_sync_under_a_downgrade_fails_clearly_and_keeps_the_store(
    ms: Mailstack,
    tmp_path: Path,
    isolated_dirs: SimpleNamespace,
    mode: Mode,
    refusal: bytes | None,
    words: tuple[str, ...],
) -> None:
    deliver_lmtp(ms, "bob", message(uuid.uuid4().hex))
    with Mitm("pop3", (ms.host, ms.pop3_port), "pass") as good:
        config = receive_config(tmp_path, ms, "pop3", "bob", good.port)
        first = run_cli(config, "sync")
        assert first.returncode == 0, first.stderr
    before = store_snapshot(isolated_dirs.data, "bob")
    assert mail_files(before) == 1, before
    deliver_lmtp(ms, "bob", message(uuid.uuid4().hex))

    with Mitm("pop3", (ms.host, ms.pop3_port), mode, refusal=refusal) as mitm:
        config = receive_config(tmp_path, ms, "pop3", "bob", mitm.port)
        result = run_cli(config, "sync")
        mitm.wait_closed()
    line = assert_one_clear_line(result, *words)
    assert line.startswith("bob: error: ")
    assert store_snapshot(isolated_dirs.data, "bob") == before
    assert_nothing_leaked(mitm, "bob", ms.users["bob"])


SMTP_ATTACKS: list[tuple[Mode, bytes | None, tuple[str, ...]]] = [
    ("strip", None, ("does not offer STARTTLS",)),
    ("refuse", refusal_for("smtp"), ("refused STARTTLS", "454")),
    ("fake-ok", None, ("accepted STARTTLS", "did not complete the TLS handshake")),
    ("fake-ok-plaintext", None, ("accepted STARTTLS", "plaintext")),
]


@pytest.mark.parametrize(
    "mode, refusal, words",
    SMTP_ATTACKS,
    ids=["strip", "refuse", "ok-then-silence", "ok-then-plaintext"],
)
def test_smtp_send_under_a_downgrade_keeps_the_message_and_sends_nothing_in_clear(
    ms: Mailstack,
    tmp_path: Path,
    mode: Mode,
    refusal: bytes | None,
    words: tuple[str, ...],
) -> None:
    token = uuid.uuid4().hex

    def config(port: int) -> Path:
        return write_config(
            tmp_path / "config.toml",
            "alice",
            "alice@localhost",
            {"backend": "maildir", "path": str(tmp_path / "Maildir")},
            {
                "backend": "smtp",
                "host": "localhost",
                "port": port,
                "security": "starttls",
                "user": "alice",
                "password_command": f"cat {secret_file(tmp_path, ms, 'alice')}",
                "ca_file": str(ms.ca_file),
                "timeout": TIMEOUT,
            },
        )

    with Mitm("smtp", (ms.host, ms.submission_port), mode, refusal=refusal) as mitm:
        result = run_cli(config(mitm.port), "send", stdin=message(token))
        mitm.wait_closed()
    line = assert_one_clear_line(result, *words)
    assert line.startswith("tui-mail: alice: message ")
    assert_nothing_leaked(
        mitm, "alice", ms.users["alice"], token.encode(), b"alice@localhost", b"bob@localhost"
    )
    # Not lost: still in the outbox, and not filed as sent.
    listing = run_cli(config(1), "send", "--list")
    assert listing.returncode == 0 and f"plans {token}" in listing.stdout, listing
    assert not list(tmp_path.glob("Maildir/.Sent/cur/*"))

    # The same message goes out once the path is clean again: nothing was lost.
    with Mitm("smtp", (ms.host, ms.submission_port), "pass") as good:
        flushed = run_cli(config(good.port), "send", "--flush")
        good.wait_closed()
    assert flushed.returncode == 0, flushed.stderr
    assert_nothing_leaked(good, "alice", ms.users["alice"], token.encode())
