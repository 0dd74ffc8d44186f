"""Commands from the UI (or the CLI) to one account worker.

Every command carries an id; the worker answers each with exactly one
terminal event (`Done`, `Failed`, `Cancelled` or `UnsupportedReply`) whose
`in_reply_to` is that id. See docs/architecture.md.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tui_mail.core.flags import Flag
from tui_mail.core.models import MessageRef

_ids = itertools.count(1)


def next_command_id() -> int:
    return next(_ids)


@dataclass(frozen=True, kw_only=True)
class Command:
    id: int = field(default_factory=next_command_id)


@dataclass(frozen=True, kw_only=True)
class Connect(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class Disconnect(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class SyncNow(Command):
    folder: str | None = None  # None: every folder
    dry_run: bool = False


@dataclass(frozen=True, kw_only=True)
class ListFolders(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class SetFlags(Command):
    refs: tuple[MessageRef, ...]
    add: frozenset[Flag] = frozenset()
    remove: frozenset[Flag] = frozenset()


@dataclass(frozen=True, kw_only=True)
class Move(Command):
    refs: tuple[MessageRef, ...]
    to_folder: str
    copy: bool = False


@dataclass(frozen=True, kw_only=True)
class Delete(Command):
    refs: tuple[MessageRef, ...]


@dataclass(frozen=True, kw_only=True)
class Append(Command):
    folder: str
    raw: bytes
    flags: frozenset[Flag] = frozenset()


@dataclass(frozen=True, kw_only=True)
class Send(Command):
    raw: bytes  # a complete RFC 5322 message; Bcc is stripped before sending
    save_sent: bool = True


@dataclass(frozen=True, kw_only=True)
class FlushOutbox(Command):
    """Deliver queued messages that are due (`force`: also those waiting out a backoff)."""

    force: bool = False


@dataclass(frozen=True, kw_only=True)
class RetryOutbox(Command):
    """Queue a failed or uncertain outbox message again and deliver it: the user's decision
    (for an uncertain one, "resend": it may arrive twice). `outbox_id`: `id` is the
    command's own."""

    outbox_id: int


@dataclass(frozen=True, kw_only=True)
class CancelOutbox(Command):
    """Drop a queued, failed or uncertain outbox message ("discard"); it is not sent."""

    outbox_id: int


@dataclass(frozen=True, kw_only=True)
class Search(Command):
    query: str
    server: bool = False


@dataclass(frozen=True, kw_only=True)
class Shutdown(Command):
    pass
