"""The backend interface: small ABCs for the two roles an account composes.

A backend knows its protocol and nothing else: it never touches a widget,
never writes the store itself (the sync engine does), and says what it can
do through `capabilities` so callers never test its type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, ClassVar

from msgspec import Struct

from tui_mail.core.capabilities import Capabilities, Capability
from tui_mail.core.errors import Unsupported
from tui_mail.core.flags import Flag, FlagSet
from tui_mail.core.models import FolderRole, RemoteMessage, ServerId

if TYPE_CHECKING:
    from tui_mail.config.schema import AccountConfig, EndpointConfig


class RemoteFolder(Struct, frozen=True):
    name: str  # "/"-separated, already decoded from the wire form
    role: FolderRole = FolderRole.NONE
    selectable: bool = True


class FolderState(Struct, frozen=True):
    """What a server says about a folder, for deciding what to fetch."""

    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    exists: int = 0


#: fields of a `SearchTerm` whose value is text (matched as a substring, case-insensitively)
SEARCH_TEXT_FIELDS = frozenset({"text", "body", "subject", "from", "to", "cc", "bcc"})
#: fields whose value is a `date` (the message's internal date, day granularity)
SEARCH_DATE_FIELDS = frozenset({"since", "before", "on"})
#: fields that test a flag (value ignored; `negate` asks for the flag's absence)
SEARCH_FLAG_FIELDS = frozenset({"seen", "flagged", "answered", "draft", "deleted"})
#: fields whose value is a size in bytes
SEARCH_SIZE_FIELDS = frozenset({"larger", "smaller"})


class SearchTerm(Struct, frozen=True):
    """One condition of a server-side search; a search ANDs all its terms.

    `field` is one of the SEARCH_*_FIELDS above, or "header:Name" with a
    text value (a header line containing it). `negate` inverts the term.
    """

    field: str
    value: str | date | int | None = None
    negate: bool = False


class BackendContext(Struct, frozen=True):
    """What a backend is built from: its config section and the account's."""

    account: AccountConfig
    endpoint: EndpointConfig


ProgressCallback = Callable[[int, int], None]


class MailBackend(ABC):
    """Shared lifecycle of every backend."""

    #: the config name, e.g. "imap"; set by each implementation
    name: ClassVar[str] = ""
    #: which role(s) it can fill: "receive", "send"
    roles: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    def has(self, cap: Capability) -> bool:
        return cap in self.capabilities

    async def connect(self) -> None:  # noqa: B027 - local backends have nothing to open
        """Open connections and authenticate. Raises AuthError, TLSError, ConnectError."""

    async def close(self) -> None:  # noqa: B027
        """Release connections. Never raises."""

    async def abort(self) -> None:
        """Drop connections without a goodbye, so nothing pending is committed.

        POP3 applies DELE only at QUIT; after a failure we must not QUIT.
        """
        await self.close()

    async def check(self) -> str:
        """Prove the settings work (for `config check --online` and setup)."""
        await self.connect()
        await self.close()
        return "ok"


