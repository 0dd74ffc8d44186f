"""A Maildir account filled with hostile mail, and helpers to drive the TUI over it.

Tests only. The account receives from a local Maildir (the `maildir` backend: no
network) and "sends" by local delivery, so viewing, replying and forwarding run the
real code paths with nothing but files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig, UiConfig
from tui_mail.core.models import Envelope
from tui_mail.store.maildir import MaildirStore

ACCOUNT = "hostile"
EMAIL = "alice@example.test"
SIZE = (100, 30)


def maildir_config(root: Path, ui: UiConfig | None = None) -> AppConfig:
    receive = EndpointConfig(backend="maildir", path=root, key_path=f"accounts.{ACCOUNT}.receive")
    send = EndpointConfig(
        backend="local", path=root.parent / "delivered", key_path=f"accounts.{ACCOUNT}.send"
    )
    account = AccountConfig(ACCOUNT, EMAIL, receive, send, display_name="Alice")
    return AppConfig(path=None, accounts={ACCOUNT: account}, ui=ui or UiConfig())


def fill(root: Path, messages: Iterable[bytes], folder: str = "INBOX") -> int:
    """Deliver `messages` into `folder` of the Maildir at `root`; returns how many."""
    store = MaildirStore(root)
    n = 0
    with store.batch():
        for raw in messages:
            store.add(folder, raw)
            n += 1
    return n


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the UI")
        await pilot.pause(0.02)
    await pilot.pause()


def envelopes(app: Any) -> list[Envelope]:
    messages = app.main.messages
    found = []
    for row in range(messages.count):
        env = messages.envelope_at(row)
        if env is not None:
            found.append(env)
    return found


def find(app: Any, message_id: str) -> Envelope:
    for env in envelopes(app):
        if env.message_id == message_id:
            return env
    raise AssertionError(f"{message_id} is not in the list")


def select(app: Any, message_id: str) -> Envelope:
    """Put the list's cursor on the message, as the user would with j/k."""
    messages = app.main.messages
    for row in range(messages.count):
        env = messages.envelope_at(row)
        if env is not None and env.message_id == message_id:
            messages.cursor = row
            return env
    raise AssertionError(f"{message_id} is not in the list")
