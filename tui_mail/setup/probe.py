"""Live checks of one candidate server: connect, read the greeting and capabilities.

A probe never sends a credential. It tells what really answers at host:port
(IMAP, POP3 or SMTP), whether the connection is encrypted (implicit TLS from
the first byte, or STARTTLS/STLS), whether the certificate verifies for the
host name, and which login mechanisms are offered once encrypted. Servers
that offer no encryption are reported but never proposed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from msgspec import Struct, field
from msgspec.structs import replace

from tui_mail.core.tls import client_context

if TYPE_CHECKING:
    import dns.asyncresolver

Protocol = Literal["imap", "pop3", "smtp"]
Security = Literal["tls", "starttls", "none"]

RECEIVE_PROTOCOLS: tuple[Protocol, ...] = ("imap", "pop3")
# Lower is better: implicit TLS leaves no plaintext phase to strip (RFC 8314).
SECURITY_RANK: dict[str, int] = {"tls": 0, "starttls": 1, "none": 2}
# Where a candidate came from, in the order discovery asks.
SOURCE_RANK: dict[str, int] = {"SRV": 0, "autoconfig": 1, "guess": 2}
PROTOCOL_NAMES: dict[str, str] = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}
_MAX_LINES = 200  # a capability listing longer than this is not a mail server we want
_PASSWORD_MECHS = frozenset({"PLAIN", "LOGIN", "CRAM-MD5"})


class NetOptions(Struct, frozen=True):
    """How discovery reaches the network.

    `resolver` ("ip", port) sends every lookup (SRV, A/AAAA, autoconfig hosts)
    to that DNS server instead of the system's: for split DNS and for tests.
    `port_map` replaces a standard port of a *guessed* server (993 -> 10993);
    servers named by SRV or autoconfig keep the port they name.
    """

    resolver: tuple[str, int] | None = None
    ca_file: Path | None = None
    timeout: float = 10.0
    port_map: Mapping[int, int] = field(default_factory=dict)


class Candidate(Struct, frozen=True):
    """A server some source suggests, not yet checked."""

    protocol: Protocol
    host: str
    port: int
    security: Security  # what the source claims
    source: str  # "SRV", "autoconfig" or "guess"
    order: int = 0  # position within its source (SRV priority/weight, document order)
    username: str | None = None  # autoconfig's <username>, placeholders expanded
    auth: tuple[str, ...] = ()  # autoconfig's <authentication> values

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class Probe(Struct, frozen=True):
    """What a live check of a candidate found."""

    candidate: Candidate
    reachable: bool
    security: Security | None = None  # as found; "none" means no encryption on offer
    mechanisms: tuple[str, ...] = ()  # SASL mechanisms offered after TLS
    password_login: bool = False  # a login with a password is possible
    cert_error: str | None = None
    error: str | None = None

    @property
    def usable(self) -> bool:
        """Proposable: it answered, encrypts, its certificate verifies, takes a password."""
        return (
            self.reachable
            and self.error is None
            and self.cert_error is None
            and self.security in ("tls", "starttls")
            and self.password_login
        )

    @property
    def protocol(self) -> Protocol:
        return self.candidate.protocol

    def describe(self) -> str:
        """One line for the user, e.g. 'IMAP imap.example.com:993, TLS, PLAIN LOGIN'."""
        c = self.candidate
        head = f"{PROTOCOL_NAMES[c.protocol]} {c.where}"
        if not self.reachable or self.error:
            return f"{head}: {self.error or 'no answer'}"
        how = {"tls": "TLS", "starttls": "STARTTLS", "none": "no encryption"}[
            self.security or "none"
        ]
        parts = [head, how]
        if self.cert_error:
            parts.append(f"certificate NOT valid: {self.cert_error}")
        if self.mechanisms:
            parts.append("login: " + " ".join(self.mechanisms))
        if self.security == "none":
            parts.append("never used without encryption")
        elif not self.password_login and not self.cert_error:
            parts.append("offers no password login (OAuth2 only?)")
        return ", ".join(parts)


def rank_key(p: Probe) -> tuple[int, int, int, int, int]:
    """Sort key, best first: usable, implicit TLS, source order, order in source, IMAP."""
    security = SECURITY_RANK.get(p.security or "none", 9)
    return (
        0 if p.usable else 1,
        security,
        SOURCE_RANK.get(p.candidate.source, 9),
        p.candidate.order,
        0 if p.protocol == "imap" else 1,
    )


def rank(probes: list[Probe]) -> list[Probe]:
    return sorted(probes, key=rank_key)


# --------------------------------------------------------------------------- TLS


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The same trust the backends use: the system store plus `ca_file`."""
    return client_context(ca_file)


