"""Malformed responses over IMAP, POP3 and SMTP, driven through the real account
worker (the Runtime the TUI and `tui-mail sync` use): no crash, the account goes
to an error state (offline with a backoff when the session is broken), and the
local store (Maildir files and index rows) is exactly what it was before.

Each receive case first syncs for real against the scripted server, snapshots
the store, then turns the server hostile and syncs again.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hostile.scripted import (
    IMAP_CAPS,
    PASSWORD,
    ImapHandler,
    Recorder,
    ScriptedImap,
    ScriptedPop3,
    ScriptedSmtp,
    Stream,
    app_config,
    changes,
    crash_reports,
    imap_account,
    message,
    no_traceback,
    pop3_account,
    smtp_account,
    snapshot,
)
from tui_mail import paths
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.sync.outbox import ACTIVE, Outbox, State
from tui_mail.sync.runtime import Runtime

OFFLINE = "offline"  # the session is broken: offline, and a reconnect after a backoff
AUTH = "auth"  # the login failed: no retry loop with the same password
ERROR = "error"  # the session is fine, one answer was refused: an error, not offline


@dataclass(frozen=True)
class Case:
    verb: str  # what the hostile server answers differently ("greeting" for the greeting)
    answer: object  # an Answer (POP3, SMTP) or an ImapHandler (IMAP)
    expect: str
    says: str  # a piece of the error message the user sees ("a|b": either)


def reset(head: bytes) -> Callable[[Stream], object]:
    """Send `head`, then reset the connection (RST, not a polite FIN)."""

    async def cut(stream: Stream) -> None:
        writer = stream[1]
        writer.write(head)
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    return cut


def hang_up(head: bytes) -> Callable[[Stream], object]:
    async def close(stream: Stream) -> None:
        stream[1].write(head)
        await stream[1].drain()
        stream[1].close()

    return close


def tagged(text: str) -> ImapHandler:
    """An IMAP answer; "{tag}" stands for the command's tag."""
    return lambda tag, rest: text.replace("{tag}", tag).encode()


# ---------------------------------------------------------------------------- IMAP

IMAP_CASES: dict[str, Case] = {
    "greeting-not-a-status": Case("greeting", b"* HELLO there\r\n", OFFLINE, "greeting"),
    "greeting-garbage": Case("greeting", b"garbage\r\n", OFFLINE, "malformed"),
    "greeting-bye": Case("greeting", b"* BYE too busy\r\n", OFFLINE, "too busy"),
    "greeting-empty-line": Case("greeting", b"\r\n", OFFLINE, "IMAP"),
    "capability-no-without-text": Case(
        "CAPABILITY", tagged("{tag} NO\r\n"), OFFLINE, "gave no reason"
    ),
    "login-bad-without-text": Case("AUTHENTICATE", tagged("{tag} BAD\r\n"), AUTH, "gave no reason"),
    "list-unbalanced-open": Case(
        "LIST", tagged('* LIST (\\HasNoChildren "/" INBOX\r\n{tag} OK done\r\n'), OFFLINE, "LIST"
    ),
    "list-unbalanced-close": Case(
        "LIST", tagged('* LIST (\\HasNoChildren)) "/" INBOX\r\n{tag} OK done\r\n'), OFFLINE, "IMAP"
    ),
    "list-no-without-text": Case("LIST", tagged("{tag} NO\r\n"), ERROR, "gave no reason"),
    "select-no-without-text": Case("SELECT", tagged("{tag} NO\r\n"), ERROR, "gave no reason"),
    "select-bad-without-text": Case("SELECT", tagged("{tag} BAD\r\n"), ERROR, "gave no reason"),
    "select-bad-uidvalidity": Case(
        "SELECT",
        tagged("* 2 EXISTS\r\n* OK [UIDVALIDITY abc] v\r\n{tag} OK done\r\n"),
        ERROR,
        "UIDVALIDITY",
    ),
    "select-non-numeric-exists": Case(
        "SELECT",
        tagged("* two EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n{tag} OK done\r\n"),
        ERROR,
        "EXISTS",
    ),
    "fetch-unbalanced-parens": Case(
        "UID FETCH",
        tagged("* 1 FETCH (UID 1 FLAGS (\\Seen)\r\n{tag} OK done\r\n"),
        OFFLINE,
        "IMAP",
    ),
    "fetch-uid-zero": Case(
        "UID FETCH", tagged("* 1 FETCH (UID 0 FLAGS (\\Seen))\r\n{tag} OK done\r\n"), OFFLINE, "UID"
    ),
    "fetch-odd-item-count": Case(
        "UID FETCH", tagged("* 1 FETCH (UID 1 FLAGS)\r\n{tag} OK done\r\n"), OFFLINE, "FETCH"
    ),
    "search-not-a-number": Case(
        "UID SEARCH", tagged("* SEARCH 1 two 3\r\n{tag} OK done\r\n"), ERROR, "SEARCH"
    ),
    "unknown-tag": Case("SELECT", tagged("Z999 OK [READ-WRITE] done\r\n"), OFFLINE, "did not send"),
    "unknown-status-word": Case("SELECT", tagged("{tag} MAYBE done\r\n"), OFFLINE, "IMAP"),
    "unexpected-continuation": Case("SELECT", tagged("+ go ahead\r\n"), OFFLINE, "'+'"),
    "bye-mid-command": Case(
        "UID FETCH",
        lambda tag, rest: hang_up(b"* 1 FETCH (UID 1 FLAGS ())\r\n* BYE shutting down\r\n"),
        OFFLINE,
        "shutting down",
    ),
    "reset-mid-literal": Case(
        "UID FETCH",
        lambda tag, rest: reset(b"* 3 FETCH (UID 3 FLAGS () BODY[] {500}\r\nFrom: half"),
        OFFLINE,
        "closed",
    ),
}


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # A reset connection makes asyncio log at ERROR; what matters is tui_mail's own log.
    caplog.set_level("CRITICAL", logger="asyncio")
    caplog.set_level(logging.WARNING, logger="tui_mail")
    yield caplog


