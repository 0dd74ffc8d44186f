"""A man in the middle for the TLS downgrade, injection and certificate tests.

Tests only. It sits between tui-mail and the REAL Dovecot / Postfix of the harness
and does what an attacker on the path can do but a well-behaved server never will
("Why TLS is better without STARTTLS", USENIX Security 2021):

* ``strip``: remove STARTTLS / STLS from what the server offers (the greeting's
  CAPABILITY code, CAPABILITY, CAPA, EHLO), and LOGINDISABLED with it, so a plaintext
  login looks allowed;
* ``refuse``: answer the client's STARTTLS itself with ``refusal`` (NO, BAD, -ERR, 454);
* ``fake-ok``: answer STARTTLS with OK itself and then stay silent, never starting TLS;
* ``fake-ok-plaintext``: the same, but answer the client's TLS hello in plaintext;
* ``inject-after-ok``: pass STARTTLS to the server and append forged plaintext
  responses after its OK, in the same write (the STARTTLS command-injection class);
* ``inject-before``: add forged untagged responses / capabilities before TLS;
* ``preauth`` (IMAP): replace the greeting with a plaintext PREAUTH;
* ``intercept``: terminate TLS towards the client with ``cert`` (self-signed, expired,
  another host...) and open TLS to the real server, relaying the decrypted bytes;
  with ``implicit_tls`` from the first byte, else after the server's STARTTLS OK;
* ``pass``: relay unchanged (the control case: proves the proxy itself works).

The proxy runs on its own event loop in a thread, so the same object serves an async
backend test and a ``tui-mail`` child process. It records every byte the client sent
as it was on the wire (``from_client``: plaintext before TLS, ciphertext after) and,
for ``intercept``, what the attacker could decrypt (``intercepted``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Protocol = Literal["imap", "pop3", "smtp"]
Mode = Literal[
    "pass",
    "strip",
    "refuse",
    "fake-ok",
    "fake-ok-plaintext",
    "inject-after-ok",
    "inject-before",
    "preauth",
    "intercept",
]

# Markers a test looks for in the client's state: none may ever get there.
INJECTED = "X-INJECTED"

_IMAP_STARTTLS = re.compile(rb"^(\S+) STARTTLS\r?\n$", re.I)
_IMAP_CAPS_TO_STRIP = re.compile(rb" (?:STARTTLS|LOGINDISABLED)(?=[ \]\r])", re.I)

# What the proxy itself says in each mode, per protocol.
_FAKE_OK = {
    "imap": b"%s OK Begin TLS negotiation now\r\n",
    "pop3": b"+OK Begin TLS negotiation\r\n",
    "smtp": b"220 2.0.0 Ready to start TLS\r\n",
}
_PLAINTEXT_ANSWER = {
    "imap": b"* BAD not TLS, just plaintext\r\n",
    "pop3": b"-ERR not TLS, just plaintext\r\n",
    "smtp": b"500 5.5.2 not TLS, just plaintext\r\n",
}
# Forged replies appended right after the real OK to STARTTLS: if the client read them
# as the first answers of the TLS session they would poison its capabilities (IMAP T3 is
# the tag of the client's next command: CAPABILITY after the handshake).
_INJECT_AFTER_OK = {
    "imap": (
        b"* CAPABILITY IMAP4rev1 AUTH=PLAIN " + INJECTED.encode() + b"-AFTER\r\n"
        b"* 666 EXISTS\r\n"
        b"T3 OK [CAPABILITY IMAP4rev1 " + INJECTED.encode() + b"-AFTER] injected\r\n"
    ),
    "pop3": b"+OK\r\nSASL " + INJECTED.encode() + b"-AFTER\r\nUSER\r\n.\r\n",
    "smtp": (
        b"250-injected.example\r\n250-AUTH " + INJECTED.encode() + b"-AFTER\r\n"
        b"250 " + INJECTED.encode() + b"-AFTER\r\n"
    ),
}
# Forged responses before TLS. IMAP: after the greeting and before the STARTTLS OK
# (untagged capabilities, EXISTS, an ALERT); POP3 and SMTP: extra capabilities.
_IMAP_INJECT_GREETING = (
    b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN " + INJECTED.encode() + b"-BEFORE\r\n"
    b"* 666 EXISTS\r\n"
    b"* OK [ALERT] " + INJECTED.encode() + b" alert before TLS\r\n"
)
_IMAP_INJECT_BEFORE_OK = (
    b"* 777 EXISTS\r\n* 3 EXPUNGE\r\n* CAPABILITY IMAP4rev1 " + INJECTED.encode() + b"-BEFORE\r\n"
)
_POP3_INJECT_CAPA = INJECTED.encode() + b"-BEFORE\r\nSASL " + INJECTED.encode() + b"-SASL\r\n"
_SMTP_INJECT_EHLO = b"250-" + INJECTED.encode() + b"-BEFORE\r\n"

_PREAUTH = b"* PREAUTH [CAPABILITY IMAP4rev1 AUTH=PLAIN] Logged in as alice (forged)\r\n"

_REFUSALS = {
    "imap": b"%s NO [UNAVAILABLE] TLS is not available right now\r\n",
    "pop3": b"-ERR TLS not available\r\n",
    "smtp": b"454 4.7.0 TLS not available due to temporary reason\r\n",
}


def refusal_for(protocol: Protocol, kind: str = "") -> bytes:
    """A STARTTLS refusal line; ``kind`` picks the IMAP status (NO or BAD)."""
    if protocol == "imap" and kind.upper() == "BAD":
        return b"%s BAD STARTTLS is not allowed here\r\n"
    return _REFUSALS[protocol]


@dataclass
class _Session:
    """State shared by the two directions of one proxied connection."""

    starttls_tag: bytes | None = None  # set once the client asked for STARTTLS
    upgraded: asyncio.Event = field(default_factory=asyncio.Event)
    tls: Literal["none", "raw", "intercepted"] = "none"
    closing: bool = False


class Mitm:
    """The proxy. Use as a context manager; ``port`` is where the client connects."""

    def __init__(
        self,
        protocol: Protocol,
        upstream: tuple[str, int],
        mode: Mode = "pass",
        *,
        refusal: bytes | None = None,
        cert: tuple[Path, Path] | None = None,
        implicit_tls: bool = False,
        upstream_ca: Path | None = None,
    ) -> None:
        if mode == "intercept" and cert is None:
            raise ValueError("intercept needs the certificate to present")
        if mode == "preauth" and protocol != "imap":
            raise ValueError("PREAUTH is IMAP only")
        self.protocol = protocol
        self.upstream = upstream
        self.mode = mode
        self.refusal = refusal or _REFUSALS[protocol]
        self.implicit_tls = implicit_tls
        self.upstream_ca = upstream_ca
        self._server_ctx: ssl.SSLContext | None = None
        if cert is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
            self._server_ctx = ctx
        self.port = 0
        # Everything the client sent, as it was on the wire.
        self.from_client = bytearray()
        # What the client sent inside a TLS session the proxy terminated (attacker's view).
        self.intercepted = bytearray()
        # Plaintext lines from the client, one entry per line (before any TLS).
        self.client_lines: list[bytes] = []
        self.handshake_errors: list[str] = []
        self.connections = 0
        self._active = 0
        self._idle = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Mitm:
        self._thread = threading.Thread(target=self._run, name="mitm", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the MITM proxy did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def wait_closed(self, timeout: float = 10.0) -> None:
        """Until every proxied connection has ended (the client gave up and hung up)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._active == 0, timeout):
                raise AssertionError(f"{self._active} proxied connection(s) still open")

    async def settled(self, timeout: float = 10.0) -> None:
        """`wait_closed` for async tests: the client's own loop must keep running meanwhile
        (its hang-up is queued on that loop)."""
        await asyncio.to_thread(self.wait_closed, timeout)

    def wire_text(self) -> bytes:
        """Every byte the client gave away, plaintext and decrypted-by-the-attacker."""
        return bytes(self.from_client) + bytes(self.intercepted)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by __enter__ to the test
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

    def _upstream_ctx(self) -> ssl.SSLContext:
        return ssl.create_default_context(
            cafile=str(self.upstream_ca) if self.upstream_ca else None
        )

    # ------------------------------------------------------------------ one connection

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        with self._idle:
            self._active += 1
            self.connections += 1
        swriter: asyncio.StreamWriter | None = None
        try:
            if self.implicit_tls:
                if not await self._tls_towards_client(cwriter):
                    return
                sreader, swriter = await asyncio.open_connection(
                    *self.upstream, ssl=self._upstream_ctx(), server_hostname="localhost"
                )
                session = _Session(tls="intercepted")
                session.upgraded.set()
            else:
                sreader, swriter = await asyncio.open_connection(*self.upstream)
                session = _Session()
            directions = [
                asyncio.create_task(self._client_to_server(creader, swriter, cwriter, session)),
                asyncio.create_task(self._server_to_client(sreader, swriter, cwriter, session)),
            ]
            # Either side hanging up ends the session; the other direction is cut.
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
            for task in directions:
                task.cancel()
            await asyncio.gather(*directions, return_exceptions=True)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, EOFError):
            pass
        except asyncio.CancelledError:
            pass  # the proxy is stopping: asyncio would log a cancelled client callback
        finally:
            for w in (cwriter, swriter):
                if w is not None:
                    w.close()
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    async def _tls_towards_client(self, cwriter: asyncio.StreamWriter) -> bool:
        """Terminate TLS towards the client with our certificate; False if refused."""
        assert self._server_ctx is not None
        try:
            await cwriter.start_tls(self._server_ctx, ssl_handshake_timeout=10)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self.handshake_errors.append(f"{type(exc).__name__}: {exc}")
            return False
        return True

    # ------------------------------------------------------------------ client -> server

    async def _client_to_server(
        self,
        creader: asyncio.StreamReader,
        swriter: asyncio.StreamWriter,
        cwriter: asyncio.StreamWriter,
        session: _Session,
    ) -> None:
        while session.tls == "none":
            line = await creader.readline()
            if not line:
                return
            self.from_client += line
            self.client_lines.append(line)
            tag = self._starttls_tag(line)
            if tag is None:
                swriter.write(line)
                await swriter.drain()
                continue
            if self.mode == "refuse":
                cwriter.write(self.refusal.replace(b"%s", tag))
                await cwriter.drain()
                continue
            if self.mode in ("fake-ok", "fake-ok-plaintext"):
                cwriter.write(_FAKE_OK[self.protocol].replace(b"%s", tag))
                await cwriter.drain()
                await self._never_tls(creader, cwriter)
                return
            session.starttls_tag = tag
            swriter.write(line)
            await swriter.drain()
            await session.upgraded.wait()
        await self._relay(creader, swriter, session, from_client=True)

    def _starttls_tag(self, line: bytes) -> bytes | None:
        """The tag of a STARTTLS command line (b"" for POP3/SMTP), None for other lines."""
        if self.protocol == "imap":
            m = _IMAP_STARTTLS.match(line)
            return m.group(1) if m else None
        verb = b"STLS" if self.protocol == "pop3" else b"STARTTLS"
        return b"" if line.strip().upper() == verb else None

    async def _never_tls(
        self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
    ) -> None:
        """After a forged OK: swallow the client's TLS hello (or answer it in plaintext)."""
        answered = False
        while data := await creader.read(65536):
            self.from_client += data
            if self.mode == "fake-ok-plaintext" and not answered:
                answered = True
                cwriter.write(_PLAINTEXT_ANSWER[self.protocol])
                await cwriter.drain()

    # ------------------------------------------------------------------ server -> client

    async def _server_to_client(
        self,
        sreader: asyncio.StreamReader,
        swriter: asyncio.StreamWriter,
        cwriter: asyncio.StreamWriter,
        session: _Session,
    ) -> None:
        first = True
        while session.tls == "none":
            reply = await self._read_reply(sreader)
            if not reply:
                return
            if first:
                first = False
                cwriter.write(self._rewrite_greeting(reply))
                await cwriter.drain()
                continue
            tag = session.starttls_tag
            if tag is not None and self._answers_starttls(reply, tag):
                await self._on_starttls_answer(reply, swriter, cwriter, session)
                continue
            cwriter.write(self._rewrite(reply))
            await cwriter.drain()
        await self._relay(sreader, cwriter, session, from_client=False)

    async def _read_reply(self, sreader: asyncio.StreamReader) -> bytes:
        """One line; for SMTP one whole (multi-line) reply, so EHLO can be rewritten."""
        line = await sreader.readline()
        if self.protocol != "smtp":
            return line
        reply = line
        while line and line[3:4] == b"-":
            line = await sreader.readline()
            reply += line
        return reply

    def _answers_starttls(self, reply: bytes, tag: bytes) -> bool:
        if self.protocol == "imap":
            return reply.startswith(tag + b" ")
        return True  # POP3/SMTP: no pipelining past STARTTLS, so the next reply is its

    async def _on_starttls_answer(
        self,
        reply: bytes,
        swriter: asyncio.StreamWriter,
        cwriter: asyncio.StreamWriter,
        session: _Session,
    ) -> None:
        ok = {"imap": b" OK", "pop3": b"+OK", "smtp": b"220"}[self.protocol]
        accepted = ok in reply[: len(session.starttls_tag or b"") + 4]
        if self.mode == "inject-before" and self.protocol == "imap":
            reply = _IMAP_INJECT_BEFORE_OK + reply
        if accepted and self.mode == "inject-after-ok":
            reply += _INJECT_AFTER_OK[self.protocol]  # one write: the same TCP segment
        if accepted and self.mode == "intercept":
            # The client's TLS hello must stay in the socket for our TLS layer, not be
            # read into the plaintext stream buffer while we handshake upstream.
            cwriter.transport.pause_reading()  # type: ignore[attr-defined]
        cwriter.write(reply)
        await cwriter.drain()
        session.starttls_tag = None
        if not accepted:
            session.upgraded.set()
            return
        if self.mode == "intercept":
            await swriter.start_tls(self._upstream_ctx(), server_hostname="localhost")
            if not await self._tls_towards_client(cwriter):
                session.closing = True
                cwriter.close()
                swriter.close()
            session.tls = "intercepted"
        else:
            session.tls = "raw"  # the client and the real server talk TLS through us
        session.upgraded.set()

    def _rewrite_greeting(self, reply: bytes) -> bytes:
        if self.mode == "preauth":
            return _PREAUTH
        if self.mode == "inject-before" and self.protocol == "imap":
            return self._rewrite(reply) + _IMAP_INJECT_GREETING
        return self._rewrite(reply)

    def _rewrite(self, reply: bytes) -> bytes:
        if self.mode == "strip":
            return self._strip(reply)
        if self.mode == "inject-before":
            if self.protocol == "pop3" and reply == b"STLS\r\n":
                return _POP3_INJECT_CAPA + reply
            if self.protocol == "smtp" and reply.startswith(b"250-"):
                head, _, rest = reply.partition(b"\r\n")
                return head + b"\r\n" + _SMTP_INJECT_EHLO + rest
        return reply

    def _strip(self, reply: bytes) -> bytes:
        if self.protocol == "imap":
            return _IMAP_CAPS_TO_STRIP.sub(b"", reply)
        if self.protocol == "pop3":
            return b"" if reply.strip().upper() == b"STLS" else reply
        lines = reply.splitlines(keepends=True)
        kept = [ln for ln in lines if ln[4:].strip().upper() != b"STARTTLS"]
        if kept and kept != lines and kept[-1][3:4] == b"-":
            kept[-1] = kept[-1][:3] + b" " + kept[-1][4:]  # it was the last line: end here
        return b"".join(kept)

    # ------------------------------------------------------------------ after the switch

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: _Session,
        *,
        from_client: bool,
    ) -> None:
        if session.closing:
            return
        try:
            while data := await reader.read(65536):
                if from_client:
                    if session.tls == "intercepted":
                        self.intercepted += data
                    else:
                        self.from_client += data
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.close()