def _unverified_context() -> ssl.SSLContext:
    # Only used after verification failed, to see what answers there and say so;
    # nothing is sent on such a connection but CAPABILITY/CAPA/EHLO and a goodbye.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def cert_reason(exc: ssl.SSLCertVerificationError) -> str:
    return str(exc.verify_message or exc.reason or exc)


# --------------------------------------------------------------------------- names


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def make_resolver(opts: NetOptions) -> dns.asyncresolver.Resolver:
    """A dnspython resolver: the system's, or the one DNS server of `opts.resolver`.

    Raises dns.resolver.NoResolverConfiguration when the system has none.
    """
    import dns.asyncresolver

    if opts.resolver is None:
        res = dns.asyncresolver.Resolver()
    else:
        res = dns.asyncresolver.Resolver(configure=False)
        res.nameservers = [opts.resolver[0]]
        res.port = opts.resolver[1]
    res.lifetime = min(opts.timeout, 10.0)
    return res


async def resolve_host(host: str, opts: NetOptions) -> list[str]:
    """Addresses to connect to. Without a resolver override the OS resolves at
    connect time (it knows /etc/hosts and the search domains), so the name itself
    is returned; with one, A then AAAA records from that server ([] if none)."""
    if opts.resolver is None or is_ip(host):
        return [host]
    import dns.exception
    import dns.resolver

    res = make_resolver(opts)
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = await res.resolve(host.rstrip(".") + ".", rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            continue
        except dns.exception.Timeout:
            break
        found.extend(r.address for r in answer)
    return found


# --------------------------------------------------------------------------- probing


class _NotThisProtocol(Exception):
    """The greeting shows something else answers at this port."""


class _Conn:
    """A line-based connection with the few operations the dialogs need."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def line(self) -> bytes:
        raw = await self.reader.readline()
        if not raw:
            raise ConnectionError("the server closed the connection")
        return raw.rstrip(b"\r\n")

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def start_tls(self, ctx: ssl.SSLContext, host: str, timeout: float) -> None:
        # No secret is ever sent by a probe, so bytes a man in the middle might
        # have queued before the handshake can at worst garble the listing shown.
        await self.writer.start_tls(ctx, server_hostname=host, ssl_handshake_timeout=timeout)

    def close(self) -> None:
        self.writer.close()


async def probe(c: Candidate, opts: NetOptions) -> Probe:
    """Check `c` live; never raises for network trouble (it is in the result)."""
    if c.security == "none":
        # A source that says "plain" may still offer STARTTLS there: ask for it.
        c = replace(c, security="starttls")
    addresses = await resolve_host(c.host, opts)
    if not addresses:
        return Probe(c, reachable=False, error="no such host")
    error = "no answer"
    for address in addresses:
        try:
            async with asyncio.timeout(opts.timeout):
                return await _probe_at(c, address, opts)
        except _NotThisProtocol as exc:
            return Probe(c, reachable=False, error=str(exc))
        except TimeoutError:
            error = f"no answer within {opts.timeout:g} s"
        except ssl.SSLError as exc:
            error = f"TLS failed: {exc.reason or exc}"
        except socket.gaierror:
            return Probe(c, reachable=False, error="no such host")
        except (OSError, ValueError, UnicodeError) as exc:
            error = _os_reason(exc)
    return Probe(c, reachable=False, error=error)


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


async def _probe_at(c: Candidate, address: str, opts: NetOptions) -> Probe:
    verify = tls_context(opts.ca_file)
    cert_error: str | None = None
    if c.security == "tls":
        try:
            conn = await _connect(address, c, verify, opts)
        except ssl.SSLCertVerificationError as exc:
            cert_error = cert_reason(exc)
            conn = await _connect(address, c, _unverified_context(), opts)
    else:
        conn = await _connect(address, c, None, opts)
    try:
        dialog = {"imap": _imap, "pop3": _pop3, "smtp": _smtp}[c.protocol]
        return await dialog(conn, c, verify, cert_error, opts)
    finally:
        conn.close()


async def _connect(
    address: str, c: Candidate, ctx: ssl.SSLContext | None, opts: NetOptions
) -> _Conn:
    reader, writer = await asyncio.open_connection(
        address,
        c.port,
        ssl=ctx,
        # The certificate must match the name the user will configure, not the address.
        server_hostname=c.host if ctx is not None else None,
        ssl_handshake_timeout=opts.timeout if ctx is not None else None,
    )
    return _Conn(reader, writer)


async def _upgrade(
    conn: _Conn, c: Candidate, verify: ssl.SSLContext, opts: NetOptions
) -> str | None:
    """STARTTLS handshake; the certificate problem as text, or None when it verifies."""
    try:
        await conn.start_tls(verify, c.host, opts.timeout)
    except ssl.SSLCertVerificationError as exc:
        return cert_reason(exc)
    return None


def _found(
    c: Candidate,
    security: Security,
    mechanisms: list[str],
    password_login: bool,
    cert_error: str | None,
) -> Probe:
    return Probe(
        c,
        reachable=True,
        security=security,
        mechanisms=tuple(dict.fromkeys(mechanisms)),
        password_login=password_login,
        cert_error=cert_error,
    )


# ---- IMAP


async def _imap_caps(conn: _Conn, tag: bytes) -> list[str]:
    await conn.send(tag + b" CAPABILITY\r\n")
    caps: list[str] = []
    for _ in range(_MAX_LINES):
        line = await conn.line()
        if line.upper().startswith(b"* CAPABILITY "):
            caps = line[13:].decode("ascii", "replace").upper().split()
        elif line.startswith(tag + b" "):
            return caps
    raise _NotThisProtocol("endless CAPABILITY answer")


async def _imap_tagged_ok(conn: _Conn, tag: bytes) -> bool:
    for _ in range(_MAX_LINES):
        line = await conn.line()
        if line.startswith(tag + b" "):
            return line[len(tag) + 1 :].upper().startswith(b"OK")
    return False


async def _imap(
    conn: _Conn, c: Candidate, verify: ssl.SSLContext, cert_error: str | None, opts: NetOptions
) -> Probe:
    greeting = await conn.line()
    if not greeting.upper().startswith((b"* OK", b"* PREAUTH")):
        raise _NotThisProtocol(_not_this("IMAP", greeting))
    caps = await _imap_caps(conn, b"p1")
    security: Security = c.security
    if c.security == "starttls":
        if "STARTTLS" not in caps:
            await conn.send(b"p9 LOGOUT\r\n")
            return _found(c, "none", [], False, None)
        await conn.send(b"p2 STARTTLS\r\n")
        if not await _imap_tagged_ok(conn, b"p2"):
            return _found(c, "none", [], False, None)
        cert_error = await _upgrade(conn, c, verify, opts)
        if cert_error:
            return _found(c, security, [], False, cert_error)
        caps = await _imap_caps(conn, b"p3")  # RFC 3501 6.2.1: the old list is void
    mechs = [cap[5:] for cap in caps if cap.startswith("AUTH=")]
    password = "AUTH=PLAIN" in caps or "LOGINDISABLED" not in caps
    if "LOGINDISABLED" not in caps:
        mechs.append("LOGIN")  # the IMAP LOGIN command
    await conn.send(b"p9 LOGOUT\r\n")
    return _found(c, security, mechs, password, cert_error)


# ---- POP3


async def _pop3_capa(conn: _Conn) -> dict[str, list[str]] | None:
    await conn.send(b"CAPA\r\n")
    if not (await conn.line()).startswith(b"+OK"):
        return None  # an old server without CAPA (RFC 2449)
    caps: dict[str, list[str]] = {}
    for _ in range(_MAX_LINES):
        line = await conn.line()
        if line == b".":
            return caps
        words = line.decode("ascii", "replace").split()
        if words:
            caps[words[0].upper()] = [w.upper() for w in words[1:]]
    raise _NotThisProtocol("endless CAPA answer")


async def _pop3(
    conn: _Conn, c: Candidate, verify: ssl.SSLContext, cert_error: str | None, opts: NetOptions
) -> Probe:
    greeting = await conn.line()
    if not greeting.startswith(b"+OK"):
        raise _NotThisProtocol(_not_this("POP3", greeting))
    caps = await _pop3_capa(conn)
    if c.security == "starttls":
        if caps is None or "STLS" not in caps:
            await conn.send(b"QUIT\r\n")
            return _found(c, "none", [], False, None)
        await conn.send(b"STLS\r\n")
        if not (await conn.line()).startswith(b"+OK"):
            return _found(c, "none", [], False, None)
        cert_error = await _upgrade(conn, c, verify, opts)
        if cert_error:
            return _found(c, c.security, [], False, cert_error)
        caps = await _pop3_capa(conn)
    sasl = list((caps or {}).get("SASL", []))
    # Without CAPA, USER/PASS is the one login every POP3 server has (RFC 1939).
    user_pass = caps is None or "USER" in caps
    mechs = sasl + (["USER"] if user_pass else [])
    password = user_pass or bool(_PASSWORD_MECHS & set(sasl))
    await conn.send(b"QUIT\r\n")
    return _found(c, c.security, mechs, password, cert_error)


# ---- SMTP


async def _smtp_reply(conn: _Conn) -> tuple[int, list[str]]:
    lines: list[str] = []
    for _ in range(_MAX_LINES):
        line = await conn.line()
        if len(line) < 3 or not line[:3].isdigit():
            raise _NotThisProtocol(_not_this("SMTP", line))
        lines.append(line[4:].decode("ascii", "replace"))
        if line[3:4] != b"-":
            return int(line[:3]), lines
    raise _NotThisProtocol("endless SMTP reply")


async def _ehlo(conn: _Conn) -> list[str]:
    # An address literal (RFC 5321 4.1.3) needs no DNS name of our own.
    local = conn.writer.get_extra_info("sockname")
    ip = local[0] if local else "127.0.0.1"
    literal = f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"
    await conn.send(f"EHLO {literal}\r\n".encode())
    code, lines = await _smtp_reply(conn)
    return [line.upper() for line in lines[1:]] if code == 250 else []


async def _smtp(
    conn: _Conn, c: Candidate, verify: ssl.SSLContext, cert_error: str | None, opts: NetOptions
) -> Probe:
    code, _ = await _smtp_reply(conn)
    if code != 220:
        raise _NotThisProtocol(f"the SMTP server does not take mail now ({code})")
    ext = await _ehlo(conn)
    if c.security == "starttls":
        if "STARTTLS" not in ext:
            await conn.send(b"QUIT\r\n")
            return _found(c, "none", [], False, None)
        await conn.send(b"STARTTLS\r\n")
        code, _ = await _smtp_reply(conn)
        if code != 220:
            return _found(c, "none", [], False, None)
        cert_error = await _upgrade(conn, c, verify, opts)
        if cert_error:
            return _found(c, c.security, [], False, cert_error)
        ext = await _ehlo(conn)
    mechs: list[str] = []
    for line in ext:
        if line.startswith(("AUTH ", "AUTH=")):
            mechs.extend(line[5:].split())
    await conn.send(b"QUIT\r\n")
    return _found(c, c.security, mechs, bool(_PASSWORD_MECHS & set(mechs)), cert_error)


def _not_this(proto: str, greeting: bytes) -> str:
    text = greeting[:60].decode("ascii", "replace")
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    article = "a" if proto == "POP3" else "an"  # "an IMAP", "an SMTP", "a POP3"
    return f"not {article} {proto} server (it said {text!r})"
