"""Mirror an IMAP account into the local store, by UID, one folder at a time.

Pure-ish: it talks only to a `ReceiveBackend` (the UID-sync methods) and an
`AccountStore`, so tests drive it against the real Dovecot and a store in a
temporary folder. The worker (sync/account.py) decides when to call it.

Per folder (`sync_folder`):

1. SELECT gives UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ; the index holds the
   values saved by the last complete sync of the folder.
2. UIDVALIDITY changed (or first sync with local messages that have no
   server id): every local copy loses its old UID - it stays in the Maildir
   and the index as a message with no server id, never deleted - and is
   re-matched by Message-ID against the server's messages (unique matches
   only). Matched copies get their new UID and are not downloaded again;
   server messages that match nothing are downloaded; local copies that
   match nothing stay local (no server id), so no mail is lost. A stale UID
   can then never reach the server: the backend refuses ServerIds of an
   older UIDVALIDITY.
3. New messages: UIDs above the highest one known (and above UIDNEXT-1 of
   the last sync), streamed and stored in batches (files fsynced, then one
   index transaction per batch).
4. Flags: with CONDSTORE, only messages changed since the saved
   HIGHESTMODSEQ (nothing at all if it did not move); else every FLAGS.
   Conflict rule: a message with a local change not yet pushed (`pending`
   in the index) keeps its local flags; the journal pushes them later.
   Maildir letters we do not map (other tools' keywords) are kept.
5. Expunges: known UIDs the server no longer has lose their local copy
   (QRESYNC VANISHED since the saved HIGHESTMODSEQ, else a UID listing).
   This only ever deletes locally, and only what the server said is gone.
6. Only then is the folder state saved, so a sync cut short is redone from
   the previous state, and the messages it did store are known by UID.

`sync_account` lists the server's folders, follows renames (a folder gone
and a new one with the same UIDVALIDITY: Dovecot keeps it across RENAME),
creates new ones, and removes a local folder only when the server folder is
gone, it was synced from the server before, and it holds no local message
that the server does not have (no server id, or a pending change).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tui_mail.backends.base import FolderState as RemoteState
from tui_mail.backends.base import ReceiveBackend, RemoteFolder
from tui_mail.core.capabilities import Capability
from tui_mail.core.errors import ProtocolError
from tui_mail.core.flags import FlagSet, normalise_maildir_letters
from tui_mail.core.models import FolderRole, MessageRef, ServerId
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import FolderState as LocalState
from tui_mail.store.maildir import INBOX, is_inbox, to_local_line_endings
from tui_mail.store.parse import parse_message

log = logging.getLogger(__name__)

#: (folder, done, total): messages downloaded so far in that folder
Progress = Callable[[str, int, int], None]

# Messages per store transaction (and directory fsync) while downloading.
DELIVER_BATCH = 500
# ...or fewer, when they add up to this many bytes.
DELIVER_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class FolderSyncResult:
    folder: str = ""
    fetched: int = 0
    removed: int = 0
    flag_changes: int = 0
    rematched: int = 0  # local copies given their new UID after a UIDVALIDITY change
    uidvalidity_changed: bool = False
    skipped: int = 0  # too large to download (backend's max_message_size)


@dataclass
class AccountSyncResult:
    folders: list[FolderSyncResult] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # gone on the server, kept for local mail
    errors: dict[str, str] = field(default_factory=dict)  # folder -> message

    @property
    def fetched(self) -> int:
        return sum(f.fetched for f in self.folders)

    @property
    def flag_changes(self) -> int:
        return sum(f.flag_changes for f in self.folders)


@dataclass(frozen=True)
class _Row:
    id: int
    key: str
    flags: str
    uidvalidity: int | None
    pending: bool


# --------------------------------------------------------------------------- index reads


def _rows_with_uid(store: AccountStore, folder: str) -> dict[int, _Row]:
    rows = store.index.execute_read(
        "SELECT uid, id, key, flags, uidvalidity, pending FROM messages"
        " WHERE account = ? AND folder = ? AND uid IS NOT NULL",
        (store.account, folder),
    )
    return {r[0]: _Row(r[1], r[2], r[3], r[4], bool(r[5])) for r in rows}


def _orphans(store: AccountStore, folder: str) -> list[tuple[int, str, str, str, bool]]:
    """(id, key, flags, message_id, pending) of rows without a server UID."""
    rows = store.index.execute_read(
        "SELECT id, key, flags, message_id, pending FROM messages"
        " WHERE account = ? AND folder = ? AND uid IS NULL",
        (store.account, folder),
    )
    return [(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]


def unsynced_count(store: AccountStore, folder: str) -> int:
    """Local messages the server does not have: no UID, or a change not yet pushed."""
    rows = store.index.execute_read(
        "SELECT count(*) FROM messages WHERE account = ? AND folder = ?"
        " AND (uid IS NULL OR pending != 0)",
        (store.account, folder),
    )
    return int(rows[0][0])


def _merged_letters(server: FlagSet, local_letters: str) -> str:
    """Server flags, plus the local letters we do not map (kept for other tools)."""
    local = FlagSet.from_maildir(local_letters)
    return FlagSet(server.flags, local.extra_letters).to_maildir()


# --------------------------------------------------------------------------- one folder


async def sync_folder(
    backend: ReceiveBackend,
    store: AccountStore,
    folder: str,
    progress: Progress | None = None,
) -> FolderSyncResult:
    """Bring the local copy of `folder` in line with the server (see module doc)."""
    folder = INBOX if is_inbox(folder) else folder
    account = store.account
    index = store.index
    local: LocalState | None = await asyncio.to_thread(index.folder_state, account, folder)
    remote = await backend.folder_state(folder)
    if remote.uidvalidity is None:
        raise ProtocolError(f"the server sent no UIDVALIDITY for {folder!r}")
    if folder != INBOX:
        await asyncio.to_thread(store.create_folder, folder)  # idempotent

    had_state = local is not None and local.uidvalidity is not None
    same_validity = had_state and local is not None and local.uidvalidity == remote.uidvalidity
    validity_changed = had_state and not same_validity

    rematched = 0
    orphans = await asyncio.to_thread(_orphans, store, folder)
    if validity_changed:
        # Step 2: every old UID is void. Clear them first (durably), then re-match.
        rows = await asyncio.to_thread(_rows_with_uid, store, folder)
        await asyncio.to_thread(_clear_server_ids, store, [r.id for r in rows.values()])
        log.warning(
            "account %s: UIDVALIDITY of %r changed (%s -> %s); re-matching %d local messages",
            account,
            folder,
            local.uidvalidity if local else None,
            remote.uidvalidity,
            len(rows),
        )
        orphans = await asyncio.to_thread(_orphans, store, folder)
    if orphans and not same_validity:
        rematched = await _rematch(backend, store, folder, remote, orphans)

    rows = await asyncio.to_thread(_rows_with_uid, store, folder)
    # Rows of another UIDVALIDITY cannot be here after step 2; never trust them anyway.
    rows = {u: r for u, r in rows.items() if r.uidvalidity in (None, remote.uidvalidity)}

    # Step 3: new messages.
    last = max(rows, default=0)
    if same_validity and local is not None and local.uidnext:
        last = max(last, local.uidnext - 1)
    if same_validity and remote.uidnext is not None and remote.uidnext - 1 <= last:
        new_uids: list[int] = []  # UIDNEXT did not move: nothing new, no SEARCH needed
    elif remote.exists == 0:
        new_uids = []
    else:
        start = last + 1 if same_validity else 1
        new_uids = [u for u in await backend.list_uids(folder, start) if u not in rows]
    fetched = await _download(backend, store, folder, new_uids, progress)
    skipped = len(getattr(backend, "skipped", {}).get(folder, ()))

    # Steps 4 and 5, for the messages known before this run.
    flag_changes = removed = 0
    if rows:
        # CONDSTORE: every flag change and expunge raises HIGHESTMODSEQ, so an
        # unchanged value means nothing happened, and a changed one says since when.
        use_modseq = (
            same_validity
            and backend.has(Capability.CONDSTORE)
            and local is not None
            and local.highestmodseq is not None
            and remote.highestmodseq is not None
        )
        since = local.highestmodseq if use_modseq and local is not None else None
        if use_modseq and since == remote.highestmodseq:
            updates: Sequence[tuple[int, FlagSet, int | None]] = []
            gone: Sequence[int] = []
        else:
            updates = await backend.fetch_flags(folder, since)
            if since is not None and backend.has(Capability.QRESYNC):
                gone = await backend.expunged(folder, sorted(rows), since)
            else:
                gone = await backend.expunged(folder, sorted(rows))
        flag_changes = await asyncio.to_thread(_apply_flags, store, folder, rows, updates)
        removed = await asyncio.to_thread(_remove, store, folder, rows, gone)

    # Step 6: everything above is durable; only now may the next run start from here.
    await asyncio.to_thread(
        index.set_folder_state,
        account,
        folder,
        uidvalidity=remote.uidvalidity,
        uidnext=remote.uidnext,
        highestmodseq=remote.highestmodseq,
    )
    return FolderSyncResult(
        folder=folder,
        fetched=fetched,
        removed=removed,
        flag_changes=flag_changes,
        rematched=rematched,
        uidvalidity_changed=validity_changed,
        skipped=skipped,
    )


def _clear_server_ids(store: AccountStore, ids: Sequence[int]) -> None:
    with store.index.transaction():
        for msg_id in ids:
            store.index.set_server_id(msg_id, ServerId())


async def _rematch(
    backend: ReceiveBackend,
    store: AccountStore,
    folder: str,
    remote: RemoteState,
    orphans: list[tuple[int, str, str, str, bool]],
) -> int:
    """Give local copies without a UID the UID of the server message with their
    Message-ID, when the match is unique on both sides. Returns how many."""
    local_by_mid: dict[str, list[tuple[int, str, str, bool]]] = {}
    for msg_id, key, flags, mid, pending in orphans:
        if mid:
            local_by_mid.setdefault(mid, []).append((msg_id, key, flags, pending))
    if not local_by_mid:
        return 0
    headers = await backend.fetch_header_fields(folder, ["MESSAGE-ID"])
    remote_by_mid: dict[str, list[tuple[int, FlagSet]]] = {}
    for uid, header, flags in headers:
        mid = parse_message(header).message_id
        if mid:
            remote_by_mid.setdefault(mid, []).append((uid, flags))

    def apply() -> int:
        n = 0
        with store.index.transaction():
            for mid, locals_ in local_by_mid.items():
                remotes = remote_by_mid.get(mid, [])
                if len(locals_) != 1 or len(remotes) != 1:
                    continue  # ambiguous: leave it; the server copy is downloaded
                msg_id, key, letters, pending = locals_[0]
                uid, flags = remotes[0]
                store.index.set_server_id(msg_id, ServerId(uid=uid, uidvalidity=remote.uidvalidity))
                if not pending:
                    new = _merged_letters(flags, letters)
                    if new != normalise_maildir_letters(letters):
                        store.set_flags(MessageRef(store.account, folder, key, msg_id), new)
                n += 1
        return n

    return await asyncio.to_thread(apply)


async def _download(
    backend: ReceiveBackend,
    store: AccountStore,
    folder: str,
    uids: Sequence[int],
    progress: Progress | None,
) -> int:
    if not uids:
        return 0
    cb = (lambda done, total: progress(folder, done, total)) if progress is not None else None
    batch: list[tuple[bytes, str, ServerId | None]] = []
    size = 0
    stored = 0
    # While one batch is written (in a thread), the next keeps arriving: the
    # connection buffers it, bounded by the client's flow control.
    async for msg in backend.fetch_messages(folder, uids, cb):
        batch.append((to_local_line_endings(msg.raw), msg.flags.to_maildir(), msg.server_id))
        size += len(msg.raw)
        if len(batch) >= DELIVER_BATCH or size >= DELIVER_BYTES:
            await asyncio.to_thread(store.deliver_many, folder, batch)
            stored += len(batch)
            batch, size = [], 0
    if batch:
        await asyncio.to_thread(store.deliver_many, folder, batch)
        stored += len(batch)
    return stored


def _apply_flags(
    store: AccountStore,
    folder: str,
    rows: dict[int, _Row],
    updates: Sequence[tuple[int, FlagSet, int | None]],
) -> int:
    changed = 0
    for uid, flags, _modseq in updates:
        row = rows.get(uid)
        if row is None or row.pending:
            continue  # unknown here, or a local change waiting to be pushed wins
        new = _merged_letters(flags, row.flags)
        if new == normalise_maildir_letters(row.flags):
            continue
        store.set_flags(MessageRef(store.account, folder, row.key, row.id), new)
        changed += 1
    return changed


def _remove(store: AccountStore, folder: str, rows: dict[int, _Row], gone: Sequence[int]) -> int:
    removed = 0
    for uid in gone:
        row = rows.get(uid)
        if row is None:
            continue
        store.remove(MessageRef(store.account, folder, row.key, row.id))
        removed += 1
    return removed


# --------------------------------------------------------------------------- the account


async def sync_account(
    backend: ReceiveBackend,
    store: AccountStore,
    progress: Progress | None = None,
    only_folder: str | None = None,
) -> AccountSyncResult:
    """Follow the server's folder list, then sync every selectable folder (INBOX first).

    With `only_folder`, just that folder is synced (created locally if
    needed); folder renames and removals wait for a full run. A folder whose
    sync fails with a ProtocolError is reported in `errors` and the others
    go on; a ConnectError or AuthError ends the run.
    """
    result = AccountSyncResult()
    remote = await backend.list_folders()
    by_name = {f.name: f for f in remote}
    if only_folder is not None:
        name = INBOX if is_inbox(only_folder) else only_folder
        if name not in by_name:
            raise ProtocolError(f"there is no folder {only_folder!r} on the server")
        targets = [by_name[name]]
    else:
        await _follow_folders(backend, store, remote, result)
        targets = [f for f in remote if f.selectable]
    states = {s.name: s for s in await asyncio.to_thread(store.index.folder_states, store.account)}
    for f in targets:
        await _set_role(store, f, states.get(f.name))
        try:
            res = await sync_folder(backend, store, f.name, progress)
        except ProtocolError as exc:
            log.warning("account %s: folder %r: %s", store.account, f.name, exc)
            result.errors[f.name] = str(exc)
            continue
        result.folders.append(res)
    return result


async def _set_role(store: AccountStore, folder: RemoteFolder, state: LocalState | None) -> None:
    role = folder.role if folder.role != FolderRole.NONE else None
    if state is None or state.role != role:
        await asyncio.to_thread(store.index.set_folder_state, store.account, folder.name, role=role)


async def _follow_folders(
    backend: ReceiveBackend,
    store: AccountStore,
    remote: Sequence[RemoteFolder],
    result: AccountSyncResult,
) -> None:
    account = store.account
    names = {f.name for f in remote}
    new_validity: dict[str, int | None] = {}

    def snapshot() -> tuple[dict[str, Any], set[str]]:
        states = {s.name: s for s in store.index.folder_states(account)}
        return states, set(store.maildir.list_folders())

    while True:
        states, on_disk = await asyncio.to_thread(snapshot)
        # Synced from the server before (UIDVALIDITY saved) and no longer there.
        gone = sorted(n for n, s in states.items() if s.uidvalidity is not None and n not in names)
        fresh = [
            f.name
            for f in remote
            if f.selectable
            and f.name not in on_disk
            and (f.name not in states or states[f.name].uidvalidity is None)
        ]
        if not gone or not fresh:
            break
        for n in fresh:
            if n not in new_validity:
                new_validity[n] = (await backend.folder_state(n)).uidvalidity
        pair = None
        for old in sorted(gone, key=len):  # parents first: their children move with them
            v = states[old].uidvalidity
            same_old = [g for g in gone if states[g].uidvalidity == v]
            same_new = [n for n in fresh if new_validity.get(n) == v]
            if len(same_old) == 1 and len(same_new) == 1 and old in on_disk:
                pair = (old, same_new[0])
                break
        if pair is None:
            break
        await asyncio.to_thread(store.rename_folder, *pair)
        result.renamed.append(pair)
        log.info("account %s: folder %r was renamed to %r on the server", account, *pair)

    states, on_disk = await asyncio.to_thread(snapshot)
    for f in remote:
        if f.selectable and f.name not in on_disk and f.name != INBOX:
            await asyncio.to_thread(store.create_folder, f.name)
            result.created.append(f.name)
    for name, s in sorted(states.items()):
        if s.uidvalidity is None or name in names or is_inbox(name):
            continue
        if name in on_disk:
            await asyncio.to_thread(store.rescan, name)  # files no index row knows yet count
        if await asyncio.to_thread(unsynced_count, store, name):
            result.kept.append(name)
            log.warning(
                "account %s: folder %r is gone on the server but holds local mail; kept",
                account,
                name,
            )
            continue
        if name in on_disk:
            await asyncio.to_thread(store.delete_folder, name, True)
        else:
            await asyncio.to_thread(store.index.remove_folder, account, name)
        await asyncio.to_thread(store.index.delete_folder_state, account, name)
        result.removed.append(name)
