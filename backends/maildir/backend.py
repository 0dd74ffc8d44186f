"""A local Maildir++ tree (one that mbsync or offlineimap fills) as a mail source.

The tree is the account's store: the sync engine rescans it into the index,
and flag changes, moves and deletes are done on the files themselves, so
mutt or mbsync see them at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tui_mail.backends.base import BackendContext, ReceiveBackend, RemoteFolder
from tui_mail.core.capabilities import Capabilities, Capability
from tui_mail.core.errors import ConfigError
from tui_mail.core.models import FolderRole


class MaildirReceiveBackend(ReceiveBackend):
    name = "maildir"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        if ctx.endpoint.path is None:
            raise ConfigError("a maildir account needs `path`", key=f"{ctx.endpoint.key_path}.path")
        self.root = Path(ctx.endpoint.path).expanduser()

    @property
    def capabilities(self) -> Capabilities:
        return frozenset(
            {
                Capability.LOCAL_STORE,
                Capability.FOLDERS,
                Capability.MOVE,
                Capability.COPY,
                Capability.APPEND,
            }
        )

    def local_root(self) -> str:
        return str(self.root)

    async def connect(self) -> None:
        # A missing root is created by the store; a root that is a file is not ours to fix.
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(
                f"{self.root} is not a directory", key=f"{self.ctx.endpoint.key_path}.path"
            )

    async def list_folders(self) -> Sequence[RemoteFolder]:
        # The sync engine lists folders through the store, which owns the layout.
        return [RemoteFolder("INBOX", FolderRole.INBOX)]

    async def check(self) -> str:
        await self.connect()
        return f"Maildir at {self.root}"
