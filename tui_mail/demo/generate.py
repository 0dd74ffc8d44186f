"""A deterministic generator of the demo mailbox.

Every message here is invented: the people, the text, the domains (only the reserved
``example.com/.net/.org`` names and the ``.example`` TLD) and the IP addresses (the
documentation ranges).
The same ``seed`` and ``now`` always give byte-identical output, so the mailbox
doubles as the fixture of the UI tests.

Messages are built with the standard library's ``email.mime`` classes under the
``compat32`` policy, on purpose: the modern policies re-encode every RFC 2047
header as UTF-8, which would erase the charset variety (KOI8-R, ISO-2022-JP,
GB2312, ...) the fixture exists to provide.  Multipart boundaries and Message-IDs
are drawn from the seeded RNG; the email package would otherwise take them from the
global one.

The mailbox holds some deliberately hostile messages, each kept in INBOX and found
by its fixed Message-ID:

* ``ESCAPES_MESSAGE_ID``: terminal escape sequences in the subject, sender and body;
* ``MALFORMED_MESSAGE_ID``: no Date header, broken encoded-words, a multipart whose
  closing boundary never comes (``DemoMessage.date`` still carries a time for it);
* ``HOSTILE_ATTACHMENT_MESSAGE_ID``: an attachment named ``HOSTILE_FILENAME``;
* ``HTML_TRACKER_URL``: the remote image in the HTML mail, which must never be fetched.
"""

from __future__ import annotations

import base64
import functools
import random
import struct
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes
from email.charset import QP, Charset
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.image import MIMEImage
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import format_datetime, formataddr
from typing import Any

from msgspec import Struct, field

__all__ = [
    "DEFAULT_NOW",
    "DEMO_EMAIL",
    "DEMO_NAME",
    "ESCAPES_MESSAGE_ID",
    "FOLDERS",
    "HOSTILE_ATTACHMENT_MESSAGE_ID",
    "HOSTILE_FILENAME",
    "HTML_TRACKER_URL",
    "MALFORMED_MESSAGE_ID",
    "DemoMessage",
    "generate_demo",
]

DEMO_EMAIL = "you@demo.example"
DEMO_NAME = "Demo User"
DEFAULT_NOW = 1764000000  # 2025-11-24 16:00 UTC
FOLDERS = ("INBOX", "Sent", "Archive", "Lists/python-dev", "Lists/textual-users")

ESCAPES_MESSAGE_ID = "<escape-sequences.0001@phish.example>"
MALFORMED_MESSAGE_ID = "<malformed.0001@broken.example>"
HOSTILE_ATTACHMENT_MESSAGE_ID = "<hostile-filename.0001@printers.example>"
HOSTILE_FILENAME = "../../etc/passwd"
HTML_TRACKER_URL = "http://tracker.example/p.gif"

DAY = 86400
_SPAN_DAYS = 540  # about 18 months of history before `now`


class _Policy(Compat32):
    """compat32, folding plain ASCII headers itself: `Header` is slow, and this is most of
    the generation time otherwise.  Same result: fold at spaces, 78 columns."""

    def fold_binary(self, name: str, value: str) -> bytes:
        if not (
            isinstance(value, str) and value.isascii() and "\n" not in value and "\r" not in value
        ):
            return super().fold_binary(name, value)
        limit = self.max_line_length or 78
        lines: list[str] = []
        line = f"{name}:"
        for word in value.split(" "):
            if len(line) + 1 + len(word) > limit and line != f"{name}:":
                lines.append(line)
                line = " " + word
            else:
                line += " " + word
        lines.append(line)
        return (self.linesep.join(lines) + self.linesep).encode("ascii")


_POLICY = _Policy(mangle_from_=False)


class DemoMessage(Struct, frozen=True):
    folder: str  # one of FOLDERS
    raw: bytes  # a complete RFC 5322 message with LF line endings
    flags: str  # Maildir flag letters in ASCII order, e.g. "S", "FS", "RS", "" (unread)
    date: int  # unix seconds, the same instant as the Date header (if there is one)


# --------------------------------------------------------------------------- people


class _Person(Struct, frozen=True):
    name: str
    email: str
    charset: str = "utf-8"  # what this person's mail client writes headers and bodies in
    tz: int = 0  # minutes east of UTC
    sign: str = ""  # the name under their sign-off; the first word of `name` by default
    signature: str = ""  # the block after "-- "
    top_post: bool = False
    mailer: str = "User-Agent: Mozilla Thunderbird"

    @property
    def first(self) -> str:
        return self.sign or self.name.split()[0]

    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[1]


_USER = _Person(
    DEMO_NAME,
    DEMO_EMAIL,
    tz=60,
    sign="Demo",
    signature="Demo User\nhttps://demo.example/",
    mailer="User-Agent: tui-mail/0.1.0",
)

_TB = "User-Agent: Mozilla Thunderbird"
_APPLE = "X-Mailer: Apple Mail (2.3826.300.87)"
_OUTLOOK = "X-Mailer: Microsoft Outlook 16.0"
_MUTT = "User-Agent: NeoMutt/20250510"
_K9 = "User-Agent: K-9 Mail for Android"
_EVO = "X-Mailer: Evolution 3.54.1"
_AERC = "User-Agent: aerc 0.20.1"

_PEOPLE: dict[str, _Person] = {
    p_key: p
    for p_key, p in [
        (
            "jose",
            _Person(
                "José Müller",
                "jose.mueller@example.org",
                "iso-8859-1",
                60,
                signature="José Müller\nÜbersetzungsteam",
                mailer=_TB,
            ),
        ),
        ("zoe", _Person("Zoë Ångström", "zoe@angstrom.example", "utf-8", 60, mailer=_APPLE)),
        (
            "dmitry",
            _Person("Дмитрий Петров", "dmitry.petrov@example.net", "koi8-r", 180, mailer=_TB),
        ),
        (
            "yamada",
            _Person(
                "山田太郎",
                "taro.yamada@jp.example",
                "iso-2022-jp",
                540,
                sign="山田",
                mailer=_OUTLOOK,
                top_post=True,
            ),
        ),
        (
            "wang",
            _Person("王芳", "wang.fang@cn.example", "gb2312", 480, mailer=_OUTLOOK, top_post=True),
        ),
        (
            "elodie",
            _Person(
                "Élodie Lefèvre",
                "elodie@lefevre.example",
                "iso-8859-15",
                60,
                signature="Élodie Lefèvre\nService facturation",
                mailer=_EVO,
            ),
        ),
        (
            "siobhan",
            _Person(
                "Siobhán O’Connor",
                "siobhan.oconnor@example.com",
                "windows-1252",
                0,
                top_post=True,
                mailer=_OUTLOOK,
                signature="Siobhán O’Connor\nAccounts Payable\nTel: +353 1 555 0199",
            ),
        ),
        (
            "priya",
            _Person(
                "Priya Raman",
                "priya@example.com",
                tz=330,
                signature="Priya Raman | Release Engineering",
                mailer=_TB,
            ),
        ),
        (
            "marcus",
            _Person(
                "Marcus Webb",
                "marcus.webb@example.com",
                tz=-300,
                top_post=True,
                signature="Marcus Webb\nEngineering Manager, Platform\n+1 555 0142",
                mailer=_OUTLOOK,
            ),
        ),
        ("hannah", _Person("Hannah Kowalski", "hannah.k@example.net", tz=60, mailer=_APPLE)),
        ("tom", _Person("Tom Fischer", "tom@fischer.example", tz=60, mailer=_K9)),
        ("aisha", _Person("Aisha Bello", "aisha.bello@example.org", tz=60, mailer=_APPLE)),
        ("liam", _Person("Liam Nguyen", "liam.nguyen@example.com", tz=-480, mailer=_MUTT)),
        ("sofia", _Person("Sofia Rossi", "sofia.rossi@example.net", tz=60, mailer=_APPLE)),
        (
            "daniel",
            _Person(
                "Daniel Okafor",
                "d.okafor@example.org",
                tz=0,
                signature="Daniel Okafor — Infrastructure",
                mailer=_AERC,
            ),
        ),
        ("emma", _Person("Emma Johansson", "emma.johansson@example.com", tz=60, mailer=_TB)),
        (
            "carlos",
            _Person(
                "Carlos Mendes", "carlos@mendes.example", tz=-180, mailer=_OUTLOOK, top_post=True
            ),
        ),
        ("grace", _Person("Grace Liu", "grace.liu@example.net", tz=-480, mailer=_APPLE)),
        ("oliver", _Person("Oliver Brandt", "oliver.brandt@example.org", tz=60, mailer=_MUTT)),
        (
            "fatima",
            _Person(
                "Fatima Haddad", "fatima.haddad@example.com", tz=120, mailer=_OUTLOOK, top_post=True
            ),
        ),
        ("ben", _Person("Ben Carter", "ben.carter@example.org", tz=-300, mailer=_K9)),
        ("ingrid", _Person("Ingrid Solberg", "ingrid@solberg.example", tz=60, mailer=_TB)),
        ("kenji", _Person("Kenji Sato", "kenji.sato@example.net", tz=540, mailer=_TB)),
        ("rachel", _Person("Rachel Adams", "rachel@adams.example", tz=-360, mailer=_APPLE)),
        ("mateo", _Person("Mateo García", "mateo.garcia@example.org", "utf-8", 60, mailer=_K9)),
        (
            "anika",
            _Person(
                "Anika Patel",
                "anika.patel@example.com",
                tz=0,
                signature="Anika Patel\nIT Service Desk, ext. 4410",
                mailer=_OUTLOOK,
                top_post=True,
            ),
        ),
        ("lukas", _Person("Lukáš Novák", "lukas.novak@example.net", "utf-8", 60, mailer=_MUTT)),
    ]
}

# People who only show up on the mailing lists.
_LIST_PEOPLE: dict[str, _Person] = {
    p_key: p
    for p_key, p in [
        ("victor", _Person("Victor Stanek", "vstanek@example.org", tz=60, mailer=_MUTT)),
        ("petra", _Person("Petra Lindqvist", "petra@lindqvist.example", tz=60, mailer=_TB)),
        (
            "raymond",
            _Person(
                "Raymond Okoro", "rokoro@example.com", tz=-420, mailer=_APPLE, signature="Raymond"
            ),
        ),
        ("yuki", _Person("Yuki Tanaka", "yuki.tanaka@example.net", tz=540, mailer=_TB)),
        (
            "serhii",
            _Person(
                "Сергій Коваленко",
                "serhii@kovalenko.example",
                "utf-8",
                120,
                sign="Serhii",
                mailer=_MUTT,
            ),
        ),
        (
            "nora",
            _Person(
                "Nora Fitzgerald",
                "nora.fitz@example.org",
                tz=0,
                mailer=_AERC,
                signature="Nora\nhttps://nora.example/blog",
            ),
        ),
        ("arjun", _Person("Arjun Mehta", "arjun@mehta.example", tz=330, mailer=_K9)),
        ("felix", _Person("Felix Bauer", "felix.bauer@example.com", tz=60, mailer=_TB)),
        ("lena", _Person("Lena Hoffmann", "lena.h@example.net", tz=60, mailer=_APPLE)),
        ("samir", _Person("Samir Haddad", "samir@haddad.example", tz=120, mailer=_MUTT)),
        (
            "chloe",
            _Person(
                "Chloé Dubois", "chloe.dubois@example.org", "windows-1252", 60, mailer=_OUTLOOK
            ),
        ),
        ("marta", _Person("Marta Kowalczyk", "marta.k@example.com", tz=60, mailer=_TB)),
    ]
}

# Automated senders.
_FORGE = _Person("GitForge", "notifications@forge.example", mailer="X-Mailer: GitForge/12.4")
_DIGEST = _Person("The Weekly Digest", "digest@news.example.com", mailer="X-Mailer: Sendy")
_PARCELS = _Person("Parcel Tracking", "no-reply@parcels.example", mailer="X-Mailer: PMTA")
_BANK = _Person("Demo Bank", "statements@bank.example", mailer="X-Mailer: BankNotify 3")
_CONF = _Person("PyConf Europe", "hello@pyconf.example", mailer="X-Mailer: Listmonk")
_SECURITY = _Person("Account Security", "security@accounts.example", mailer="X-Mailer: Notify")
_CALENDAR = _Person("Sofia Rossi", "sofia.rossi@example.net", tz=60, mailer=_APPLE)
_PRINTER = _Person("Scan to Mail", "scanner@printers.example", mailer="X-Mailer: MFP-4410")
_PHISH = _Person("IT Support", "it-support@phish.example", mailer="X-Mailer: PHPMailer 6.9")

# --------------------------------------------------------------------------- text

_OPENERS = (
    "Thanks for the update.",
    "Sounds good to me.",
    "Good point.",
    "Agreed on all of that.",
    "Quick update from my side.",
    "Sorry for the slow reply, I was travelling.",
    "Thanks, that helps a lot.",
    "I had a closer look this morning.",
    "Following up on the above.",
    "Catching up on this thread now.",
    "Short answer: yes.",
    "A couple of thoughts.",
)
_CLOSERS = (
    "Let me know what you think.",
    "Happy to discuss on a call if that's easier.",
    "I'll report back tomorrow.",
    "Shout if I missed anything.",
    "More soon.",
    "",
    "",
)
_SIGNOFFS = ("Thanks,\n{n}", "Cheers,\n{n}", "Best,\n{n}", "{n}", "Best regards,\n{n}", "-{n}")
_GREETINGS = ("Hi {n},", "Hello {n},", "Hey {n},", "{n},", "")

