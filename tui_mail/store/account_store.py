"""One account's Maildir and its rows in the shared index, kept in step.

Order of every change: the file first (durable), then the index row. A crash
in between leaves a file the index does not know yet, which the next rescan
picks up; the reverse (a row without a file) never happens through here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from msgspec import Struct

from tui_mail.core.errors import StoreError
from tui_mail.core.flags import normalise_maildir_letters
from tui_mail.core.models import Folder, FolderRole, MessageRef, ServerId
from tui_mail.store.bulk import (
    BulkHelperError,
    IndexHelper,
    WrittenFile,
    cpus,
    take_prestarted,
)
from tui_mail.store.index import IndexedFile, MailIndex
from tui_mail.store.journal import Journal
from tui_mail.store.maildir import (
    INBOX,
    MaildirStore,
    StoredFile,
    file_name,
    is_inbox,
    split_name,
)
from tui_mail.store.parse import (
    MAX_PARSE_BYTES,
    ParsedHeaders,
    parse_body,
    parse_headers,
    parse_message,
)

# Rescans index new files in chunks: each chunk is one transaction, so other
# writers (the UI marking a message read) wait at most one chunk.
RESCAN_CHUNK = 500
# fill_fts default: ~0.1-0.2 s of work, so an idle worker stays responsive.
FTS_CHUNK = 200
# Downloads from this many messages on index in a helper process (see bulk()): its
# start (~0.1 s of CPU, on the other core) pays for itself from about here.
BULK_HELPER_MIN = 1000

log = logging.getLogger(__name__)


_ROLE_NAMES: dict[str, FolderRole] = {
    "inbox": FolderRole.INBOX,
    "sent": FolderRole.SENT,
    "sent items": FolderRole.SENT,
    "sent messages": FolderRole.SENT,
    "sent mail": FolderRole.SENT,
    "drafts": FolderRole.DRAFTS,
    "draft": FolderRole.DRAFTS,
    "trash": FolderRole.TRASH,
    "deleted items": FolderRole.TRASH,
    "deleted messages": FolderRole.TRASH,
    "bin": FolderRole.TRASH,
    "junk": FolderRole.JUNK,
    "spam": FolderRole.JUNK,
    "junk e-mail": FolderRole.JUNK,
    "junk email": FolderRole.JUNK,
    "archive": FolderRole.ARCHIVE,
    "archives": FolderRole.ARCHIVE,
}
# Containers whose children are the special folders on common servers.
_ROLE_PARENTS = ("inbox", "[gmail]", "[google mail]")


def role_for_name(name: str) -> FolderRole:
    """A folder's role guessed from its name (servers with SPECIAL-USE say it instead)."""
    if is_inbox(name):
        return FolderRole.INBOX
    parent, _, last = name.rpartition("/")
    if parent and parent.casefold() not in _ROLE_PARENTS:
        return FolderRole.NONE
    return _ROLE_NAMES.get(last.casefold(), FolderRole.NONE)


class RescanResult(Struct, frozen=True):
    added: int = 0
    removed: int = 0
    changed: int = 0

    def __add__(self, other: RescanResult) -> RescanResult:
        return RescanResult(
            self.added + other.added, self.removed + other.removed, self.changed + other.changed
        )


def _hint(info: IndexedFile | None) -> tuple[str, str] | None:
    return (info.subdir, info.flags) if info else None


class SentRows(Struct, frozen=True):
    """A batch `AccountStore.send_rows` handed over: to the bulk helper (`ticket`),
    or already committed here (`ids`)."""

    folder: str
    written: Sequence[WrittenFile]
    helper: IndexHelper | None = None
    ticket: int = -1
    ids: list[int] | None = None


