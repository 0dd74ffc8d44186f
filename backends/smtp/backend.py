"""SMTP submission on aiosmtplib: implicit TLS (465), STARTTLS (587) or loopback plaintext.

One connection per `send()`: submission servers drop idle sessions after a minute or
so, and a fresh session per message keeps the state machine trivial.

Security rules, each enforced here and not left to aiosmtplib's defaults:

* `security = "starttls"` passes `start_tls=True`, never aiosmtplib's opportunistic
  `start_tls=None`: a server (or a man in the middle) that does not offer STARTTLS, or
  refuses it, gives `TLSError` before AUTH or MAIL is sent. Before any credential is
  sent the transport is checked to really be TLS.
* Certificates and host names are verified against the system store plus `ca_file`.
* `security = "none"` is only used when the config loader allowed it (loopback, or
  `allow_plaintext = true`); the backend checks the same rule again.

Partial acceptance: when the server takes the message for some recipients and refuses
others, the message *has been sent* to the accepted ones, so `send()` returns normally
(raising would make the caller retry and deliver twice to those). The refused
addresses and the server's reasons are listed in `SendResult.detail` and
`SendResult.accepted` holds only the accepted ones; callers compare it with the
recipients they asked for. When every recipient is refused nothing was sent and
`RecipientsRefused` is raised.

A connection lost after the message data went out is the one case no client can
resolve: the server may or may not have queued it. That surfaces as `ConnectError`
(retryable) whose message says so; see the outbox docs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
from collections.abc import Mapping, Sequence
from io import BytesIO
from typing import TYPE_CHECKING, Any, NoReturn

from tui_mail.backends.base import BackendContext, SendBackend, SendResult
from tui_mail.config.schema import DEFAULT_PORTS
from tui_mail.config.secrets import resolve_oauth_token, resolve_password
from tui_mail.core.capabilities import Capabilities, Capability
from tui_mail.core.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    MailError,
    ProtocolError,
    TLSError,
)
from tui_mail.core.lazy import lazy_import
from tui_mail.core.sanitize import inert_line
from tui_mail.core.tls import client_context

if TYPE_CHECKING:
    import aiosmtplib
else:
    # Loaded by the first send: every sync builds this backend, few send (~15 ms).
    aiosmtplib = lazy_import("aiosmtplib")

log = logging.getLogger(__name__)

QUIT_TIMEOUT = 5.0  # seconds; the message is already accepted, QUIT is a courtesy
# Preferred order when the server offers several. Over TLS PLAIN is one round trip;
# CRAM-MD5 is only preferred without TLS, where it keeps the password off the wire.
_MECHS_TLS = ("plain", "login", "cram-md5")
_MECHS_PLAINTEXT = ("cram-md5", "plain", "login")
_AUTH_REQUIRED_CODES = {530, 534, 535, 538}  # reply codes that mean "log in (properly)"


class SmtpRefused(MailError):
    """The server answered the transaction with an error reply.

    `code` is the SMTP reply code; 4xx replies are temporary, so those are retryable.
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = 400 <= code < 500


class RecipientsRefused(SmtpRefused):
    """Every recipient was refused, so nothing was sent. `refused`: address -> reply."""

    def __init__(self, where: str, refused: Mapping[str, tuple[int, str]]) -> None:
        self.refused = dict(refused)
        listing = "; ".join(f"{addr}: {code} {text}" for addr, (code, text) in refused.items())
        codes = [code for code, _ in refused.values()]
        # Retryable only when every refusal was temporary: a 5xx will not change.
        worst = max(codes) if codes else 550
        super().__init__(f"{where}: the server refused every recipient: {listing}", worst)


