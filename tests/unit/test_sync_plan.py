"""The sync planner (tui_mail/sync/plan.py): pure, so every rule is checked here
without a network or a store."""

from __future__ import annotations

from tui_mail.core.flags import Flag, FlagSet
from tui_mail.core.models import FolderRole, ServerId
from tui_mail.sync.plan import (
    APPEND,
    SET_FLAGS,
    Answers,
    AppendRemote,
    CreateFolder,
    DeleteLocal,
    DeleteRemote,
    DropChange,
    Fetch,
    ForgetServerIds,
    KeepFolder,
    LocalChange,
    LocalMessage,
    MoveRemote,
    PushFlags,
    Reads,
    Rematch,
    RemoteFolderInfo,
    RemoveFolder,
    RenameFolder,
    SavedState,
    SaveState,
    ServerState,
    SetLocalFlags,
    SetRole,
    folders_needing_validity,
    merge_flags,
    net_changes,
    plan_expunge,
    plan_folder,
    plan_folders,
    plan_reads,
    plan_transfer,
    unchanged,
)

V = 100  # the folder's UIDVALIDITY in most tests
SEEN = FlagSet(frozenset({Flag.SEEN}))
NONE = FlagSet()


def msg(
    i: int,
    uid: int | None = None,
    flags: str = "",
    *,
    validity: int | None = V,
    mid: str | None = None,
    pending: bool = False,
) -> LocalMessage:
    return LocalMessage(
        id=i,
        key=f"k{i}",
        uid=uid,
        uidvalidity=validity if uid is not None else None,
        flags=flags,
        message_id=mid if mid is not None else f"<m{i}@test>",
        pending=pending,
    )


def change(
    entry: int,
    msg_id: int,
    add: set[Flag] | None = None,
    remove: set[Flag] | None = None,
    *,
    folder: str = "INBOX",
    due: bool = True,
) -> LocalChange:
    return LocalChange(
        entry, SET_FLAGS, msg_id, folder, f"k{msg_id}", frozenset(add or ()),
        frozenset(remove or ()), due,
    )  # fmt: skip


SAVED = SavedState(uidvalidity=V, uidnext=4, highestmodseq=50)
SAME = ServerState(uidvalidity=V, uidnext=4, highestmodseq=50, exists=3)
THREE = [msg(1, 1), msg(2, 2), msg(3, 3)]


def reads(saved=SAVED, remote=SAME, messages=THREE, condstore=True, qresync=True) -> Reads:  # type: ignore[no-untyped-def]
    return plan_reads(saved, remote, messages, condstore=condstore, qresync=qresync)


def kinds(plan) -> list[str]:  # type: ignore[no-untyped-def]
    return [type(s).__name__ for s in plan.steps]


# --------------------------------------------------------------------------- what to read


def test_nothing_moved_means_no_command_at_all() -> None:
    assert reads().none
    plan = plan_folder("INBOX", SAVED, SAME, THREE, [], Answers())
    assert plan.steps == ()  # not even a state write


def test_first_sync_lists_everything() -> None:
    r = reads(saved=None, messages=[])
    assert r == Reads(list_from=1)


def test_new_mail_is_listed_from_the_saved_uidnext_not_the_highest_uid() -> None:
    # UID 9 was appended by us; mail that arrived at UIDs 4..8 meanwhile must still come.
    local = [*THREE, msg(9, 9)]
    r = reads(messages=local, remote=ServerState(V, 10, 50, 9))
    assert r.list_from == 4 and not r.flags


def test_condstore_asks_only_for_changes_since_the_saved_modseq() -> None:
    r = reads(remote=ServerState(V, 4, 61, 3))
    assert r == Reads(flags=True, flags_since=50, expunged=True, expunged_since=50)
    r = reads(remote=ServerState(V, 4, 61, 3), qresync=False)
    assert r.flags_since == 50 and r.expunged and r.expunged_since is None


def test_without_condstore_every_flag_is_read_each_time() -> None:
    r = reads(condstore=False, qresync=False)
    assert r == Reads(flags=True, flags_since=None, expunged=True)


def test_an_empty_server_folder_lists_nothing_but_still_checks_expunges() -> None:
    r = reads(remote=ServerState(V, 4, 61, 0))
    assert r.list_from is None and r.expunged


def test_uidvalidity_change_reads_message_ids_once() -> None:
    r = reads(remote=ServerState(V + 1, 7, 3, 6))
    assert r == Reads(message_ids=True)


# --------------------------------------------------------------------------- new mail, deletions


