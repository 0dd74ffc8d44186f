"""The IMAP client and backend against a scripted in-test server: only what the real
Dovecot cannot be made to do (no STARTTLS, a refused STARTTLS, PREAUTH, injected
plaintext before the TLS handshake, oversized literals, silence, BYE instead of
"+ idling", a cut mid-FETCH, XOAUTH2, LOGIN with a synchronising literal)."""

from __future__ import annotations

import asyncio
import base64
import ssl
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tui_mail.backends.base import BackendContext
from tui_mail.backends.imap.backend import ImapReceiveBackend
from tui_mail.backends.imap.client import ImapConnection, ImapSettings
from tui_mail.backends.imap.parse import Limits
from tui_mail.config.schema import AccountConfig, EndpointConfig
from tui_mail.core.errors import AuthError, ConnectError, ProtocolError, TLSError

PASSWORD = "s3cret-Pässword"
CAPS = "IMAP4rev1 AUTH=PLAIN SASL-IR LITERAL+ IDLE UIDPLUS"

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# An answer: bytes to send, None to hang up, or a coroutine that does its own I/O.
Answer = bytes | None | Callable[[Stream], Awaitable[None]]
Handler = Callable[[str, str], Answer]


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1; it is also its own CA file."""
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "server.crt", d / "server.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(crt), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return crt, key


class FakeImap:
    """A tiny IMAP server: a greeting, default answers, and per-verb overrides."""

    def __init__(
        self,
        *,
        greeting: bytes = b"* OK fake ready\r\n",
        caps: str = CAPS,
        overrides: dict[str, Handler] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.greeting = greeting
        self.caps = caps
        self.overrides = overrides or {}
        self.tls = tls
        self.received: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeImap:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def verbs(self) -> list[str]:
        out = []
        for line in self.received:
            words = line.split()
            if len(words) >= 2:
                out.append(words[1].decode("ascii", "replace").upper())
        return out

    @property
    def wire(self) -> bytes:
        return b"".join(self.received)

    def answer(self, tag: str, verb: str, rest: str) -> Answer:
        if verb in self.overrides:
            return self.overrides[verb](tag, rest)
        if verb == "CAPABILITY":
            return f"* CAPABILITY {self.caps}\r\n{tag} OK done\r\n".encode()
        if verb == "AUTHENTICATE":
            mech, _, b64 = rest.partition(" ")
            raw = base64.b64decode(b64)
            ok = mech.upper() == "PLAIN" and raw == b"\0alice\0" + PASSWORD.encode()
            return f"{tag} {'OK' if ok else 'NO [AUTHENTICATIONFAILED] no'} x\r\n".encode()
        if verb in ("ENABLE", "NOOP", "CHECK"):
            return f"{tag} OK done\r\n".encode()
        if verb in ("SELECT", "EXAMINE"):
            return (
                f"* 2 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 3] n\r\n{tag} OK sel\r\n"
            ).encode()
        if verb == "LIST":
            return f'* LIST () "/" INBOX\r\n{tag} OK done\r\n'.encode()
        if verb == "LOGOUT":
            return f"* BYE bye\r\n{tag} OK done\r\n".encode()
        return f"{tag} BAD unknown\r\n".encode()

    async def _send(self, stream: Stream, answer: Answer) -> bool:
        if answer is None:
            return False
        if callable(answer):
            await answer(stream)
        else:
            stream[1].write(answer)
        await stream[1].drain()
        return True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not await self._send((reader, writer), self.greeting):
                return
            while line := await reader.readline():
                # A synchronising literal: say "+", then read it and the rest of the line.
                while line.rstrip().endswith(b"}") and b"{" in line:
                    size_text = line.rstrip()[line.rstrip().rindex(b"{") + 1 : -1]
                    if not size_text.endswith(b"+"):
                        writer.write(b"+ go on\r\n")
                        await writer.drain()
                    line += await reader.readexactly(int(size_text.rstrip(b"+")))
                    line += await reader.readline()
                self.received.append(line)
                words = line.decode("utf-8", "replace").rstrip("\r\n").split(" ", 2)
                if len(words) < 2:
                    continue
                tag, verb = words[0], words[1].upper()
                rest = words[2] if len(words) > 2 else ""
                if verb == "STARTTLS" and "STARTTLS" not in self.overrides:
                    await self._starttls(reader, writer, tag)
                    continue
                if not await self._send((reader, writer), self.answer(tag, verb, rest)):
                    return
                if verb == "LOGOUT":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _starttls(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tag: str
    ) -> None:
        assert self.tls is not None
        # An attacker's bytes ride along with the OK, before the handshake: a fake
        # capability list (LOGINDISABLED would break the login if believed) and a
        # fake completion for the client's next command.
        writer.write(
            f"{tag} OK begin TLS\r\n* CAPABILITY IMAP4rev1 LOGINDISABLED\r\nT3 OK fake\r\n".encode()
        )
        await writer.drain()
        await writer.start_tls(self.tls)
        self.caps = self.caps.replace("STARTTLS", "").replace("  ", " ")


def settings(
    port: int, security: str = "none", ca: Path | None = None, **kw: object
) -> ImapSettings:
    return ImapSettings(
        host="127.0.0.1",
        port=port,
        security=security,  # type: ignore[arg-type]
        user="alice",
        ca_file=ca,
        timeout=kw.pop("timeout", 5.0),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def server_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def no_credentials(fake: FakeImap) -> None:
    assert "LOGIN" not in fake.verbs and "AUTHENTICATE" not in fake.verbs
    assert PASSWORD.encode() not in fake.wire
    assert base64.b64encode(b"\0alice\0" + PASSWORD.encode()) not in fake.wire


# ---------------------------------------------------------------- STARTTLS refusals


async def test_starttls_missing_is_a_tls_error_before_credentials() -> None:
    async with FakeImap(caps="IMAP4rev1 AUTH=PLAIN") as fake:
        conn = ImapConnection(settings(fake.port, "starttls"))
        with pytest.raises(TLSError, match="does not offer STARTTLS"):
            await conn.open(lambda: PASSWORD)
    no_credentials(fake)
    assert not conn.alive


async def test_starttls_refused_is_a_tls_error_before_credentials() -> None:
    refuse: Handler = lambda tag, rest: f"{tag} NO [UNAVAILABLE] not today\r\n".encode()  # noqa: E731
    async with FakeImap(caps="IMAP4rev1 STARTTLS", overrides={"STARTTLS": refuse}) as fake:
        with pytest.raises(TLSError, match="refused STARTTLS: not today"):
            await ImapConnection(settings(fake.port, "starttls")).open(lambda: PASSWORD)
    no_credentials(fake)


async def test_preauth_on_a_starttls_account_is_refused() -> None:
    async with FakeImap(greeting=b"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n") as fake:
        with pytest.raises(TLSError, match="PREAUTH"):
            await ImapConnection(settings(fake.port, "starttls")).open(lambda: PASSWORD)
    assert fake.received == []


async def test_preauth_on_loopback_plaintext_is_fine() -> None:
    async with FakeImap(greeting=b"* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n") as fake:
        conn = ImapConnection(settings(fake.port))
        await conn.open(lambda: PASSWORD)
        assert conn.authenticated and conn.capabilities == {"IMAP4REV1"}
        await conn.logout()
    no_credentials(fake)


async def test_plaintext_sent_before_the_handshake_is_discarded(cert: tuple[Path, Path]) -> None:
    async with FakeImap(caps=f"{CAPS} STARTTLS", tls=server_tls(cert)) as fake:
        conn = ImapConnection(settings(fake.port, "starttls", ca=cert[0]))
        await conn.open(lambda: PASSWORD)
        assert conn.tls and conn.authenticated
        assert "LOGINDISABLED" not in conn.capabilities  # the injected list was not read
        assert (await conn.command(b"NOOP")).ok
        await conn.logout()
    # CAPABILITY again after TLS, then the login.
    assert fake.verbs[:4] == ["CAPABILITY", "STARTTLS", "CAPABILITY", "AUTHENTICATE"]


async def test_starttls_with_an_untrusted_certificate(cert: tuple[Path, Path]) -> None:
    async with FakeImap(caps=f"{CAPS} STARTTLS", tls=server_tls(cert)) as fake:
        with pytest.raises(TLSError, match="certificate"):
            await ImapConnection(settings(fake.port, "starttls")).open(lambda: PASSWORD)
    no_credentials(fake)


# ---------------------------------------------------------------- bounds, silence, drops


def fetch_answer(body: bytes) -> Handler:
    return lambda tag, rest: (
        b"* 1 FETCH (UID 1 FLAGS () BODY[] {%d}\r\n" % len(body)
        + body
        + b")\r\n"
        + f"{tag} OK done\r\n".encode()
    )


async def test_literal_over_the_limit_kills_the_connection_not_the_memory() -> None:
    async def huge(stream: Stream) -> None:
        # Announce 10 GB and start sending: the client must stop at the announcement.
        stream[1].write(b"* 1 FETCH (UID 1 BODY[] {10000000000}\r\n" + b"x" * 65536)

    async with FakeImap(overrides={"UID": lambda tag, rest: huge}) as fake:
        conn = ImapConnection(settings(fake.port, limits=Limits(max_literal=1_000_000)))
        await conn.open(lambda: PASSWORD)
        with pytest.raises(ProtocolError, match="literal of 10000000000 bytes"):
            async for _ in conn.fetch_stream([b"UID FETCH 1 (UID BODY.PEEK[])"]):
                pass
        assert not conn.alive
        with pytest.raises(ConnectError):
            await conn.command(b"NOOP")


async def test_a_flood_of_tokens_kills_the_connection_not_the_memory() -> None:
    """Short lines that parse into many objects: one past max_tokens, or many kept
    for one command past max_untagged, each counted by its tokens, not its bytes."""

    def flood(lines: int, lists: int) -> Handler:
        line = b"* 1 FOO " + b"()" * lists + b"\r\n"
        return lambda tag, rest: line * lines + f"{tag} OK done\r\n".encode()

    limits = Limits(max_tokens=10_000, max_untagged=2_000_000)
    refused = [
        (1, 20_000, "more than 10000 tokens"),
        # 40 lines of 5,000 lists: 400 kB on the wire, ~12 MB as objects.
        (40, 5_000, "more than 2000000 bytes of responses"),
    ]
    for lines, lists, error in refused:
        async with FakeImap(overrides={"NOOP": flood(lines, lists)}) as fake:
            conn = ImapConnection(settings(fake.port, limits=limits))
            await conn.open(lambda: PASSWORD)
            with pytest.raises(ProtocolError, match=error):
                await conn.command(b"NOOP")
            assert not conn.alive
    # Within the bounds, the same responses are simply kept.
    async with FakeImap(overrides={"NOOP": flood(2, 5_000)}) as fake:
        conn = ImapConnection(settings(fake.port, limits=limits))
        await conn.open(lambda: PASSWORD)
        result = await conn.command(b"NOOP")
        assert [len(r.args) for r in result.named("FOO")] == [5_000, 5_000]
        await conn.logout()


async def test_backend_skips_nothing_silently_with_a_normal_literal() -> None:
    body = b"Subject: hi\r\n\r\nhello\r\n"
    overrides: dict[str, Handler] = {"UID": fetch_answer(body)}
    async with FakeImap(overrides=overrides) as fake:
        conn = ImapConnection(settings(fake.port))
        await conn.open(lambda: PASSWORD)
        got = [d async for d in conn.fetch_stream([b"UID FETCH 1 (UID BODY.PEEK[])"])]
        assert [(d.uid, d.body) for d in got] == [(1, body)]
        await conn.logout()


async def test_a_silent_server_times_out_and_the_connection_is_dead() -> None:
    async def never(stream: Stream) -> None:
        await asyncio.sleep(30)

    async with FakeImap(overrides={"SELECT": lambda tag, rest: never}) as fake:
        conn = ImapConnection(settings(fake.port, timeout=0.5))
        await conn.open(lambda: PASSWORD)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ConnectError, match=r"did not answer within 0\.5 seconds"):
            await conn.command(b"SELECT INBOX")
        assert loop.time() - start < 2
        assert not conn.alive


async def test_a_server_silent_after_authenticate_times_out_cleanly() -> None:
    # Without SASL-IR the client waits for the "+" continuation: a timeout there must
    # be the connection's ConnectError, not an error about the waiting itself.
    async def never(stream: Stream) -> None:
        await asyncio.sleep(30)

    caps = CAPS.replace(" SASL-IR", "")
    async with FakeImap(caps=caps, overrides={"AUTHENTICATE": lambda tag, rest: never}) as fake:
        conn = ImapConnection(settings(fake.port, timeout=0.5))
        with pytest.raises(ConnectError, match=r"did not answer within 0\.5 seconds"):
            await conn.open(lambda: PASSWORD)
        assert not conn.alive


async def test_bye_instead_of_idling_does_not_hang() -> None:
    bye: Handler = lambda tag, rest: b"* BYE shutting down\r\n"  # noqa: E731
    async with FakeImap(overrides={"IDLE": bye}) as fake:
        conn = ImapConnection(settings(fake.port, timeout=5.0))
        await conn.open(lambda: PASSWORD)

        async def hang_up(stream: Stream) -> None:
            stream[1].write(b"* BYE shutting down\r\n")
            await stream[1].drain()
            stream[1].close()

        fake.overrides["IDLE"] = lambda tag, rest: hang_up
        with pytest.raises(ConnectError, match="closed the connection: shutting down"):
            await asyncio.wait_for(conn.idle(60), 3)


async def test_cut_in_the_middle_of_a_fetch() -> None:
    async def half(stream: Stream) -> None:
        stream[1].write(b"* 1 FETCH (UID 1 BODY[] {100}\r\nonly part of it")
        await stream[1].drain()
        stream[1].close()

    async with FakeImap(overrides={"UID": lambda tag, rest: half}) as fake:
        conn = ImapConnection(settings(fake.port))
        await conn.open(lambda: PASSWORD)
        with pytest.raises(ConnectError, match="closed the connection"):
            async for _ in conn.fetch_stream([b"UID FETCH 1 (UID BODY.PEEK[])"]):
                pass


async def test_unsolicited_updates_wake_idle() -> None:
    def idle(tag: str, rest: str) -> Answer:
        async def idling(stream: Stream) -> None:
            stream[1].write(b"+ idling\r\n")
            await stream[1].drain()
            await asyncio.sleep(0.2)
            stream[1].write(b"* 3 EXISTS\r\n")
            await stream[1].drain()
            done = await stream[0].readline()
            assert done == b"DONE\r\n"
            stream[1].write(f"{tag} OK idle done\r\n".encode())

        return idling

    async with FakeImap(overrides={"IDLE": idle}) as fake:
        conn = ImapConnection(settings(fake.port))
        await conn.open(lambda: PASSWORD)
        assert await asyncio.wait_for(conn.idle(30), 5) is True
        assert conn.alive and (await conn.command(b"NOOP")).ok


async def test_a_slow_consumer_pauses_reading_instead_of_buffering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tui_mail.backends.imap.client as client

    monkeypatch.setattr(client, "_HIGH_WATER", 300_000)
    monkeypatch.setattr(client, "_LOW_WATER", 100_000)
    body = b"x" * 65536

    def many(tag: str, rest: str) -> bytes:
        out = b"".join(
            b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (i, i, len(body)) + body + b")\r\n"
            for i in range(1, 41)
        )
        return out + f"{tag} OK done\r\n".encode()

    async with FakeImap(overrides={"UID": many}) as fake:
        conn = ImapConnection(settings(fake.port, timeout=2.0))
        await conn.open(lambda: PASSWORD)
        pauses: list[int] = []
        real_pause = conn.pause_reading

        def spy() -> None:
            pauses.append(1)
            real_pause()

        conn.pause_reading = spy  # type: ignore[method-assign]
        got = []
        async for data in conn.fetch_stream([b"UID FETCH 1:40 (UID BODY.PEEK[])"]):
            got.append(data.uid)
            await asyncio.sleep(0.06)  # slower than the network; 40 x 0.06 s > timeout
        assert got == list(range(1, 41)) and pauses and conn.alive
        await conn.logout()


# ---------------------------------------------------------------- authentication


async def test_login_with_a_synchronising_literal_when_there_is_no_plain() -> None:
    def login(tag: str, rest: str) -> bytes:
        ok = rest.endswith(PASSWORD) and rest.startswith('"alice" {')
        return f"{tag} {'OK' if ok else 'NO'} login\r\n".encode()

    async with FakeImap(caps="IMAP4rev1", overrides={"LOGIN": login}) as fake:
        conn = ImapConnection(settings(fake.port))
        await conn.open(lambda: PASSWORD)  # non-ASCII password: a literal, after "+"
        assert conn.authenticated
        await conn.logout()
    (login_line,) = [line for line in fake.received if b" LOGIN " in line]
    n = len(PASSWORD.encode())
    assert b"{%d}\r\n" % n in login_line  # synchronising: the server said "+" first


async def test_wrong_password_and_logindisabled() -> None:
    async with FakeImap() as fake:
        with pytest.raises(AuthError, match="was refused"):
            await ImapConnection(settings(fake.port)).open(lambda: "wrong")
    async with FakeImap(caps="IMAP4rev1 LOGINDISABLED") as fake:
        with pytest.raises(AuthError, match="LOGINDISABLED"):
            await ImapConnection(settings(fake.port)).open(lambda: PASSWORD)
    no_credentials(fake)


def oauth_backend(port: int, command: str) -> ImapReceiveBackend:
    ep = EndpointConfig(
        backend="imap",
        host="127.0.0.1",
        port=port,
        security="none",
        user="alice",
        oauth_token_command=command,
        timeout=5.0,
        key_path="accounts.a.receive",
    )
    acct = AccountConfig("a", "alice@example.test", ep, EndpointConfig(backend="local"))
    return ImapReceiveBackend(BackendContext(acct, ep))


async def test_xoauth2_with_a_token_from_the_command() -> None:
    seen: list[bytes] = []

    def auth(tag: str, rest: str) -> Answer:
        _, _, b64 = rest.partition(" ")
        seen.append(base64.b64decode(b64))
        if seen[-1] == b"user=alice\x01auth=Bearer tok-123\x01\x01":
            return f"{tag} OK welcome\r\n".encode()

        async def challenge(stream: Stream) -> None:
            stream[1].write(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n")
            await stream[1].drain()
            assert await stream[0].readline() == b"\r\n"  # the client's empty reply
            stream[1].write(f"{tag} NO [AUTHENTICATIONFAILED] bad token\r\n".encode())

        return challenge

    caps = "IMAP4rev1 AUTH=XOAUTH2 SASL-IR ENABLE"
    async with FakeImap(caps=caps, overrides={"AUTHENTICATE": auth}) as fake:
        b = oauth_backend(fake.port, "echo tok-123")
        await b.connect()
        await b.close()
        bad = oauth_backend(fake.port, "echo expired")
        with pytest.raises(AuthError, match="bad token"):
            await bad.connect()
    assert seen[0] == b"user=alice\x01auth=Bearer tok-123\x01\x01"


@pytest.fixture(autouse=True)
def _quiet_loop_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # Dropped TLS connections make asyncio log at ERROR; the tests assert on errors raised.
    caplog.set_level("CRITICAL", logger="asyncio")
    yield


async def test_server_alerts_reach_the_user_once_and_inert(tmp_path: Path) -> None:
    """RFC 3501 7.1: [ALERT] text must be shown; it comes from the server, so inert."""
    from tui_mail.core import commands as cmd
    from tui_mail.core import events as ev
    from tui_mail.store.account_store import AccountStore
    from tui_mail.store.index import MailIndex
    from tui_mail.sync.account import AccountWorker

    def auth(tag: str, rest: str) -> Answer:
        return (
            f"* OK [ALERT] Mailbox \x1b]0;owned\x07 is 99% full\r\n{tag} OK [ALERT] read this\r\n"
        ).encode()

    async with FakeImap(overrides={"AUTHENTICATE": auth}) as fake:
        ep = EndpointConfig(
            backend="imap",
            host="127.0.0.1",
            port=fake.port,
            security="none",
            user="alice",
            password=PASSWORD,
            timeout=5.0,
            key_path="accounts.a.receive",
        )
        acct = AccountConfig("a", "alice@example.test", ep, EndpointConfig(backend="local"))
        backend = ImapReceiveBackend(BackendContext(acct, ep))
        index = MailIndex.open(tmp_path / "index.sqlite3")
        events: list[ev.Event] = []
        worker = AccountWorker(
            acct,
            AccountStore("a", tmp_path / "mail", index),
            events.append,
            backend,
            None,
            poll=False,
        )
        try:
            await worker.handle(cmd.Connect())
            await worker.handle(cmd.ListFolders())
        finally:
            await worker._close()
            index.close()
    alerts = [e.message for e in events if isinstance(e, ev.BackendError)]
    assert len(alerts) == 2  # once each, not again after the next command
    assert alerts[0].startswith("server alert: Mailbox ") and alerts[0].endswith("is 99% full")
    assert "\x1b" not in alerts[0] and "\x07" not in alerts[0]
    assert alerts[1] == "server alert: read this"