class SmtpSendBackend(SendBackend):
    name = "smtp"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        ep = ctx.endpoint
        self.endpoint = ep
        if not ep.host:
            raise ConfigError("no host configured for smtp", key=ep.key_path or None)
        self.host: str = ep.host
        self.security = ep.security
        self.port: int = ep.port or DEFAULT_PORTS[("smtp", ep.security)]
        self.where = f"{self.host}:{self.port}"
        self._tls: ssl.SSLContext | None = None

    @property
    def capabilities(self) -> Capabilities:
        return frozenset({Capability.SEND})

    # ------------------------------------------------------------------ public

    async def send(self, raw: bytes, sender: str, recipients: Sequence[str]) -> SendResult:
        _refuse_bcc(raw)
        rcpts = list(recipients)
        if not rcpts:
            raise MailError("the message has no recipients")
        if sender:  # "" is the null reverse-path (bounces): allowed as the sender only
            _check_address(sender)
        for address in rcpts:
            _check_address(address)
        client, _ = await self._open()
        try:
            data, options = self._prepare(client, raw, sender, rcpts)
            stage = _DataStage(client)
            try:
                refused, reply = await client.sendmail(sender, rcpts, data, mail_options=options)
            except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as exc:
                try:
                    self._raise_send_error(exc)
                except (ConnectError, ProtocolError) as lost:
                    # Lost once DATA began: the server may have queued it. The outbox
                    # must not resend on its own (docs/outbox.md).
                    lost.delivery_uncertain = stage.started  # type: ignore[attr-defined]
                    raise
            # Accepted: from here on nothing may turn this into a failure (a retry would
            # deliver twice), so QUIT problems are only logged.
            await self._quit_quietly(client)
        finally:
            client.close()
        detail = _reply_text(reply)
        if refused:
            listing = "; ".join(
                f"{addr}: {r.code} {_reply_text(r.message)}" for addr, r in refused.items()
            )
            detail = f"{detail}; refused (not sent to them): {listing}"
            log.warning("%s: accepted for some recipients only: %s", self.where, listing)
        accepted = tuple(r for r in rcpts if r not in refused)
        return SendResult(accepted=accepted, detail=detail)

    async def check(self) -> str:
        """Connect, secure, log in and QUIT: proves host, port, TLS and credentials."""
        client, how = await self._open()
        try:
            await self._quit_quietly(client)
        finally:
            client.close()
        return f"smtp {self.where}: {how}"

    # ------------------------------------------------------------------ session

    async def _open(self) -> tuple[aiosmtplib.SMTP, str]:
        """A connected, secured and (if `user` is set) authenticated client."""
        ep = self.endpoint
        if self.security == "none" and not ep.allow_plaintext and not _is_loopback(self.host):
            raise ConfigError(
                f'security = "none" to {self.host} needs allow_plaintext = true',
                key=f"{ep.key_path}.security" if ep.key_path else None,
            )
        # Secrets first: a password command may prompt (pinentry) for a long time, and the
        # server would drop a connection that waited for it.
        secret = await asyncio.to_thread(self._secret) if ep.user else None
        tls = self._tls_context() if self.security != "none" else None
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=ep.timeout,
            use_tls=self.security == "tls",
            # Explicit True/False, never None (aiosmtplib's opportunistic default).
            start_tls=self.security == "starttls",
            tls_context=tls,
        )
        try:
            await self._connect(client)
            how = self._describe_tls(client)
            if ep.user and secret is not None:
                how += ", " + await self._login(client, ep.user, secret)
        except BaseException:
            client.close()
            raise
        return client, how

    async def _connect(self, client: aiosmtplib.SMTP) -> None:
        try:
            # Greeting, then (starttls) EHLO + STARTTLS; no credentials are given to
            # aiosmtplib, so it never logs in by itself.
            await client.connect()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._raise_connect_error(exc, securing=self.security == "starttls")
        if self.security != "none" and _transport_info(client, "sslcontext") is None:
            # Defence in depth: never continue in plaintext on a TLS account.
            raise TLSError(f"{self.where}: the connection is not encrypted; refusing to go on")
        try:
            # Explicit EHLO: STARTTLS discarded what the server said before, and the
            # AUTH methods and SIZE/8BITMIME/SMTPUTF8 must come from this session.
            await self._ehlo(client)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._raise_connect_error(exc)

    async def _ehlo(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not client.is_connected:
                raise
            await client.helo()  # a very old server; it has no extensions at all

    def _secret(self) -> str:
        ep = self.endpoint
        return resolve_oauth_token(ep) if ep.oauth_token_command else resolve_password(ep)

    async def _login(self, client: aiosmtplib.SMTP, user: str, secret: str) -> str:
        """Authenticate with one mechanism; return which one, for `check()`."""
        offered = [m.lower() for m in client.server_auth_methods]
        if self.endpoint.oauth_token_command:
            if "xoauth2" not in offered:
                raise AuthError(
                    f"{self.where}: the server does not offer XOAUTH2 for user {user} "
                    f"(it offers: {', '.join(offered).upper() or 'no AUTH at all'})"
                )
            mech = "xoauth2"
        else:
            prefs = _MECHS_PLAINTEXT if self.security == "none" else _MECHS_TLS
            choices = [m for m in prefs if m in offered]
            if not choices:
                hint = "" if offered else "; this port may not take logins, try 587 or 465"
                raise AuthError(
                    f"{self.where}: the server offers no login method we support for user "
                    f"{user} (it offers: {', '.join(offered).upper() or 'no AUTH'}){hint}"
                )
            mech = choices[0]
        # Exactly one attempt, unlike aiosmtplib's login(), which walks every mechanism:
        # a wrong password then costs one failed login on the server, not three (lockouts).
        auth = {
            "xoauth2": client.auth_xoauth2,
            "plain": client.auth_plain,
            "login": client.auth_login,
            "cram-md5": client.auth_crammd5,
        }[mech]
        try:
            await auth(user, secret)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise AuthError(
                f"{self.where}: the server refused the login for user {user} "
                f"({mech.upper()}): {exc.code} {_reply_text(exc.message)}"
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._raise_connect_error(exc)
        return f"logged in as {user} with {mech.upper()}"

    async def _quit_quietly(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.quit(timeout=min(QUIT_TIMEOUT, self.endpoint.timeout))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            log.debug("%s: QUIT failed: %s", self.where, exc)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            ep = self.endpoint
            self._tls = client_context(
                ep.ca_file, f"{ep.key_path}.ca_file" if ep.key_path else None
            )
        return self._tls

    def _describe_tls(self, client: aiosmtplib.SMTP) -> str:
        if self.security == "none":
            return "unencrypted"
        sslobj = _transport_info(client, "ssl_object")
        version = sslobj.version() if sslobj is not None else None
        kind = "STARTTLS" if self.security == "starttls" else "TLS"
        return f"{kind} ({version})" if version else kind

    # ------------------------------------------------------------------ message

    def _prepare(
        self, client: aiosmtplib.SMTP, raw: bytes, sender: str, rcpts: list[str]
    ) -> tuple[bytes, list[str]]:
        """The bytes to send and the MAIL FROM options, from what the server offers."""
        options: list[str] = []
        ascii_addresses = all(a.isascii() for a in (sender, *rcpts))
        sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
        head = raw.partition(sep)[0]
        if not ascii_addresses and not client.supports_extension("smtputf8"):
            raise MailError(
                f"{self.where}: the server does not accept non-ASCII addresses (no SMTPUTF8)"
            )
        if client.supports_extension("smtputf8") and not (ascii_addresses and head.isascii()):
            options.append("SMTPUTF8")
        if not raw.isascii():
            if client.supports_extension("8bitmime"):
                options.append("BODY=8BITMIME")
            else:
                raw = _to_7bit(raw, self.where)
        return raw, options

    # ------------------------------------------------------------------ errors

    def _raise_connect_error(self, exc: BaseException, *, securing: bool = False) -> NoReturn:
        """Map a failure while connecting, securing or logging in.

        `securing`: `exc` came from `connect()` on a STARTTLS account, where the only
        command besides EHLO is STARTTLS, so an SMTP-level error means STARTTLS failed.
        """
        where, timeout = self.where, self.endpoint.timeout
        tls_error = _find(exc, ssl.SSLError)
        if tls_error is not None:
            if securing and getattr(tls_error, "reason", "") == "WRONG_VERSION_NUMBER":
                raise TLSError(
                    f"{where}: the server accepted STARTTLS but then answered in plaintext "
                    "instead of TLS (a broken server or someone in the middle); nothing was "
                    "sent unencrypted"
                ) from None
            raise TLSError(f"{where}: TLS failed: {_ssl_reason(tls_error)}") from None
        if securing and "upgrading transport" in str(exc):
            # aiosmtplib's words once the server said 220 to STARTTLS: the handshake hung.
            raise TLSError(
                f"{where}: the server accepted STARTTLS but did not complete the TLS handshake "
                f"within {timeout:g} seconds (a broken server or someone in the middle); "
                "nothing was sent unencrypted"
            ) from None
        if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts subclass it
            hint = ""
            if self.security == "starttls":
                hint = ' (if this port speaks TLS from the first byte, use security = "tls")'
            raise ConnectError(f"{where}: no answer within {timeout:g} seconds{hint}") from None
        if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
            raise ConnectError(
                f"{where}: the server refused the connection: {exc.code} {_reply_text(exc.message)}"
            ) from None
        if _garbled(exc):
            raise ProtocolError(_garbled_text(where, exc)) from None
        if isinstance(exc, aiosmtplib.SMTPHeloError):
            raise ProtocolError(
                f"{where}: the server refused EHLO: {exc.code} {_reply_text(exc.message)}"
            ) from None
        if isinstance(exc, ConnectionError | aiosmtplib.SMTPConnectError):
            raise ConnectError(f"{where}: {_os_reason(exc)}") from None
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            if securing:
                raise TLSError(
                    f"{where}: the server refused STARTTLS: {exc.code} "
                    f"{_reply_text(exc.message)}; nothing was sent unencrypted"
                ) from None
            raise ProtocolError(f"{where}: {exc.code} {_reply_text(exc.message)}") from None
        if isinstance(exc, aiosmtplib.SMTPException) and securing:
            # aiosmtplib's "STARTTLS extension not supported by server": stripped or absent.
            raise TLSError(
                f"{where}: the server does not offer STARTTLS (it may have been stripped on "
                "the way); refusing to log in or send unencrypted"
            ) from None
        if isinstance(exc, OSError):
            raise ConnectError(f"{where}: {_os_reason(exc)}") from None
        raise ProtocolError(f"{where}: {exc}") from None

    def _raise_send_error(self, exc: BaseException) -> NoReturn:
        """Map a failure inside MAIL/RCPT/DATA."""
        where = self.where
        if _garbled(exc):
            # Not a refusal: nothing can be known about what the server did with it.
            raise ProtocolError(_garbled_text(where, exc)) from None
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            raise RecipientsRefused(
                where, {r.recipient: (r.code, _reply_text(r.message)) for r in exc.recipients}
            ) from None
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            text = f"{exc.code} {_reply_text(exc.message)}"
            if exc.code in _AUTH_REQUIRED_CODES:
                raise AuthError(
                    f"{where}: the server wants a login before sending as {exc.sender}: {text}"
                ) from None
            raise SmtpRefused(
                f"{where}: the server refused sender {exc.sender}: {text}", exc.code
            ) from None
        if isinstance(exc, aiosmtplib.SMTPDataError):
            raise SmtpRefused(
                f"{where}: the server refused the message: {exc.code} {_reply_text(exc.message)}",
                exc.code,
            ) from None
        if isinstance(exc, TimeoutError | ConnectionError):
            raise ConnectError(
                f"{where}: the connection failed during sending ({_os_reason(exc)}); "
                "if it failed after the message data went out, the server may have queued it"
            ) from None
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            raise MailError(f"{where}: {exc}") from None
        if isinstance(exc, ValueError):  # aiosmtplib refuses CR/LF etc. in an address
            raise MailError(f"invalid address in the envelope: {exc}") from None
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            raise SmtpRefused(f"{where}: {exc.code} {_reply_text(exc.message)}", exc.code) from None
        raise ConnectError(f"{where}: {_os_reason(exc)}") from None


# ---------------------------------------------------------------------- helpers


def _refuse_bcc(raw: bytes) -> None:
    """The caller strips Bcc; a Bcc header here would show every recipient the list."""
    from email import policy  # here: the sync path builds this backend, rarely sends
    from email.parser import BytesHeaderParser

    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    for name in ("Bcc", "Resent-Bcc"):
        if name in headers:
            raise MailError(f"refusing to send: the message still has a {name} header")


# Anything here would either end the SMTP command line (CR, LF) or make aiosmtplib's
# parseaddr() quietly pick one address out of several ("a@x, b@y" -> "a@x").
_FORBIDDEN_IN_ADDRESS = frozenset('<>(),;\\" \t\r\n\x7f')


def _check_address(address: str) -> None:
    """Refuse an envelope address that is not one bare addr-spec."""
    local, at, domain = address.rpartition("@")
    if not (local and at and domain) or any(
        c in _FORBIDDEN_IN_ADDRESS or ord(c) < 32 for c in address
    ):
        raise MailError(f"invalid address in the envelope: {address!r}")


def _to_7bit(raw: bytes, where: str) -> bytes:
    """Re-encode 8-bit text parts (base64/quoted-printable) for a server without 8BITMIME."""
    from email import policy
    from email.generator import BytesGenerator
    from email.parser import BytesParser

    msg = BytesParser(policy=policy.SMTP).parsebytes(raw)
    out = BytesIO()
    BytesGenerator(out, policy=policy.SMTP.clone(cte_type="7bit")).flatten(msg)
    data = out.getvalue()
    if not data.isascii():
        raise MailError(
            f"{where}: the server does not accept 8-bit data (no 8BITMIME) and the message "
            "cannot be converted to 7-bit"
        )
    return data


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _transport_info(client: aiosmtplib.SMTP, key: str) -> Any:
    """Like `client.get_transport_info`, but None (not an exception) once disconnected."""
    transport = client.transport
    return None if transport is None else transport.get_extra_info(key)


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """`exc` or the first of its causes that is a `kind` (aiosmtplib wraps OSErrors)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kind):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"certificate verify failed: {exc.verify_message}"
        if exc.verify_code in (19, 20, 21):  # self-signed / unknown issuer
            reason += " (for a private CA, set ca_file)"
        return reason
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        if reason == "WRONG_VERSION_NUMBER":
            reason += (
                " (the server did not answer in TLS; if this port expects STARTTLS,"
                ' use security = "starttls")'
            )
        return reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _os_reason(exc: BaseException) -> str:
    """The operating system's words ("Connection refused"), else aiosmtplib's message."""
    cur: BaseException | None = exc
    while cur is not None:
        if isinstance(cur, OSError) and not isinstance(cur, aiosmtplib.SMTPException):
            if cur.errno:
                return os.strerror(cur.errno)
            return cur.strerror or str(cur) or type(cur).__name__
        cur = cur.__cause__
    return str(exc) or type(exc).__name__


def _garbled(exc: BaseException) -> bool:
    """aiosmtplib's code for a reply it could not read (too long, no numeric code)."""
    return isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code < 0


def _garbled_text(where: str, exc: BaseException) -> str:
    message = getattr(exc, "message", "") or str(exc)
    return f"{where}: the server sent a reply that is not SMTP: {_reply_text(message)[:200]}"


def _reply_text(message: str) -> str:
    """A server reply as one inert line: it is shown to the user as it is."""
    return inert_line(" ".join(message.split()))


class _DataStage:
    """Notes when `sendmail` reaches DATA: a drop before it means nothing was sent."""

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        self.started = False
        original = client.data

        async def data(*args: Any, **kwargs: Any) -> Any:
            self.started = True
            return await original(*args, **kwargs)

        client.data = data  # type: ignore[method-assign]
