"""Commands from the UI (or the CLI) to one account worker.

Every command carries an id; the worker answers each with exactly one
terminal event (`Done`, `Failed`, `Cancelled` or `UnsupportedReply`) whose
`in_reply_to` is that id. See docs/architecture.md.
"""

from __future__ import annotations

import itertools

from msgspec import Struct, field

from tui_mail.core.flags import Flag
from tui_mail.core.models import MessageRef

_ids = itertools.count(1)


def next_command_id() -> int:
    return next(_ids)


class Command(Struct, frozen=True, kw_only=True):
    id: int = field(default_factory=next_command_id)


class Connect(Command, frozen=True, kw_only=True):
    pass


class Disconnect(Command, frozen=True, kw_only=True):
    pass


class SyncNow(Command, frozen=True, kw_only=True):
    folder: str | None = None  # None: every folder
    dry_run: bool = False


class ListFolders(Command, frozen=True, kw_only=True):
    pass


class SetFlags(Command, frozen=True, kw_only=True):
    refs: tuple[MessageRef, ...]
    add: frozenset[Flag] = frozenset()
    remove: frozenset[Flag] = frozenset()


class Move(Command, frozen=True, kw_only=True):
    refs: tuple[MessageRef, ...]
    to_folder: str
    copy: bool = False


class Delete(Command, frozen=True, kw_only=True):
    refs: tuple[MessageRef, ...]


class Append(Command, frozen=True, kw_only=True):
    folder: str
    raw: bytes
    flags: frozenset[Flag] = frozenset()


class Send(Command, frozen=True, kw_only=True):
    raw: bytes  # a complete RFC 5322 message; Bcc is stripped before sending
    save_sent: bool = True


class FlushOutbox(Command, frozen=True, kw_only=True):
    """Deliver queued messages that are due (`force`: also those waiting out a backoff)."""

    force: bool = False


class RetryOutbox(Command, frozen=True, kw_only=True):
    """Queue a failed or uncertain outbox message again and deliver it: the user's decision
    (for an uncertain one, "resend": it may arrive twice). `outbox_id`: `id` is the
    command's own."""

    outbox_id: int


class CancelOutbox(Command, frozen=True, kw_only=True):
    """Drop a queued, failed or uncertain outbox message ("discard"); it is not sent."""

    outbox_id: int


class Search(Command, frozen=True, kw_only=True):
    query: str
    server: bool = False


class Shutdown(Command, frozen=True, kw_only=True):
    pass
