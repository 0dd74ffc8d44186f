"""The outbox in the TUI: a send that fails stays queued, is shown with its state, and
can be retried, resent (uncertain) or cancelled. The demo account sends through SMTP to
a port nobody listens on, so every attempt fails with a temporary error."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from compose_helpers import install_editor, notice, with_subject
from msgspec.structs import replace
from pilot_helpers import SIZE, EventLog, screen_text, wait_for, wait_ready

from tui_mail import paths
from tui_mail.backends.base import BackendContext, SendBackend
from tui_mail.backends.registry import make_send
from tui_mail.config.schema import AppConfig, EndpointConfig
from tui_mail.demo.generate import DEMO_EMAIL
from tui_mail.store.index import MailIndex
from tui_mail.sync.outbox import Outbox, State
from tui_mail.ui.app import MailApp
from tui_mail.ui.screens.compose import ComposeScreen, start_compose
from tui_mail.ui.screens.compose_dialogs import ConfirmScreen
from tui_mail.ui.widgets.outbox import OutboxScreen, open_outbox


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def failing_config(demo_config: AppConfig) -> AppConfig:
    account = demo_config.accounts["demo"]
    smtp = EndpointConfig(
        backend="smtp",
        host="127.0.0.1",
        port=_closed_port(),
        security="tls",
        timeout=5.0,
        key_path="accounts.demo.send",
    )
    return replace(demo_config, accounts={"demo": replace(account, send=smtp)})


def _entries(state: State | None = None) -> list:
    index = MailIndex.open(paths.index_path())
    try:
        return [e for e in Outbox(index).entries("demo", tuple(State)) if state in (None, e.state)]
    finally:
        index.close()


async def _send(pilot, subject: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    monkeypatch.setenv("EDIT_SUBJECT", subject)
    start_compose(app, "new", None)
    await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen) and app.screen.edits > 0)
    await pilot.press("y")
    await wait_for(pilot, lambda: subject in notice(app) and "sending" not in notice(app))


def _local_backend(config: AppConfig) -> SendBackend:
    account = config.accounts["demo"]
    return make_send(BackendContext(account, EndpointConfig(backend="local")))


async def test_failed_send_is_queued_shown_retried_and_cancelled(
    failing_config: AppConfig,
    event_log: EventLog,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    install_editor(monkeypatch, tmp_path)
    monkeypatch.setenv("EDIT_TO", DEMO_EMAIL)
    app = MailApp(failing_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        await _send(pilot, "Stuck in the outbox", monkeypatch)
        assert "queued, will retry" in notice(app)
        failed = _entries(State.FAILED)
        assert len(failed) == 1 and failed[0].retry_at is not None
        assert app.outbox.count("demo") == 1  # the tracker followed OutboxChanged

        open_outbox(app)
        await wait_for(pilot, lambda: isinstance(app.screen, OutboxScreen))
        text = screen_text(app)
        assert "Outbox (1)" in text and "Stuck in the outbox" in text
        assert "failed, retry at" in text and DEMO_EMAIL in text

        # r: tried again at once, fails again (attempt 2), still listed.
        await pilot.press("r")
        await wait_for(pilot, lambda: _entries(State.FAILED)[0].attempts == 2)
        await wait_for(pilot, lambda: "2 attempts" in screen_text(app))

        # The server is back: r delivers it, the Sent copy is filed, the list empties.
        worker = app.bridge.runtime.workers["demo"]
        smtp, worker.send_backend = worker.send_backend, _local_backend(failing_config)
        await pilot.press("r")
        await wait_for(pilot, lambda: bool(with_subject("Sent", "Stuck in the outbox")))
        await wait_for(pilot, lambda: "Outbox (0)" in screen_text(app))
        assert "The outbox is empty" in screen_text(app)
        assert [e.state for e in _entries()] == [State.SENT]

        # Down again: a second message fails, and is cancelled from the outbox.
        worker.send_backend = smtp
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main)
        await _send(pilot, "Never mind", monkeypatch)
        open_outbox(app)
        await wait_for(pilot, lambda: "Never mind" in screen_text(app))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: "Outbox (0)" in screen_text(app))
        cancelled = [e for e in _entries() if e.subject == "Never mind"]
        assert [e.state for e in cancelled] == [State.CANCELLED]
        assert not with_subject("Sent", "Never mind")


async def test_uncertain_message_is_resent_only_after_confirmation(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    raw = (
        f"From: {DEMO_EMAIL}\r\nTo: {DEMO_EMAIL}\r\nSubject: Maybe sent\r\n"
        "Message-ID: <maybe@demo.example>\r\nDate: Tue, 1 Jan 2030 00:00:00 +0000\r\n\r\nhi\r\n"
    ).encode()
    index = MailIndex.open(paths.index_path())
    try:
        box = Outbox(index)
        entry_id = box.enqueue("demo", raw)
        # As a crash during the SMTP transaction leaves it (docs/outbox.md).
        with index.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET state = 'uncertain', last_error = ? WHERE id = ?",
                ("interrupted during sending", entry_id),
            )
    finally:
        index.close()
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_ready(pilot, event_log)
        # Found at start: listed, and not sent by itself.
        assert "not sent" in notice(app)
        open_outbox(app)
        await wait_for(pilot, lambda: isinstance(app.screen, OutboxScreen))
        assert "uncertain" in screen_text(app) and "Maybe sent" in screen_text(app)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "may already have been delivered" in screen_text(app)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, OutboxScreen))
        assert _entries()[0].state is State.UNCERTAIN
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(with_subject("Sent", "Maybe sent")))
        await wait_for(pilot, lambda: "Outbox (0)" in screen_text(app))
        assert [e.state for e in _entries()] == [State.SENT]
        assert json.dumps([DEMO_EMAIL]) in json.dumps(list(_entries()[0].accepted))
