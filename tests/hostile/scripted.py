"""Scripted hostile servers for IMAP, POP3 and SMTP, and helpers to drive the real
account worker against them.

Tests only: a real Dovecot or Postfix cannot be made to announce a 5 GB literal,
answer a tag we never sent or cut a POP3 listing before its terminating ".".
Everything else (real protocol behaviour) is tested against the real servers.

The servers follow tests/backends/test_imap_fake.py: a default dialogue that is
good enough for a complete sync (so a test can first sync for real, snapshot the
store, and only then turn hostile), plus per-verb overrides. An override returns
bytes to send, None to hang up, or a coroutine that does its own I/O.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev

PASSWORD = "hostile-pass"
USER = "alice"

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# bytes to send, None to hang up, or a coroutine that does its own I/O
Answer = bytes | None | Callable[[Stream], Awaitable[None]]
ImapHandler = Callable[[str, str], Answer]  # (tag, arguments) -> answer


def message(n: int, body: str = "") -> bytes:
    return (
        f"From: Sender {n} <s{n}@example.test>\r\nTo: alice@example.test\r\n"
        f"Subject: message {n}\r\nMessage-ID: <m{n}@hostile.test>\r\n"
        f"Date: Mon, 03 Nov 2025 10:00:{n % 60:02d} +0000\r\n\r\n" + (body or f"body {n}\r\n")
    ).encode()


async def send_forever(writer: asyncio.StreamWriter, chunk: bytes, seconds: float = 30.0) -> None:
    """Write `chunk` again and again until the client hangs up (or `seconds` pass):
    an endless line, endless untagged responses, an endless literal."""
    deadline = time.monotonic() + seconds
    with contextlib.suppress(ConnectionError, OSError):
        while time.monotonic() < deadline and not writer.is_closing():
            writer.write(chunk)
            await writer.drain()


class _Server:
    """An asyncio TCP server on 127.0.0.1 with a free port; one coroutine per client."""

    def __init__(self) -> None:
        self.port = 0
        self.sessions = 0
        self.received: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Any:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        self._writers.add(writer)
        try:
            await self.session(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
            pass  # the client gave up on us: that is what a hostile server wants tested
        except asyncio.CancelledError:
            pass  # the test is over while we were still flooding
        finally:
            self._writers.discard(writer)
            writer.close()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    @staticmethod
    async def send(stream: Stream, answer: Answer) -> bool:
        """Send an answer; False means hang up."""
        if answer is None:
            return False
        if callable(answer):
            await answer(stream)
        else:
            stream[1].write(answer)
        await stream[1].drain()
        return True


# ---------------------------------------------------------------------------- IMAP

IMAP_CAPS = "IMAP4rev1 AUTH=PLAIN SASL-IR LITERAL+ IDLE UIDPLUS"


def _uids_in(spec: str, uids: list[int]) -> list[int]:
    """The UIDs of `uids` that a sequence set such as "1:*" or "2,4:5" names."""
    top = max(uids, default=0)
    out: set[int] = set()
    for piece in spec.split(","):
        lo, _, hi = piece.partition(":")
        a = top if lo == "*" else int(lo)
        b = a if not hi else (top if hi == "*" else int(hi))
        a, b = min(a, b), max(a, b)
        out.update(u for u in uids if a <= u <= b)
    return sorted(out)


class ScriptedImap(_Server):
    """One INBOX of `messages` (uid -> raw) and a dialogue a full sync accepts.

    `overrides` maps a verb ("SELECT", "LIST", "UID FETCH", "UID SEARCH", ...)
    to a handler; a handler may also be installed later to turn hostile between
    two syncs.
    """

    def __init__(
        self,
        messages: dict[int, bytes] | None = None,
        *,
        greeting: Answer = b"* OK scripted IMAP ready\r\n",
        caps: str = IMAP_CAPS,
        overrides: dict[str, ImapHandler] | None = None,
        uidvalidity: int = 7,
    ) -> None:
        super().__init__()
        self.messages = dict(messages or {})
        self.greeting = greeting
        self.caps = caps
        self.overrides = dict(overrides or {})
        self.uidvalidity = uidvalidity

    @property
    def verbs(self) -> list[str]:
        out = []
        for line in self.received:
            words = line.split()
            if len(words) >= 2:
                verb = words[1].decode("ascii", "replace").upper()
                if verb == "UID" and len(words) > 2:
                    verb += " " + words[2].decode("ascii", "replace").upper()
                out.append(verb)
        return out

    def answer(self, tag: str, verb: str, rest: str) -> Answer:
        if verb in self.overrides:
            return self.overrides[verb](tag, rest)
        uids = sorted(self.messages)
        ok = f"{tag} OK done\r\n".encode()
        if verb == "CAPABILITY":
            return f"* CAPABILITY {self.caps}\r\n".encode() + ok
        if verb == "AUTHENTICATE":
            _mech, _, b64 = rest.partition(" ")
            good = base64.b64decode(b64 or "") == f"\0{USER}\0{PASSWORD}".encode()
            return ok if good else f"{tag} NO [AUTHENTICATIONFAILED] no\r\n".encode()
        if verb in ("NOOP", "CHECK", "ENABLE", "UID STORE", "UID EXPUNGE", "EXPUNGE"):
            return ok
        if verb == "LIST":
            return b'* LIST (\\HasNoChildren) "/" INBOX\r\n' + ok
        if verb in ("SELECT", "EXAMINE"):
            return (
                f"* {len(uids)} EXISTS\r\n* 0 RECENT\r\n"
                f"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)\r\n"
                f"* OK [UIDVALIDITY {self.uidvalidity}] v\r\n"
                f"* OK [UIDNEXT {max(uids, default=0) + 1}] n\r\n"
                f"{tag} OK [READ-WRITE] selected\r\n"
            ).encode()
        if verb == "STATUS":
            name = rest.split(" ", 1)[0]
            return (
                f"* STATUS {name} (MESSAGES {len(uids)} UIDNEXT {max(uids, default=0) + 1} "
                f"UIDVALIDITY {self.uidvalidity})\r\n"
            ).encode() + ok
        if verb == "UID SEARCH":
            words = rest.split()
            if "LARGER" in (w.upper() for w in words):
                return b"* SEARCH\r\n" + ok
            spec = words[-1] if words else "1:*"
            found = _uids_in(spec, uids) if uids else []
            return ("* SEARCH " + " ".join(map(str, found))).rstrip().encode() + b"\r\n" + ok
        if verb == "UID FETCH":
            spec, _, items = rest.partition(" ")
            out = bytearray()
            for seq, uid in enumerate(uids, 1):
                if uid not in _uids_in(spec, uids):
                    continue
                if "BODY" in items.upper():
                    raw = self.messages[uid]
                    out += b"* %d FETCH (UID %d FLAGS () BODY[] {%d}\r\n" % (seq, uid, len(raw))
                    out += raw + b")\r\n"
                else:
                    out += b"* %d FETCH (UID %d FLAGS ())\r\n" % (seq, uid)
            return bytes(out) + ok
        if verb == "LOGOUT":
            return b"* BYE bye\r\n" + ok
        return f"{tag} BAD unknown command\r\n".encode()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not await self.send((reader, writer), self.greeting):
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
            words = line.decode("utf-8", "replace").rstrip("\r\n").split(" ")
            if len(words) < 2:
                continue
            tag, verb, args = words[0], words[1].upper(), words[2:]
            if verb == "UID" and args:
                verb, args = f"UID {args[0].upper()}", args[1:]
            if not await self.send((reader, writer), self.answer(tag, verb, " ".join(args))):
                return
            if verb == "LOGOUT":
                return


# ---------------------------------------------------------------------------- POP3


def stuffed(raw: bytes) -> bytes:
    """`raw` as a RETR body on the wire: dot-stuffed and terminated."""
    lines = raw.splitlines(keepends=True)
    return b"".join(b"." + ln if ln.startswith(b".") else ln for ln in lines) + b".\r\n"


class ScriptedPop3(_Server):
    """A maildrop of `messages` (uidl -> raw) behind a scriptable POP3 dialogue.
    `overrides` maps a verb ("UIDL", "RETR", ...) to an answer."""

    def __init__(
        self,
        messages: dict[str, bytes] | None = None,
        *,
        greeting: Answer = b"+OK scripted POP3 ready\r\n",
        overrides: dict[str, Answer] | None = None,
    ) -> None:
        super().__init__()
        self.messages = dict(messages or {})
        self.greeting = greeting
        self.overrides = dict(overrides or {})

    @property
    def commands(self) -> list[str]:
        return [
            ln.split(b" ", 1)[0].strip().decode("ascii", "replace").upper() for ln in self.received
        ]

    def answer(self, line: bytes) -> Answer:
        words = line.decode("utf-8", "replace").split()
        verb = words[0].upper() if words else ""
        if verb in self.overrides:
            return self.overrides[verb]
        order = list(self.messages)
        if verb == "CAPA":
            return b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n"
        if verb in ("USER", "NOOP", "DELE", "RSET"):
            return b"+OK\r\n"
        if verb == "PASS":
            return b"+OK logged in\r\n" if words[1:] == [PASSWORD] else b"-ERR [AUTH] no\r\n"
        if verb == "STAT":
            return f"+OK {len(order)} {sum(map(len, self.messages.values()))}\r\n".encode()
        if verb == "UIDL":
            body = "".join(f"{i} {u}\r\n" for i, u in enumerate(order, 1))
            return b"+OK\r\n" + body.encode() + b".\r\n"
        if verb == "LIST":
            body = "".join(f"{i} {len(self.messages[u])}\r\n" for i, u in enumerate(order, 1))
            return b"+OK\r\n" + body.encode() + b".\r\n"
        if verb == "RETR":
            return b"+OK\r\n" + stuffed(self.messages[order[int(words[1]) - 1]])
        if verb == "QUIT":
            return b"+OK bye\r\n"
        return b"-ERR unknown command\r\n"

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not await self.send((reader, writer), self.greeting):
            return
        while line := await reader.readline():
            self.received.append(line)
            if not await self.send((reader, writer), self.answer(line)):
                return
            if line.upper().startswith(b"QUIT"):
                return


# ---------------------------------------------------------------------------- SMTP


class ScriptedSmtp(_Server):
    """A submission server: greeting, EHLO lines, MAIL/RCPT/DATA; `overrides` maps a
    verb ("EHLO", "MAIL", "RCPT", "DATA", "." for the end of the data, "QUIT")
    to an answer. `delivered` collects the message data it accepted."""

    def __init__(
        self,
        *,
        greeting: Answer = b"220 scripted ESMTP\r\n",
        ehlo: tuple[str, ...] = ("PIPELINING", "8BITMIME"),
        overrides: dict[str, Answer] | None = None,
    ) -> None:
        super().__init__()
        self.greeting = greeting
        self.ehlo = ehlo
        self.overrides = dict(overrides or {})
        self.delivered: list[bytes] = []

    def answer(self, verb: str) -> Answer:
        if verb in self.overrides:
            return self.overrides[verb]
        if verb in ("EHLO", "HELO"):
            lines = ["scripted.test", *self.ehlo]
            return "".join(
                f"250{'-' if i < len(lines) - 1 else ' '}{ln}\r\n" for i, ln in enumerate(lines)
            ).encode()
        if verb in ("MAIL", "RCPT", "RSET", "NOOP"):
            return b"250 ok\r\n"
        if verb == "DATA":
            return b"354 go ahead\r\n"
        if verb == ".":
            return b"250 queued as 1\r\n"
        if verb == "QUIT":
            return b"221 bye\r\n"
        return b"502 unknown\r\n"

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = (reader, writer)
        if not await self.send(stream, self.greeting):
            return
        while line := await reader.readline():
            self.received.append(line)
            verb = line.split(b" ", 1)[0].strip().decode("ascii", "replace").upper()
            if not await self.send(stream, self.answer(verb)):
                return
            if verb == "DATA" and "DATA" not in self.overrides:
                data = bytearray()
                while (chunk := await reader.readline()) not in (b".\r\n", b""):
                    data += chunk
                self.delivered.append(bytes(data))
                if not await self.send(stream, self.answer(".")):
                    return
            if verb == "QUIT":
                return


# ---------------------------------------------------------------------------- accounts


def imap_account(name: str, port: int, *, timeout: float = 5.0, **options: object) -> AccountConfig:
    ep = EndpointConfig(
        backend="imap",
        host="127.0.0.1",
        port=port,
        security="none",
        user=USER,
        password=PASSWORD,
        timeout=timeout,
        options=dict(options),
        key_path=f"accounts.{name}.receive",
    )
    return AccountConfig(name, "alice@example.test", ep, EndpointConfig(backend="local"))


def pop3_account(name: str, port: int, *, timeout: float = 5.0, **options: object) -> AccountConfig:
    ep = EndpointConfig(
        backend="pop3",
        host="127.0.0.1",
        port=port,
        security="none",
        user=USER,
        password=PASSWORD,
        timeout=timeout,
        options=dict(options),
        key_path=f"accounts.{name}.receive",
    )
    return AccountConfig(name, "alice@example.test", ep, EndpointConfig(backend="local"))


def smtp_account(name: str, port: int, maildir: Path, *, timeout: float = 5.0) -> AccountConfig:
    """A local Maildir to receive into, and the scripted server to send through."""
    receive = EndpointConfig(backend="maildir", path=maildir, key_path=f"accounts.{name}.receive")
    send = EndpointConfig(
        backend="smtp",
        host="127.0.0.1",
        port=port,
        security="none",
        timeout=timeout,
        key_path=f"accounts.{name}.send",
    )
    return AccountConfig(name, "alice@example.test", receive, send)


def app_config(*accounts: AccountConfig) -> AppConfig:
    return AppConfig(path=None, accounts={a.name: a for a in accounts})


# ---------------------------------------------------------------------------- events


class Recorder:
    """Every event a runtime emits; futures for the terminal replies."""

    def __init__(self) -> None:
        self.events: list[ev.Event] = []
        self._replies: dict[int, asyncio.Future[ev.Event]] = {}

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)
        if event.in_reply_to is not None:
            fut = self._future(event.in_reply_to)
            assert not fut.done(), f"two terminal replies for command {event.in_reply_to}"
            fut.set_result(event)

    def _future(self, command_id: int) -> asyncio.Future[ev.Event]:
        if command_id not in self._replies:
            self._replies[command_id] = asyncio.get_running_loop().create_future()
        return self._replies[command_id]

    async def run(
        self, runtime: Any, account: str, command: cmd.Command, timeout: float = 20
    ) -> ev.Event:
        fut = self._future(command.id)
        runtime.submit(account, command)
        return await asyncio.wait_for(fut, timeout)

    def of(self, kind: type[ev.Event], account: str | None = None) -> list[Any]:
        return [
            e
            for e in self.events
            if isinstance(e, kind) and (account is None or e.account == account)
        ]

    def last_state(self, account: str) -> ev.ConnectionChanged | None:
        states = self.of(ev.ConnectionChanged, account)
        return states[-1] if states else None


# ---------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class Snapshot:
    files: dict[str, str]  # Maildir path (without the flags suffix, which is data) -> sha256
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)  # table -> rows


# Tables that hold what the user has: messages and their folders, pending changes,
# the outbox. (folder_stats and fts are derived; meta holds housekeeping.)
_TABLES = ("folders", "messages", "msgrefs", "journal", "outbox")


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    """What differs, readably (for assertion messages)."""
    out = [f"file {k}" for k in sorted(set(before.files) ^ set(after.files))]
    out += [
        f"content {k}"
        for k in before.files
        if k in after.files and before.files[k] != after.files[k]
    ]
    for table in sorted(set(before.rows) | set(after.rows)):
        old, new = before.rows.get(table, []), after.rows.get(table, [])
        out += [f"{table} - {r}" for r in old if r not in new]
        out += [f"{table} + {r}" for r in new if r not in old]
    return out


def snapshot(root: Path, index: Path, account: str) -> Snapshot:
    """The account's Maildir files (name and content) and its index rows."""
    files = {}
    if root.exists():
        for p in sorted(root.rglob("*")):
            if p.is_file() and ("cur" in p.parts or "new" in p.parts):
                files[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table in _TABLES:
            if table not in tables:
                continue
            cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            where = " WHERE account = ?" if "account" in cols else ""
            args = (account,) if where else ()
            rows[table] = sorted(
                db.execute(f"SELECT * FROM {table}{where}", args).fetchall(), key=repr
            )
    return Snapshot(files, rows)


def crash_reports(state_dir: Path) -> list[Path]:
    return sorted(p for p in state_dir.rglob("*") if p.is_file() and "crash" in p.name)


def screen_text(app: Any) -> str:
    """The app's current screen as plain text (what a terminal shows, minus colour)."""
    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True, record=True
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text(styles=False)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def no_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" not in _ANSI.sub("", text)
