"""`tui-mail setup` end to end against the harness's Dovecot and Postfix.

Discovery is served locally: a tiny DNS server on 127.0.0.1 (dnspython's message
codec over a UDP socket) answers the SRV and A records, and http.server serves an
autoconfig document. The servers' certificate is valid for "localhost", so the
SRV targets and autoconfig host names say "localhost". Each run writes a config
that `tui-mail sync` (a subprocess, like a user) must then use successfully.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import threading
import uuid
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from servers.harness import Mailstack, deliver_lmtp, reset_user_mail

from tui_mail.config.load import load_config
from tui_mail.setup import wizard
from tui_mail.setup.discover import discover
from tui_mail.setup.probe import NetOptions
from tui_mail.setup.wizard import IMAP_VS_POP3, Options, Prompter, run_interactive

PASSWORD_CMD = "printf %s alicepass"

EXISTING = """\
# my config: keep this comment
[ui]
theme = "default"  # the theme I like

# first account
[accounts.home]
email = "me@localhost"

[accounts.home.receive]
backend = "maildir"
path = "~/Maildir-home"

# second account
[accounts.old]
email = "old@localhost"

[accounts.old.receive]
backend = "maildir"
path = "~/Maildir-old"
"""


class TinyDns:
    """A UDP DNS server on 127.0.0.1: (name, type) -> rdata texts; NXDOMAIN otherwise."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = {(n.lower().rstrip(".") + ".", t): v for (n, t), v in records.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            answers = self.records.get((name, rdtype))
            if answers:
                reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", rdtype, *answers))
            elif not any(n == name for n, _ in self.records):
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


class AutoconfigServer:
    """http.server in a thread serving one document at /mail/config-v1.1.xml."""

    def __init__(self, document: str) -> None:
        body = document.encode()
        hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                if self.path.split("?")[0] != "/mail/config-v1.1.xml":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.hits = hits
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mail/config-v1.1.xml"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def srv_records(ms: Mailstack, domain: str) -> dict[tuple[str, str], list[str]]:
    return {
        (f"_imaps._tcp.{domain}", "SRV"): [f"0 1 {ms.imaps_port} localhost."],
        (f"_imap._tcp.{domain}", "SRV"): [f"10 1 {ms.imap_port} localhost."],
        (f"_pop3s._tcp.{domain}", "SRV"): [f"0 1 {ms.pop3s_port} localhost."],
        (f"_pop3._tcp.{domain}", "SRV"): ["0 0 0 ."],  # RFC 2782: "not offered here"
        (f"_submissions._tcp.{domain}", "SRV"): [f"0 1 {ms.submissions_port} localhost."],
        (f"_submission._tcp.{domain}", "SRV"): [f"0 1 {ms.submission_port} localhost."],
        ("localhost", "A"): ["127.0.0.1"],
    }