def assert_no_crash(rec: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    for e in rec.events:
        text = getattr(e, "message", "") or getattr(e, "detail", "")
        assert no_traceback(text) and "internal error" not in text, text
    bugs = [r for r in caplog.records if r.name.startswith("tui_mail") and r.exc_info]
    assert not bugs, [r.getMessage() for r in bugs]
    assert crash_reports(paths.state_dir()) == []


def assert_outcome(rec: Recorder, account: str, reply: ev.Event, case: Case) -> None:
    states = rec.of(ev.ConnectionChanged, account)
    last = states[-1]
    errors = [e.message for e in rec.of(ev.BackendError, account)]
    if isinstance(reply, ev.Failed):
        errors.append(reply.message)
    if case.expect == OFFLINE:
        assert isinstance(reply, ev.Failed), reply
        assert last.state is ev.ConnectionState.OFFLINE, states
        assert last.retry_in is not None and last.retry_in > 0  # the backoff
        errors.append(last.detail)
    elif case.expect == AUTH:
        assert isinstance(reply, ev.Failed), reply
        assert last.state is ev.ConnectionState.AUTH_FAILED, states
    else:
        assert errors, "no error reached the user"
        # Never left looking busy: a refused answer ends the sync like any other.
        assert last.state in (ev.ConnectionState.CONNECTED, ev.ConnectionState.OFFLINE), states
    assert any(s in m for m in errors for s in case.says.split("|")), errors


async def run_receive_case(
    server: ScriptedImap | ScriptedPop3, account: str, case: Case, root: Path, turn_hostile: object
) -> tuple[Recorder, ev.Event]:
    rec = Recorder()
    runtime = Runtime(app_config(_account_for(server, account)))
    await runtime.start(rec, initial_sync=False, poll=True, connect=False)
    try:
        assert isinstance(await rec.run(runtime, account, cmd.SyncNow()), ev.Done)
        await rec.run(runtime, account, cmd.Disconnect())  # the next sync starts afresh
        before = snapshot(root, paths.index_path(), account)
        assert before.files, "the good sync stored nothing to compare"
        turn_hostile()  # type: ignore[operator]
        rec.events.clear()
        reply = await rec.run(runtime, account, cmd.SyncNow())
        after = snapshot(root, paths.index_path(), account)
    finally:
        await runtime.stop()
    assert after == before, changes(before, after)
    return rec, reply


def _account_for(server: ScriptedImap | ScriptedPop3, name: str):  # type: ignore[no-untyped-def]
    if isinstance(server, ScriptedImap):
        return imap_account(name, server.port, timeout=3.0)
    return pop3_account(name, server.port, timeout=3.0)


@pytest.mark.parametrize("name", list(IMAP_CASES))
async def test_imap_malformed_response(name: str, quiet: pytest.LogCaptureFixture) -> None:
    case = IMAP_CASES[name]
    server = ScriptedImap({1: message(1), 2: message(2)}, caps=IMAP_CAPS.replace(" IDLE", ""))

    def turn_hostile() -> None:
        server.messages[3] = message(3)  # something to download, so bodies are fetched
        if case.verb == "greeting":
            server.greeting = case.answer  # type: ignore[assignment]
        else:
            server.overrides[case.verb] = case.answer  # type: ignore[assignment]

    async with server:
        rec, reply = await run_receive_case(
            server, "imap", case, paths.mail_root("imap"), turn_hostile
        )
    assert_outcome(rec, "imap", reply, case)
    assert_no_crash(rec, quiet)


# ---------------------------------------------------------------------------- POP3

POP3_CASES: dict[str, Case] = {
    "greeting-not-a-status": Case("greeting", b"HELLO\r\n", OFFLINE, "bad reply"),
    "greeting-err": Case("greeting", b"-ERR [SYS/TEMP] later\r\n", OFFLINE, "later"),
    "greeting-empty-line": Case("greeting", b"\r\n", OFFLINE, "bad reply"),
    "user-reply-garbage": Case("USER", b"OK fine\r\n", OFFLINE, "malformed"),
    "pass-err-without-text": Case("PASS", b"-ERR\r\n", AUTH, "gave no reason"),
    "uidl-missing-terminator": Case("UIDL", hang_up(b"+OK\r\n1 u1\r\n2 u2\r\n"), OFFLINE, "closed"),
    "uidl-bad-line": Case("UIDL", b"+OK\r\n1\r\n.\r\n", OFFLINE, "UIDL"),
    "uidl-message-zero": Case("UIDL", b"+OK\r\n0 u0\r\n.\r\n", OFFLINE, "UIDL"),
    "uidl-duplicate-number": Case("UIDL", b"+OK\r\n1 u1\r\n1 u9\r\n.\r\n", OFFLINE, "UIDL"),
    "list-size-not-a-number": Case("LIST", b"+OK\r\n1 big\r\n.\r\n", OFFLINE, "size"),
    "retr-missing-terminator": Case(
        "RETR", hang_up(b"+OK\r\n" + message(3) + b"\r\n"), OFFLINE, "middle of message"
    ),
    "retr-reset-mid-message": Case(
        "RETR", reset(b"+OK\r\nFrom: half\r\nSubj"), OFFLINE, "reset|closed"
    ),
}


@pytest.mark.parametrize("name", list(POP3_CASES))
async def test_pop3_malformed_response(name: str, quiet: pytest.LogCaptureFixture) -> None:
    case = POP3_CASES[name]
    server = ScriptedPop3({"u1": message(1), "u2": message(2)})

    def turn_hostile() -> None:
        server.messages["u3"] = message(3)
        if case.verb == "greeting":
            server.greeting = case.answer  # type: ignore[assignment]
        else:
            server.overrides[case.verb] = case.answer  # type: ignore[assignment]

    async with server:
        rec, reply = await run_receive_case(
            server, "pop", case, paths.mail_root("pop"), turn_hostile
        )
    assert_outcome(rec, "pop", reply, case)
    assert_no_crash(rec, quiet)


# ---------------------------------------------------------------------------- SMTP

UNCERTAIN = "uncertain"  # the data went out: the outbox must not resend by itself

SMTP_CASES: dict[str, Case] = {
    "greeting-not-numeric": Case("greeting", b"hello there\r\n", ERROR, "not SMTP"),
    "greeting-refusal": Case("greeting", b"554 go away\r\n", ERROR, "go away"),
    "ehlo-non-numeric-continuation": Case(
        "EHLO", b"250-scripted\r\nxyz PIPELINING\r\n", ERROR, "not SMTP"
    ),
    "ehlo-and-helo-two-digit-code": Case("EHLO", b"25 hi\r\n", ERROR, "refused EHLO"),
    "mail-non-numeric": Case("MAIL", b"OK\r\n", ERROR, "not SMTP"),
    "rcpt-empty-line": Case("RCPT", b"\r\n", ERROR, "not SMTP"),
    "rcpt-bad-multiline": Case("RCPT", b"250-ok\r\n2x0 what\r\n", ERROR, "not SMTP"),
    "data-end-garbage": Case(".", b"queued, thanks\r\n", UNCERTAIN, "not SMTP"),
    "data-end-reset": Case(".", reset(b""), UNCERTAIN, "may have queued"),
}


@pytest.mark.parametrize("name", list(SMTP_CASES))
async def test_smtp_malformed_response(
    name: str, quiet: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    case = SMTP_CASES[name]
    server = ScriptedSmtp()
    if case.verb == "greeting":
        server.greeting = case.answer  # type: ignore[assignment]
    else:
        server.overrides[case.verb] = case.answer  # type: ignore[assignment]
    if case.verb == "EHLO":  # a refused EHLO is retried as HELO
        server.overrides["HELO"] = case.answer  # type: ignore[assignment]
    maildir = tmp_path / "Mail"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1.M1.host:2,S").write_bytes(message(1))
    raw = (
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hostile\r\n"
        b"Message-ID: <out@hostile.test>\r\n\r\nhello\r\n"
    )
    rec = Recorder()
    async with server:
        runtime = Runtime(app_config(smtp_account("smtp", server.port, maildir, timeout=3.0)))
        await runtime.start(rec, initial_sync=False, poll=True)
        try:
            assert isinstance(await rec.run(runtime, "smtp", cmd.SyncNow()), ev.Done)
            before = snapshot(maildir, paths.index_path(), "smtp")
            reply = await rec.run(runtime, "smtp", cmd.Send(raw=raw))
            after = snapshot(maildir, paths.index_path(), "smtp")
            entries = Outbox(runtime.index).entries("smtp", states=list(State))
        finally:
            await runtime.stop()
    assert isinstance(reply, ev.Failed), reply
    assert any(s in reply.message for s in case.says.split("|")), reply.message
    # Nothing lost: the message waits in the outbox; no Sent copy was made.
    assert after.files == before.files
    assert after.rows["messages"] == before.rows["messages"]
    [entry] = entries
    assert entry.state in ACTIVE
    if case.expect == UNCERTAIN:
        assert entry.state is State.UNCERTAIN  # resending could deliver it twice
    else:
        assert entry.state is not State.UNCERTAIN and server.delivered == []
    assert_no_crash(rec, quiet)


def test_at_least_25_cases() -> None:
    assert len(IMAP_CASES) + len(POP3_CASES) + len(SMTP_CASES) >= 25


# ---------------------------------------------------------------------------- tui-mail sync

CLI_CASES = {
    "imap-unknown-tag": ("imap", "unknown-tag"),
    "imap-fetch-unbalanced-parens": ("imap", "fetch-unbalanced-parens"),
    "pop3-uidl-missing-terminator": ("pop3", "uidl-missing-terminator"),
    "pop3-list-size-not-a-number": ("pop3", "list-size-not-a-number"),
}


@pytest.mark.parametrize("name", list(CLI_CASES))
async def test_cli_sync_exits_1_with_one_line(name: str, tmp_path: Path) -> None:
    """`tui-mail sync` against a hostile server: exit status 1, the reason on stderr,
    no traceback, no crash report, and the store as it was."""
    import os
    import sys

    kind, case_name = CLI_CASES[name]
    case = (IMAP_CASES if kind == "imap" else POP3_CASES)[case_name]
    server: ScriptedImap | ScriptedPop3
    if kind == "imap":
        server = ScriptedImap({1: message(1)}, caps=IMAP_CAPS.replace(" IDLE", ""))
    else:
        server = ScriptedPop3({"u1": message(1)})
    config = tmp_path / "config.toml"

    async def sync() -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tui_mail", "--config", str(config), "sync",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, (out + err).decode("utf-8", "replace")

    async with server:
        config.write_text(
            f'[accounts.cli]\nemail = "alice@example.test"\n'
            f'[accounts.cli.receive]\nbackend = "{kind}"\nhost = "127.0.0.1"\n'
            f'port = {server.port}\nsecurity = "none"\nuser = "alice"\n'
            f'password = "{PASSWORD}"\ntimeout = 3\n'
            f'[accounts.cli.send]\nbackend = "local"\n'
        )
        config.chmod(0o600)
        code, output = await sync()
        assert code == 0, output
        before = snapshot(paths.mail_root("cli"), paths.index_path(), "cli")
        assert before.files
        if case.verb == "greeting":
            server.greeting = case.answer  # type: ignore[assignment]
        else:
            server.overrides[case.verb] = case.answer  # type: ignore[assignment]
        if kind == "imap":
            server.messages[2] = message(2)
        else:
            server.messages["u2"] = message(2)
        code, output = await sync()
    after = snapshot(paths.mail_root("cli"), paths.index_path(), "cli")
    assert code == 1, output
    lines = output.splitlines()
    assert 1 <= len(lines) <= 2 and all(ln.startswith("cli: ") for ln in lines), output
    assert any(s in output for s in case.says.split("|")), output
    assert no_traceback(output) and "Traceback" not in output, output
    assert crash_reports(paths.state_dir()) == []
    assert after == before, changes(before, after)
