"""Planner rules for recovering from lost local state (tests/hostile/test_crash_faults.py
drives the same cases end to end against Dovecot)."""

from __future__ import annotations

from tui_mail.sync.plan import (
    Answers,
    Fetch,
    LocalMessage,
    Rematch,
    SavedState,
    SaveState,
    ServerState,
    adopt_orphans,
    plan_folder,
    plan_reads,
    unchanged,
)


def copies(uids: range, validity: int = 7) -> list[LocalMessage]:
    return [LocalMessage(u, f"k{u}", u, validity, "S", f"<m{u}@x>") for u in uids]


def test_copies_gone_without_a_user_delete_are_listed_from_the_start() -> None:
    saved = SavedState(7, 101, None)
    # 100 on the server, nothing new since the last sync, 10 local copies vanished.
    reads = plan_reads(
        saved,
        ServerState(7, 101, None, 100),
        copies(range(11, 101)),
        condstore=False,
        qresync=False,
    )
    assert reads.list_from == 1
    plan = plan_folder(
        "INBOX",
        saved,
        ServerState(7, 101, None, 100),
        copies(range(11, 101)),
        [],
        Answers(uids=list(range(1, 101))),
        reads=reads,
    )
    assert plan.of(Fetch) == [Fetch("INBOX", tuple(range(1, 11)))]
    assert not [s for s in plan.steps if type(s).__name__ in ("DeleteRemote", "MoveRemote")]


def test_new_mail_alone_does_not_trigger_a_full_listing() -> None:
    saved = SavedState(7, 101, None)
    reads = plan_reads(
        saved,
        ServerState(7, 111, None, 110),
        copies(range(1, 101)),
        condstore=False,
        qresync=False,
    )
    assert reads.list_from == 101
    # Expunges on the server make the count smaller, never a false alarm.
    reads = plan_reads(
        saved,
        ServerState(7, 101, None, 90),
        copies(range(1, 101)),
        condstore=False,
        qresync=False,
    )
    assert reads.list_from is None


def test_status_is_not_unchanged_when_local_copies_are_missing() -> None:
    saved = SavedState(7, 101, 5)
    status = ServerState(7, 101, 5, 100)
    assert unchanged(saved, status, condstore=True)
    assert unchanged(saved, status, condstore=True, local=100)
    assert not unchanged(saved, status, condstore=True, local=90)


def test_files_written_before_their_rows_are_adopted_not_fetched_again() -> None:
    orphans = [LocalMessage(500 + i, f"o{i}", None, None, "", f"<n{i}@x>") for i in range(3)]
    twin = LocalMessage(600, "t", None, None, "", "<dup@x>")
    twin2 = LocalMessage(601, "t2", None, None, "", "<dup@x>")
    plan = plan_folder(
        "INBOX",
        SavedState(7, 101, None),
        ServerState(7, 106, None, 105),
        [*copies(range(1, 101)), *orphans, twin, twin2],
        [],
        Answers(uids=list(range(101, 106))),
        reads=None,
    )
    assert plan.of(Fetch) == [Fetch("INBOX", (101, 102, 103, 104, 105))]
    fetched = [
        (101, "<n0@x>"),
        (102, "<n1@x>"),
        (103, "<dup@x>"),
        (104, "<new@x>"),
        (105, "<n2@x>"),
    ]
    adopted = adopt_orphans(plan, [*orphans, twin, twin2], fetched, 7)
    assert adopted.of(Rematch) == [
        Rematch("INBOX", 500, "o0", 101, 7),
        Rematch("INBOX", 501, "o1", 102, 7),
        Rematch("INBOX", 502, "o2", 105, 7),
    ]
    # Ambiguous (two local copies) and unknown ones are fetched as before.
    assert adopted.of(Fetch) == [Fetch("INBOX", (103, 104))]
    assert isinstance(adopted.steps[-1], SaveState)
    assert adopt_orphans(plan, [], fetched, 7) is plan
