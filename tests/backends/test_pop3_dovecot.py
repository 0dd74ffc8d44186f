"""The POP3 backend against the harness's real Dovecot (POP3 + STLS, POP3S)."""

from __future__ import annotations

import poplib
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers.harness import Mailstack, deliver_lmtp, reset_user_mail

from tui_mail.backends.base import BackendContext
from tui_mail.backends.pop3.backend import Pop3ReceiveBackend
from tui_mail.backends.registry import backend_class
from tui_mail.config.schema import AccountConfig, EndpointConfig
from tui_mail.core.errors import AuthError, TLSError
from tui_mail.core.models import RemoteMessage, ServerId

pytestmark = pytest.mark.servers

USER = "bob"


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    reset_user_mail(mailstack, USER)  # each test starts from an empty maildrop
    yield mailstack


def make(
    ms: Mailstack,
    security: str = "starttls",
    *,
    ca: bool = True,
    password: str | None = None,
) -> Pop3ReceiveBackend:
    ep = EndpointConfig(
        backend="pop3",
        host=ms.host,
        port=ms.pop3s_port if security == "tls" else ms.pop3_port,
        security=security,  # type: ignore[arg-type]
        user=USER,
        password=ms.users[USER] if password is None else password,
        ca_file=ms.ca_file if ca else None,
        timeout=10.0,
        key_path="accounts.bob.receive",
    )
    acct = AccountConfig("bob", "bob@localhost", ep, EndpointConfig(backend="local"))
    return Pop3ReceiveBackend(BackendContext(acct, ep))


