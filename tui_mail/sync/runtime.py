"""Builds every account's store, backends and worker, and runs the workers.

The same object serves the TUI (on Textual's loop) and the headless CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

from tui_mail import paths
from tui_mail.backends.base import BackendContext, ReceiveBackend, SendBackend
from tui_mail.backends.registry import make_receive, make_send
from tui_mail.config.schema import AccountConfig, AppConfig
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.core.capabilities import Capability
from tui_mail.core.errors import MailError
from tui_mail.status import record_connection
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex
from tui_mail.sync.account import AccountWorker, Emit
from tui_mail.sync.lock import AccountLock


def store_root(account: AccountConfig, receive: ReceiveBackend | None) -> Path:
    """A Maildir account's own tree is its store; others get one under the data dir."""
    if receive is not None and receive.has(Capability.LOCAL_STORE):
        local = receive.local_root()
        if local:
            return Path(local)
    return paths.mail_root(account.name)


class Runtime:
    def __init__(
        self,
        config: AppConfig,
        index_path: Path | None = None,
        accounts: Sequence[str] | None = None,
    ) -> None:
        """`accounts`: run only these (`tui-mail sync --account`); default all."""
        self.config = config
        self.index = MailIndex.open(index_path or paths.index_path())
        self.stores: dict[str, AccountStore] = {}
        self.workers: dict[str, AccountWorker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._locks: list[AccountLock] = []
        # What start() was given, for accounts added later (add_account).
        self._emit: Emit | None = None
        self._start_args: tuple[bool, bool, bool, float | None, bool] | None = None
        self._backends: dict[str, tuple[ReceiveBackend | None, SendBackend | None, str | None]] = {}
        self._accounts = {
            name: account
            for name, account in config.accounts.items()
            if accounts is None or name in accounts
        }
        for name, account in self._accounts.items():
            receive, send, error = _build_backends(account)
            self._backends[name] = (receive, send, error)
            self.stores[name] = AccountStore(name, store_root(account, receive), self.index)

    async def start(
        self,
        emit: Emit,
        *,
        initial_sync: bool = True,
        poll: bool = True,
        connect: bool = True,
        check_interval: float | None = None,
        list_folders: bool = True,
    ) -> None:
        """Start one worker task per account on the running loop and return.

        `poll`: follow changes (push, periodic checks every `check_interval`
        seconds) and reconnect by itself (the TUI, `sync --watch`); a
        one-shot CLI command turns it off, and `connect=False` leaves
        connecting to its first command. `list_folders`: each worker first
        announces its folders (FoldersListed), for a folder pane; a command that
        shows none skips that. Raises AccountLocked when another process syncs
        one of the accounts (nothing is started then).
        """
        self._lock_accounts(list(self._accounts))
        self._emit = _noting_connections(emit)
        self._start_args = (initial_sync, poll, connect, check_interval, list_folders)
        for name in self._accounts:
            self._start_worker(name)

    def _start_worker(self, name: str) -> None:
        assert self._emit is not None and self._start_args is not None
        initial_sync, poll, connect, check_interval, list_folders = self._start_args
        receive, send, error = self._backends[name]
        worker = AccountWorker(
            self._accounts[name],
            self.stores[name],
            self._emit,
            receive,
            send,
            error,
            poll=poll,
            check_interval=check_interval,
        )
        self.workers[name] = worker
        self._tasks.append(asyncio.create_task(worker.run(), name=f"account:{name}"))
        if error is None:
            if connect:
                worker.submit(cmd.Connect())
            if initial_sync:
                worker.submit(cmd.SyncNow())
        if list_folders:
            worker.submit(cmd.ListFolders())

    def add_account(self, account: AccountConfig) -> None:
        """Run one more account (one the setup screen just wrote to the config file)
        as start() ran the others. MailError (AccountLocked among them) when it is
        already running or another process syncs it; nothing is started then."""
        name = account.name
        if name in self._accounts:
            raise MailError(f"account {name!r} is already running")
        if self._start_args is None:
            raise MailError("the accounts are not started yet")
        receive, send, error = _build_backends(account)
        self._accounts[name] = account
        self._backends[name] = (receive, send, error)
        held = len(self._locks)
        try:
            self._lock_accounts([name])
            self.stores[name] = AccountStore(name, store_root(account, receive), self.index)
            self._start_worker(name)
        except Exception:
            # Nothing of it stays: not its lock (another process may sync it), nor
            # its name (a retry would be told it is already running).
            for lock in self._locks[held:]:
                lock.release()
            del self._locks[held:]
            self._accounts.pop(name, None)
            self._backends.pop(name, None)
            self.stores.pop(name, None)
            raise

    def _lock_accounts(self, names: list[str]) -> None:
        """Server accounts only: a Maildir account's tree has no second copy to race on."""
        taken: list[AccountLock] = []
        try:
            for name in names:
                receive = self._backends[name][0]
                if receive is None or receive.has(Capability.LOCAL_STORE):
                    continue
                lock = AccountLock(name)
                lock.acquire()
                taken.append(lock)
        except MailError:
            for lock in taken:
                lock.release()
            raise
        self._locks.extend(taken)

    def _release(self) -> None:
        for lock in self._locks:
            lock.release()
        self._locks.clear()

    def receive_backend(self, account: str) -> ReceiveBackend | None:
        return self._backends[account][0]

    def submit(self, account: str, command: cmd.Command) -> None:
        self.workers[account].submit(command)

    async def stop(self, timeout: float = 5.0) -> None:
        for worker in self.workers.values():
            worker.submit(cmd.Shutdown())
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._tasks.clear()
        self._release()
        self.index.close()


def _noting_connections(emit: Emit) -> Emit:
    """`emit`, also noting each account's connection state for `tui-mail status`
    (which reads no network and so cannot ask the server itself)."""

    def emit_and_note(event: ev.Event) -> None:
        if isinstance(event, ev.ConnectionChanged) and event.state in _STATUS_WORDS:
            record_connection(event.account, _STATUS_WORDS[event.state])
        emit(event)

    return emit_and_note


# CONNECTING is left out: it comes and goes with every retry, and says nothing new.
_STATUS_WORDS = {
    ev.ConnectionState.CONNECTED: "online",
    ev.ConnectionState.SYNCING: "online",
    ev.ConnectionState.LOCAL: "online",
    ev.ConnectionState.OFFLINE: "offline",
    ev.ConnectionState.AUTH_FAILED: "offline",
}


def preload(config: AppConfig) -> None:
    """Import what building a Runtime for `config` needs (this module, the backends).

    Importing costs a few hundred milliseconds. The TUI calls this in a thread
    first, so its event loop keeps answering keys; a backend that fails to
    import is reported later by `_build_backends`, with the account.
    """
    from tui_mail.backends.registry import backend_class

    for account in config.accounts.values():
        for role, endpoint in (("receive", account.receive), ("send", account.send)):
            try:
                backend_class(endpoint.backend, role)
            except MailError:
                pass


def _build_backends(
    account: AccountConfig,
) -> tuple[ReceiveBackend | None, SendBackend | None, str | None]:
    """Backends that cannot be built leave the account open offline, with the reason."""
    receive = send = None
    errors = []
    try:
        receive = make_receive(BackendContext(account, account.receive))
    except MailError as exc:
        errors.append(str(exc))
    try:
        send = make_send(BackendContext(account, account.send))
    except MailError as exc:
        errors.append(str(exc))
    return receive, send, "; ".join(errors) or None
