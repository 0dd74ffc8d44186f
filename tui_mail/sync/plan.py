"""Sync as data: what a sync will do, decided without any I/O.

The IMAP engine (`imap_sync.py`) works in three phases per folder:

1. **gather** - the folder's saved state, its index rows and the pending
   journal entries (local); SELECT or STATUS (server);
2. **plan** - `plan_reads` says which further *read-only* commands are needed;
   the engine runs them and `plan_folder` turns everything into a list of
   `Step`s. Both are pure functions of their arguments, so every rule below is
   unit-tested without a network (tests/unit/test_sync_plan.py);
3. **execute** - the engine applies the steps in order, or with `--dry-run`
   only describes them: a dry run sends no write to the server and writes
   nothing to the store.

The account level (`plan_folders`) follows the server's folder list the same
way, and the worker's own operations (move, delete on the server) are plans
too (`plan_transfer`, `plan_expunge`), so one executor applies everything.

Rules
-----

*UIDs.* A local copy is *current* when its UID belongs to the folder's
UIDVALIDITY now. Every other copy that has a UID (the folder was recreated,
or the saved state is gone) loses it (`ForgetServerIds`) and, with every
copy that never had one, is an *orphan*. Orphans are matched again by
Message-ID when the folder's UIDVALIDITY is not the one saved (unique
matches on both sides only); a matched copy gets its new UID (`Rematch`) and
is not downloaded again. An orphan that matches nothing stays local, with no
UID, never deleted: no mail is lost. A stale UID never reaches the server:
pushes use the UID after re-matching, and the backend refuses ServerIds of an
older UIDVALIDITY anyway.

*New mail.* UIDs from the saved UIDNEXT up (all of them on a first sync or
after a UIDVALIDITY change) that no local copy has. When UIDNEXT did not move,
nothing is listed at all.

*Deletions.* Only a UID the server positively reported gone (VANISHED, or
missing from a full listing of a folder that answered) deletes a local copy.
Nothing local ever causes a delete on the server except the user's own
delete (`plan_expunge`); a missing or reset index is never read as "the user
deleted everything".

*Conflict rule for flags* (the same flag changed on both sides since the last
sync): **for each flag, the side that changed it wins; when both changed the
same flag, the local change wins.** Concretely, for a message with pending
local changes (journal entries, oldest first) the new local flags are the
server's flags with the net local changes applied on top, and those changes
are pushed to the server, so both ends converge on the same set. Flags the
user did not touch take the server's value; Maildir letters we do not map
(other tools' keywords) are kept. A copy marked pending whose changes are
not in the journal (nothing to replay) keeps its local flags unchanged.
Local wins because the user's change is the newest intent we can prove; the
server gives no time for its change, and a change the user made while
offline must not silently disappear.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import NamedTuple

from msgspec import Struct, field

from tui_mail.core.flags import Flag, FlagSet, normalise_maildir_letters
from tui_mail.core.models import FolderRole, ServerId

INBOX = "INBOX"
SET_FLAGS = "set_flags"
APPEND = "append"


def _is_inbox(name: str) -> bool:
    return name.upper() == INBOX


# --------------------------------------------------------------------------- inputs


class SavedState(Struct, frozen=True):
    """What the last complete sync of a folder saved (None fields: unknown)."""

    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    role: FolderRole | None = None


class ServerState(Struct, frozen=True):
    """What SELECT or STATUS says about a folder now."""

    uidvalidity: int
    uidnext: int | None = None
    highestmodseq: int | None = None
    exists: int = 0


class LocalMessage(NamedTuple):
    """One index row of the folder (a tuple: a folder can have 100k of them)."""

    id: int
    key: str
    uid: int | None
    uidvalidity: int | None
    flags: str  # Maildir letters
    message_id: str = ""
    pending: bool = False


class LocalChange(Struct, frozen=True):
    """A journal entry: a change made here that the server has not confirmed."""

    entry: int
    op: str  # SET_FLAGS or APPEND
    msg_id: int
    folder: str
    key: str = ""
    add: frozenset[Flag] = frozenset()
    remove: frozenset[Flag] = frozenset()
    due: bool = True  # False while waiting out a backoff after a failure


class Reads(Struct, frozen=True):
    """Read-only server commands the plan needs beyond SELECT/STATUS."""

    message_ids: bool = False  # UID, Message-ID and FLAGS of every message (re-match)
    list_from: int | None = None  # UIDs >= this
    flags: bool = False
    flags_since: int | None = None  # CONDSTORE CHANGEDSINCE
    expunged: bool = False
    expunged_since: int | None = None  # QRESYNC VANISHED since

    @property
    def none(self) -> bool:
        return not (self.message_ids or self.list_from is not None or self.flags or self.expunged)


class Answers(Struct, frozen=True):
    """What those reads returned."""

    message_ids: Sequence[tuple[int, str, FlagSet]] | None = None  # (uid, Message-ID, flags)
    uids: Sequence[int] = ()
    flags: Sequence[tuple[int, FlagSet]] = ()
    expunged: Sequence[int] = ()


# --------------------------------------------------------------------------- steps


class Step(Struct, frozen=True):
    folder: str

    def describe(self) -> str:  # pragma: no cover - every step overrides it
        return type(self).__name__


class CreateFolder(Step, frozen=True):
    def describe(self) -> str:
        return f"create local folder {self.folder!r}"


class RenameFolder(Step, frozen=True):
    new: str

    def describe(self) -> str:
        return f"rename local folder {self.folder!r} to {self.new!r} (renamed on the server)"


class RemoveFolder(Step, frozen=True):
    on_disk: bool = True

    def describe(self) -> str:
        return f"remove local folder {self.folder!r} (deleted on the server)"


class KeepFolder(Step, frozen=True):
    def describe(self) -> str:
        return f"keep local folder {self.folder!r}: deleted on the server but holds local mail"


class SetRole(Step, frozen=True):
    role: FolderRole | None

    def describe(self) -> str:
        return f"mark {self.folder!r} as {self.role.value if self.role else 'an ordinary folder'}"


class ForgetServerIds(Step, frozen=True):
    ids: tuple[int, ...]

    def describe(self) -> str:
        return f"forget the old UIDs of {_n(len(self.ids), 'local copy', 'local copies')}"


class Rematch(Step, frozen=True):
    msg_id: int
    key: str
    uid: int
    uidvalidity: int

    def describe(self) -> str:
        return f"match local copy {self.key} to UID {self.uid} by Message-ID"


class SetLocalFlags(Step, frozen=True):
    """Store the server's flags (merged by the conflict rule) into the local copy."""

    msg_id: int
    key: str
    letters: str
    pending: bool = False

    def describe(self) -> str:
        return f"set local flags of {self.key} to {self.letters or '(none)'}"


