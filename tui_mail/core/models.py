"""Plain data that every layer passes around."""

from __future__ import annotations

from enum import Enum

from msgspec import Struct, field

from tui_mail.core.flags import FlagSet


class FolderRole(Enum):
    INBOX = "inbox"
    SENT = "sent"
    DRAFTS = "drafts"
    TRASH = "trash"
    JUNK = "junk"
    ARCHIVE = "archive"
    NONE = "none"


class Folder(Struct, frozen=True):
    """A folder as the user sees it; `name` uses "/" between levels."""

    account: str
    name: str
    role: FolderRole = FolderRole.NONE
    total: int = 0
    unread: int = 0


class Address(Struct, frozen=True):
    name: str
    addr: str

    def display(self) -> str:
        return self.name or self.addr


class MessageRef(Struct, frozen=True):
    """Identifies one stored message: its index row and where it lives."""

    account: str
    folder: str
    key: str  # the Maildir unique name, stable across flag changes
    id: int | None = None  # index row id, when known


class Envelope(Struct, frozen=True):
    """What the message list shows for one row."""

    ref: MessageRef
    date: int  # unix seconds, UTC
    sender: Address
    subject: str
    size: int
    flags: FlagSet
    has_attachment: bool = False
    thread_id: int | None = None
    thread_depth: int = 0
    pending: bool = False  # a local change the server has not confirmed yet
    message_id: str = ""


class ServerId(Struct, frozen=True):
    """Where a message lives on the server, for backends that have one."""

    uid: int | None = None  # IMAP UID
    uidvalidity: int | None = None
    modseq: int | None = None
    uidl: str | None = None  # POP3 UIDL


class RemoteMessage(Struct):
    """A message as a receive backend hands it to the store."""

    folder: str
    raw: bytes
    flags: FlagSet = field(default_factory=FlagSet)
    server_id: ServerId = field(default_factory=ServerId)
    internal_date: int | None = None
