"""Bounded input: a server that sends a gigantic literal, an endless line or endless
continuation / untagged lines gets a clear ProtocolError within seconds, memory
stays bounded, and the TUI keeps answering keys meanwhile.

Memory is the growth of the process's peak resident set during the hostile
exchange (Linux /proc: VmHWM after a reset through clear_refs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest

from hostile.scripted import (
    IMAP_CAPS,
    Answer,
    ImapHandler,
    Recorder,
    ScriptedImap,
    ScriptedPop3,
    ScriptedSmtp,
    Stream,
    app_config,
    imap_account,
    message,
    no_traceback,
    pop3_account,
    screen_text,
    send_forever,
)
from tui_mail.backends.base import BackendContext
from tui_mail.backends.imap.backend import ImapReceiveBackend
from tui_mail.backends.pop3.backend import Pop3ReceiveBackend
from tui_mail.backends.smtp.backend import SmtpSendBackend
from tui_mail.config.schema import AccountConfig, EndpointConfig
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.core.errors import MailError, ProtocolError
from tui_mail.sync.runtime import Runtime

MEMORY_CAP = 64 * 1024 * 1024
# "Within a few seconds": typical runs take well under one; the margin is for a
# loaded 2-core machine, where the same flood was seen to take 7 s.
SECONDS = 10.0


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def measured(work: Awaitable[Any]) -> tuple[BaseException | None, float, int]:
    """Run `work`; return what it raised, how long it took and its peak extra memory.

    Memory is the growth of the process's peak resident set (VmHWM, reset just
    before through /proc/self/clear_refs): everything the client buffered or
    parsed, with none of tracemalloc's slowdown in the timing.
    """
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to the current RSS
    base = _rss_kib("VmRSS")
    start = time.monotonic()
    error: BaseException | None = None
    try:
        await asyncio.wait_for(work, 30)
    except Exception as exc:
        error = exc
    elapsed = time.monotonic() - start
    peak = (_rss_kib("VmHWM") - base) * 1024
    return error, elapsed, peak


def assert_bounded(
    outcome: tuple[BaseException | None, float, int], kind: type[Exception], match: str
) -> None:
    error, elapsed, peak = outcome
    assert isinstance(error, kind), f"expected {kind.__name__}, got {error!r}"
    assert match in str(error), str(error)
    assert elapsed < SECONDS, f"took {elapsed:.1f} s"
    assert peak < MEMORY_CAP, f"peak {peak / 2**20:.0f} MiB"


# ---------------------------------------------------------------------------- IMAP


def forever(head: bytes, chunk: bytes) -> ImapHandler:
    def handler(tag: str, rest: str) -> Answer:
        async def flood(stream: Stream) -> None:
            stream[1].write(head)
            await send_forever(stream[1], chunk)

        return flood

    return handler


IMAP_CASES: dict[str, tuple[str, ImapHandler, str]] = {
    # name: (verb turned hostile, handler, what the error says)
    "gigantic-literal": (
        "UID FETCH",
        forever(b"* 1 FETCH (UID 1 BODY[] {5000000000}\r\n", b"x" * 65536),
        "literal of 5000000000 bytes",
    ),
    "endless-line": ("SELECT", forever(b"* OK ", b"a" * 65536), "longer than"),
    "endless-untagged-lines": (
        "SELECT",
        forever(b"", b"* OK [ALERT] still here\r\n" * 2048),
        "more than",
    ),
    "endless-exists-updates": ("SELECT", forever(b"", b"* 1 EXISTS\r\n" * 4096), "more than"),
    "endless-expunges": ("SELECT", forever(b"", b"* 1 EXPUNGE\r\n" * 4096), "more than"),
    "endless-continuation-lines": ("SELECT", forever(b"", b"+ more\r\n" * 4096), "'+'"),
    "endless-flag-fetches": (
        "UID FETCH",
        lambda tag, rest: _flag_flood,
        "more",
    ),
    "endless-literal-chain": (
        "UID FETCH",
        forever(b"* 1 FETCH (UID 1 BODY[HEADER] {4}\r\nabcd", b" X {65000}\r\n" + b"y" * 65000),
        "larger than",
    ),
}


async def _flag_flood(stream: Stream) -> None:
    """Flag updates for ever more UIDs: nothing stops it but the client."""
    writer = stream[1]
    with_suppress = (ConnectionError, OSError)
    try:
        n = 1  # UIDs start at 1
        while not writer.is_closing() and n < 20_000_000:
            writer.write(
                b"".join(
                    b"* %d FETCH (UID %d FLAGS (\\Seen))\r\n" % (i, i) for i in range(n, n + 2000)
                )
            )
            n += 2000
            await writer.drain()
    except with_suppress:
        pass


def imap_backend(port: int, account: AccountConfig | None = None) -> ImapReceiveBackend:
    acct = account or imap_account("h", port)
    return ImapReceiveBackend(BackendContext(acct, acct.receive))


@pytest.mark.parametrize("case", list(IMAP_CASES))
async def test_imap_hostile_input_is_a_bounded_protocol_error(case: str) -> None:
    verb, handler, match = IMAP_CASES[case]
    server = ScriptedImap({1: message(1), 2: message(2)}, caps=IMAP_CAPS.replace(" IDLE", ""))
    async with server:
        # A response may be as large as the largest message accepted (a legitimate
        # one costs that much too), so the chain is bounded by max_message_size.
        opts = {"max_message_size": 16 << 20} if case == "endless-literal-chain" else {}
        backend = imap_backend(server.port, imap_account("h", server.port, **opts))
        await backend.connect()
        server.overrides[verb] = handler

        async def work() -> None:
            if verb == "SELECT":
                await backend.folder_state("INBOX")
            elif case == "endless-flag-fetches":
                await backend.fetch_flags("INBOX")
            else:
                async for _ in backend.fetch_messages("INBOX", [1, 2]):
                    pass

        outcome = await measured(work())
        await backend.abort()
    assert_bounded(outcome, ProtocolError, match)


async def test_imap_a_line_of_millions_of_tokens_is_refused_within_bounds() -> None:
    """8 MiB of "()" in one line, within every byte bound: 4M lists, ~300 MiB as
    Python objects and 3 s of CPU when only bytes were counted. Refused at
    Limits.max_tokens (1.3M, what the longest legitimate SEARCH line needs): the
    line plus ~100 MiB of lists at most (measured peak: +113 MiB), so this case
    has a bound of its own, above the others' 64 MiB."""
    line = b"* 1 FOO " + b"()" * (4 * 1024 * 1024 - 8) + b"\r\n"
    server = ScriptedImap({1: message(1)}, caps=IMAP_CAPS.replace(" IDLE", ""))
    async with server:
        backend = imap_backend(server.port)
        await backend.connect()
        server.overrides["SELECT"] = lambda tag, rest: line + f"{tag} OK done\r\n".encode()
        error, elapsed, peak = await measured(backend.folder_state("INBOX"))
        await backend.abort()
    assert isinstance(error, ProtocolError), repr(error)
    assert "more than 1300000 tokens" in str(error)
    assert elapsed < SECONDS, f"took {elapsed:.1f} s"
    assert peak < 160 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


