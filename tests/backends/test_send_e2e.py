"""`tui-mail send` end to end, as a user runs it: through the outbox and the real Postfix
submission port (STARTTLS + AUTH), read back from Dovecot over IMAPS.

Plus the one crash window no client can close, against a scripted SMTP server that
swallows the message and never answers: the killed send is not repeated by itself.
"""

from __future__ import annotations

import imaplib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.utils import make_msgid
from pathlib import Path

import msgspec.structs
import pytest
from servers.harness import Mailstack, reset_user_mail

from tui_mail.compose.build import Attachment, Draft, build_message, message_bytes
from tui_mail.compose.build import parse_address_list as addrs
from tui_mail.compose.reply import reply
from tui_mail.config.schema import AccountConfig, EndpointConfig

SUBJECT = "Grüße aus Köln – ünïcödé ✓ 日本語"
BINARY = bytes(range(256)) * 64 + b"\r\n.\r\n\x00tail"
TEXT_ATTACHMENT = "Zeile 1\r\nzeile 2 ünï\n.\nno final newline".encode()


def account(ms_host: str = "localhost") -> AccountConfig:
    return AccountConfig(
        name="alice",
        email="alice@localhost",
        receive=EndpointConfig(backend="maildir"),
        send=EndpointConfig(backend="smtp", host=ms_host),
        display_name="Alïce Ünicode",
    )


def write_config(tmp_path: Path, ms: Mailstack | None, *, port: int, security: str) -> Path:
    tls = f'ca_file = "{ms.ca_file}"\n' if ms is not None else ""
    login = (
        f'user = "alice"\npassword_command = "printf %s {ms.users["alice"]}"\n'
        if ms is not None
        else ""
    )
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[accounts.alice]
email = "alice@localhost"
name = "Alïce Ünicode"

[accounts.alice.receive]
backend = "maildir"
path = "{tmp_path / "Maildir"}"

