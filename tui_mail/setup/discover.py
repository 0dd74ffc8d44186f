"""Find the servers for an address: SRV records, then autoconfig, then guessing.

Each source only suggests; every suggestion is probed live (probe.py) and
only servers that answer, encrypt, verify and take a password are proposed.
A later source is asked only for what the earlier ones left missing (a way
to receive in one of the wanted protocols, a way to send).
Every step is reported through a callback, for the CLI's lines and the TUI.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Iterable, Sequence

from msgspec import Struct, field

from tui_mail.setup.autoconfig import AutoconfigError, autoconfig_urls, fetch, parse_autoconfig
from tui_mail.setup.probe import (
    PROTOCOL_NAMES,
    RECEIVE_PROTOCOLS,
    Candidate,
    NetOptions,
    Probe,
    Protocol,
    Security,
    make_resolver,
    probe,
    rank,
)

# RFC 6186 (and RFC 8314 for the implicit-TLS names), in our order of preference.
SRV_SERVICES: tuple[tuple[str, Protocol, Security], ...] = (
    ("_imaps._tcp", "imap", "tls"),
    ("_imap._tcp", "imap", "starttls"),
    ("_pop3s._tcp", "pop3", "tls"),
    ("_pop3._tcp", "pop3", "starttls"),
    ("_submissions._tcp", "smtp", "tls"),
    ("_submission._tcp", "smtp", "starttls"),
)
# Thunderbird's guesses: service name first, then mail., then the bare domain.
GUESS_PREFIXES: dict[Protocol, tuple[str, ...]] = {
    "imap": ("imap.", "mail.", ""),
    "pop3": ("pop.", "mail.", ""),
    "smtp": ("smtp.", "mail.", ""),
}
GUESS_PORTS: dict[Protocol, tuple[tuple[int, Security], ...]] = {
    "imap": ((993, "tls"), (143, "starttls")),
    "pop3": ((995, "tls"), (110, "starttls")),
    "smtp": ((465, "tls"), (587, "starttls")),
}
_EMAIL = re.compile(r"[^@\s]+@([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*)")


class Step(Struct, frozen=True):
    """One line of progress: `stage` is "SRV", "autoconfig", "guess" or "result"."""

    stage: str
    text: str
    ok: bool | None = None  # True: found something; False: a miss or failure; None: info


Report = Callable[[Step], None]


class SrvRecord(Struct, frozen=True):
    priority: int
    weight: int
    port: int
    target: str


class Discovery(Struct):
    email: str
    domain: str
    probes: list[Probe] = field(default_factory=list)

    def ranked(self) -> list[Probe]:
        return rank(self.probes)

    def best(self, protocol: Protocol) -> Probe | None:
        return next((p for p in self.ranked() if p.protocol == protocol and p.usable), None)

    def receive_protocols(self) -> list[Protocol]:
        """Protocols with a usable server, IMAP first."""
        return [p for p in RECEIVE_PROTOCOLS if self.best(p) is not None]

    def complete(self, protocols: Sequence[Protocol]) -> bool:
        return self.best("smtp") is not None and any(self.best(p) for p in protocols)

    def untrusted(self) -> list[Probe]:
        """Servers that answered with a certificate that does not verify."""
        return [p for p in self.ranked() if p.reachable and p.cert_error]

    def plaintext_only(self) -> list[Probe]:
        return [p for p in self.ranked() if p.reachable and p.security == "none"]


class InvalidAddress(ValueError):
    pass


def domain_of(email: str) -> str:
    """The domain of `email`, lowercased; InvalidAddress when it is not an address."""
    email = email.strip()
    local, at, domain = email.rpartition("@")
    try:
        # An internationalised domain is looked up in its ASCII (punycode) form.
        ascii_email = f"{local}{at}{domain.encode('idna').decode('ascii')}" if domain else email
    except UnicodeError:
        ascii_email = email
    m = _EMAIL.fullmatch(ascii_email)
    if not m or ("." not in m.group(1) and m.group(1).lower() != "localhost"):
        raise InvalidAddress(
            f"{email!r} is not an email address; type the whole address, like you@example.com"
        )
    return m.group(1).lower()


# --------------------------------------------------------------------------- SRV


def order_srv(records: Iterable[SrvRecord], rng: random.Random | None = None) -> list[SrvRecord]:
    """RFC 2782 order: lowest priority first; within one priority a weighted random
    pick, repeated (weight-0 records first in the running sum, so rarely chosen early)."""
    rng = rng or random.Random()
    out: list[SrvRecord] = []
    by_priority: dict[int, list[SrvRecord]] = {}
    for r in records:
        by_priority.setdefault(r.priority, []).append(r)
    for prio in sorted(by_priority):
        group = sorted(by_priority[prio], key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.randint(0, total)
            running = 0
            for i, r in enumerate(group):
                running += r.weight
                if running >= pick:
                    out.append(group.pop(i))
                    break
    return out


async def srv_lookup(name: str, opts: NetOptions) -> list[SrvRecord] | None:
    """SRV records of `name`; [] when there are none, None when DNS failed."""
    import dns.exception
    import dns.resolver

    try:
        answer = await make_resolver(opts).resolve(name, "SRV")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, OSError):
        # Timeout, no usable server, no /etc/resolv.conf: say DNS failed, go on.
        return None
    return [
        SrvRecord(r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True).lower())
        for r in answer
    ]


async def srv_candidates(
    domain: str, opts: NetOptions, report: Report, rng: random.Random | None = None
) -> list[Candidate]:
    names = [f"{service}.{domain}." for service, _, _ in SRV_SERVICES]
    results = await asyncio.gather(*(srv_lookup(n, opts) for n in names))
    found: list[Candidate] = []
    for (service, protocol, security), name, records in zip(
        SRV_SERVICES, names, results, strict=True
    ):
        if records is None:
            report(Step("SRV", f"{name.rstrip('.')}: DNS did not answer", False))
            continue
        # RFC 2782: a single record with target "." says the service is not offered.
        records = [r for r in records if r.target not in ("", ".")]
        if not records:
            continue
        for r in order_srv(records, rng):
            found.append(Candidate(protocol, r.target, r.port, security, "SRV", order=len(found)))
        shown = ", ".join(f"{r.target}:{r.port}" for r in records)
        report(Step("SRV", f"{service}.{domain}: {shown}", True))
    if not found:
        report(Step("SRV", f"no SRV records for {domain}", False))
    return found


# --------------------------------------------------------------------------- guesses


def guess_candidates(
    domain: str, protocols: Iterable[Protocol], opts: NetOptions
) -> list[Candidate]:
    found: list[Candidate] = []
    for protocol in protocols:
        for prefix in GUESS_PREFIXES[protocol]:
            for port, security in GUESS_PORTS[protocol]:
                found.append(
                    Candidate(
                        protocol,
                        prefix + domain,
                        opts.port_map.get(port, port),
                        security,
                        "guess",
                        order=len(found),
                    )
                )
    return found


# --------------------------------------------------------------------------- discovery


async def discover(
    email: str,
    opts: NetOptions,
    report: Report,
    *,
    protocols: Sequence[Protocol] = RECEIVE_PROTOCOLS,
    autoconfig_url: str | None = None,
    rng: random.Random | None = None,
) -> Discovery:
    """Run the three sources in order until receiving and sending are both found."""
    domain = domain_of(email)
    result = Discovery(email=email.strip(), domain=domain)
    probed: set[tuple[str, str, int]] = set()

    async def check(cands: list[Candidate], stage: str, quiet_misses: bool) -> None:
        fresh = []
        for c in cands:
            key = (c.protocol, c.host, c.port)
            if key not in probed:
                probed.add(key)
                fresh.append(c)
        probes = await asyncio.gather(*(probe(c, opts) for c in fresh))
        misses = 0
        for p in probes:
            result.probes.append(p)
            if quiet_misses and not p.reachable:
                misses += 1
                continue
            report(Step(stage, p.describe(), p.usable))
        if misses == len(probes):
            report(Step(stage, f"none of the {misses} usual host names and ports answered", False))
        elif misses:
            report(Step(stage, f"{misses} other guesses did not answer", None))

    def missing() -> list[Protocol]:
        need: list[Protocol] = []
        if not any(result.best(p) for p in protocols):
            need.extend(protocols)
        if result.best("smtp") is None:
            need.append("smtp")
        return need

    report(Step("SRV", f"looking up SRV records of {domain} (RFC 6186)"))
    await check(await srv_candidates(domain, opts, report, rng), "SRV", quiet_misses=False)

    if missing():
        urls = [autoconfig_url] if autoconfig_url else autoconfig_urls(domain, result.email)
        for url in urls:
            report(Step("autoconfig", f"fetching {url.split('?')[0]}"))
            try:
                cands = parse_autoconfig(await fetch(url, opts), result.email)
            except AutoconfigError as exc:
                report(Step("autoconfig", str(exc), False))
                continue
            need = set(missing())
            cands = [c for c in cands if c.protocol in need]
            report(Step("autoconfig", f"the document lists {len(cands)} server(s) we need"))
            await check(cands, "autoconfig", quiet_misses=False)
            break

    need = missing()
    if need:
        names = ", ".join(PROTOCOL_NAMES[p] for p in need)
        report(Step("guess", f"trying the usual host names of {domain} for {names}"))
        await check(guess_candidates(domain, need, opts), "guess", quiet_misses=True)

    summary = [
        f"{PROTOCOL_NAMES[p]} {best.candidate.where}"
        for p in (*protocols, "smtp")
        if (best := result.best(p)) is not None
    ]
    report(Step("result", "found: " + (", ".join(summary) or "nothing usable"), bool(summary)))
    return result
