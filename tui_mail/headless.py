"""Running account commands without the TUI, for `tui-mail sync` and scripts."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from tui_mail.config.schema import AppConfig
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.core.sanitize import inert_line
from tui_mail.sync.runtime import Runtime

Reporter = Callable[[ev.Event], None]


def text_reporter(out: TextIO = sys.stderr, quiet: bool = False) -> Reporter:
    """One line per interesting event; server-supplied text is made inert first."""

    last: dict[str, str] = {}

    def report(event: ev.Event) -> None:
        line = describe(event)
        if not line or (quiet and not isinstance(event, (ev.Failed, ev.BackendError))):
            return
        # A setup error is both announced and the reply to each command: say it once.
        if last.get(event.account) == line:
            return
        last[event.account] = line
        print(f"{event.account}: {inert_line(line)}", file=out, flush=True)

    return report


def describe(event: ev.Event) -> str | None:
    match event:
        case ev.SyncProgress(folder=f, activity=a, done=d, total=t):
            return f"{a} {f} ({d}/{t})"
        case ev.SyncFinished(fetched=f, deleted=d, flag_changes=c):
            return f"sync done: {f} new, {d} removed, {c} changed"
        case ev.ConnectionChanged(state=s, detail=d, retry_in=r):
            retry = f", retrying in {r:.0f}s" if r else ""
            return f"{s.value}{': ' + d if d else ''}{retry}"
        case ev.Failed(message=m) | ev.UnsupportedReply(message=m):
            return f"error: {m}"
        case ev.BackendError(message=m):
            return f"error: {m}"
    return None


async def run_commands(
    config: AppConfig,
    per_account: dict[str, Sequence[cmd.Command]],
    report: Reporter,
) -> bool:
    """Run each account's commands in order; True when every one ended in Done."""
    runtime = Runtime(config)
    outstanding: dict[int, asyncio.Future[ev.Event]] = {}
    loop = asyncio.get_running_loop()

    def on_event(event: ev.Event) -> None:
        report(event)
        fut = outstanding.get(event.in_reply_to or -1)
        if fut is not None and not fut.done() and _is_terminal(event):
            fut.set_result(event)

    ok = True
    await runtime.start(on_event, initial_sync=False, poll=False)
    try:
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


def _is_terminal(event: ev.Event) -> bool:
    return isinstance(event, (ev.Done, ev.Failed, ev.Cancelled, ev.UnsupportedReply))
