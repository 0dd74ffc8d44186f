"""Events from an account worker to whoever listens (the TUI or the CLI).

Terminal replies carry `in_reply_to`; changes nobody asked for (new mail,
a flag changed elsewhere, the link dropped) have `in_reply_to = None`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from tui_mail.core.models import Folder, MessageRef


@dataclass(frozen=True, kw_only=True)
class Event:
    account: str
    in_reply_to: int | None = None


# --- terminal replies: exactly one per command --------------------------------


@dataclass(frozen=True, kw_only=True)
class Done(Event):
    pass


@dataclass(frozen=True, kw_only=True)
class Failed(Event):
    message: str


@dataclass(frozen=True, kw_only=True)
class Cancelled(Event):
    pass


@dataclass(frozen=True, kw_only=True)
class UnsupportedReply(Event):
    message: str


# --- state and progress --------------------------------------------------------


class ConnectionState(Enum):
    OFFLINE = "offline"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    SYNCING = "syncing"
    AUTH_FAILED = "auth failed"
    LOCAL = "local"  # no network involved (maildir, demo)


@dataclass(frozen=True, kw_only=True)
class ConnectionChanged(Event):
    state: ConnectionState
    detail: str = ""
    retry_in: float | None = None  # seconds until the next attempt, if offline


@dataclass(frozen=True, kw_only=True)
class SyncProgress(Event):
    """Replaceable: only the newest one per account matters to a display."""

    folder: str
    activity: str  # "fetching", "flags", "listing", ...
    done: int
    total: int
    bytes: int = 0  # bytes received so far for this activity, when known


@dataclass(frozen=True, kw_only=True)
class SyncFinished(Event):
    fetched: int = 0
    deleted: int = 0
    flag_changes: int = 0
    finished_at: float = 0.0


@dataclass(frozen=True, kw_only=True)
class SyncPlanned(Event):
    """A dry run's plan for one folder ("" = the account's folder list), one line a step."""

    folder: str
    steps: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class FoldersListed(Event):
    folders: tuple[Folder, ...]


@dataclass(frozen=True, kw_only=True)
class FolderUpdated(Event):
    folder: Folder


@dataclass(frozen=True, kw_only=True)
class MessagesChanged(Event):
    """Rows of `folder` were added, removed or changed: re-read the index."""

    folder: str
    added: int = 0
    removed: int = 0
    changed: tuple[MessageRef, ...] = field(default_factory=tuple)


@dataclass(frozen=True, kw_only=True)
class FlagsConfirmed(Event):
    refs: tuple[MessageRef, ...]


@dataclass(frozen=True, kw_only=True)
class BackendError(Event):
    message: str
    retryable: bool = True


@dataclass(frozen=True, kw_only=True)
class SearchResults(Event):
    refs: tuple[MessageRef, ...]