class AccountStore:
    def __init__(self, account: str, root: Path, index: MailIndex) -> None:
        self.account = account
        self.index = index
        self.maildir = MaildirStore(root)
        self.bulk_helper: IndexHelper | None = None  # see bulk()
        self._bulk_depth = 0
        self._bulk_failed = False  # the helper cannot start here: do not try each time
        self._helper_lock = threading.Lock()  # dropping a failed helper, once

    @property
    def root(self) -> Path:
        return self.maildir.root

    # -- messages

    def _info(self, ref: MessageRef) -> IndexedFile | None:
        return self.index.file_info(self.account, ref.folder, ref.key)

    def _index_file(self, stored: StoredFile, raw: bytes | None, server: ServerId | None) -> int:
        if raw is None:
            raw = stored.path.read_bytes()
        parsed = parse_message(raw, stored.mtime)
        return self.index.upsert(self.account, stored.folder, stored, parsed, server)

    def deliver(
        self,
        folder: str,
        raw: bytes,
        flags: str = "",
        server: ServerId | None = None,
        key: str | None = None,
    ) -> MessageRef:
        """Store a message: the file is durable before its index row exists."""
        folder = INBOX if is_inbox(folder) else folder
        stored = self.maildir.add(folder, raw, flags, key)
        msg_id = self._index_file(stored, raw, server)
        return MessageRef(self.account, folder, stored.key, msg_id)

    def deliver_many(
        self, folder: str, messages: Iterable[tuple[bytes, str, ServerId | None]]
    ) -> list[MessageRef]:
        """Bulk delivery (initial sync): one directory fsync and one transaction per call.

        Every file is fsynced and renamed before any row is written, so the
        index never points at a message that is not on disk. Rows get the list
        fields at once (parse_headers); the body text for search is left to
        fill_fts, which the full parse made 3-5x the cost of everything else.
        """
        return self.index_files(folder, self.write_files(folder, messages))

    def write_files(
        self, folder: str, messages: Iterable[tuple[bytes, str, ServerId | None]]
    ) -> list[WrittenFile]:
        """deliver_many's first half: every file written, fsynced and renamed, and its
        directory fsynced, before this returns. Give the result to index_files."""
        folder = INBOX if is_inbox(folder) else folder
        messages = list(messages)
        stored = self.maildir.add_many(folder, [(raw, flags) for raw, flags, _ in messages])
        return [(s, raw, server) for s, (raw, _, server) in zip(stored, messages, strict=True)]

    def index_files(self, folder: str, written: Sequence[WrittenFile]) -> list[MessageRef]:
        """deliver_many's second half: the rows of files write_files made durable, in
        one transaction (in the bulk helper process while one is attached)."""
        return self.rows_of(self.send_rows(folder, written))

    def send_rows(self, folder: str, written: Sequence[WrittenFile]) -> SentRows:
        """index_files in two steps, so the next batch can follow before this one is
        committed: this returns once the rows are handed to the bulk helper (which
        commits batches in the order they come), or, without one, once committed here."""
        folder = INBOX if is_inbox(folder) else folder
        helper = self.bulk_helper
        if helper is not None and written:
            try:
                return SentRows(folder, written, helper, helper.send(self.account, folder, written))
            except BulkHelperError as exc:
                self._without_helper(helper, exc)
        return SentRows(folder, written, ids=self._index_here(folder, written))

    def rows_of(self, sent: SentRows) -> list[MessageRef]:
        """The refs of a batch send_rows handed over, once its rows are committed."""
        ids = sent.ids
        if ids is None:
            assert sent.helper is not None
            try:
                ids = sent.helper.result(sent.ticket, len(sent.written))
            except BulkHelperError as exc:
                self._without_helper(sent.helper, exc)
                ids = self._index_here(sent.folder, sent.written)
        return [
            MessageRef(self.account, sent.folder, s.key, i)
            for (s, _, _), i in zip(sent.written, ids, strict=True)
        ]

    def _without_helper(self, helper: IndexHelper, exc: BulkHelperError) -> None:
        # Never worse than without it: this batch and the rest of the download are
        # indexed here. A batch it committed but did not confirm is refreshed, not
        # doubled; one it commits while stopping (close() may return before it has)
        # fails on its keys' uniqueness if this process wrote the rows first.
        with self._helper_lock:  # batches of two folders may fail at once: one warning
            first = self.bulk_helper is helper
            if first:
                self.bulk_helper = None
        if first:
            log.warning("account %s: %s; indexing in this process", self.account, exc)
        helper.close()

    def _index_here(self, folder: str, written: Sequence[WrittenFile]) -> list[int]:
        items = [(s, parse_headers(raw, s.mtime), server) for s, raw, server in written]
        return self.index.upsert_many(self.account, folder, items)

    @contextlib.contextmanager
    def bulk(self, messages: int, *, early: bool = False) -> Iterator[None]:
        """Around a download of `messages` messages: from BULK_HELPER_MIN on, index_files
        hands parsing and rows to a helper process (store/bulk.py) on another core,
        kept for nested or later blocks until the outermost one ends. `early`: start
        it now whatever the count (a first sync, before the counts are known)."""
        self._bulk_depth += 1
        try:
            if (
                (messages >= BULK_HELPER_MIN or early)
                and self.bulk_helper is None
                and not self._bulk_failed
                and cpus() > 1
            ):
                try:
                    self.bulk_helper = take_prestarted(self.index.path) or IndexHelper(
                        self.index.path
                    )
                except BulkHelperError as exc:
                    log.warning("account %s: %s; indexing in this process", self.account, exc)
                    self._bulk_failed = True
            yield
        finally:
            self._bulk_depth -= 1
            if self._bulk_depth == 0 and self.bulk_helper is not None:
                helper, self.bulk_helper = self.bulk_helper, None
                helper.close()

    def set_flags(self, ref: MessageRef, flags: str, pending: bool = False) -> MessageRef:
        """New flag letters on disk (moving new/ to cur/), then in the row."""
        stored = self.maildir.set_flags(ref.folder, ref.key, flags, _hint(self._info(ref)))
        msg_id = self.index.set_flags(
            self.account, ref.folder, ref.key, stored.flags, pending=pending, subdir=stored.subdir
        )
        if msg_id is None:
            msg_id = self._index_file(stored, None, None)
            if pending:
                self.index.set_pending([msg_id], True)
        return MessageRef(self.account, ref.folder, ref.key, msg_id)

    def move(self, ref: MessageRef, to_folder: str) -> MessageRef:
        to_folder = INBOX if is_inbox(to_folder) else to_folder
        stored = self.maildir.move(ref.folder, ref.key, to_folder, _hint(self._info(ref)))
        if stored.folder == ref.folder:
            return ref
        msg_id = self.index.move_row(self.account, ref.folder, ref.key, to_folder, stored)
        if msg_id is None:
            msg_id = self._index_file(stored, None, None)
        return MessageRef(self.account, to_folder, stored.key, msg_id)

    def copy(self, ref: MessageRef, to_folder: str) -> MessageRef:
        to_folder = INBOX if is_inbox(to_folder) else to_folder
        stored = self.maildir.copy(ref.folder, ref.key, to_folder, _hint(self._info(ref)))
        return MessageRef(self.account, to_folder, stored.key, self._index_file(stored, None, None))

    def remove(self, ref: MessageRef) -> None:
        """Delete the file, then the row. Removing a message already gone is not an error."""
        self.maildir.remove(ref.folder, ref.key, _hint(self._info(ref)))
        self.index.remove(self.account, ref.folder, ref.key)

    def read(self, ref: MessageRef) -> bytes:
        return self.maildir.read_bytes(ref.folder, ref.key, _hint(self._info(ref)))

    def locate(self, ref: MessageRef) -> StoredFile | None:
        return self.maildir.locate(ref.folder, ref.key, _hint(self._info(ref)))

    def fill_fts(self, limit: int = FTS_CHUNK) -> int:
        """Put the bodies of up to `limit` bulk-stored messages into full-text search.

        For the account worker when idle: call until it returns 0 (messages
        still waiting). Resumable at any point: the backlog is a table, and each
        call is one short transaction after the files were read and parsed.
        """
        backlog = self.index.fts_backlog(self.account, limit)
        if not backlog:
            return 0
        dirs: dict[str, str] = {}
        entries: list[tuple[int, str, str, tuple[bool, str] | None]] = []
        for msg_id, folder, key, subdir, flags in backlog:
            fdir = dirs.get(folder)
            if fdir is None:
                fdir = dirs[folder] = str(self.maildir.folder_path(folder))
            entries.append((msg_id, folder, key, self._body(fdir, folder, key, subdir, flags)))
        self.index.fill_fts(entries)
        return self.index.fts_pending_count(self.account)

    def _body(
        self, fdir: str, folder: str, key: str, subdir: str, flags: str
    ) -> tuple[bool, str] | None:
        # The name the index expects first (one open, no pathlib), then a search.
        path = f"{fdir}/{subdir}/{file_name(key, subdir, flags)}"
        for _ in range(2):
            try:
                with open(path, "rb") as fh:
                    # parse_body reads no further than MAX_PARSE_BYTES anyway. Asked for
                    # that much, read() allocates it first: 2 MiB per small message
                    # cost more than the rest of reading it (27 vs 10 us).
                    size = os.fstat(fh.fileno()).st_size
                    return parse_body(fh.read(min(size, MAX_PARSE_BYTES) or MAX_PARSE_BYTES))
            except FileNotFoundError:
                try:
                    found = self.maildir.locate(folder, key)
                except StoreError:
                    return None
                if found is None:
                    return None
                path = str(found.path)
            except OSError:
                return None  # unreadable: its headers are indexed alone
        return None

    # -- folders

    def create_folder(self, name: str) -> None:
        self.maildir.create_folder(name)

    def delete_folder(self, name: str, force: bool = False) -> None:
        self.maildir.delete_folder(name, force)
        self.index.remove_folder(self.account, name)

    def rename_folder(self, old: str, new: str) -> None:
        self.maildir.rename_folder(old, new)
        with self.index.transaction():
            self.index.rename_folder(self.account, old, new)
            # Waiting changes name the folder they are pushed to: they follow too.
            Journal(self.index).rename_folder(self.account, old, new)

    def folders(self) -> list[Folder]:
        """Every folder on disk, INBOX first, with counts and roles."""
        counts = self.index.folder_counts(self.account)
        roles = {s.name: s.role for s in self.index.folder_states(self.account) if s.role}
        result = []
        for name in self.maildir.list_folders():
            total, unread = counts.get(name, (0, 0))
            role = roles.get(name) or role_for_name(name)
            result.append(Folder(self.account, name, role, total, unread))
        return result

    # -- reconciling with the disk

    def rescan(self, folder: str | None = None) -> RescanResult:
        """Make the index match the Maildir: by key, by name only for known files.

        New files are read and parsed; vanished ones are dropped; flags or
        new/->cur/ changes made by other tools are copied in without a reparse.
        """
        if folder is not None:
            folder = INBOX if is_inbox(folder) else folder
            if not (self.maildir.folder_path(folder) / "cur").is_dir():
                return RescanResult(removed=self.index.remove_folder(self.account, folder))
            return self._rescan_folder(folder)
        on_disk = self.maildir.list_folders()
        result = RescanResult()
        for name in set(self.index.indexed_folders(self.account)) - set(on_disk):
            result += RescanResult(removed=self.index.remove_folder(self.account, name))
        for name in on_disk:
            result += self._rescan_folder(name)
        return result

    def rebuild(self) -> RescanResult:
        """Forget the account's rows and index everything on disk again.

        The journal is kept, and each change waiting in it is pointed at its message's
        new row (found by folder and file key), which is pending again: otherwise the
        next sync would drop the change (its old id names no row) and put the
        server's flags over the user's.
        """
        self.index.clear_account(self.account)
        result = self.rescan()
        journal = Journal(self.index)
        with self.index.transaction():
            for entry in journal.pending(self.account):
                folder, key = entry.payload.get("folder"), entry.payload.get("key")
                if "id" not in entry.payload or not isinstance(folder, str):
                    continue  # not about a stored message (a send, say)
                info = self.index.file_info(self.account, folder, str(key))
                if info is not None:
                    journal.retarget(entry.id, info.id)
                    self.index.set_pending([info.id], True)
        return result

    def _rescan_folder(self, folder: str) -> RescanResult:
        disk_new, disk_cur = self.maildir.list_names(folder)
        want_new, want_cur = self.index.file_names(self.account, folder)
        # Names on both sides are unchanged: the common case, done as set operations.
        only_disk = [("cur", n) for n in disk_cur - want_cur]
        only_disk += [("new", n) for n in disk_new - want_new]
        only_index = {split_name(n)[0] for n in (want_new - disk_new) | (want_cur - disk_cur)}
        if not only_disk and not only_index:
            return RescanResult()

        disk: dict[str, tuple[str, str, str]] = {}  # key -> (subdir, flags, name)
        for subdir, name in only_disk:  # cur/ first: it wins when a key is in both
            key, flags = split_name(name)
            disk.setdefault(key, (subdir, flags, name))
        known = self.index.files_info(self.account, folder, only_index)

        removed = [k for k in only_index if k not in disk]
        changed: list[tuple[str, str, str]] = []
        added: list[tuple[str, str]] = []
        for key, (subdir, flags, name) in disk.items():
            info = known.get(key) if key in only_index else None
            if info is None:
                added.append((subdir, name))
            elif info.subdir != subdir or info.flags != normalise_maildir_letters(flags):
                changed.append((key, flags, subdir))

        with self.index.transaction():
            if removed:
                self.index.remove_many(self.account, folder, removed)
            if changed:
                self.index.set_flags_many(self.account, folder, changed)

        indexed = 0
        for start in range(0, len(added), RESCAN_CHUNK):
            chunk = added[start : start + RESCAN_CHUNK]
            # A key the index already has under a name that is still on disk: the
            # same file in new/ and cur/ (a tool died mid-rename). Index it once.
            dupes = self.index.existing_keys(
                self.account, folder, [split_name(n)[0] for _, n in chunk]
            )
            items: list[tuple[StoredFile, ParsedHeaders, ServerId | None]] = []
            for subdir, name in chunk:
                if split_name(name)[0] in dupes:
                    continue
                stored = self.maildir.stored_file(folder, subdir, name)
                if stored is None:
                    continue  # gone since the scan
                try:
                    raw = stored.path.read_bytes()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise StoreError(f"cannot read {stored.path}: {exc.strerror}") from exc
                items.append((stored, parse_headers(raw, stored.mtime), None))
            if items:
                self.index.upsert_many(self.account, folder, items)
                indexed += len(items)
        return RescanResult(added=indexed, removed=len(removed), changed=len(changed))
