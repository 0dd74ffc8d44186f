"""Mirror an IMAP account into the local store, by UID, one folder at a time.

It talks only to a `ReceiveBackend` (the UID-sync methods) and an
`AccountStore`, so tests drive it against the real Dovecot and a store in a
temporary folder. The worker (sync/account.py) decides when to call it.

Every decision is made by the pure planner in `plan.py` (read its module doc
for the rules: UIDVALIDITY changes, new mail, deletions, the flag conflict
rule). This module does the I/O around it:

1. **gather**: the folder's saved state, index rows and journal entries;
   SELECT (or, for the whole account, one pipelined STATUS of every folder:
   with CONDSTORE a folder whose UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ did
   not move is skipped without a SELECT), then the read-only commands
   `plan_reads` asks for;
2. **plan**: `plan_folder` / `plan_folders`;
3. **execute**: the steps in order. New messages are streamed and stored in
   batches (files fsynced, then one index transaction per batch); the
   folder state is saved last, so a sync cut short is redone from the
   previous state, and the messages it did store are known by UID.

With `dry_run` the plan is returned instead of executed: the backend is put
in read-only mode (EXAMINE; any write raises) and nothing touches the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import msgspec.structs
from msgspec import Struct, field

from tui_mail.backends.base import FolderState as RemoteState
from tui_mail.backends.base import ReceiveBackend, SearchTerm
from tui_mail.core.capabilities import Capability
from tui_mail.core.errors import ConnectError, MailError, ProtocolError, Unsupported
from tui_mail.core.flags import Flag, FlagSet
from tui_mail.core.models import FolderRole, MessageRef, ServerId
from tui_mail.store.account_store import AccountStore
from tui_mail.store.bulk import WrittenFile
from tui_mail.store.journal import Journal
from tui_mail.store.maildir import INBOX, is_inbox, to_local_line_endings
from tui_mail.store.parse import parse_message
from tui_mail.sync.backoff import Backoff
from tui_mail.sync.plan import (
    APPEND,
    SET_FLAGS,
    Answers,
    AppendRemote,
    CreateFolder,
    DeleteLocal,
    DeleteRemote,
    DropChange,
    Fetch,
    FolderPlan,
    ForgetServerIds,
    KeepFolder,
    LocalChange,
    LocalMessage,
    MoveRemote,
    PushFlags,
    Reads,
    Rematch,
    RemoteFolderInfo,
    RemoveFolder,
    RenameFolder,
    SavedState,
    SaveState,
    ServerState,
    SetLocalFlags,
    SetRole,
    Step,
    adopt_orphans,
    current_uids,
    folders_needing_validity,
    plan_folder,
    plan_folders,
    plan_reads,
    unchanged,
)

log = logging.getLogger(__name__)

#: (folder, done, total, bytes): messages (and bytes) downloaded so far in that folder
Progress = Callable[[str, int, int, int], None]

# Messages per store transaction (and directory fsync) while downloading.
DELIVER_BATCH = 500
# The first and last batches of a download are smaller (batch_size): the writer and
# the indexer start on the first messages sooner, and finish the last ones sooner.
RAMP_BATCH = 100
# ...or fewer, when they add up to this many bytes.
DELIVER_BYTES = 32 * 1024 * 1024
# Batches written but not yet indexed, at most (and their bytes, which they hold
# until their rows are in). With two, the download stopped whenever the indexer
# fell two batches behind, as it does at the start of each folder: 4-6 cut a 10k
# first sync by ~15-27 ms (bench/bench_imap_sync.py, alternating runs).
INDEX_QUEUE = 6
INDEX_QUEUE_BYTES = 2 * DELIVER_BYTES


def batch_size(done: int, total: int) -> int:
    """Messages in the next batch, after `done` of `total` were handed over: doubling
    from RAMP_BATCH up to DELIVER_BATCH, then halving what is left near the end."""
    ramp = min(RAMP_BATCH, DELIVER_BATCH)
    return max(ramp, min(DELIVER_BATCH, done or ramp, (total - done) // 2))


class FolderSyncResult(Struct, frozen=True):
    folder: str = ""
    fetched: int = 0
    removed: int = 0
    flag_changes: int = 0
    rematched: int = 0  # local copies given their new UID after a UIDVALIDITY change
    uidvalidity_changed: bool = False
    skipped: int = 0  # too large to download (backend's max_message_size)
    pushed: int = 0  # local flag changes the server confirmed
    appended: int = 0  # local additions stored on the server
    confirmed: tuple[MessageRef, ...] = ()
    errors: tuple[str, ...] = ()  # pushes or appends the server refused (retried later)
    plan: FolderPlan | None = None  # what was (or, dry run, would be) done
    unchanged: bool = False  # STATUS showed nothing new: not even selected


class AccountSyncResult(Struct):
    folders: list[FolderSyncResult] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # gone on the server, kept for local mail
    errors: dict[str, str] = field(default_factory=dict)  # folder -> message
    folder_steps: list[Step] = field(default_factory=list)  # the account-level plan

    @property
    def fetched(self) -> int:
        return sum(f.fetched for f in self.folders)

    @property
    def flag_changes(self) -> int:
        return sum(f.flag_changes for f in self.folders)

    @property
    def confirmed(self) -> tuple[MessageRef, ...]:
        return tuple(r for f in self.folders for r in f.confirmed)

    def describe(self) -> list[tuple[str, list[str]]]:
        """(folder, lines) of everything planned: what `--dry-run` prints."""
        out: list[tuple[str, list[str]]] = []
        account_lines = [s.describe() for s in self.folder_steps if not isinstance(s, SetRole)]
        if account_lines:
            out.append(("", account_lines))
        for f in self.folders:
            if f.plan is not None and f.plan.changes_anything:
                # A dry run creates nothing, so each new folder's own plan repeats it.
                lines = [line for line in f.plan.describe() if line not in account_lines]
                if lines:
                    out.append((f.folder, lines))
        return out


# --------------------------------------------------------------------------- gathering


def _messages(store: AccountStore, folder: str) -> list[LocalMessage]:
    rows = store.index.execute_read(
        "SELECT id, key, uid, uidvalidity, flags, message_id, pending FROM messages"
        " WHERE account = ? AND folder = ?",
        (store.account, folder),
    )
    return [LocalMessage(r[0], r[1], r[2], r[3], r[4] or "", r[5] or "", bool(r[6])) for r in rows]


def _saved_states(store: AccountStore) -> dict[str, SavedState]:
    return {
        s.name: SavedState(s.uidvalidity, s.uidnext, s.highestmodseq, s.role)
        for s in store.index.folder_states(store.account)
    }


def load_changes(journal: Journal, account: str) -> list[LocalChange]:
    """The journal's flag changes and additions, oldest first, as planner input."""
    now = time.time()
    out: list[LocalChange] = []
    for e in journal.pending(account):
        if e.op not in (SET_FLAGS, APPEND):
            continue
        p = e.payload
        try:
            out.append(
                LocalChange(
                    entry=e.id,
                    op=e.op,
                    msg_id=int(p["id"]),
                    folder=str(p["folder"]),
                    key=str(p.get("key", "")),
                    add=frozenset(Flag(v) for v in p.get("add", ())),
                    remove=frozenset(Flag(v) for v in p.get("remove", ())),
                    due=e.next_attempt <= now,
                )
            )
        except (KeyError, ValueError, TypeError):
            log.warning("account %s: journal entry %d is unreadable; skipped", account, e.id)
    return out