def autoconfig_document(ms: Mailstack) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.test">
    <domain>example.test</domain>
    <displayName>Example test mail</displayName>
    <incomingServer type="imap">
      <hostname>localhost</hostname>
      <port>{ms.imap_port}</port>
      <socketType>STARTTLS</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>localhost</hostname>
      <port>{ms.pop3s_port}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>localhost</hostname>
      <port>{ms.submission_port}</port>
      <socketType>STARTTLS</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"""


def port_map(ms: Mailstack) -> list[str]:
    pairs = {
        993: ms.imaps_port,
        143: ms.imap_port,
        995: ms.pop3s_port,
        110: ms.pop3_port,
        465: ms.submissions_port,
        587: ms.submission_port,
    }
    return [arg for std, real in pairs.items() for arg in ("--probe-port", f"{std}={real}")]


def tui_mail(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tui_mail", "--config", str(config), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env=os.environ.copy(),
    )


def setup(config: Path, email: str, dns: TinyDns, ms: Mailstack | None, *extra: str):
    ca = ["--ca-file", str(ms.ca_file)] if ms is not None else []
    return tui_mail(
        config,
        "setup",
        "--email",
        email,
        "--non-interactive",
        "--password-command",
        PASSWORD_CMD,
        "--resolver",
        dns.address,
        "--timeout",
        "5",
        *ca,
        *extra,
    )


def deliver_marker(ms: Mailstack) -> str:
    """A fresh message in alice's otherwise empty INBOX (other tests may have left
    thousands there); its Message-ID, to find it after sync."""
    reset_user_mail(ms, "alice")
    msg = EmailMessage()
    marker = f"<setup-{uuid.uuid4().hex}@example.test>"
    msg["From"] = "someone@example.test"
    msg["To"] = "alice@localhost"
    msg["Subject"] = "setup e2e"
    msg["Message-ID"] = marker
    msg.set_content("hello from the setup test\n")
    deliver_lmtp(ms, "alice", msg.as_bytes())
    return marker


def synced_and_found(config: Path, account: str, marker: str, data_home: Path) -> None:
    done = tui_mail(config, "sync")
    assert done.returncode == 0, done.stdout + done.stderr
    store = data_home / "tui-mail" / "mail" / account
    hits = [p for p in store.rglob("*") if p.is_file() and marker.encode() in p.read_bytes()]
    assert hits, f"{marker} not in {store} after sync:\n{done.stdout}{done.stderr}"


# --------------------------------------------------------------------------- with servers


def test_srv_records_lead_to_a_working_imap_account(
    mailstack: Mailstack, tmp_path: Path, isolated_dirs
) -> None:
    ms = mailstack
    config = tmp_path / "config.toml"
    config.write_text(EXISTING)
    marker = deliver_marker(ms)
    dns = TinyDns(srv_records(ms, "example.test"))
    try:
        done = setup(config, "alice@example.test", dns, ms, "--name", "Alice Example")
    finally:
        dns.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[SRV] _imaps._tcp.example.test" in done.stdout
    cfg = load_config(config)
    assert list(cfg.accounts) == ["home", "old", "example"]
    acct = cfg.accounts["example"]
    assert acct.display_name == "Alice Example"
    assert (acct.receive.backend, acct.receive.host, acct.receive.port) == (
        "imap",
        "localhost",
        ms.imaps_port,  # implicit TLS is preferred over STARTTLS
    )
    assert acct.receive.security == "tls" and acct.receive.user == "alice@example.test"
    assert (acct.send.backend, acct.send.port, acct.send.security) == (
        "smtp",
        ms.submissions_port,
        "tls",
    )
    assert acct.receive.password_command == PASSWORD_CMD and acct.receive.password is None
    text = config.read_text()
    assert text.startswith(EXISTING)  # comments and both accounts kept as they were
    synced_and_found(config, "example", marker, isolated_dirs.data)


def test_autoconfig_document_leads_to_a_working_pop3_account(
    mailstack: Mailstack, tmp_path: Path, isolated_dirs
) -> None:
    ms = mailstack
    config = tmp_path / "config.toml"
    marker = deliver_marker(ms)
    dns = TinyDns({("localhost", "A"): ["127.0.0.1"]})  # no SRV records at all
    web = AutoconfigServer(autoconfig_document(ms))
    try:
        done = setup(
            config,
            "alice@example.test",
            dns,
            ms,
            "--autoconfig-url",
            web.url,
            "--protocol",
            "pop3",
            "--account",
            "pop",
        )
    finally:
        dns.close()
        web.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert web.hits, "the autoconfig document was never fetched"
    assert "no SRV records for example.test" in done.stdout
    cfg = load_config(config)
    acct = cfg.accounts["pop"]
    assert (acct.receive.backend, acct.receive.port, acct.receive.security) == (
        "pop3",
        ms.pop3s_port,
        "tls",
    )
    assert acct.receive.user == "alice"  # %EMAILLOCALPART%
    assert (acct.send.port, acct.send.security) == (ms.submission_port, "starttls")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    synced_and_found(config, "pop", marker, isolated_dirs.data)


def test_probing_finds_servers_without_srv_or_autoconfig(
    mailstack: Mailstack, tmp_path: Path, isolated_dirs
) -> None:
    """alice@localhost: no SRV, no autoconfig; the bare-domain guess on the (mapped)
    standard ports finds all three, and the account syncs."""
    ms = mailstack
    config = tmp_path / "config.toml"
    marker = deliver_marker(ms)
    dns = TinyDns({("localhost", "A"): ["127.0.0.1"]})
    try:
        done = setup(config, "alice@localhost", dns, ms, *port_map(ms))
    finally:
        dns.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[guess] IMAP localhost:" in done.stdout
    acct = load_config(config).accounts["localhost"]
    assert (acct.receive.host, acct.receive.port, acct.receive.security) == (
        "localhost",
        ms.imaps_port,
        "tls",
    )
    assert (acct.send.port, acct.send.security) == (ms.submissions_port, "tls")
    synced_and_found(config, "localhost", marker, isolated_dirs.data)


async def test_probing_imap_dot_domain_through_the_resolver(mailstack: Mailstack) -> None:
    """imap./pop./smtp.example.test resolve to 127.0.0.1 only through our resolver; the
    probe finds each protocol there, and sees that the certificate (made for localhost)
    is not valid for those names, so nothing is proposed."""
    ms = mailstack
    dns = TinyDns(
        {
            ("imap.example.test", "A"): ["127.0.0.1"],
            ("pop.example.test", "A"): ["127.0.0.1"],
            ("smtp.example.test", "A"): ["127.0.0.1"],
        }
    )
    mapping = {993: ms.imaps_port, 143: ms.imap_port, 995: ms.pop3s_port}
    mapping |= {110: ms.pop3_port, 465: ms.submissions_port, 587: ms.submission_port}
    opts = NetOptions(
        resolver=("127.0.0.1", dns.port), ca_file=ms.ca_file, timeout=5, port_map=mapping
    )
    steps = []
    try:
        found = await discover("alice@example.test", opts, steps.append)
    finally:
        dns.close()
    answered = {(p.protocol, p.candidate.host, p.security) for p in found.probes if p.reachable}
    assert {
        ("imap", "imap.example.test", "tls"),
        ("imap", "imap.example.test", "starttls"),
        ("pop3", "pop.example.test", "tls"),
        ("smtp", "smtp.example.test", "tls"),
        ("smtp", "smtp.example.test", "starttls"),
    } <= answered
    assert all(p.cert_error for p in found.probes if p.reachable)
    assert any("mismatch" in (p.cert_error or "") for p in found.probes)
    assert found.best("imap") is None  # an unverified server is never proposed
    assert any(s.stage == "guess" and "certificate NOT valid" in s.text for s in steps)


def test_certificate_not_verifying_is_explained(
    mailstack: Mailstack, tmp_path: Path, isolated_dirs
) -> None:
    ms = mailstack
    config = tmp_path / "config.toml"
    config.write_text(EXISTING)
    dns = TinyDns(srv_records(ms, "example.test"))
    try:
        done = setup(config, "alice@example.test", dns, None)  # no --ca-file: private CA
    finally:
        dns.close()
    assert done.returncode == 1
    assert "certificate" in done.stderr and "--ca-file" in done.stderr
    assert "nothing was written" in done.stderr
    assert config.read_text() == EXISTING


def test_wrong_password_is_explained_and_nothing_is_written(
    mailstack: Mailstack, tmp_path: Path, isolated_dirs
) -> None:
    ms = mailstack
    config = tmp_path / "config.toml"
    config.write_text(EXISTING)
    before = config.stat()
    dns = TinyDns(srv_records(ms, "example.test"))
    try:
        done = tui_mail(
            config,
            "setup",
            "--email",
            "alice@example.test",
            "--non-interactive",
            "--password-command",
            "printf %s wrong-password",
            "--resolver",
            dns.address,
            "--ca-file",
            str(ms.ca_file),
        )
    finally:
        dns.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "refused the login" in done.stderr
    assert "app password" in done.stderr
    assert config.read_text() == EXISTING
    assert config.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "xdg"]  # no temp file


def test_interactive_flow_explains_imap_vs_pop3_and_stores_in_the_file(
    mailstack: Mailstack, tmp_path: Path, isolated_dirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    ms = mailstack
    config = tmp_path / "config.toml"
    dns = TinyDns(srv_records(ms, "example.test"))
    said: list[str] = []
    monkeypatch.setattr(wizard, "keyring_available", lambda: False)
    answers = iter(["alice@example.test", "Alice", "1", "2", "mine"])
    ui = Prompter(said.append)
    monkeypatch.setattr(ui, "ask", lambda q, default="": next(answers) or default)
    monkeypatch.setattr(ui, "secret", lambda q: "alicepass")
    opts = Options(net=NetOptions(resolver=("127.0.0.1", dns.port), ca_file=ms.ca_file))
    try:
        cfg = asyncio.run(run_interactive(config, opts, ui))
    finally:
        dns.close()
    text = "\n".join(said)
    assert IMAP_VS_POP3 in text
    assert "usually the same" in text and "app password" in text
    assert "plain text" in text  # the warning for a password in the file
    acct = cfg.accounts["mine"]
    assert acct.receive.backend == "imap" and acct.receive.password == "alicepass"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert not cfg.warnings


# --------------------------------------------------------------------------- no servers needed


def test_domain_without_mail_servers(tmp_path: Path, isolated_dirs) -> None:
    config = tmp_path / "config.toml"
    dns = TinyDns({})
    try:
        done = setup(config, "someone@nothing.example", dns, None)
    finally:
        dns.close()
    assert done.returncode == 1
    assert "no mail servers found for nothing.example" in done.stderr
    assert "spelling" in done.stderr
    assert not config.exists()
    assert any(name.startswith("_imaps._tcp.nothing.example") for name, _ in dns.queries)


def test_invalid_address(tmp_path: Path, isolated_dirs) -> None:
    config = tmp_path / "config.toml"
    done = tui_mail(
        config, "setup", "--email", "not-an-address", "--non-interactive",
        "--password-command", "true",
    )  # fmt: skip
    assert done.returncode == 1
    assert "not an email address" in done.stderr
    assert not config.exists()
