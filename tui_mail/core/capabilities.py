"""What a backend can do. Callers ask, they never check the backend's type."""

from __future__ import annotations

from enum import Enum


class Capability(Enum):
    FOLDERS = "folders"  # more than one folder, created/renamed on the server
    SERVER_FLAGS = "server_flags"  # flags live on the server and sync both ways
    KEYWORDS = "keywords"
    PUSH = "push"  # the server tells us about changes (IDLE)
    SERVER_SEARCH = "server_search"
    MOVE = "move"
    COPY = "copy"
    APPEND = "append"  # can store a message into a folder (Sent, Drafts)
    CONDSTORE = "condstore"
    QRESYNC = "qresync"
    DELETE_AFTER_DOWNLOAD = "delete_after_download"
    SEND = "send"
    LOCAL_STORE = "local_store"  # the backend's Maildir is the store: sync = rescan


Capabilities = frozenset[Capability]
