"""Undo of the last flag change or move: the inverse command, sent like any other.

Pure (no Textual). A flag change is undone by the opposite SetFlags on the
same messages (a Maildir key survives flag changes). A move is undone by
moving each message back: it is found by its index id, which a local move
keeps, or by its Message-ID in the target folder, because a server move makes
a new row when the copy comes back with its new UID.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from msgspec import Struct, field

from tui_mail.core.commands import Command, Move, SetFlags
from tui_mail.core.flags import Flag
from tui_mail.core.models import Envelope, MessageRef


class FlagUndo(Struct):
    refs: tuple[MessageRef, ...]
    add: frozenset[Flag]  # what the change added (the undo removes it)
    remove: frozenset[Flag]
    description: str
    command_ids: set[int] = field(default_factory=set)

    def inverse(self, index: Any) -> tuple[list[tuple[str, Command]], int]:
        commands: list[tuple[str, Command]] = []
        for account, refs in group_by_account(self.refs).items():
            commands.append((account, SetFlags(refs=tuple(refs), add=self.remove, remove=self.add)))
        return commands, 0


class Moved(Struct, frozen=True):
    account: str
    id: int | None
    message_id: str
    from_folder: str


class MoveUndo(Struct):
    moved: tuple[Moved, ...]
    to_folder: str
    description: str
    command_ids: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, envelopes: Iterable[Envelope], to_folder: str, description: str) -> MoveUndo:
        moved = tuple(
            Moved(e.ref.account, e.ref.id, e.message_id, e.ref.folder)
            for e in envelopes
            if e.ref.folder != to_folder
        )
        return cls(moved, to_folder, description)

    def locate(self, index: Any, item: Moved) -> MessageRef | None:
        """Where a moved message is now, if it is still in the target folder."""
        if item.id is not None:
            where = index.path_of(item.id)
            if where is not None and where[0] == item.account and where[1] == self.to_folder:
                return MessageRef(where[0], where[1], where[2], item.id)
        if item.message_id:
            for ref in index.find_by_message_id(item.account, item.message_id):
                if ref.folder == self.to_folder:
                    return ref
        return None

    def inverse(self, index: Any) -> tuple[list[tuple[str, Command]], int]:
        """One Move back per (account, original folder); and how many were not found."""
        back: dict[tuple[str, str], list[MessageRef]] = {}
        missing = 0
        for item in self.moved:
            ref = self.locate(index, item)
            if ref is None:
                missing += 1
                continue
            back.setdefault((item.account, item.from_folder), []).append(ref)
        commands: list[tuple[str, Command]] = [
            (account, Move(refs=tuple(refs), to_folder=folder))
            for (account, folder), refs in back.items()
        ]
        return commands, missing


UndoEntry = FlagUndo | MoveUndo


def group_by_account(refs: Iterable[MessageRef]) -> dict[str, list[MessageRef]]:
    out: dict[str, list[MessageRef]] = {}
    for ref in refs:
        out.setdefault(ref.account, []).append(ref)
    return out


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