_RELEASE = (
    "The feature freeze is still pencilled in for the 14th, but I'd like to confirm that "
    "with everyone before we announce it.",
    "The migration scripts are the riskiest part, so I'd prefer to land them at least a "
    "week before the freeze.",
    "I ran the full regression suite against the release branch last night and only the "
    "flaky search test failed.",
    "Can we agree that anything not merged by Friday moves to the next cycle?",
    "Docs are mostly in shape; the upgrade guide still needs a section on the new config format.",
    "Support asked whether we can ship the CSV export fix as a patch release instead of waiting.",
    "I'd rather not bundle the dependency upgrades with the release; they deserve their "
    "own soak time.",
    "The staging environment is back up after this morning's certificate hiccup.",
    "Marketing would like a one-paragraph summary of the headline changes by Wednesday.",
    "We still have three open blockers: the login redirect loop, the timezone bug in "
    "reports and the slow dashboard query.",
    "The timezone bug turned out to be a missing conversion in the nightly job, so the "
    "fix is small.",
    "I've put together a draft changelog in the shared folder; please add anything I've missed.",
    "Let's do the go/no-go call on Monday at 16:00 UTC, right after the standup.",
    "If the slow query fix doesn't make it, we can ship with the feature flag turned off.",
    "The load test numbers look fine: p95 latency is within two percent of the last release.",
    "Please don't merge anything into the release branch without tagging me on the pull request.",
    "Translation updates for German and Japanese arrived yesterday and are merged.",
    "I'm out on Thursday afternoon, so Hannah will be the release contact for that window.",
    "The rollback plan is the same as last time: redeploy the previous image and restore "
    "the config snapshot.",
    "Could someone double-check that the database backups ran after the schema change on staging?",
    "The beta customers have been on the release candidate for a week without any new bug reports.",
    "I'd like to cut RC2 tomorrow morning unless anyone objects.",
    "We should remind the on-call rotation that the release window overlaps with a public "
    "holiday in Canada.",
    "The login redirect loop only happens with third-party cookies disabled, which explains "
    "why we never saw it locally.",
    "Once the release is out I'll write up a short retrospective so we can improve the checklist.",
)
_CI = (
    "The new runners are provisioned and registered, but only the Linux pool is taking "
    "jobs so far.",
    "Build times on the new farm are roughly forty percent faster for the full test matrix.",
    "The macOS runners still need the signing certificates before we can move release builds.",
    "I've moved the nightly jobs over as a trial; the old farm still handles pull requests.",
    "We hit a disk space problem on two runners because the Docker cache was never pruned.",
    "I added a weekly cleanup job, so the cache problem should not come back.",
    "The artifact storage quota is generous, but we should still expire old build "
    "artifacts after thirty days.",
    "Could we schedule the cutover for a quiet day, ideally a Tuesday?",
    "The flaky integration test is flaky on the new farm too, so at least it isn't the hardware.",
    "I've documented the runner labels in the wiki so people know which jobs go where.",
    "Caching the dependency downloads saved another three minutes per pipeline.",
    "The ARM runners are ready if we want to start producing native builds for them.",
    "There was a short outage last night when the coordinator restarted after an update.",
    "We should keep the old farm around for two weeks after the cutover, just in case.",
    "Secrets have been copied over; I rotated the deploy token while I was at it.",
    "The pipeline configuration needed only minor changes, mostly image names and labels.",
    "Someone should tell the mobile team; their jobs still point at the old runner tags.",
    "Egress from the new farm goes through the proxy, so a couple of download steps needed "
    "a tweak.",
    "The new farm costs about the same as the old one did last year.",
    "Once everything is migrated I'd like to decommission the old machines.",
)
_OFFSITE = (
    "The hotel confirmed the block booking for twelve rooms from Tuesday to Friday.",
    "Flights from Berlin and Amsterdam are reasonable if we book this week.",
    "Please send me any dietary requirements by Friday so I can pass them on to the restaurant.",
    "The venue has a big room with a projector and two smaller rooms for breakout sessions.",
    "I'd suggest we keep Wednesday afternoon free for a walk around Alfama.",
    "Does anyone need a visa letter? I can ask the venue to provide one.",
    "The agenda draft is in the shared folder; feel free to add sessions you'd like to run.",
    "Taxis from the airport take about twenty minutes, or you can take the metro red line.",
    "Expenses go through the usual tool; meals are covered on the days we're together.",
    "I'm bringing the spare conference speaker in case the venue's one is unreliable.",
    "Could someone volunteer to organise the Thursday dinner?",
    "The forecast looks warm, so pack something light and comfortable shoes for the hills.",
    "We're going to record the planning sessions for the people who can't make it.",
    "I booked a table for fourteen at a seafood place near the river for Thursday.",
    "The trams get crowded; walking is often faster in the old town.",
    "Let me know by Monday if you plan to arrive a day early, so I can extend the booking.",
    "The venue's wifi password will be on the printed agenda.",
    "A couple of people asked about bringing partners for the weekend; that's fine, just at "
    "your own cost.",
)
_PYDEV_SEAL = (
    "I'd like to restart the discussion on letting a module seal its namespace after import.",
    "The main motivation is letting the interpreter cache global lookups without guard checks.",
    "Monkeypatching in tests is the obvious casualty, and I don't think we can hand-wave "
    "that away.",
    "The PEP proposes an opt-in marker at module level, so existing code keeps working unchanged.",
    "How would this interact with lazy imports? A lazily imported name is, by definition, "
    "assigned later.",
    "A lazily resolved name could be treated as a deferred assignment that is allowed "
    "exactly once.",
    "I ran the prototype against the benchmark suite and saw a three to five percent "
    "speed-up on attribute-heavy code.",
    "Three percent is nice but does not obviously justify a new concept every user has to learn.",
    "We already have frozen dataclasses, so the mental model is not entirely new.",
    "Please don't call it frozen; that word already means something else in the import system.",
    "What happens to importlib.reload() on a sealed module? Failing silently would be the "
    "worst option.",
    "Reload would create a fresh namespace, so the old one stays sealed and the new one can "
    "be sealed again.",
    "I'm worried about the C API surface; extension modules poke at module dicts directly "
    "all the time.",
    "The prototype only enforces the restriction in STORE_GLOBAL and module.__setattr__, "
    "not at the dict level.",
    "Then it is a speed bump rather than a guarantee, and the optimisation must keep its "
    "guards anyway.",
    "That's a fair criticism; I'll add a section on what is and isn't guaranteed.",
    "I would like to see numbers from a large real-world application rather than micro-benchmarks.",
    "Could the steering council say whether this is worth pursuing before more work goes into it?",
    "I've pushed a revised draft addressing the naming and reload questions.",
)
_PYDEV_PARALLEL = (
    "Most contributors never pass -j when running the test suite locally, and it takes ages "
    "on a laptop.",
    "I'd propose defaulting to the number of CPUs minus one, with -j1 still available.",
    "Some tests are not safe to run concurrently because they use fixed port numbers.",
    "Those should be fixed regardless; binding to port zero and reading the port back is "
    "easy enough.",
    "The buildbots already run in parallel, so this mainly affects people running tests by hand.",
    "Output becomes much harder to read with parallel workers, especially when something hangs.",
    "The progress line listing the slowest running tests helps a lot there.",
    "On a four-core machine the full run went from 14 minutes to just under 5.",
    "Please keep an easy way to get the old sequential behaviour for bisecting.",
    "Resource-hungry tests are already opt-in, so they won't cause trouble.",
    "Temporary directories must be per-worker; at least one test assumes otherwise.",
    "Windows is the interesting case, since process start-up is noticeably slower there.",
    "Even on Windows the parallel run was faster for me, though the gain was smaller.",
    "I've opened a pull request with the change and a note for What's New.",
    "Looks good to me. Let's merge it early in the cycle so there's time to shake out problems.",
)
_TEXTUAL_WORKER = (
    "I have a worker thread that polls a serial device and I want to push readings into a "
    "DataTable.",
    "Calling add_row() from the thread works most of the time, but occasionally the app freezes.",
    "You shouldn't touch widgets from another thread; use call_from_thread() to schedule "
    "the update on the event loop.",
    "Alternatively post a custom message from the worker and handle it in the app, which "
    "keeps things decoupled.",
    "I switched to call_from_thread() and the freezes are gone, thanks!",
    "One more question: the table gets slow once it has a few thousand rows.",
    "Consider keeping only the most recent rows, or render lazily if you need everything.",
    "Batching helps too: collect readings for 100 ms and add them in one go.",
    "Is there a way to cancel the worker cleanly when the screen is dismissed?",
    "Workers started with the @work decorator are cancelled when their node is removed.",
    "For a thread worker you need to check is_cancelled in your loop, since threads can't "
    "be interrupted.",
    "That did it. I now check the flag between reads and leave the loop.",
    "Would it make sense to add an example like this to the guide? It comes up often.",
    "Happy to review a docs pull request if you want to write it up.",
    "I'll put something together this weekend.",
    "The docs pull request is up; feedback welcome.",
)

_LOREM_PERSONAL = (
    "Hope the week is treating you well.",
    "I'll be around most of the afternoon if you want to call.",
    "No rush on this, whenever you get a chance.",
    "Let me know if anything is unclear.",
    "I've attached what I have so far.",
    "We can also just talk it through on Friday.",
)


# A short thread: subject, who writes each message in turn ("user" is the demo user),
# where the received messages live, and either a pool of sentences to draw from or a
# script (one complete body per message).
class _Short(Struct, frozen=True):
    subject: str
    seq: tuple[str, ...]
    folder: str  # "INBOX", "Archive", or "split" (first message archived, rest in INBOX)
    turns: tuple[str, ...] = ()  # the gist of each message, in order
    script: tuple[str, ...] = ()  # or each complete body
    extras: tuple[tuple[int, str], ...] = ()  # (index, extra kind) for attachments etc.
    cc: tuple[str, ...] = ()


