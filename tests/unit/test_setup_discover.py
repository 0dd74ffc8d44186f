"""SRV ordering, candidate ranking and the order of the discovery steps (no network)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tui_mail.setup import discover as disc
from tui_mail.setup.autoconfig import AutoconfigError
from tui_mail.setup.discover import (
    Discovery,
    InvalidAddress,
    SrvRecord,
    Step,
    discover,
    domain_of,
    guess_candidates,
    order_srv,
)
from tui_mail.setup.probe import Candidate, NetOptions, Probe, rank


def test_srv_lower_priority_always_first() -> None:
    records = [
        SrvRecord(20, 100, 993, "backup.example.com"),
        SrvRecord(10, 0, 993, "zero.example.com"),
        SrvRecord(10, 50, 993, "main.example.com"),
        SrvRecord(5, 1, 993, "first.example.com"),
    ]
    for seed in range(50):
        got = order_srv(records, random.Random(seed))
        assert [r.priority for r in got] == [5, 10, 10, 20]
        assert got[0].target == "first.example.com"
        assert got[-1].target == "backup.example.com"


def test_srv_weight_decides_how_often_a_record_comes_first() -> None:
    records = [SrvRecord(0, 90, 993, "heavy"), SrvRecord(0, 10, 993, "light")]
    firsts = Counter(order_srv(records, random.Random(seed))[0].target for seed in range(2000))
    assert 0.85 < firsts["heavy"] / 2000 < 0.95  # RFC 2782: chosen with chance 90/100


def test_srv_weight_zero_is_rarely_first_but_kept() -> None:
    records = [SrvRecord(0, 0, 993, "zero"), SrvRecord(0, 100, 993, "weighted")]
    firsts = Counter(order_srv(records, random.Random(seed))[0].target for seed in range(1000))
    assert firsts["weighted"] > 980
    assert all(len(order_srv(records, random.Random(s))) == 2 for s in range(20))


def test_srv_all_zero_weights_keep_every_record() -> None:
    records = [SrvRecord(0, 0, p, f"h{p}") for p in range(5)]
    assert sorted(r.port for r in order_srv(records, random.Random(1))) == list(range(5))


def _probe(protocol, host, port, security, source, order=0, *, usable=True, cert=None):
    c = Candidate(protocol, host, port, security, source, order=order)
    return Probe(
        c,
        reachable=True,
        security=security,
        mechanisms=("PLAIN",),
        password_login=usable,
        cert_error=cert,
    )


def test_ranking_prefers_usable_then_implicit_tls_then_source_order() -> None:
    starttls_srv = _probe("imap", "a", 143, "starttls", "SRV")
    tls_guess = _probe("imap", "b", 993, "tls", "guess")
    tls_srv_late = _probe("imap", "c", 993, "tls", "SRV", order=3)
    tls_srv = _probe("imap", "d", 993, "tls", "SRV", order=1)
    tls_auto = _probe("imap", "e", 993, "tls", "autoconfig")
    bad_cert = _probe("imap", "f", 993, "tls", "SRV", cert="hostname mismatch")
    oauth_only = _probe("imap", "g", 993, "tls", "SRV", usable=False)
    plain = _probe("imap", "h", 143, "none", "SRV")
    ranked = rank([plain, oauth_only, bad_cert, tls_auto, tls_srv, tls_srv_late, tls_guess,
                   starttls_srv])  # fmt: skip
    assert [p.candidate.host for p in ranked[:5]] == ["d", "c", "e", "b", "a"]
    assert not any(p.usable for p in ranked[5:])
    assert not plain.usable and not bad_cert.usable and not oauth_only.usable
    found = Discovery("x@y.z", "y.z", ranked)
    assert found.best("imap") is tls_srv
    assert found.untrusted() == [bad_cert]
    assert found.plaintext_only() == [plain]


@pytest.mark.parametrize("bad", ["", "jo", "jo@", "@example.com", "jo@example", "a b@c.d",
                                 "jo@exa_mple.com", "jo@-x.com"])  # fmt: skip
def test_invalid_addresses(bad: str) -> None:
    with pytest.raises(InvalidAddress):
        domain_of(bad)


def test_domain_of() -> None:
    assert domain_of(" Jo.Doe+tag@Mail.Example.COM ") == "mail.example.com"
    assert domain_of("alice@localhost") == "localhost"
    assert domain_of("jo@bücher.example") == "xn--bcher-kva.example"  # looked up as punycode


def test_guesses_use_the_port_map_and_keep_the_meaning_of_the_port() -> None:
    opts = NetOptions(port_map={993: 10993, 587: 10587})
    got = guess_candidates("example.com", ["imap", "smtp"], opts)
    assert ("imap", "imap.example.com", 10993, "tls") in [
        (c.protocol, c.host, c.port, c.security) for c in got
    ]
    assert ("imap", "example.com", 143, "starttls") in [
        (c.protocol, c.host, c.port, c.security) for c in got
    ]
    assert ("smtp", "smtp.example.com", 10587, "starttls") in [
        (c.protocol, c.host, c.port, c.security) for c in got
    ]
    assert {c.source for c in got} == {"guess"}
    assert not any(c.protocol == "pop3" for c in got)


# ---- the order of the steps, with every network call replaced


class FakeNet:
    def __init__(self, srv=None, autoconfig=None, answering=()):
        self.srv = srv or {}
        self.autoconfig = autoconfig
        self.answering = set(answering)  # (host, port) that answer, usable
        self.probed: list[tuple[str, int]] = []
        self.fetched: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def srv_lookup(name, opts):
            return self.srv.get(name.rstrip("."), [])

        async def fetch(url, opts):
            self.fetched.append(url)
            if self.autoconfig is None:
                raise AutoconfigError("no such host")
            return self.autoconfig.encode()

        async def probe(c, opts):
            self.probed.append((c.host, c.port))
            if (c.host, c.port) in self.answering:
                return Probe(c, True, c.security, ("PLAIN",), True)
            return Probe(c, False, error="no such host")

        monkeypatch.setattr(disc, "srv_lookup", srv_lookup)
        monkeypatch.setattr(disc, "fetch", fetch)
        monkeypatch.setattr(disc, "probe", probe)


async def test_srv_complete_stops_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    net = FakeNet(
        srv={
            "_imaps._tcp.example.com": [SrvRecord(0, 1, 993, "imap.example.com")],
            "_submission._tcp.example.com": [SrvRecord(0, 1, 587, "smtp.example.com")],
            "_pop3._tcp.example.com": [SrvRecord(0, 0, 0, ".")],  # not offered
        },
        answering={("imap.example.com", 993), ("smtp.example.com", 587)},
    )
    net.install(monkeypatch)
    steps: list[Step] = []
    found = await discover("jo@example.com", NetOptions(), steps.append)
    assert net.fetched == []  # autoconfig not needed
    assert sorted(net.probed) == [("imap.example.com", 993), ("smtp.example.com", 587)]
    assert found.best("imap").candidate.source == "SRV"
    assert found.best("smtp").security == "starttls"
    assert steps[-1].stage == "result" and steps[-1].ok


async def test_autoconfig_fills_what_srv_left_and_guessing_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = """<clientConfig><emailProvider id="e">
      <incomingServer type="imap"><hostname>imap.example.com</hostname><port>993</port>
        <socketType>SSL</socketType></incomingServer>
    </emailProvider></clientConfig>"""
    net = FakeNet(
        srv={},
        autoconfig=doc,
        answering={("imap.example.com", 993), ("mail.example.com", 465)},
    )
    net.install(monkeypatch)
    steps: list[Step] = []
    found = await discover("jo@example.com", NetOptions(), steps.append)
    assert [s.stage for s in steps].index("autoconfig") < [s.stage for s in steps].index("guess")
    assert len(net.fetched) == 1  # the first location answered
    assert found.best("imap").candidate.source == "autoconfig"
    assert found.best("smtp").candidate.host == "mail.example.com"
    # Guessing asked only for what was missing: sending.
    guessed = [hp for hp in net.probed if hp != ("imap.example.com", 993)]
    assert guessed and all(port in (465, 587) for _, port in guessed)


async def test_nothing_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    net = FakeNet()
    net.install(monkeypatch)
    steps: list[Step] = []
    found = await discover("jo@example.com", NetOptions(), steps.append)
    assert len(net.fetched) == 2  # both autoconfig locations tried
    assert found.best("imap") is None and found.best("smtp") is None
    assert not steps[-1].ok
    assert any("none of the" in s.text for s in steps)
