"""Textual Messages that carry core Events from the account workers to the UI.

One wrapper class per kind of update the UI treats differently. The
high-rate ones say, through `can_replace`, when a newer one makes a queued
one pointless, so a burst of progress never floods the message queue.
"""

from __future__ import annotations

from textual.message import Message

from tui_mail.core import events as ev


class CoreEvent(Message, bubble=False):
    """Any event from an account worker; `event` is the core record."""

    def __init__(self, event: ev.Event) -> None:
        super().__init__()
        self.event = event

    @property
    def account(self) -> str:
        return self.event.account


class ProgressEvent(CoreEvent):
    """SyncProgress: only the newest per account matters."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ProgressEvent) and message.account == self.account


class ConnectionEvent(CoreEvent):
    """ConnectionChanged: the newest state per account wins."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ConnectionEvent) and message.account == self.account


class FolderEvent(CoreEvent):
    """FolderUpdated / FoldersListed: counts to re-read for an account."""

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, FolderEvent)
            and message.account == self.account
            and _folder_key(message.event) == _folder_key(self.event)
        )


class MessagesEvent(CoreEvent):
    """MessagesChanged: the UI re-reads the index, so only one per folder is needed."""

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, MessagesEvent)
            and message.account == self.account
            and getattr(message.event, "folder", None) == getattr(self.event, "folder", None)
        )


class ErrorEvent(CoreEvent):
    """Failed / BackendError / UnsupportedReply: never replaced, each is shown."""


class ReplyEvent(CoreEvent):
    """Done / Cancelled / SyncFinished / FlagsConfirmed and anything else."""


def _folder_key(event: ev.Event) -> str | None:
    if isinstance(event, ev.FolderUpdated):
        return event.folder.name
    return None  # FoldersListed: one per account


def wrap(event: ev.Event) -> CoreEvent:
    """The Textual message for a core event."""
    if isinstance(event, ev.SyncProgress):
        return ProgressEvent(event)
    if isinstance(event, ev.ConnectionChanged):
        return ConnectionEvent(event)
    if isinstance(event, ev.FolderUpdated | ev.FoldersListed):
        return FolderEvent(event)
    if isinstance(event, ev.MessagesChanged):
        return MessagesEvent(event)
    if isinstance(event, ev.Failed | ev.BackendError | ev.UnsupportedReply):
        return ErrorEvent(event)
    return ReplyEvent(event)
