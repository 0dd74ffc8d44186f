"""Pilot test of the setup screen at 80x24, with discovery and the login test faked
(the real ones are covered against Dovecot and Postfix in tests/backends)."""

from __future__ import annotations

import stat
from pathlib import Path

from pilot_helpers import SIZE, screen_text, wait_for
from textual.app import App
from textual.widgets import Input, RadioButton, Static

from tui_mail.config.load import load_config
from tui_mail.setup.discover import Discovery, Step
from tui_mail.setup.probe import Candidate, Probe
from tui_mail.setup.wizard import Options, Plan, SetupError
from tui_mail.ui.screens import setup as setup_screen
from tui_mail.ui.screens.setup import SetupScreen

EXISTING = '# keep me\n[accounts.home]\nemail = "h@localhost"\n\n[accounts.home.receive]\nbackend = "maildir"\npath = "~/M"\n'  # noqa: E501


def usable(protocol, host, port, security="tls") -> Probe:
    return Probe(Candidate(protocol, host, port, security, "SRV"), True, security, ("PLAIN",), True)


async def fake_find(email: str, opts: Options, report) -> Discovery:
    report(Step("SRV", "looking up SRV records of example.com (RFC 6186)"))
    probes = [
        usable("imap", "imap.example.com", 993),
        usable("pop3", "pop.example.com", 995),
        usable("smtp", "smtp.example.com", 587, "starttls"),
    ]
    for p in probes:
        report(Step("SRV", p.describe(), True))
    return Discovery(email, "example.com", probes)


class Logins:
    def __init__(self) -> None:
        self.tried: list[tuple[str, str]] = []

    async def __call__(self, plan: Plan, password: str, report) -> None:
        self.tried.append((plan.protocol, password))
        if password != "right":
            raise SetupError("the IMAP server refused the login", "create an app password")
        report(Step("login", "IMAP: ok", True))


class Host(App[None]):
    def __init__(self, screen: SetupScreen) -> None:
        super().__init__()
        self.setup_screen = screen
        self.result: str | None = "not dismissed"

    def on_mount(self) -> None:
        def done(name: str | None) -> None:
            self.result = name

        self.push_screen(self.setup_screen, done)


async def test_setup_screen_finds_tests_and_writes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(setup_screen, "keyring_available", lambda: False)
    config = tmp_path / "config.toml"
    config.write_text(EXISTING)
    logins = Logins()
    screen = SetupScreen(config, find=fake_find, verify=logins)
    app = Host(screen)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "Add a mail account" in screen_text(app)
        await pilot.press(*"jo@example.com")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not screen.query_one("#choose").has_class("hidden"))

        steps = str(screen.query_one("#steps", Static).render())
        assert "[SRV] IMAP imap.example.com:993, TLS" in steps
        # Both protocols found: the difference is explained, IMAP is the default.
        assert screen.query_one("#protocol-help").display
        assert screen.query_one("#proto-imap", RadioButton).value
        assert screen.query_one("#account", Input).value == "example"
        assert screen.focused is screen.query_one("#password", Input)
        await pilot.pause()
        # At 80x24 the choices scroll into view: the explanation, IMAP/POP3, the password.
        shown = screen_text(app)
        assert "IMAP keeps your mail on the server" in shown
        assert "IMAP (recommended)" in shown and "POP3" in shown
        assert "usually the same" in shown and "app password" in shown
        assert "Password" in shown

        # Wrong password: the message and the hint, nothing written.
        await pilot.press(*"wrong")
        screen.query_one("#store-file", RadioButton).value = True
        await pilot.pause()
        assert screen.query_one("#file-warning").display
        assert not screen.query_one("#command").display
        screen.save_account()
        await wait_for(pilot, lambda: "refused" in str(screen.query_one("#result").render()))
        assert "app password" in str(screen.query_one("#result", Static).render())
        assert config.read_text() == EXISTING
        assert app.result == "not dismissed"

        # The right one: tested, written, screen dismissed with the account name.
        screen.query_one("#password", Input).value = "right"
        screen.query_one("#account", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.result != "not dismissed")
    assert app.result == "example"
    assert logins.tried == [("imap", "wrong"), ("imap", "right")]
    cfg = load_config(config)
    assert list(cfg.accounts) == ["home", "example"]
    assert cfg.accounts["example"].receive.password == "right"
    assert cfg.accounts["example"].send.security == "starttls"
    assert config.read_text().startswith(EXISTING)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


async def test_setup_screen_shows_discovery_errors_and_escape_leaves(tmp_path: Path) -> None:
    async def nothing(email: str, opts: Options, report) -> Discovery:
        report(Step("result", "found: nothing usable", False))
        return Discovery(email, "nowhere.example", [])

    config = tmp_path / "config.toml"
    screen = SetupScreen(config, find=nothing, verify=Logins())
    app = Host(screen)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"jo@nowhere.example", "enter")
        await wait_for(
            pilot, lambda: "no mail servers" in str(screen.query_one("#result").render())
        )
        assert "What to try" in screen_text(app)
        assert screen.query_one("#choose").has_class("hidden")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.result is None)
    assert not config.exists()
