"""Address completion for compose: people seen in mail and written to, ranked by use.

Built from the index in one pass (From of every message; To/Cc of every
message, counted as "sent to" when the user wrote it), then kept in memory;
`note_sent` adds what the user just sent without a rebuild. Completion is a
scan in rank order that stops at `limit` hits, so it is cheap per keystroke.

An optional external program (`[ui] address_book_cmd`, an argument list like
aerc's address-book-cmd) adds its own answers after ours: it prints
"address<TAB>name" lines; anything else is ignored. It runs without a shell,
with a timeout, and its output is made inert before anyone shows it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from tui_mail.core.models import Address
from tui_mail.core.sanitize import inert_line

if TYPE_CHECKING:
    from tui_mail.config.schema import AppConfig
    from tui_mail.store.index import MailIndex

SENT_WEIGHT = 5  # writing to someone says more than them writing to you
COMMAND_TIMEOUT = 3.0
MAX_COMMAND_LINES = 1000
# One address in the index's To/Cc text ("Name" <a@b>, c@d, Name <e@f>).
# One address of the index's To/Cc text, as format_addresses() writes it:
# "Name" <a@b> or a bare a@b (groups: quoted name, "", address).
_ADDRESS = re.compile(r'"((?:[^"\\]|\\.)*)" <([^<>\s]*)>|()([^\s,<>"]+@[^\s,<>"]+)')
# No control characters (C0, DEL, C1) or bidi controls: an address is typed into the
# draft's header text as is, so one from a hostile command must not carry an escape.
_NOT_IN_ADDR = r"\s<>\",@\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
_VALID_ADDR = re.compile(rf"[^{_NOT_IN_ADDR}]+@[^{_NOT_IN_ADDR}]+")


class Contact(Struct):
    addr: str
    name: str
    sent: int = 0
    seen: int = 0
    last: int = 0  # date of the newest message naming them

    @property
    def score(self) -> int:
        return self.sent * SENT_WEIGHT + self.seen

    def matches(self, prefix: str) -> bool:
        """`prefix` case-folded: the start of the address, the name, or a word of the name."""
        addr = self.addr.casefold()
        if addr.startswith(prefix):
            return True
        name = self.name.casefold()
        if name.startswith(prefix):
            return True
        return any(word.startswith(prefix) for word in name.split())


def _unquote(quoted: str) -> str:
    return quoted.replace('\\"', '"').replace("\\\\", "\\") if "\\" in quoted else quoted


def parse_address_text(text: str) -> list[Address]:
    """Addresses from the index's to_addrs/cc_addrs text (format_addresses output)."""
    return [Address(name, addr) for name, addr in _pairs(text)]


def _pairs(text: str) -> list[tuple[str, str]]:
    return [(_unquote(q), a1 or a2) for q, a1, _, a2 in _ADDRESS.findall(text)]