class PushFlags(Step, frozen=True):
    entry: int
    msg_id: int
    key: str
    server_id: ServerId
    add: frozenset[Flag]
    remove: frozenset[Flag]
    last: bool = True  # no later change of this message in the plan: clear `pending` after

    def describe(self) -> str:
        parts = [f"+{f.value}" for f in sorted(self.add, key=lambda f: f.value)]
        parts += [f"-{f.value}" for f in sorted(self.remove, key=lambda f: f.value)]
        return f"push flags {' '.join(parts) or '(none)'} to UID {self.server_id.uid}"


class DropChange(Step, frozen=True):
    """A journal entry that can never apply (its message is not on the server)."""

    entry: int
    msg_id: int
    reason: str
    last: bool = True

    def describe(self) -> str:
        return f"drop a pending change: {self.reason}"


class AppendRemote(Step, frozen=True):
    """Store a local addition on the server (APPEND), unless it is already there."""

    entry: int
    msg_id: int
    key: str
    letters: str
    message_id: str = ""

    def describe(self) -> str:
        return f"append local message {self.key} to the server folder"


class Fetch(Step, frozen=True):
    uids: tuple[int, ...]

    def describe(self) -> str:
        return f"fetch {_n(len(self.uids), 'new message', 'new messages')} ({_span(self.uids)})"


