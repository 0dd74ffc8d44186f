"""Changes made here, replayed to a server that keeps flags and folders (IMAP).

A flag change is written to the store at once (marked pending, so the UI
shows it), recorded in the journal in the same breath, and pushed when
the server is reachable: now if connected, else at the next sync. Only the
server's OK clears the pending mark. Nothing here talks to widgets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection

from msgspec import Struct

from tui_mail.backends.base import ReceiveBackend
from tui_mail.core.errors import ConnectError, MailError
from tui_mail.core.flags import Flag
from tui_mail.core.models import MessageRef
from tui_mail.store.account_store import AccountStore
from tui_mail.store.journal import Journal
from tui_mail.sync.backoff import Backoff

SET_FLAGS = "set_flags"


class PushResult(Struct, frozen=True):
    confirmed: tuple[MessageRef, ...]
    failed: int


def record_flag_change(
    journal: Journal, ref: MessageRef, msg_id: int, add: frozenset[Flag], remove: frozenset[Flag]
) -> int:
    return journal.add(
        ref.account,
        SET_FLAGS,
        {
            "id": msg_id,
            "folder": ref.folder,
            "key": ref.key,
            "add": sorted(f.value for f in add),
            "remove": sorted(f.value for f in remove),
        },
    )


async def push_pending(
    backend: ReceiveBackend,
    store: AccountStore,
    journal: Journal,
    ids: Collection[int] | None = None,
) -> PushResult:
    """Replay the journal's flag changes in order; a dead link stops the replay.

    Those that are due (not waiting out a backoff after a failure); with `ids`, every
    change of those messages, due or not (they are about to be moved, and a change
    left behind would be dropped with the row). A message's changes go in the order
    they were made: one that waits or fails holds back the later ones of the same
    message, which would otherwise reach the server first and be undone by it.
    """
    confirmed: list[MessageRef] = []
    failed = 0
    now = time.time()
    held: set[int] = set()
    for entry in journal.pending(store.account):
        if entry.op != SET_FLAGS:
            continue
        payload = entry.payload
        msg_id = int(payload["id"])
        if msg_id in held or (ids is not None and msg_id not in ids):
            continue
        if ids is None and entry.next_attempt > now:
            held.add(msg_id)
            continue
        server = store.index.server_id(msg_id)
        if server is None or server.uid is None:
            # Not on the server (yet, or any more): nothing to push; the next
            # sync either gives it a UID or removes it.
            journal.mark_done(entry.id)
            continue
        try:
            await backend.set_flags(
                payload["folder"],
                [server],
                frozenset(Flag(v) for v in payload["add"]),
                frozenset(Flag(v) for v in payload["remove"]),
            )
        except ConnectError:
            raise
        except MailError as exc:
            failed += 1
            held.add(msg_id)
            delay = Backoff(attempts=entry.attempts).next_delay()
            journal.mark_failed(entry.id, str(exc), time.time() + delay)
            continue
        await asyncio.to_thread(settle, store, journal, entry.id, msg_id)
        confirmed.append(MessageRef(store.account, payload["folder"], payload["key"], msg_id))
    return PushResult(tuple(confirmed), failed)


def settle(store: AccountStore, journal: Journal, entry: int, msg_id: int) -> None:
    """The server confirmed a change: its entry goes, and with the message's last one
    its pending mark, in one transaction. Apart, a crash in between left a message
    pending with nothing to replay, whose flags no later sync would update."""
    with store.index.transaction():
        journal.mark_done(entry)
        if not _still_pending(journal, store.account, msg_id):
            store.index.set_pending([msg_id], False)


def _still_pending(journal: Journal, account: str, msg_id: int) -> bool:
    return any(
        e.op == SET_FLAGS and int(e.payload["id"]) == msg_id for e in journal.pending(account)
    )
