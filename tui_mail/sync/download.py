"""Download-only sync (POP3): fetch what was never stored, then apply the
account's delete policy, deleting on the server only what is durable here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from msgspec import Struct

from tui_mail.backends.base import ReceiveBackend
from tui_mail.config.schema import EndpointConfig
from tui_mail.core.models import ServerId
from tui_mail.store.account_store import AccountStore
from tui_mail.store.maildir import to_local_line_endings, unique_name
from tui_mail.store.seen import SeenServerIds

DAY = 86400.0

Progress = Callable[[int, int], None]


class DownloadResult(Struct, frozen=True):
    fetched: int
    deleted: int


class DeletePolicy(Struct, frozen=True):
    after_download: bool = False
    after_days: int | None = None

    @classmethod
    def from_endpoint(cls, endpoint: EndpointConfig) -> DeletePolicy:
        days = endpoint.options.get("delete_after_days")
        return cls(
            after_download=bool(endpoint.options.get("delete_after_download", False)),
            after_days=int(days) if isinstance(days, int) else None,
        )

    def due(self, first_seen: float, now: float) -> bool:
        if self.after_download:
            return True
        return self.after_days is not None and now - first_seen >= self.after_days * DAY


def recover_interrupted(store: AccountStore, seen: SeenServerIds, folder: str) -> None:
    """Settle `begun` entries left by a run that was killed mid-write."""
    lost = []
    for entry in seen.entries(store.account, folder).values():
        if entry.state != "begun":
            continue
        if store.maildir.locate(folder, entry.local_key) is not None:
            store.rescan(folder)  # indexes the file the killed run finished writing
            seen.mark_stored(store.account, folder, entry.server_key)
        else:
            lost.append(entry.server_key)
    if lost:
        seen.forget(store.account, folder, lost)


async def download(
    backend: ReceiveBackend,
    store: AccountStore,
    seen: SeenServerIds,
    policy: DeletePolicy,
    folder: str = "INBOX",
    progress: Progress | None = None,
) -> DownloadResult:
    """One pass. The caller closes the session afterwards, which commits deletes."""
    account = store.account
    await asyncio.to_thread(recover_interrupted, store, seen, folder)
    known = set(seen.entries(account, folder))
    fetched = 0
    async for message in backend.fetch_new(folder, known, progress):
        server_key = message.server_id.uidl
        if server_key is None:
            continue
        local_key = unique_name()
        # The intent is durable before the file exists, so a kill between the
        # two is recognised on the next run instead of becoming a second copy.
        await asyncio.to_thread(seen.begin, account, folder, server_key, local_key)
        await asyncio.to_thread(
            store.deliver,
            folder,
            to_local_line_endings(message.raw),
            message.flags.to_maildir(),
            message.server_id,
            local_key,
        )
        await asyncio.to_thread(seen.mark_stored, account, folder, server_key)
        fetched += 1

    on_server = set(await backend.list_ids(folder))
    entries = seen.entries(account, folder)
    # Ids the server no longer has can never come back (UIDLs are not reused).
    gone = [k for k, e in entries.items() if e.state == "stored" and k not in on_server]
    if gone:
        await asyncio.to_thread(seen.forget, account, folder, gone)
    now = time.time()
    due = [
        ServerId(uidl=k)
        for k, e in entries.items()
        if e.state == "stored" and k in on_server and policy.due(e.first_seen, now)
    ]
    if due:
        await backend.remove_from_server(folder, due)
    return DownloadResult(fetched=fetched, deleted=len(due))