_SHORTS: tuple[_Short, ...] = (
    _Short(
        "Lunch on Thursday?",
        ("tom", "user", "tom"),
        "INBOX",
        turns=(
            "Are you free for lunch on Thursday? The new ramen place on the corner finally opened.",
            "I'm in! 12:30 works for me. Shall we meet in the lobby?",
            "Perfect, lobby at 12:30. I'll book a table for two; they apparently have a "
            "vegetarian broth too.",
        ),
    ),
    _Short(
        "Code review: session cache refactor",
        ("liam", "user", "liam", "user"),
        "INBOX",
        turns=(
            "I've opened the pull request for the session cache refactor. The main change is "
            "that eviction now happens in a background task instead of on every request. Could"
            " you look at the locking in the cleanup path? I'm not fully convinced it's right.",
            "I left a few comments. The locking looks fine to me, but the metric names are "
            "inconsistent, and it would be good to have a test for concurrent eviction.",
            "Fixed the metric names and added a test for concurrent eviction. Benchmarks show "
            "a small improvement under load, too.",
            "Approved, nice work.",
        ),
    ),
    _Short(
        "Re-scheduling our 1:1",
        ("marcus", "user"),
        "Archive",
        turns=(
            "Something came up on Wednesday; could we move our 1:1 to Thursday morning? We can"
            " use the time to go over the hiring plan.",
            "Thursday at 10 works for me. I'll update the invite.",
        ),
    ),
    _Short(
        "Book club: next pick",
        ("hannah", "sofia", "emma", "hannah"),
        "INBOX",
        turns=(
            "Time to choose the next book! I've put four suggestions in the poll, please vote "
            "by Sunday.",
            "I'd vote for the lighthouse novel, it's short enough for a busy month.",
            "Could we do something non-fiction for a change? Happy to go with the lighthouse "
            "one this time, though.",
            "Lighthouse it is, and non-fiction next time, promise. The next meeting is at "
            "mine; I'll bake something.",
        ),
    ),
    _Short(
        "Flat viewing on Saturday",
        ("rachel", "user", "rachel"),
        "Archive",
        turns=(
            "The agent confirmed the viewing for Saturday at 11. Do you want to come along? A "
            "second pair of eyes would help.",
            "Sure, I'll meet you there. Is it the one near the park?",
            "Yes, third floor, no lift, but the light is lovely. Bring a tape measure; I want "
            "to check whether the sofa fits.",
        ),
    ),
    _Short(
        "Conference talk proposal",
        ("user", "grace"),
        "Archive",
        turns=(
            "I'm thinking of submitting a talk about terminal user interfaces to the autumn "
            "conference. Would you be up for reviewing the abstract before Friday's deadline? "
            "The draft is in our shared folder.",
            "Happy to. The abstract reads well, but the title could be punchier; maybe lead "
            "with the problem rather than the tool. Fingers crossed!",
        ),
    ),
    _Short(
        "Broken link on the docs site",
        ("ben", "user"),
        "INBOX",
        turns=(
            "The link to the installation guide on the front page returns a 404. It looks like"
            " the page moved during last week's restructuring.",
            "Thanks for the heads-up! I've added a redirect; it should work again once the "
            "cache expires.",
        ),
    ),
    _Short(
        "Interview loop for the backend role",
        ("fatima", "marcus", "priya"),
        "INBOX",
        turns=(
            "We have three candidates for the onsite loop next week. Could everyone block two "
            "hours on Tuesday and Wednesday?",
            "Blocked. I can take the system design interview.",
            "I'll do the code review exercise, same as last time. The scorecards are in the "
            "usual folder; let's fill them in within a day and debrief on Thursday morning.",
        ),
    ),
    _Short(
        "Photos from the hike",
        ("zoe", "user", "zoe"),
        "INBOX",
        script=(
            "Hej!\n\nHere are the two photos from the ridge I promised. The second one is the "
            "view towards the lake, just before the fog rolled in.\n\nThe full album is "
            "coming once I've sorted through the rest. 🏔️\n\nKramar,\nZoë",
            "These are great, thank you! The fog one should be framed.\n\nSame route next "
            "month?\n\nDemo",
            "Absolutely. I'll check the weather and send a date. 🥾\n\nZoë",
        ),
        extras=((0, "photos"),),
    ),
    _Short(
        "Встреча в понедельник",
        ("dmitry", "user", "dmitry"),
        "INBOX",
        script=(
            "Привет!\n\nМожем перенести встречу в понедельник на 15:00? Утром у меня "
            "созвон с заказчиком, и я не успею подготовить отчёт.\n\nСпасибо,\nДмитрий",
            "Hi Дмитрий,\n\n15:00 on Monday works for me. I'll move the invite.\n\nDemo",
            "Отлично, до понедельника!\n\nДмитрий",
        ),
    ),
    _Short(
        "打ち合わせの件",
        ("yamada", "user", "yamada"),
        "INBOX",
        script=(
            "お疲れさまです。山田です。\n\n来週の打ち合わせですが、火曜日の午後二時から"
            "でいかがでしょうか。\n資料は前日までにお送りします。\n\n"
            "よろしくお願いいたします。\n山田太郎",
            "Hello Yamada-san,\n\nTuesday at 14:00 JST works for me. Thank you for sending "
            "the documents in advance.\n\nBest regards,\nDemo",
            "ありがとうございます。\nそれでは火曜日によろしくお願いいたします。\n\n山田",
        ),
    ),
    _Short(
        "关于下周的供应商会议",
        ("wang", "user"),
        "INBOX",
        script=(
            "你好，\n\n下周三的供应商会议改到上午十点，地点不变。请提前看一下附件里的"
            "报价单，有问题随时联系我。\n\n谢谢！\n王芳",
            "Hi 王芳,\n\nThanks, 10:00 on Wednesday is fine. I'll go through the quote "
            "before the meeting.\n\nDemo",
        ),
        extras=((0, "quote_csv"),),
    ),
    _Short(
        "Facture de l'hébergement : 49 €",
        ("elodie", "user"),
        "INBOX",
        script=(
            "Bonjour,\n\nVeuillez trouver ci-joint la facture de l'hébergement pour le mois "
            "d'octobre : 49 € TTC. Le prélèvement aura lieu le 5 du mois prochain.\n\n"
            "Nous avons aussi mis à jour le cœur du contrat ; rien ne change pour vous.\n\n"
            "Bien cordialement,",
            "Bonjour Élodie,\n\nMerci, bien reçu.\n\nCordialement,\nDemo",
        ),
        extras=((0, "invoice_pdf"),),
    ),
    _Short(
        "Grüße aus München, Konferenz im Mai",
        ("jose", "user", "jose"),
        "Archive",
        script=(
            "Hallo,\n\nich bin im Mai auf der Konferenz in München. Hättest du Zeit für "
            "einen Kaffee am Donnerstag? Ich würde gern über die Übersetzung der "
            "Dokumentation sprechen.\n\nViele Grüße",
            "Hallo José,\n\nThursday works, let's say 15:00 at the café next to the venue.\n\nDemo",
            "Perfekt, bis Donnerstag! Ich bringe die Liste der offenen Übersetzungen mit.\n\nGrüße",
        ),
    ),
    _Short(
        "“Quick” question about the invoice – €120",
        ("siobhan", "user", "siobhan"),
        "INBOX",
        script=(
            "Hi,\n\nWe received your invoice for €120 but it’s missing the purchase order "
            "number – could you resend it with the PO included?\n\nMany thanks,",
            "Hi Siobhán,\n\nApologies, the PO number is 4500-2231. I'll send a corrected "
            "invoice today.\n\nDemo",
            "Perfect – that’s all we need. Payment will go out in the next run.\n\nKind regards,",
        ),
        extras=((0, "outlook_html"), (2, "outlook_html")),
    ),
    _Short(
        "On-call handover",
        ("daniel", "user"),
        "INBOX",
        turns=(
            "Handing over the pager for the week. Nothing urgent is open; the disk alert on "
            "the reporting box is known and harmless. There's a maintenance window on "
            "Wednesday night for the load balancers.",
            "Thanks, got it. I'll keep an eye on the reporting box.",
        ),
    ),
    _Short(
        "New laptop setup",
        ("anika", "user", "anika"),
        "Archive",
        turns=(
            "Your new laptop is ready for collection at the service desk. Please bring the old"
            " one so we can wipe it. Disk encryption is enabled; you'll set the passphrase on "
            "first login.",
            "Great, I'll come by after lunch.",
            "All done, the old machine is in the recycling queue. Let us know if anything is "
            "missing from the new one.",
        ),
    ),
    _Short(
        "Quarterly numbers",
        ("carlos", "ingrid"),
        "Archive",
        turns=(
            "The quarterly numbers are in: revenue is up eight percent on last quarter, and "
            "churn is flat, which is good news given the price change. Can we get the regional"
            " breakdown before the board meeting?",
            "I'll have the regional breakdown ready by Friday.",
        ),
        cc=("user",),
    ),
    _Short(
        "Bike for sale",
        ("oliver", "user", "oliver"),
        "Archive",
        turns=(
            "I'm selling my old road bike: 56 cm frame, recently serviced. Are you still "
            "looking for one?",
            "I might be! How much are you asking?",
            "Let's say 250, including the lights. You could pick it up on Sunday morning if "
            "that suits you.",
        ),
    ),
    _Short(
        "Board game night",
        ("sofia", "aisha", "tom", "sofia"),
        "INBOX",
        turns=(
            "Board game night at mine on Friday, from 7?",
            "Count me in! I'll bring the new co-op game I got for my birthday.",
            "I'll bring snacks. Someone has to explain the rules this time, though; I was lost"
            " last month.",
            "We'll start with something simple, promise.",
        ),
    ),
    _Short(
        "Garden allotment rota",
        ("ingrid", "user"),
        "Archive",
        turns=(
            "Here's the watering rota for August: you're down for the first and third "
            "weekends. Please remember to lock the shed; the latch is loose.",
            "Thanks, first and third weekends are fine.",
        ),
    ),
    _Short(
        "Recipe you asked for",
        ("mateo", "user"),
        "INBOX",
        script=(
            "Hola,\n\nHere's the tortilla recipe: six eggs, four potatoes, one onion, olive "
            "oil and patience. Slice the potatoes thinly, cook them slowly in plenty of oil "
            "with the onion, drain, mix with the beaten eggs and let it rest for ten "
            "minutes before it goes back in the pan.\n\nThe flip is the hard part. Use a "
            "big plate and don't hesitate.\n\n¡Buen provecho!\nMateo",
            "Thank you! I'll try it this weekend and report back on the flip.\n\nDemo",
        ),
    ),
    _Short(
        "Wedding RSVP",
        ("emma", "user", "emma"),
        "Archive",
        turns=(
            "We're finally sending out the invitations: the wedding is on the 14th of June! "
            "Could you let us know by the end of March whether you can make it?",
            "We'd love to come, thank you! Congratulations again.",
            "Wonderful! Any dietary requirements? We'll save you a seat near the dance floor.",
        ),
    ),
    _Short(
        "Translation review",
        ("kenji", "jose", "kenji"),
        "split",
        turns=(
            "The Japanese translation of the user guide is ready for review. I kept the "
            "technical terms in English where the community uses them that way.",
            "The German version follows the same glossary, so the two should be consistent. I "
            "found two strings that are missing from both.",
            "Thanks, I've added the missing strings. Ready to merge once the screenshots are "
            "updated.",
        ),
    ),
    _Short(
        "Access request for the analytics dashboard",
        ("priya", "user"),
        "INBOX",
        turns=(
            "Could you grant me read access to the analytics dashboard? I need it to check the"
            " adoption numbers for the release notes.",
            "Done, you should have access now. Let me know if the filters don't show up.",
        ),
    ),
    _Short(
        "Draft blog post: five years of the project",
        ("user", "lukas", "user", "lukas"),
        "INBOX",
        turns=(
            "I've drafted a blog post for the project's fifth anniversary. Would you read it "
            "and check that I got the early history right?",
            "It reads really well. The first release was in March, not April, though.",
            "Fixed, thanks. Anything else?",
            "Maybe add a line thanking the translators. Otherwise, ship it!",
        ),
    ),
    _Short(
        "Parking at the new office",
        ("rachel", "hannah"),
        "Archive",
        turns=(
            "The new office has twelve parking spaces, allocated on request, and bike storage "
            "in the basement that opens with your badge.",
            "Is there a charging point for electric cars?",
        ),
        cc=("user",),
    ),
    _Short(
        "Running club this Sunday",
        ("aisha", "user", "aisha"),
        "INBOX",
        turns=(
            "Running club is doing the river loop this Sunday, about ten kilometres. We meet "
            "at the bridge at 8.",
            "I'll be there, might be slow though.",
            "Nobody gets left behind; we regroup at the halfway point.",
        ),
    ),
    _Short(
        "Server room key",
        ("ben", "user", "ben", "user"),
        "split",
        turns=(
            "Do you still have the spare key to the server room? Facilities want all spare "
            "keys returned before the locks are changed.",
            "I think it's in my desk drawer, I'll check tomorrow.",
            "Any luck? The locksmith comes on Monday.",
            "Found it, and dropped it at reception just now.",
        ),
    ),
    _Short(
        "Referral: senior designer",
        ("grace", "user", "grace"),
        "Archive",
        turns=(
            "A former colleague of mine is looking for a senior design role. Would you be open"
            " to a quick chat with her?",
            "Sure, send her my way.",
            "Thanks! I've introduced you both; she'll be in touch.",
        ),
    ),
    _Short(
        "Your talk at the meetup",
        ("kenji", "user"),
        "Archive",
        turns=(
            "Thanks for speaking at the meetup last night; the demo went down really well. "
            "Could you share the slides so we can link them from the event page?",
            "Thanks for having me! The slides are on my website now.",
        ),
    ),
    _Short(
        "Spare tickets for Friday",
        ("hannah", "user", "hannah"),
        "INBOX",
        turns=(
            "I have two spare tickets for the jazz concert on Friday. Would you like them? "
            "Free, I just don't want them to go to waste.",
            "Yes please, that's very kind!",
            "I'll forward you the e-tickets. Enjoy!",
        ),
    ),
    _Short(
        "Release checklist",
        ("priya", "marcus", "priya"),
        "Archive",
        turns=(
            "I've updated the release checklist with the lessons from last time. The main "
            "addition is a step to verify the signatures of the published packages.",
            "Looks good. Can we also add a reminder to update the status page?",
            "Added; the new version is attached.",
        ),
        extras=((2, "checklist_txt"),),
        cc=("user",),
    ),
    _Short(
        "Weekend plans?",
        ("zoe", "user", "zoe"),
        "INBOX",
        turns=(
            "Any plans for the weekend? The weather is supposed to be glorious, and we're "
            "thinking of taking the train to the coast on Saturday.",
            "That sounds lovely, count me in if there's room.",
            "Plenty of room. The train leaves at 9:12; I'll get the tickets.",
        ),
    ),
    _Short(
        "Feedback on the onboarding doc",
        ("hannah", "emma", "hannah"),
        "INBOX",
        turns=(
            "I've rewritten the onboarding document for new engineers; comments welcome. "
            "Setting up the development environment is now a single script.",
            "Looks great. Could we add who to ask for access to each system?",
            "Good idea, I've added a table of systems and owners.",
        ),
        cc=("user",),
    ),
)