def test_new_uids_are_fetched_and_state_saved_last() -> None:
    remote = ServerState(V, 7, 55, 6)
    plan = plan_folder("INBOX", SAVED, remote, THREE, [], Answers(uids=[3, 4, 5, 6]))
    assert kinds(plan) == ["Fetch", "SaveState"]
    assert plan.of(Fetch)[0].uids == (4, 5, 6)  # type: ignore[attr-defined]
    assert plan.steps[-1] == SaveState("INBOX", V, 7, 55)


def test_only_uids_the_server_reported_gone_delete_local_copies() -> None:
    local = [*THREE, msg(4, None)]  # a local-only message: never touched
    plan = plan_folder("INBOX", SAVED, SAME, local, [], Answers(expunged=[2, 77]))
    assert plan.of(DeleteLocal) == [DeleteLocal("INBOX", 2, "k2", 2)]


def test_nothing_local_ever_deletes_on_the_server() -> None:
    # An empty index (state lost, store wiped) next to a full server folder.
    r = reads(saved=None, messages=[])
    plan = plan_folder("INBOX", None, SAME, [], [], Answers(uids=[1, 2, 3]), reads=r)
    assert not [s for s in plan.steps if isinstance(s, DeleteRemote | MoveRemote)]
    assert plan.of(Fetch)[0].uids == (1, 2, 3)  # type: ignore[attr-defined]


def test_a_missing_folder_is_created_first() -> None:
    plan = plan_folder("Work", None, SAME, [], [], Answers(uids=[1]), exists_locally=False)
    assert isinstance(plan.steps[0], CreateFolder)


# --------------------------------------------------------------------------- flags


def test_server_flag_changes_are_stored_locally_keeping_unmapped_letters() -> None:
    local = [msg(1, 1, "a"), msg(2, 2, "S"), msg(3, 3)]
    answers = Answers(flags=[(1, SEEN), (2, SEEN)])
    plan = plan_folder("INBOX", SAVED, ServerState(V, 4, 60, 3), local, [], answers)
    assert plan.of(SetLocalFlags) == [SetLocalFlags("INBOX", 1, "k1", "Sa", False)]


def test_conflict_same_flag_on_both_sides_local_wins() -> None:
    """The written rule: the user flagged it here while the server unflagged it."""
    local = [msg(1, 1, "F", pending=True)]
    changes = [change(10, 1, add={Flag.FLAGGED})]
    answers = Answers(flags=[(1, NONE)])  # the server's side: no \\Flagged
    plan = plan_folder("INBOX", SAVED, ServerState(V, 4, 60, 1), local, changes, answers)
    assert plan.of(SetLocalFlags) == []  # local stays F
    [push] = plan.of(PushFlags)
    assert push.add == {Flag.FLAGGED} and push.server_id == ServerId(1, V)  # type: ignore[attr-defined]


def test_conflict_different_flags_on_each_side_both_changes_survive() -> None:
    # Here: flagged. There: read. Result on both ends: flagged and read.
    local = [msg(1, 1, "F", pending=True)]
    changes = [change(10, 1, add={Flag.FLAGGED})]
    plan = plan_folder(
        "INBOX", SAVED, ServerState(V, 4, 60, 1), local, changes, Answers(flags=[(1, SEEN)])
    )
    assert plan.of(SetLocalFlags) == [SetLocalFlags("INBOX", 1, "k1", "FS", True)]
    assert [type(s) for s in plan.steps][:2] == [SetLocalFlags, PushFlags]


def test_conflict_local_removal_beats_a_server_addition_of_the_same_flag() -> None:
    local = [msg(1, 1, "", pending=True)]
    changes = [change(10, 1, remove={Flag.SEEN})]
    plan = plan_folder(
        "INBOX", SAVED, ServerState(V, 4, 60, 1), local, changes, Answers(flags=[(1, SEEN)])
    )
    assert plan.of(SetLocalFlags) == []
    assert plan.of(PushFlags)[0].remove == {Flag.SEEN}  # type: ignore[attr-defined]


def test_pending_without_journal_keeps_local_flags() -> None:
    local = [msg(1, 1, "F", pending=True)]
    plan = plan_folder("INBOX", SAVED, SAME, local, [], Answers(flags=[(1, SEEN)]))
    assert plan.of(SetLocalFlags) == []


