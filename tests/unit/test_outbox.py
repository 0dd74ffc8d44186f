"""The durable outbox: states, recovery after a crash, backoff, cancel, partial
acceptance, and `flush_outbox` / `tui-mail send` on a fake transport."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from tui_mail.backends.base import BackendContext, SendBackend, SendResult
from tui_mail.backends.smtp.backend import RecipientsRefused, SmtpRefused
from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig
from tui_mail.core.capabilities import Capabilities, Capability
from tui_mail.core.errors import AuthError, ConnectError, MailError
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex
from tui_mail.sync import outbox as ob
from tui_mail.sync.outbox import (
    EX_TEMPFAIL,
    UNCERTAIN_REASON,
    Outbox,
    OutboxBusy,
    OutboxChanged,
    State,
    flush_outbox,
    headless_send,
)

ACCOUNT = AccountConfig(
    name="alice",
    email="alice@example.com",
    receive=EndpointConfig(backend="maildir", path=Path("/nonexistent")),
    send=EndpointConfig(backend="local"),
    aliases=("al@example.org",),
)


def message(n: int = 1, extra: str = "") -> bytes:
    return (
        f"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n{extra}"
        f"Subject: test {n}\r\nMessage-ID: <m{n}@example.com>\r\n\r\nbody {n}\r\n"
    ).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeSend(SendBackend):
    name = "fake"

    def __init__(self, outcomes: Sequence[object] = ()) -> None:
        super().__init__(BackendContext(ACCOUNT, ACCOUNT.send))
        self.outcomes = list(outcomes)
        self.sent: list[tuple[bytes, str, list[str]]] = []
        self.attempts = 0

    @property
    def capabilities(self) -> Capabilities:
        return frozenset({Capability.SEND})

    async def send(self, raw: bytes, sender: str, recipients: Sequence[str]) -> SendResult:
        self.attempts += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return await outcome(raw, sender, recipients)
        self.sent.append((raw, sender, list(recipients)))
        accepted = tuple(outcome) if isinstance(outcome, tuple) else tuple(recipients)
        return SendResult(accepted, "250 2.0.0 Ok: queued as ABC")


@pytest.fixture
def index(tmp_path: Path):
    idx = MailIndex(tmp_path / "index.sqlite3")
    yield idx
    idx.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def box(index: MailIndex, tmp_path: Path, clock: Clock) -> Outbox:
    return Outbox(index, tmp_path / "outbox", clock=clock, lock_wait=0.3)


def files(box: Outbox, account: str = "alice") -> list[str]:
    """The message files and markers (not the lock file)."""
    folder = box.root / account
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != ".lock")


# --------------------------------------------------------------------------- happy path


async def test_enqueue_writes_the_file_first_then_sends_once(box: Outbox) -> None:
    raw = message(1, "Bcc: Secret <s@example.org>\r\n")
    id_ = box.enqueue("alice", raw)
    entry = box.get(id_)
    assert entry is not None and entry.state is State.QUEUED
    assert entry.recipients == ("bob@example.net", "s@example.org")
    assert entry.subject == "test 1" and entry.message_id == "<m1@example.com>"
    (name,) = files(box)
    assert (box.root / "alice" / name).read_bytes() == raw
    assert oct((box.root / "alice" / name).stat().st_mode & 0o777) == "0o600"

    saved: list[bytes] = []

    async def save(copy: bytes) -> None:
        saved.append(copy)

    backend = FakeSend()
    results = await box.deliver_due("alice", backend, save)
    assert [(r.id, r.state) for r in results] == [(id_, State.SENT)]
    assert results[0].accepted == ("bob@example.net", "s@example.org")
    wire, sender, rcpts = backend.sent[0]
    assert sender == "alice@example.com"
    assert rcpts == ["bob@example.net", "s@example.org"]
    assert b"Bcc" not in wire and b"s@example.org" not in wire
    assert saved == [raw]  # the user's own copy keeps Bcc
    assert box.get(id_).state is State.SENT
    assert files(box) == []  # file and marker gone
    # Nothing is due any more: a second run sends nothing.
    assert await box.deliver_due("alice", backend, save) == []
    assert len(backend.sent) == 1


async def test_enqueue_refuses_unsendable_messages(box: Outbox) -> None:
    with pytest.raises(MailError, match="no recipients"):
        box.enqueue("alice", b"From: a@example.com\r\nSubject: x\r\n\r\nx")
    with pytest.raises(MailError, match="To: 'bob@'"):
        box.enqueue("alice", b"From: a@example.com\r\nTo: bob@\r\n\r\nx")
    assert files(box) == [] and box.entries() == []


async def test_accounts_are_separate(box: Outbox) -> None:
    a = box.enqueue("alice", message(1))
    b = box.enqueue("other", message(2))
    results = await box.deliver_due("alice", FakeSend())
    assert [r.id for r in results] == [a]
    assert box.get(b).state is State.QUEUED


# --------------------------------------------------------------------------- failures


async def test_retryable_failure_backs_off_exponentially(box: Outbox, clock: Clock) -> None:
    box.retry_base, box.retry_cap = 30.0, 3600.0
    id_ = box.enqueue("alice", message())
    backend = FakeSend([ConnectError("smtp:587: Connection refused")] * 3)
    delays = []
    for _ in range(3):
        (result,) = await box.deliver_due("alice", backend)
        assert result.state is State.FAILED and result.retry_at is not None
        assert "Connection refused" in result.detail
        delays.append(result.retry_at - clock.now)
        entry = box.get(id_)
        assert entry.state is State.FAILED and entry.will_retry
        assert entry.last_error == "smtp:587: Connection refused"
        # Not due before its time.
        assert await box.deliver_due("alice", backend) == []
        clock.now = result.retry_at
    assert box.get(id_).attempts == 3
    for delay, expected in zip(delays, (30.0, 54.0, 97.2), strict=True):
        assert expected * 0.9 <= delay <= expected * 1.1  # Backoff: x1.8, 10% jitter
    (result,) = await box.deliver_due("alice", backend)
    assert result.state is State.SENT and len(backend.sent) == 1


async def test_4xx_is_retried_5xx_is_permanent(box: Outbox) -> None:
    a = box.enqueue("alice", message(1))
    b = box.enqueue("alice", message(2))
    backend = FakeSend(
        [
            SmtpRefused("452 4.3.1 Insufficient system storage", 452),
            SmtpRefused("552 5.3.4 Message size exceeds fixed limit", 552),
        ]
    )
    first, second = await box.deliver_due("alice", backend)
    assert (first.id, first.state) == (a, State.FAILED) and first.retry_at is not None
    assert (second.id, second.state) == (b, State.FAILED) and second.retry_at is None
    assert "552 5.3.4" in box.get(b).last_error
    assert not box.get(b).will_retry
    assert [e.id for e in box.due("alice", force=True)] == [a]


async def test_every_recipient_refused(box: Outbox) -> None:
    id_ = box.enqueue("alice", message())
    refused = RecipientsRefused("h:587", {"bob@example.net": (550, "no such user")})
    (result,) = await box.deliver_due("alice", FakeSend([refused]))
    assert result.state is State.FAILED and result.retry_at is None
    assert "bob@example.net: 550 no such user" in box.get(id_).last_error


async def test_auth_error_fails_the_run_without_more_connections(box: Outbox) -> None:
    ids = [box.enqueue("alice", message(n)) for n in range(3)]
    backend = FakeSend([AuthError("h:587: 535 authentication failed")])
    results = await box.deliver_due("alice", backend)
    assert backend.attempts == 1
    assert [(r.id, r.state, r.retry_at) for r in results] == [(i, State.FAILED, None) for i in ids]
    assert all("535" in box.get(i).last_error for i in ids)
    # The user fixed the password: retry puts them back in the queue.
    for i in ids:
        box.retry(i)
    again = await box.deliver_due("alice", FakeSend())
    assert [r.state for r in again] == [State.SENT] * 3


async def test_connect_error_defers_the_rest_of_the_run(box: Outbox) -> None:
    ids = [box.enqueue("alice", message(n)) for n in range(3)]
    backend = FakeSend([ConnectError("h:587: Connection refused")])
    results = await box.deliver_due("alice", backend)
    assert backend.attempts == 1
    assert all(r.state is State.FAILED and r.retry_at for r in results)
    assert [box.get(i).attempts for i in ids] == [1, 1, 1]


async def test_partial_acceptance_is_sent_and_never_resent(box: Outbox) -> None:
    id_ = box.enqueue("alice", message(1, "Cc: nosuch@example.net\r\n"))
    backend = FakeSend([("bob@example.net",)])
    (result,) = await box.deliver_due("alice", backend)
    assert result.state is State.SENT
    assert result.accepted == ("bob@example.net",)
    assert result.refused == ("nosuch@example.net",)
    entry = box.get(id_)
    assert entry.state is State.SENT and entry.accepted == ("bob@example.net",)
    assert "not sent to nosuch@example.net" in entry.last_error
    assert await box.deliver_due("alice", backend, force=True) == []
    assert "not sent to nosuch@example.net" in ob.describe(result)


async def test_gives_up_after_the_queue_lifetime(box: Outbox, clock: Clock) -> None:
    id_ = box.enqueue("alice", message())
    clock.now += box.give_up_after + 1
    (result,) = await box.deliver_due("alice", FakeSend([ConnectError("down")]))
    assert result.retry_at is None and result.detail == "gave up after 1 attempts: down"
    assert box.get(id_).state is State.FAILED


# --------------------------------------------------------------------------- crash windows


async def test_sending_found_at_startup_becomes_uncertain_and_is_not_resent(
    box: Outbox, index: MailIndex, tmp_path: Path, clock: Clock
) -> None:
    id_ = box.enqueue("alice", message())
    started = asyncio.Event()

    async def hang(raw: bytes, sender: str, rcpts: Sequence[str]) -> SendResult:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    task = asyncio.create_task(box.deliver_due("alice", FakeSend([hang])))
    await started.wait()
    assert box.get(id_).state is State.SENDING
    task.cancel()  # the process dies mid-transaction (as far as the outbox knows)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert box.get(id_).state is State.SENDING

    restarted = Outbox(index, tmp_path / "outbox", clock=clock)
    backend = FakeSend()
    assert await restarted.deliver_due("alice", backend) == []
    assert backend.attempts == 0
    entry = restarted.get(id_)
    assert entry.state is State.UNCERTAIN and entry.last_error == UNCERTAIN_REASON
    assert not entry.will_retry
    # The user decides: resend.
    restarted.resend(id_)
    (result,) = await restarted.deliver_due("alice", backend)
    assert result.state is State.SENT and backend.attempts == 1


async def test_uncertain_can_be_discarded(box: Outbox, index: MailIndex) -> None:
    id_ = box.enqueue("alice", message())
    with index.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'sending' WHERE id = ?", (id_,))
    assert box.recover("alice") == [id_]
    box.discard(id_)
    assert box.get(id_).state is State.CANCELLED
    assert files(box) == []


async def test_lost_sending_commit_is_caught_by_the_marker(box: Outbox, index: MailIndex) -> None:
    """A power cut can undo the `sending` commit (synchronous=NORMAL); the fsynced
    marker still says an attempt started."""
    id_ = box.enqueue("alice", message())
    entry = box.get(id_)
    assert box._claim(entry) is not None
    with index.transaction() as conn:  # the commit that was lost
        conn.execute("UPDATE outbox SET state = 'queued', attempts = 0 WHERE id = ?", (id_,))
    backend = FakeSend()
    assert await box.deliver_due("alice", backend) == []
    assert backend.attempts == 0 and box.get(id_).state is State.UNCERTAIN


async def test_stale_marker_after_a_recorded_outcome_is_only_cleaned(
    box: Outbox, clock: Clock
) -> None:
    id_ = box.enqueue("alice", message())
    (result,) = await box.deliver_due("alice", FakeSend([ConnectError("down")]))
    path = box.root / "alice" / box.get(id_).file
    (path.parent / (path.name + ".sending")).write_text("1\n")  # cleanup was interrupted
    clock.now = result.retry_at
    (again,) = await box.deliver_due("alice", FakeSend())
    assert again.state is State.SENT


async def test_file_without_a_row_is_adopted_as_uncertain(box: Outbox, index: MailIndex) -> None:
    id_ = box.enqueue("alice", message(7))
    with index.transaction() as conn:  # as after the index was moved aside and recreated
        conn.execute("DELETE FROM outbox")
    backend = FakeSend()
    assert await box.deliver_due("alice", backend) == []
    (entry,) = box.entries("alice")
    assert entry.id != id_ and entry.state is State.UNCERTAIN
    assert entry.subject == "test 7" and entry.recipients == ("bob@example.net",)
    assert "without a record" in entry.last_error
    assert backend.attempts == 0


async def test_row_without_a_file_is_failed_not_sent(box: Outbox) -> None:
    id_ = box.enqueue("alice", message())
    (box.root / "alice" / box.get(id_).file).unlink()
    backend = FakeSend()
    assert await box.deliver_due("alice", backend) == []
    entry = box.get(id_)
    assert entry.state is State.FAILED and "missing" in entry.last_error
    with pytest.raises(MailError, match="no stored copy"):
        box.retry(id_)


async def test_interrupted_enqueue_leaves_nothing(box: Outbox, monkeypatch) -> None:
    def boom(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ob, "_fsync_dir", boom)
    with pytest.raises(MailError, match="No space left"):
        box.enqueue("alice", message())
    assert files(box) == [] and os.listdir(box.root / "alice" / "tmp") == []
    assert box.entries() == []


async def test_a_second_process_waits_for_the_delivery_lock(
    box: Outbox, index: MailIndex, tmp_path: Path, clock: Clock
) -> None:
    box.enqueue("alice", message())
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(raw: bytes, sender: str, rcpts: Sequence[str]) -> SendResult:
        started.set()
        await release.wait()
        return SendResult(tuple(rcpts))

    first = asyncio.create_task(box.deliver_due("alice", FakeSend([slow])))
    await started.wait()
    other = Outbox(index, tmp_path / "outbox", clock=clock, lock_wait=0.2)
    with pytest.raises(OutboxBusy):
        await other.deliver_due("alice", FakeSend())
    release.set()
    (result,) = await first
    assert result.state is State.SENT


# --------------------------------------------------------------------------- cancel


async def test_cancel_queued_and_failed_but_not_sending_or_sent(
    box: Outbox, index: MailIndex
) -> None:
    queued = box.enqueue("alice", message(1))
    box.cancel(queued)
    assert box.get(queued).state is State.CANCELLED
    assert files(box) == []
    failed = box.enqueue("alice", message(2))
    await box.deliver_due("alice", FakeSend([ConnectError("down")]))
    box.cancel(failed)
    assert box.get(failed).state is State.CANCELLED
    assert await box.deliver_due("alice", FakeSend(), force=True) == []

    sent = box.enqueue("alice", message(3))
    await box.deliver_due("alice", FakeSend())
    with pytest.raises(MailError, match="cannot be cancelled: it is sent"):
        box.cancel(sent)
    sending = box.enqueue("alice", message(4))
    with index.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'sending' WHERE id = ?", (sending,))
    with pytest.raises(MailError, match="it is sending"):
        box.cancel(sending)


async def test_cancel_while_claimed_by_another_run_loses_cleanly(box: Outbox) -> None:
    id_ = box.enqueue("alice", message())
    entry = box.get(id_)
    box.cancel(id_)
    assert box._claim(entry) is None  # the delivering side sees it is no longer due


async def test_purge_forgets_old_finished_rows(box: Outbox, clock: Clock) -> None:
    a = box.enqueue("alice", message(1))
    await box.deliver_due("alice", FakeSend())
    b = box.enqueue("alice", message(2))
    clock.now += 31 * 86400
    assert box.purge() == 1
    assert box.get(a) is None and box.get(b) is not None


# --------------------------------------------------------------------------- the worker's path


async def test_flush_outbox_emits_changes_and_saves_the_sent_copy(
    index: MailIndex, tmp_path: Path, clock: Clock
) -> None:
    store = AccountStore("alice", tmp_path / "mail", index)
    box = Outbox(index, tmp_path / "outbox", clock=clock)
    id_ = box.enqueue("alice", message(1, "Bcc: s@example.org\r\n"))
    events: list[object] = []
    results = await flush_outbox(ACCOUNT, store, FakeSend(), events.append, outbox=box)
    assert [r.state for r in results] == [State.SENT]
    changes = [e for e in events if isinstance(e, OutboxChanged)]
    assert changes and changes[-1].entries == () and changes[-1].account == "alice"
    assert any(e.state is State.SENDING for c in changes for e in c.entries)
    sent = [f for f in store.folders() if f.name == "Sent"]
    assert sent and sent[0].total == 1
    assert box.get(id_).state is State.SENT


async def test_flush_outbox_save_failure_does_not_resend(
    index: MailIndex, tmp_path: Path, clock: Clock
) -> None:
    store = AccountStore("alice", tmp_path / "mail", index)
    box = Outbox(index, tmp_path / "outbox", clock=clock)
    id_ = box.enqueue("alice", message())

    async def broken(raw: bytes) -> None:
        raise OSError("disk full")

    backend = FakeSend()
    await flush_outbox(ACCOUNT, store, backend, lambda e: None, save_sent=broken, outbox=box)
    entry = box.get(id_)
    assert entry.state is State.SENT and "Sent copy failed" in entry.last_error
    await flush_outbox(ACCOUNT, store, backend, lambda e: None, save_sent=None, outbox=box)
    assert backend.attempts == 1


# --------------------------------------------------------------------------- headless


def app(tmp_path: Path, send: EndpointConfig) -> AppConfig:
    account = AccountConfig(
        name="alice",
        email="alice@example.com",
        receive=EndpointConfig(backend="maildir", path=tmp_path / "Maildir"),
        send=send,
    )
    return AppConfig(path=None, accounts={"alice": account})


async def test_headless_send_local_backend(tmp_path: Path) -> None:
    config = app(tmp_path, EndpointConfig(backend="local", path=tmp_path / "delivered"))
    raw = b"To: bob@example.net\nBcc: s@example.org\nSubject: cli\n\nhi\n"
    outcome = await headless_send(config, raw=raw, index_path=tmp_path / "i.sqlite3")
    assert outcome == ob.SendOutcome(0, ())
    (delivered,) = list((tmp_path / "delivered" / "new").iterdir())
    copy = delivered.read_bytes()
    assert copy.startswith(b"From: alice@example.com\nDate: ")
    assert b"Message-ID: <" in copy and b"Bcc" not in copy and copy.endswith(b"\n\nhi\n")
    (sent,) = list((tmp_path / "Maildir" / ".Sent" / "cur").iterdir())
    assert b"Bcc: s@example.org" in sent.read_bytes()


async def test_headless_send_unreachable_is_tempfail_then_flush(tmp_path: Path) -> None:
    down = EndpointConfig(backend="smtp", host="127.0.0.1", port=1, security="none", timeout=2)
    config = app(tmp_path, down)
    raw = b"From: alice@example.com\nTo: bob@example.net\nSubject: later\n\nhi\n"
    idx = tmp_path / "i.sqlite3"
    outcome = await headless_send(config, raw=raw, index_path=idx)
    assert outcome.exit_code == EX_TEMPFAIL
    (line,) = outcome.lines
    assert "not sent yet, queued for retry at" in line and "127.0.0.1:1" in line
    # A flush with the transport fixed sends it, once.
    fixed = app(tmp_path, EndpointConfig(backend="local", path=tmp_path / "delivered"))
    assert (await headless_send(fixed, flush_only=True, index_path=idx)).exit_code == 0
    assert len(list((tmp_path / "delivered" / "new").iterdir())) == 1
    assert (await headless_send(fixed, flush_only=True, index_path=idx)).exit_code == 0
    assert len(list((tmp_path / "delivered" / "new").iterdir())) == 1


async def test_headless_send_refuses_a_bad_address_before_queueing(tmp_path: Path) -> None:
    config = app(tmp_path, EndpointConfig(backend="local", path=tmp_path / "delivered"))
    with pytest.raises(MailError, match="To: 'bob@' is not a valid address"):
        await headless_send(config, raw=b"To: bob@\n\nx\n", index_path=tmp_path / "i.sqlite3")


def test_due_accounts_come_from_the_index_and_none_is_made_to_ask(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    assert ob.accounts_with_due_mail(["alice", "bob"], path) == []
    assert not path.exists()  # a first sync: the sync itself makes the index
    index = MailIndex(path)
    try:
        assert ob.accounts_with_due_mail(["alice"], path) == []
        tables = "SELECT name FROM sqlite_master WHERE name = 'outbox'"
        assert index.execute_read(tables) == []  # nor an outbox in it
        Outbox(index, tmp_path / "outbox").enqueue("alice", message(1))
    finally:
        index.close()
    assert ob.accounts_with_due_mail(["alice", "bob"], path) == ["alice"]


def test_pick_account(tmp_path: Path) -> None:
    config = app(tmp_path, EndpointConfig(backend="local"))
    two = AppConfig(
        path=None,
        accounts={
            "alice": config.accounts["alice"],
            "work": AccountConfig(
                name="work",
                email="a@work.example",
                receive=config.accounts["alice"].receive,
                send=config.accounts["alice"].send,
                aliases=("boss@work.example",),
            ),
        },
    )
    assert ob.pick_account(two, b"From: Boss <BOSS@work.example>\n\n", None) == ["work"]
    assert ob.pick_account(two, b"From: x@y.example\n\n", "alice") == ["alice"]
    with pytest.raises(MailError, match="--account"):
        ob.pick_account(two, b"From: x@y.example\n\n", None)
    assert ob.pick_account(config, b"From: x@y.example\n\n", None) == ["alice"]
    assert ob.pick_account(two, None, None) == ["alice", "work"]


async def test_transport_reporting_an_uncertain_delivery(box: Outbox) -> None:
    lost = ConnectError("link dropped after the data went out")
    lost.delivery_uncertain = True  # type: ignore[attr-defined]
    id_ = box.enqueue("alice", message())
    (result,) = await box.deliver_due("alice", FakeSend([lost]))
    assert result.state is State.UNCERTAIN and "link dropped" in result.detail
    backend = FakeSend()
    assert await box.deliver_due("alice", backend, force=True) == []
    assert backend.attempts == 0 and box.get(id_).state is State.UNCERTAIN