# Mailing list threads: the same shape, with the list as the audience.
_LIST_SHORTS: dict[str, tuple[_Short, ...]] = {
    "Lists/python-dev": (
        _Short(
            "Windows build failing on main since Tuesday",
            ("victor", "samir", "victor"),
            "",
            turns=(
                "The Windows buildbots have been red since Tuesday's tokenizer changes. It "
                "looks like a missing include that MSVC is stricter about.",
                "That's mine, sorry. I'll put up a fix in the next hour.",
                "Confirmed fixed by the follow-up commit; the buildbots are green again. "
                "Thanks for the quick turnaround.",
            ),
        ),
        _Short(
            "Deprecation timeline for the legacy codec aliases",
            ("petra", "raymond"),
            "",
            turns=(
                "I'd like to deprecate the undocumented codec aliases in the next release and "
                "remove them two releases later. A search of the most popular packages found "
                "only three users, all easy to fix.",
                "Two releases sounds fine to me. Please make sure the warning names the "
                "replacement codec.",
            ),
        ),
        _Short(
            "Core sprint dates",
            ("nora", "serhii", "yuki"),
            "",
            turns=(
                "We have a venue for the core sprint: the second week of September. Please "
                "fill in the availability form by the end of the month; travel grants are "
                "available, just ask.",
                "I can make it, but only from Tuesday.",
                "Same here. I'll book flights once the dates are final.",
            ),
        ),
    ),
    "Lists/textual-users": (
        _Short(
            "How do I scroll a DataTable to the selected row?",
            ("lena", "arjun", "lena"),
            "",
            turns=(
                "After updating the rows, the cursor is on row 300 but the view stays at the "
                "top (screenshot attached). Is there a way to bring the cursor row into view?",
                "move_cursor() scrolls by default; if you set the cursor coordinate directly "
                "you need to call scroll_to_row() yourself.",
                "That was it, thank you!",
            ),
            extras=((0, "screenshot"),),
        ),
        _Short(
            "Colours look washed out inside tmux",
            ("felix", "user", "marta", "felix"),
            "",
            script=(
                "Hi all,\n\nMy app looks fine in the plain terminal, but inside tmux the "
                "colours are dull, as if it only had 256 colours to work with.\n\nAny "
                "idea what I'm missing?\n\nFelix",
                "Hi Felix,\n\ntmux needs to be told that the outer terminal supports true "
                'colour. In ~/.tmux.conf:\n\n    set -g default-terminal "tmux-256color"\n'
                '    set -as terminal-features ",xterm-256color:RGB"\n\nThen restart the '
                "tmux server (not just the session), and check that COLORTERM=truecolor "
                "reaches the app.\n\nDemo",
                "Also worth checking: if you connect over SSH, COLORTERM is often not "
                "forwarded. Adding it to SendEnv/AcceptEnv fixed it for me.\n\nMarta",
                "Restarting the tmux server did it. Thanks both!\n\nFelix",
            ),
        ),
        _Short(
            "[PATCH] Fix scroll jump when resizing",
            ("samir", "lena"),
            "",
            turns=(
                "Attached is a small patch that keeps the scroll position stable when the "
                "terminal is resized. The scroll offset was recomputed from the old virtual "
                "size; it now uses the new one.",
                "Thanks for digging into this! Could you open a pull request instead? Patches "
                "on the list are easy to lose.",
            ),
            extras=((0, "patch"),),
        ),
        _Short(
            "Testing with Pilot: press vs click",
            ("chloe", "arjun", "chloe"),
            "",
            turns=(
                "In my tests, pilot.click() on a button works but pilot.press('enter') does "
                "nothing. Is the button supposed to have focus at that point?",
                "press() sends keys to the focused widget, so focus the button first or use "
                "click().",
                "Right, the input had focus. Works now, merci !",
            ),
        ),
        _Short(
            "CSS grid with fractional rows",
            ("yuki", "nora"),
            "",
            turns=(
                "Can a grid have rows of 1fr and 2fr like in web CSS?",
                "Yes: grid-rows: 1fr 2fr; works the same way. Remember to set grid-size as "
                "well, or the extra rows fall back to auto.",
            ),
        ),
        _Short(
            "Key bindings not firing in a modal screen",
            ("raymond", "felix", "raymond"),
            "",
            turns=(
                "My ModalScreen defines BINDINGS but none of them fire, while the app-level "
                "bindings still work. What am I missing?",
                "Check whether a focused child widget consumes the key first.",
                "An Input was swallowing the key. Moving the binding to the screen with "
                "priority=True fixed it. Thanks!",
            ),
        ),
    ),
}

_DOCS = (
    "The docs have grown organically and it shows: three different pages explain "
    "configuration, each slightly wrong.",
    "I'd propose splitting everything into tutorials, how-to guides, reference and background.",
    "The reference section could be generated from the config schema, so it never drifts.",
    "Screenshots are the most fragile part; can we render them from the test suite?",
    "I'll take the tutorials if someone else owns the reference pages.",
    "Search on the current site is poor; the new theme has a much better index.",
    "Let's keep the old URLs working with redirects, people link to them from everywhere.",
    "The getting-started page should fit on one screen, no scrolling.",
    "We need a style guide first, otherwise every page will use a different voice.",
    "I drafted a short style guide: second person, present tense, no jokes in reference pages.",
    "Versioned docs would be nice, but let's not block the overhaul on that.",
    "The translators asked for a freeze period before each release so they can catch up.",
    "First batch of rewritten pages is on the preview site.",
    "The new navigation is much clearer, although the sidebar is a bit long on small screens.",
    "I fixed the sidebar on narrow screens and added a collapse toggle.",
    "Can we aim to switch the live site over at the end of the month?",
)
_OFFICE = (
    "The lease on the current office ends in March, and facilities have found two options.",
    "Option A is closer to the station; option B is bigger and has a proper kitchen.",
    "Most people in the survey prefer being near the station.",
    "The movers need a final inventory of equipment by the end of next month.",
    "Please label your monitors and docking stations with your name before the move.",
    "The network cabling at the new place will be done the week before we move.",
    "We will have to work from home for two days during the move itself.",
    "Meeting rooms will be bookable through the same calendar system as now.",
    "The quiet room was the most requested feature; it is in the floor plan.",
    "Bike storage at the new office is limited, so please register if you need a space.",
    "The old furniture will be donated to a local school.",
    "Keys and badges for the new office will be handed out on the first day.",
    "The move went smoothly; only one box of cables is still missing.",
    "The missing box turned up in the storage room, mystery solved.",
    "Thanks everyone for your patience during the move.",
)

_LIST_SINGLES: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "Lists/python-dev": (
        (
            "raymond",
            "[RELEASE] Python 3.15.0 alpha 3 is now available",
            (
                "The third alpha of the next feature release is out. Alpha releases are "
                "meant for testing new features and bug fixes; please don't use them in "
                "production.",
                "Highlights of this alpha include a faster startup for small scripts, new "
                "warnings for ambiguous escape sequences in bytes literals, and many "
                "smaller improvements to the standard library.",
                "Please report anything that looks wrong on the issue tracker. Thanks to "
                "all the volunteers who make these releases possible.",
            ),
        ),
        (
            "nora",
            "Buildbot maintenance window this weekend",
            (
                "The buildbot master will be down for maintenance on Saturday between 08:00 "
                "and 12:00 UTC while we upgrade the host.",
                "Workers will reconnect automatically afterwards. If yours does not, please "
                "let me know off-list.",
            ),
        ),
        (
            "petra",
            "Language summit: call for proposals",
            (
                "The call for proposals for this year's language summit is open until the "
                "end of the month.",
                "Talks should be short, about ten minutes, and aim to start a discussion "
                "rather than present a finished design.",
                "Remote participation will be possible for the whole day.",
            ),
        ),
    ),
    "Lists/textual-users": (
        (
            "arjun",
            "[ANN] textual-charts 0.4 released",
            (
                "Version 0.4 of textual-charts adds stacked bar charts and a braille line "
                "renderer for high-resolution plots in small terminals.",
                "Thanks to everyone who filed issues after the last release.",
            ),
        ),
        (
            "nora",
            "Meetup: Textual show and tell",
            (
                "We're running an online show and tell next month: five minutes each, "
                "show us what you've built with Textual.",
                "Reply to me off-list if you'd like a slot.",
            ),
        ),
        (
            "marta",
            "Survey: how do you ship your Textual apps?",
            (
                "I'm writing a guide on packaging and would love to know how people "
                "distribute their apps: pipx, containers, zipapps, something else?",
                "A one-line answer is plenty. I'll post a summary to the list.",
            ),
        ),
        (
            "samir",
            "Mouse support over mosh?",
            (
                "Mouse clicks work over plain SSH but not over mosh. Is that a known "
                "limitation, or am I missing a setting?",
            ),
        ),
        (
            "chloe",
            "Best way to show a progress bar in the footer?",
            (
                "I'd like a thin progress bar docked at the bottom while a long job runs, "
                "above the key bindings footer. Is there a recommended pattern?",
            ),
        ),
        (
            "felix",
            "Rendering a Markdown document with clickable links",
            (
                "The Markdown widget shows links, but clicking them does nothing in my app. "
                "Do I need to handle an event for that?",
            ),
        ),
        (
            "yuki",
            "Unicode width problems with emoji in a ListView",
            (
                "Some emoji make the rows of my ListView misaligned by one column. Is this "
                "the terminal's fault or something I can fix in the app?",
            ),
        ),
        (
            "lena",
            "Dark and light theme switching at runtime",
            (
                "Is it possible to follow the terminal's background colour and pick the "
                "theme automatically? At the moment I ask users to set an option.",
            ),
        ),
    ),
}

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --------------------------------------------------------------------------- binary blobs


@functools.lru_cache(maxsize=16)
def _png(width: int, height: int, tint: tuple[int, int, int]) -> bytes:
    """A small valid RGB PNG: a gradient in the given tint."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            rows += bytes(
                (
                    (tint[0] * x // max(width - 1, 1)) & 0xFF,
                    (tint[1] * y // max(height - 1, 1)) & 0xFF,
                    tint[2],
                )
            )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def _pdf(lines: Sequence[str]) -> bytes:
    """A small, valid one-page PDF showing `lines` (ASCII) in Helvetica."""
    ops = ["BT", "/F1 12 Tf", "16 TL", "72 770 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


# --------------------------------------------------------------------------- helpers


def _wrap(text: str, width: int = 72) -> str:
    """Greedy word wrap (textwrap.fill without its cost, which adds up here)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(lines)


def _fit(text: str, charset: str) -> str:
    """`charset` if it can carry `text`, else UTF-8 (what a real client falls back to)."""
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        return "utf-8"
    return charset


def _date_header(ts: int, tz_minutes: int) -> str:
    return format_datetime(datetime.fromtimestamp(ts, timezone(timedelta(minutes=tz_minutes))))


_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_CHARSETS = frozenset({"iso-8859-1", "iso-8859-15", "windows-1252"})


def _encoded_word(data: bytes, charset: str, q: bool) -> str:
    if q:
        payload = "".join(
            chr(b) if b in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in data
        )
        return f"=?{charset}?Q?{payload}?="
    return f"=?{charset}?B?{base64.b64encode(data).decode('ascii')}?="


def _encode_words(text: str, charset: str) -> str:
    """RFC 2047 encoded-words for `text`, each at most 75 characters.

    Written out here rather than left to `email.header`, which labels GB2312 text with
    Python's codec name (``eucgb2312_cn``) instead of the MIME charset name.  Each word
    encodes whole characters, so stateful charsets (ISO-2022-JP) reset in every word.
    """
    charset = _fit(text, charset)
    q = charset in _Q_CHARSETS or (
        charset == "utf-8" and sum(not c.isascii() for c in text) * 4 < len(text)
    )
    words: list[str] = []
    chunk = ""
    for char in text:
        candidate = _encoded_word((chunk + char).encode(charset), charset, q)
        if chunk and len(candidate) > 75:
            words.append(_encoded_word(chunk.encode(charset), charset, q))
            chunk = char
        else:
            chunk += char
    words.append(_encoded_word(chunk.encode(charset), charset, q))
    return " ".join(words)


def _addr(person: _Person | str, charset: str = "utf-8") -> str:
    if isinstance(person, str):
        return person
    if person.name.isascii():
        return formataddr((person.name, person.email))
    return f"{_encode_words(person.name, charset)} <{person.email}>"


def _subject(text: str, charset: str) -> str:
    return text if text.isascii() else _encode_words(text, charset)


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _html_from_text(text: str, charset: str) -> str:
    """The HTML half of a multipart/alternative, the way a desktop client writes it."""
    paras = []
    for para in text.strip("\n").split("\n\n"):
        if para.startswith("-- \n"):
            break
        paras.append("<p>" + "<br>\n".join(_html_escape(x) for x in para.split("\n")) + "</p>")
    return (
        "<html><head>\n"
        f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">\n'
        "</head>\n"
        '<body style="font-family: Calibri, Arial, sans-serif; font-size: 11pt">\n'
        + "\n".join(paras)
        + "\n</body></html>\n"
    )


class _Attachment(Struct, frozen=True):
    filename: str
    ctype: str
    data: bytes | str | Message
    content_id: str = ""  # set for inline parts of a multipart/related


class _Entry(Struct):
    folder: str
    raw: bytes
    date: int
    msgid: str
    flags: set[str] = field(default_factory=set)
    fixed: bool = False  # its flags are part of the fixture; leave them alone


class _Post(Struct, frozen=True):
    msgid: str
    refs: tuple[str, ...]
    subject: str
    sender: _Person
    date: int
    main: str  # the author's own text
    quotable: str  # what a reply quotes: `main` and one level of its own quote
    entry: _Entry


class _MailingList(Struct, frozen=True):
    folder: str
    address: str
    list_id: str
    prefix: str
    footer: str
    headers: tuple[tuple[str, str], ...]


def _mailing_list(folder: str, name: str, local: str, host: str, prefix: str) -> _MailingList:
    list_id = f"{local}.{host}"
    archive = f"https://{host}/archives/list/{list_id}/"
    footer = (
        "_______________________________________________\n"
        f"{name} mailing list -- {local}@{host}\n"
        f"To unsubscribe send an email to {local}-leave@{host}\n"
        f"Archive: {archive}"
    )
    headers = (
        ("List-Id", f"{name} <{list_id}>"),
        ("List-Post", f"<mailto:{local}@{host}>"),
        ("List-Help", f"<mailto:{local}-request@{host}?subject=help>"),
        ("List-Subscribe", f"<mailto:{local}-join@{host}>"),
        ("List-Unsubscribe", f"<mailto:{local}-leave@{host}>"),
        ("List-Archive", f"<{archive}>"),
        ("Precedence", "list"),
    )
    return _MailingList(folder, f"{local}@{host}", list_id, prefix, footer, headers)


_PYDEV = _mailing_list("Lists/python-dev", "Python-Dev", "python-dev", "lists.example.org", "")
_TEXTUAL = _mailing_list(
    "Lists/textual-users",
    "textual-users",
    "textual-users",
    "lists.example.net",
    "[textual-users]",
)


# --------------------------------------------------------------------------- the mailbox


