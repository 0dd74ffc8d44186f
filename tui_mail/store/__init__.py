"""The local store: Maildir++ files per account plus one SQLite index for all.

Only the standard library. See docs/store.md for the layout and the rules.
"""

from __future__ import annotations

from tui_mail.store.account_store import AccountStore, RescanResult, role_for_name
from tui_mail.store.index import FolderState, IndexedFile, MailIndex
from tui_mail.store.journal import Journal, JournalEntry
from tui_mail.store.maildir import MaildirStore, StoredFile, decode_folder, encode_folder
from tui_mail.store.parse import ParsedHeaders, parse_message

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
