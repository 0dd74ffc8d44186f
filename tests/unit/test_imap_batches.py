"""How a download is cut into store batches (imap_sync.batch_size)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
