"""Events from an account worker to whoever listens (the TUI or the CLI).

Terminal replies carry `in_reply_to`; changes nobody asked for (new mail,
a flag changed elsewhere, the link dropped) have `in_reply_to = None`.
"""

from __future__ import annotations

from enum import Enum

from msgspec import Struct, field

from tui_mail.core.models import Folder, MessageRef


class Event(Struct, frozen=True, kw_only=True):
    account: str
    in_reply_to: int | None = None


# --- terminal replies: exactly one per command --------------------------------


class Done(Event, frozen=True, kw_only=True):
    pass


class Failed(Event, frozen=True, kw_only=True):
    message: str


class Cancelled(Event, frozen=True, kw_only=True):
    pass


class UnsupportedReply(Event, frozen=True, kw_only=True):
    message: str


# --- state and progress --------------------------------------------------------


class ConnectionState(Enum):
    OFFLINE = "offline"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    SYNCING = "syncing"
    AUTH_FAILED = "auth failed"
    LOCAL = "local"  # no network involved (maildir, demo)


class ConnectionChanged(Event, frozen=True, kw_only=True):
    state: ConnectionState
    detail: str = ""
    retry_in: float | None = None  # seconds until the next attempt, if offline


class SyncProgress(Event, frozen=True, kw_only=True):
    """Replaceable: only the newest one per account matters to a display."""

    folder: str
    activity: str  # "fetching", "flags", "listing", ...
    done: int
    total: int
    bytes: int = 0  # bytes received so far for this activity, when known


class SyncFinished(Event, frozen=True, kw_only=True):
    fetched: int = 0
    deleted: int = 0
    flag_changes: int = 0
    finished_at: float = 0.0


class SyncPlanned(Event, frozen=True, kw_only=True):
    """A dry run's plan for one folder ("" = the account's folder list), one line a step."""

    folder: str
    steps: tuple[str, ...]


class FoldersListed(Event, frozen=True, kw_only=True):
    folders: tuple[Folder, ...]


class FolderUpdated(Event, frozen=True, kw_only=True):
    folder: Folder


class MessagesChanged(Event, frozen=True, kw_only=True):
    """Rows of `folder` were added, removed or changed: re-read the index."""

    folder: str
    added: int = 0
    removed: int = 0
    changed: tuple[MessageRef, ...] = field(default_factory=tuple)


class FlagsConfirmed(Event, frozen=True, kw_only=True):
    refs: tuple[MessageRef, ...]


class BackendError(Event, frozen=True, kw_only=True):
    message: str
    retryable: bool = True


class SearchResults(Event, frozen=True, kw_only=True):
    refs: tuple[MessageRef, ...]