class DeleteLocal(Step, frozen=True):
    msg_id: int
    key: str
    uid: int | None = None

    def describe(self) -> str:
        gone = f" (UID {self.uid} is gone on the server)" if self.uid is not None else ""
        return f"delete local copy {self.key}{gone}"


class DeleteRemote(Step, frozen=True):
    ids: tuple[ServerId, ...]

    def describe(self) -> str:
        return f"delete {_n(len(self.ids), 'message', 'messages')} on the server"


class MoveRemote(Step, frozen=True):
    ids: tuple[ServerId, ...]
    to_folder: str
    copy: bool = False

    def describe(self) -> str:
        verb = "copy" if self.copy else "move"
        what = _n(len(self.ids), "message", "messages")
        return f"{verb} {what} to {self.to_folder!r} on the server"


class SaveState(Step, frozen=True):
    uidvalidity: int
    uidnext: int | None
    highestmodseq: int | None

    def describe(self) -> str:
        return f"save folder state (UIDVALIDITY {self.uidvalidity}, UIDNEXT {self.uidnext})"


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _span(uids: Sequence[int]) -> str:
    if not uids:
        return "none"
    lo, hi = min(uids), max(uids)
    return f"UID {lo}" if lo == hi else f"UIDs {lo}-{hi}"


class FolderPlan(Struct, frozen=True):
    folder: str
    steps: tuple[Step, ...] = ()
    reads: Reads = field(default_factory=Reads)
    uidvalidity_changed: bool = False

    def of(self, kind: type[Step]) -> list[Step]:
        return [s for s in self.steps if isinstance(s, kind)]

    @property
    def fetch_count(self) -> int:
        return sum(len(s.uids) for s in self.steps if isinstance(s, Fetch))

    @property
    def changes_anything(self) -> bool:
        return any(not isinstance(s, SaveState) for s in self.steps)

    def describe(self) -> list[str]:
        """One line per kind of step (counts, not a line per message)."""
        lines: list[str] = []
        singles = (SetLocalFlags, PushFlags, Rematch, DeleteLocal, DropChange, AppendRemote)
        for kind in singles:
            steps = self.of(kind)
            if len(steps) > 3:
                lines.append(_summary(kind, steps))
        for step in self.steps:
            if isinstance(step, singles) and len(self.of(type(step))) > 3:
                continue
            if isinstance(step, SaveState):
                continue
            lines.append(step.describe())
        return lines


def _summary(kind: type[Step], steps: Sequence[Step]) -> str:
    n = len(steps)
    return {
        SetLocalFlags: f"set local flags of {_n(n, 'message', 'messages')} (changed on the server)",
        PushFlags: f"push flag changes of {_n(n, 'message', 'messages')} to the server",
        Rematch: f"match {_n(n, 'local copy', 'local copies')} to new UIDs by Message-ID",
        DeleteLocal: f"delete {_n(n, 'local copy', 'local copies')} (gone on the server)",
        DropChange: f"drop {_n(n, 'pending change', 'pending changes')} (not on the server)",
        AppendRemote: f"append {_n(n, 'local message', 'local messages')} to the server",
    }.get(kind, f"{n} x {kind.__name__}")


# --------------------------------------------------------------------------- one folder


class _Split(Struct, frozen=True):
    same: bool  # UIDVALIDITY is the one saved
    changed: bool  # a saved UIDVALIDITY exists and differs
    current: dict[int, LocalMessage]  # uid -> copy whose UID is valid now
    orphans: list[LocalMessage]  # every other copy


def _split(
    saved: SavedState | None, remote: ServerState, messages: Iterable[LocalMessage]
) -> _Split:
    had = saved is not None and saved.uidvalidity is not None
    same = had and saved is not None and saved.uidvalidity == remote.uidvalidity
    changed = had and not same
    current: dict[int, LocalMessage] = {}
    orphans: list[LocalMessage] = []
    for m in messages:
        valid = m.uid is not None and (
            m.uidvalidity == remote.uidvalidity or (m.uidvalidity is None and not changed)
        )
        if valid and m.uid not in current:
            assert m.uid is not None
            current[m.uid] = m
        else:
            orphans.append(m)
    return _Split(same, changed, current, orphans)