class AddressBook:
    def __init__(
        self,
        own: Iterable[str] = (),
        command: Sequence[str] = (),
    ) -> None:
        self.own = {a.casefold() for a in own}
        self.command = tuple(command)
        self._contacts: dict[str, Contact] = {}
        self._ranked: list[Contact] | None = None

    @classmethod
    def from_config(cls, config: AppConfig, index: MailIndex | None = None) -> AddressBook:
        own = [a.email for a in config.accounts.values()]
        own += [alias for a in config.accounts.values() for alias in a.aliases]
        book = cls(own, config.ui.address_book_cmd)
        if index is not None:
            book.load(index)
        return book

    # -- building

    def _note(self, address: Address, date: int, sent: bool) -> None:
        addr = address.addr.strip()
        key = addr.casefold()
        if not key or key in self.own or not _VALID_ADDR.fullmatch(addr):
            return
        contact = self._contacts.get(key)
        if contact is None:
            contact = self._contacts[key] = Contact(addr, address.name)
        if sent:
            contact.sent += 1
        else:
            contact.seen += 1
        if date >= contact.last:
            contact.last = date
            if address.name:
                contact.name = address.name  # the newest spelling of their name
        self._ranked = None

    def load(self, index: MailIndex, accounts: Iterable[str] | None = None) -> None:
        """(Re)build from the index: about a second for 100k messages, so run it in a
        worker (compose can complete from what `note_sent` added meanwhile)."""
        sql = "SELECT from_addr, from_name, to_addrs, cc_addrs, date FROM messages"
        params: list[str] = []
        if accounts is not None:
            params = list(accounts)
            sql += f" WHERE account IN ({','.join('?' * len(params))})"
        own = self.own
        parsed: dict[str, list[tuple[str, str]]] = {}  # list mail repeats its To text
        # key -> [addr, name, sent, seen, last]; plain lists: this loop runs 100k+ times.
        stats: dict[str, list[Any]] = {}
        for from_addr, from_name, to_addrs, cc_addrs, date in index.execute_read(sql, params):
            mine = from_addr.lower() in own
            found: list[tuple[str, str]] = []
            if not mine and from_addr:
                found.append((from_name, from_addr))
            for text in (to_addrs, cc_addrs):
                if text:
                    pairs = parsed.get(text)
                    if pairs is None:
                        pairs = parsed[text] = _pairs(text)
                    found.extend(pairs)
            for name, addr in found:
                key = addr.lower()
                entry = stats.get(key)
                if entry is None:
                    entry = stats[key] = [addr, "", 0, 0, 0]
                # The sender of a received message is "seen", and so are its other
                # recipients; the recipients of the user's own mail are "sent to".
                entry[2 if mine else 3] += 1
                if date >= entry[4]:
                    entry[4] = date
                    entry[0] = addr  # the newest spellings of address and name win
                    if name:
                        entry[1] = name
        self._contacts = {
            key: Contact(addr, name, sent, seen, last)
            for key, (addr, name, sent, seen, last) in stats.items()
            if key not in own and _VALID_ADDR.fullmatch(addr)
        }
        self._ranked = None

    def note_sent(self, addresses: Iterable[Address], date: int = 0) -> None:
        """Count a message the user just sent (before the index sees the Sent copy)."""
        import time

        for a in addresses:
            self._note(a, date or int(time.time()), sent=True)

    def __len__(self) -> int:
        return len(self._contacts)

    # -- completing

    def ranked(self) -> list[Contact]:
        if self._ranked is None:
            self._ranked = sorted(
                self._contacts.values(), key=lambda c: (-c.score, -c.last, c.addr.casefold())
            )
        return self._ranked

    def complete_local(self, prefix: str, limit: int = 10) -> list[Address]:
        wanted = prefix.strip().casefold()
        out: list[Address] = []
        if not wanted or limit <= 0:
            return out
        for contact in self.ranked():
            if contact.matches(wanted):
                out.append(Address(contact.name, contact.addr))
                if len(out) >= limit:
                    break
        return out

    def complete(self, prefix: str, limit: int = 10) -> list[Address]:
        """Local matches by rank, then the external program's (blocking: call from a worker)."""
        out = self.complete_local(prefix, limit)
        if self.command and len(out) < limit and prefix.strip():
            have = {a.addr.casefold() for a in out}
            for a in run_address_command(self.command, prefix.strip()):
                if a.addr.casefold() not in have:
                    have.add(a.addr.casefold())
                    out.append(a)
                    if len(out) >= limit:
                        break
        return out


def command_argv(command: Sequence[str], prefix: str) -> list[str]:
    """The argument list with "{}" items replaced by `prefix` (appended if there is none)."""
    if any("{}" in arg for arg in command):
        return [arg.replace("{}", prefix) for arg in command]
    return [*command, prefix]


def run_address_command(
    command: Sequence[str], prefix: str, timeout: float = COMMAND_TIMEOUT
) -> list[Address]:
    """Run the external address book; [] if it fails, times out or prints nothing useful."""
    return query_address_command(command, prefix, timeout)[0]


def query_address_command(
    command: Sequence[str], prefix: str, timeout: float = COMMAND_TIMEOUT
) -> tuple[list[Address], str]:
    """The external address book's answers and, when it failed, why (for the status line).

    It runs in its own process group, killed whole on timeout: a shell script's child
    (`sleep`, a hung `curl`) keeps the output pipe open, so killing only the script
    would leave us waiting on that pipe for as long as the child lives.
    """
    argv = command_argv(command, prefix)
    name = inert_line(os.path.basename(argv[0])) if argv else "?"
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        return [], f"address book command {name}: {exc.strerror or exc}"
    except (subprocess.SubprocessError, ValueError) as exc:  # e.g. a NUL in an argument
        return [], f"address book command {name}: {exc}"
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return [], f"address book command {name} timed out after {timeout:g} s"
    except BaseException:
        _kill_group(proc)
        raise
    return parse_command_output(out.decode("utf-8", "replace")), ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:  # already gone
        pass
    try:
        # The group is dead, so the pipe closes; the bound only guards a child that
        # left the group (setsid) and still holds it.
        proc.communicate(timeout=1.0)
    except subprocess.TimeoutExpired:
        if proc.stdout is not None:
            proc.stdout.close()
        proc.wait()


def parse_command_output(text: str) -> list[Address]:
    """ "addr<TAB>name[<TAB>anything]" lines; other lines (headers, blanks) are skipped."""
    out: list[Address] = []
    for line in text.splitlines()[:MAX_COMMAND_LINES]:
        fields = line.split("\t")
        addr = fields[0].strip()
        if not _VALID_ADDR.fullmatch(addr):
            continue
        name = inert_line(fields[1].strip()) if len(fields) > 1 else ""
        out.append(Address(name, addr))
    return out