[accounts.alice.send]
backend = "smtp"
host = "127.0.0.1"
port = {port}
security = "{security}"
timeout = 10
{login}{tls}"""
    )
    path.chmod(0o600)
    return path


def run_send(config: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tui_mail", "--config", str(config), "send", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        env=os.environ.copy(),
    )


def copies(ms: Mailstack, user: str, token: str, *, want: int = 1, wait: float = 15.0) -> list:
    """Every message in `user`'s INBOX whose Message-ID carries `token`, once `want`
    have arrived (or `wait` seconds passed)."""
    deadline = time.monotonic() + wait
    with imaplib.IMAP4_SSL(ms.host, ms.imaps_port, ssl_context=ms.ssl_context()) as imap:
        imap.login(user, ms.users[user])
        while True:
            imap.select("INBOX")
            _, data = imap.search(None, "HEADER", "Message-ID", token)
            nums = data[0].split()
            if len(nums) >= want or time.monotonic() > deadline:
                found = []
                for num in nums:
                    _, parts = imap.fetch(num, "(BODY.PEEK[])")
                    found.append(parts[0][1])  # type: ignore[index]
                return found
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outbox_rows(state: str | None = None) -> list[tuple]:
    db = Path(os.environ["XDG_DATA_HOME"]) / "tui-mail" / "index.sqlite3"
    sql = "SELECT id, state, attempts, last_error FROM outbox"
    params: tuple = ()
    if state:
        sql, params = sql + " WHERE state = ?", (state,)
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql + " ORDER BY id", params).fetchall()
    finally:
        conn.close()


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    for user in ("alice", "bob", "catchall"):
        reset_user_mail(mailstack, user)
    yield mailstack


@pytest.mark.servers
def test_send_with_attachments_cc_and_bcc(ms: Mailstack, tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    draft = Draft(
        to=tuple(addrs("Bøb Ñandú <bob@localhost>")),
        cc=tuple(addrs('"Catch, All ✓" <catchall@localhost>')),
        bcc=tuple(addrs("Alïce <alice@localhost>")),
        subject=SUBJECT,
        body="Hallo Bob,\n\nΩμέγα, naïve café.\n.a line starting with a dot\n",
        attachments=(Attachment("daten.bin", BINARY), Attachment("notiz ü.txt", TEXT_ATTACHMENT)),
    )
    msg = build_message(draft, account(), message_id=make_msgid(token, "localhost"))
    config = write_config(tmp_path, ms, port=ms.submission_port, security="starttls")
    result = run_send(config, stdin=message_bytes(msg))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""

    for user in ("bob", "catchall", "alice"):
        (raw,) = copies(ms, user, token)
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert not re.search(rb"(?im)^bcc:", head), f"{user}'s copy has a Bcc header"
        assert b"alice@localhost" not in head.replace(b"for <alice@localhost>", b"").replace(
            b"<alice@localhost>", b""
        ).replace(b"Return-Path: <alice@localhost>", b""), user
        got = message_from_bytes(raw, policy=policy.default)
        assert got["Subject"] == SUBJECT
        assert got["From"].addresses[0].display_name == "Alïce Ünicode"
        assert got["To"].addresses[0].display_name == "Bøb Ñandú"
        assert got["Cc"].addresses[0].display_name == "Catch, All ✓"
        parts = list(got.iter_attachments())
        assert [p.get_filename() for p in parts] == ["daten.bin", "notiz ü.txt"]
        assert [p.get_payload(decode=True) for p in parts] == [BINARY, TEXT_ATTACHMENT]
    # The Sent copy is filed locally and keeps the Bcc for the sender's own record.
    sent = list((tmp_path / "Maildir" / ".Sent" / "cur").iterdir())
    assert len(sent) == 1 and b"Bcc: " in sent[0].read_bytes()
    assert outbox_rows("sent") and not outbox_rows("queued")


@pytest.mark.servers
def test_unreachable_stays_queued_then_flush_sends_once(ms: Mailstack, tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    raw = (
        f"From: alice@localhost\nTo: bob@localhost\nSubject: queued {token}\n"
        f"Message-ID: <{token}@localhost>\n\nsent later\n"
    ).encode()
    message_file = tmp_path / "message.eml"
    message_file.write_bytes(raw)
    down = write_config(tmp_path, ms, port=free_port(), security="starttls")
    result = run_send(down, str(message_file))
    assert result.returncode == 75, result.stderr.decode()
    (line,) = result.stderr.decode().splitlines()
    assert line.startswith("tui-mail: alice: message ")
    assert "queued for retry" in line and "Connection refused" in line
    [(id_, state, attempts, _)] = outbox_rows()
    assert (state, attempts) == ("failed", 1)
    assert copies(ms, "bob", token, wait=1) == []

    listing = run_send(down, "--list")
    assert listing.returncode == 0 and f"queued {token}" in listing.stdout.decode()

    up = write_config(tmp_path, ms, port=ms.submission_port, security="starttls")
    flushed = run_send(up, "--flush")
    assert flushed.returncode == 0, flushed.stderr.decode()
    assert len(copies(ms, "bob", token)) == 1
    again = run_send(up, "--flush")
    assert again.returncode == 0, again.stderr.decode()
    time.sleep(1)  # a duplicate would have arrived by now
    assert len(copies(ms, "bob", token, want=2, wait=1)) == 1
    assert outbox_rows() == [(id_, "sent", 2, "")]


@pytest.mark.servers
def test_reply_to_a_hostile_message_adds_no_header_or_recipient(
    ms: Mailstack, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex
    evil = "catchall@localhost"
    hostile = (
        f"From: =?utf-8?q?Bob=0D=0ABcc:_{evil}?= <bob@localhost>\r\n"
        f"To: alice@localhost, =?utf-8?q?x=0D=0ABcc:_{evil}?= <bob@localhost>\r\n"
        f"Subject: =?utf-8?q?plans=0D=0ABcc:_{evil}=0D=0AX-Injected:_1?=\r\n"
        "Message-ID: <hostile@localhost>\r\n\r\nhi\r\n"
    ).encode()
    draft = reply(hostile, account())
    draft = msgspec.structs.replace(draft, subject=draft.subject + f"\r\nBcc: {evil}")
    msg = build_message(draft, account(), message_id=make_msgid(token, "localhost"))
    config = write_config(tmp_path, ms, port=ms.submission_port, security="starttls")
    result = run_send(config, stdin=message_bytes(msg))
    assert result.returncode == 0, result.stderr.decode()

    (raw,) = copies(ms, "bob", token)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"(?im)^(bcc|x-injected):", head)
    got = message_from_bytes(raw, policy=policy.default)
    assert got["In-Reply-To"] == "<hostile@localhost>"
    assert [a.addr_spec for a in got["To"].addresses] == ["bob@localhost"]
    # (CPython may fold the whole subject onto a continuation line: legal, hence strip.)
    assert "\n" not in got["Subject"] and got["Subject"].strip().startswith("Re: plans Bcc: ")
    assert copies(ms, "catchall", token, wait=2) == []


@pytest.mark.servers
def test_invalid_address_is_refused_before_queueing(ms: Mailstack, tmp_path: Path) -> None:
    config = write_config(tmp_path, ms, port=ms.submission_port, security="starttls")
    result = run_send(config, stdin=b"From: alice@localhost\nTo: bob@, x@localhost\n\nx\n")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        "tui-mail: error: To: 'bob@' is not a valid address (not an address)"
    )


# --------------------------------------------------------------------------- the crash window


class SwallowingSmtp:
    """Accepts one message's data and never answers the final dot (first connection);
    behaves normally afterwards. Counts the DATA transactions it saw."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.data_seen = 0
        self.swallowed = threading.Event()
        self.hang = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        conn.sendall(b"220 fake ESMTP\r\n")
        try:
            for line in f:
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-fake\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    while f.readline() not in (b".\r\n", b""):
                        pass
                    self.data_seen += 1
                    if self.hang:
                        self.hang = False
                        self.swallowed.set()
                        time.sleep(3600)
                    conn.sendall(b"250 2.0.0 Ok: queued\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_killed_during_sending_is_uncertain_and_not_resent(tmp_path: Path) -> None:
    server = SwallowingSmtp()
    try:
        config = write_config(tmp_path, None, port=server.port, security="none")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tui_mail", "--config", str(config), "send"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
        proc.stdin.write(b"From: alice@localhost\nTo: bob@localhost\nSubject: window\n\nx\n")
        proc.stdin.close()
        assert server.swallowed.wait(60), "the message data never arrived"
        assert outbox_rows()[0][1] == "sending"
        proc.send_signal(signal.SIGKILL)  # killed after the data, before the server's reply
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()

        flushed = run_send(config, "--flush")
        assert flushed.returncode == 0, flushed.stderr.decode()  # nothing was due
        [(id_, state, attempts, error)] = outbox_rows()
        assert (state, attempts) == ("uncertain", 1)
        assert "may or may not have accepted it" in error
        assert f"--retry {id_}" in flushed.stderr.decode()
        assert server.data_seen == 1  # not sent again by itself

        resent = run_send(config, "--retry", str(id_))
        assert resent.returncode == 0, resent.stderr.decode()
        assert server.data_seen == 2
        assert outbox_rows() == [(id_, "sent", 2, "")]
    finally:
        server.close()


@pytest.mark.servers
def test_sync_sends_what_the_outbox_holds_when_due(ms: Mailstack, tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    raw = (
        f"From: alice@localhost\nTo: bob@localhost\nSubject: cron {token}\n"
        f"Message-ID: <{token}@localhost>\n\nsent by the next sync\n"
    ).encode()
    down = write_config(tmp_path, ms, port=free_port(), security="starttls")
    assert run_send(down, stdin=raw).returncode == 75
    up = write_config(tmp_path, ms, port=ms.submission_port, security="starttls")
    sync = [sys.executable, "-m", "tui_mail", "--config", str(up), "sync"]
    early = subprocess.run(sync, capture_output=True, timeout=120, env=os.environ.copy())
    assert early.returncode == 0, early.stderr.decode()
    assert copies(ms, "bob", token, wait=1) == []  # the retry is not due yet: backoff holds
    db = Path(os.environ["XDG_DATA_HOME"]) / "tui-mail" / "index.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE outbox SET retry_at = 1")  # as if the backoff had passed
    conn.close()
    due = subprocess.run(sync, capture_output=True, timeout=120, env=os.environ.copy())
    assert due.returncode == 0, due.stderr.decode()
    assert len(copies(ms, "bob", token)) == 1
    assert [r[1] for r in outbox_rows()] == ["sent"]
