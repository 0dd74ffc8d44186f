"""`tui-mail fsck`: check an account's Maildir against the index, and the index
against the server; `--repair` fixes the index.

The Maildir is the truth (docs/store.md), so every repair changes only the
index: rows for files it lacks, no rows for files that are gone, the flags
the file names carry, one row per server UID, the folder counts. Nothing here
ever deletes a mail file or touches mail on the server; what only the user
can decide (two identical copies of a message) is reported, not "fixed".

Findings are *problems* (fsck exits non-zero while one remains) or *notes*
(normal states a sync settles, such as mail expunged on the server since the
last run). A repair is checked by running the check again: a problem counts
as repaired only when the second look no longer finds it.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from msgspec import Struct, field
from msgspec.structs import replace

from tui_mail.core.capabilities import Capability
from tui_mail.core.flags import normalise_maildir_letters
from tui_mail.core.models import ServerId
from tui_mail.store.account_store import AccountStore
from tui_mail.store.maildir import split_name
from tui_mail.store.parse import parse_message

if TYPE_CHECKING:
    from tui_mail.backends.base import ReceiveBackend

PROBLEM = "problem"
NOTE = "note"
# At most this many keys or UIDs are named in one finding's text.
_SHOWN = 5


class Finding(Struct, frozen=True):
    kind: str  # e.g. "missing-row"; stable, for scripts and tests
    folder: str
    detail: str
    severity: str = PROBLEM
    repaired: bool = False
    count: int = 1

    @property
    def ident(self) -> tuple[str, str]:
        return (self.kind, self.folder)


class FsckReport(Struct):
    account: str
    findings: list[Finding] = field(default_factory=list)
    files: int = 0  # message files seen on disk
    rows: int = 0  # index rows seen
    folders: int = 0

    @property
    def problems(self) -> list[Finding]:
        """Problems still there (after a repair: those it could not fix)."""
        return [f for f in self.findings if f.severity == PROBLEM and not f.repaired]

    def lines(self) -> list[str]:
        head = (
            f"{self.account}: {self.folders} folders, {self.files} message files,"
            f" {self.rows} index rows"
        )
        out = [head]
        for f in self.findings:
            where = f"{f.folder}: " if f.folder else ""
            if f.severity == NOTE:
                tag = "note"
            elif f.repaired:
                tag = "repaired"
            else:
                tag = "PROBLEM"
            out.append(f"{self.account}: {tag}: {where}{f.detail}")
        left = len(self.problems)
        if left:
            out.append(f"{self.account}: {left} problem{'s' if left != 1 else ''} left")
        else:
            out.append(f"{self.account}: OK")
        return out


def _some(items: Iterable[object]) -> str:
    items = [str(i) for i in items]
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


# --------------------------------------------------------------------------- the index file


def check_index_file(path: Path) -> str | None:
    """Why the index file at `path` is unusable, or None when it is sound (or absent).

    Opening an index moves a broken one aside by itself, but only when SQLite
    says so at once; a file cut short in the middle can open and fail later.
    `PRAGMA quick_check` reads every page, so fsck finds that too, without
    writing anything.
    """
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        return f"cannot open it: {exc}"
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if [r[0] for r in rows] != ["ok"]:
            return "damaged: " + "; ".join(str(r[0]) for r in rows[:3])
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'"
        ).fetchall():
            return "not a tui-mail index"
    except sqlite3.DatabaseError as exc:
        return f"unreadable: {exc}"
    finally:
        conn.close()
    return None


# --------------------------------------------------------------------------- store vs index


class _Row(Struct, frozen=True):
    id: int
    key: str
    subdir: str
    flags: str
    uid: int | None
    uidvalidity: int | None
    message_id: str


def _rows(store: AccountStore, folder: str) -> list[_Row]:
    return [
        _Row(r[0], r[1], r[2], r[3] or "", r[4], r[5], r[6] or "")
        for r in store.index.execute_read(
            "SELECT id, key, subdir, flags, uid, uidvalidity, message_id FROM messages"
            " WHERE account = ? AND folder = ?",
            (store.account, folder),
        )
    ]


def _folders(store: AccountStore) -> list[str]:
    on_disk = store.maildir.list_folders()
    extra = sorted(set(store.index.indexed_folders(store.account)) - set(on_disk))
    return [*on_disk, *extra]


def _check_local(store: AccountStore) -> FsckReport:
    report = FsckReport(store.account)
    folders = _folders(store)
    report.folders = len(folders)
    counts = store.index.folder_counts(store.account)
    for folder in folders:
        findings, files, rows = _check_folder(store, folder, counts.get(folder))
        report.findings += findings
        report.files += files
        report.rows += rows
    return report


def _check_folder(
    store: AccountStore, folder: str, counted: tuple[int, int] | None
) -> tuple[list[Finding], int, int]:
    out: list[Finding] = []
    new, cur = store.maildir.list_names(folder)
    disk: dict[str, list[tuple[str, str]]] = {}  # key -> [(subdir, flags)]
    for subdir, names in (("cur", cur), ("new", new)):
        for name in names:
            key, flags = split_name(name)
            disk.setdefault(key, []).append((subdir, flags))
    rows = _rows(store, folder)
    by_key = {r.key: r for r in rows}

    twice = sorted(k for k, v in disk.items() if len(v) > 1)
    if twice:
        out.append(
            Finding(
                "duplicate-file",
                folder,
                f"{_n(len(twice), 'message is', 'messages are')} in both new/ and cur/"
                f" (another tool stopped mid-rename; indexed once, the cur/ copy): {_some(twice)}",
                NOTE,
                count=len(twice),
            )
        )
    missing = sorted(k for k in disk if k not in by_key)
    if missing:
        out.append(
            Finding(
                "missing-row",
                folder,
                f"{_n(len(missing), 'file has', 'files have')} no index row: {_some(missing)}",
                count=len(missing),
            )
        )
    stale = sorted((r for r in rows if r.key not in disk), key=lambda r: r.key)
    if stale:
        on_server = sum(1 for r in stale if r.uid is not None)
        again = (
            f"; {on_server} of them the next sync downloads again from the server"
            if on_server
            else ""
        )
        out.append(
            Finding(
                "stale-row",
                folder,
                f"{_n(len(stale), 'index row names a file', 'index rows name files')}"
                f" that {'is' if len(stale) == 1 else 'are'} gone: {_some(r.key for r in stale)}"
                f"{again}",
                count=len(stale),
            )
        )
    wrong = []
    for r in rows:
        copies = disk.get(r.key)
        if not copies:
            continue
        named = [(d, normalise_maildir_letters(f)) for d, f in copies]
        if (r.subdir, normalise_maildir_letters(r.flags)) not in named:
            wrong.append(r.key)
    if wrong:
        out.append(
            Finding(
                "flags",
                folder,
                f"{_n(len(wrong), 'row differs', 'rows differ')} from the flags in the file"
                f" name: {_some(sorted(wrong))}",
                count=len(wrong),
            )
        )
    uids = Counter((r.uid, r.uidvalidity) for r in rows if r.uid is not None)
    dup_uids = sorted(u for (u, _), n in uids.items() if n > 1)
    if dup_uids:
        out.append(
            Finding(
                "duplicate-uid",
                folder,
                f"{_n(len(dup_uids), 'server UID is', 'server UIDs are')} claimed by more than"
                f" one local copy: {_some(dup_uids)}",
                count=len(dup_uids),
            )
        )
    mids = Counter(r.message_id for r in rows if r.message_id)
    dup_mids = sorted(m for m, n in mids.items() if n > 1)
    if dup_mids:
        out.append(
            Finding(
                "duplicate-message-id",
                folder,
                f"{_n(len(dup_mids), 'Message-ID has', 'Message-IDs have')} several local"
                f" copies (fine if the server has as many; --server compares):"
                f" {_some(dup_mids)}",
                NOTE,
                count=len(dup_mids),
            )
        )
    total = len(rows)
    unread = sum(1 for r in rows if "S" not in r.flags)
    if counted != (total, unread) and not (total == 0 and counted is None):
        out.append(
            Finding(
                "counts",
                folder,
                f"folder counts say {counted or (0, 0)} (total, unread), the rows"
                f" {(total, unread)}",
            )
        )
    files = sum(len(v) for v in disk.values())
    return out, files, total


def _repair_local(store: AccountStore, found: Sequence[Finding]) -> None:
    kinds = {f.kind for f in found if f.severity == PROBLEM}
    # A rescan is exactly "make the rows match the files": new files in, vanished
    # ones out, renames (flags, new/ -> cur/) copied. It never touches a file.
    if kinds & {"missing-row", "stale-row", "flags"}:
        store.rescan()
    for folder in sorted({f.folder for f in found if f.kind == "duplicate-uid"}):
        _drop_duplicate_uids(store, folder)
    store.index.recount(store.account)


def _drop_duplicate_uids(store: AccountStore, folder: str) -> None:
    """Every row claiming a UID another row claims loses it: which one is right is
    not knowable here, and a flag change must never reach the wrong message. The
    next sync gives each its UID back by Message-ID (no second download)."""
    claims = Counter((r.uid, r.uidvalidity) for r in _rows(store, folder) if r.uid is not None)
    with store.index.transaction():
        for r in _rows(store, folder):
            if r.uid is not None and claims[(r.uid, r.uidvalidity)] > 1:
                store.index.set_server_id(r.id, ServerId())


def check_store(store: AccountStore, *, repair: bool = False) -> FsckReport:
    """Compare every Maildir file of the account with its index row (and fix the index)."""
    before = _check_local(store)
    if not repair or not before.problems:
        return before
    _repair_local(store, before.findings)
    return _settle(before, _check_local(store))


def _settle(before: FsckReport, after: FsckReport) -> FsckReport:
    """The findings before a repair, each marked repaired unless the check after still
    finds it; anything new after the repair is added."""
    still = {f.ident for f in after.problems}
    findings = [
        replace(f, repaired=f.severity == PROBLEM and f.ident not in still) for f in before.findings
    ]
    known = {f.ident for f in before.findings}
    findings += [f for f in after.findings if f.ident not in known]
    return FsckReport(after.account, findings, after.files, after.rows, after.folders)


# --------------------------------------------------------------------------- index vs server


async def check_server(
    backend: ReceiveBackend, store: AccountStore, report: FsckReport, *, repair: bool = False
) -> None:
    """Compare the index's UIDs with the server's (read-only: EXAMINE, no STORE/EXPUNGE).

    Findings go into `report`. Only servers that keep UIDs and folders (IMAP)
    have anything to compare; for others a note says so.
    """
    if not backend.has(Capability.SERVER_FLAGS):
        report.findings.append(
            Finding("server", "", "no server check: this server keeps no folders or UIDs", NOTE)
        )
        return
    backend.read_only = True  # EXAMINE; any write would raise
    try:
        await backend.connect()
        remote = {f.name for f in await backend.list_folders() if f.selectable}
        states = {s.name: s for s in store.index.folder_states(store.account)}
        for folder in sorted(set(states) | set(store.maildir.list_folders())):
            state = states.get(folder)
            if folder not in remote:
                if state is not None and state.uidvalidity is not None:
                    report.findings.append(
                        Finding(
                            "server-folder-gone",
                            folder,
                            "gone on the server; the next sync removes it locally, or keeps"
                            " it if it holds mail the server does not have",
                            NOTE,
                        )
                    )
                continue
            if state is None or state.uidvalidity is None:
                report.findings.append(
                    Finding("never-synced", folder, "not synced yet: the next sync does it", NOTE)
                )
                continue
            await _check_server_folder(
                backend, store, report, folder, state.uidvalidity, state.uidnext, repair=repair
            )
        for folder in sorted(remote - set(states) - set(store.maildir.list_folders())):
            report.findings.append(
                Finding(
                    "server-only-folder",
                    folder,
                    "on the server only: the next sync creates it",
                    NOTE,
                )
            )
    finally:
        backend.read_only = False
        await backend.close()


async def _check_server_folder(
    backend: ReceiveBackend,
    store: AccountStore,
    report: FsckReport,
    folder: str,
    uidvalidity: int,
    uidnext: int | None,
    *,
    repair: bool,
) -> None:
    remote = await backend.folder_state(folder)
    if remote.uidvalidity != uidvalidity:
        report.findings.append(
            Finding(
                "uidvalidity",
                folder,
                f"the server renumbered the folder (UIDVALIDITY {uidvalidity} ->"
                f" {remote.uidvalidity}); the next sync matches local copies again by"
                " Message-ID and downloads the rest, deleting nothing",
                NOTE,
            )
        )
        return
    server_uids = set(await backend.list_uids(folder))
    rows = _rows(store, folder)
    local = {r.uid for r in rows if r.uid is not None and r.uidvalidity in (None, uidvalidity)}
    below = uidnext if uidnext is not None else max(server_uids, default=0) + 1
    missing = sorted(u for u in server_uids if u < below and u not in local)
    if missing:
        fixed = False
        if repair:
            # The sync lists the server from the saved UIDNEXT up: from the first
            # missing UID, it downloads them again (what it already has it skips).
            store.index.set_folder_state(store.account, folder, uidnext=missing[0])
            fixed = True
        report.findings.append(
            Finding(
                "missing-locally",
                folder,
                f"{_n(len(missing), 'message', 'messages')} on the server"
                f" {'has' if len(missing) == 1 else 'have'} no local copy (UIDs"
                f" {_some(missing)}); the next sync downloads "
                f"{'it' if len(missing) == 1 else 'them'} again",
                repaired=fixed,
                count=len(missing),
            )
        )
    gone = sorted(local - server_uids)
    if gone:
        report.findings.append(
            Finding(
                "gone-on-server",
                folder,
                f"{_n(len(gone), 'local copy is', 'local copies are')} no longer on the"
                f" server (UIDs {_some(gone)}); the next sync removes"
                f" {'it' if len(gone) == 1 else 'them'} locally",
                NOTE,
                count=len(gone),
            )
        )
    mids = Counter(r.message_id for r in rows if r.message_id)
    dups = {m for m, n in mids.items() if n > 1}
    if dups:
        headers = await backend.fetch_header_fields(folder, ["MESSAGE-ID"])
        on_server = Counter(parse_message(h).message_id or "" for _, h, _ in headers)
        extra = sorted(m for m in dups if mids[m] > on_server.get(m, 0))
        if extra:
            report.findings.append(
                Finding(
                    "duplicated-locally",
                    folder,
                    f"{_n(len(extra), 'message has', 'messages have')} more local copies than"
                    f" the server has: {_some(extra)}. fsck never deletes mail: remove the"
                    " extra copies yourself if you do not want them",
                    count=len(extra),
                )
            )
