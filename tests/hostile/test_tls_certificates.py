"""Bad certificates are refused before any credential is sent: IMAP, POP3 and SMTP, with
implicit TLS and with STARTTLS, against the REAL servers behind a TLS-terminating MITM.

The MITM (tests/hostile/mitm.py, ``intercept``) presents a certificate that is
self-signed (not in ca_file), expired (signed by the harness CA, valid only in January
2020) or for another host (signed by the harness CA), and would relay the decrypted
session to the real server. The ``good`` control presents a harness-signed certificate
for localhost: there the session works and the MITM reads the password, which shows
that refusing the certificate is the only thing standing between the two.

The harness's Dovecot and Postfix share one certificate made by mailstack.sh; giving
them bad ones would mean a second stack, so the proxy presents them instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.harness import Mailstack, reset_user_mail

from hostile.mitm import (
    BadCerts,
    Mitm,
    Protocol,
    assert_nothing_leaked,
    assert_one_clear_line,
    make_backend,
    make_bad_certs,
    run_cli,
    secret_forms,
    write_config,
)
from tui_mail.core.errors import TLSError

pytestmark = pytest.mark.servers

# What each certificate's rejection must say (OpenSSL's verify messages).
PROBLEM = {
    "self-signed": "self-signed certificate",
    "expired": "certificate has expired",
    "wrong-host": "Hostname mismatch",
}
USER = {"imap": "alice", "pop3": "bob", "smtp": "alice"}


@pytest.fixture(scope="module")
def certs(mailstack: Mailstack, tmp_path_factory: pytest.TempPathFactory) -> BadCerts:
    ca_key = mailstack.dir / "tls" / "ca.key"
    if not ca_key.is_file():
        pytest.fail(f"the harness CA key {ca_key} is missing: cannot sign test certificates")
    return make_bad_certs(tmp_path_factory.mktemp("certs"), mailstack.ca_file, ca_key)


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    for user in ("alice", "bob"):
        reset_user_mail(mailstack, user)
    yield mailstack


def upstream_port(ms: Mailstack, protocol: Protocol, security: str) -> int:
    ports = {
        ("imap", "tls"): ms.imaps_port,
        ("imap", "starttls"): ms.imap_port,
        ("pop3", "tls"): ms.pop3s_port,
        ("pop3", "starttls"): ms.pop3_port,
        ("smtp", "tls"): ms.submissions_port,
        ("smtp", "starttls"): ms.submission_port,
    }
    return ports[(protocol, security)]


def interceptor(
    ms: Mailstack, certs: BadCerts, protocol: Protocol, security: str, cert: str
) -> Mitm:
    return Mitm(
        protocol,
        (ms.host, upstream_port(ms, protocol, security)),
        "intercept",
        cert=certs.by_name(cert),
        implicit_tls=security == "tls",
        upstream_ca=ms.ca_file,
    )


async def use(backend: object, protocol: Protocol, token: str) -> None:
    """What a client does once connected: log in (and for SMTP send a message)."""
    if protocol == "smtp":
        raw = (
            f"From: alice@localhost\r\nTo: bob@localhost\r\nSubject: {token}\r\n"
            f"Message-ID: <{token}@localhost>\r\n\r\nBODY-{token}\r\n"
        ).encode()
        await backend.send(raw, "alice@localhost", ["bob@localhost"])  # type: ignore[attr-defined]
    else:
        await backend.connect()  # type: ignore[attr-defined]
    await backend.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("security", ["tls", "starttls"])
@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
@pytest.mark.parametrize("cert", ["self-signed", "expired", "wrong-host"])
async def test_a_bad_certificate_is_refused_before_any_credential(
    ms: Mailstack, certs: BadCerts, protocol: Protocol, security: str, cert: str
) -> None:
    user, token = USER[protocol], uuid.uuid4().hex
    with interceptor(ms, certs, protocol, security, cert) as mitm:
        backend = make_backend(
            protocol,
            mitm.port,
            user=user,
            password=ms.users[user],
            ca_file=ms.ca_file,
            security=security,  # type: ignore[arg-type]
        )
        with pytest.raises(TLSError) as caught:
            await use(backend, protocol, token)
        await mitm.settled()
    message = str(caught.value)
    assert PROBLEM[cert].lower() in message.lower(), message
    assert "localhost" in message  # which server
    assert mitm.handshake_errors, "the proxy's handshake should have been refused"
    assert mitm.intercepted == b""  # not one byte inside the attacker's TLS session
    assert_nothing_leaked(mitm, user, ms.users[user], token.encode(), b"MAIL FROM")


@pytest.mark.parametrize("security", ["tls", "starttls"])
@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
async def test_control_a_trusted_certificate_lets_the_mitm_read_everything(
    ms: Mailstack, certs: BadCerts, protocol: Protocol, security: str
) -> None:
    user, token = USER[protocol], uuid.uuid4().hex
    with interceptor(ms, certs, protocol, security, "good") as mitm:
        backend = make_backend(
            protocol,
            mitm.port,
            user=user,
            password=ms.users[user],
            ca_file=ms.ca_file,
            security=security,  # type: ignore[arg-type]
        )
        await use(backend, protocol, token)
        await mitm.settled()
    assert any(form in mitm.intercepted for form in secret_forms(user, ms.users[user]))
    assert not any(form in mitm.from_client for form in secret_forms(user, ms.users[user]))


@pytest.mark.parametrize(
    "protocol, security, cert",
    [
        ("imap", "tls", "expired"),
        ("pop3", "starttls", "wrong-host"),
        ("smtp", "starttls", "self-signed"),
    ],
)
def test_the_cli_names_the_certificate_problem_in_one_line(
    ms: Mailstack,
    certs: BadCerts,
    tmp_path: Path,
    protocol: Protocol,
    security: str,
    cert: str,
) -> None:
    user = USER[protocol]
    secret = tmp_path / "secret"
    secret.write_text(ms.users[user])
    with interceptor(ms, certs, protocol, security, cert) as mitm:
        remote = {
            "backend": protocol,
            "host": "localhost",
            "port": mitm.port,
            "security": security,
            "user": user,
            "password_command": f"cat {secret}",
            "ca_file": str(ms.ca_file),
            "timeout": 5,
        }
        local = (
            {"backend": "maildir", "path": str(tmp_path / "Maildir")}
            if protocol == "smtp"
            else {"backend": "local", "path": str(tmp_path / "sent")}
        )
        config = write_config(
            tmp_path / "config.toml",
            user,
            f"{user}@localhost",
            local if protocol == "smtp" else remote,
            remote if protocol == "smtp" else local,
        )
        if protocol == "smtp":
            raw = b"From: alice@localhost\r\nTo: bob@localhost\r\nSubject: x\r\n\r\nhello\r\n"
            result = run_cli(config, "send", stdin=raw)
        else:
            result = run_cli(config, "sync")
        mitm.wait_closed()
    assert_one_clear_line(result, PROBLEM[cert])
    assert mitm.intercepted == b""
    assert_nothing_leaked(mitm, user, ms.users[user])