def current_uids(
    saved: SavedState | None, remote: ServerState, messages: Iterable[LocalMessage]
) -> list[int]:
    """UIDs of the local copies that are valid under the folder's UIDVALIDITY now."""
    return sorted(_split(saved, remote, messages).current)


def _needs_rematch(split: _Split) -> bool:
    return not split.same and any(m.message_id for m in split.orphans)


def plan_reads(
    saved: SavedState | None,
    remote: ServerState,
    messages: Sequence[LocalMessage],
    *,
    condstore: bool,
    qresync: bool,
) -> Reads:
    """The read-only commands `plan_folder` needs for this folder."""
    split = _split(saved, remote, messages)
    if _needs_rematch(split):
        # One FETCH of every Message-ID also lists every UID with its flags.
        return Reads(message_ids=True)
    list_from = _list_from(saved, remote, split)
    if not split.current:
        return Reads(list_from=list_from)
    # CONDSTORE: every flag change and expunge raises HIGHESTMODSEQ, so an
    # unchanged value means nothing happened, and a changed one says since when.
    use_modseq = (
        split.same
        and condstore
        and saved is not None
        and saved.highestmodseq is not None
        and remote.highestmodseq is not None
    )
    since = saved.highestmodseq if use_modseq and saved is not None else None
    if use_modseq and since == remote.highestmodseq:
        return Reads(list_from=list_from)
    return Reads(
        list_from=list_from,
        flags=True,
        flags_since=since,
        expunged=True,
        expunged_since=since if qresync else None,
    )


def _list_from(saved: SavedState | None, remote: ServerState, split: _Split) -> int | None:
    if remote.exists == 0:
        return None
    if not split.same:
        return 1
    assert saved is not None
    # From the saved UIDNEXT, not from the highest local UID: a message this
    # client appended gets a UID above mail that may have arrived meanwhile.
    if saved.uidnext:
        start = saved.uidnext
    else:
        start = max(split.current, default=0) + 1
    if _missing_below(start, remote, split):
        return 1
    if remote.uidnext is not None and remote.uidnext <= start:
        return None  # UIDNEXT did not move: nothing new, no SEARCH needed
    return start


def _missing_below(start: int, remote: ServerState, split: _Split) -> bool:
    """True when the server holds messages below `start` that no local copy has.

    The server's count is at most the copies we know plus the UIDs handed out
    since `start`; more than that means local copies are gone without the
    user deleting them (files removed by another tool, the Maildir deleted,
    rows dropped by a repair). Those are downloaded again, never deleted on
    the server. A UID that also vanished on the server can hide one missing
    copy until the next sync; a false alarm costs one UID SEARCH.
    """
    if remote.uidnext is None:
        return False
    return remote.exists > len(split.current) + max(0, remote.uidnext - start)


def merge_flags(
    server: FlagSet,
    local_letters: str,
    add: Collection[Flag] = (),
    remove: Collection[Flag] = (),
) -> str:
    """The conflict rule: server flags, local changes on top, unmapped letters kept."""
    local = FlagSet.from_maildir(local_letters)
    flags = (set(server.flags) | set(add)) - set(remove)
    return FlagSet(frozenset(flags), local.extra_letters).to_maildir()


def net_changes(changes: Iterable[LocalChange]) -> dict[int, tuple[set[Flag], set[Flag]]]:
    """msg id -> (flags added, flags removed) after replaying its changes in order."""
    out: dict[int, tuple[set[Flag], set[Flag]]] = {}
    for c in changes:
        if c.op != SET_FLAGS:
            continue
        add, remove = out.setdefault(c.msg_id, (set(), set()))
        add |= c.add
        remove -= c.add
        remove |= c.remove
        add -= c.remove
    return out