def sample(n: int) -> bytes:
    """Varied messages: 8-bit text, dot-stuffing cases, a long line, a larger body."""
    body = f"Message {n} – Grüße\n".encode()
    if n % 5 == 0:
        body += b".\n..two dots\n.leading dot\n"
    if n % 7 == 0:
        body += b"L" * 3000 + b"\n"  # beyond poplib's 2048-byte line bound
    if n % 10 == 3:
        body += b"".join(b"%07d abcdefghijklmnopqrstuvwxyz\n" % i for i in range(6000))
    return (
        f"From: Alice <alice@localhost>\nTo: bob@localhost\nSubject: pop3 test {n}\n"
        f"Message-ID: <pop3-{n}@tui-mail.test>\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    ).encode() + body


def deliver(ms: Mailstack, count: int) -> list[bytes]:
    sent = [sample(n) for n in range(count)]
    for raw in sent:
        deliver_lmtp(ms, USER, raw)
    return [re.sub(rb"\r?\n", b"\r\n", raw) for raw in sent]  # what LMTP carried


def dovecot_files(ms: Mailstack) -> dict[str, bytes]:
    """Message-ID -> the file Dovecot stored (Maildir, LF line endings)."""
    root = ms.dir / "mail" / USER / "Maildir"
    out: dict[str, bytes] = {}
    for path in [*(root / "new").iterdir(), *(root / "cur").iterdir()]:
        data = Path(path).read_bytes()
        m = re.search(rb"^Message-ID: (<[^>]+>)", data, re.M | re.I)
        assert m, path
        out[m.group(1).decode()] = data
    return out


def server_uidls(ms: Mailstack) -> list[str]:
    """What is on the server now, asked independently of the code under test."""
    pop = poplib.POP3_SSL(ms.host, ms.pop3s_port, context=ms.ssl_context(), timeout=10)
    try:
        pop.user(USER)
        pop.pass_(ms.users[USER])
        return [line.split()[1].decode() for line in pop.uidl()[1]]
    finally:
        pop.quit()


def message_id(msg: RemoteMessage) -> str:
    m = re.search(rb"^Message-ID: (<[^>]+>)", msg.raw, re.M | re.I)
    assert m
    return m.group(1).decode()


async def fetch(b: Pop3ReceiveBackend, known: set[str] | None = None) -> list[RemoteMessage]:
    return [m async for m in b.fetch_new("INBOX", known or set())]


# ---------------------------------------------------------------- fetching


async def test_fetch_50_byte_identical_then_nothing(ms: Mailstack) -> None:
    delivered = deliver(ms, 50)
    b = make(ms, "starttls")
    got = await fetch(b)
    await b.close()

    assert len(got) == 50
    stored = dovecot_files(ms)
    uidls = [m.server_id.uidl for m in got]
    assert uidls == server_uidls(ms) and len(set(uidls)) == 50
    for msg, sent in zip(got, delivered, strict=True):  # POP3 order is arrival order
        assert msg.folder == "INBOX"
        # Exactly Dovecot's stored bytes (it stores LF, POP3 sends CRLF) ...
        assert msg.raw == stored[message_id(msg)].replace(b"\n", b"\r\n")
        # ... and what we delivered, after the trace headers Dovecot prepends.
        assert msg.raw.endswith(sent) and msg.raw.startswith(b"Return-Path:")

    again = make(ms, "tls")
    assert await fetch(again, {u for u in uidls if u}) == []
    # Only the new one arrives in a later session.
    deliver_lmtp(ms, USER, sample(99))
    await again.close()
    newer = await fetch(again, {u for u in uidls if u})
    await again.close()
    assert [message_id(m) for m in newer] == ["<pop3-99@tui-mail.test>"]


async def test_registry_builds_it(ms: Mailstack) -> None:
    assert backend_class("pop3", "receive") is Pop3ReceiveBackend


# ---------------------------------------------------------------- TLS and login


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_verified_tls_both_ways(ms: Mailstack, security: str) -> None:
    deliver(ms, 2)
    text = await make(ms, security).check()
    assert "(TLS)" in text and "2 messages" in text


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_untrusted_certificate_is_refused(ms: Mailstack, security: str) -> None:
    with pytest.raises(TLSError, match=r"certificate .* not accepted.*ca_file"):
        await make(ms, security, ca=False).connect()


async def test_plaintext_on_loopback(ms: Mailstack) -> None:
    deliver(ms, 1)
    text = await make(ms, "none").check()
    assert "no encryption" in text and "1 message " in text


async def test_wrong_password(ms: Mailstack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Dovecot's auth penalty delays the next logins from an IP that failed one (by
    # seconds, growing), which would slow every later server test. Fail from 127.0.0.2.
    real = socket.create_connection

    def from_other_ip(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        kwargs["source_address"] = ("127.0.0.2", 0)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", from_other_ip)
    with pytest.raises(AuthError) as err:
        await make(ms, "starttls", password="not-the-password").connect()
    assert str(err.value).startswith(f"POP3 login to {ms.host}:{ms.pop3_port} as bob was refused")
    assert "not-the-password" not in str(err.value)


# ---------------------------------------------------------------- deleting


async def test_remove_then_close_deletes_exactly_those(ms: Mailstack) -> None:
    deliver(ms, 6)
    b = make(ms, "tls")
    got = await fetch(b)
    chosen = [got[0].server_id, got[3].server_id, got[5].server_id]
    await b.remove_from_server("INBOX", chosen)
    assert len(server_uidls(ms)) == 6  # marked only: nothing happens before QUIT
    await b.quit()
    left = server_uidls(ms)
    assert left == [m.server_id.uidl for i, m in enumerate(got) if i not in (0, 3, 5)]


async def test_drop_without_quit_deletes_nothing(ms: Mailstack) -> None:
    deliver(ms, 4)
    before = server_uidls(ms)
    b = make(ms, "starttls")
    await fetch(b)
    await b.remove_from_server("INBOX", [ServerId(uidl=u) for u in before])
    await b.abort()  # the socket is closed with no QUIT, as in a crash or a cut link
    assert server_uidls(ms) == before
    # A later session still deletes when asked to, from its own listing.
    await b.remove_from_server("INBOX", [ServerId(uidl=before[1])])
    await b.close()
    assert server_uidls(ms) == [before[0], *before[2:]]
