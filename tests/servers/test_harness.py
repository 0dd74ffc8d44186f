"""Proof that the real-mail-server harness works: SMTP submission in, IMAPS/POP3S out,
TLS really verified, AUTH only after STARTTLS, and the harness's own helpers."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl
import time
import uuid
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate

import pytest

from .harness import Mailstack, deliver_lmtp, reset_user_mail

pytestmark = pytest.mark.servers

DELIVERY_TIMEOUT = 10.0  # seconds; delivery normally takes well under 0.5 s
SPECIAL_USE = {
    "Drafts": "\\Drafts",
    "Sent": "\\Sent",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}


def make_message(to: str = "Bob <bob@localhost>") -> EmailMessage:
    tag = uuid.uuid4().hex[:12]
    m = EmailMessage()
    m["From"] = "Alice <alice@localhost>"
    m["To"] = to
    m["Subject"] = f"harness {tag} – Grüße"  # non-ASCII: RFC 2047 encoded-word
    m["Date"] = formatdate(localtime=True)
    m["Message-ID"] = f"<{tag}@tui-mail.test>"
    # 8bit UTF-8 body, plus lines that need SMTP dot-stuffing / POP3 un-stuffing
    m.set_content("Hello Bob,\n\nÜmläuts – and dots:\n.\n..two\n-- \nAlice\n")
    return m


def assert_same_message(sent: EmailMessage, received: bytes) -> None:
    """The servers may only *prepend* trace headers (Received, Return-Path, Delivered-To):
    everything we sent must arrive byte for byte (modulo CRLF)."""
    got = BytesParser(policy=policy.default).parsebytes(received)
    assert got["Message-ID"] == sent["Message-ID"]
    assert got["Subject"] == sent["Subject"]
    assert got.get_content().replace("\r\n", "\n") == sent.get_content()
    sent_raw = sent.as_bytes()
    assert received.replace(b"\r\n", b"\n").endswith(sent_raw)


def wait_until(what: str, probe, timeout: float = DELIVERY_TIMEOUT):
    """Call probe() until it returns something truthy; bounded, no fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def imap_fetch(ms: Mailstack, user: str, message_id: str) -> bytes:
    """Wait for the message to be in USER's INBOX; return it via IMAPS (CA-verified)."""
    with imaplib.IMAP4_SSL(
        ms.host, ms.imaps_port, ssl_context=ms.ssl_context(), timeout=10
    ) as imap:
        imap.login(user, ms.users[user])
        imap.select("INBOX", readonly=True)

        def search():
            typ, data = imap.uid("SEARCH", "HEADER", "Message-ID", f'"{message_id}"')
            assert typ == "OK"
            return data[0].split()

        uids = wait_until(f"{message_id} in {user}'s INBOX (IMAP)", search)
        assert len(uids) == 1
        typ, data = imap.uid("FETCH", uids[0], "(BODY.PEEK[])")
        assert typ == "OK"
        imap.logout()
    return data[0][1]


def pop3_fetch(ms: Mailstack, user: str, message_id: str) -> bytes:
    """Wait for the message in USER's maildrop; return it via POP3S (CA-verified)."""

    def attempt():
        pop = poplib.POP3_SSL(ms.host, ms.pop3s_port, context=ms.ssl_context(), timeout=10)
        try:
            pop.user(user)
            pop.pass_(ms.users[user])
            count, _size = pop.stat()
            for i in range(count, 0, -1):
                _resp, head, _octets = pop.top(i, 0)
                if message_id.encode() in b"\n".join(head):
                    _resp, lines, _octets = pop.retr(i)
                    return b"\r\n".join(lines) + b"\r\n"
            return None
        finally:
            pop.quit()

    return wait_until(f"{message_id} in {user}'s maildrop (POP3)", attempt)


