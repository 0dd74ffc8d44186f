"""The local store: Maildir++ files per account plus one SQLite index for all.

Only the standard library. See docs/store.md for the layout and the rules.

The names below load on first use (PEP 562): the TUI opens the index before
its first frame, and the rescan and parsing code (the `email` package among
it) is not needed for that.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui_mail.store.account_store import AccountStore, RescanResult, role_for_name
    from tui_mail.store.index import FolderState, IndexedFile, MailIndex
    from tui_mail.store.journal import Journal, JournalEntry
    from tui_mail.store.maildir import MaildirStore, StoredFile, decode_folder, encode_folder
    from tui_mail.store.parse import ParsedHeaders, parse_message

_EXPORTS = {
    "AccountStore": "account_store",
    "RescanResult": "account_store",
    "role_for_name": "account_store",
    "FolderState": "index",
    "IndexedFile": "index",
    "MailIndex": "index",
    "Journal": "journal",
    "JournalEntry": "journal",
    "MaildirStore": "maildir",
    "StoredFile": "maildir",
    "decode_folder": "maildir",
    "encode_folder": "maildir",
    "ParsedHeaders": "parse",
    "parse_message": "parse",
}

__all__ = [
    "AccountStore",
    "FolderState",
    "IndexedFile",
    "Journal",
    "JournalEntry",
    "MailIndex",
    "MaildirStore",
    "ParsedHeaders",
    "RescanResult",
    "StoredFile",
    "decode_folder",
    "encode_folder",
    "parse_message",
    "role_for_name",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
