"""SmtpSendBackend against scripted SMTP servers on 127.0.0.1: the cases a real Postfix
will not produce on demand (stripped or refused STARTTLS, XOAUTH2, partial refusal,
a silent server, a server without 8BITMIME)."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from tui_mail.backends.base import BackendContext
from tui_mail.backends.smtp.backend import RecipientsRefused, SmtpRefused, SmtpSendBackend
from tui_mail.config.schema import AccountConfig, EndpointConfig, Security
from tui_mail.core.errors import AuthError, ConfigError, ConnectError, MailError, TLSError

TOKEN = "ya29.fake-token"


def make_backend(
    port: int,
    security: Security = "none",
    *,
    host: str = "127.0.0.1",
    user: str | None = None,
    password: str | None = None,
    oauth_token_command: str | None = None,
    ca_file: Path | None = None,
    timeout: float = 5.0,
) -> SmtpSendBackend:
    ep = EndpointConfig(
        backend="smtp",
        host=host,
        port=port,
        security=security,
        user=user,
        password=password,
        oauth_token_command=oauth_token_command,
        ca_file=ca_file,
        timeout=timeout,
        key_path="accounts.test.send",
    )
    account = AccountConfig(
        name="test", email="alice@localhost", receive=EndpointConfig(backend="maildir"), send=ep
    )
    return SmtpSendBackend(BackendContext(account, ep))


def plain_message(body: str = "hello\n") -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "alice@localhost"
    msg["To"] = "bob@localhost"
    msg["Subject"] = "test"
    msg.set_content(body)
    return msg.as_bytes()


@dataclass
class FakeSmtp:
    """A scripted server. `ehlo`: the extension lines; `replies`: verb -> reply line
    (a callable gets the command line). Records every command line it receives."""

    ehlo: list[str] = field(default_factory=lambda: ["PIPELINING"])
    replies: dict[bytes, str | Callable[[bytes], str]] = field(default_factory=dict)
    greet: bool = True
    answer_quit: bool = True
    commands: list[bytes] = field(default_factory=list)
    data: list[bytes] = field(default_factory=list)
    port: int = 0

    def verbs(self) -> list[bytes]:
        return [c.split(b" ", 1)[0].strip().upper() for c in self.commands]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not self.greet:
                await reader.read()  # say nothing: the client must time out, not hang
                return
            writer.write(b"220 fake ESMTP\r\n")
            while line := await reader.readline():
                self.commands.append(line)
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb == b"EHLO":
                    lines = ["fake.test", *self.ehlo]
                    text = "".join(f"250-{x}\r\n" for x in lines[:-1]) + f"250 {lines[-1]}\r\n"
                    writer.write(text.encode())
                elif verb == b"QUIT":
                    if self.answer_quit:
                        writer.write(b"221 bye\r\n")
                    break
                elif verb in self.replies:
                    reply = self.replies[verb]
                    writer.write(((reply(line) if callable(reply) else reply) + "\r\n").encode())
                elif verb == b"MAIL" or verb == b"RCPT":
                    writer.write(b"250 2.1.0 ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    chunks = []
                    while (chunk := await reader.readline()) != b".\r\n":
                        if not chunk:
                            return
                        chunks.append(chunk)
                    self.data.append(b"".join(chunks))
                    writer.write(b"250 2.0.0 Ok: queued as FAKE1\r\n")
                    if not self.answer_quit:
                        await writer.drain()
                        return  # hang up before QUIT: the message is already accepted
                else:
                    writer.write(b"502 5.5.1 not implemented\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def fake() -> AsyncIterator[Callable[..., FakeSmtp]]:
    servers: list[asyncio.Server] = []

    async def start(**kwargs: object) -> FakeSmtp:
        fs = FakeSmtp(**kwargs)  # type: ignore[arg-type]
        server = await asyncio.start_server(fs.handle, "127.0.0.1", 0)
        servers.append(server)
        fs.port = server.sockets[0].getsockname()[1]
        return fs

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()
        await server.wait_closed()


# ------------------------------------------------------------------ STARTTLS downgrade


async def test_starttls_not_offered_is_tls_error_before_auth_or_mail(fake) -> None:
    fs = await fake(ehlo=["AUTH PLAIN LOGIN", "8BITMIME"])  # a stripped STARTTLS
    backend = make_backend(fs.port, "starttls", user="alice", password="secret")
    with pytest.raises(TLSError, match="does not offer STARTTLS"):
        await backend.send(plain_message(), "alice@localhost", ["bob@localhost"])
    assert fs.verbs() == [b"EHLO"]
    assert not any(b"secret" in c or b"c2VjcmV0" in c for c in fs.commands)


async def test_starttls_refused_with_454_is_tls_error_before_auth(fake) -> None:
    fs = await fake(
        ehlo=["STARTTLS", "AUTH PLAIN LOGIN"], replies={b"STARTTLS": "454 4.7.0 TLS not available"}
    )
    backend = make_backend(fs.port, "starttls", user="alice", password="secret")
    with pytest.raises(TLSError, match=re.escape("454 4.7.0 TLS not available")):
        await backend.check()
    assert fs.verbs() == [b"EHLO", b"STARTTLS"]


async def test_security_none_never_attempts_starttls(fake) -> None:
    fs = await fake(ehlo=["STARTTLS", "8BITMIME"])
    result = await make_backend(fs.port).send(plain_message(), "alice@localhost", ["b@x.test"])
    assert b"STARTTLS" not in fs.verbs()
    assert result.accepted == ("b@x.test",)
    assert "queued as FAKE1" in result.detail


async def test_plaintext_to_remote_host_needs_allow_plaintext() -> None:
    backend = make_backend(25, "none", host="mail.example.com")
    with pytest.raises(ConfigError, match="allow_plaintext"):
        await backend.send(plain_message(), "alice@localhost", ["bob@localhost"])


# ------------------------------------------------------------------ AUTH


async def test_xoauth2_sends_token_from_command(fake) -> None:
    fs = await fake(ehlo=["AUTH PLAIN XOAUTH2"], replies={b"AUTH": "235 2.7.0 accepted"})
    backend = make_backend(
        fs.port, user="alice@localhost", oauth_token_command=f"printf '{TOKEN}\\n'"
    )
    assert "XOAUTH2" in await backend.check()
    auth = next(c for c in fs.commands if c.startswith(b"AUTH"))
    _verb, mech, blob = auth.split()
    assert mech == b"XOAUTH2"
    assert base64.b64decode(blob) == f"user=alice@localhost\x01auth=Bearer {TOKEN}\x01\x01".encode()


async def test_xoauth2_refused_is_auth_error_with_reply(fake) -> None:
    def auth(line: bytes) -> str:
        if line.startswith(b"AUTH"):
            return "334 eyJzdGF0dXMiOiI0MDEifQ=="
        return "535 5.7.8 Username and Password not accepted"

    fs = await fake(ehlo=["AUTH XOAUTH2"], replies={b"AUTH": auth, b"": auth})
    fs.replies[b"\r\n"] = auth  # the empty line that answers the error challenge
    backend = make_backend(fs.port, user="alice", oauth_token_command="echo tok")
    with pytest.raises(AuthError) as err:
        await backend.check()
    text = str(err.value)
    assert f"127.0.0.1:{fs.port}" in text and "alice" in text
    assert "535 5.7.8 Username and Password not accepted" in text


async def test_xoauth2_not_offered_is_auth_error(fake) -> None:
    fs = await fake(ehlo=["AUTH PLAIN LOGIN"])
    backend = make_backend(fs.port, user="alice", oauth_token_command="echo tok")
    with pytest.raises(AuthError, match="does not offer XOAUTH2"):
        await backend.check()
    assert b"AUTH" not in fs.verbs()


async def test_wrong_password_costs_exactly_one_attempt(fake) -> None:
    fs = await fake(
        ehlo=["AUTH CRAM-MD5 PLAIN LOGIN"],
        replies={b"AUTH": "535 5.7.8 Error: authentication failed"},
    )
    backend = make_backend(fs.port, user="alice", password="wrong")
    with pytest.raises(AuthError, match=re.escape("535 5.7.8 Error: authentication failed")):
        await backend.send(plain_message(), "alice@localhost", ["bob@localhost"])
    assert fs.verbs().count(b"AUTH") == 1
    assert b"MAIL" not in fs.verbs()


async def test_sender_refused_for_want_of_login_is_auth_error(fake) -> None:
    fs = await fake(replies={b"MAIL": "530 5.7.0 Authentication required"})
    with pytest.raises(AuthError, match=re.escape("530 5.7.0")):
        await make_backend(fs.port).send(plain_message(), "alice@localhost", ["bob@localhost"])


# ------------------------------------------------------------------ recipients


def refuse_nobody(line: bytes) -> str:
    if b"nobody" in line:
        return "550 5.1.1 <nobody@localhost>: Recipient address rejected: User unknown"
    if b"later" in line:
        return "450 4.2.0 mailbox busy"
    return "250 2.1.5 ok"


async def test_partial_acceptance_returns_the_accepted_and_names_the_refused(fake) -> None:
    fs = await fake(replies={b"RCPT": refuse_nobody})
    result = await make_backend(fs.port).send(
        plain_message(), "alice@localhost", ["bob@localhost", "nobody@localhost"]
    )
    assert result.accepted == ("bob@localhost",)
    assert "nobody@localhost: 550 5.1.1" in result.detail and "User unknown" in result.detail
    assert len(fs.data) == 1  # sent once; the caller must not retry for bob


async def test_all_recipients_refused_lists_each_and_sends_nothing(fake) -> None:
    fs = await fake(replies={b"RCPT": refuse_nobody})
    with pytest.raises(RecipientsRefused) as err:
        await make_backend(fs.port).send(
            plain_message(), "alice@localhost", ["nobody@localhost", "later@localhost"]
        )
    assert set(err.value.refused) == {"nobody@localhost", "later@localhost"}
    assert "nobody@localhost: 550" in str(err.value) and "later@localhost: 450" in str(err.value)
    assert not err.value.retryable  # one 5xx: retrying will not help
    assert fs.data == [] and b"DATA" not in fs.verbs()


async def test_data_refused_is_smtp_refused(fake) -> None:
    fs = await fake(replies={b"DATA": "554 5.7.1 spam"})
    with pytest.raises(SmtpRefused, match=re.escape("554 5.7.1 spam")):
        await make_backend(fs.port).send(plain_message(), "alice@localhost", ["bob@localhost"])


@pytest.mark.parametrize(
    "address",
    ["bob@localhost\r\nRCPT TO:<evil@x.test>", "bob@localhost, evil@x.test", "Bob <b@x.test>", ""],
)
async def test_bad_envelope_address_is_refused_before_connecting(fake, address: str) -> None:
    fs = await fake()
    with pytest.raises(MailError, match="invalid address"):
        await make_backend(fs.port).send(plain_message(), "alice@localhost", [address])
    assert fs.commands == []


# ------------------------------------------------------------------ message handling


@pytest.mark.parametrize("header", ["Bcc", "Resent-Bcc", "bcc"])
async def test_bcc_header_is_refused_before_connecting(header: str) -> None:
    raw = b"From: a@x.test\r\nTo: b@x.test\r\n" + header.encode() + b": c@x.test\r\n\r\nhi\r\n"
    backend = make_backend(1)  # nothing listens on port 1: connecting would fail differently
    with pytest.raises(MailError, match="Bcc header"):
        await backend.send(raw, "a@x.test", ["b@x.test", "c@x.test"])


async def test_8bit_body_uses_8bitmime_when_offered(fake) -> None:
    fs = await fake(ehlo=["8BITMIME", "SMTPUTF8"])
    raw = plain_message("Grüße, Ωμέγα\n")
    assert not raw.isascii()
    await make_backend(fs.port).send(raw, "alice@localhost", ["bob@localhost"])
    mail = next(c for c in fs.commands if c.startswith(b"MAIL"))
    assert b"BODY=8BITMIME" in mail and b"SMTPUTF8" not in mail  # ASCII addresses/headers


async def test_8bit_body_is_reencoded_without_8bitmime(fake) -> None:
    fs = await fake(ehlo=["PIPELINING"])
    await make_backend(fs.port).send(plain_message("Grüße, Ωμέγα\n"), "a@x.test", ["b@x.test"])
    mail = next(c for c in fs.commands if c.startswith(b"MAIL"))
    assert b"BODY=" not in mail
    (data,) = fs.data
    assert data.isascii()
    body = message_from_bytes(data, policy=policy.default).get_content()  # type: ignore[attr-defined]
    assert body.replace("\r\n", "\n") == "Grüße, Ωμέγα\n"


async def test_non_ascii_address_needs_smtputf8(fake) -> None:
    fs = await fake(ehlo=["8BITMIME", "SMTPUTF8"])
    await make_backend(fs.port).send(plain_message(), "alice@localhost", ["jürgen@x.test"])
    mail = next(c for c in fs.commands if c.startswith(b"MAIL"))
    assert b"SMTPUTF8" in mail
    fs2 = await fake(ehlo=["8BITMIME"])
    with pytest.raises(MailError, match="SMTPUTF8"):
        await make_backend(fs2.port).send(plain_message(), "alice@localhost", ["jürgen@x.test"])
    assert b"MAIL" not in fs2.verbs()


async def test_lost_quit_after_acceptance_is_still_success(fake) -> None:
    fs = await fake(answer_quit=False)
    result = await make_backend(fs.port).send(plain_message(), "a@x.test", ["b@x.test"])
    assert result.accepted == ("b@x.test",)


# ------------------------------------------------------------------ connection failures


async def test_silent_server_times_out_as_connect_error(fake) -> None:
    fs = await fake(greet=False)
    start = time.monotonic()
    with pytest.raises(ConnectError, match=re.escape("no answer within 0.5 seconds")):
        await make_backend(fs.port, "starttls", timeout=0.5).check()
    assert time.monotonic() - start < 3


async def test_connection_refused_is_connect_error() -> None:
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectError, match=re.escape(f"127.0.0.1:{port}: Connection refused")):
        await make_backend(port, "tls").check()


async def _hang_up_server(after: bytes) -> tuple[asyncio.Server, int]:
    """Answers normally until it has received `after` (a verb, or b"." for the end of
    the message data), then closes the connection without a reply."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake ESMTP\r\n")
        in_data = False
        while line := await reader.readline():
            if in_data:
                if line == b".\r\n":
                    if after == b".":
                        break
                    writer.write(b"250 queued\r\n")
                    in_data = False
                continue
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == after:
                break
            if verb == b"EHLO":
                writer.write(b"250-fake.test\r\n250 PIPELINING\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                in_data = True
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(("after", "uncertain"), [(b"RCPT", False), (b".", True)])
async def test_a_drop_is_uncertain_only_once_data_went_out(after: bytes, uncertain: bool) -> None:
    server, port = await _hang_up_server(after)
    try:
        with pytest.raises(ConnectError) as caught:
            await make_backend(port).send(plain_message(), "a@x.test", ["b@x.test"])
        assert getattr(caught.value, "delivery_uncertain", None) is uncertain
    finally:
        server.close()
        await server.wait_closed()
