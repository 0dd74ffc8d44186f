"""A large synthetic index for tests and benchmarks (no Maildir files, no parsing).

Rows go straight in through `MailIndex.upsert_many` with made-up `ParsedHeaders`,
so 100,000 messages take seconds instead of the minutes real files would. The
content is deterministic (seeded) and shaped like mail: a Zipf-like vocabulary,
a few thousand correspondents, threads with In-Reply-To/References, flags,
attachments, several accounts and folders, three years of dates. Tests rely on
the planted markers below to know exact answers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tui_mail.core.models import Address

if TYPE_CHECKING:
    from tui_mail.store.index import MailIndex
    from tui_mail.store.maildir import StoredFile
    from tui_mail.store.parse import ParsedHeaders

ACCOUNTS = ("work", "home")
FOLDERS = ("INBOX", "Archive", "Sent", "Lists/py", "Lists/rust", "Trash")
START = 1_600_000_000  # 2020-09-13
SPAN = 3 * 365 * 86400
# Planted: exactly one message per N has each marker word in its body/subject.
MARKER_EVERY = 1000
RARE_WORD = "zyxquartz"  # in the body of ids where n % MARKER_EVERY == 7
RARE_SUBJECT = "kumquatreport"  # in the subject where n % MARKER_EVERY == 11
RARE_SENDER = "rarely.writes@odd.example"  # sender where n % MARKER_EVERY == 13

_SYLLABLES = "ka lo mi nu pe ra si to vu we xa yo za be co di fu ga hi jo".split()


def _words(rng: random.Random, n: int) -> tuple[str, ...]:
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return tuple(sorted(out))


def _zipf_weights(n: int) -> list[float]:
    # Cumulative 1/rank weights: the first few words are very common, most are rare,
    # as in real text, so common-word queries return many rows and rare ones few.
    total = 0.0
    out = []
    for rank in range(1, n + 1):
        total += 1.0 / rank
        out.append(total)
    return out


def generate(count: int, seed: int = 7) -> Iterator[tuple[str, str, StoredFile, ParsedHeaders]]:
    """(account, folder, stored, parsed) for `count` messages, oldest first."""
    from tui_mail.store.maildir import StoredFile
    from tui_mail.store.parse import ParsedHeaders

    rng = random.Random(seed)
    words = _words(rng, 6000)
    weights = _zipf_weights(len(words))
    people = tuple(
        Address(
            f"{rng.choice(words).title()} {rng.choice(words).title()}",
            f"{rng.choice(words)}.{rng.choice(words)}@{rng.choice(words[:80])}.example",
        )
        for _ in range(3000)
    )
    # Pools drawn once: picking from them keeps 100k messages to a couple of seconds.
    bodies = [rng.choices(words, cum_weights=weights, k=rng.randint(10, 30)) for _ in range(4000)]
    subjects = [
        " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(2, 6))).title()
        for _ in range(4000)
    ]
    nowhere = Path("/nonexistent")  # rows only: no file behind them
    recent: list[tuple[str, str, tuple[str, ...]]] = []  # (msgid, subject, refs) to reply to
    for n in range(count):
        account = ACCOUNTS[n % len(ACCOUNTS)]
        folder = FOLDERS[min(int(rng.expovariate(1.2)), len(FOLDERS) - 1)]
        date = START + int(SPAN * n / max(1, count)) + rng.randrange(3600)
        sender = people[int(len(people) ** rng.random()) - 1]
        if n % MARKER_EVERY == 13:
            sender = Address("Rare Writer", RARE_SENDER)
        to = tuple(rng.choice(people) for _ in range(rng.randint(1, 3)))
        cc = tuple(rng.choice(people) for _ in range(rng.choice((0, 0, 0, 1, 2))))
        body_words = bodies[rng.randrange(len(bodies))]
        if n % MARKER_EVERY == 7:
            body_words = [*body_words[:3], RARE_WORD, *body_words[3:]]
        msgid = f"<n{n}.{account}@synthetic.example>"
        in_reply_to = ""
        refs: tuple[str, ...] = ()
        if recent and rng.random() < 0.35:
            parent_id, parent_subject, parent_refs = rng.choice(recent[-200:])
            subject = f"Re: {parent_subject.removeprefix('Re: ')}"
            in_reply_to = parent_id
            refs = (*parent_refs[-8:], parent_id)
        else:
            subject = subjects[rng.randrange(len(subjects))]
        if n % MARKER_EVERY == 11:
            subject = f"{subject} {RARE_SUBJECT}"
        recent.append((msgid, subject, refs))
        if len(recent) > 400:
            del recent[:200]
        flags = "".join(
            letter for letter, p in (("F", 0.05), ("R", 0.15), ("S", 0.7)) if rng.random() < p
        )
        stored = StoredFile(folder, f"k{n:07d}", "cur", flags, nowhere, 2000, 0.0)
        parsed = ParsedHeaders(
            date=date,
            sender=sender,
            to=to,
            cc=cc,
            subject=subject,
            message_id=msgid,
            in_reply_to=in_reply_to,
            references=refs,
            has_attachment=rng.random() < 0.1,
            list_id="",
            body_text=" ".join(body_words),
        )
        yield account, folder, stored, parsed


def fill(index: MailIndex, count: int, seed: int = 7, batch: int = 2000) -> None:
    """Index `count` synthetic messages, grouped per (account, folder) in batches."""
    pending: dict[tuple[str, str], list[tuple[StoredFile, ParsedHeaders, None]]] = {}
    for account, folder, stored, parsed in generate(count, seed):
        items = pending.setdefault((account, folder), [])
        items.append((stored, parsed, None))
        if len(items) >= batch:
            index.upsert_many(account, folder, items)
            items.clear()
    for (account, folder), items in pending.items():
        if items:
            index.upsert_many(account, folder, items)
