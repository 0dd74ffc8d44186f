"""The POP3 backend against a scripted in-test server: the cases Dovecot cannot play
(no STLS, broken replies, drops mid-message, refusals). Fast, no mailstack needed."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tui_mail.backends.base import BackendContext
from tui_mail.backends.pop3.backend import Pop3ReceiveBackend
from tui_mail.config.schema import AccountConfig, EndpointConfig
from tui_mail.core.capabilities import Capability
from tui_mail.core.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    ProtocolError,
    TLSError,
    Unsupported,
)
from tui_mail.core.models import RemoteMessage, ServerId

PASSWORD = "s3cret-Pässword"
CAPA_PLAIN = [b"USER", b"UIDL", b"TOP"]

# An answer: bytes to send, None to hang up, or a coroutine that writes itself.
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Answer = bytes | None | Callable[[Stream], Awaitable[None]]


def stuffed(raw: bytes) -> bytes:
    """`raw` as a RETR body on the wire: dot-stuffed, terminated."""
    lines = raw.splitlines(keepends=True)
    return b"".join(b"." + ln if ln.startswith(b".") else ln for ln in lines) + b".\r\n"


def message(n: int, body: bytes = b"") -> bytes:
    return (
        f"From: a@example.test\r\nSubject: m{n}\r\nMessage-ID: <m{n}@example.test>\r\n\r\n".encode()
        + (body or f"body {n}\r\n".encode())
    )


class FakePop3:
    """A maildrop of `messages` (uidl -> bytes) behind a scriptable POP3 dialogue."""

    def __init__(
        self,
        messages: dict[str, bytes] | None = None,
        *,
        capa: list[bytes] | None = None,
        greeting: Answer = b"+OK fake ready\r\n",
        overrides: dict[str, Answer] | None = None,
    ) -> None:
        self.messages = dict(messages or {})
        self.capa = CAPA_PLAIN if capa is None else capa
        self.greeting = greeting
        self.overrides = overrides or {}
        self.received: list[bytes] = []
        self.sessions_ended = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakePop3:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def commands(self) -> list[str]:
        return [
            ln.split(b" ", 1)[0].strip().decode("ascii", "replace").upper() for ln in self.received
        ]

    def _answer(self, line: bytes) -> Answer:
        words = line.decode("utf-8", "replace").split()
        verb = words[0].upper() if words else ""
        if verb in self.overrides:
            return self.overrides[verb]
        order = list(self.messages)
        if verb == "CAPA":
            return b"+OK\r\n" + b"".join(c + b"\r\n" for c in self.capa) + b".\r\n"
        if verb in ("USER", "NOOP", "DELE", "RSET"):
            return b"+OK\r\n"
        if verb == "PASS":
            ok = words[1:] == [PASSWORD]
            return b"+OK logged in\r\n" if ok else b"-ERR [AUTH] nope\r\n"
        if verb == "AUTH":
            return b"+OK logged in\r\n"
        if verb == "STAT":
            return f"+OK {len(order)} 0\r\n".encode()
        if verb == "UIDL":
            body = "".join(f"{i} {u}\r\n" for i, u in enumerate(order, 1))
            return b"+OK\r\n" + body.encode() + b".\r\n"
        if verb == "LIST":
            body = "".join(f"{i} {len(self.messages[u])}\r\n" for i, u in enumerate(order, 1))
            return b"+OK\r\n" + body.encode() + b".\r\n"
        if verb == "RETR":
            raw = self.messages[order[int(words[1]) - 1]]
            return b"+OK\r\n" + stuffed(raw)
        if verb == "QUIT":
            return b"+OK bye\r\n"
        return b"-ERR unknown command\r\n"

    async def _send(self, stream: Stream, answer: Answer) -> bool:
        writer = stream[1]
        if answer is None:
            return False
        if callable(answer):
            await answer(stream)
        else:
            writer.write(answer)
        await writer.drain()
        return True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not await self._send((reader, writer), self.greeting):
                return
            while line := await reader.readline():
                self.received.append(line)
                if not await self._send((reader, writer), self._answer(line)):
                    return
                if line.upper().startswith(b"QUIT"):
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.sessions_ended.set()


def backend(
    port: int, security: str = "none", *, timeout: float = 2.0, **options: object
) -> Pop3ReceiveBackend:
    ep = EndpointConfig(
        backend="pop3",
        host="127.0.0.1",
        port=port,
        security=security,  # type: ignore[arg-type]
        user="bob",
        password=PASSWORD,
        timeout=timeout,
        options=dict(options),
        key_path="accounts.t.receive",
    )
    account = AccountConfig(
        name="t", email="bob@example.test", receive=ep, send=EndpointConfig(backend="local")
    )
    return Pop3ReceiveBackend(BackendContext(account=account, endpoint=ep))


async def fetch_all(b: Pop3ReceiveBackend, known: set[str] | None = None) -> list[RemoteMessage]:
    return [m async for m in b.fetch_new("INBOX", known or set())]


def assert_no_credentials(fake: FakePop3) -> None:
    assert not {"USER", "PASS", "AUTH", "APOP"} & set(fake.commands), fake.received
    wire = b"".join(fake.received)
    assert PASSWORD.encode() not in wire
    assert base64.b64encode(b"\0bob\0" + PASSWORD.encode()) not in wire


# ---------------------------------------------------------------- STLS required


@pytest.mark.parametrize(
    "capa, overrides",
    [
        ([b"USER", b"UIDL"], {}),  # STLS not offered (or stripped by an attacker)
        ([], {"CAPA": b"-ERR what is CAPA\r\n"}),  # no CAPA at all: cannot know
        ([b"USER", b"STLS"], {"STLS": b"-ERR not today\r\n"}),  # offered, then refused
    ],
    ids=["no-stls", "no-capa", "stls-refused"],
)
async def test_starttls_account_never_sends_credentials_in_clear(
    capa: list[bytes], overrides: dict[str, Answer]
) -> None:
    async with FakePop3(capa=capa, overrides=overrides) as fake:
        b = backend(fake.port, "starttls")
        with pytest.raises(TLSError, match="STLS"):
            await b.connect()
        await asyncio.wait_for(fake.sessions_ended.wait(), 5)
    assert_no_credentials(fake)


async def test_stls_handshake_failure_is_tls_error() -> None:
    """The server says +OK to STLS and then speaks no TLS: no credentials follow."""
    async with FakePop3(capa=[b"USER", b"STLS"], overrides={"STLS": b"+OK go\r\n"}) as fake:
        b = backend(fake.port, "starttls")
        with pytest.raises((TLSError, ConnectError)):
            await b.connect()
    assert_no_credentials(fake)


# ---------------------------------------------------------------- login


async def test_user_pass_login_and_check() -> None:
    async with FakePop3({"u1": message(1), "u2": message(2)}) as fake:
        b = backend(fake.port)
        assert b.capabilities == frozenset({Capability.DELETE_AFTER_DOWNLOAD})
        text = await b.check()
    assert "2 messages" in text and "no encryption" in text
    assert fake.commands == ["CAPA", "USER", "PASS", "STAT", "QUIT"]
    assert fake.received[2] == f"PASS {PASSWORD}\r\n".encode()


async def test_auth_plain_when_offered() -> None:
    async with FakePop3(capa=[b"USER", b"SASL PLAIN LOGIN"]) as fake:
        b = backend(fake.port)
        await b.connect()
        await b.close()
    token = base64.b64encode(b"\0bob\0" + PASSWORD.encode()).decode()
    assert fake.received[1] == f"AUTH PLAIN {token}\r\n".encode()
    assert "USER" not in fake.commands and "PASS" not in fake.commands


async def test_auth_plain_continuation() -> None:
    """A server that ignores the initial response and asks with "+ " gets it again."""
    token = base64.b64encode(b"\0bob\0" + PASSWORD.encode()).decode()
    async with FakePop3(capa=[b"SASL PLAIN"], overrides={"AUTH": b"+ \r\n"}) as fake:
        real = fake._answer
        fake._answer = lambda line: (  # type: ignore[method-assign]
            b"+OK logged in\r\n" if line == f"{token}\r\n".encode() else real(line)
        )
        b = backend(fake.port)
        await b.connect()
        await b.close()
    assert fake.received[1:3] == [f"AUTH PLAIN {token}\r\n".encode(), f"{token}\r\n".encode()]


async def test_wrong_password_is_auth_error_with_inert_server_text() -> None:
    async with FakePop3(
        overrides={"PASS": b"-ERR [AUTH] bad \x1b[31mred\x1b[0m password\r\n"}
    ) as f:
        b = backend(f.port)
        with pytest.raises(AuthError) as err:
            await b.connect()
    msg = str(err.value)
    assert msg.startswith(f"POP3 login to 127.0.0.1:{f.port} as bob was refused: [AUTH] bad")
    assert "\x1b" not in msg and PASSWORD not in msg


async def test_mailbox_in_use_is_retryable_not_auth() -> None:
    async with FakePop3(overrides={"PASS": b"-ERR [IN-USE] locked by another session\r\n"}) as f:
        with pytest.raises(ConnectError, match="not possible right now"):
            await backend(f.port).connect()


async def test_err_greeting_is_connect_error() -> None:
    async with FakePop3(greeting=b"-ERR too busy\r\n") as f:
        with pytest.raises(ConnectError, match="too busy"):
            await backend(f.port).connect()


async def test_silent_server_times_out() -> None:
    async def never(stream: Stream) -> None:
        await asyncio.sleep(30)

    async with FakePop3(greeting=never) as f:
        b = backend(f.port, timeout=0.3)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ConnectError, match=r"did not answer within 0\.3 seconds"):
            await b.connect()
        assert loop.time() - start < 3


async def test_refused_connection() -> None:
    async with FakePop3() as f:
        port = f.port
    with pytest.raises(ConnectError, match="refused"):
        await backend(port).connect()


def test_config_checks() -> None:
    ep = EndpointConfig(backend="pop3", host="mail.example.com", security="none", user="u")
    acct = AccountConfig(name="t", email="e@x", receive=ep, send=EndpointConfig(backend="local"))
    with pytest.raises(ConfigError, match="unencrypted"):
        Pop3ReceiveBackend(BackendContext(acct, ep))
    with pytest.raises(ConfigError, match="max_message_size"):
        backend(1, max_message_size="big")


async def test_only_inbox() -> None:
    with pytest.raises(Unsupported):
        await fetch_all_folder(backend(1), "Sent")


async def fetch_all_folder(b: Pop3ReceiveBackend, folder: str) -> list[RemoteMessage]:
    return [m async for m in b.fetch_new(folder, set())]


async def test_missing_ca_file_is_config_error(tmp_path: Path) -> None:
    async with FakePop3() as f:
        ep = EndpointConfig(
            backend="pop3",
            host="127.0.0.1",
            port=f.port,
            security="tls",
            user="bob",
            password=PASSWORD,
            ca_file=tmp_path / "missing.pem",
            key_path="accounts.t.receive",
        )
        acct = AccountConfig("t", "e@x", ep, EndpointConfig(backend="local"))
        with pytest.raises(ConfigError, match="ca_file"):
            await Pop3ReceiveBackend(BackendContext(acct, ep)).connect()


# ---------------------------------------------------------------- fetching


async def test_fetch_is_byte_exact_with_dots_and_long_lines() -> None:
    tricky = (
        b".starts with a dot\r\n"
        b"..two dots\r\n"
        b".\r\n"  # a lone dot in the body is not the end
        + b"x" * 5000  # longer than poplib's 2048-byte line limit
        + b"\r\n"
        + b"."
        + b"y" * 200_000  # a stuffed line longer than one read chunk
        + b"\r\n"
        + b"no final newline"
    )
    msgs = {"a": message(1), "b": message(2, tricky + b"\r\n"), "c": message(3, b"")}
    async with FakePop3(msgs) as fake:
        b = backend(fake.port)
        got = await fetch_all(b)
        await b.close()
    assert [m.server_id.uidl for m in got] == ["a", "b", "c"]
    assert [m.raw for m in got] == list(msgs.values())
    assert all(m.folder == "INBOX" for m in got)
    assert fake.commands.count("UIDL") == 1


async def test_known_uidls_are_skipped_and_progress_reported() -> None:
    msgs = {f"u{i}": message(i) for i in range(1, 6)}
    async with FakePop3(msgs) as fake:
        b = backend(fake.port)
        seen: list[tuple[int, int]] = []
        got = [
            m
            async for m in b.fetch_new(
                "INBOX", {"u1", "u3", "u5"}, lambda d, t: seen.append((d, t))
            )
        ]
        await b.close()
    assert [m.server_id.uidl for m in got] == ["u2", "u4"]
    assert seen == [(0, 2), (1, 2), (2, 2)]
    assert fake.commands.count("RETR") == 2


async def test_malformed_uidl_is_protocol_error() -> None:
    async with FakePop3(overrides={"UIDL": b"+OK\r\n1 good\r\nnonsense here x\r\n.\r\n"}) as f:
        with pytest.raises(ProtocolError, match="bad UIDL line"):
            await fetch_all(backend(f.port))


async def test_endless_status_line_is_protocol_error() -> None:
    async with FakePop3(overrides={"UIDL": b"+OK " + b"z" * 100_000 + b"\r\n"}) as f:
        with pytest.raises(ProtocolError, match="too long"):
            await fetch_all(backend(f.port))


async def test_drop_in_the_middle_of_retr() -> None:
    """Earlier messages are delivered whole; the cut one never appears, partially or not."""

    async def half(stream: Stream) -> None:
        stream[1].write(b"+OK\r\nFrom: x\r\nSubject: cut\r\n")

    msgs = {"u1": message(1), "u2": message(2)}
    async with FakePop3(msgs) as fake:
        b = backend(fake.port)
        got: list[RemoteMessage] = []
        real = fake._answer

        def answer(line: bytes) -> Answer:
            if line.startswith(b"RETR 2"):
                return _then_hang_up(half)
            return real(line)

        fake._answer = answer  # type: ignore[method-assign]
        with pytest.raises(ConnectError, match="in the middle of message 2"):
            async for m in b.fetch_new("INBOX", set()):
                got.append(m)
    assert [m.raw for m in got] == [msgs["u1"]]
    assert "QUIT" not in fake.commands


def _then_hang_up(write: Callable[[Stream], Awaitable[None]]) -> Answer:
    async def go(stream: Stream) -> None:
        await write(stream)
        await stream[1].drain()
        stream[1].close()

    return go


async def test_oversized_messages_are_skipped_then_reported() -> None:
    msgs = {"small1": message(1), "huge": message(2, b"h" * 5000 + b"\r\n"), "small2": message(3)}
    async with FakePop3(msgs) as fake:
        b = backend(fake.port, max_message_size=1000)
        got: list[RemoteMessage] = []
        with pytest.raises(ProtocolError, match=r"1 exceed max_message_size \(1000 bytes\): huge"):
            async for m in b.fetch_new("INBOX", set()):
                got.append(m)
        await b.close()
    assert [m.server_id.uidl for m in got] == ["small1", "small2"]
    assert fake.commands.count("RETR") == 2


async def test_message_bigger_than_list_said_is_cut_off() -> None:
    msgs = {"liar": message(1, b"L" * 5000 + b"\r\n")}
    async with FakePop3(msgs, overrides={"LIST": b"+OK\r\n1 10\r\n.\r\n"}) as fake:
        b = backend(fake.port, max_message_size=1000)
        with pytest.raises(ProtocolError, match="larger than max_message_size"):
            await fetch_all(b)
    assert "QUIT" not in fake.commands  # dropped: the reply was abandoned half-read


async def test_refused_retr_skips_one_message() -> None:
    msgs = {"u1": message(1), "gone": message(2), "u3": message(3)}
    async with FakePop3(msgs) as fake:
        real = fake._answer
        fake._answer = lambda line: (  # type: ignore[method-assign]
            b"-ERR message deleted\r\n" if line.startswith(b"RETR 2") else real(line)
        )
        b = backend(fake.port)
        got: list[RemoteMessage] = []
        with pytest.raises(ProtocolError, match="would not send: gone"):
            async for m in b.fetch_new("INBOX", set()):
                got.append(m)
        await b.close()
    assert [m.server_id.uidl for m in got] == ["u1", "u3"]
    assert fake.commands[-1] == "QUIT"  # the session survived the -ERR


async def test_retrieve_to_streams_in_bounded_pieces() -> None:
    big = message(1, b"".join(b"line %06d\r\n" % i for i in range(30_000)))
    async with FakePop3({"big": big}) as fake:
        b = backend(fake.port)
        pieces: list[bytes] = []
        size = await b.retrieve_to("big", pieces.append)
        with pytest.raises(ProtocolError, match="not on the POP3 server"):
            await b.retrieve_to("nope", pieces.append)
        await b.close()
    assert size == len(big) and b"".join(pieces) == big
    assert len(pieces) > 1 and max(map(len, pieces)) <= 64 * 1024 + 20


async def test_sink_error_propagates_and_drops_the_session() -> None:
    async with FakePop3({"u1": message(1)}) as fake:
        b = backend(fake.port)

        def sink(data: bytes) -> None:
            raise OSError(28, "No space left on device")

        with pytest.raises(OSError, match="No space left"):
            await b.retrieve_to("u1", sink)
        await asyncio.wait_for(fake.sessions_ended.wait(), 5)
    assert "QUIT" not in fake.commands


# ---------------------------------------------------------------- deleting


async def test_dele_then_quit_and_abort_without_quit() -> None:
    msgs = {f"u{i}": message(i) for i in range(1, 5)}
    async with FakePop3(msgs) as fake:
        b = backend(fake.port)
        await fetch_all(b)
        await b.remove_from_server("INBOX", [ServerId(uidl="u2"), ServerId(uidl="u4")])
        # Repeats and ids no longer on the server are harmless.
        await b.remove_from_server("INBOX", [ServerId(uidl="u2"), ServerId(uidl="zz")])
        await b.close()
        assert fake.received[-3:] == [b"DELE 2\r\n", b"DELE 4\r\n", b"QUIT\r\n"]

        fake.received.clear()
        fake.sessions_ended.clear()
        await b.remove_from_server("INBOX", [ServerId(uidl="u1")])  # reconnects, lists
        await b.abort()
        await asyncio.wait_for(fake.sessions_ended.wait(), 5)
    assert "DELE" in fake.commands and "QUIT" not in fake.commands


async def test_cancel_during_retr_drops_without_quit() -> None:
    stalled = asyncio.Event()

    async def stall(stream: Stream) -> None:
        reader, writer = stream
        writer.write(b"+OK\r\nSubject: slow\r\n")
        await writer.drain()
        stalled.set()
        # Send no more; wait for the client to hang up (returns b"" at EOF).
        while await reader.read(4096):
            pass

    async with FakePop3({"u1": message(1), "u2": message(2)}, overrides={"RETR": stall}) as fake:
        b = backend(fake.port)
        await b.remove_from_server("INBOX", [ServerId(uidl="u2")])
        task = asyncio.create_task(fetch_all(b))
        await asyncio.wait_for(stalled.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The worker thread was unblocked, not left reading: the server sees the hang-up.
        await asyncio.wait_for(fake.sessions_ended.wait(), 5)
        assert fake.commands[-2:] == ["DELE", "RETR"]
        # The next call starts a fresh session.
        fake.overrides.clear()
        got = await fetch_all(b)
        await b.close()
    assert [m.server_id.uidl for m in got] == ["u1", "u2"]
    assert fake.commands.count("QUIT") == 1