def unsynced_count(store: AccountStore, folder: str) -> int:
    """Local messages the server does not have: no UID, or a change not yet pushed."""
    rows = store.index.execute_read(
        "SELECT count(*) FROM messages WHERE account = ? AND folder = ?"
        " AND (uid IS NULL OR pending != 0)",
        (store.account, folder),
    )
    return int(rows[0][0])


def _server_state(state: RemoteState, folder: str) -> ServerState:
    if state.uidvalidity is None:
        raise ProtocolError(f"the server sent no UIDVALIDITY for {folder!r}")
    return ServerState(state.uidvalidity, state.uidnext, state.highestmodseq, state.exists)


async def _read(
    backend: ReceiveBackend, folder: str, reads: Reads, known: Sequence[int]
) -> Answers:
    """Run the read-only commands the planner asked for."""
    if reads.message_ids:
        headers = await backend.fetch_header_fields(folder, ["MESSAGE-ID"])
        return Answers(
            message_ids=[(uid, parse_message(h).message_id or "", f) for uid, h, f in headers]
        )
    uids: Sequence[int] = ()
    flags: list[tuple[int, FlagSet]] = []
    gone: Sequence[int] = ()
    if reads.list_from is not None:
        uids = await backend.list_uids(folder, reads.list_from)
    if reads.flags:
        flags = [(u, f) for u, f, _ in await backend.fetch_flags(folder, reads.flags_since)]
    if reads.expunged and known:
        if reads.expunged_since is not None:
            gone = await backend.expunged(folder, known, reads.expunged_since)
        else:
            gone = await backend.expunged(folder, known)
    return Answers(uids=uids, flags=flags, expunged=gone)