def test_submission_starttls_auth_then_read_back_over_imaps_and_pop3s(mailstack: Mailstack):
    ms = mailstack
    msg = make_message()
    with smtplib.SMTP(ms.host, ms.submission_port, timeout=10) as smtp:
        smtp.starttls(context=ms.ssl_context())
        smtp.login("alice", ms.users["alice"])
        refused = smtp.send_message(msg, mail_options=["BODY=8BITMIME"])
    assert refused == {}

    assert_same_message(msg, imap_fetch(ms, "bob", msg["Message-ID"]))
    assert_same_message(msg, pop3_fetch(ms, "bob", msg["Message-ID"]))


def test_submissions_implicit_tls(mailstack: Mailstack):
    ms = mailstack
    msg = make_message()
    with smtplib.SMTP_SSL(
        ms.host, ms.submissions_port, context=ms.ssl_context(), timeout=10
    ) as smtp:
        smtp.ehlo()
        assert "auth" in smtp.esmtp_features
        smtp.login("alice", ms.users["alice"])
        assert smtp.send_message(msg, mail_options=["BODY=8BITMIME"]) == {}
    assert_same_message(msg, imap_fetch(ms, "bob", msg["Message-ID"]))


def test_submission_offers_auth_only_after_starttls(mailstack: Mailstack):
    ms = mailstack
    with smtplib.SMTP(ms.host, ms.submission_port, timeout=10) as smtp:
        smtp.ehlo()
        assert "starttls" in smtp.esmtp_features
        assert "auth" not in smtp.esmtp_features
        with pytest.raises(smtplib.SMTPNotSupportedError):
            smtp.login("alice", ms.users["alice"])
        smtp.starttls(context=ms.ssl_context())
        smtp.ehlo()
        assert "auth" in smtp.esmtp_features
        assert {"PLAIN", "LOGIN"} <= set(smtp.esmtp_features["auth"].upper().split())


@pytest.mark.parametrize("service", ["imaps", "pop3s", "submissions"])
def test_default_trust_store_rejects_server_certificate(mailstack: Mailstack, service: str):
    ms = mailstack
    port = getattr(ms, f"{service}_port")
    with socket.create_connection((ms.host, port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
    # ...while the stack's CA accepts the very same certificate, by name and by IP
    for name in ("localhost", ms.host):
        with socket.create_connection((ms.host, port), timeout=10) as raw:
            with ms.ssl_context().wrap_socket(raw, server_hostname=name) as tls:
                assert tls.getpeercert()


def test_deliver_lmtp_special_use_folders_and_reset(mailstack: Mailstack):
    ms = mailstack
    user = "catchall"
    reset_user_mail(ms, user)
    msg = make_message(to="catchall@localhost")
    deliver_lmtp(ms, user, msg.as_bytes())
    assert_same_message(msg, imap_fetch(ms, user, msg["Message-ID"]))

    with imaplib.IMAP4_SSL(
        ms.host, ms.imaps_port, ssl_context=ms.ssl_context(), timeout=10
    ) as imap:
        imap.login(user, ms.users[user])
        typ, lines = imap.lsub()
        assert typ == "OK"
        subscribed = {line.decode().rsplit(" ", 1)[-1].strip('"') for line in lines}
        assert set(SPECIAL_USE) <= subscribed
        typ, lines = imap.list()
        listed = [line.decode() for line in lines]
        for box, flag in SPECIAL_USE.items():
            assert any(flag in ln and ln.rstrip('"').endswith(box) for ln in listed), listed
        imap.create("Projects/2024")
        imap.logout()

    reset_user_mail(ms, user)
    with imaplib.IMAP4_SSL(
        ms.host, ms.imaps_port, ssl_context=ms.ssl_context(), timeout=10
    ) as imap:
        imap.login(user, ms.users[user])
        typ, data = imap.select("INBOX", readonly=True)
        assert (typ, data) == ("OK", [b"0"])
        typ, lines = imap.list()
        assert not any(b"Projects" in line for line in lines)
        imap.logout()
