"""Running account commands without the TUI, for `tui-mail sync` and scripts."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from tui_mail.config.schema import AppConfig
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.core.capabilities import Capability
from tui_mail.core.sanitize import inert_line
from tui_mail.sync.runtime import Runtime

Reporter = Callable[[ev.Event], None]

# Progress lines at most this often per folder (a 10k-message folder would print 10k).
PROGRESS_EVERY = 1.0


def text_reporter(
    out: TextIO = sys.stderr,
    quiet: bool = False,
    *,
    watch: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> Reporter:
    """One line per interesting event; server-supplied text is made inert first.

    One-shot: progress, the result, and errors; connection states are left
    out, since a failure also ends the command with its one error line.
    `watch`: connection changes too (offline / connected again), and only
    syncs that changed something.
    """

    last: dict[str, str] = {}
    shown: dict[tuple[str, str], float] = {}
    state: dict[str, tuple[ev.ConnectionState, str]] = {}
    problem: dict[str, str] = {}  # account -> why it is offline or refused

    def report(event: ev.Event) -> None:
        if isinstance(event, ev.ConnectionChanged):
            # Only real changes: every sync passes through "syncing" back to "connected".
            if event.state in (ev.ConnectionState.CONNECTING, ev.ConnectionState.SYNCING):
                return
            now = (event.state, event.detail)
            if state.get(event.account) == now and not event.retry_in:
                return
            state[event.account] = now
            if event.state in (ev.ConnectionState.OFFLINE, ev.ConnectionState.AUTH_FAILED):
                problem[event.account] = event.detail
            else:
                problem.pop(event.account, None)
        if watch and isinstance(event, ev.Failed) and problem.get(event.account) == event.message:
            return  # a command failing for the reason the state line already gave
        if isinstance(event, ev.SyncProgress):
            key = (event.account, event.folder)
            now = clock()
            final = event.done >= event.total
            if not final and now - shown.get(key, -PROGRESS_EVERY) < PROGRESS_EVERY:
                return
            shown[key] = now
        if isinstance(event, ev.SyncPlanned):
            where = f"{event.folder}: " if event.folder else ""
            for step in event.steps:
                print(f"{event.account}: dry run: {inert_line(where + step)}", file=out, flush=True)
            return
        line = describe(event, watch=watch)
        if not line or (quiet and not isinstance(event, (ev.Failed, ev.BackendError))):
            return
        # A setup error is both announced and the reply to each command: say it once.
        if last.get(event.account) == line:
            return
        last[event.account] = line
        print(f"{event.account}: {inert_line(line)}", file=out, flush=True)

    return report


def describe(event: ev.Event, *, watch: bool = False) -> str | None:
    match event:
        case ev.SyncProgress(folder=f, activity=a, done=d, total=t, bytes=b):
            size = f", {_size(b)}" if b else ""
            return f"{a} {f} ({d}/{t}{size})"
        case ev.SyncFinished(fetched=f, deleted=d, flag_changes=c):
            if watch and not (f or d or c):
                return None
            return f"sync done: {f} new, {d} removed, {c} changed"
        case ev.SyncPlanned(folder=f, steps=steps):
            where = f"{f}: " if f else ""
            return "; ".join(f"dry run: {where}{s}" for s in steps)
        case ev.ConnectionChanged(state=s, detail=d, retry_in=r):
            if not watch or s in (ev.ConnectionState.CONNECTING, ev.ConnectionState.SYNCING):
                return None
            retry = f", retrying in {r:.0f}s" if r else ""
            return f"{s.value}{': ' + d if d else ''}{retry}"
        case ev.Failed(message=m) | ev.UnsupportedReply(message=m):
            return f"error: {m}"
        case ev.BackendError(message=m):
            return f"error: {m}"
    return None


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"


async def run_commands(
    config: AppConfig,
    per_account: dict[str, Sequence[cmd.Command]],
    report: Reporter,
) -> bool:
    """Run each account's commands in order; True when every one ended in Done."""
    runtime = Runtime(config, accounts=list(per_account))
    outstanding: dict[int, asyncio.Future[ev.Event]] = {}
    loop = asyncio.get_running_loop()

    def on_event(event: ev.Event) -> None:
        report(event)
        fut = outstanding.get(event.in_reply_to or -1)
        if fut is not None and not fut.done() and _is_terminal(event):
            fut.set_result(event)

    ok = True
    try:
        # Connecting is left to the first command, so a failure is reported once;
        # and no folder list first, which nothing here would show (~1-2 ms).
        await runtime.start(
            on_event, initial_sync=False, poll=False, connect=False, list_folders=False
        )
        waits = []
        for account, commands in per_account.items():
            for command in commands:
                outstanding[command.id] = loop.create_future()
                runtime.submit(account, command)
                waits.append(outstanding[command.id])
        for reply in await asyncio.gather(*waits):
            ok = ok and isinstance(reply, ev.Done)
    finally:
        await runtime.stop()
    return ok