def plan_folder(
    folder: str,
    saved: SavedState | None,
    remote: ServerState,
    messages: Sequence[LocalMessage],
    changes: Sequence[LocalChange],
    answers: Answers,
    *,
    reads: Reads | None = None,
    exists_locally: bool = True,
) -> FolderPlan:
    """Every step of one folder's sync, in the order they must run (see module doc)."""
    split = _split(saved, remote, messages)
    validity = remote.uidvalidity
    steps: list[Step] = []
    if not exists_locally and not _is_inbox(folder):
        steps.append(CreateFolder(folder))
    stale = [m for m in split.orphans if m.uid is not None]
    if stale:
        steps.append(ForgetServerIds(folder, tuple(m.id for m in stale)))

    known: dict[int, LocalMessage] = dict(split.current)
    server_flags: dict[int, FlagSet]
    if answers.message_ids is not None:
        on_server = {uid for uid, _, _ in answers.message_ids}
        local_by_mid: dict[str, list[LocalMessage]] = {}
        for m in split.orphans:
            if m.message_id:
                local_by_mid.setdefault(m.message_id, []).append(m)
        remote_by_mid: dict[str, list[int]] = {}
        for uid, mid, _ in answers.message_ids:
            if mid:
                remote_by_mid.setdefault(mid, []).append(uid)
        for mid, locals_ in local_by_mid.items():
            uids = remote_by_mid.get(mid, [])
            if len(locals_) != 1 or len(uids) != 1 or uids[0] in known:
                continue  # ambiguous: the local copy stays, the server copy is fetched
            m = locals_[0]
            steps.append(Rematch(folder, m.id, m.key, uids[0], validity))
            known[uids[0]] = m._replace(uid=uids[0], uidvalidity=validity)
        server_flags = {uid: flags for uid, _, flags in answers.message_ids}
        new = sorted(on_server - known.keys())
        gone = sorted(u for u in split.current if u not in on_server)
    else:
        server_flags = dict(answers.flags)
        new = sorted({u for u in answers.uids if u not in known})
        gone = sorted({u for u in answers.expunged if u in split.current})
    gone_set = set(gone)

    # Flags, by the conflict rule.
    deltas = net_changes(c for c in changes if c.op == SET_FLAGS)
    for uid, flags in sorted(server_flags.items()):
        row = known.get(uid)
        if row is None or uid in gone_set:
            continue
        delta = deltas.get(row.id)
        if delta is None and row.pending:
            continue  # a local change we cannot replay: keep the local flags
        add, remove = delta if delta is not None else ((), ())
        letters = merge_flags(flags, row.flags, add, remove)
        if letters != normalise_maildir_letters(row.flags):
            steps.append(SetLocalFlags(folder, row.id, row.key, letters, delta is not None))

    # Local changes: pushed to the UID the message has now, or dropped.
    uid_of = {m.id: uid for uid, m in known.items()}
    by_id = {m.id: m for m in messages}
    last_entry: dict[int, int] = {}
    for c in changes:
        last_entry[c.msg_id] = c.entry
    # A message's changes reach the server in the order they were made: while one
    # waits out its backoff, the later ones wait too (sent first, they would be
    # undone by it when it is replayed).
    held: set[int] = set()
    for c in changes:
        last = last_entry[c.msg_id] == c.entry
        row = by_id.get(c.msg_id)
        if c.op == APPEND:
            if row is None:
                steps.append(DropChange(folder, c.entry, c.msg_id, "deleted before upload", last))
            elif row.id in uid_of:
                steps.append(DropChange(folder, c.entry, c.msg_id, "already on the server", last))
            elif c.due:
                steps.append(
                    AppendRemote(folder, c.entry, row.id, row.key, row.flags, row.message_id)
                )
            continue
        uid = uid_of.get(c.msg_id)
        if uid is None or uid in gone_set:
            why = "the message is not on the server" if uid is None else "deleted on the server"
            steps.append(DropChange(folder, c.entry, c.msg_id, why, last))
        elif c.due and c.msg_id not in held:
            key = row.key if row is not None else c.key
            sid = ServerId(uid=uid, uidvalidity=validity)
            steps.append(PushFlags(folder, c.entry, c.msg_id, key, sid, c.add, c.remove, last))
        else:
            held.add(c.msg_id)

    if new:
        steps.append(Fetch(folder, tuple(new)))
    for uid in gone:
        m = split.current[uid]
        steps.append(DeleteLocal(folder, m.id, m.key, uid))
    if saved is None or (saved.uidvalidity, saved.uidnext, saved.highestmodseq) != (
        validity,
        remote.uidnext,
        remote.highestmodseq,
    ):
        steps.append(SaveState(folder, validity, remote.uidnext, remote.highestmodseq))
    return FolderPlan(folder, tuple(steps), reads or Reads(), split.changed)