class ReceiveBackend(MailBackend):
    """A source of mail. Methods a backend lacks raise `Unsupported`.

    `LOCAL` backends (a Maildir tree) are their own store: the sync engine
    only rescans them. Remote ones stream messages for the engine to store.
    """

    roles = frozenset({"receive"})
    #: A dry run sets this: folders are opened read-only (IMAP EXAMINE) and every
    #: method that would change the server raises instead.
    read_only: bool = False

    def local_root(self) -> str | None:
        """For a LOCAL backend, the Maildir++ root that is the account's store."""
        return None

    def take_alerts(self) -> list[str]:
        """Messages the server says the user must see (IMAP [ALERT]), each once."""
        return []

    async def list_folders(self) -> Sequence[RemoteFolder]:
        return [RemoteFolder("INBOX", FolderRole.INBOX)]

    async def folder_state(self, folder: str) -> FolderState:
        raise Unsupported(f"{self.name}: folder state is not available")

    def fetch_new(
        self, folder: str, known: set[str], progress: ProgressCallback | None = None
    ) -> AsyncIterator[RemoteMessage]:
        """Yield messages the store does not have yet (`known`: server ids as text)."""
        raise Unsupported(f"{self.name}: fetching is not available")

    async def list_ids(self, folder: str) -> Sequence[str]:
        """Every server id in `folder` now (UIDLs, or UIDs as text)."""
        raise Unsupported(f"{self.name}: listing server ids is not available")

    async def remove_from_server(self, folder: str, ids: Sequence[ServerId]) -> None:
        """Called only after the local copies are durable (POP3 DELE, IMAP EXPUNGE)."""
        raise Unsupported(f"{self.name}: deleting on the server is not available")

    async def set_flags(
        self,
        folder: str,
        ids: Sequence[ServerId],
        add: frozenset[Flag],
        remove: frozenset[Flag],
    ) -> None:
        raise Unsupported(f"{self.name}: server flags are not available")

    async def copy(self, folder: str, ids: Sequence[ServerId], to_folder: str) -> None:
        raise Unsupported(f"{self.name}: copying on the server is not available")

    async def move(self, folder: str, ids: Sequence[ServerId], to_folder: str) -> None:
        raise Unsupported(f"{self.name}: moving on the server is not available")

    async def append(self, folder: str, raw: bytes, flags: frozenset[Flag]) -> ServerId:
        raise Unsupported(f"{self.name}: storing into a server folder is not available")

    async def search(self, folder: str, criteria: Sequence[SearchTerm]) -> list[ServerId]:
        """Messages of `folder` on the server matching every term (server-side search).

        For mail that is not downloaded; the ServerIds name the folder's
        current UIDVALIDITY. Empty `criteria` matches every message.
        """
        raise Unsupported(f"{self.name}: searching on the server is not available")

    async def folder_statuses(self, folders: Sequence[str]) -> dict[str, FolderState]:
        """UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and message count of each folder, without
        selecting it (IMAP STATUS). Folders the server cannot report are left out."""
        raise Unsupported(f"{self.name}: folder status is not available")

    async def wait_for_push(self, timeout: float) -> bool:
        """Block until the server reports a change (True) or `timeout` passes (False)."""
        raise Unsupported(f"{self.name}: push is not available")

    # -- UID-based sync (IMAP). Server ids below are UIDs valid for the folder's
    # current UIDVALIDITY, which `folder_state()` reports.

    def fetch_messages(
        self, folder: str, uids: Sequence[int], progress: ProgressCallback | None = None
    ) -> AsyncIterator[RemoteMessage]:
        """Stream these messages (in batches, pipelined), each with flags and ServerId.

        UIDs no longer on the server are skipped silently.
        """
        raise Unsupported(f"{self.name}: fetching by UID is not available")

    async def list_uids(self, folder: str, min_uid: int = 1) -> Sequence[int]:
        """UIDs in `folder` now that are >= `min_uid`, ascending."""
        raise Unsupported(f"{self.name}: listing UIDs is not available")

    async def fetch_flags(
        self, folder: str, since_modseq: int | None = None
    ) -> Sequence[tuple[int, FlagSet, int | None]]:
        """(uid, flags, modseq) for every message, or (CONDSTORE) only those whose
        flags changed after `since_modseq`."""
        raise Unsupported(f"{self.name}: fetching flags is not available")

    async def expunged(
        self, folder: str, known: Sequence[int], since_modseq: int | None = None
    ) -> Sequence[int]:
        """Which of the `known` UIDs are gone from the server (QRESYNC: since `since_modseq`)."""
        raise Unsupported(f"{self.name}: expunge detection is not available")

    async def fetch_header_fields(
        self, folder: str, fields: Sequence[str], uids: Sequence[int] | None = None
    ) -> Sequence[tuple[int, bytes, FlagSet]]:
        """(uid, raw header lines of `fields`, flags) for every message in `folder`
        (only those `uids` when given)."""
        raise Unsupported(f"{self.name}: fetching headers is not available")


class SendResult(Struct, frozen=True):
    accepted: tuple[str, ...]
    detail: str = ""


class SendBackend(MailBackend):
    roles = frozenset({"send"})

    @abstractmethod
    async def send(self, raw: bytes, sender: str, recipients: Sequence[str]) -> SendResult:
        """Hand one message to the transport. `raw` carries no Bcc header."""
