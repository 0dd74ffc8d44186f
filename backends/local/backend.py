"""Local delivery: "sending" writes the message into a Maildir on this machine.

The demo account uses it, so composing and sending work with no network.
Mail to the account's own address also lands in its INBOX when its mail is a
local Maildir, the way a real server would deliver it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from tui_mail import paths
from tui_mail.backends.base import BackendContext, SendBackend, SendResult
from tui_mail.core.capabilities import Capabilities, Capability
from tui_mail.store.maildir import MaildirStore


class LocalSendBackend(SendBackend):
    name = "local"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        configured = ctx.endpoint.path
        self.outside = (
            Path(configured).expanduser()
            if configured
            else paths.data_dir() / "delivered" / ctx.account.name
        )
        own_receive = ctx.account.receive
        self.own_root = (
            Path(own_receive.path).expanduser()
            if own_receive.backend == "maildir" and own_receive.path
            else None
        )
        self.own_addresses = {a.lower() for a in (ctx.account.email, *ctx.account.aliases)}

    @property
    def capabilities(self) -> Capabilities:
        return frozenset({Capability.SEND})

    async def send(self, raw: bytes, sender: str, recipients: Sequence[str]) -> SendResult:
        return await asyncio.to_thread(self._deliver, raw, recipients)

    def _deliver(self, raw: bytes, recipients: Sequence[str]) -> SendResult:
        MaildirStore(self.outside).add("INBOX", raw)
        if self.own_root is not None and any(r.lower() in self.own_addresses for r in recipients):
            MaildirStore(self.own_root).add("INBOX", raw)
        return SendResult(tuple(recipients), f"delivered to {self.outside}")

    async def check(self) -> str:
        return f"local delivery into {self.outside}"