# --------------------------------------------------------------------------- one folder


async def sync_folder(
    backend: ReceiveBackend,
    store: AccountStore,
    folder: str,
    progress: Progress | None = None,
    *,
    journal: Journal | None = None,
    changes: Sequence[LocalChange] | None = None,
    dry_run: bool = False,
    source: str | None = None,
    defer: list[asyncio.Future[int]] | None = None,
    status: RemoteState | None = None,
) -> FolderSyncResult:
    """Bring the local copy of `folder` in line with the server (see plan.py).

    `journal`: push the account's pending flag changes and additions for
    this folder as part of the plan. `source`: where the folder's local copy
    is now (a dry run plans a rename it does not perform). `defer`: see
    `Executor.defer`. `status`: the folder's STATUS from this run; when it
    shows the folder empty it stands in for selecting it (the same values,
    one round trip less per empty folder: Drafts, Trash... on a first sync).
    Anything the plan then reads from the server still selects the folder.
    """
    folder = INBOX if is_inbox(folder) else folder
    src = source or folder
    account = store.account
    saved = (await asyncio.to_thread(_saved_states, store)).get(src)
    if status is not None and status.exists == 0 and status.uidvalidity is not None:
        remote = _server_state(status, folder)
    else:
        remote = _server_state(await backend.folder_state(folder), folder)
    messages = await asyncio.to_thread(_messages, store, src)
    if changes is None:
        changes = await asyncio.to_thread(load_changes, journal, account) if journal else []
    # A change belongs to the folder its message is in now; one whose message is
    # gone from every folder is settled by push_pending (it finds no server id).
    ids = {m.id for m in messages}
    mine = [c for c in changes if c.msg_id in ids]
    exists = folder == INBOX or await asyncio.to_thread(_folder_exists, store, src)
    condstore = backend.has(Capability.CONDSTORE)
    reads = plan_reads(
        saved, remote, messages, condstore=condstore, qresync=backend.has(Capability.QRESYNC)
    )
    answers = await _read(backend, folder, reads, current_uids(saved, remote, messages))
    plan = plan_folder(
        folder, saved, remote, messages, mine, answers, reads=reads, exists_locally=exists
    )
    if not reads.message_ids:
        plan = await _adopt(backend, folder, plan, messages, remote.uidvalidity)
    if plan.uidvalidity_changed:
        log.warning(
            "account %s: UIDVALIDITY of %r changed (%s -> %s); re-matching local messages",
            account,
            folder,
            saved.uidvalidity if saved else None,
            remote.uidvalidity,
        )
    if dry_run:
        return FolderSyncResult(
            folder=folder,
            fetched=plan.fetch_count,
            removed=len(plan.of(DeleteLocal)),
            flag_changes=len(plan.of(SetLocalFlags)),
            rematched=len(plan.of(Rematch)),
            uidvalidity_changed=plan.uidvalidity_changed,
            plan=plan,
        )
    ex = Executor(backend, store, journal, progress)
    ex.defer = defer
    return await ex.run_folder(plan)


async def _adopt(
    backend: ReceiveBackend,
    folder: str,
    plan: FolderPlan,
    messages: Sequence[LocalMessage],
    uidvalidity: int,
) -> FolderPlan:
    """Copies without a UID may be messages the plan is about to fetch (a run killed
    between writing files and their rows): ask for just those Message-IDs first."""
    orphans = [m for m in messages if m.uid is None and m.message_id]
    fetching = [u for s in plan.of(Fetch) if isinstance(s, Fetch) for u in s.uids]
    if not orphans or not fetching:
        return plan
    try:
        headers = await backend.fetch_header_fields(folder, ["MESSAGE-ID"], uids=fetching)
    except Unsupported:
        return plan
    ids = [(uid, parse_message(h).message_id or "") for uid, h, _ in headers]
    return adopt_orphans(plan, orphans, ids, uidvalidity)


def _folder_exists(store: AccountStore, folder: str) -> bool:
    return (store.maildir.folder_path(folder) / "cur").is_dir()


# --------------------------------------------------------------------------- executing


