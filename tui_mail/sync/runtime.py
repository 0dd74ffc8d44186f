"""Builds every account's store, backends and worker, and runs the workers.

The same object serves the TUI (on Textual's loop) and the headless CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tui_mail import paths
from tui_mail.backends.base import BackendContext, ReceiveBackend, SendBackend
from tui_mail.backends.registry import make_receive, make_send
from tui_mail.config.schema import AccountConfig, AppConfig
from tui_mail.core import commands as cmd
from tui_mail.core.capabilities import Capability
from tui_mail.core.errors import MailError
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex
from tui_mail.sync.account import AccountWorker, Emit


def store_root(account: AccountConfig, receive: ReceiveBackend | None) -> Path:
    """A Maildir account's own tree is its store; others get one under the data dir."""
    if receive is not None and receive.has(Capability.LOCAL_STORE):
        local = receive.local_root()
        if local:
            return Path(local)
    return paths.mail_root(account.name)


class Runtime:
    def __init__(self, config: AppConfig, index_path: Path | None = None) -> None:
        self.config = config
        self.index = MailIndex.open(index_path or paths.index_path())
        self.stores: dict[str, AccountStore] = {}
        self.workers: dict[str, AccountWorker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._backends: dict[str, tuple[ReceiveBackend | None, SendBackend | None, str | None]] = {}
        for name, account in config.accounts.items():
            receive, send, error = _build_backends(account)
            self._backends[name] = (receive, send, error)
            self.stores[name] = AccountStore(name, store_root(account, receive), self.index)

    async def start(self, emit: Emit, *, initial_sync: bool = True, poll: bool = True) -> None:
        """Start one worker task per account on the running loop and return.

        `poll`: sync on each account's interval (the TUI, `sync --watch`);
        a one-shot CLI command turns it off.
        """
        for name, account in self.config.accounts.items():
            receive, send, error = self._backends[name]
            worker = AccountWorker(
                account, self.stores[name], emit, receive, send, error, poll=poll
            )
            self.workers[name] = worker
            self._tasks.append(asyncio.create_task(worker.run(), name=f"account:{name}"))
            if error is None:
                worker.submit(cmd.Connect())
                if initial_sync:
                    worker.submit(cmd.SyncNow())
            worker.submit(cmd.ListFolders())

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
        self.index.close()


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