async def watch(
    config: AppConfig,
    accounts: Sequence[str],
    report: Reporter,
    *,
    interval: float,
    folder: str | None = None,
) -> bool:
    """`tui-mail sync --watch`: one Runtime, connected, following pushes until a signal.

    Each account syncs once, then IDLE wakes a sync of its push folder and
    every `interval` seconds one STATUS round trip checks the others; a
    dropped link shows offline and comes back with backoff on its own.
    SIGINT/SIGTERM end it cleanly (True). False when no account can run at
    all (every one failed in a way a retry cannot fix).
    """
    runtime = Runtime(config, accounts=list(accounts))
    stop = asyncio.Event()
    dead: set[str] = set()

    def on_event(event: ev.Event) -> None:
        report(event)
        # Wrong password, untrusted certificate, bad config: nothing will get better.
        if isinstance(event, ev.ConnectionChanged):
            if event.state is ev.ConnectionState.AUTH_FAILED or (
                event.state is ev.ConnectionState.OFFLINE and event.detail and not event.retry_in
            ):
                dead.add(event.account)
            elif event.state is ev.ConnectionState.CONNECTED:
                dead.discard(event.account)
            if dead >= set(runtime.workers):
                stop.set()

    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        for name in accounts:
            backend = runtime.receive_backend(name)
            if folder and backend is not None and hasattr(backend, "push_folder"):
                backend.push_folder = folder  # IDLE on the folder being watched
        # The first sync connects: a failure is then reported once, not per command.
        await runtime.start(
            on_event, initial_sync=True, poll=True, connect=False, check_interval=interval
        )
        for name, worker in runtime.workers.items():
            if worker.setup_error:
                dead.add(name)
        if not dead >= set(runtime.workers):
            await stop.wait()
    finally:
        for sig in signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await runtime.stop()
    return not (dead and dead >= set(runtime.workers))


def _is_terminal(event: ev.Event) -> bool:
    return isinstance(event, (ev.Done, ev.Failed, ev.Cancelled, ev.UnsupportedReply))


def run_fsck(
    config: AppConfig,
    accounts: Sequence[str],
    *,
    repair: bool = False,
    server: bool = False,
    out: TextIO = sys.stdout,
) -> bool:
    """`tui-mail fsck`: each account's Maildir against the index (and the server).

    True when no problem is left. A damaged index file is only reported
    without `repair`; with it, it is moved aside (kept) and rebuilt from the
    Maildir. `repair` takes each server account's sync lock, so it never
    races a running sync; only the index changes, never a mail file or the
    server.
    """
    from tui_mail import paths
    from tui_mail.core.errors import MailError
    from tui_mail.store import fsck
    from tui_mail.store.index import move_aside
    from tui_mail.sync.lock import AccountLock

    def say(line: str) -> None:
        print(inert_line(line), file=out, flush=True)

    index_file = paths.index_path()
    damaged = fsck.check_index_file(index_file)
    if damaged:
        if not repair:
            say(f"PROBLEM: the index {index_file} is {damaged}")
            say("run `tui-mail fsck --repair` to move it aside and rebuild it from the Maildir")
            return False
        moved = move_aside(index_file)
        say(f"repaired: the index was {damaged}; moved to {moved}, rebuilt from the Maildir")
    runtime = Runtime(config, accounts=list(accounts))
    if runtime.index.was_reset:
        say(f"repaired: the index was unusable; moved to {runtime.index.moved_to}, rebuilt")
    locks: list[AccountLock] = []
    ok = True
    try:
        if repair:
            for name in accounts:
                receive = runtime.receive_backend(name)
                if receive is not None and not receive.has(Capability.LOCAL_STORE):
                    lock = AccountLock(name)
                    lock.acquire()  # AccountLocked says who holds it
                    locks.append(lock)
        for name in accounts:
            report = fsck.check_store(runtime.stores[name], repair=repair)
            receive = runtime.receive_backend(name)
            if server and receive is not None and not receive.has(Capability.LOCAL_STORE):
                try:
                    asyncio.run(
                        fsck.check_server(receive, runtime.stores[name], report, repair=repair)
                    )
                except MailError as exc:
                    report.findings.append(
                        fsck.Finding("server", "", f"cannot check the server: {exc}")
                    )
            for line in report.lines():
                say(line)
            ok = ok and not report.problems
    finally:
        for lock in locks:
            lock.release()
        runtime.index.close()
    return ok