async def test_imap_a_huge_legitimate_expunge_still_works() -> None:
    """The bound on responses per command leaves room for real work: one UID MOVE
    of 150k messages answers with 150k EXPUNGE lines."""
    from tui_mail.core.models import ServerId

    expunges = b"* 1 EXPUNGE\r\n" * 150_000
    server = ScriptedImap(
        {1: message(1)},
        caps=IMAP_CAPS.replace(" IDLE", "") + " MOVE",
        overrides={"UID MOVE": lambda tag, rest: expunges + f"{tag} OK moved\r\n".encode()},
    )
    async with server:
        backend = imap_backend(server.port)
        await backend.connect()
        await backend.move("INBOX", [ServerId(uid=1, uidvalidity=7)], "Trash")
        assert "UID MOVE" in server.verbs
        await backend.close()


async def test_imap_unrequested_bodies_between_commands_are_not_kept() -> None:
    """With no command pending nothing bounds a response by its command; bodies the
    server pushes unasked (100 of 1 MB here) must not pile up in memory."""
    body = b"u" * 1_000_000
    pushed = asyncio.Event()

    def select_then_push(tag: str, rest: str) -> Answer:
        async def answer(stream: Stream) -> None:
            writer = stream[1]
            writer.write(f"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n{tag} OK selected\r\n".encode())
            await writer.drain()
            for n in range(100):
                writer.write(
                    b"* 1 FETCH (UID %d BODY[] {%d}\r\n" % (n + 1, len(body)) + body + b")\r\n"
                )
                await writer.drain()
            pushed.set()

        return answer

    async with ScriptedImap({1: message(1)}, overrides={"SELECT": select_then_push}) as server:
        backend = imap_backend(server.port)
        await backend.connect()

        async def work() -> None:
            await backend.folder_state("INBOX")
            await asyncio.wait_for(pushed.wait(), 20)
            await asyncio.sleep(0.2)  # the last of it is read
            raise ProtocolError("pushed")  # to reuse assert_bounded: the session is fine

        outcome = await measured(work())
        conn = backend._conn
        assert conn is not None and conn.alive
        assert (await conn.command(b"NOOP")).ok
        await backend.abort()
    assert_bounded(outcome, ProtocolError, "pushed")


