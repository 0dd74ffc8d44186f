"""Add an account from inside the TUI: the same flow as `tui-mail setup`.

The protocol work (DNS, probes, logins, writing the config) is all in
`tui_mail.setup`; this screen only collects answers and shows progress.
Discovery and the login test run as workers on Textual's loop, so the
screen stays responsive and Esc cancels them. Dismisses with the new
account's name, or None when the user leaves without saving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, RadioButton, RadioSet, Static

from tui_mail.core.sanitize import inert_line
from tui_mail.setup.discover import Discovery, Report, Step
from tui_mail.setup.probe import Protocol
from tui_mail.setup.wizard import (
    FILE_WARNING,
    IMAP_VS_POP3,
    PASSWORD_NOTE,
    Options,
    Plan,
    Secret,
    SetupError,
    Storage,
    existing_accounts,
    find_servers,
    keyring_available,
    make_plan,
    password_from_command,
    save,
    suggest_account_name,
    verify_logins,
)

FindServers = Callable[[str, Options, Report], Awaitable[Discovery]]
VerifyLogins = Callable[[Plan, str, Report], Awaitable[None]]
_MARKS = {True: "+", False: "-", None: " "}


class SetupScreen(Screen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Leave without saving", show=True),
    ]

    DEFAULT_CSS = """
    SetupScreen { layout: vertical; }
    SetupScreen #setup-body { height: 1fr; padding: 0 1; }
    SetupScreen .title { text-style: bold; color: $accent; }
    SetupScreen .hint { color: $text-muted; }
    SetupScreen Input { width: 60; max-width: 100%; }
    SetupScreen Button { margin: 1 0 0 0; }
    SetupScreen RadioSet { width: auto; }
    SetupScreen #steps { color: $text-muted; }
    SetupScreen #result.error { color: $error; }
    SetupScreen #result.ok { color: $success; }
    SetupScreen #choose { height: auto; }
    SetupScreen .hidden { display: none; }
    """

    def __init__(
        self,
        config_path: Path,
        options: Options | None = None,
        *,
        find: FindServers = find_servers,
        verify: VerifyLogins = verify_logins,
    ) -> None:
        super().__init__()
        self.config_path = config_path
        self.options = options or Options()
        self._find = find
        self._verify = verify
        self.found: Discovery | None = None
        self.steps: list[str] = []
        self.storages: list[Storage] = ["command"]
        if keyring_available():
            self.storages.append("keyring")
        self.storages.append("file")

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="setup-body"):
            yield Static("Add a mail account", classes="title")
            yield Static(
                "Type your address: tui-mail looks up your provider's servers "
                "(DNS SRV records, its autoconfig document, the usual names), "
                "checks them, and tests your login before anything is written.",
                classes="hint",
            )
            yield Label("Email address")
            yield Input(self.options.email, placeholder="you@example.com", id="email")
            yield Label("Your name for the From: line (optional)")
            yield Input(self.options.display_name, placeholder="Your Name", id="name")
            yield Button("Find servers", id="find", variant="primary")
            yield Static("", id="steps", markup=False)
            with Vertical(id="choose", classes="hidden"):
                yield Static(IMAP_VS_POP3, id="protocol-help", markup=False)
                with RadioSet(id="protocol"):
                    yield RadioButton("IMAP (recommended)", value=True, id="proto-imap")
                    yield RadioButton("POP3", id="proto-pop3")
                yield Static("", id="servers", markup=False)
                yield Static(PASSWORD_NOTE, classes="hint", markup=False)
                yield Label("Password")
                yield Input(password=True, id="password")
                yield Label("Keep the password in")
                with RadioSet(id="storage"):
                    labels = {
                        "command": "a password command (safest)",
                        "keyring": "the system keyring",
                        "file": "the config file (plain text, mode 0600)",
                    }
                    for n, kind in enumerate(self.storages):
                        yield RadioButton(labels[kind], value=n == 0, id=f"store-{kind}")
                yield Input(placeholder="pass show mail/you", id="command")
                yield Static(FILE_WARNING, id="file-warning", classes="hint hidden", markup=False)
                yield Label("Account name")
                yield Input(id="account")
                yield Button("Test login and save", id="save", variant="primary")
            yield Static("", id="result", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#email", Input).focus()

    # ------------------------------------------------------------------ helpers

    def _report(self, step: Step) -> None:
        self.steps.append(f"{_MARKS[step.ok]} [{step.stage}] {inert_line(step.text)}")
        self.query_one("#steps", Static).update(Content("\n".join(self.steps)))

    def _show_result(self, text: str, *, error: bool) -> None:
        result = self.query_one("#result", Static)
        result.set_classes("error" if error else "ok")
        result.update(Content(text))
        result.scroll_visible()

    def _show_error(self, exc: SetupError) -> None:
        lines = [inert_line(str(exc))]
        if exc.hint:
            lines.append(f"What to try: {inert_line(exc.hint)}")
        self._show_result("\n".join(lines), error=True)

    def _protocol(self) -> Protocol | None:
        if self.found is None:
            return None
        choices = self.found.receive_protocols()
        if len(choices) > 1:
            return "pop3" if self.query_one("#proto-pop3", RadioButton).value else "imap"
        return choices[0] if choices else None

    def _storage(self) -> Storage:
        pressed = self.query_one("#storage", RadioSet).pressed_index
        return self.storages[max(pressed, 0)]

    def _set_busy(self, busy: bool) -> None:
        for button in self.query(Button):
            button.disabled = busy

    # ------------------------------------------------------------------ find

    @on(Button.Pressed, "#find")
    @on(Input.Submitted, "#email")
    def find(self) -> None:
        self.steps.clear()
        self.query_one("#steps", Static).update("")
        self.query_one("#choose").add_class("hidden")
        self._show_result("", error=False)
        self.options.email = self.query_one("#email", Input).value.strip()
        self.options.display_name = self.query_one("#name", Input).value.strip()
        self._set_busy(True)
        self.run_worker(self._discover(), group="setup", exclusive=True, exit_on_error=False)

    async def _discover(self) -> None:
        try:
            found = await self._find(self.options.email, self.options, self._report)
            make_plan(found, self.options)  # fails the same way the CLI would
        except SetupError as exc:
            self._show_error(exc)
            return
        except Exception as exc:  # a bug or a surprise: one line, never a traceback
            self._show_result(
                f"setup failed: {inert_line(str(exc)) or type(exc).__name__}", error=True
            )
            return
        finally:
            self._set_busy(False)
        self.found = found
        self._offer(found)

    def _offer(self, found: Discovery) -> None:
        both = len(found.receive_protocols()) > 1
        for widget_id in ("#protocol-help", "#protocol"):
            self.query_one(widget_id).set_class(not both, "hidden")
        self._update_servers()
        self._update_storage()
        account = self.query_one("#account", Input)
        if not account.value:
            taken = existing_accounts(self.config_path)
            account.value = self.options.account or suggest_account_name(found.email, taken)
        choose = self.query_one("#choose")
        choose.remove_class("hidden")
        self.query_one("#password", Input).focus(scroll_visible=False)
        # After the layout that shows the section: only then does it have a place.
        self.call_after_refresh(choose.scroll_visible, top=True, animate=False)

    def _update_servers(self) -> None:
        if self.found is None:
            return
        try:
            plan = make_plan(self.found, self.options, self._protocol())
        except SetupError as exc:
            self._show_error(exc)
            return
        self.query_one("#servers", Static).update(
            Content(
                f"Receive: {inert_line(plan.receive.describe())}\n"
                f"Send:    {inert_line(plan.send.describe())}"
            )
        )

    def _update_storage(self) -> None:
        kind = self._storage()
        self.query_one("#command").set_class(kind != "command", "hidden")
        self.query_one("#file-warning").set_class(kind != "file", "hidden")

    @on(RadioSet.Changed, "#protocol")
    def _protocol_changed(self) -> None:
        self._update_servers()

    @on(RadioSet.Changed, "#storage")
    def _storage_changed(self) -> None:
        self._update_storage()

    # ------------------------------------------------------------------ save

    @on(Button.Pressed, "#save")
    @on(Input.Submitted, "#account")
    def save_account(self) -> None:
        if self.found is None:
            return
        self._set_busy(True)
        self.run_worker(self._save(), group="setup", exclusive=True, exit_on_error=False)

    async def _save(self) -> None:
        assert self.found is not None
        password = self.query_one("#password", Input).value
        name = self.query_one("#account", Input).value.strip()
        kind = self._storage()
        command = self.query_one("#command", Input).value.strip() or None
        try:
            if not password:
                raise SetupError("type your password first", "it is used to test the login")
            if kind == "command" and not command:
                raise SetupError(
                    "type the command that prints your password",
                    "for example: pass show mail/you; or keep the password elsewhere",
                )
            plan = make_plan(self.found, self.options, self._protocol())
            self._show_result("Testing the login...", error=False)
            await self._verify(plan, password, self._report)
            if kind == "command" and command:
                await self._check_command(command, password)
            config = save(self.config_path, name, plan, Secret(password, kind, command))
        except SetupError as exc:
            self._show_error(exc)
            return
        except Exception as exc:  # a bug or a surprise: one line, never a traceback
            self._show_result(
                f"setup failed: {inert_line(str(exc)) or type(exc).__name__}", error=True
            )
            return
        finally:
            self._set_busy(False)
        warnings = "".join(f"\nwarning: {inert_line(w)}" for w in config.warnings)
        self._show_result(f"Account {name!r} written to {self.config_path}.{warnings}", error=False)
        self.dismiss(name)

    async def _check_command(self, command: str, password: str) -> None:
        printed = await asyncio.to_thread(password_from_command, command)
        if printed != password:
            raise SetupError(
                "the password command prints a different password than the one typed",
                "fix the command or the password, then try again",
            )

    # ------------------------------------------------------------------ leave

    def action_leave(self) -> None:
        self.workers.cancel_group(self, "setup")
        self.dismiss(None)
