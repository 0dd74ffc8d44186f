"""The composer's address completion: one AddressBook per app, kept off the UI thread.

Building the book reads every message's From/To/Cc from the index (about a second for
100k messages) and the external `address_book_cmd` may take up to its timeout, so
both run in threads; the editor awaits them in a worker and never blocks a keystroke.
The book is built on the first completion and rebuilt, in the background, once it is
older than `MAX_AGE` (new mail arrives meanwhile); what the user sends is counted at
once with `note_sent`, and survives a rebuild that was already running.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tui_mail.addressbook import COMMAND_TIMEOUT, AddressBook, query_address_command
from tui_mail.core.models import Address

if TYPE_CHECKING:
    from tui_mail.config.schema import AppConfig

MAX_AGE = 300.0  # seconds before the book is rebuilt from the index
LIMIT = 10

_BY_APP: weakref.WeakKeyDictionary[Any, AddressCompleter] = weakref.WeakKeyDictionary()


class AddressCompleter:
    def __init__(
        self,
        config: AppConfig,
        index_source: Any = None,
        *,
        timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        """`index_source()` returns the MailIndex, or None while the runtime starts."""
        self.config = config
        self.index_source = index_source
        self.timeout = timeout
        self.book = AddressBook.from_config(config)
        self.command = self.book.command
        self.loaded_at: float | None = None
        self._loading: asyncio.Task[None] | None = None
        self._sent_since_load: list[tuple[Address, int]] = []

    # -- the book

    async def _ensure_loaded(self) -> None:
        stale = self.loaded_at is None or time.monotonic() - self.loaded_at > MAX_AGE
        if stale and (self._loading is None or self._loading.done()):
            self._loading = asyncio.get_running_loop().create_task(self._load())
        if self.loaded_at is None and self._loading is not None:
            # The first time there is nothing to complete from yet: wait for it. A
            # rebuild later runs behind the old book, which answers meanwhile.
            await asyncio.shield(self._loading)

    async def _load(self) -> None:
        index = self.index_source() if self.index_source is not None else None
        if index is None:
            return  # the runtime is not up yet; try again on the next completion
        fresh = AddressBook.from_config(self.config)
        try:
            await asyncio.to_thread(fresh.load, index)
        except Exception:  # a closed or damaged index: keep what we had
            return
        # What was sent since the last build may not be indexed yet (the Sent copy
        # comes with the next sync); counting one twice only nudges its rank.
        for address, date in self._sent_since_load:
            fresh.note_sent([address], date)
        self._sent_since_load = []
        self.book = fresh
        self.loaded_at = time.monotonic()

    def note_sent(self, addresses: Iterable[Address]) -> None:
        now = int(time.time())
        addresses = list(addresses)
        self.book.note_sent(addresses, now)
        self._sent_since_load.extend((a, now) for a in addresses)
        # Bounded: a rebuild drains it, and nothing older than MAX_AGE is missing there.
        del self._sent_since_load[:-1000]

    # -- completing

    async def complete(self, prefix: str, limit: int = LIMIT) -> tuple[list[Address], str]:
        """Matches for `prefix`, best first (ours by use, then the command's), and a
        problem to report ("" if none): the command failed or timed out."""
        prefix = prefix.strip()
        if not prefix:
            return [], ""
        await self._ensure_loaded()
        found = self.book.complete_local(prefix, limit)
        problem = ""
        if self.command and len(found) < limit:
            extra, problem = await asyncio.to_thread(
                query_address_command, self.command, prefix, self.timeout
            )
            have = {a.addr.casefold() for a in found}
            for a in extra:
                if a.addr.casefold() not in have and len(found) < limit:
                    have.add(a.addr.casefold())
                    found.append(a)
        return found, problem


def completer_for(app: Any) -> AddressCompleter:
    """The app's completer, made on first use (the app's config and its bridge's index)."""
    completer = _BY_APP.get(app)
    if completer is None:
        bridge = getattr(app, "bridge", None)
        completer = AddressCompleter(app.config, lambda: getattr(bridge, "index", None))
        _BY_APP[app] = completer
    return completer
