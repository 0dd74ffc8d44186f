"""SmtpSendBackend against the harness's real Postfix (submission 587 STARTTLS + AUTH,
submissions 465 implicit TLS), read back from Dovecot over IMAPS."""

from __future__ import annotations

import imaplib
import re
import time
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from servers.harness import Mailstack, reset_user_mail

from tui_mail.backends.base import BackendContext
from tui_mail.backends.smtp.backend import RecipientsRefused, SmtpSendBackend
from tui_mail.config.schema import AccountConfig, EndpointConfig, Security
from tui_mail.core.errors import AuthError, ConnectError, TLSError
from tui_mail.sync.account import envelope_for

pytestmark = pytest.mark.servers

SUBJECT = "Grüße aus Köln – ünïcödé ✓ 日本語"
BODY = "Hallo Bob,\n\nΩμέγα, naïve café, 日本語のテキスト.\n.a line starting with a dot\n"


def backend_for(
    ms: Mailstack,
    security: Security,
    *,
    port: int | None = None,
    password: str | None = None,
    ca: bool = True,
    timeout: float = 10.0,
) -> SmtpSendBackend:
    ep = EndpointConfig(
        backend="smtp",
        host=ms.host,
        port=port or (ms.submissions_port if security == "tls" else ms.submission_port),
        security=security,
        user="alice",
        password=ms.users["alice"] if password is None else password,
        ca_file=ms.ca_file if ca else None,
        timeout=timeout,
        key_path="accounts.alice.send",
    )
    account = AccountConfig(
        name="alice", email="alice@localhost", receive=EndpointConfig(backend="maildir"), send=ep
    )
    return SmtpSendBackend(BackendContext(account, ep))


def fetch_by_token(ms: Mailstack, user: str, token: str, timeout: float = 15.0) -> bytes:
    """The one message in `user`'s INBOX whose Message-ID carries `token`, once delivered."""
    deadline = time.monotonic() + timeout
    with imaplib.IMAP4_SSL(ms.host, ms.imaps_port, ssl_context=ms.ssl_context()) as imap:
        imap.login(user, ms.users[user])
        while True:
            imap.select("INBOX")
            _, data = imap.search(None, "HEADER", "Message-ID", token)
            nums = data[0].split()
            if nums:
                assert len(nums) == 1, f"{user} got {len(nums)} copies"
                _, parts = imap.fetch(nums[0], "(BODY.PEEK[])")
                return parts[0][1]  # type: ignore[index,return-value]
            if time.monotonic() > deadline:
                raise AssertionError(f"{user} never received the message {token}")
            time.sleep(0.1)


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_send_with_bcc_reaches_everyone_and_no_bcc_header_leaves(
    mailstack: Mailstack, security: Security
) -> None:
    ms = mailstack
    for user in ("bob", "catchall"):
        reset_user_mail(ms, user)
    token = uuid.uuid4().hex
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "Alïce Ünicode <alice@localhost>"
    msg["To"] = "Bob <bob@localhost>"
    msg["Bcc"] = "catchall@localhost"
    msg["Subject"] = SUBJECT
    msg["Message-ID"] = make_msgid(idstring=token, domain="localhost")
    msg.set_content(BODY)

    sender, recipients, wire = envelope_for(msg.as_bytes(), "alice@localhost")
    assert recipients == ["bob@localhost", "catchall@localhost"]
    result = await backend_for(ms, security).send(wire, sender, recipients)
    assert result.accepted == ("bob@localhost", "catchall@localhost")
    assert re.search(r"queued as \w+", result.detail), result.detail

    for user in ("bob", "catchall"):
        raw = fetch_by_token(ms, user, token)
        assert not re.search(rb"(?im)^bcc:", raw), f"{user}'s copy has a Bcc header"
        assert b"catchall@localhost" not in raw.split(b"\r\n\r\n", 1)[0].replace(
            b"for <catchall@localhost>", b""
        ), f"{user}'s copy names the Bcc recipient outside its own Received line"
        got = message_from_bytes(raw, policy=policy.default)
        assert got["Subject"] == SUBJECT
        assert got["From"].addresses[0].display_name == "Alïce Ünicode"
        assert got.get_content().replace("\r\n", "\n") == BODY  # type: ignore[attr-defined]


async def test_check_reports_tls_and_login(mailstack: Mailstack) -> None:
    text = await backend_for(mailstack, "starttls").check()
    assert "STARTTLS (TLSv1." in text and "logged in as alice with PLAIN" in text


async def test_partial_acceptance_and_total_refusal(mailstack: Mailstack) -> None:
    ms = mailstack
    token = uuid.uuid4().hex
    raw = (
        f"From: alice@localhost\r\nTo: bob@localhost, nosuchuser@localhost\r\n"
        f"Subject: partial\r\nMessage-ID: <{token}@localhost>\r\n\r\nhi\r\n"
    ).encode()
    backend = backend_for(ms, "starttls")
    result = await backend.send(raw, "alice@localhost", ["bob@localhost", "nosuchuser@localhost"])
    assert result.accepted == ("bob@localhost",)
    assert "nosuchuser@localhost: 550" in result.detail
    fetch_by_token(ms, "bob", token)

    with pytest.raises(RecipientsRefused) as err:
        await backend.send(raw, "alice@localhost", ["nosuchuser@localhost"])
    assert "nosuchuser@localhost: 550" in str(err.value)
    assert not err.value.retryable


async def test_wrong_password_is_auth_error(mailstack: Mailstack) -> None:
    # One case only: Dovecot's auth penalty slows every later failure from 127.0.0.1.
    backend = backend_for(mailstack, "starttls", password="not-alicepass")
    with pytest.raises(AuthError) as err:
        await backend.send(b"Subject: x\r\n\r\nx\r\n", "alice@localhost", ["bob@localhost"])
    text = str(err.value)
    assert f"{mailstack.host}:{backend.port}" in text
    assert "user alice" in text
    assert "535" in text and "authentication failed" in text.lower()
    assert "not-alicepass" not in text


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_untrusted_certificate_is_tls_error(mailstack: Mailstack, security: Security) -> None:
    with pytest.raises(TLSError, match="certificate verify failed") as err:
        await backend_for(mailstack, security, ca=False).check()
    assert "ca_file" in str(err.value)


async def test_implicit_tls_on_the_starttls_port_fails_fast(mailstack: Mailstack) -> None:
    backend = backend_for(mailstack, "tls", port=mailstack.submission_port, timeout=3.0)
    start = time.monotonic()
    with pytest.raises((TLSError, ConnectError)) as err:
        await backend.check()
    assert time.monotonic() - start < 5
    assert f"{mailstack.host}:{mailstack.submission_port}" in str(err.value)
