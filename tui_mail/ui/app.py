"""The Textual application: themes, keys, the main screen, and the Runtime via the bridge."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import BindingType
from textual.worker import Worker, WorkerState

from tui_mail.config.schema import AppConfig
from tui_mail.core.sanitize import inert_line
from tui_mail.crash import crash_message, write_crash_report
from tui_mail.ui import keymap
from tui_mail.ui.bridge import Bridge
from tui_mail.ui.screens.help import HelpScreen
from tui_mail.ui.screens.main import MainScreen
from tui_mail.ui.theme import APP_VARIABLE_DEFAULTS, choose


class MailApp(App[int]):
    TITLE = "tui-mail"
    CSS_PATH = "styles/app.tcss"
    # The palette opens through our own "palette" binding (":" in both presets), so
    # Textual's fixed ctrl+p binding is moved out of the way of the mutt preset.
    ENABLE_COMMAND_PALETTE = True
    COMMAND_PALETTE_BINDING = "ctrl+backslash"
    COMMANDS: ClassVar[set[Any]] = {*App.COMMANDS, lambda: _mail_commands()}
    BINDINGS: ClassVar[list[BindingType]] = [
        keymap.binding("quit", "quit"),
        keymap.binding("help", "help"),
        keymap.binding("sync_now", "sync_now"),
        keymap.binding("outbox", "outbox"),
        keymap.binding("setup", "setup"),
    ]

    def __init__(
        self,
        config: AppConfig,
        *,
        runtime_factory: Any = None,
        start_runtime: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.keys = keymap.resolve(config.ui.keys, config.key_overrides)
        self.theme_choice = choose(config.ui.theme)
        self._start_runtime = start_runtime
        self._runtime_factory = runtime_factory
        self.read_index: Any = None  # the UI's own read connection to the index
        self.main = MainScreen(config, None)
        self.bridge = Bridge(config, self.main, runtime_factory)
        self.main.bridge = self.bridge
        if start_runtime:
            # When the main screen has mounted, before its first frame: that frame
            # then shows the list, not "Loading…" followed by a second layout pass.
            # Opening the index is a few ms; the runtime, which is not, starts after.
            self.main.when_mounted = self._open_index_first
        self.outbox: Any = None  # widgets.outbox.OutboxTracker, once the runtime is up
        for theme in self.theme_choice.themes:
            self.register_theme(theme)
        self.theme = self.theme_choice.name

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(APP_VARIABLE_DEFAULTS)

    def get_default_screen(self) -> MainScreen:
        return self.main

    def on_mount(self) -> None:
        keymap.rebind(self, self.keys.keys)  # not set_keymap: see keymap.py for why
        warnings = [*self.config.warnings, *self.theme_choice.warnings, *self.keys.warnings]
        if warnings:
            self.main.show_notice("; ".join(warnings))
            for warning in warnings:  # the status line cuts long text: show it in full once
                self.notify(inert_line(warning), severity="warning", timeout=8, markup=False)

    def _open_index_first(self) -> None:
        """Paint the list from the index before the (slower) runtime import and start.

        The UI reads through its own connection: SQLite's WAL lets it read while
        a worker writes, so scrolling never waits for a sync's transaction.
        """
        if self._runtime_factory is None:
            try:
                from tui_mail import paths
                from tui_mail.store.index import MailIndex

                self.read_index = MailIndex.open(paths.index_path())
            except Exception as exc:  # the runtime will open it (and say what is wrong)
                self.main.show_notice(f"index: {exc}", error=True)
            else:
                self.main.attach(self.read_index, {})
        self.call_after_refresh(self._start_runtime_worker)

    def _start_runtime_worker(self) -> None:
        self.run_worker(self._run_runtime(), name="runtime", group="runtime", exit_on_error=False)

    async def _run_runtime(self) -> None:
        await self.bridge.preload()
        self.bridge.create()
        self.main.attach(self.read_index or self.bridge.index, self.bridge.stores)
        # Imported here, like the runtime: it pulls in the outbox's storage code.
        from tui_mail.ui.widgets.outbox import OutboxTracker

        self.outbox = OutboxTracker(self)
        self.outbox.start()  # before the workers, so no OutboxChanged is missed
        await self.bridge.start()
        self.outbox.flush_leftovers()
        # The message parser stayed out of the start; load it now, off the loop, so
        # the first Enter does not pay for importing email and compose.
        import asyncio
        import importlib

        await asyncio.to_thread(importlib.import_module, "tui_mail.ui.mime")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.main.show_notice(f"{event.worker.name}: {error or 'failed'}", error=True)

    # --- actions ------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.keys.keys, self.keys.preset))

    def action_outbox(self) -> None:
        from tui_mail.ui.widgets.outbox import open_outbox

        open_outbox(self)

    def action_setup(self) -> None:
        """The setup wizard as a screen; it adds the account to the config file."""
        from tui_mail import paths
        from tui_mail.ui.screens.setup import SetupScreen

        if isinstance(self.screen, SetupScreen):
            return
        target = self.config.path or paths.config_path(None)

        def added(name: str | None) -> None:
            if name:
                self.add_account_from(target, name)

        self.push_screen(SetupScreen(target), added)

    def add_account_from(self, config_path: Path, name: str) -> None:
        """Read account `name` from the config file (the setup screen just wrote it)
        and run it beside the others: its folders appear and it syncs, no restart."""
        from msgspec.structs import replace

        from tui_mail.config.load import load_config

        if name in self.config.accounts:
            self.main.show_notice(f"account {name} is already running", error=True)
            return
        try:
            account = load_config(config_path).accounts[name]
        except Exception as exc:  # a file we cannot read back: say so, keep running
            self.main.show_notice(
                f"account {name} added to {config_path}, but reading it back failed"
                f" ({exc}): restart to use it",
                error=True,
            )
            return
        problem = self.bridge.add_account(account)
        if problem is not None:
            self.main.show_notice(f"account {name}: {problem}: restart to use it", error=True)
            return
        self.config = replace(self.config, accounts={**self.config.accounts, name: account})
        self.bridge.config = self.config
        self.main.add_account(self.config, name, self.bridge.stores)
        self.main.show_notice(f"account {name} added to {config_path}")

    def action_sync_now(self) -> None:
        self.main.sync_now()

    async def action_quit(self) -> None:
        await self.bridge.stop()
        self.exit(0)

    def _fatal_error(self) -> None:
        """A bug in a handler: the traceback goes to a file, the user gets one line.

        Textual's default prints a traceback with local variables on exit,
        which could also echo message content to the terminal.
        """
        from rich.segment import Segments
        from rich.text import Text

        where = write_crash_report()
        if not self._exit_renderables:  # later errors are usually fallout of the first
            self.bell()
            self._exit_renderables.append(
                Segments(self.console.render(Text(crash_message(where)), self.console.options))
            )
        self._close_messages_no_wait()

    async def on_unmount(self) -> None:
        self.main.cleanup()
        await self.bridge.stop()
        if self.read_index is not None:
            self.read_index.close()


def _mail_commands() -> type:
    # Imported when the palette opens: textual.command is not needed for the first paint.
    from tui_mail.ui.palette import MailCommands

    return MailCommands


def run_app(config: AppConfig) -> int:
    """Run the TUI until the user quits; the exit code for the CLI."""
    app = MailApp(config)
    try:
        result = app.run()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # last resort: one line, never a traceback
        import sys

        print(f"tui-mail: {inert_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return 1
    if app.return_code not in (None, 0):
        return int(app.return_code)
    return int(result or 0)