async def test_imap_endless_greeting_line() -> None:
    async def endless(stream: Stream) -> None:
        stream[1].write(b"* OK ")
        await send_forever(stream[1], b"z" * 65536)

    async with ScriptedImap(greeting=endless) as server:
        backend = imap_backend(server.port)
        outcome = await measured(backend.connect())
        await backend.abort()
    assert_bounded(outcome, MailError, "longer than")


# ---------------------------------------------------------------------------- POP3


def pop3_flood(head: bytes, chunk: bytes) -> Answer:
    async def flood(stream: Stream) -> None:
        stream[1].write(head)
        await send_forever(stream[1], chunk)

    return flood


POP3_CASES: dict[str, tuple[str, Answer, str]] = {
    "endless-greeting-line": ("greeting", pop3_flood(b"+OK ", b"g" * 65536), "too long"),
    "endless-status-line": ("USER", pop3_flood(b"+OK ", b"s" * 65536), "too long"),
    "endless-uidl-listing": ("UIDL", pop3_flood(b"+OK\r\n", b"1 a\r\n" * 8192), "UIDL"),
    "endless-capa-listing": ("CAPA", pop3_flood(b"+OK\r\n", b"X\r\n" * 8192), "CAPA"),
    "endless-message-line": ("RETR", pop3_flood(b"+OK\r\n", b"m" * 65536), "announced"),
    "endless-message-lines": ("RETR", pop3_flood(b"+OK\r\n", b"line\r\n" * 8192), "announced"),
}


@pytest.mark.parametrize("case", list(POP3_CASES))
async def test_pop3_hostile_input_is_a_bounded_protocol_error(case: str) -> None:
    verb, answer, match = POP3_CASES[case]
    server = ScriptedPop3({"u1": message(1)})
    if verb == "greeting":
        server.greeting = answer
    else:
        server.overrides[verb] = answer
    async with server:
        acct = pop3_account("p", server.port)
        backend = Pop3ReceiveBackend(BackendContext(acct, acct.receive))

        async def work() -> None:
            async for _ in backend.fetch_new("INBOX", set()):
                pass

        outcome = await measured(work())
        await backend.abort()
    assert_bounded(outcome, ProtocolError, match)


# ---------------------------------------------------------------------------- SMTP


def smtp_backend(port: int) -> SmtpSendBackend:
    ep = EndpointConfig(
        backend="smtp", host="127.0.0.1", port=port, security="none", timeout=5.0,
        key_path="accounts.s.send",
    )  # fmt: skip
    acct = AccountConfig("s", "alice@example.test", EndpointConfig(backend="maildir"), ep)
    return SmtpSendBackend(BackendContext(acct, ep))


