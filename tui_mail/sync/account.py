"""One worker per account: commands in, events out, one terminal reply each.

The TUI runs it as an asyncio task on Textual's loop; the headless CLI runs
the very same code under `asyncio.run`. It owns the account's backends and
store; nothing else writes to them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from tui_mail import paths
from tui_mail.backends.base import ReceiveBackend, SendBackend
from tui_mail.config.schema import AccountConfig
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.core.capabilities import Capability
from tui_mail.core.errors import AuthError, ConnectError, MailError, ProtocolError, Unsupported
from tui_mail.core.flags import Flag, FlagSet
from tui_mail.core.models import FolderRole, MessageRef, ServerId
from tui_mail.core.redact import redact
from tui_mail.store.account_store import AccountStore
from tui_mail.store.journal import Journal
from tui_mail.store.maildir import to_local_line_endings
from tui_mail.store.seen import SeenServerIds
from tui_mail.sync.backoff import Backoff
from tui_mail.sync.download import DeletePolicy, download
from tui_mail.sync.imap_sync import Executor, sync_account
from tui_mail.sync.imap_sync import _download as download_uids
from tui_mail.sync.outbox import (
    LOCAL_SENT,
    DeliveryResult,
    Outbox,
    OutboxChanged,
    describe,
    flush_outbox,
)
from tui_mail.sync.outbox import State as OutboxState
from tui_mail.sync.plan import APPEND, Step, plan_expunge, plan_transfer
from tui_mail.sync.server_ops import SET_FLAGS, push_pending, record_flag_change

if TYPE_CHECKING:
    from tui_mail.search.query import Query

log = logging.getLogger(__name__)

Emit = Callable[[ev.Event], None]

# A rescan of an unchanged Maildir is cheap (0.3 s at 100k files); a POP3
# login is not, and many servers throttle clients that poll more often.
LOCAL_POLL_SECONDS = 60.0
REMOTE_POLL_SECONDS = 300.0
# RFC 2177 says re-issue IDLE before 29 minutes; NAT boxes often forget a silent
# flow after about 10, and only a DONE that goes unanswered reveals a link that
# died silently (a laptop that slept), so IDLE is renewed more often than that.
PUSH_WAIT_SECONDS = 9 * 60.0
# With push, the other folders are checked (LIST + one pipelined STATUS) this often.
CHECK_SECONDS = 60.0
# Download progress events between a folder's first and last: at most one per this
# many seconds. A status line shows one at a time; one per message cost ~3 us each
# (30 ms of a 10,000-message sync, on the process that also reads the network).
PROGRESS_INTERVAL = 0.05


class AccountWorker:
    def __init__(
        self,
        account: AccountConfig,
        store: AccountStore,
        emit: Emit,
        receive: ReceiveBackend | None,
        send: SendBackend | None,
        setup_error: str | None = None,
        *,
        poll: bool = True,
        check_interval: float | None = None,
    ) -> None:
        self.poll = poll
        self.check_interval = check_interval
        self.account = account
        self.name = account.name
        self.store = store
        self._emit = emit
        self.receive = receive
        self.send_backend = send
        self.setup_error = setup_error
        self.commands: asyncio.Queue[cmd.Command] = asyncio.Queue()
        self.backoff = Backoff()
        self.connected = False
        self._seen_ids: SeenServerIds | None = None
        self.journal = Journal(store.index)
        self._watcher: asyncio.Task[None] | None = None
        self._checker: asyncio.Task[None] | None = None
        self._online = asyncio.Event()  # the main connection is up (the push loop waits)
        self._resync_on_connect = False  # a reconnect after a drop syncs everything
        self._retry: asyncio.TimerHandle | None = None
        self._queued_syncs: set[str | None] = set()  # automatic syncs already queued
        self._outbox_box: Outbox | None = None
        # Bodies may wait for full-text search (AccountStore.fill_fts). Only a worker
        # that stays (poll: the TUI, --watch) fills them while idle: a one-shot
        # command's idle moment is the gap before its Shutdown, and a chunk there
        # only delays the exit (`tui-mail search` fills what is left itself).
        self._fts_backlog = poll
        self._handlers: dict[type[cmd.Command], Callable[[cmd.Command], Awaitable[None]]] = {
            cmd.Connect: self._on_connect,
            cmd.Disconnect: self._on_disconnect,
            cmd.SyncNow: self._on_sync,  # type: ignore[dict-item]
            cmd.ListFolders: self._on_list_folders,
            cmd.SetFlags: self._on_set_flags,  # type: ignore[dict-item]
            cmd.Move: self._on_move,  # type: ignore[dict-item]
            cmd.Delete: self._on_delete,  # type: ignore[dict-item]
            cmd.Append: self._on_append,  # type: ignore[dict-item]
            cmd.Send: self._on_send,  # type: ignore[dict-item]
            cmd.FlushOutbox: self._on_flush_outbox,  # type: ignore[dict-item]
            cmd.RetryOutbox: self._on_retry_outbox,  # type: ignore[dict-item]
            cmd.CancelOutbox: self._on_cancel_outbox,  # type: ignore[dict-item]
            cmd.Search: self._on_search,  # type: ignore[dict-item]
        }

    # ---------------------------------------------------------------- plumbing

    def emit(self, event_type: type[ev.Event], **fields: object) -> None:
        self._emit(event_type(account=self.name, **fields))  # type: ignore[arg-type]

    def _fetch_progress(self) -> Callable[[str, int, int, int], None]:
        """(folder, done, total, bytes) of a download as SyncProgress events: each
        folder's first and last, and at most one per PROGRESS_INTERVAL between."""
        shown: dict[str, float] = {}

        def progress(folder: str, done: int, total: int, nbytes: int) -> None:
            now = time.monotonic()
            if 0 < done < total and now - shown.get(folder, -PROGRESS_INTERVAL) < PROGRESS_INTERVAL:
                return
            shown[folder] = now
            self.emit(
                ev.SyncProgress,
                folder=folder,
                activity="fetching",
                done=done,
                total=total,
                bytes=nbytes,
            )

        return progress

    def submit(self, command: cmd.Command) -> None:
        self.commands.put_nowait(command)

    @property
    def is_local(self) -> bool:
        return self.receive is not None and self.receive.has(Capability.LOCAL_STORE)

    @property
    def store_is_final(self) -> bool:
        """No server keeps flags or folders (Maildir, POP3): local changes are final."""
        return self.receive is None or not self.receive.has(Capability.SERVER_FLAGS)

    def poll_interval(self) -> float | None:
        """Seconds between automatic syncs, or None when the backend pushes changes."""
        if self.receive is None or self.receive.has(Capability.PUSH):
            return None
        if self.check_interval:  # `sync --watch --interval`
            return self.check_interval
        configured = self.account.receive.options.get("poll_interval")
        if isinstance(configured, (int, float)) and configured > 0:
            return float(configured)
        return LOCAL_POLL_SECONDS if self.is_local else REMOTE_POLL_SECONDS

    def _start_watching(self) -> None:
        """Follow changes without a key press: server push where offered, else polling."""
        if not self.poll or self._watcher is not None or self.receive is None:
            return
        if self.receive.has(Capability.PUSH):
            # IDLE follows one folder; a periodic STATUS of all of them catches the rest.
            self._watcher = asyncio.create_task(self._push())
            self._checker = asyncio.create_task(self._poll(self._check_seconds()))
        elif interval := self.poll_interval():
            self._watcher = asyncio.create_task(self._poll(interval))

    def _check_seconds(self) -> float:
        if self.check_interval:
            return self.check_interval
        configured = self.account.receive.options.get("poll_interval")
        if isinstance(configured, (int, float)) and configured > 0:
            return float(configured)
        return CHECK_SECONDS

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.connected or self.is_local or self.store_is_final:
                self._request_sync()

    def _request_sync(self, folder: str | None = None) -> None:
        """Queue an automatic sync unless one that covers it is already waiting."""
        if None in self._queued_syncs or folder in self._queued_syncs:
            return
        self._queued_syncs.add(folder)
        self.submit(cmd.SyncNow(folder=folder))

    async def run(self) -> None:
        """Serve commands until `Shutdown`. Never lets an exception escape."""
        if self.setup_error:
            self.emit(ev.BackendError, message=self.setup_error, retryable=False)
        elif self.is_local:
            self.emit(ev.ConnectionChanged, state=ev.ConnectionState.LOCAL)
        else:
            # The Maildir is the truth: pick up what another tool changed, and
            # refill an index that was reset, before anything is fetched.
            await self._rescan_local_copy()
        if self.is_local or self.store_is_final:
            self._start_watching()  # remote servers: after the first connect tells us if they push
        try:
            while True:
                command = await self._next_command()
                if isinstance(command, cmd.Shutdown):
                    # The push task first: LOGOUT on a connection still in IDLE
                    # is taken for a bad DONE and never answered.
                    await self._stop_background()
                    await self._close()
                    self.emit(ev.Done, in_reply_to=command.id)
                    return
                await self.handle(command)
        finally:
            await self._stop_background()
            # Reached with Shutdown done, or cancelled after the grace period: no
            # more goodbyes, which could each wait for a server that is not answering.
            await self._close(polite=False)

    async def _stop_background(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        tasks = [t for t in (self._watcher, self._checker) if t is not None]
        self._watcher = self._checker = None
        for task in tasks:
            task.cancel()
        if tasks:
            # wait(), not awaiting each: their ends (cancelled, an error) stay theirs,
            # while a cancel of this worker itself still ends the wait.
            await asyncio.wait(tasks)
            for task in tasks:
                if not task.cancelled() and (exc := task.exception()) is not None:
                    log.debug("account %s: background task failed", self.name, exc_info=exc)

    async def _next_command(self) -> cmd.Command:
        """The next command; while none waits, bodies go into full-text search a chunk
        at a time, so a bulk download becomes searchable without holding it up."""
        while self._fts_backlog and self.commands.empty():
            try:
                self._fts_backlog = await asyncio.to_thread(self.store.fill_fts) > 0
            except MailError as exc:  # a broken index shows elsewhere; searching can wait
                log.warning("account %s: full-text indexing stopped: %s", self.name, exc)
                self._fts_backlog = False
        command = await self.commands.get()
        self._fts_backlog = self.poll  # anything may have stored mail; a check is one query
        return command

    async def handle(self, command: cmd.Command) -> None:
        """Run one command and send exactly one terminal reply."""
        handler = self._handlers.get(type(command))
        try:
            if handler is None:
                raise Unsupported(f"{type(command).__name__} is not available yet")
            await handler(command)
        except asyncio.CancelledError:
            self.emit(ev.Cancelled, in_reply_to=command.id)
            raise
        except Unsupported as exc:
            self.emit(ev.UnsupportedReply, in_reply_to=command.id, message=str(exc))
        except MailError as exc:
            self.emit(ev.Failed, in_reply_to=command.id, message=str(exc))
        except Exception as exc:  # a bug must not kill the worker or reach the screen raw
            log.exception("account %s: %s failed", self.name, type(command).__name__)
            self.emit(
                ev.Failed,
                in_reply_to=command.id,
                message=f"internal error in {type(command).__name__}: {redact(str(exc))}",
            )
        else:
            self.emit(ev.Done, in_reply_to=command.id)
        finally:
            self._show_alerts()

    def _show_alerts(self) -> None:
        if self.receive is None:
            return
        for text in self.receive.take_alerts():
            self.emit(ev.BackendError, message=f"server alert: {text}", retryable=False)

    async def _close(self, *, polite: bool = True) -> None:
        """Log out (`polite`), or drop the connections without a word (then POP3
        applies no DELE: the next session marks them again)."""
        if self._seen_ids is not None:
            self._seen_ids.close()
            self._seen_ids = None
        for backend in (self.receive, self.send_backend):
            if backend is not None:
                try:
                    await (backend.close() if polite else backend.abort())
                except Exception:  # closing is best effort by contract
                    log.debug("close failed", exc_info=True)
        self.connected = False
        self._online.clear()

    def _require_receive(self) -> ReceiveBackend:
        if self.receive is None:
            raise MailError(self.setup_error or f"{self.name}: no receive backend")
        return self.receive

    # ---------------------------------------------------------------- connection

    async def _on_connect(self, _: cmd.Command) -> None:
        backend = self._require_receive()
        if self.is_local:
            await backend.connect()
            return
        self.emit(ev.ConnectionChanged, state=ev.ConnectionState.CONNECTING)
        try:
            await backend.connect()
        except AuthError as exc:
            self.emit(ev.ConnectionChanged, state=ev.ConnectionState.AUTH_FAILED, detail=str(exc))
            raise
        except MailError as exc:
            # A certificate or config problem will not fix itself: no retry loop.
            retry = self.poll and getattr(exc, "retryable", True)
            delay = self.backoff.next_delay() if retry else None
            self.emit(
                ev.ConnectionChanged,
                state=ev.ConnectionState.OFFLINE,
                detail=str(exc),
                retry_in=delay,
            )
            if delay is not None:
                self._schedule_reconnect(delay)
            raise
        self.backoff.reset()
        self.connected = True
        self._online.set()
        self.emit(ev.ConnectionChanged, state=ev.ConnectionState.CONNECTED)
        self._start_watching()
        if self._resync_on_connect:
            # Back after a drop: whatever changed meanwhile, on either side, is synced now.
            self._resync_on_connect = False
            self._request_sync()

    def _schedule_reconnect(self, delay: float) -> None:
        # One pending attempt at a time, however many commands failed meanwhile.
        if self._retry is not None:
            self._retry.cancel()
        self._retry = asyncio.get_running_loop().call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        self._retry = None
        self._resync_on_connect = True
        if not self.connected:
            self.submit(cmd.Connect())

    async def _on_disconnect(self, _: cmd.Command) -> None:
        await self._close()
        if not self.is_local:
            self.emit(ev.ConnectionChanged, state=ev.ConnectionState.OFFLINE)

    # ---------------------------------------------------------------- folders and sync

    async def _rescan_local_copy(self) -> None:
        try:
            result = await asyncio.to_thread(self.store.rescan)
        except MailError as exc:
            self.emit(ev.BackendError, message=str(exc), retryable=False)
            return
        if result.added or result.removed or result.changed:
            for folder in self.store.maildir.list_folders():
                self.emit(ev.MessagesChanged, folder=folder)

    async def _on_list_folders(self, _: cmd.Command) -> None:
        folders = await asyncio.to_thread(self.store.folders)
        self.emit(ev.FoldersListed, folders=tuple(folders))

    async def _on_sync(self, command: cmd.SyncNow) -> None:
        self._queued_syncs.discard(command.folder)
        backend = self._require_receive()
        if not self.is_local:
            if backend.has(Capability.SERVER_FLAGS):
                await self._mirror(command)
            else:
                await self._download(command)
            return
        folders = [command.folder] if command.folder else self.store.maildir.list_folders()
        totals = ev.SyncFinished
        added = removed = changed = 0
        for n, folder in enumerate(folders, 1):
            self.emit(
                ev.SyncProgress, folder=folder, activity="scanning", done=n, total=len(folders)
            )
            if command.dry_run:
                continue
            result = await asyncio.to_thread(self.store.rescan, folder)
            added += result.added
            removed += result.removed
            changed += result.changed
            if result.added or result.removed or result.changed:
                self.emit(
                    ev.MessagesChanged, folder=folder, added=result.added, removed=result.removed
                )
        await self._on_list_folders(command)
        self.emit(
            totals,
            fetched=added,
            deleted=removed,
            flag_changes=changed,
            finished_at=time.time(),
        )

    async def _download(self, command: cmd.SyncNow) -> None:
        """Download-only accounts (POP3): a session per sync; QUIT commits deletes."""
        if command.dry_run:
            raise Unsupported(f"{self.name}: --dry-run needs a server that keeps folders")
        backend = self._require_receive()
        if not self.connected:
            await self._on_connect(command)
        self.emit(ev.ConnectionChanged, state=ev.ConnectionState.SYNCING)

        fetching = self._fetch_progress()

        def progress(done: int, total: int) -> None:
            fetching("INBOX", done, total, 0)

        try:
            result = await download(
                backend,
                self.store,
                self._seen(),
                DeletePolicy.from_endpoint(self.account.receive),
                progress=progress,
            )
        except MailError as exc:
            await self._connection_lost(exc)
            raise
        await backend.close()  # QUIT: only now does the server apply DELE
        self.connected = False
        self.emit(ev.ConnectionChanged, state=ev.ConnectionState.CONNECTED)
        if result.fetched:
            self.emit(ev.MessagesChanged, folder="INBOX", added=result.fetched)
        await self._on_list_folders(command)
        self.emit(
            ev.SyncFinished,
            fetched=result.fetched,
            deleted=result.deleted,
            finished_at=time.time(),
        )

    async def _mirror(self, command: cmd.SyncNow) -> None:
        """Servers that keep flags and folders (IMAP): one plan per folder pushes our
        changes and mirrors theirs (sync/plan.py); a dry run only reports the plan."""
        backend = self._require_receive()
        # A first sync downloads everything: its index helper (store/bulk.py) starts
        # before the connection, so the helper's own start-up runs on the other core
        # meanwhile instead of after it (sync_account's bulk block shares it).
        first = not command.dry_run and not await asyncio.to_thread(
            self.store.index.folder_states, self.name
        )
        with self.store.bulk(0, early=first):
            if not self.connected:
                await self._on_connect(command)
            self.emit(ev.ConnectionChanged, state=ev.ConnectionState.SYNCING)

            progress = self._fetch_progress()
            try:
                result = await sync_account(
                    backend,
                    self.store,
                    progress,
                    command.folder,
                    journal=self.journal,
                    dry_run=command.dry_run,
                )
                confirmed = result.confirmed
                if not command.dry_run:
                    # Changes in folders this run did not sync (one folder only, or gone).
                    confirmed += (await push_pending(backend, self.store, self.journal)).confirmed
            except AuthError as exc:
                self.emit(
                    ev.ConnectionChanged, state=ev.ConnectionState.AUTH_FAILED, detail=str(exc)
                )
                raise
            except ConnectError as exc:
                await self._connection_lost(exc)
                raise
            except ProtocolError as exc:
                if _ended_session(exc):
                    await self._connection_lost(exc)
                else:  # only this answer was refused: the account is not "syncing" for ever
                    self.emit(ev.ConnectionChanged, state=ev.ConnectionState.CONNECTED)
                raise
        self.emit(ev.ConnectionChanged, state=ev.ConnectionState.CONNECTED)
        if command.dry_run:
            planned = result.describe()
            for folder_name, lines in planned or [("", ["nothing to do"])]:
                self.emit(ev.SyncPlanned, folder=folder_name, steps=tuple(lines))
            return
        if confirmed:
            self.emit(ev.FlagsConfirmed, refs=confirmed)
        for folder in result.folders:
            if folder.fetched or folder.removed or folder.flag_changes or folder.appended:
                self.emit(
                    ev.MessagesChanged,
                    folder=folder.folder,
                    added=folder.fetched,
                    removed=folder.removed,
                )
            if folder.uidvalidity_changed:
                # The user must hear of it: the server renumbered every message.
                self.emit(
                    ev.BackendError,
                    message=(
                        f"{folder.folder}: the server reset this folder (UIDVALIDITY changed); "
                        f"{folder.rematched} local copies matched again by Message-ID, "
                        f"{folder.fetched} downloaded, nothing deleted"
                    ),
                    retryable=False,
                )
        await self._on_list_folders(command)
        for folder_name, message in result.errors.items():
            self.emit(ev.BackendError, message=f"{folder_name}: {message}")
        self.emit(
            ev.SyncFinished,
            fetched=result.fetched,
            deleted=sum(f.removed for f in result.folders),
            flag_changes=result.flag_changes,
            finished_at=time.time(),
        )

    async def _push(self) -> None:
        """Follow the server's pushes (IDLE) on their own connection; sync on each.

        Runs only while the main connection is up. When the push connection
        dies, a sync finds out whether the server is gone (then the worker
        shows offline and reconnects with backoff) or only that link was.
        """
        backend = self._require_receive()
        folder = str(getattr(backend, "push_folder", "INBOX"))
        failures = 0
        while True:
            await self._online.wait()
            try:
                changed = await backend.wait_for_push(timeout=PUSH_WAIT_SECONDS)
            except Unsupported:
                return  # no IDLE: the periodic check covers every folder
            except MailError as exc:
                log.info("account %s: push connection lost: %s", self.name, exc)
                self._request_sync()
                failures += 1
                await asyncio.sleep(min(30.0, float(failures)))  # let that sync decide first
                continue
            failures = 0
            if changed:
                self._request_sync(folder)

    def _seen(self) -> SeenServerIds:
        if self._seen_ids is None:
            self._seen_ids = SeenServerIds(paths.download_record_path())
        return self._seen_ids

    async def _connection_lost(self, exc: MailError) -> None:
        """Drop the session (no QUIT, so no DELE applies) and sync again after a backoff."""
        if self.receive is not None:
            try:
                await self.receive.abort()
            except Exception:  # the link is already broken; nothing more to do
                log.debug("abort failed", exc_info=True)
        self.connected = False
        self._online.clear()
        delay = self.backoff.next_delay() if self.poll else None
        self.emit(
            ev.ConnectionChanged, state=ev.ConnectionState.OFFLINE, detail=str(exc), retry_in=delay
        )
        if delay is not None:
            self._schedule_reconnect(delay)

    # ---------------------------------------------------------------- search

    async def _on_search(self, command: cmd.Search) -> None:
        """`server=True`: the server searches every folder (UID SEARCH), matches not
        downloaded yet are fetched into the store as a sync would, and the reply
        (SearchResults, then Done) names every match that is now local."""
        from tui_mail.search.query import QueryError, parse_query

        if not command.server:
            # The index is shared and read-only here: the UI and the CLI query it directly.
            raise Unsupported("local search runs on the index, not through an account")
        backend = self._require_receive()
        if not backend.has(Capability.SERVER_SEARCH):
            raise Unsupported(f"{self.name}: this server cannot search; only local mail counts")
        try:
            query = parse_query(command.query)
        except QueryError as exc:
            raise MailError(f"search: {exc}") from exc
        if not self.connected:
            await self._on_connect(command)
        try:
            refs = await self._server_search(backend, query)
        except AuthError as exc:
            self.emit(ev.ConnectionChanged, state=ev.ConnectionState.AUTH_FAILED, detail=str(exc))
            raise
        except (ConnectError, ProtocolError) as exc:
            if _ended_session(exc):
                await self._connection_lost(exc)
            raise
        self.emit(ev.SearchResults, in_reply_to=command.id, refs=tuple(refs))

    async def _server_search(self, backend: ReceiveBackend, query: Query) -> list[MessageRef]:
        from tui_mail.search.imap import server_search_plan
        from tui_mail.search.query import QueryError
        from tui_mail.search.run import ids_for_uids

        remote = await backend.list_folders()
        try:
            plan = server_search_plan(query, self.name, [f.name for f in remote])
        except QueryError as exc:
            raise MailError(f"search: {exc.message}") from exc
        selectable = {f.name for f in remote if f.selectable}

        progress = self._fetch_progress()
        refs: list[MessageRef] = []
        for folder, searches in plan.items():
            uids: set[int] = set()
            validity: int | None = None
            try:
                for terms in searches:
                    for sid in await backend.search(folder, terms):
                        if sid.uid is not None:
                            uids.add(sid.uid)
                            validity = sid.uidvalidity
            except ProtocolError as exc:
                # A folder the sync leaves out (`folders` patterns) is listed as not
                # selectable, like a \Noselect one: only a real folder's refusal counts.
                if folder in selectable or _ended_session(exc):
                    raise
                log.debug("account %s: %s not searched: %s", self.name, folder, exc)
                continue
            if not uids:
                continue
            if validity is not None and await asyncio.to_thread(self._stale, folder, validity):
                self.emit(
                    ev.BackendError,
                    message=f"{folder}: the server reset this folder (UIDVALIDITY changed); "
                    "sync it before searching it on the server",
                    retryable=False,
                )
                continue
            _, missing = await asyncio.to_thread(
                ids_for_uids, self.store.index, self.name, folder, sorted(uids)
            )
            if missing:
                fetched = await download_uids(backend, self.store, folder, missing, progress)
                if fetched:
                    self.emit(ev.MessagesChanged, folder=folder, added=fetched)
            ids, still_missing = await asyncio.to_thread(
                ids_for_uids, self.store.index, self.name, folder, sorted(uids)
            )
            if still_missing:
                self.emit(
                    ev.BackendError,
                    message=f"{folder}: {len(still_missing)} matching message(s) not downloaded"
                    " (over max_message_size, or gone from the server)",
                    retryable=False,
                )
            envs = await asyncio.to_thread(self.store.index.envelopes, ids)
            refs.extend(e.ref for e in envs)
        return refs

    def _stale(self, folder: str, validity: int) -> bool:
        """Do local copies of `folder` carry UIDs of another UIDVALIDITY (unsynced reset)?"""
        rows = self.store.index.execute_read(
            "SELECT 1 FROM messages WHERE account = ? AND folder = ? AND uid IS NOT NULL"
            " AND uidvalidity IS NOT NULL AND uidvalidity != ? LIMIT 1",
            (self.name, folder, validity),
        )
        return bool(rows)

    # ---------------------------------------------------------------- message operations

    def _flags_of(self, ref: MessageRef) -> FlagSet:
        found = self.store.maildir.locate(ref.folder, ref.key)
        if found is None:
            raise MailError(f"message {ref.key} is no longer in {ref.folder}")
        return FlagSet.from_maildir(found.flags)

    async def _on_set_flags(self, command: cmd.SetFlags) -> None:
        changed: list[MessageRef] = []
        for ref in command.refs:
            flags = self._flags_of(ref).with_(*command.add).without(*command.remove)
            with self.store.index.transaction():
                # The change and its journal entry commit together, or neither does.
                new_ref = self.store.set_flags(ref, flags.to_maildir(), not self.store_is_final)
                if not self.store_is_final and new_ref.id is not None:
                    record_flag_change(
                        self.journal, new_ref, new_ref.id, command.add, command.remove
                    )
            changed.append(new_ref)
        for folder in {r.folder for r in changed}:
            self.emit(
                ev.MessagesChanged,
                folder=folder,
                changed=tuple(r for r in changed if r.folder == folder),
            )
        if self.store_is_final:
            # No server keeps these flags: the change is final once written.
            self.emit(ev.FlagsConfirmed, refs=tuple(changed))
        elif self.connected and self.receive is not None:
            try:
                pushed = await push_pending(self.receive, self.store, self.journal)
            except (ConnectError, ProtocolError) as exc:
                if not _ended_session(exc):
                    raise
                await self._connection_lost(exc)  # stays pending; replayed at the next sync
            else:
                if pushed.confirmed:
                    self.emit(ev.FlagsConfirmed, refs=pushed.confirmed)
        await self._on_list_folders(command)

    async def _on_move(self, command: cmd.Move) -> None:
        if not self.store_is_final:
            await self._server_transfer(command.refs, command.to_folder, copy=command.copy)
            return
        for ref in command.refs:
            if command.copy:
                raw = await asyncio.to_thread(self.store.read, ref)
                flags = self._flags_of(ref).to_maildir()
                await asyncio.to_thread(self.store.deliver, command.to_folder, raw, flags)
            else:
                await asyncio.to_thread(self.store.move, ref, command.to_folder)
        self._announce_folders({r.folder for r in command.refs} | {command.to_folder})
        await self._on_list_folders(command)

    async def _on_delete(self, command: cmd.Delete) -> None:
        """Deleting moves to Trash; deleting in Trash removes for good."""
        trash = self._folder_with_role(FolderRole.TRASH) or "Trash"
        if not self.store_is_final:
            in_trash = tuple(r for r in command.refs if r.folder == trash)
            elsewhere = tuple(r for r in command.refs if r.folder != trash)
            if elsewhere:
                await self._server_transfer(elsewhere, trash, copy=False)
            if in_trash:
                await self._server_expunge(in_trash)
            return
        for ref in command.refs:
            if ref.folder == trash:
                await asyncio.to_thread(self.store.remove, ref)
            else:
                await asyncio.to_thread(self.store.move, ref, trash)
        self._announce_folders({r.folder for r in command.refs} | {trash})
        await self._on_list_folders(command)

    def _server_ids(
        self, refs: tuple[MessageRef, ...]
    ) -> dict[str, list[tuple[MessageRef, ServerId]]]:
        by_folder: dict[str, list[tuple[MessageRef, ServerId]]] = {}
        for ref in refs:
            info = self.store.index.file_info(self.name, ref.folder, ref.key)
            server = self.store.index.server_id(info.id) if info else None
            if server is None or server.uid is None:
                raise MailError(f"{ref.folder}: a message is not on the server yet; sync first")
            by_folder.setdefault(ref.folder, []).append((ref, server))
        return by_folder

    async def _server_transfer(
        self, refs: tuple[MessageRef, ...], to_folder: str, *, copy: bool
    ) -> None:
        """Move or copy on the server, then mirror the target folder.

        The local source copy goes only after the server confirmed the move;
        the target's copy then arrives by the sync with its new UID, so the
        store never holds the same message twice.
        """
        await self._push_first(refs)
        steps = plan_transfer(self._pairs(refs), to_folder, copy=copy)
        await self._execute(steps, refs)
        await self._mirror(cmd.SyncNow(folder=to_folder))

    async def _push_first(self, refs: tuple[MessageRef, ...]) -> None:
        """The flag changes still journalled for these messages reach the server before
        the messages are moved or copied there, backoff or not: the new copy takes the
        server's flags, and a change left behind was dropped with the source's row.
        MailError if one cannot be sent now: nothing is moved, nothing lost."""
        ids: set[int] = set()
        for ref in refs:
            info = self.store.index.file_info(self.name, ref.folder, ref.key)
            if info is not None:
                ids.add(info.id)
        waiting = [
            e
            for e in self.journal.pending(self.name)
            if e.op == SET_FLAGS and e.payload.get("id") in ids
        ]
        if not waiting:
            return
        backend = self._require_receive()
        if not self.connected:
            await self._on_connect(cmd.Connect())
        try:
            pushed = await push_pending(backend, self.store, self.journal, ids)
        except (ConnectError, ProtocolError) as exc:
            if _ended_session(exc):
                await self._connection_lost(exc)
            raise
        if pushed.confirmed:
            self.emit(ev.FlagsConfirmed, refs=pushed.confirmed)
        if pushed.failed:
            raise MailError(
                f"{pushed.failed} flag change(s) of these messages did not reach the server;"
                " nothing was moved: try again"
            )

    async def _server_expunge(self, refs: tuple[MessageRef, ...]) -> None:
        await self._execute(plan_expunge(self._pairs(refs)), refs)
        await self._on_list_folders(cmd.ListFolders())

    def _pairs(self, refs: tuple[MessageRef, ...]) -> list[tuple[str, int, str, ServerId]]:
        pairs = []
        for folder, items in self._server_ids(refs).items():
            for ref, server in items:
                info = self.store.index.file_info(self.name, ref.folder, ref.key)
                pairs.append((folder, info.id if info else (ref.id or 0), ref.key, server))
        return pairs

    async def _execute(self, steps: Sequence[Step], refs: tuple[MessageRef, ...]) -> None:
        """Run a plan of server operations; the local copies change after the server's OK."""
        backend = self._require_receive()
        if not self.connected:
            await self._on_connect(cmd.Connect())
        executor = Executor(backend, self.store, self.journal)
        try:
            await executor.run(steps)
        except (ConnectError, ProtocolError) as exc:
            if _ended_session(exc):
                await self._connection_lost(exc)
            raise
        finally:
            if executor.removed:
                for folder in sorted({r.folder for r in refs}):
                    self.emit(ev.MessagesChanged, folder=folder, removed=executor.removed)

    async def _on_append(self, command: cmd.Append) -> None:
        """Store a message into a folder. For a server account it is kept here at
        once (pending) and journalled; the folder's sync APPENDs it and records its
        UID, so it is never downloaded back as a second copy, and an append made
        offline is replayed at the next sync."""
        letters = FlagSet(frozenset(command.flags)).to_maildir()
        if self.store_is_final:
            await asyncio.to_thread(self.store.deliver, command.folder, command.raw, letters)
            self._announce_folders({command.folder})
            return
        raw = to_local_line_endings(command.raw)

        def store_and_journal() -> MessageRef:
            with self.store.index.transaction():
                ref = self.store.deliver(command.folder, raw, letters)
                assert ref.id is not None
                self.store.index.set_pending([ref.id], True)
                self.journal.add(
                    self.name, APPEND, {"id": ref.id, "folder": ref.folder, "key": ref.key}
                )
            return ref

        ref = await asyncio.to_thread(store_and_journal)
        self._announce_folders({ref.folder})
        try:
            await self._mirror(cmd.SyncNow(folder=ref.folder))
        except ConnectError:
            pass  # kept and journalled: the next sync uploads it (the offline state is shown)

    async def _on_send(self, command: cmd.Send) -> None:
        """Queue durably first, then try to deliver; a failure leaves it queued."""
        box = self._outbox()
        entry_id = await asyncio.to_thread(box.enqueue, self.name, command.raw)
        results = await self._flush(save_sent=command.save_sent)
        mine = next((r for r in results if r.id == entry_id), None)
        if mine is None:
            raise MailError("queued in the outbox; it will be sent when the server is reachable")
        if mine.state is not OutboxState.SENT:
            raise MailError(describe(mine))
        if self.is_local:
            # Local delivery may have put a copy into our own INBOX.
            await self._on_sync(cmd.SyncNow(folder="INBOX"))

    async def _on_flush_outbox(self, command: cmd.FlushOutbox) -> None:
        await self._flush(force=command.force)

    async def _on_retry_outbox(self, command: cmd.RetryOutbox) -> None:
        """Retry (failed) or resend (uncertain): the user decided, so deliver now."""
        await asyncio.to_thread(self._outbox().retry, command.outbox_id)
        await self._flush()

    async def _on_cancel_outbox(self, command: cmd.CancelOutbox) -> None:
        box = self._outbox()
        await asyncio.to_thread(box.cancel, command.outbox_id)
        # A cancel is no delivery, so flush_outbox would not report it: say it here.
        self._emit(OutboxChanged(account=self.name, entries=tuple(box.entries(self.name))))
        if self.send_backend is not None:
            await self._flush()

    def _outbox(self) -> Outbox:
        if self._outbox_box is None:
            self._outbox_box = Outbox(self.store.index)
        return self._outbox_box

    async def _flush(self, *, save_sent: bool = True, force: bool = False) -> list[DeliveryResult]:
        if self.send_backend is None:
            raise MailError(self.setup_error or f"{self.name}: no send backend")
        box = self._outbox()
        results = await flush_outbox(
            self.account,
            self.store,
            self.send_backend,
            self._emit,
            save_sent=self._sent_saver() if save_sent else None,
            force=force,
            outbox=box,
        )
        due = box.next_retry(self.name)
        if due is not None and self.poll:
            delay = max(1.0, due - time.time())
            asyncio.get_running_loop().call_later(delay, self.submit, cmd.FlushOutbox())
        return results

    def _sent_saver(self) -> object | None:
        """Where the Sent copy goes: the local store, the server's Sent, or nowhere."""
        if self.account.send.options.get("server_saves_sent") or self.account.receive.options.get(
            "server_saves_sent"
        ):
            return None
        if self.store_is_final:
            return LOCAL_SENT

        async def append_to_server_sent(raw: bytes) -> None:
            backend = self._require_receive()
            sent = self._folder_with_role(FolderRole.SENT) or "Sent"
            await backend.append(sent, raw, frozenset({Flag.SEEN}))
            self.submit(cmd.SyncNow(folder=sent))

        return append_to_server_sent

    def _folder_with_role(self, role: FolderRole) -> str | None:
        for folder in self.store.folders():
            if folder.role is role:
                return folder.name
        return None

    def _announce_folders(self, folders: set[str]) -> None:
        for folder in sorted(folders):
            self.emit(ev.MessagesChanged, folder=folder)


def _ended_session(exc: MailError) -> bool:
    """A dropped link, or a reply so broken that the client threw the connection
    away (the IMAP client marks those `connection_lost`): the account is offline."""
    return isinstance(exc, ConnectError) or bool(getattr(exc, "connection_lost", False))


def envelope_for(raw: bytes, default_sender: str) -> tuple[str, list[str], bytes]:
    """Sender, recipients (To, Cc, Bcc) and the bytes to transmit, without Bcc.

    Addresses are parsed strictly (compose.build): an encoded word hiding a
    CR/LF and a second address never becomes an extra recipient.
    """
    from tui_mail.compose.build import envelope, strip_bcc  # sending only: ~10 ms of email.*

    sender, recipients = envelope(raw, default_sender)
    return sender, recipients, strip_bcc(raw)