def test_changes_net_out_in_order() -> None:
    changes = [
        change(1, 7, add={Flag.SEEN}),
        change(2, 7, remove={Flag.SEEN}, add={Flag.FLAGGED}),
        change(3, 8, remove={Flag.FLAGGED}),
    ]
    assert net_changes(changes) == {7: ({Flag.FLAGGED}, {Flag.SEEN}), 8: (set(), {Flag.FLAGGED})}
    assert merge_flags(SEEN, "a", {Flag.FLAGGED}, {Flag.SEEN}) == "Fa"


def test_every_change_is_pushed_in_order_and_only_the_last_clears_pending() -> None:
    local = [msg(1, 1, "S", pending=True)]
    changes = [change(1, 1, add={Flag.SEEN}), change(2, 1, remove={Flag.FLAGGED})]
    plan = plan_folder("INBOX", SAVED, SAME, local, changes, Answers())
    pushes = plan.of(PushFlags)
    assert [(p.entry, p.last) for p in pushes] == [(1, False), (2, True)]  # type: ignore[attr-defined]


def test_a_change_waiting_out_a_backoff_is_merged_but_not_pushed() -> None:
    local = [msg(1, 1, "F", pending=True)]
    changes = [change(1, 1, add={Flag.FLAGGED}, due=False)]
    plan = plan_folder(
        "INBOX", SAVED, ServerState(V, 4, 60, 1), local, changes, Answers(flags=[(1, SEEN)])
    )
    assert plan.of(PushFlags) == []
    assert plan.of(SetLocalFlags)[0].letters == "FS"  # type: ignore[attr-defined]


def test_a_change_waiting_out_a_backoff_holds_back_the_later_ones_of_its_message() -> None:
    """Pushed first, the later change would be undone when the older one is replayed."""
    local = [msg(1, 1, "", pending=True), msg(2, 2, "", pending=True)]
    changes = [
        change(1, 1, add={Flag.FLAGGED}, due=False),
        change(2, 1, remove={Flag.FLAGGED}),
        change(3, 2, add={Flag.SEEN}),  # another message: not held back
    ]
    plan = plan_folder("INBOX", SAVED, SAME, local, changes, Answers())
    assert [(p.entry, p.msg_id) for p in plan.of(PushFlags)] == [(3, 2)]  # type: ignore[attr-defined]


def test_a_change_to_a_message_gone_on_the_server_is_dropped_not_pushed() -> None:
    changes = [change(1, 2, add={Flag.SEEN}), change(2, 99, add={Flag.SEEN})]
    plan = plan_folder("INBOX", SAVED, SAME, THREE, changes, Answers(expunged=[2]))
    assert plan.of(PushFlags) == []
    assert [d.entry for d in plan.of(DropChange)] == [1, 2]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- UIDVALIDITY


def test_uidvalidity_change_rematches_by_message_id_and_pushes_to_the_new_uid() -> None:
    local = [
        msg(1, 1, "S", mid="<a>"),
        msg(2, 2, "F", mid="<b>", pending=True),  # flagged here, not pushed yet
        msg(3, 3, mid="<c>"),  # gone from the server: kept, no UID
        msg(4, 4, mid="<dup>"),
        msg(5, 5, mid="<dup>"),  # ambiguous: never guessed
    ]
    changes = [change(10, 2, add={Flag.FLAGGED})]
    remote = ServerState(V + 1, 9, 5, 5)
    answers = Answers(
        message_ids=[
            (1, "<b>", NONE),  # <b> is UID 1 now: the old UID 2 belongs to <a>
            (2, "<a>", SEEN),
            (3, "<new>", NONE),
            (4, "<dup>", NONE),
            (5, "<dup>", NONE),
        ]
    )
    r = plan_reads(SAVED, remote, local, condstore=True, qresync=True)
    plan = plan_folder("INBOX", SAVED, remote, local, changes, answers, reads=r)
    assert plan.uidvalidity_changed
    assert plan.steps[0] == ForgetServerIds("INBOX", (1, 2, 3, 4, 5))
    assert {(s.msg_id, s.uid) for s in plan.of(Rematch)} == {(1, 2), (2, 1)}  # type: ignore[attr-defined]
    [push] = plan.of(PushFlags)
    assert push.msg_id == 2 and push.server_id == ServerId(uid=1, uidvalidity=V + 1)  # type: ignore[attr-defined]
    assert plan.of(Fetch)[0].uids == (3, 4, 5)  # type: ignore[attr-defined]
    assert plan.of(DeleteLocal) == []  # nothing local is lost
    assert plan.steps[-1] == SaveState("INBOX", V + 1, 9, 5)


