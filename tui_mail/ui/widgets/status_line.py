"""One line at the bottom: where we are, each account's state, progress, the last error.

Per account: the connection state, what the sync is doing with "n/m", the
time of the last finished sync, the number of operations the server has not
confirmed yet, and when an offline account tries again. Rendered from plain
state objects (aerc's AccountState): events only change fields and refresh.
"""

from __future__ import annotations

import time

from msgspec import Struct
from textual.content import Content
from textual.widget import Widget

from tui_mail.core.events import ConnectionState
from tui_mail.core.sanitize import inert_line


class AccountStatus(Struct):
    state: ConnectionState | None = None
    detail: str = ""
    progress: tuple[str, str, int, int] | None = None  # folder, activity, done, total
    error: str = ""
    error_at: float = 0.0
    last_sync: float | None = None  # unix time of the last finished sync
    pending: int = 0  # operations the server has not confirmed yet
    retry_at: float | None = None  # unix time of the next connection attempt
    link_error: bool = False  # `error` came from the connection (cleared when it is back)


STATE_STYLE = {
    ConnectionState.CONNECTED: "$sync-ok",
    ConnectionState.LOCAL: "$sync-ok",
    ConnectionState.CONNECTING: "$warning",
    ConnectionState.SYNCING: "$warning",
    ConnectionState.OFFLINE: "$text-muted",
    ConnectionState.AUTH_FAILED: "$sync-error",
}


class StatusLine(Widget):
    DEFAULT_CSS = """
    StatusLine { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.accounts: dict[str, AccountStatus] = {}
        self.location = ""
        self.notice = ""  # an app-level message (config warnings, worker errors)
        self.notice_is_error = False

    def account(self, name: str) -> AccountStatus:
        return self.accounts.setdefault(name, AccountStatus())

    # --- attributes down ------------------------------------------------------------

    def set_state(
        self,
        account: str,
        state: ConnectionState,
        detail: str = "",
        retry_in: float | None = None,
    ) -> None:
        status = self.account(account)
        status.state, status.detail = state, detail
        status.retry_at = time.time() + retry_in if retry_in else None
        if state in (ConnectionState.OFFLINE, ConnectionState.AUTH_FAILED) and detail:
            status.error, status.error_at, status.link_error = detail, time.monotonic(), True
        elif state in (ConnectionState.CONNECTED, ConnectionState.LOCAL) and status.link_error:
            status.error, status.link_error = "", False  # the link is back: no longer news
        self.refresh()

    def set_synced(self, account: str, when: float) -> None:
        self.account(account).last_sync = when
        self.refresh()

    def set_pending(self, account: str, count: int) -> None:
        status = self.account(account)
        if status.pending != count:
            status.pending = count
            self.refresh()

    def clear_error(self, account: str) -> None:
        self.account(account).error = ""
        self.refresh()

    def set_progress(self, account: str, progress: tuple[str, str, int, int] | None) -> None:
        self.account(account).progress = progress
        self.refresh()

    def set_error(self, account: str, message: str) -> None:
        status = self.account(account)
        status.error, status.error_at, status.link_error = message, time.monotonic(), False
        self.refresh()

    def set_location(self, location: str) -> None:
        self.location = location
        self.refresh()

    def set_notice(self, message: str, *, error: bool = False) -> None:
        self.notice, self.notice_is_error = message, error
        self.refresh()

    # --- rendering -----------------------------------------------------------------------

    def render(self) -> Content:
        parts: list[Content | str | tuple[str, str]] = []
        if self.location:
            parts.append((f" {inert_line(self.location)} ", "bold"))
        last_error: tuple[float, str, str] | None = None
        for name, status in self.accounts.items():
            parts.append(" ")
            state = status.state.value if status.state else "starting"
            style = STATE_STYLE.get(status.state, "$text-muted") if status.state else "$text-muted"
            parts.append((f"{inert_line(name)}:", "bold"))
            parts.append((state, style))
            if status.progress is not None:
                folder, activity, done, total = status.progress
                parts.append(f" {inert_line(activity)} {inert_line(folder)} {done}/{total}")
            elif status.retry_at and status.state is ConnectionState.OFFLINE:
                parts.append((f" retry {_clock(status.retry_at)}", "$text-muted"))
            elif status.last_sync:
                parts.append((f" ✓{_clock(status.last_sync)}", "$text-muted"))
            if status.pending:
                parts.append((f" {status.pending} pending", "$flag-pending"))
            if status.error and (last_error is None or status.error_at > last_error[0]):
                last_error = (status.error_at, name, status.error)
        if self.notice:
            parts.append("  ")
            parts.append(
                (inert_line(self.notice), "$sync-error" if self.notice_is_error else "$warning")
            )
        if last_error is not None:
            parts.append("  ")
            parts.append(
                (f"{inert_line(last_error[1])}: {inert_line(last_error[2])}", "$sync-error")
            )
        return Content.assemble(*parts)


def _clock(when: float) -> str:
    return time.strftime("%H:%M", time.localtime(when))
