"""Thunderbird's autoconfig documents (config-v1.1.xml): where to fetch, how to read.

The document comes from the network, so it is read with care: at most
`MAX_BYTES`, UTF-8 only, and any DTD is refused before parsing (that is where
entity expansion bombs and external entities live). Only https is fetched,
and redirects must stay on https; plain http is accepted for a loopback host
only, which is what the tests serve.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import socket
import ssl
import xml.etree.ElementTree as ET
from urllib.parse import urlencode, urljoin, urlsplit

from tui_mail.setup.probe import (
    Candidate,
    NetOptions,
    Protocol,
    Security,
    is_ip,
    is_loopback,
    resolve_host,
    tls_context,
)

MAX_BYTES = 256 * 1024
MAX_REDIRECTS = 3
_SOCKET_TYPES: dict[str, Security] = {"ssl": "tls", "tls": "tls", "starttls": "starttls"}
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.?)*")
_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class AutoconfigError(Exception):
    """The document could not be fetched or read; the message says why, in a few words."""


def autoconfig_urls(domain: str, email: str) -> list[str]:
    """The provider's own locations, in Thunderbird's order."""
    query = urlencode({"emailaddress": email})
    return [
        f"https://autoconfig.{domain}/mail/config-v1.1.xml?{query}",
        f"https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml",
    ]


def parse_autoconfig(data: bytes | str, email: str) -> list[Candidate]:
    """Servers listed in a config-v1.1 document, in document order.

    Placeholders (%EMAILADDRESS%, %EMAILLOCALPART%, %EMAILDOMAIN%) are filled
    in. Servers of other types (Exchange, ...) and unknown socket types are
    left out; "plain" ones are kept as security "none" for the probe, which
    will only propose them if they offer STARTTLS.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise AutoconfigError("the document is not UTF-8") from None
    if len(text) > MAX_BYTES:
        raise AutoconfigError("the document is too large")
    if _DTD.search(text):
        raise AutoconfigError("the document has a DTD, which is not accepted")
    try:
        root = ET.fromstring(text.lstrip("\ufeff"))
    except ET.ParseError as exc:
        raise AutoconfigError(f"not well-formed XML ({exc})") from None
    if root.tag != "clientConfig":
        raise AutoconfigError(f"not an autoconfig document (root element <{root.tag}>)")
    provider = root.find("emailProvider")
    if provider is None:
        raise AutoconfigError("the document has no <emailProvider>")
    found: list[Candidate] = []
    for element in provider:
        if element.tag not in ("incomingServer", "outgoingServer"):
            continue
        cand = _server(element, email, len(found))
        if cand is not None:
            found.append(cand)
    return found


def _server(el: ET.Element, email: str, order: int) -> Candidate | None:
    kind = (el.get("type") or "").strip().lower()
    allowed = ("imap", "pop3") if el.tag == "incomingServer" else ("smtp",)
    if kind not in allowed:
        return None
    protocol: Protocol = kind  # type: ignore[assignment]  # checked just above
    host = _fill(_text(el, "hostname"), email)
    socket_type = _text(el, "socketType").lower()
    security: Security | None = _SOCKET_TYPES.get(socket_type)
    if security is None and socket_type == "plain":
        security = "none"
    try:
        port = int(_text(el, "port"))
    except ValueError:
        return None
    if security is None or not 1 <= port <= 65535 or not _valid_host(host):
        return None
    username = _fill(_text(el, "username"), email) or None
    auth = tuple(a.text.strip() for a in el.findall("authentication") if a.text and a.text.strip())
    return Candidate(
        protocol=protocol,
        host=host.rstrip(".").lower(),
        port=port,
        security=security,
        source="autoconfig",
        order=order,
        username=username,
        auth=auth,
    )


def _text(el: ET.Element, tag: str) -> str:
    child = el.find(tag)
    return (child.text or "").strip() if child is not None else ""


def _fill(value: str, email: str) -> str:
    local, _, domain = email.rpartition("@")
    return (
        value.replace("%EMAILADDRESS%", email)
        .replace("%EMAILLOCALPART%", local)
        .replace("%EMAILDOMAIN%", domain)
    )


def _valid_host(host: str) -> bool:
    return bool(host) and (is_ip(host) or _HOST.fullmatch(host) is not None)


# --------------------------------------------------------------------------- fetching


def url_allowed(url: str) -> bool:
    """https anywhere; http only to this machine (a test server, never the product path)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))


async def fetch(url: str, opts: NetOptions) -> bytes:
    """GET `url` (following up to MAX_REDIRECTS https redirects); the body, or AutoconfigError."""
    for _ in range(MAX_REDIRECTS + 1):
        if not url_allowed(url):
            raise AutoconfigError(f"refusing {urlsplit(url).scheme or 'a'} URL {url}")
        host = urlsplit(url).hostname or ""
        addresses = await resolve_host(host, opts)
        if not addresses:
            raise AutoconfigError(f"{host}: no such host")
        status, location, body = await asyncio.to_thread(_get, url, addresses[0], opts)
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            continue
        if status != 200:
            raise AutoconfigError(f"{host} answered HTTP {status}")
        return body
    raise AutoconfigError("too many redirects")


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to an address found by our resolver; the Host header keeps the name."""

    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(_PinnedHTTP):
    default_port = http.client.HTTPS_PORT

    def __init__(
        self, host: str, port: int | None, address: str, timeout: float, ctx: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, address, timeout)
        self._tls = ctx

    def connect(self) -> None:
        super().connect()
        # The certificate is checked against the URL's host name, not the address.
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self.host)


def _get(url: str, address: str, opts: NetOptions) -> tuple[int, str | None, bytes]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    conn: _PinnedHTTP
    if parts.scheme == "https":
        conn = _PinnedHTTPS(host, parts.port, address, opts.timeout, tls_context(opts.ca_file))
    else:
        conn = _PinnedHTTP(host, parts.port, address, opts.timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", path, headers={"Accept": "text/xml", "User-Agent": "tui-mail"})
        resp = conn.getresponse()
        body = resp.read(MAX_BYTES + 1)
        if len(body) > MAX_BYTES:
            raise AutoconfigError("the document is too large")
        return resp.status, resp.getheader("Location"), body
    except ssl.SSLCertVerificationError as exc:
        raise AutoconfigError(f"{host}: certificate not valid ({exc.verify_message})") from None
    except socket.gaierror:
        raise AutoconfigError(f"{host}: no such host") from None
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise AutoconfigError(f"{host}: {reason}") from None
    finally:
        conn.close()
