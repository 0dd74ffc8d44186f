"""Sender spoofing: a From that says less than it seems to.

For several authors, a display name that is itself an address, a malformed From, a
Reply-To that differs from From and two From headers, the message view shows where a
reply goes ("Reply goes to: ..."), read the way the reply code reads it, and warns about
two From headers, a name posing as an address and a From with no valid address. The
list's sender column shows the real address when the name poses as another one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual.pilot import Pilot

from hostile.hostile_mail import Sample, hostile_account, screen_lines, spoof_samples
from hostile.maildir_app import ACCOUNT, maildir_config, select, wait_for
from tui_mail.compose.reply import reply
from tui_mail.ui.app import MailApp
from tui_mail.ui.mime import parse_message
from tui_mail.ui.screens.compose import ComposeScreen

WIDE = (200, 50)
SAMPLES = {s.message_id: s for s in spoof_samples()}

# message id -> (the "Reply goes to" line, or None for none; warnings the view shows)
EXPECTED: dict[str, tuple[str | None, list[str]]] = {
    "plain@x": (None, []),
    "several@x": ("Reply goes to: ceo@bank.example, mallory@evil.example", []),
    "name-address@x": (
        "Reply goes to: evil@x.example",
        ["! the name “paypal@paypal.com” looks like an address; the address is evil@x.example"],
    ),
    "encoded-name-address@x": (
        "Reply goes to: evil@x.example",
        ["! the name “service@paypal.com <service@paypal.com>” looks like an address"],
    ),
    "malformed@x": (
        "Reply goes to: (no valid address: type one in the reply)",
        ["! From: 'paypal.com <<evil@x.example' is not a valid address", "! From has no valid"],
    ),
    "no-address@x": (
        "Reply goes to: (no valid address: type one in the reply)",
        ["! From: 'PayPal Service' is not a valid address", "! From has no valid address"],
    ),
    "reply-to@x": ("Reply goes to: collect@evil.example", []),
    "two-from@x": (
        "Reply goes to: help@bank.example, mallory@evil.example",
        ["! 2 From headers: the sender is ambiguous"],
    ),
}


def test_every_sample_has_an_expectation() -> None:
    assert set(EXPECTED) == set(SAMPLES)


@pytest.mark.parametrize("mid", sorted(EXPECTED))
def test_the_target_shown_is_the_one_a_reply_uses(mid: str, tmp_path: Path) -> None:
    """What the view computes equals the To of the reply draft the composer builds."""
    account = maildir_config(tmp_path / "Maildir").accounts[ACCOUNT]
    raw = SAMPLES[mid].raw
    parsed = parse_message(raw)
    draft = reply(raw, account)
    assert parsed.reply_to == [a.addr_spec for a in draft.to]
    line, _ = EXPECTED[mid]
    assert parsed.show_reply_to == (line is not None)


async def test_the_view_shows_where_a_reply_goes_and_warns(tmp_path: Path) -> None:
    samples = list(SAMPLES.values())
    root = tmp_path / "Maildir"
    count = hostile_account(root, samples)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count)
        for sample in samples:
            lines = await _open(pilot, app, sample)
            screen = "\n".join(lines)
            line, warnings = EXPECTED[sample.message_id]
            shown = [x.strip(" ▕") for x in lines if "Reply goes to:" in x]
            if line is None:
                assert not shown, f"{sample.what}: {shown}"
                assert "! " not in screen, screen
            else:
                assert shown == [line], f"{sample.what}:\n{screen}"
            for warning in warnings:
                assert warning in screen, f"{sample.what}: no {warning!r}\n{screen}"
            # The From line shows the header as sent, both of two From headers included.
            assert "From:" in screen
            if sample.message_id == "two-from@x":
                assert "help@bank.example" in screen and "mallory@evil.example" in screen
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.main.view.envelope is None)


async def test_the_list_shows_the_real_address_behind_an_address_like_name(
    tmp_path: Path,
) -> None:
    samples = [SAMPLES["name-address@x"], SAMPLES["encoded-name-address@x"], SAMPLES["plain@x"]]
    root = tmp_path / "Maildir"
    count = hostile_account(root, samples)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count)
        lines = screen_lines(app)
        row = next(x for x in lines if "spoof name-address@x" in x)
        assert "evil@x.example (paypal@" in row, row
        row = next(x for x in lines if "spoof encoded-name-address@x" in x)
        assert "evil@x.example (service" in row, row
        row = next(x for x in lines if "spoof plain@x" in x)
        assert " Bob " in row, row  # an ordinary name stays the name


async def test_r_replies_to_the_address_the_view_showed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", shutil.which("true") or "true")  # leaves the draft as built
    samples = [SAMPLES["reply-to@x"], SAMPLES["name-address@x"], SAMPLES["two-from@x"]]
    root = tmp_path / "Maildir"
    count = hostile_account(root, samples)
    app = MailApp(maildir_config(root))
    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == count)
        for sample in samples:
            lines = await _open(pilot, app, sample)
            shown = next(x for x in lines if "Reply goes to:" in x).split("Reply goes to:")[1]
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen))
            screen = app.screen
            assert isinstance(screen, ComposeScreen)

            def drafted(screen: ComposeScreen = screen) -> bool:
                return screen.session.draft is not None and screen.edits > 0

            await wait_for(pilot, drafted)
            draft = screen.session.draft
            assert draft is not None
            assert [a.addr_spec for a in draft.to] == [a.strip() for a in shown.split(",")]
            await pilot.press("q")  # cancel; "Discard this message?" y
            await pilot.pause()
            await pilot.press("y")
            await wait_for(pilot, lambda: not isinstance(app.screen, ComposeScreen))
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.main.view.envelope is None)


async def _open(pilot: Pilot[int], app: MailApp, sample: Sample) -> list[str]:
    mid = f"<{sample.message_id}>"
    select(app, mid)
    await pilot.press("enter")
    await wait_for(
        pilot,
        lambda: (
            app.main.view.raw is not None
            and app.main.view.envelope is not None
            and app.main.view.envelope.message_id == mid
        ),
    )
    return screen_lines(app)