# ---------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class BadCerts:
    """Certificate/key pairs a MITM (or a misconfigured server) might present."""

    self_signed: tuple[Path, Path]  # for localhost, but signed by nobody in ca_file
    expired: tuple[Path, Path]  # signed by the harness CA, valid only in January 2020
    wrong_host: tuple[Path, Path]  # signed by the harness CA, for other.example
    good: tuple[Path, Path]  # signed by the harness CA for localhost: the control case

    def by_name(self, name: str) -> tuple[Path, Path]:
        return {
            "self-signed": self.self_signed,
            "expired": self.expired,
            "wrong-host": self.wrong_host,
            "good": self.good,
        }[name]


_LOCAL_SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1"
_CA_CONFIG = """[ca]
default_ca = test
[test]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_bad_certs(d: Path, ca_crt: Path, ca_key: Path) -> BadCerts:
    """Write the certificates into ``d`` with the openssl tool (the harness needs it too).

    ``openssl ca`` rather than ``x509 -req``: only it can set a validity period wholly
    in the past on OpenSSL 3.0.
    """
    d.mkdir(parents=True, exist_ok=True)
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text(_CA_CONFIG)

    def request(name: str, cn: str, san: str) -> None:
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-addext", san,
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d,
        )  # fmt: skip

    def sign(name: str, *validity: str) -> tuple[Path, Path]:
        _openssl(
            "ca", "-batch", "-config", "ca.cnf", "-cert", str(ca_crt), "-keyfile", str(ca_key),
            "-in", f"{name}.csr", "-out", f"{name}.crt", *validity, cwd=d,
        )  # fmt: skip
        return d / f"{name}.crt", d / f"{name}.key"

    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=localhost",
        "-addext", _LOCAL_SAN, "-keyout", "self.key", "-out", "self.crt", cwd=d,
    )  # fmt: skip
    request("expired", "localhost", _LOCAL_SAN)
    request("other", "other.example", "subjectAltName=DNS:other.example")
    request("good", "localhost", _LOCAL_SAN)
    return BadCerts(
        self_signed=(d / "self.crt", d / "self.key"),
        expired=sign("expired", "-startdate", "20200101000000Z", "-enddate", "20200201000000Z"),
        wrong_host=sign("other", "-days", "30"),
        good=sign("good", "-days", "30"),
    )


# ---------------------------------------------------------------------- assertions


def secret_forms(user: str, secret: str) -> list[bytes]:
    """The ways a secret can cross the wire: raw, and in the SASL encodings we use."""
    raw = secret.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.b64encode(b"\0" + user.encode() + b"\0" + raw),
        base64.b64encode(f"user={user}\x01auth=Bearer {secret}\x01\x01".encode()),
    ]


def assert_nothing_leaked(mitm: Mitm, user: str, secret: str, *extra: bytes) -> None:
    """No credential (nor any of ``extra``: message bytes, MAIL FROM) reached the MITM."""
    seen = mitm.wire_text()
    for form in [*secret_forms(user, secret), *extra]:
        assert form not in seen, f"{form!r} crossed the MITM: {seen[:2000]!r}"
    login_verbs = (b"LOGIN", b"AUTHENTICATE", b"AUTH", b"USER", b"PASS", b"APOP", b"MAIL")
    for line in mitm.client_lines:
        words = line.split()
        verb = words[1] if mitm.protocol == "imap" and len(words) > 1 else line[:4]
        assert not any(verb.upper().startswith(v) for v in login_verbs), (
            f"the client sent {line!r} in plaintext"
        )


# ---------------------------------------------------------------------- backends


def make_backend(
    protocol: Protocol,
    port: int,
    *,
    user: str,
    password: str,
    ca_file: Path | None,
    security: Literal["tls", "starttls"] = "starttls",
    timeout: float = 2.0,
) -> Any:
    """The product's backend for ``protocol``, aimed at ``localhost:port`` (the name in the
    harness certificate; the MITM listens there too)."""
    from tui_mail.backends.base import BackendContext
    from tui_mail.backends.imap.backend import ImapReceiveBackend
    from tui_mail.backends.pop3.backend import Pop3ReceiveBackend
    from tui_mail.backends.smtp.backend import SmtpSendBackend
    from tui_mail.config.schema import AccountConfig, EndpointConfig

    side = "send" if protocol == "smtp" else "receive"
    ep = EndpointConfig(
        backend=protocol,
        host="localhost",
        port=port,
        security=security,
        user=user,
        password=password,
        ca_file=ca_file,
        timeout=timeout,
        key_path=f"accounts.{user}.{side}",
    )
    other = EndpointConfig(backend="maildir" if protocol == "smtp" else "local")
    account = AccountConfig(
        name=user,
        email=f"{user}@localhost",
        receive=other if protocol == "smtp" else ep,
        send=ep if protocol == "smtp" else other,
    )
    kind = {"imap": ImapReceiveBackend, "pop3": Pop3ReceiveBackend, "smtp": SmtpSendBackend}
    return kind[protocol](BackendContext(account, ep))


# ---------------------------------------------------------------------- the CLI side


def write_config(path: Path, account: str, email: str, receive: dict, send: dict) -> Path:
    """A config.toml with one account; values are written as TOML literals."""

    def table(values: dict) -> str:
        out = []
        for key, value in values.items():
            if isinstance(value, bool):
                out.append(f"{key} = {str(value).lower()}")
            elif isinstance(value, int | float):
                out.append(f"{key} = {value}")
            else:
                out.append(f"{key} = {_toml_str(str(value))}")
        return "\n".join(out)

    path.write_text(
        f"[accounts.{account}]\nemail = {_toml_str(email)}\n\n"
        f"[accounts.{account}.receive]\n{table(receive)}\n\n"
        f"[accounts.{account}.send]\n{table(send)}\n"
    )
    path.chmod(0o600)
    return path


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_cli(
    config: Path,
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    """``tui-mail --config CONFIG ARGS`` as a child process, as a user runs it."""
    import os
    import sys

    return subprocess.run(
        [sys.executable, "-m", "tui_mail", "--config", str(config), *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def store_snapshot(data_home: Path, account: str) -> dict[str, object]:
    """What the user has locally for ``account``: every Maildir file (by content) and the
    index rows that describe messages and folders."""
    import hashlib
    import sqlite3

    root = data_home / "tui-mail" / "mail" / account
    files = {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    db = data_home / "tui-mail" / "index.sqlite3"
    rows: dict[str, object] = {"files": files}
    if db.exists():
        conn = sqlite3.connect(db)
        try:
            rows["messages"] = conn.execute(
                "SELECT folder, key, subdir, flags, uid, uidvalidity, uidl FROM messages "
                "WHERE account = ? ORDER BY folder, key",
                (account,),
            ).fetchall()
            rows["folders"] = conn.execute(
                "SELECT name, uidvalidity, uidnext, highestmodseq, sync_state FROM folders "
                "WHERE account = ? ORDER BY name",
                (account,),
            ).fetchall()
        finally:
            conn.close()
    return rows


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The run failed with exit status 1 and exactly one stderr line naming the reason."""
    err = result.stderr
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert result.returncode == 1, (result.returncode, err)
    for word in words:
        assert word.lower() in lines[0].lower(), f"{word!r} not in {lines[0]!r}"
    return lines[0]