class _Mailbox:
    def __init__(self, seed: int, now: int) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.entries: list[_Entry] = []
        self.firsts: dict[str, _Post] = {}  # short threads' first messages, by subject
        self._serial = 0

    # ---- identifiers and dates

    def msgid(self, domain: str) -> str:
        self._serial += 1
        return f"<{self.rng.getrandbits(48):012x}.{self._serial:04d}@{domain}>"

    def boundary(self) -> str:
        n = self.rng.getrandbits(60)
        style = self.rng.randrange(4)
        if style == 0:
            return f"==============={n:019d}=="
        if style == 1:
            return f"Apple-Mail=_{n:015X}"
        if style == 2:
            return f"----=_Part_{n % 99991}_{n >> 30}.{self._serial}"
        return f"_000_{n:015x}_"

    def dates(self, n: int, oldest: float, newest: float, mean_gap_min: float) -> list[int]:
        """`n` ascending times, all between `oldest` and `newest` days before now."""
        gaps = [
            300 + int(min(self.rng.expovariate(1 / mean_gap_min), mean_gap_min * 5) * 60)
            for _ in range(n - 1)
        ]
        earliest = self.now - int(min(oldest, _SPAN_DAYS) * DAY)
        latest = self.now - int(newest * DAY) - 600
        start_hi = max(earliest, latest - sum(gaps))
        out = [self.rng.randint(earliest, start_hi)]
        for gap in gaps:
            out.append(out[-1] + gap)
        overshoot = out[-1] - (self.now - 600)
        if overshoot > 0:
            out = [t - overshoot for t in out]
        return out

    def when(self, oldest: float, newest: float) -> int:
        return self.dates(1, oldest, newest, 60)[0]

    # ---- building messages

    def text_part(self, text: str, charset: str, subtype: str = "plain") -> MIMEText:
        name = _fit(text, charset)
        cs = Charset(name)
        if name == "utf-8":
            if text.isascii():
                cs.body_encoding = None  # 7bit
            elif self.rng.random() < 0.7:
                cs.body_encoding = QP
        part = MIMEText(text, subtype, cs)  # type: ignore[arg-type]
        del part["MIME-Version"]
        return part

    def multipart(self, subtype: str, parts: Sequence[Message]) -> MIMEMultipart:
        container = MIMEMultipart(subtype, boundary=self.boundary())
        del container["MIME-Version"]
        for part in parts:
            container.attach(part)
        return container

    def attachment_part(self, att: _Attachment) -> Message:
        maintype, subtype = att.ctype.split("/")
        part: Message
        if att.ctype == "message/rfc822":
            assert isinstance(att.data, Message)
            part = MIMEMessage(att.data)
        elif maintype == "text":
            assert isinstance(att.data, str)
            part = self.text_part(att.data, "utf-8", subtype)
        elif maintype == "image":
            assert isinstance(att.data, bytes)
            part = MIMEImage(att.data, subtype)
        else:
            assert isinstance(att.data, bytes)
            part = MIMEApplication(att.data, subtype)
        del part["MIME-Version"]
        if att.filename:
            charset = None if att.filename.isascii() else "utf-8"
            part.set_param("name", att.filename, charset=charset)
            disposition = "inline" if att.content_id else "attachment"
            value: str | tuple[str, str, str] = (
                att.filename if charset is None else ("utf-8", "", att.filename)
            )
            part.add_header("Content-Disposition", disposition, filename=value)
        if att.content_id:
            part["Content-ID"] = f"<{att.content_id}>"
        return part

    def received(self, sender: _Person, date: int) -> str:
        net = self.rng.choice(("192.0.2", "198.51.100", "203.0.113"))
        ip = f"{net}.{self.rng.randrange(2, 250)}"
        host = f"mail.{sender.domain}"
        queue_id = f"{self.rng.getrandbits(40):010X}"
        stamp = _date_header(date + self.rng.randrange(2, 90), 0)
        return (
            f"from {host} ({host} [{ip}]) by mx.demo.example (Postfix) with ESMTPS "
            f"id {queue_id} for <{DEMO_EMAIL}>; {stamp}"
        )

    def compose(
        self,
        *,
        sender: _Person,
        to: Sequence[_Person | str],
        subject: str,
        date: int,
        msgid: str,
        text: str,
        cc: Sequence[_Person | str] = (),
        html: str | None = None,
        html_only: bool = False,
        in_reply_to: str | None = None,
        references: Sequence[str] = (),
        attachments: Sequence[_Attachment] = (),
        inline: Sequence[_Attachment] = (),
        headers: Sequence[tuple[str, str]] = (),
        from_header: str | None = None,
        body_part: Message | None = None,
    ) -> Message:
        cs = sender.charset
        body: Message
        if body_part is not None:
            body = body_part
        elif html_only:
            body = self.text_part(html or text, cs, "html")
        else:
            body = self.text_part(text, cs)
            if html is not None:
                html_part: Message = self.text_part(html, cs, "html")
                if inline:
                    html_part = self.multipart(
                        "related", [html_part, *(self.attachment_part(a) for a in inline)]
                    )
                body = self.multipart("alternative", [body, html_part])
        if attachments:
            body = self.multipart("mixed", [body, *(self.attachment_part(a) for a in attachments)])

        hdrs: list[tuple[str, str]] = []
        if sender.email != DEMO_EMAIL:
            hdrs.append(("Return-Path", f"<{sender.email}>"))
            hdrs.append(("Received", self.received(sender, date)))
        hdrs.append(("Date", _date_header(date, sender.tz)))
        hdrs.append(("From", from_header or _addr(sender, cs)))
        hdrs.append(("To", ", ".join(_addr(p, cs) for p in to)))
        if cc:
            hdrs.append(("Cc", ", ".join(_addr(p, cs) for p in cc)))
        hdrs.append(("Subject", _subject(subject, cs)))
        hdrs.append(("Message-ID", msgid))
        if in_reply_to:
            hdrs.append(("In-Reply-To", in_reply_to))
        if references:
            hdrs.append(("References", " ".join(references)))
        hdrs.extend(headers)
        if sender.mailer:
            name, value = sender.mailer.split(": ", 1)
            hdrs.append((name, value))

        content = list(body.items())
        for name in {k for k, _ in content}:
            del body[name]
        for name, value in hdrs:
            body[name] = value
        body["MIME-Version"] = "1.0"
        for name, value in content:
            body[name] = value
        return body

    def add(self, folder: str, msg: Message | bytes, date: int, msgid: str) -> _Entry:
        raw = msg if isinstance(msg, bytes) else msg.as_bytes(policy=_POLICY)
        entry = _Entry(folder, raw, date, msgid)
        self.entries.append(entry)
        return entry

    # ---- bodies

    def drawer(self, pool: Sequence[str]) -> Callable[[int], list[str]]:
        """Draws sentences from a shuffled `pool`, cycling once it is used up."""
        order = list(pool)
        self.rng.shuffle(order)
        state = {"pos": 0}

        def draw(k: int) -> list[str]:
            out = []
            for _ in range(k):
                out.append(order[state["pos"] % len(order)])
                state["pos"] += 1
            return out

        return draw

    def paragraphs(self, draw: Callable[[int], list[str]], reply: bool, most: int) -> list[str]:
        paras = []
        for j in range(self.rng.randint(1, most)):
            sentences = draw(self.rng.randint(1, 3))
            if j == 0 and reply and self.rng.random() < 0.5:
                sentences.insert(0, self.rng.choice(_OPENERS))
            paras.append(" ".join(sentences))
        closer = self.rng.choice(_CLOSERS)
        if closer:
            paras.append(closer)
        return paras

    def quote(self, parent: _Post, author: _Person, source: str) -> str:
        when = datetime.fromtimestamp(parent.date, timezone(timedelta(minutes=author.tz)))
        head = (
            f"On {_DAYS[when.weekday()]}, {when.day} {_MONTHS[when.month - 1]} {when.year} "
            f"at {when:%H:%M}, {parent.sender.name} <{parent.sender.email}> wrote:"
        )
        lines = source.splitlines()
        if len(lines) > 30:
            lines = [*lines[:30], "[...]"]
        quoted = [">" + x if x.startswith(">") else ("> " + x if x else ">") for x in lines]
        return head + "\n" + "\n".join(quoted)

    def body(
        self,
        author: _Person,
        *,
        paras: Sequence[str] = (),
        script: str | None = None,
        greet: str | None = None,
        parent: _Post | None = None,
        footer: str = "",
    ) -> tuple[str, str, str]:
        """The full body, the author's own text, and what a reply to it would quote.

        Replies quote their parent with the parent's own quote inside it, never deeper:
        two levels, the way people trim long threads.
        """
        if script is not None:
            main = script
        else:
            parts = []
            if greet is not None:
                greeting = self.rng.choice(_GREETINGS)
                if greet == "all" and "{n}" in greeting and not greeting.startswith("H"):
                    greeting = "Hi {n},"
                if greeting:
                    parts.append(greeting.format(n=greet))
            parts.extend(_wrap(p) for p in paras)
            parts.append(self.rng.choice(_SIGNOFFS).format(n=author.first))
            main = "\n\n".join(parts)
        text = quotable = main
        if parent is not None:

            def around(quoted: str) -> str:
                return f"{main}\n\n{quoted}" if author.top_post else f"{quoted}\n\n{main}"

            text = around(self.quote(parent, author, parent.quotable))
            quotable = around(self.quote(parent, author, parent.main))
        if author.signature:
            text += "\n\n-- \n" + author.signature
        if footer:
            text += "\n" + footer
        return text + "\n", main, quotable

    # ---- threads

    def thread(
        self,
        subject: str,
        authors: Sequence[_Person],
        dates: Sequence[int],
        folder_for: Callable[[int], str],
        *,
        pool: Sequence[str] = (),
        turns: Sequence[str] = (),
        scripts: Sequence[str] = (),
        cc: Sequence[_Person] = (),
        lst: _MailingList | None = None,
        extras: dict[int, str] | None = None,
        branchy: bool = False,
        most: int = 3,
    ) -> list[_Post]:
        extras = extras or {}
        draw = self.drawer(pool) if pool else None
        people: list[_Person] = []
        for p in (*authors, *cc, _USER):
            if p not in people:
                people.append(p)
        posts: list[_Post] = []
        for i, author in enumerate(authors):
            parent: _Post | None = None
            if posts:
                parent = posts[-1]
                if branchy and len(posts) > 3 and self.rng.random() < 0.15:
                    parent = posts[-self.rng.randint(2, 3)]
            shown = subject if parent is None else f"Re: {subject}"
            if lst is not None and lst.prefix:
                shown = (
                    f"{lst.prefix} {subject}" if parent is None else f"Re: {lst.prefix} {subject}"
                )
            # recipients
            to: list[_Person | str]
            cc_list: list[_Person | str] = []
            if lst is not None:
                to = [lst.address]
                if parent is not None and parent.sender != author and self.rng.random() < 0.4:
                    cc_list = [parent.sender]
            else:
                others = [p for p in people if p != author]
                if parent is not None and parent.sender != author:
                    to = [parent.sender]
                else:
                    to = [p for p in others if p not in cc] or others[:1]
                cc_list = [p for p in others if p not in to]
            greet = None
            if lst is None:
                greet = to[0].first if len(others) == 1 and isinstance(to[0], _Person) else "all"
            # body
            if scripts:
                text, main, quotable = self.body(
                    author, script=scripts[i], parent=parent, footer=lst.footer if lst else ""
                )
            else:
                if turns:
                    paras = [turns[i]]
                else:
                    assert draw is not None
                    paras = self.paragraphs(draw, parent is not None, most)
                text, main, quotable = self.body(
                    author,
                    paras=paras,
                    greet=greet,
                    parent=parent,
                    footer=lst.footer if lst else "",
                )
            attachments, html = self.extra(extras.get(i, ""), text, author)
            msgid = self.msgid(author.domain)
            refs = (*parent.refs, parent.msgid) if parent else ()
            msg = self.compose(
                sender=author,
                to=to,
                cc=cc_list,
                subject=shown,
                date=dates[i],
                msgid=msgid,
                text=text,
                html=html,
                in_reply_to=parent.msgid if parent else None,
                references=refs,
                attachments=attachments,
                headers=lst.headers if lst else (),
            )
            if lst is not None:
                folder = lst.folder
            elif author == _USER:
                folder = "Sent"
            else:
                folder = folder_for(i)
            entry = self.add(folder, msg, dates[i], msgid)
            if author == _USER and parent is not None and parent.sender != _USER:
                parent.entry.flags.add("R")
            posts.append(_Post(msgid, refs, shown, author, dates[i], main, quotable, entry))
        return posts

    def extra(self, kind: str, text: str, author: _Person) -> tuple[list[_Attachment], str | None]:
        """Attachments and an HTML alternative, by name, for thread messages."""
        if kind == "photos":
            return [
                _Attachment("IMG_2041.png", "image/png", _png(48, 32, (200, 160, 90))),
                _Attachment("IMG_2042.png", "image/png", _png(64, 40, (90, 170, 230))),
            ], None
        if kind == "quote_csv":
            csv = "项目,数量,单价 (元),合计\n服务器机柜,2,8500,17000\n网络交换机,4,3200,12800\n"
            return [_Attachment("报价单.csv", "text/csv", csv)], None
        if kind == "invoice_pdf":
            pdf = _pdf(["Lefevre Hebergement", "Facture 2025-10-0042", "Total TTC: 49,00 EUR"])
            return [_Attachment("facture-2025-10.pdf", "application/pdf", pdf)], None
        if kind == "outlook_html":
            return [], _html_from_text(text, _fit(text, author.charset))
        if kind == "checklist_txt":
            checklist = "\n".join(
                f"[ ] {step}"
                for step in (
                    "Freeze the release branch",
                    "Run the full regression suite",
                    "Update the changelog and upgrade guide",
                    "Build and sign the packages",
                    "Verify the signatures of the published packages",
                    "Update the status page",
                    "Announce on the mailing list",
                )
            )
            return [_Attachment("release-checklist.txt", "text/plain", checklist + "\n")], None
        if kind == "build_times":
            rows = ["pipeline,old_farm_minutes,new_farm_minutes"]
            for name in ("lint", "unit", "integration", "package", "docs"):
                old = self.rng.randint(4, 40)
                rows.append(f"{name},{old},{max(1, old * self.rng.randint(50, 70) // 100)}")
            return [_Attachment("build-times.csv", "text/csv", "\n".join(rows) + "\n")], None
        if kind == "screenshot":
            return [_Attachment("screenshot.png", "image/png", _png(40, 24, (40, 220, 120)))], None
        if kind == "patch":
            patch = (
                "--- a/src/textual/scroll_view.py\n"
                "+++ b/src/textual/scroll_view.py\n"
                "@@ -212,7 +212,7 @@ class ScrollView(ScrollableContainer):\n"
                "     def _on_resize(self, event: events.Resize) -> None:\n"
                "-        self._refresh_scroll(self.virtual_size)\n"
                "+        self._refresh_scroll(event.virtual_size)\n"
                "         super()._on_resize(event)\n"
            )
            return [_Attachment("fix-scroll-jump.patch", "text/x-diff", patch)], None
        return [], None

    # ---- the mailbox, section by section

    def long_threads(self) -> None:
        p = _PEOPLE
        plans: list[
            tuple[
                str,
                tuple[_Person, ...],
                int,
                set[int],
                tuple[float, float],
                float,
                Callable[[int], str],
                tuple[str, ...],
            ]
        ] = [
            (
                "Q3 release planning",
                (p["priya"], p["marcus"], p["hannah"], p["tom"]),
                24,
                {5, 12, 18, 22},
                (330, 1),
                60 * 24 * 1.5,
                lambda i: "Archive" if i < 10 else "INBOX",
                _RELEASE,
            ),
            (
                "Migrating CI to the new build farm",
                (p["oliver"], p["daniel"], p["liam"]),
                18,
                {8},
                (520, 200),
                60 * 16,
                lambda i: "Archive",
                _CI,
            ),
            (
                "Team offsite in Lisbon: logistics",
                (p["sofia"], p["aisha"], p["emma"], p["carlos"], p["jose"]),
                20,
                {11},
                (80, 3),
                60 * 20,
                lambda i: "INBOX",
                _OFFSITE,
            ),
            (
                "Planning the docs overhaul",
                (p["lukas"], p["grace"], p["kenji"]),
                18,
                {12},
                (150, 10),
                60 * 30,
                lambda i: "INBOX",
                _DOCS,
            ),
            (
                "Office move in March",
                (p["rachel"], p["fatima"], p["ben"], p["ingrid"]),
                15,
                {9},
                (470, 300),
                60 * 40,
                lambda i: "Archive",
                _OFFICE,
            ),
        ]
        for subject, cast, n, mine, window, gap, folder_for, pool in plans:
            authors: list[_Person] = [cast[0]]
            for i in range(1, n):
                if i in mine:
                    authors.append(_USER)
                else:
                    choices = [c for c in cast if c != authors[-1]]
                    authors.append(self.rng.choice(choices))
            dates = self.dates(n, window[0], window[1], gap)
            extras = {9: "checklist_txt"} if subject.startswith("Q3") else {}
            if subject.startswith("Migrating"):
                extras = {6: "build_times"}
            self.thread(subject, authors, dates, folder_for, pool=pool, branchy=True, extras=extras)

    def short_threads(self) -> None:
        for spec in _SHORTS:
            authors = [_USER if k == "user" else _PEOPLE[k] for k in spec.seq]
            cc = [_USER if k == "user" else _PEOPLE[k] for k in spec.cc]
            if spec.folder == "INBOX":
                dates = self.dates(len(authors), 160, 0, 60 * 8)
            elif spec.folder == "Archive":
                dates = self.dates(len(authors), 530, 60, 60 * 12)
            else:
                dates = self.dates(len(authors), 260, 5, 60 * 24 * 30)
            folder = spec.folder

            def folder_for(i: int, folder: str = folder) -> str:
                if folder == "split":
                    return "Archive" if i == 0 else "INBOX"
                return folder

            self.firsts[spec.subject] = self.thread(
                spec.subject,
                authors,
                dates,
                folder_for,
                turns=spec.turns,
                scripts=spec.script,
                cc=cc,
                extras=dict(spec.extras),
                most=2,
            )[0]

    def list_threads(self) -> None:
        lp = _LIST_PEOPLE
        longs = [
            (
                _PYDEV,
                "PEP 9017: Sealed module namespaces",
                18,
                _PYDEV_SEAL,
                ("victor", "petra", "raymond", "yuki", "serhii", "nora", "samir"),
            ),
            (
                _PYDEV,
                "Making the test suite parallel by default",
                15,
                _PYDEV_PARALLEL,
                ("samir", "nora", "victor", "felix", "petra"),
            ),
            (
                _TEXTUAL,
                "Updating the UI from a background worker",
                16,
                _TEXTUAL_WORKER,
                ("marta", "arjun", "lena", "chloe"),
            ),
        ]
        for lst, subject, n, pool, cast_keys in longs:
            cast = [lp[k] for k in cast_keys]
            authors = [cast[0]]
            for _ in range(1, n):
                authors.append(self.rng.choice([c for c in cast if c != authors[-1]]))
            dates = self.dates(n, 400, 20, 60 * 10)
            self.thread(subject, authors, dates, lambda i: "", pool=pool, lst=lst, branchy=True)
        for folder, shorts in _LIST_SHORTS.items():
            lst = _PYDEV if folder == _PYDEV.folder else _TEXTUAL
            for spec in shorts:
                authors = [_USER if k == "user" else lp[k] for k in spec.seq]
                dates = self.dates(len(authors), 500, 0, 60 * 6)
                self.thread(
                    spec.subject,
                    authors,
                    dates,
                    lambda i: "",
                    turns=spec.turns,
                    scripts=spec.script,
                    lst=lst,
                    extras=dict(spec.extras),
                    most=2,
                )
        for folder, singles in _LIST_SINGLES.items():
            lst = _PYDEV if folder == _PYDEV.folder else _TEXTUAL
            for key, subject, paras in singles:
                self.list_post(lst, lp[key], subject, paras, self.when(500, 0))
        for week in range(3):
            self.tracker_summary(self.now - (week * 7 + 3) * DAY - 7 * 3600)

    def list_post(
        self, lst: _MailingList, author: _Person, subject: str, paras: Sequence[str], date: int
    ) -> None:
        text, _, _ = self.body(author, paras=paras, greet="all", footer=lst.footer)
        shown = f"{lst.prefix} {subject}" if lst.prefix else subject
        msgid = self.msgid(author.domain)
        msg = self.compose(
            sender=author,
            to=[lst.address],
            subject=shown,
            date=date,
            msgid=msgid,
            text=text,
            headers=lst.headers,
        )
        self.add(lst.folder, msg, date, msgid)

    def tracker_summary(self, date: int) -> None:
        bot = _Person("Python tracker", "status@bugs.example.org", mailer="")
        opened, closed = self.rng.randint(40, 90), self.rng.randint(40, 95)
        total = 7000 + self.rng.randint(0, 400)
        lines = [
            "ACTIVITY SUMMARY (one week)",
            "",
            f"  Issues opened:   {opened:4d}",
            f"  Issues closed:   {closed:4d}",
            f"  Open issues:     {total:4d} ({opened - closed:+d})",
            f"  Pull requests:   {self.rng.randint(60, 140):4d} opened, "
            f"{self.rng.randint(50, 130)} merged",
            "",
            "Issues waiting for review:",
            "",
        ]
        topics = (
            "asyncio: cancel() during shutdown leaves tasks pending",
            "pathlib: glob() ignores case_sensitive on Windows",
            "email: header folding splits an encoded-word",
            "sqlite3: autocommit attribute is not documented in the tutorial",
            "unittest: subTest output is hard to read with -v",
            "zipfile: extractall() follows symlinks in archives",
            "tomllib: error message for duplicate tables is unclear",
            "argparse: help text wraps badly with long option names",
        )
        for topic in self.rng.sample(topics, 5):
            lines.append(f"  #{self.rng.randint(120000, 139999)}: {topic}")
        text = "\n".join(lines) + "\n\n" + _PYDEV.footer + "\n"
        msgid = self.msgid("bugs.example.org")
        subject = "Summary of tracker issues"
        msg = self.compose(
            sender=bot,
            to=[_PYDEV.address],
            subject=subject,
            date=date,
            msgid=msgid,
            text=text,
            headers=_PYDEV.headers,
        )
        self.add(_PYDEV.folder, msg, date, msgid)

    def forge(self) -> None:
        """Issue notifications from a code forge: bot mail that threads by Message-ID."""
        issues: tuple[tuple[int, str, str, tuple[tuple[str, str], ...]], ...] = (
            (
                412,
                "Crash when resizing the window below 20 columns",
                "INBOX",
                (
                    (
                        "ben",
                        "Steps to reproduce:\n\n1. Start the app in a terminal 80 columns "
                        "wide.\n2. Shrink the terminal to 18 columns.\n\nExpected: the layout "
                        "degrades gracefully.\nActual: the app exits with ZeroDivisionError in "
                        "layout.py, line 88.",
                    ),
                    (
                        "liam",
                        "Thanks for the report, I can reproduce this on main. The sidebar "
                        "width becomes zero and the ratio calculation divides by it.",
                    ),
                    ("liam", "Fixed in 4e1c9a2: the sidebar now collapses below 30 columns."),
                    ("ben", "Confirmed, works for me. Thanks for the quick fix!"),
                ),
            ),
            (
                455,
                "Support for the OAuth2 device flow",
                "INBOX",
                (
                    (
                        "grace",
                        "Some providers only allow OAuth2 for IMAP now. On a headless "
                        "machine the device flow is the only practical option.",
                    ),
                    ("oliver", "+1, this blocks us from using it on our jump hosts."),
                    (
                        "grace",
                        "I've started a draft pull request; token refresh is the fiddly part.",
                    ),
                ),
            ),
            (
                468,
                "Sync stalls after the laptop wakes from sleep",
                "INBOX",
                (
                    (
                        "tom",
                        "After resuming from suspend the sync indicator spins forever. "
                        "Restarting the app fixes it.",
                    ),
                    (
                        "oliver",
                        "I see the same. The IDLE connection is dead but nothing notices "
                        "until the server closes it, which can take half an hour.",
                    ),
                    (
                        "liam",
                        "We should send a NOOP after a wake-up and reconnect if it does "
                        "not answer within a few seconds.",
                    ),
                    ("tom", "That would be great. Happy to test a build."),
                ),
            ),
            (
                377,
                "Docs: the install page mentions the old package name",
                "Archive",
                (
                    ("kenji", "The install page still says `pip install widgets-legacy`."),
                    ("lukas", "Good catch, fixed in the docs overhaul branch."),
                ),
            ),
            (
                350,
                "Flaky test: test_scheduler_handles_dst",
                "Archive",
                (
                    (
                        "daniel",
                        "This test fails about once in fifty runs, always around midnight UTC.",
                    ),
                    (
                        "liam",
                        "It builds a local time during the DST gap. Freezing the clock in "
                        "the test should fix it.",
                    ),
                    ("daniel", "Freezing the clock worked, a thousand runs without a failure."),
                ),
            ),
        )
        for number, title, folder, comments in issues:
            root = f"<acme/widgets/issues/{number}@forge.example>"
            oldest, newest = (150, 1) if folder == "INBOX" else (500, 90)
            dates = self.dates(len(comments), oldest, newest, 60 * 18)
            for i, (key, comment) in enumerate(comments):
                actor = _PEOPLE[key]
                sender = _Person(actor.name, _FORGE.email, mailer=_FORGE.mailer)
                subject = f"[acme/widgets] {title} (Issue #{number})"
                msgid = (
                    root if i == 0 else f"<acme/widgets/issues/{number}/c{1000 + i}@forge.example>"
                )
                link = f"https://forge.example/acme/widgets/issues/{number}"
                verb = "opened this issue" if i == 0 else "commented"
                text = (
                    f"{actor.name} {verb}:\n\n{comment}\n\n"
                    "—\nReply to this email directly or view it on GitForge:\n"
                    f"{link}{'' if i == 0 else f'#c{1000 + i}'}\n"
                    "You are receiving this because you are subscribed to this thread.\n"
                )
                msg = self.compose(
                    sender=sender,
                    to=["acme/widgets <widgets@noreply.forge.example>"],
                    cc=[_USER],
                    subject=subject if i == 0 else f"Re: {subject}",
                    date=dates[i],
                    msgid=msgid,
                    text=text,
                    in_reply_to=None if i == 0 else root,
                    references=() if i == 0 else (root,),
                    headers=(
                        ("List-Id", "acme/widgets <widgets.acme.forge.example>"),
                        ("List-Unsubscribe", f"<{link}/unsubscribe>"),
                        ("X-GitForge-Reason", "subscribed"),
                    ),
                )
                self.add(folder, msg, dates[i], msgid)

    def personal_singles(self) -> None:
        singles: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
            (
                "tom",
                "INBOX",
                "Found your umbrella",
                (
                    "You left your umbrella in the meeting room on the third floor.",
                    "It's at reception now, labelled with your name.",
                ),
            ),
            (
                "mateo",
                "INBOX",
                "¡Feliz cumpleaños!",
                (
                    "Happy birthday! I hope you have a great day and someone bakes you a cake.",
                    "Drinks on Friday to celebrate?",
                ),
            ),
            (
                "liam",
                "INBOX",
                "Podcast recommendation",
                (
                    "You mentioned you were looking for something to listen to on the train.",
                    "There's a great podcast about the history of computing, episodes are about "
                    "half an hour each. The one on the first spreadsheet is my favourite.",
                ),
            ),
            (
                "daniel",
                "INBOX",
                "Heads-up: DNS change tonight",
                (
                    "We're moving the internal DNS zone to the new servers tonight at 22:00 UTC.",
                    "If anything fails to resolve tomorrow morning, flush your local cache first "
                    "and then ping me.",
                ),
            ),
            (
                "aisha",
                "INBOX",
                "Volunteering at the food bank",
                (
                    "The food bank is short of volunteers for the Saturday morning shift.",
                    "It's three hours of sorting and packing, no experience needed. Let me know "
                    "if you can help out.",
                ),
            ),
            (
                "emma",
                "INBOX",
                "Photos from the wedding are online",
                (
                    "The photographer finally sent the pictures! They're in the shared album.",
                    "There's a very good one of you on the dance floor.",
                ),
            ),
            (
                "ben",
                "INBOX",
                "Fire drill on Wednesday",
                (
                    "There will be a fire drill on Wednesday at 11:00.",
                    "Please leave by the nearest exit and gather in the car park. It should take "
                    "about fifteen minutes.",
                ),
            ),
            (
                "fatima",
                "INBOX",
                "Team lunch budget approved",
                (
                    "Good news: the budget for a team lunch this quarter has been approved.",
                    "Suggestions for the place are welcome, ideally somewhere with vegetarian "
                    "options and space for twelve.",
                ),
            ),
            (
                "tom",
                "INBOX",
                "Climbing on Tuesday?",
                ("Are you coming climbing on Tuesday? The gym has reset the bouldering wall.",),
            ),
            (
                "priya",
                "INBOX",
                "Release notes draft",
                (
                    "The draft release notes are in the shared folder.",
                    "Could you check the section on the new keyboard shortcuts? You know that part "
                    "better than I do.",
                ),
            ),
            (
                "ingrid",
                "Archive",
                "Allotment society autumn newsletter",
                (
                    "The autumn work day is on the second Saturday of October.",
                    "We'll be clearing the paths and repairing the compost bays. Soup is provided.",
                    "Plot inspections will happen in November; please keep your plot tidy.",
                ),
            ),
            (
                "carlos",
                "Archive",
                "Expense report approved",
                (
                    "Your expense report for the conference trip has been approved.",
                    "The reimbursement will arrive with the next salary payment.",
                ),
            ),
            (
                "oliver",
                "Archive",
                "Moving to a new team",
                (
                    "Just a quick note that I'm moving to the data platform team next month.",
                    "It's been great working with you; I'm only two floors away.",
                ),
            ),
            (
                "grace",
                "Archive",
                "Coffee next week?",
                ("I'm in town next week for a workshop. Coffee on Wednesday?",),
            ),
        )
        for key, folder, subject, paras in singles:
            author = _PEOPLE[key]
            date = self.when(120, 0) if folder == "INBOX" else self.when(530, 60)
            text, _, _ = self.body(author, paras=paras, greet=_USER.first)
            msgid = self.msgid(author.domain)
            msg = self.compose(
                sender=author, to=[_USER], subject=subject, date=date, msgid=msgid, text=text
            )
            self.add(folder, msg, date, msgid)

    def single(
        self,
        folder: str,
        sender: _Person,
        subject: str,
        date: int,
        text: str,
        *,
        to: Sequence[_Person | str] = (_USER,),
        **kwargs: Any,
    ) -> _Entry:
        msgid = self.msgid(sender.domain)
        msg = self.compose(
            sender=sender,
            to=to,
            subject=subject,
            date=date,
            msgid=msgid,
            text=text,
            **kwargs,
        )
        return self.add(folder, msg, date, msgid)

    def digest(self, folder: str, date: int, issue: int) -> None:
        stories = (
            ("Why terminal apps are having a moment", "A look at the new wave of TUIs."),
            ("The quiet return of plain-text email", "Less markup, more reading."),
            ("How a small library cut our startup time in half", "Lazy imports, done right."),
            ("Keyboard-first design, explained", "Shortcuts are an interface too."),
            ("A field guide to mail headers", "From Received to References."),
            ("Ten years of one tiny open-source project", "What the maintainers learned."),
        )
        items = "\n".join(
            f'<li><a href="https://news.example.com/s/{issue}-{n}">{_html_escape(title)}</a>'
            f" &mdash; {_html_escape(blurb)}</li>"
            for n, (title, blurb) in enumerate(self.rng.sample(stories, 5))
        )
        html = (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">\n'
            "<title>The Weekly Digest</title>\n"
            "<style>body { font-family: Georgia, serif; max-width: 40em; }"
            " h1 { color: #1a4d8f; }</style>\n</head><body>\n"
            f"<h1>The Weekly Digest &middot; issue {issue}</h1>\n"
            "<p>Five stories picked for you this week:</p>\n"
            f"<ol>\n{items}\n</ol>\n"
            '<p><a href="https://news.example.com/unsubscribe?u=8f3a">Unsubscribe</a> or '
            '<a href="https://news.example.com/prefs?u=8f3a">change your preferences</a>.</p>\n'
            f'<img src="{HTML_TRACKER_URL}" width="1" height="1" alt="">\n'
            "</body></html>\n"
        )
        self.single(
            folder,
            _DIGEST,
            f"Your weekly digest, issue {issue}: five stories picked for you",
            date,
            html,
            html_only=True,
            headers=(("List-Unsubscribe", "<https://news.example.com/unsubscribe?u=8f3a>"),),
        )

    def automated(self) -> None:
        self.digest("INBOX", self.now - 4 * DAY - 5000, 211)
        self.digest("Archive", self.when(400, 300), 162)

        parcel = (
            '<html><head><meta charset="utf-8"><title>Your parcel</title>\n'
            "<script>document.location = 'https://parcels.example/track?id=JD0142';</script>\n"
            '</head><body style="font-family: Helvetica, Arial, sans-serif">\n'
            "<h2>Your parcel is on its way!</h2>\n"
            "<p>Parcel <b>JD0142 5521 0087</b> left our depot this morning and will be "
            "delivered <b>tomorrow between 10:00 and 14:00</b>.</p>\n"
            '<p><a href="https://parcels.example/track?id=JD014255210087">Track your '
            "parcel</a></p>\n"
            '<p><img src="https://parcels.example/img/van.png" alt="Delivery van" '
            'width="120"></p>\n'
            f'<img src="{HTML_TRACKER_URL}" width="1" height="1" alt="">\n'
            "</body></html>\n"
        )
        self.single(
            "INBOX",
            _PARCELS,
            "Your parcel is on its way",
            self.now - DAY - 7000,
            parcel,
            html_only=True,
        )

        for folder, date, month in (
            ("INBOX", self.now - 9 * DAY, "October 2025"),
            ("Archive", self.when(320, 280), "January 2025"),
        ):
            rows = ["date,description,amount,balance"]
            balance = 2400.0 + self.rng.randint(0, 900)
            for day in range(1, 29, 3):
                amount = round(self.rng.uniform(-180, 60), 2)
                balance += amount
                payee = self.rng.choice(("Grocer", "Rail ticket", "Bookshop", "Refund", "Café"))
                rows.append(f"{day:02d},{payee},{amount:.2f},{balance:.2f}")
            text = (
                f"Hello {DEMO_NAME},\n\nYour statement for {month} is ready. A CSV export is "
                "attached.\n\nClosing balance: {:.2f} EUR\n\nDemo Bank will never ask for your "
                "password by email.\n".format(balance)
            )
            html = (
                '<html><body style="font-family: Arial, sans-serif">'
                f"<p>Hello {DEMO_NAME},</p><p>Your statement for <b>{month}</b> is ready. "
                "A CSV export is attached.</p>"
                f"<p>Closing balance: <b>{balance:.2f} EUR</b></p>"
                '<p><a href="https://bank.example/statements">View it online</a></p>'
                "</body></html>\n"
            )
            name = f"statement-{month.split()[1]}-{month.split()[0][:3].lower()}.csv"
            self.single(
                folder,
                _BANK,
                f"Your statement for {month} is ready",
                date,
                text,
                html=html,
                attachments=[_Attachment(name, "text/csv", "\n".join(rows) + "\n")],
            )

        self.single(
            "INBOX",
            _SECURITY,
            "Security alert: new sign-in from Linux",
            self.now - 12 * DAY,
            "We noticed a new sign-in to your account.\n\n  Device:   Linux, Firefox\n"
            "  Location: Lisbon, Portugal (approximate)\n  Time:     see the date of this "
            "message\n\nIf this was you, you don't need to do anything. If not, review your "
            "account at https://accounts.example/security\n",
            html=(
                "<html><body><p>We noticed a <b>new sign-in</b> to your account.</p>"
                "<ul><li>Device: Linux, Firefox</li><li>Location: Lisbon, Portugal "
                "(approximate)</li></ul>"
                '<p><a href="https://accounts.example/security">Review your account</a></p>'
                "</body></html>\n"
            ),
        )

        logo = _Attachment(
            "logo.png",
            "image/png",
            _png(32, 32, (250, 200, 40)),
            content_id="logo.7d1e@pyconf.example",
        )
        self.single(
            "INBOX",
            _CONF,
            "PyConf Europe: schedule published, early-bird ends Friday",
            self.now - 17 * DAY,
            "PyConf Europe\n=============\n\nThe schedule is online: three days, four tracks "
            "and a sprint weekend.\n\nEarly-bird tickets end on Friday:\n"
            "https://pyconf.example/tickets\n\nSee you in Porto!\n",
            html=(
                '<html><body><p><img src="cid:logo.7d1e@pyconf.example" alt="PyConf logo" '
                'width="32" height="32"></p><h1>The schedule is online</h1>'
                "<p>Three days, four tracks and a sprint weekend.</p>"
                '<p><a href="https://pyconf.example/tickets">Early-bird tickets</a> end on '
                "Friday.</p><p>See you in Porto!</p>"
                f'<img src="{HTML_TRACKER_URL}" width="1" height="1" alt="">'
                "</body></html>\n"
            ),
            inline=[logo],
        )

        start = datetime.fromtimestamp(self.now + 9 * DAY, UTC).replace(hour=9, minute=0, second=0)
        stamp = f"{start:%Y%m%dT%H%M%SZ}"
        end = f"{start + timedelta(hours=1):%Y%m%dT%H%M%SZ}"
        ics = (
            "BEGIN:VCALENDAR\nPRODID:-//Example Calendar//EN\nVERSION:2.0\nMETHOD:REQUEST\n"
            "BEGIN:VEVENT\nUID:quarterly-planning-2025q4@example.net\n"
            f"DTSTAMP:{stamp}\nDTSTART:{stamp}\nDTEND:{end}\n"
            "SUMMARY:Quarterly planning\nLOCATION:Room 3.14 / video link in description\n"
            "ORGANIZER;CN=Sofia Rossi:mailto:sofia.rossi@example.net\n"
            f"ATTENDEE;CN={DEMO_NAME};RSVP=TRUE:mailto:{DEMO_EMAIL}\n"
            "END:VEVENT\nEND:VCALENDAR\n"
        )
        self.single(
            "INBOX",
            _CALENDAR,
            f"Invitation: Quarterly planning @ {start:%d %b %Y %H:%M} UTC",
            self.now - 2 * DAY - 20000,
            "Sofia Rossi has invited you to Quarterly planning.\n\n"
            f"When: {start:%d %b %Y}, 09:00-10:00 UTC\nWhere: Room 3.14\n\n"
            "Agenda: review of the quarter, goals for the next one, staffing.\n",
            attachments=[_Attachment("invite.ics", "text/calendar", ics)],
        )

        cottage = _pdf(
            ["Ueberweisung / bank transfer", "Cottage booking, share 1 of 4", "Amount: 212.50 EUR"]
        )
        self.single(
            "INBOX",
            _PEOPLE["hannah"],
            "Cottage booking: my share",
            self.now - 20 * DAY,
            "Hi Demo,\n\nI've paid my share of the cottage, the bank confirmation is "
            "attached.\n\nSee you in the mountains!\n\nHannah\n",
            attachments=[_Attachment("Überweisung März.pdf", "application/pdf", cottage)],
        )

        receipt = _pdf(["Tidewater Books", "Receipt 88213", "2 items, 38.90 EUR"])
        self.single(
            "Archive",
            _Person("Tidewater Books", "orders@tidewater.example"),
            "Your receipt from Tidewater Books (order 88213)",
            self.when(360, 200),
            "Thank you for your order!\n\nYour receipt is attached as a PDF.\n",
            html="<html><body><h2>Thank you for your order!</h2><p>Your receipt is attached."
            "</p></body></html>\n",
            attachments=[_Attachment("receipt-88213.pdf", "application/pdf", receipt)],
        )

    def sent_singles(self) -> None:
        p = _PEOPLE
        slides = _pdf(["Q3 review", "1. What shipped", "2. What slipped", "3. Next quarter"])
        self.single(
            "Sent",
            _USER,
            "Slides for Thursday",
            self.now - 6 * DAY,
            "Hi Marcus,\n\nHere are the slides for Thursday's review. Feedback welcome "
            "before Wednesday evening.\n\nDemo\n\n-- \n" + _USER.signature + "\n",
            to=[p["marcus"]],
            attachments=[_Attachment("slides-q3-review.pdf", "application/pdf", slides)],
        )
        expenses = "date,item,amount_eur\n2025-10-03,Train to Lisbon,84.20\n"
        expenses += "2025-10-04,Hotel (2 nights),236.00\n2025-10-05,Dinner with team,41.50\n"
        self.single(
            "Sent",
            _USER,
            "Expense receipts for October",
            self.now - 30 * DAY,
            "Hi Carlos,\n\nThe list of expenses for October is attached; the paper "
            "receipts are in your pigeonhole.\n\nThanks,\nDemo\n",
            to=[p["carlos"]],
            attachments=[_Attachment("expenses-october.csv", "text/csv", expenses)],
        )
        self.single(
            "Sent",
            _USER,
            "Out of office next week",
            self.when(200, 150),
            "Hi all,\n\nI'm out of office next week with limited access to email. For "
            "anything urgent about the release, please contact Hannah.\n\nDemo\n",
            to=[p["priya"], p["marcus"], p["hannah"]],
        )
        self.single(
            "Sent",
            _USER,
            "Thanks for dinner",
            self.when(90, 60),
            "Hi Sofia,\n\nThank you for a lovely evening, and for the recipe for that "
            "lemon cake. Next time is at my place!\n\nDemo\n",
            to=[p["sofia"]],
        )
        # A forward of a received message, as a message/rfc822 attachment.
        original = self.firsts["Facture de l'hébergement : 49 €"]
        inner = message_from_bytes(original.entry.raw, policy=_POLICY)
        for name in ("Return-Path", "Received"):
            del inner[name]
        self.single(
            "Sent",
            _USER,
            "Fwd: Facture de l'hébergement : 49 €",
            original.date + 3 * 3600,
            "Hi Carlos,\n\nForwarding the hosting invoice for October; could you book it "
            "under infrastructure?\n\nThanks,\nDemo\n",
            to=[p["carlos"]],
            attachments=[_Attachment("", "message/rfc822", inner)],
        )
        original.entry.flags.add("P")

    # ---- the hostile fixtures

    def escapes(self) -> None:
        date = self.now - 2 * DAY - 3 * 3600
        subject = "\x1b[31mURGENT\x1b[0m: verify your mailbox \x1b]0;pwned\x07now"
        text = (
            "Dear user,\n\n"
            "\x1b[2J\x1b[HYour mailbox is \x1b[31m\x1b[5mabout to be closed\x1b[0m.\n"
            "\x1b]0;pwned\x07The window title should not change.\n"
            "\x1b]8;;http://phish.example/login\x07Click here to keep your account\x1b]8;;\x07\n"
            "\x1b[8mThis text is hidden with SGR 8.\x1b[28m\n"
            "Backspaces: safe\x08\x08\x08\x08evil\n"
            "Carriage return: harmless text\roverwritten\n"
            "8-bit CSI: \x9b31mred via C1\x9b0m\n"
            "Device status report request: \x1b[6n\n"
            "Bracketed paste end: \x1b[201~\n"
            "Clipboard write (OSC 52): \x1b]52;c;cm0gLXJmIH4=\x07\n"
            "Bell: \x07\x07\x07\n\n"
            "IT Support\n"
        )
        # Base64, so the bare CR and the control bytes survive the trip byte for byte.
        body = MIMEText(text, "plain", Charset("utf-8"))  # type: ignore[arg-type]
        del body["MIME-Version"]
        display = _encode_words("\x1b[2J\x1b[32mIT Support\x1b[0m", "utf-8")
        msg = self.compose(
            sender=_PHISH,
            to=[_USER],
            subject=subject,
            date=date,
            msgid=ESCAPES_MESSAGE_ID,
            text=text,
            body_part=body,
            from_header=f"{display} <{_PHISH.email}>",
        )
        entry = self.add("INBOX", msg, date, ESCAPES_MESSAGE_ID)
        entry.fixed = True  # unread, so it is on screen when the demo opens

    def malformed(self) -> None:
        date = self.now - 5 * DAY + 1234
        raw = (
            "Return-Path: <bounce@broken.example>\n"
            "Received: from mail.broken.example (mail.broken.example [192.0.2.66])\n"
            f"\tby mx.demo.example (Postfix) with ESMTP id 7F3A2C01D9; {_date_header(date, 0)}\n"
            'From: "Broken Mailer" <noreply@broken.example>\n'
            f"To: {DEMO_NAME} <{DEMO_EMAIL}>\n"
            "Subject: =?utf-8?q?Caf=C3=A9_=E2=9C?= =?utf-8?b?bm90IGJhc2U2NA*?= "
            "=?x-unknown?q?abc?= =?utf-8?q?unterminated report\n"
            f"Message-ID: {MALFORMED_MESSAGE_ID}\n"
            "MIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="never-closed-boundary"\n'
            "\n"
            "This is a multi-part message in MIME format.\n"
            "\n"
            "--never-closed-boundary\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: quoted-printable\n"
            "\n"
            "This message has no Date header, broken encoded-words in its subject, =\n"
            "invalid UTF-8 here: Caf=C3=A9 =E2=9C and a multipart boundary that is =\n"
            "never closed.\n"
            "\n"
            "--never-closed-boundary\n"
            'Content-Type: application/octet-stream; name="truncated.bin"\n'
            "Content-Transfer-Encoding: base64\n"
            'Content-Disposition: attachment; filename="truncated.bin"\n'
            "\n"
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n"
            "ISIjJCUmJygpKissLS4vMDEy*\n"
        ).encode("ascii")
        entry = self.add("INBOX", raw, date, MALFORMED_MESSAGE_ID)
        entry.fixed = True

    def hostile_attachment(self) -> None:
        date = self.now - 3 * DAY - 3600
        msg = self.compose(
            sender=_PRINTER,
            to=[_USER],
            subject="Scanned document from MFP-4410",
            date=date,
            msgid=HOSTILE_ATTACHMENT_MESSAGE_ID,
            text="A document was scanned and sent to you.\n\nPages: 1\nResolution: 300 dpi\n",
            attachments=[
                _Attachment(
                    HOSTILE_FILENAME,
                    "text/plain",
                    "root:x:0:0:this is a demo file, not a real passwd:/root:/bin/sh\n",
                ),
                _Attachment(
                    "..\\..\\AppData\\Roaming\\evil.bat",
                    "application/octet-stream",
                    b"@echo off\r\n",
                ),
            ],
        )
        entry = self.add("INBOX", msg, date, HOSTILE_ATTACHMENT_MESSAGE_ID)
        entry.flags.add("S")
        entry.fixed = True

    def incident_report(self) -> None:
        """The long one: about 200 lines of plain text."""
        rng = self.rng
        wrap = _wrap
        lines = [
            "Hi all,",
            "",
            wrap(
                "Below is the post-incident review for last Tuesday's storage outage. It is "
                "long, sorry; the short version is in the summary. Please send corrections "
                "by Friday, after which I'll publish it on the wiki.",
                72,
            ),
            "",
            "SUMMARY",
            "=======",
            "",
            wrap(
                "For 3 hours and 12 minutes the primary object store served reads with "
                "severely elevated latency, and for 41 minutes of that period roughly 8% of "
                "writes failed. The trigger was a routine disk replacement that started a "
                "rebalance while a large backfill job was running. No data was lost.",
                72,
            ),
            "",
            "IMPACT",
            "======",
            "",
            "  * Web and API p99 latency above 4 s for 3h12m.",
            "  * About 8% of uploads failed during 41 minutes; clients retried.",
            "  * The nightly reports were delayed by five hours.",
            "  * 37 support tickets, all answered the same day.",
            "",
            "TIMELINE (all times UTC)",
            "========================",
            "",
        ]
        events = (
            "Disk replacement started on storage node {n}.",
            "Rebalance kicked off automatically on node {n}.",
            "Alert: read latency p99 above 1 s on the object store.",
            "On-call engineer acknowledged the page.",
            "Backfill job throughput dropped by half.",
            "Alert: error rate on uploads above 2%.",
            "Incident declared, incident channel opened.",
            "Status page updated: degraded performance.",
            "Rebalance throttled to 50 MB/s on node {n}.",
            "Latency improved briefly, then degraded again.",
            "Backfill job paused.",
            "Write errors back to baseline.",
            "Second disk on node {n} reported SMART warnings.",
            "Decision to keep node {n} in the pool until rebalance completes.",
            "Read latency p99 under 1 s for the first time.",
            "Customer support briefed with a holding statement.",
            "Cache hit rate recovered to 92%.",
            "Rebalance progress at {p}%.",
        )
        minute = 9 * 60 + 2
        for _ in range(64):
            minute += rng.randint(1, 4)
            event = rng.choice(events).format(n=rng.randint(1, 12), p=rng.randint(5, 95))
            lines.append(f"  {minute // 60:02d}:{minute % 60:02d}  {event}")
        lines += [
            "",
            "ROOT CAUSE",
            "==========",
            "",
            wrap(
                "The rebalance after a disk replacement is not rate-limited by default. "
                "Combined with the backfill job, which reads sequentially through cold "
                "data, it saturated the disks on four nodes. The load balancer kept "
                "sending requests to those nodes because its health check only tests "
                "that the process answers, not how quickly.",
                72,
            ),
            "",
            wrap(
                "The runbook for disk replacements predates the backfill job and does not "
                "mention it. The person doing the replacement had no way to know that a "
                "heavy job was running.",
                72,
            ),
            "",
            "WHAT WENT WELL",
            "==============",
            "",
            "  * The alerts fired within two minutes of the first symptoms.",
            "  * Clients retried failed uploads, so nearly all of them succeeded later.",
            "  * The status page was updated early and often.",
            "",
            "WHAT WENT BADLY",
            "===============",
            "",
            "  * It took 50 minutes to connect the latency to the rebalance.",
            "  * The backfill job has no owner listed, so nobody knew it could be paused.",
            "  * The dashboards do not show rebalance activity at all.",
            "",
            "ACTION ITEMS",
            "============",
            "",
        ]
        actions = (
            ("Rate-limit rebalancing by default", "Daniel"),
            ("Add rebalance progress to the storage dashboard", "Oliver"),
            ("Make the health check latency-aware", "Liam"),
            ("Give every batch job an owner and a pause switch", "Priya"),
            ("Update the disk replacement runbook", "Daniel"),
            ("Schedule disk replacements outside batch windows", "Ben"),
            ("Alert on SMART warnings, not only on failures", "Oliver"),
            ("Add a load test with a concurrent rebalance", "Hannah"),
            ("Document who can pause the backfill job", "Priya"),
            ("Review the support holding statement template", "Marcus"),
        )
        for number, (what, who) in enumerate(actions, start=1):
            lines.append(f"  {number:2d}. {what:<52} owner: {who}")
        lines += ["", "APPENDIX: READ LATENCY SAMPLES", "==============================", ""]
        lines.append("  time   p50_ms  p99_ms  errors")
        minute = 9 * 60
        for _ in range(48):
            minute += 5
            p50 = rng.randint(8, 400)
            lines.append(
                f"  {minute // 60:02d}:{minute % 60:02d}  {p50:6d}  "
                f"{p50 * rng.randint(3, 12):6d}  {rng.randint(0, 90):6d}"
            )
        lines += ["", "Thanks to everyone who helped on the day.", "", "Marcus"]
        text = "\n".join(lines) + "\n\n-- \n" + _PEOPLE["marcus"].signature + "\n"
        marcus = _PEOPLE["marcus"]
        others = [_USER, _PEOPLE["daniel"], _PEOPLE["oliver"], _PEOPLE["liam"], _PEOPLE["priya"]]
        self.single(
            "INBOX",
            marcus,
            "Post-incident review: object store latency, 14 October",
            self.now - 33 * DAY,
            text,
            to=others,
        )

    # ---- flags

    def settle_flags(self) -> None:
        for entry in self.entries:
            if entry.fixed:
                continue
            if entry.folder == "Sent":
                entry.flags = {"S"}
            else:
                entry.flags.add("S")
        # INBOX: about a quarter unread, most of them recent; a handful flagged.
        inbox = [e for e in self.entries if e.folder == "INBOX"]
        unread_fixed = sum(1 for e in inbox if e.fixed and "S" not in e.flags)
        target = round(len(inbox) * 0.25) - unread_fixed
        candidates = sorted(
            (e for e in inbox if not e.fixed and not e.flags & {"R", "P"}),
            key=lambda e: (-e.date, e.msgid),
        )
        newest = candidates[: target * 3 // 5]
        older = self.rng.sample(candidates[len(newest) :], target - len(newest))
        for entry in (*newest, *older):
            entry.flags.discard("S")
        pool = sorted((e for e in inbox if not e.fixed), key=lambda e: e.msgid)
        for entry in self.rng.sample(pool, 6):
            entry.flags.add("F")
        archive = sorted((e for e in self.entries if e.folder == "Archive"), key=lambda e: e.msgid)
        for entry in self.rng.sample(archive, 3):
            entry.flags.add("F")
        for folder in (_PYDEV.folder, _TEXTUAL.folder):
            posts = sorted(
                (e for e in self.entries if e.folder == folder), key=lambda e: (-e.date, e.msgid)
            )
            for entry in posts[:6]:
                if "R" not in entry.flags:
                    entry.flags.discard("S")
            posts[len(posts) // 2].flags.add("F")


def generate_demo(seed: int = 1, now: int | None = None) -> list[DemoMessage]:
    """The demo mailbox: the same messages, byte for byte, for the same seed and `now`.

    The folder sizes do not depend on the seed; the text, dates and flags do.
    """
    box = _Mailbox(seed, DEFAULT_NOW if now is None else now)
    box.long_threads()
    box.short_threads()
    box.forge()
    box.personal_singles()
    box.automated()
    box.sent_singles()
    box.incident_report()
    box.escapes()
    box.malformed()
    box.hostile_attachment()
    box.list_threads()
    box.settle_flags()
    order = {folder: n for n, folder in enumerate(FOLDERS)}
    entries = sorted(box.entries, key=lambda e: (order[e.folder], e.date, e.msgid))
    return [DemoMessage(e.folder, e.raw, "".join(sorted(e.flags)), e.date) for e in entries]
