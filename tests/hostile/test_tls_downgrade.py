"""STARTTLS downgrade and injection against the REAL Dovecot and Postfix, through a MITM.

The attack classes of "Why TLS is better without STARTTLS" (USENIX Security 2021),
played by tests/hostile/mitm.py between our clients and the harness's servers (the
real servers cannot misbehave like this; everything else in the dialogue is real):
STARTTLS stripped from the capabilities, refused, answered OK with no TLS after it,
forged plaintext after the OK in the same packet, forged responses before TLS, and a
plaintext PREAUTH greeting.

Pass: the client fails with a TLSError naming the reason, and no credential, MAIL FROM
or message byte ever reaches the MITM in plaintext; or, where the attacker only
injected, the session goes on over real TLS and nothing injected reaches its state.
The ``pass`` mode is the control: the same proxy relays a working session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from servers.harness import Mailstack, deliver_lmtp, reset_user_mail

from hostile.mitm import INJECTED, Mitm, Mode, assert_nothing_leaked, refusal_for
from tui_mail.backends.base import BackendContext
from tui_mail.backends.imap.backend import ImapReceiveBackend
from tui_mail.backends.pop3.backend import Pop3ReceiveBackend
from tui_mail.backends.pop3.client import Pop3Session
from tui_mail.backends.smtp.backend import SmtpSendBackend
from tui_mail.config.schema import AccountConfig, EndpointConfig
from tui_mail.core.errors import TLSError

pytestmark = pytest.mark.servers

# Short: the "OK but never TLS" cases wait this long for a handshake that never comes.
TIMEOUT = 2.0


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    for user in ("alice", "bob"):
        reset_user_mail(mailstack, user)
    yield mailstack


def endpoint(ms: Mailstack, backend: str, port: int, user: str) -> EndpointConfig:
    return EndpointConfig(
        backend=backend,
        host="localhost",  # the harness certificate's name; the MITM listens there too
        port=port,
        security="starttls",
        user=user,
        password=ms.users[user],
        ca_file=ms.ca_file,
        timeout=TIMEOUT,
        key_path=f"accounts.{user}.{'send' if backend == 'smtp' else 'receive'}",
    )


def imap_backend(ms: Mailstack, port: int) -> ImapReceiveBackend:
    ep = endpoint(ms, "imap", port, "alice")
    account = AccountConfig(
        name="alice", email="alice@localhost", receive=ep, send=EndpointConfig(backend="local")
    )
    return ImapReceiveBackend(BackendContext(account, ep))


def pop3_backend(ms: Mailstack, port: int) -> Pop3ReceiveBackend:
    ep = endpoint(ms, "pop3", port, "bob")
    account = AccountConfig(
        name="bob", email="bob@localhost", receive=ep, send=EndpointConfig(backend="local")
    )
    return Pop3ReceiveBackend(BackendContext(account, ep))


def smtp_backend(ms: Mailstack, port: int) -> SmtpSendBackend:
    ep = endpoint(ms, "smtp", port, "alice")
    account = AccountConfig(
        name="alice", email="alice@localhost", receive=EndpointConfig(backend="maildir"), send=ep
    )
    return SmtpSendBackend(BackendContext(account, ep))


def message(token: str) -> bytes:
    return (
        f"From: alice@localhost\r\nTo: bob@localhost\r\nSubject: secret plans {token}\r\n"
        f"Message-ID: <{token}@localhost>\r\n\r\nBODY-{token} must never cross in clear\r\n"
    ).encode()


# Each downgrade: (mode, the refusal line for "refuse", words the error must contain).
IMAP_DOWNGRADES: list[tuple[Mode, bytes | None, str]] = [
    ("strip", None, "does not offer STARTTLS"),
    ("refuse", refusal_for("imap", "NO"), "refused STARTTLS"),
    ("refuse", refusal_for("imap", "BAD"), "refused STARTTLS"),
    ("fake-ok", None, "did not complete the TLS handshake"),
    ("fake-ok-plaintext", None, "answered in plaintext"),
    ("preauth", None, "PREAUTH"),
]
POP3_DOWNGRADES: list[tuple[Mode, bytes | None, str]] = [
    ("strip", None, "does not offer STLS"),
    ("refuse", refusal_for("pop3"), "refused STLS"),
    ("fake-ok", None, "did not complete the TLS handshake"),
    ("fake-ok-plaintext", None, "answered in plaintext"),
]
SMTP_DOWNGRADES: list[tuple[Mode, bytes | None, str]] = [
    ("strip", None, "does not offer STARTTLS"),
    ("refuse", refusal_for("smtp"), "refused STARTTLS: 454"),
    ("fake-ok", None, "did not complete the TLS handshake"),
    ("fake-ok-plaintext", None, "answered in plaintext"),
]
IDS_IMAP = ["strip", "refuse-NO", "refuse-BAD", "ok-then-silence", "ok-then-plaintext", "preauth"]
IDS_OTHER = ["strip", "refuse", "ok-then-silence", "ok-then-plaintext"]


# ---------------------------------------------------------------- the control case


async def test_the_proxy_relays_a_working_session_for_each_protocol(ms: Mailstack) -> None:
    """Without an attack the same MITM passes real sessions: a failure below is the
    client refusing, not the proxy being broken."""
    with Mitm("imap", (ms.host, ms.imap_port), "pass") as mitm:
        imap = imap_backend(ms, mitm.port)
        assert "INBOX" in [f.name for f in await imap.list_folders()]
        await imap.close()
        await mitm.settled()
    with Mitm("pop3", (ms.host, ms.pop3_port), "pass") as mitm:
        pop3 = pop3_backend(ms, mitm.port)
        await pop3.connect()
        await pop3.close()
        await mitm.settled()
    with Mitm("smtp", (ms.host, ms.submission_port), "pass") as mitm:
        result = await smtp_backend(ms, mitm.port).send(
            message(uuid.uuid4().hex), "alice@localhost", ["bob@localhost"]
        )
        assert result.accepted == ("bob@localhost",)
        await mitm.settled()
    # TLS really happened: the proxy only ever saw the password as ciphertext.
    assert_nothing_leaked(mitm, "alice", ms.users["alice"])


# ---------------------------------------------------------------- downgrades: refused


@pytest.mark.parametrize("mode, refusal, reason", IMAP_DOWNGRADES, ids=IDS_IMAP)
async def test_imap_downgrade_is_refused_before_credentials(
    ms: Mailstack, mode: Mode, refusal: bytes | None, reason: str
) -> None:
    with Mitm("imap", (ms.host, ms.imap_port), mode, refusal=refusal) as mitm:
        backend = imap_backend(ms, mitm.port)
        with pytest.raises(TLSError, match=reason):
            await backend.connect()
        await mitm.settled()
    assert_nothing_leaked(mitm, "alice", ms.users["alice"])
    # Nothing but the greeting dance before giving up: no SELECT/LIST in plaintext either.
    verbs = {line.split()[1].upper() for line in mitm.client_lines if len(line.split()) > 1}
    assert verbs <= {b"CAPABILITY", b"STARTTLS", b"LOGOUT"}, mitm.client_lines


@pytest.mark.parametrize("mode, refusal, reason", POP3_DOWNGRADES, ids=IDS_OTHER)
async def test_pop3_downgrade_is_refused_before_credentials(
    ms: Mailstack, mode: Mode, refusal: bytes | None, reason: str
) -> None:
    with Mitm("pop3", (ms.host, ms.pop3_port), mode, refusal=refusal) as mitm:
        backend = pop3_backend(ms, mitm.port)
        with pytest.raises(TLSError, match=reason):
            await backend.connect()
        await mitm.settled()
    assert_nothing_leaked(mitm, "bob", ms.users["bob"])
    assert {line.strip().upper() for line in mitm.client_lines} <= {b"CAPA", b"STLS", b"QUIT"}


@pytest.mark.parametrize("mode, refusal, reason", SMTP_DOWNGRADES, ids=IDS_OTHER)
async def test_smtp_downgrade_is_refused_before_auth_or_mail(
    ms: Mailstack, mode: Mode, refusal: bytes | None, reason: str
) -> None:
    token = uuid.uuid4().hex
    with Mitm("smtp", (ms.host, ms.submission_port), mode, refusal=refusal) as mitm:
        backend = smtp_backend(ms, mitm.port)
        with pytest.raises(TLSError, match=reason):
            await backend.send(message(token), "alice@localhost", ["bob@localhost"])
        await mitm.settled()
    assert_nothing_leaked(
        mitm, "alice", ms.users["alice"], token.encode(), b"alice@localhost", b"bob@localhost"
    )
    assert {line.split()[0].upper() for line in mitm.client_lines} <= {
        b"EHLO",
        b"STARTTLS",
        b"QUIT",
    }, mitm.client_lines


# ---------------------------------------------------------------- injection: ignored


@pytest.mark.parametrize("mode", ["inject-after-ok", "inject-before"])
async def test_imap_injected_plaintext_never_reaches_the_client_state(
    ms: Mailstack, mode: Mode
) -> None:
    """Forged CAPABILITY / EXISTS / EXPUNGE / tagged OK around STARTTLS: the session
    goes on over TLS with the capabilities asked again after the handshake."""
    deliver_lmtp(ms, "alice", message(uuid.uuid4().hex))
    with Mitm("imap", (ms.host, ms.imap_port), mode) as mitm:
        backend = imap_backend(ms, mitm.port)
        await backend.connect()
        conn = backend._conn
        assert conn is not None and conn.tls
        assert not any(INJECTED in cap for cap in conn.capabilities), conn.capabilities
        assert not any(INJECTED in cap for cap in backend.server_capabilities)
        assert "STARTTLS" not in conn.capabilities  # the list is the post-TLS one
        # Forged EXISTS/EXPUNGE would wake IDLE and be taken as mailbox news.
        assert list(conn.unsolicited) == [] and not conn.changed.is_set()
        assert backend.take_alerts() == []  # a forged [ALERT] never reaches the screen
        state = await backend.folder_state("INBOX")
        assert state.exists == 1  # the real count, not the forged 666/777
        await backend.close()
        await mitm.settled()
    assert_nothing_leaked(mitm, "alice", ms.users["alice"])


@pytest.mark.parametrize("mode", ["inject-after-ok", "inject-before"])
async def test_pop3_injected_plaintext_never_reaches_the_client_state(
    ms: Mailstack, mode: Mode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forged CAPA reply after +OK, or forged CAPA lines before STLS: the capabilities
    used for the login are the ones asked over TLS, and the session works."""
    seen: list[dict[str, list[str]] | None] = []
    real_capa = Pop3Session._capa

    def spy(self: Pop3Session) -> dict[str, list[str]] | None:
        caps = real_capa(self)
        seen.append(caps if self.tls else None)  # only what was asked over TLS counts
        return caps

    monkeypatch.setattr(Pop3Session, "_capa", spy)
    for _ in range(2):
        deliver_lmtp(ms, "bob", message(uuid.uuid4().hex))
    with Mitm("pop3", (ms.host, ms.pop3_port), mode) as mitm:
        backend = pop3_backend(ms, mitm.port)
        fetched = [m async for m in backend.fetch_new("INBOX", set())]
        await backend.close()
        await mitm.settled()
    assert len(fetched) == 2  # the real mailbox, read over TLS
    caps = [c for c in seen if c is not None]
    assert caps, "no CAPA over TLS"
    assert not any(INJECTED in " ".join([k, *v]) for c in caps for k, v in c.items()), caps
    assert_nothing_leaked(mitm, "bob", ms.users["bob"])


@pytest.mark.parametrize("mode", ["inject-after-ok", "inject-before"])
async def test_smtp_injected_plaintext_never_reaches_the_client_state(
    ms: Mailstack, mode: Mode
) -> None:
    """Forged EHLO lines before STARTTLS, or after its 220: the extensions and AUTH
    methods come from the EHLO over TLS, and the message goes out over TLS."""
    with Mitm("smtp", (ms.host, ms.submission_port), mode) as mitm:
        backend = smtp_backend(ms, mitm.port)
        client, how = await backend._open()
        try:
            assert how.startswith("STARTTLS (TLS")
            extensions = " ".join(client.esmtp_extensions).upper()
            assert INJECTED not in extensions, extensions
            assert not any(INJECTED in m.upper() for m in client.server_auth_methods)
        finally:
            client.close()
        token = uuid.uuid4().hex
        result = await backend.send(message(token), "alice@localhost", ["bob@localhost"])
        assert result.accepted == ("bob@localhost",)
        await mitm.settled()
    assert_nothing_leaked(mitm, "alice", ms.users["alice"], token.encode(), b"alice@localhost")