def test_a_pending_change_on_an_unmatched_message_never_reaches_another_one() -> None:
    local = [msg(1, 1, "F", mid="<gone>", pending=True)]
    changes = [change(10, 1, add={Flag.FLAGGED})]
    remote = ServerState(V + 1, 2, 5, 1)
    answers = Answers(message_ids=[(1, "<other>", NONE)])  # UID 1 is another message now
    plan = plan_folder("INBOX", SAVED, remote, local, changes, answers)
    assert plan.of(PushFlags) == []
    assert plan.of(DropChange)[0].entry == 10  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- appends


def test_a_local_addition_is_appended_once() -> None:
    local = [*THREE, msg(4, None, "S", mid="<mine>", pending=True)]
    changes = [LocalChange(20, APPEND, 4, "INBOX", "k4")]
    plan = plan_folder("INBOX", SAVED, SAME, local, changes, Answers())
    assert plan.of(AppendRemote) == [AppendRemote("INBOX", 20, 4, "k4", "S", "<mine>")]
    # Already uploaded (it has its UID): the entry is only settled.
    local[3] = msg(4, 4, "S", mid="<mine>")
    plan = plan_folder("INBOX", SAVED, SAME, local, changes, Answers())
    assert plan.of(AppendRemote) == [] and plan.of(DropChange)


# --------------------------------------------------------------------------- STATUS and folders


def test_status_proves_no_change_only_with_condstore() -> None:
    assert unchanged(SAVED, SAME, condstore=True)
    assert not unchanged(SAVED, SAME, condstore=False)
    assert not unchanged(SAVED, ServerState(V, 5, 50, 4), condstore=True)
    assert not unchanged(SAVED, ServerState(V, 4, 51, 3), condstore=True)
    assert not unchanged(None, SAME, condstore=True)


def test_folders_follow_renames_creations_and_removals() -> None:
    saved = {
        "INBOX": SavedState(1),
        "Old": SavedState(7),
        "Old/Child": SavedState(8),
        "Gone": SavedState(9),
        "Busy": SavedState(10),
        "Sent": SavedState(11, role=FolderRole.SENT),
    }
    on_disk = {"INBOX", "Old", "Old/Child", "Gone", "Busy", "Sent"}
    remote = [
        RemoteFolderInfo("INBOX", FolderRole.INBOX),
        RemoteFolderInfo("New"),
        RemoteFolderInfo("New/Child"),
        RemoteFolderInfo("Fresh"),
        RemoteFolderInfo("Sent", FolderRole.SENT),
        RemoteFolderInfo("Parent", None, selectable=False),
    ]
    assert folders_needing_validity(remote, saved, on_disk) == ["New", "New/Child", "Fresh"]
    validity = {"New": 7, "New/Child": 8, "Fresh": 12}
    steps = plan_folders(remote, saved, on_disk, validity, lambda n: 1 if n == "Busy" else 0)
    assert steps[0] == RenameFolder("Old", "New")  # the child moves with its parent
    assert CreateFolder("Fresh") in steps and CreateFolder("New/Child") not in steps
    assert RemoveFolder("Gone") in steps and KeepFolder("Busy") in steps
    assert SetRole("INBOX", FolderRole.INBOX) in steps
    assert not [s for s in steps if isinstance(s, SetRole) and s.folder == "Sent"]
    assert not [s for s in steps if s.folder == "Parent"]


def test_transfer_and_expunge_touch_the_local_copy_after_the_server() -> None:
    sid = ServerId(5, V)
    steps = plan_transfer([("INBOX", 1, "k1", sid)], "Archive", copy=False)
    assert steps == [MoveRemote("INBOX", (sid,), "Archive"), DeleteLocal("INBOX", 1, "k1")]
    assert plan_transfer([("INBOX", 1, "k1", sid)], "Archive", copy=True) == [
        MoveRemote("INBOX", (sid,), "Archive", True)
    ]
    assert plan_expunge([("Trash", 1, "k1", sid)]) == [
        DeleteRemote("Trash", (sid,)),
        DeleteLocal("Trash", 1, "k1"),
    ]


def test_plans_describe_themselves_for_dry_run() -> None:
    remote = ServerState(V, 40, 55, 39)
    local = [msg(i, i) for i in range(1, 8)]
    answers = Answers(uids=list(range(8, 40)), flags=[(i, SEEN) for i in range(1, 6)])
    plan = plan_folder("INBOX", SAVED, remote, local, [], answers)
    lines = plan.describe()
    assert "fetch 32 new messages (UIDs 8-39)" in lines
    assert "set local flags of 5 messages (changed on the server)" in lines
    assert not any("save" in line for line in lines)