def unchanged(
    saved: SavedState | None, status: ServerState, *, condstore: bool, local: int | None = None
) -> bool:
    """True when STATUS proves nothing happened in the folder since the last sync.

    Only with CONDSTORE: without HIGHESTMODSEQ a flag change leaves no trace
    in STATUS, so such servers are always synced in full. `local`: how many
    copies the index holds; fewer than the server's count means local copies
    went missing (a Maildir deleted by hand), which STATUS alone cannot show.
    """
    return (
        condstore
        and (local is None or local >= status.exists)
        and saved is not None
        and saved.uidvalidity == status.uidvalidity
        and saved.uidnext is not None
        and saved.uidnext == status.uidnext
        and saved.highestmodseq is not None
        and saved.highestmodseq == status.highestmodseq
    )


def adopt_orphans(
    plan: FolderPlan,
    orphans: Sequence[LocalMessage],
    fetched_ids: Sequence[tuple[int, str]],
    uidvalidity: int,
) -> FolderPlan:
    """Give UIDs about to be fetched to local copies that already are those messages.

    `orphans`: copies without a UID (a run killed after writing the files but
    before their index rows, so a rescan found them); `fetched_ids`: (uid,
    Message-ID) of the messages the plan fetches. A Message-ID unique on both
    sides is the same message: it gets a `Rematch` instead of a second copy.
    """
    local: dict[str, list[LocalMessage]] = {}
    for m in orphans:
        if m.uid is None and m.message_id:
            local.setdefault(m.message_id, []).append(m)
    remote: dict[str, list[int]] = {}
    for uid, mid in fetched_ids:
        if mid:
            remote.setdefault(mid, []).append(uid)
    matched: dict[int, LocalMessage] = {}
    for mid, copies in local.items():
        uids = remote.get(mid, [])
        if len(copies) == 1 and len(uids) == 1:
            matched[uids[0]] = copies[0]
    if not matched:
        return plan
    steps: list[Step] = []
    for step in plan.steps:
        if isinstance(step, Fetch):
            for uid in step.uids:
                if uid in matched:
                    m = matched[uid]
                    steps.append(Rematch(step.folder, m.id, m.key, uid, uidvalidity))
            rest = tuple(u for u in step.uids if u not in matched)
            if rest:
                steps.append(Fetch(step.folder, rest))
        else:
            steps.append(step)
    return FolderPlan(plan.folder, tuple(steps), plan.reads, plan.uidvalidity_changed)


# --------------------------------------------------------------------------- folders


class RemoteFolderInfo(Struct, frozen=True):
    name: str
    role: FolderRole | None = None
    selectable: bool = True


def _rename_key(name: str, old: str, new: str) -> str:
    if name == old:
        return new
    if name.startswith(old + "/"):
        return new + name[len(old) :]
    return name


def folders_needing_validity(
    remote: Sequence[RemoteFolderInfo], saved: Mapping[str, SavedState], on_disk: Collection[str]
) -> list[str]:
    """Server folders whose UIDVALIDITY tells whether they are a renamed local one."""
    names = {f.name for f in remote}
    gone = [n for n, s in saved.items() if s.uidvalidity is not None and n not in names]
    if not gone:
        return []
    return [
        f.name
        for f in remote
        if f.selectable
        and f.name not in on_disk
        and (f.name not in saved or saved[f.name].uidvalidity is None)
    ]


