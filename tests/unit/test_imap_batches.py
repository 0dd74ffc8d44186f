"""How a download is cut into store batches (imap_sync.batch_size), and how it
waits for their rows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui_mail.core.flags import FlagSet
from tui_mail.core.models import MessageRef, RemoteMessage, ServerId
from tui_mail.store.account_store import AccountStore, SentRows
from tui_mail.store.index import MailIndex
from tui_mail.sync import imap_sync
from tui_mail.sync.imap_sync import DELIVER_BATCH, RAMP_BATCH, batch_size


def cuts(total: int) -> list[int]:
    done, out = 0, []
    while done < total:
        n = min(batch_size(done, total), total - done)
        out.append(n)
        done += n
    return out


def test_small_first_and_last_batches_full_ones_between() -> None:
    sizes = cuts(3334)
    assert sizes[:4] == [RAMP_BATCH, RAMP_BATCH, 2 * RAMP_BATCH, 4 * RAMP_BATCH]
    assert DELIVER_BATCH in sizes
    assert sizes[-2:] == [RAMP_BATCH, 34]
    assert cuts(40) == [40]


@given(st.integers(min_value=1, max_value=20_000))
def test_every_message_once_no_batch_too_big(total: int) -> None:
    sizes = cuts(total)
    assert sum(sizes) == total
    assert all(0 < n <= DELIVER_BATCH for n in sizes)
    # Ramping costs a few batches more than fixed-size ones, never many.
    assert len(sizes) <= -(-total // DELIVER_BATCH) + 8


@pytest.mark.parametrize("small", [7, 20])
def test_a_smaller_deliver_batch_wins_over_the_ramp(
    monkeypatch: pytest.MonkeyPatch, small: int
) -> None:
    monkeypatch.setattr(imap_sync, "DELIVER_BATCH", small)
    assert set(cuts(200)[:-1]) == {small}


async def test_a_cancelled_download_returns_only_once_its_rows_are_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while waiting for the oldest batch's rows (the bytes bound makes it
    wait for every one): it still waits for them, as for the others, instead of
    returning with rows being written behind it."""
    index = MailIndex(tmp_path / "index.sqlite3")
    store = AccountStore("acct", tmp_path / "mail", index)
    monkeypatch.setattr(imap_sync, "DELIVER_BATCH", 5)
    monkeypatch.setattr(imap_sync, "INDEX_QUEUE_BYTES", 1)
    started, finished = threading.Event(), threading.Event()
    real_rows = store.rows_of

    def slow_rows(sent: SentRows) -> list[MessageRef]:
        started.set()
        time.sleep(0.3)
        refs = real_rows(sent)
        finished.set()
        return refs

    monkeypatch.setattr(store, "rows_of", slow_rows)

    class Server:  # the stream a backend yields; the pipeline is what is tested
        async def fetch_messages(
            self, folder: str, uids: list[int], progress: object
        ) -> AsyncIterator[RemoteMessage]:
            for uid in uids:
                raw = f"Message-ID: <{uid}@x>\r\n\r\n.\r\n".encode()
                yield RemoteMessage(folder, raw, FlagSet.from_maildir("S"), ServerId(uid, 1))
                await asyncio.sleep(0)

    task = asyncio.ensure_future(
        imap_sync._download(Server(), store, "INBOX", list(range(1, 21)), None)  # type: ignore[arg-type]
    )
    while not started.is_set():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()
    index.close()
