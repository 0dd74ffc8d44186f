"""Message flags, normalised once, with the Maildir letter table.

Backends convert to and from their own representation (IMAP system flags,
Maildir letters); everything above them speaks `Flag` plus keywords.
"""

from __future__ import annotations

from enum import Enum

from msgspec import Struct, field


class Flag(Enum):
    SEEN = "seen"
    ANSWERED = "answered"
    FLAGGED = "flagged"
    DELETED = "deleted"
    DRAFT = "draft"
    PASSED = "passed"  # forwarded / resent


# Maildir "info" letters (https://cr.yp.to/proto/maildir.html).
MAILDIR_LETTER: dict[Flag, str] = {
    Flag.DRAFT: "D",
    Flag.FLAGGED: "F",
    Flag.PASSED: "P",
    Flag.ANSWERED: "R",
    Flag.SEEN: "S",
    Flag.DELETED: "T",
}
LETTER_FLAG: dict[str, Flag] = {v: k for k, v in MAILDIR_LETTER.items()}


class FlagSet(Struct, frozen=True):
    """System flags plus letters we do not understand but must keep.

    `extra_letters` preserves Maildir flag letters other tools wrote (for
    example Dovecot keyword letters a-z) so a round trip never drops them.
    """

    flags: frozenset[Flag] = frozenset()
    extra_letters: str = ""
    keywords: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_maildir(cls, letters: str) -> FlagSet:
        known: set[Flag] = set()
        extra: set[str] = set()
        for ch in letters:
            if ch in LETTER_FLAG:
                known.add(LETTER_FLAG[ch])
            elif ch.isascii() and ch.isprintable() and ch not in ",:/":
                extra.add(ch)
        return cls(frozenset(known), "".join(sorted(extra)))

    def to_maildir(self) -> str:
        """Letters in ASCII order, as the Maildir spec requires."""
        letters = {MAILDIR_LETTER[f] for f in self.flags} | set(self.extra_letters)
        return "".join(sorted(letters))

    def __contains__(self, flag: object) -> bool:
        return flag in self.flags

    def with_(self, *add: Flag) -> FlagSet:
        return FlagSet(self.flags | frozenset(add), self.extra_letters, self.keywords)

    def without(self, *remove: Flag) -> FlagSet:
        return FlagSet(self.flags - frozenset(remove), self.extra_letters, self.keywords)


def normalise_maildir_letters(letters: str) -> str:
    """Sorted, de-duplicated letters: the canonical on-disk form."""
    return FlagSet.from_maildir(letters).to_maildir()