SMTP_CASES: dict[str, tuple[str, Answer]] = {
    "endless-greeting-line": ("greeting", pop3_flood(b"220 ", b"g" * 65536)),
    "endless-ehlo-continuations": ("EHLO", pop3_flood(b"", b"250-SPAM\r\n" * 4096)),
    "endless-mail-reply": ("MAIL", pop3_flood(b"250 ", b"m" * 65536)),
    "endless-data-reply": ("DATA", pop3_flood(b"", b"354-go\r\n" * 4096)),
}


@pytest.mark.parametrize("case", list(SMTP_CASES))
async def test_smtp_hostile_input_is_a_bounded_protocol_error(case: str) -> None:
    verb, answer = SMTP_CASES[case]
    server = ScriptedSmtp()
    if verb == "greeting":
        server.greeting = answer
    else:
        server.overrides[verb] = answer
    raw = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: x\r\n\r\nhi\r\n"
    async with server:
        backend = smtp_backend(server.port)
        outcome = await measured(backend.send(raw, "alice@example.test", ["bob@example.test"]))
    assert_bounded(outcome, ProtocolError, "too long")
    assert server.delivered == []


# ---------------------------------------------------------------------------- worker + UI


@pytest.fixture
def quiet_asyncio(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level("CRITICAL", logger="asyncio")
    yield


async def test_worker_reports_the_error_and_backs_off(quiet_asyncio: None) -> None:
    """Through the account worker: a failed reply, an offline state with a retry
    (the backoff), and the connection thrown away rather than trusted again."""
    server = ScriptedImap({1: message(1)}, caps=IMAP_CAPS.replace(" IDLE", ""))
    server.overrides["SELECT"] = IMAP_CASES["endless-untagged-lines"][1]
    rec = Recorder()
    async with server:
        runtime = Runtime(app_config(imap_account("h", server.port)))
        await runtime.start(rec, initial_sync=False, poll=True, connect=False)
        try:
            start = time.monotonic()
            reply = await rec.run(runtime, "h", cmd.SyncNow())
            assert time.monotonic() - start < SECONDS
        finally:
            await runtime.stop()
    assert isinstance(reply, ev.Failed) or rec.of(ev.BackendError, "h")
    state = rec.last_state("h")
    assert state is not None and state.state is ev.ConnectionState.OFFLINE
    assert state.retry_in is not None and state.retry_in > 0
    assert "more than" in state.detail
    assert all(no_traceback(getattr(e, "message", "")) for e in rec.events)


async def test_tui_keeps_answering_keys_while_a_server_floods(quiet_asyncio: None) -> None:
    """The TUI on an account whose server floods it: keys work during and after, and
    the folder pane and status line show the account offline with the reason."""
    from tui_mail.ui.app import MailApp
    from tui_mail.ui.screens.help import HelpScreen

    server = ScriptedImap({n: message(n) for n in range(1, 4)}, caps=IMAP_CAPS.replace(" IDLE", ""))
    # The longest of the floods (about a second of parsing untagged lines).
    server.overrides["SELECT"] = IMAP_CASES["endless-untagged-lines"][1]
    async with server:
        app = MailApp(app_config(imap_account("flood", server.port)))
        async with app.run_test(size=(180, 30)) as pilot:
            deadline = time.monotonic() + 15
            answered = 0
            # Keys while the flood is on: each must take effect at once.
            while time.monotonic() < deadline:
                await pilot.press("question_mark")
                assert isinstance(app.screen, HelpScreen)
                await pilot.press("escape")
                assert not isinstance(app.screen, HelpScreen)
                answered += 1
                if "offline" in screen_text(app):
                    break
                await pilot.pause(0.05)
            text = screen_text(app)
            assert "flood:offline" in text, text
            assert "more than" in text  # the reason, on the status line
            assert " retry " in text  # the folder pane: when it tries again
            assert answered >= 1 and app.is_running
            assert no_traceback(text)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.press("q")
