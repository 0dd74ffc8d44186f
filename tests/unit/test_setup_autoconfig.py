"""The autoconfig (config-v1.1.xml) parser and the URL rules."""

from __future__ import annotations

import pytest

from tui_mail.setup.autoconfig import (
    MAX_BYTES,
    AutoconfigError,
    autoconfig_urls,
    parse_autoconfig,
    url_allowed,
)

DOC = """<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.com">
    <domain>example.com</domain>
    <displayName>Example</displayName>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname>
      <port>993</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <authentication>OAuth2</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>pop.example.com</hostname>
      <port>110</port>
      <socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username>
    </incomingServer>
    <incomingServer type="exchange">
      <hostname>ews.example.com</hostname>
      <port>443</port>
      <socketType>SSL</socketType>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>old.example.com</hostname>
      <port>143</port>
      <socketType>plain</socketType>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>SMTP.Example.COM.</hostname>
      <port>465</port>
      <socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
    <documentation url="https://example.com/help"><descr lang="en">Help</descr></documentation>
  </emailProvider>
</clientConfig>
"""


def test_servers_in_document_order_with_placeholders_filled() -> None:
    found = parse_autoconfig(DOC.encode(), "jo@example.com")
    assert [(c.protocol, c.host, c.port, c.security) for c in found] == [
        ("imap", "imap.example.com", 993, "tls"),
        ("pop3", "pop.example.com", 110, "starttls"),
        ("imap", "old.example.com", 143, "none"),  # kept: the probe asks for STARTTLS
        ("smtp", "smtp.example.com", 465, "tls"),
    ]
    assert [c.order for c in found] == [0, 1, 2, 3]
    assert found[0].username == "jo@example.com"
    assert found[1].username == "jo"
    assert found[2].username is None
    assert found[0].auth == ("password-cleartext", "OAuth2")
    assert {c.source for c in found} == {"autoconfig"}


@pytest.mark.parametrize(
    "bad",
    [
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><clientConfig>&a;</clientConfig>',
        '<!DOCTYPE clientConfig SYSTEM "file:///etc/passwd"><clientConfig/>',
        "<clientConfig><emailProvider>",
        "<html><body>not found</body></html>",
        "<clientConfig version='1.1'/>",
        "",
    ],
)
def test_unsafe_or_broken_documents_are_refused(bad: str) -> None:
    with pytest.raises(AutoconfigError):
        parse_autoconfig(bad.encode(), "jo@example.com")


def test_size_and_encoding_limits() -> None:
    with pytest.raises(AutoconfigError, match="too large"):
        parse_autoconfig("<clientConfig>" + " " * MAX_BYTES + "</clientConfig>", "a@b.c")
    with pytest.raises(AutoconfigError, match="UTF-8"):
        parse_autoconfig(b"<clientConfig>\xff</clientConfig>", "a@b.c")


@pytest.mark.parametrize(
    ("host", "port", "socket_type"),
    [
        ("imap.example.com/evil", "993", "SSL"),
        ("imap example.com", "993", "SSL"),
        ("", "993", "SSL"),
        ("imap.example.com", "99999", "SSL"),
        ("imap.example.com", "x", "SSL"),
        ("imap.example.com", "993", "weird"),
    ],
)
def test_bad_server_entries_are_skipped(host: str, port: str, socket_type: str) -> None:
    doc = f"""<clientConfig><emailProvider id="x">
      <incomingServer type="imap"><hostname>{host}</hostname><port>{port}</port>
      <socketType>{socket_type}</socketType></incomingServer>
    </emailProvider></clientConfig>"""
    assert parse_autoconfig(doc, "a@example.com") == []


def test_locations_and_url_rules() -> None:
    urls = autoconfig_urls("example.com", "jo@example.com")
    assert urls == [
        "https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=jo%40example.com",
        "https://example.com/.well-known/autoconfig/mail/config-v1.1.xml",
    ]
    assert all(url_allowed(u) for u in urls)
    assert url_allowed("http://127.0.0.1:8080/mail/config-v1.1.xml")
    assert url_allowed("http://[::1]:8080/x")
    assert not url_allowed("http://autoconfig.example.com/mail/config-v1.1.xml")
    assert not url_allowed("file:///etc/passwd")
    assert not url_allowed("ftp://example.com/x")