class Executor:
    """Applies steps in order; the only code here that writes store or server."""

    def __init__(
        self,
        backend: ReceiveBackend,
        store: AccountStore,
        journal: Journal | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.backend = backend
        self.store = store
        self.journal = journal
        self.progress = progress
        self.fetched = 0
        self.removed = 0
        self.flag_changes = 0
        self.rematched = 0
        self.pushed = 0
        self.appended = 0
        self.confirmed: list[MessageRef] = []
        self.errors: list[str] = []
        self.result = AccountSyncResult()
        # A plan ending in Fetch + SaveState returns once its messages are received
        # and their files durable; the last batch's rows and the folder's state
        # are then saved by a task put here, which yields how many rows that batch
        # added to `fetched`. The caller (sync_account) selects the next folder
        # meanwhile and awaits the task: the one connection is free by then.
        self.defer: list[asyncio.Future[int]] | None = None

    def _ref(self, folder: str, key: str, msg_id: int | None) -> MessageRef:
        return MessageRef(self.store.account, folder, key, msg_id)

    async def run_folder(self, plan: FolderPlan) -> FolderSyncResult:
        steps = plan.steps
        fetch, save = (steps[-2], steps[-1]) if len(steps) >= 2 else (None, None)
        if self.defer is not None and isinstance(fetch, Fetch) and isinstance(save, SaveState):
            await self.run(steps[:-2])
            last: list[asyncio.Future[list[MessageRef]]] = []
            self.fetched += await _download(
                self.backend, self.store, fetch.folder, fetch.uids, self.progress, last
            )
            self.defer.append(asyncio.ensure_future(self._save_after(last, save)))
        else:
            await self.run(steps)
        skipped = len(getattr(self.backend, "skipped", {}).get(plan.folder, ()))
        return FolderSyncResult(
            folder=plan.folder,
            fetched=self.fetched,
            removed=self.removed,
            flag_changes=self.flag_changes,
            rematched=self.rematched,
            uidvalidity_changed=plan.uidvalidity_changed,
            skipped=skipped,
            pushed=self.pushed,
            appended=self.appended,
            confirmed=tuple(self.confirmed),
            errors=tuple(self.errors),
            plan=plan,
        )

    async def _save_after(
        self, last: list[asyncio.Future[list[MessageRef]]], save: SaveState
    ) -> int:
        """The folder's state, saved only once the rows of its last batch are committed."""
        done = await asyncio.gather(*last, return_exceptions=True)
        for refs in done:
            if isinstance(refs, BaseException):
                raise refs
        await self._one(save, self.store)
        return sum(len(refs) for refs in done if isinstance(refs, list))

    async def run(self, steps: Sequence[Step]) -> None:
        """Run `steps`; runs of the same kind go together (one transaction, one STORE)."""
        i = 0
        while i < len(steps):
            kind = type(steps[i])
            j = i
            while j < len(steps) and type(steps[j]) is kind:
                j += 1
            await self._run_group(kind, steps[i:j])
            i = j

    async def _run_group(self, kind: type[Step], steps: Sequence[Step]) -> None:
        store = self.store
        if kind is SetLocalFlags:
            await asyncio.to_thread(self._set_local_flags, steps)
        elif kind is Rematch:
            await asyncio.to_thread(self._rematch, steps)
        elif kind is DeleteLocal:
            await asyncio.to_thread(self._delete_local, steps)
        elif kind is PushFlags:
            await self._push(steps)
        else:
            for step in steps:
                await self._one(step, store)

    async def _one(self, step: Step, store: AccountStore) -> None:
        match step:
            case CreateFolder(folder=f):
                await asyncio.to_thread(store.create_folder, f)
                self.result.created.append(f)
            case RenameFolder(folder=old, new=new):
                await asyncio.to_thread(store.rename_folder, old, new)
                self.result.renamed.append((old, new))
                log.info(
                    "account %s: folder %r was renamed to %r on the server", store.account, old, new
                )
            case RemoveFolder(folder=f, on_disk=on_disk):
                if on_disk:
                    await asyncio.to_thread(store.delete_folder, f, True)
                else:
                    await asyncio.to_thread(store.index.remove_folder, store.account, f)
                await asyncio.to_thread(store.index.delete_folder_state, store.account, f)
                self.result.removed.append(f)
            case KeepFolder(folder=f):
                self.result.kept.append(f)
                log.warning(
                    "account %s: folder %r is gone on the server but holds local mail; kept",
                    store.account,
                    f,
                )
            case SetRole(folder=f, role=role):
                await asyncio.to_thread(store.index.set_folder_state, store.account, f, role=role)
            case ForgetServerIds(ids=ids):
                await asyncio.to_thread(self._forget, ids)
            case DropChange(entry=entry, msg_id=msg_id, last=last):
                await asyncio.to_thread(self._settle, entry, msg_id, last)
            case AppendRemote():
                await self._append(step)
            case Fetch(folder=f, uids=uids):
                self.fetched += await _download(self.backend, store, f, uids, self.progress)
            case SaveState(folder=f, uidvalidity=v, uidnext=n, highestmodseq=m):
                await asyncio.to_thread(
                    store.index.set_folder_state,
                    store.account,
                    f,
                    uidvalidity=v,
                    uidnext=n,
                    highestmodseq=m,
                )
            case DeleteRemote(folder=f, ids=ids):
                await self.backend.remove_from_server(f, list(ids))
            case MoveRemote(folder=f, ids=ids, to_folder=to, copy=copy):
                if copy:
                    await self.backend.copy(f, list(ids), to)
                else:
                    await self.backend.move(f, list(ids), to)
            case _:
                raise TypeError(f"no executor for {type(step).__name__}")

    # -- local writes (run in a thread; one transaction per group)

    def _forget(self, ids: Sequence[int]) -> None:
        with self.store.index.transaction():
            for msg_id in ids:
                self.store.index.set_server_id(msg_id, ServerId())

    def _rematch(self, steps: Sequence[Step]) -> None:
        with self.store.index.transaction():
            for s in steps:
                assert isinstance(s, Rematch)
                self.store.index.set_server_id(
                    s.msg_id, ServerId(uid=s.uid, uidvalidity=s.uidvalidity)
                )
                self.rematched += 1

    def _set_local_flags(self, steps: Sequence[Step]) -> None:
        with self.store.index.transaction():
            for s in steps:
                assert isinstance(s, SetLocalFlags)
                self.store.set_flags(self._ref(s.folder, s.key, s.msg_id), s.letters, s.pending)
                self.flag_changes += 1

    def _delete_local(self, steps: Sequence[Step]) -> None:
        for s in steps:
            assert isinstance(s, DeleteLocal)
            self.store.remove(self._ref(s.folder, s.key, s.msg_id))
            self.removed += 1

    def _settle(self, entry: int, msg_id: int, last: bool) -> None:
        """A journal entry is done with: drop it; the last one clears `pending`, in the
        same transaction (as server_ops.settle)."""
        with self.store.index.transaction():
            if self.journal is not None:
                self.journal.mark_done(entry)
            if last:
                self.store.index.set_pending([msg_id], False)

    def _failed(self, entry: int, error: str) -> None:
        if self.journal is None:
            return
        found = self.journal.get(entry)
        delay = Backoff(attempts=found.attempts if found else 0).next_delay()
        self.journal.mark_failed(entry, error, time.time() + delay)

    # -- server writes

    async def _push(self, steps: Sequence[Step]) -> None:
        """STORE the changes; consecutive ones with the same flags go in one command."""
        pushes = [s for s in steps if isinstance(s, PushFlags)]
        refused: set[int] = set()  # their later changes wait for the next sync, in order
        i = 0
        while i < len(pushes):
            first = pushes[i]
            group = [first]
            seen = {first.msg_id}
            j = i + 1
            while (
                j < len(pushes)
                and (pushes[j].add, pushes[j].remove, pushes[j].folder)
                == (first.add, first.remove, first.folder)
                and pushes[j].msg_id not in seen  # order matters for one message's changes
            ):
                group.append(pushes[j])
                seen.add(pushes[j].msg_id)
                j += 1
            i = j
            group = [s for s in group if s.msg_id not in refused]
            if not group:
                continue
            try:
                await self.backend.set_flags(
                    first.folder, [s.server_id for s in group], first.add, first.remove
                )
            except ConnectError:
                raise
            except MailError as exc:
                for s in group:
                    await asyncio.to_thread(self._failed, s.entry, str(exc))
                    refused.add(s.msg_id)
                self.errors.append(str(exc))
                continue
            for s in group:
                await asyncio.to_thread(self._settle, s.entry, s.msg_id, s.last)
                self.confirmed.append(self._ref(s.folder, s.key, s.msg_id))
                self.pushed += 1

    async def _append(self, step: AppendRemote) -> None:
        """APPEND a local addition, or adopt the server's copy if it is already there.

        The check by Message-ID first makes a replay safe: a run killed
        between the server's OK and our bookkeeping must not store it twice.
        """
        backend, store = self.backend, self.store
        ref = self._ref(step.folder, step.key, step.msg_id)
        try:
            found: list[ServerId] = []
            if step.message_id and backend.has(Capability.SERVER_SEARCH):
                term = SearchTerm("header:Message-ID", step.message_id)
                found = await backend.search(step.folder, [term])
            if found:
                sid = max(found, key=lambda s: s.uid or 0)
            else:
                raw = await asyncio.to_thread(store.read, ref)
                flags = FlagSet.from_maildir(step.letters).flags
                sid = await backend.append(step.folder, raw, flags)
        except ConnectError:
            raise
        except MailError as exc:
            await asyncio.to_thread(self._failed, step.entry, str(exc))
            self.errors.append(str(exc))
            return

        def record() -> None:
            if sid.uid is not None:
                store.index.set_server_id(step.msg_id, sid)
            else:
                # No APPENDUID (no UIDPLUS): the next sync downloads the server's
                # copy with its UID; keeping this one too would make two.
                store.remove(ref)
            self._settle(step.entry, step.msg_id, True)

        await asyncio.to_thread(record)
        self.appended += 1
        self.confirmed.append(ref)


async def _download(
    backend: ReceiveBackend,
    store: AccountStore,
    folder: str,
    uids: Sequence[int],
    progress: Progress | None,
    tail: list[asyncio.Future[list[MessageRef]]] | None = None,
) -> int:
    """Download `uids` into the store; the number of rows committed.

    `tail`: the last batch's rows are not waited for but handed back in it (the
    caller awaits them before saving the folder's state); the count returned
    leaves them out.
    """
    if not uids:
        return 0
    received = 0

    def cb(done: int, total: int) -> None:
        if progress is not None:
            progress(folder, done, total, received)

    batch: list[tuple[bytes, str, ServerId | None]] = []
    size = 0
    stored = 0
    handed = 0  # messages in batches already handed to the writer
    want = batch_size(0, len(uids))
    letters: dict[FlagSet, str] = {}  # a folder has few distinct flag sets
    # The rows of the batches written last, handed to the indexer one after the
    # other: files are durable before their rows are written (write_files returns
    # only then), and every row is committed before this returns (or, with `tail`,
    # before the folder's state is saved). A batch is handed over while the one
    # before is still being committed, so the helper process goes from one to the
    # next. Several wait, so neither side stops for the other's slow moments;
    # bounded (INDEX_QUEUE, INDEX_QUEUE_BYTES), since each holds its messages until
    # its rows are in.
    indexing: list[asyncio.Future[list[MessageRef]]] = []
    queued: list[int] = []  # the bytes of each batch in `indexing`
    last_sent: asyncio.Future[None] | None = None  # done once the last batch was handed over
    last: asyncio.Future[list[MessageRef]] | None = None  # the last batch's rows

    async def index(
        before: asyncio.Future[None] | None,
        sent: asyncio.Future[None],
        before_rows: asyncio.Future[list[MessageRef]] | None,
        written: list[WrittenFile],
    ) -> list[MessageRef]:
        try:
            if before is not None:
                await asyncio.wait([before])  # in order
            rows = await asyncio.to_thread(store.send_rows, folder, written)
        finally:
            sent.set_result(None)  # the next may follow (an error is reported by our awaiter)
        if before_rows is not None:
            # Committed in order: waiting here rather than in a thread keeps the
            # threads free for writing files.
            await asyncio.wait([before_rows])
        return await asyncio.to_thread(store.rows_of, rows)

    async def flush() -> None:
        nonlocal stored, last_sent, last
        written = await asyncio.to_thread(store.write_files, folder, batch)
        while indexing and (len(indexing) >= INDEX_QUEUE or sum(queued) + size > INDEX_QUEUE_BYTES):
            # Awaited while still listed: cancelled meanwhile, the finally below
            # waits for it like the others.
            stored += len(await asyncio.shield(indexing[0]))
            indexing.pop(0)
            queued.pop(0)
        before, last_sent = last_sent, asyncio.get_running_loop().create_future()
        last = asyncio.ensure_future(index(before, last_sent, last, written))
        indexing.append(last)
        queued.append(size)

    # While one batch is written (in a thread) and the one before is indexed (in
    # another, or in the store's helper process on another core), the next keeps
    # arriving: the connection buffers it, bounded by the client's flow control.
    with store.bulk(len(uids)):
        try:
            async for msg in backend.fetch_messages(folder, uids, cb):
                raw = msg.raw
                received += len(raw)
                flags = letters.get(msg.flags)
                if flags is None:
                    flags = letters[msg.flags] = msg.flags.to_maildir()
                batch.append((to_local_line_endings(raw), flags, msg.server_id))
                size += len(raw)
                if len(batch) >= want or size >= DELIVER_BYTES:
                    handed += len(batch)
                    want = batch_size(handed, len(uids))
                    await flush()
                    batch, size = [], 0
            if batch:
                await flush()
            if tail is not None:
                tail.extend(indexing)
                indexing.clear()
            while indexing:
                stored += len(await asyncio.shield(indexing[0]))
                indexing.pop(0)
        finally:
            if indexing:
                # Failed or cancelled while a batch's rows are being written in a
                # thread (which cannot be stopped): let them land first.
                await asyncio.wait(indexing)
            for task in indexing:
                if not task.cancelled():
                    task.exception()  # the error that ended the download wins
    return stored


# --------------------------------------------------------------------------- the account


async def sync_account(
    backend: ReceiveBackend,
    store: AccountStore,
    progress: Progress | None = None,
    only_folder: str | None = None,
    *,
    journal: Journal | None = None,
    dry_run: bool = False,
) -> AccountSyncResult:
    """Follow the server's folder list, then sync every selectable folder (INBOX first).

    With `only_folder`, just that folder is synced (created locally if
    needed); folder renames and removals wait for a full run. A folder whose
    sync fails with a ProtocolError is reported in `errors` and the others
    go on; a ConnectError or AuthError, or a ProtocolError that ended the
    connection (`connection_lost`), ends the run. `dry_run`: plan only
    (see the module doc).
    """
    if dry_run:
        backend.read_only = True
        try:
            return await _sync_account(backend, store, progress, only_folder, journal, True)
        finally:
            backend.read_only = False
    # One index helper for every large download of the run. A first sync (nothing
    # saved yet) is where those are: it starts at once, ready for the first batch.
    first = not await asyncio.to_thread(store.index.folder_states, store.account)
    with store.bulk(0, early=first):
        return await _sync_account(backend, store, progress, only_folder, journal, False)


async def _sync_account(
    backend: ReceiveBackend,
    store: AccountStore,
    progress: Progress | None,
    only_folder: str | None,
    journal: Journal | None,
    dry_run: bool,
) -> AccountSyncResult:
    account = store.account
    remote = await backend.list_folders()
    by_name = {f.name: f for f in remote}
    infos = [
        RemoteFolderInfo(f.name, f.role if f.role != FolderRole.NONE else None, f.selectable)
        for f in remote
    ]
    saved = await asyncio.to_thread(_saved_states, store)
    aliases: dict[str, str] = {}  # dry run: new name -> where the local copy still is
    result = AccountSyncResult()
    if only_folder is not None:
        name = INBOX if is_inbox(only_folder) else only_folder
        if name not in by_name:
            raise ProtocolError(f"there is no folder {only_folder!r} on the server")
        targets = [by_name[name]]
        info = next(i for i in infos if i.name == name)
        state = saved.get(name)
        if state is None or state.role != info.role:
            result.folder_steps = [SetRole(name, info.role)]
    else:
        on_disk = set(await asyncio.to_thread(store.maildir.list_folders))
        validity_of: dict[str, int | None] = {}
        need = folders_needing_validity(infos, saved, on_disk)
        if need:
            statuses = await _statuses(backend, need)
            for n in need:
                st = statuses.get(n) or await backend.folder_state(n)
                validity_of[n] = st.uidvalidity
        gone = [
            n
            for n, s in saved.items()
            if s.uidvalidity is not None and n not in by_name and not is_inbox(n)
        ]

        def unsynced_counts() -> dict[str, int]:
            out = {}
            for n in gone:
                if not dry_run and n in on_disk:
                    store.rescan(n)  # files no index row knows yet count as local mail
                out[n] = unsynced_count(store, n)
            return out

        counts = await asyncio.to_thread(unsynced_counts)
        result.folder_steps = plan_folders(
            infos, saved, on_disk, validity_of, lambda n: counts.get(n, 0)
        )
        targets = [f for f in remote if f.selectable]
        if dry_run:
            for step in result.folder_steps:
                if isinstance(step, RenameFolder):
                    for n in list(on_disk):
                        if n == step.folder or n.startswith(step.folder + "/"):
                            aliases[step.new + n[len(step.folder) :]] = n
    if not dry_run and result.folder_steps:
        ex = Executor(backend, store, journal)
        ex.result = result
        await ex.run(result.folder_steps)
        saved = await asyncio.to_thread(_saved_states, store)
    changes = await asyncio.to_thread(load_changes, journal, account) if journal else []

    # One pipelined STATUS: with CONDSTORE, a folder that did not move is not selected.
    condstore = backend.has(Capability.CONDSTORE)
    statuses: dict[str, RemoteState] = {}
    local_counts: dict[str, int] = {}
    if condstore and targets:
        statuses = await _statuses(backend, [f.name for f in targets])
        local_counts = await asyncio.to_thread(_copies_with_uid, store)
        # Folders with mail first (INBOX before all), the empty ones after: theirs is
        # only a state to save, which would wait for the index helper's write lock in
        # the middle of the downloads, and waits for nothing once they are done.
        targets.sort(key=lambda f: (f.name != INBOX, _known_empty(statuses.get(f.name))))
    # A folder's last rows and its state (Executor.defer) are saved while the next
    # folder is selected and fetched; awaited before the one after registers its own.
    tails: list[asyncio.Future[int]] = []
    tail_of = -1  # its FolderSyncResult's place in result.folders

    async def settle() -> None:
        if not tails:
            return
        rows = await asyncio.shield(tails[0])
        done = result.folders[tail_of]
        result.folders[tail_of] = msgspec.structs.replace(done, fetched=done.fetched + rows)
        tails.clear()

    try:
        for f in targets:
            if tails and tails[0].done():
                await settle()  # a failure there ends the run now, not a folder later
            src = aliases.get(f.name, f.name)
            status = statuses.get(f.name)
            due = any(c.due and c.folder == f.name for c in changes)
            if (
                status is not None
                and status.uidvalidity is not None
                and not due
                and unchanged(
                    saved.get(src),
                    _server_state(status, f.name),
                    condstore=condstore,
                    local=local_counts.get(src, 0),
                )
            ):
                result.folders.append(FolderSyncResult(folder=f.name, unchanged=True))
                continue
            mine: list[asyncio.Future[int]] = []
            try:
                res = await sync_folder(
                    backend,
                    store,
                    f.name,
                    progress,
                    journal=journal,
                    changes=changes,
                    dry_run=dry_run,
                    source=src,
                    defer=mine,
                    status=status,
                )
            except ProtocolError as exc:
                if getattr(exc, "connection_lost", False):
                    raise  # the server broke the session, not just this folder
                log.warning("account %s: folder %r: %s", account, f.name, exc)
                result.errors[f.name] = str(exc)
                continue
            finally:
                if mine:  # one pending at a time; the one before is done by now in practice
                    try:
                        await settle()
                    finally:
                        # Even when the folder before failed: this one's last rows
                        # and state are still being saved, and are waited for below
                        # before the error ends the run (never left running behind it).
                        tails.extend(mine)
            if res.errors:
                result.errors[f.name] = "; ".join(res.errors)
            result.folders.append(res)
            if mine:
                tail_of = len(result.folders) - 1
        await settle()
    finally:
        if tails:  # the run failed or was cancelled: let the rows land, the state after
            await asyncio.wait(tails)
            for t in tails:
                if not t.cancelled():
                    t.exception()  # the error that ended the run wins
    return result


def _known_empty(status: RemoteState | None) -> bool:
    return status is not None and status.exists == 0


def _copies_with_uid(store: AccountStore) -> dict[str, int]:
    """Local copies the server knows, per folder (messages_by_uid answers it): fewer
    than the server's MESSAGES means copies went missing here. Local-only mail
    (no UID) is left out, or it would hide them."""
    rows = store.index.execute_read(
        "SELECT folder, count(*) FROM messages WHERE account = ? AND uid IS NOT NULL"
        " GROUP BY folder",
        (store.account,),
    )
    return {str(r[0]): int(r[1]) for r in rows}


async def _statuses(backend: ReceiveBackend, folders: Sequence[str]) -> dict[str, RemoteState]:
    try:
        return await backend.folder_statuses(folders)
    except Unsupported:
        return {}