def plan_folders(
    remote: Sequence[RemoteFolderInfo],
    saved: Mapping[str, SavedState],
    on_disk: Collection[str],
    validity_of: Mapping[str, int | None],
    unsynced: Callable[[str], int],
) -> list[Step]:
    """Follow the server's folder list: renames, creations, removals, roles.

    A rename is recognised when exactly one folder synced before is gone and
    exactly one new folder has its UIDVALIDITY (Dovecot keeps it across
    RENAME); parents first, since their children move with them. A folder
    gone on the server is removed locally only when it was synced from the
    server before and `unsynced(name)` (local mail the server does not have)
    is 0; otherwise it is kept.
    """
    names = {f.name for f in remote}
    states = dict(saved)
    disk = set(on_disk)
    steps: list[Step] = []
    while True:
        gone = sorted(n for n, s in states.items() if s.uidvalidity is not None and n not in names)
        fresh = [
            f.name
            for f in remote
            if f.selectable
            and f.name not in disk
            and (f.name not in states or states[f.name].uidvalidity is None)
        ]
        if not gone or not fresh:
            break
        pair = None
        for old in sorted(gone, key=len):
            v = states[old].uidvalidity
            same_old = [g for g in gone if states[g].uidvalidity == v]
            same_new = [n for n in fresh if validity_of.get(n) == v]
            if len(same_old) == 1 and len(same_new) == 1 and old in disk:
                pair = (old, same_new[0])
                break
        if pair is None:
            break
        steps.append(RenameFolder(pair[0], pair[1]))
        states = {_rename_key(n, *pair): s for n, s in states.items()}
        disk = {_rename_key(n, *pair) for n in disk}

    for f in remote:
        if f.selectable and f.name not in disk and not _is_inbox(f.name):
            steps.append(CreateFolder(f.name))
            disk.add(f.name)
    for name, s in sorted(states.items()):
        if s.uidvalidity is None or name in names or _is_inbox(name):
            continue
        if unsynced(name):
            steps.append(KeepFolder(name))
        else:
            steps.append(RemoveFolder(name, on_disk=name in disk))
    for f in remote:
        if not f.selectable:
            continue
        state = states.get(f.name)
        if state is None or state.role != f.role:
            steps.append(SetRole(f.name, f.role))
    return steps


# --------------------------------------------------------------------------- user operations


def plan_transfer(
    pairs: Sequence[tuple[str, int, str, ServerId]], to_folder: str, *, copy: bool
) -> list[Step]:
    """Move or copy (folder, msg id, key, server id) on the server.

    A move deletes the local source copy only after the server's MOVE (the
    executor stops at the first failure); the target's copy then arrives by
    the next sync of `to_folder` with its new UID, so there is never a
    second local copy.
    """
    steps: list[Step] = []
    by_folder: dict[str, list[tuple[int, str, ServerId]]] = {}
    for folder, msg_id, key, sid in pairs:
        by_folder.setdefault(folder, []).append((msg_id, key, sid))
    for folder, items in by_folder.items():
        steps.append(MoveRemote(folder, tuple(s for _, _, s in items), to_folder, copy))
        if not copy:
            steps.extend(DeleteLocal(folder, msg_id, key) for msg_id, key, _ in items)
    return steps


def plan_expunge(pairs: Sequence[tuple[str, int, str, ServerId]]) -> list[Step]:
    """Delete for good on the server, then locally."""
    steps: list[Step] = []
    by_folder: dict[str, list[tuple[int, str, ServerId]]] = {}
    for folder, msg_id, key, sid in pairs:
        by_folder.setdefault(folder, []).append((msg_id, key, sid))
    for folder, items in by_folder.items():
        steps.append(DeleteRemote(folder, tuple(s for _, _, s in items)))
        steps.extend(DeleteLocal(folder, msg_id, key) for msg_id, key, _ in items)
    return steps
