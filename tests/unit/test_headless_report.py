"""What `tui-mail sync` prints (tui_mail/headless.py): one line per thing worth saying."""

from __future__ import annotations

import io

from tui_mail.core import events as ev
from tui_mail.headless import text_reporter

A = "alice"
OFFLINE = ev.ConnectionState.OFFLINE


def lines(events: list[ev.Event], *, watch: bool = False) -> list[str]:
    out = io.StringIO()
    now = [0.0]
    report = text_reporter(out, watch=watch, clock=lambda: now[0])
    for event in events:
        report(event)
        now[0] += 0.1
    return out.getvalue().splitlines()


def test_one_shot_failure_is_one_line() -> None:
    why = "the IMAP server 127.0.0.1:1 refused the connection"
    got = lines(
        [
            ev.ConnectionChanged(account=A, state=ev.ConnectionState.CONNECTING),
            ev.ConnectionChanged(account=A, state=OFFLINE, detail=why),
            ev.Failed(account=A, in_reply_to=1, message=why),
        ]
    )
    assert got == [f"alice: error: {why}"]


def test_progress_is_throttled_but_the_last_line_always_shows() -> None:
    progress = [
        ev.SyncProgress(account=A, folder="INBOX", activity="fetching", done=d, total=50)
        for d in range(51)
    ]
    got = lines([*progress, ev.SyncFinished(account=A, fetched=50)])
    assert got[0] == "alice: fetching INBOX (0/50)"
    assert "alice: fetching INBOX (50/50)" in got
    assert len(got) < 10 and got[-1] == "alice: sync done: 50 new, 0 removed, 0 changed"


def test_watch_shows_state_changes_once_and_quiet_syncs_not_at_all() -> None:
    why = "the IMAP server 127.0.0.1:1 refused the connection"
    connected = ev.ConnectionChanged(account=A, state=ev.ConnectionState.CONNECTED)
    syncing = ev.ConnectionChanged(account=A, state=ev.ConnectionState.SYNCING)
    got = lines(
        [
            connected,
            syncing,
            connected,
            ev.SyncFinished(account=A),
            ev.ConnectionChanged(account=A, state=OFFLINE, detail=why, retry_in=2.0),
            ev.Failed(account=A, in_reply_to=5, message=why),
            connected,
            ev.SyncFinished(account=A, fetched=1),
        ],
        watch=True,
    )
    assert got == [
        "alice: connected",
        f"alice: offline: {why}, retrying in 2s",
        "alice: connected",
        "alice: sync done: 1 new, 0 removed, 0 changed",
    ]


def test_dry_run_plan_lines() -> None:
    got = lines([ev.SyncPlanned(account=A, folder="INBOX", steps=("fetch 2 new messages", "x"))])
    assert got == ["alice: dry run: INBOX: fetch 2 new messages", "alice: dry run: INBOX: x"]
