"""Every mail action, driven by its key at 80x24, through the real account worker.

Each test presses the key on the demo account and then looks at the Maildir
on disk (the truth), not only at the screen: a flag toggle must reach the
file name, a move must move the file, an undo must put it back.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from msgspec.structs import replace
from pilot_helpers import SIZE, EventLog, screen_text, wait_for, wait_ready
from textual.command import CommandPalette

from tui_mail import paths
from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig, UiConfig
from tui_mail.core import events as ev
from tui_mail.core.models import Envelope
from tui_mail.demo.generate import HOSTILE_ATTACHMENT_MESSAGE_ID
from tui_mail.store.index import MailIndex
from tui_mail.store.maildir import encode_folder
from tui_mail.ui.app import MailApp
from tui_mail.ui.dialogs.attachments import AttachmentScreen
from tui_mail.ui.dialogs.picker import PickerScreen
from tui_mail.ui.dialogs.prompt import ConfirmScreen, PromptScreen
from tui_mail.ui.widgets.message_list import IdSource


def maildir_file(folder: str, key: str) -> Path | None:
    """The file of message `key` in `folder` of the demo Maildir, wherever it is now."""
    base = paths.demo_root() / encode_folder(folder)
    for sub in ("cur", "new"):
        d = base / sub
        if d.is_dir():
            for p in d.iterdir():
                if p.name.split(":", 1)[0] == key:
                    return p
    return None


def disk_flags(folder: str, key: str) -> str | None:
    found = maildir_file(folder, key)
    if found is None:
        return None
    return found.name.split(":2,", 1)[1] if ":2," in found.name else ""


def by_message_id(message_id: str) -> list:
    index = MailIndex.open(paths.index_path())
    try:
        return index.find_by_message_id("demo", message_id)
    finally:
        index.close()


async def start(pilot, log: EventLog) -> MailApp:
    await wait_ready(pilot, log)
    return pilot.app


def current(app: MailApp) -> Envelope:
    env = app.main.messages.current
    assert env is not None
    return env


async def test_toggle_flagged_reaches_the_file_and_undo(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        env = current(app)
        was = "F" in (disk_flags("INBOX", env.ref.key) or "")
        await pilot.press("s")
        await wait_for(pilot, lambda: ("F" in (disk_flags("INBOX", env.ref.key) or "")) != was)
        # The row shows it once the worker's MessagesChanged came back.
        await wait_for(pilot, lambda: (app.main.messages.render_line(0).text[3] == "F") != was)
        await pilot.press("u")
        await wait_for(pilot, lambda: ("F" in (disk_flags("INBOX", env.ref.key) or "")) == was)
        assert "undone" in app.main.status.notice


async def test_toggle_read_twice(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        env = current(app)
        seen = "S" in (disk_flags("INBOX", env.ref.key) or "")
        await pilot.press("N")
        await wait_for(pilot, lambda: ("S" in (disk_flags("INBOX", env.ref.key) or "")) != seen)
        await pilot.press("N")
        await wait_for(pilot, lambda: ("S" in (disk_flags("INBOX", env.ref.key) or "")) == seen)
        assert not event_log.of(ev.Failed)


async def test_move_with_fuzzy_picker_and_undo(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        env = current(app)
        count = app.main.messages.count
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, PickerScreen))
        await pilot.press(*"txtu")  # fuzzy: Lists/textual-users
        picker = app.screen
        assert isinstance(picker, PickerScreen)
        assert picker.shown[0] == "Lists/textual-users"
        await pilot.press("enter")
        await wait_for(pilot, lambda: maildir_file("Lists/textual-users", env.ref.key) is not None)
        assert maildir_file("INBOX", env.ref.key) is None
        await wait_for(pilot, lambda: app.main.messages.count == count - 1)
        await pilot.press("u")
        await wait_for(pilot, lambda: maildir_file("INBOX", env.ref.key) is not None)
        assert maildir_file("Lists/textual-users", env.ref.key) is None
        await wait_for(pilot, lambda: app.main.messages.count == count)


async def test_picker_escape_cancels(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        env = current(app)
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, PickerScreen))
        await pilot.press("escape")
        await pilot.pause()
        assert maildir_file("INBOX", env.ref.key) is not None


async def test_copy_keeps_the_original(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        env = current(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, PickerScreen))
        await pilot.press(*"Sent", "enter")
        await wait_for(pilot, lambda: len(by_message_id(env.message_id)) == 2)
        folders = sorted(r.folder for r in by_message_id(env.message_id))
        assert folders == ["INBOX", "Sent"]


async def test_archive_and_undo(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        env = current(app)
        await pilot.press("a")
        await wait_for(pilot, lambda: maildir_file("Archive", env.ref.key) is not None)
        assert maildir_file("INBOX", env.ref.key) is None
        await pilot.press("u")
        await wait_for(pilot, lambda: maildir_file("INBOX", env.ref.key) is not None)


async def test_delete_moves_to_trash_then_for_good_after_asking(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        env = current(app)
        await pilot.press("d")
        await wait_for(pilot, lambda: maildir_file("Trash", env.ref.key) is not None)
        await wait_for(pilot, lambda: app.main.folders.select_folder("demo", "Trash"))
        app.main.open_folder("demo", "Trash", focus_list=True)
        await wait_for(pilot, lambda: app.main.messages.count == 1)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # the default answer keeps it
        await pilot.pause()
        assert maildir_file("Trash", env.ref.key) is not None
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: maildir_file("Trash", env.ref.key) is None)
        assert not by_message_id(env.message_id) or all(
            r.folder != "Trash" for r in by_message_id(env.message_id)
        )


async def test_select_several_then_act_on_all(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        messages = app.main.messages
        first, second = messages.envelope_at(0), messages.envelope_at(1)
        assert first is not None and second is not None
        await pilot.press("space", "space")
        assert messages.selected_ids == {first.ref.id, second.ref.id}
        assert messages.render_line(0).text.startswith("*")
        assert messages.cursor == 2
        await pilot.press("a")  # archives both, not the cursor's row
        await wait_for(
            pilot,
            lambda: all(maildir_file("Archive", e.ref.key) for e in (first, second)),
        )
        assert not messages.selected_ids
        third = messages.current
        assert third is not None and maildir_file("INBOX", third.ref.key) is not None
        await pilot.press("u")  # one undo brings both back
        await wait_for(
            pilot, lambda: all(maildir_file("INBOX", e.ref.key) for e in (first, second))
        )


async def test_mutt_tag_key_and_clear(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(replace(demo_config, ui=UiConfig(keys="mutt")))
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        await pilot.press("t", "t", "t")
        assert len(app.main.messages.selected_ids) == 3
        await pilot.press("ctrl+t")
        assert not app.main.messages.selected_ids


async def test_mark_thread_read(demo_config: AppConfig, event_log: EventLog) -> None:
    index = MailIndex.open(paths.index_path())
    try:
        rows = index.execute_read(
            "SELECT thread_id FROM messages WHERE account = 'demo' AND folder = 'INBOX'"
            " AND thread_id IS NOT NULL GROUP BY thread_id"
            " HAVING count(*) > 1 AND sum(instr(flags, 'S') = 0) > 0 LIMIT 1"
        )
        assert rows, "the demo has an unread thread"
        members = index.envelopes(index.thread(rows[0][0]))
        row = next(
            n
            for n, e in enumerate(index.page("demo", "INBOX", 0, 10_000))
            if e.thread_id == rows[0][0]
        )
    finally:
        index.close()
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        app.main.messages.cursor = row
        await pilot.press("A")
        await wait_for(
            pilot,
            lambda: all("S" in (disk_flags(e.ref.folder, e.ref.key) or "") for e in members),
        )


async def test_sort_cycle_and_reverse(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        messages = app.main.messages
        index = app.main.index
        await pilot.press("o")
        assert messages.sort == "from"
        assert "sender" in app.main.status.location
        want = index.page("demo", "INBOX", 0, 1, sort="from", descending=False)[0]
        assert messages.envelope_at(0).ref == want.ref
        await pilot.press("O")
        want = index.page("demo", "INBOX", 0, 1, sort="from", descending=True)[0]
        assert messages.envelope_at(0).ref == want.ref
        for expected in ("subject", "size", "date"):
            await pilot.press("o")
            assert messages.sort == expected


async def test_threaded_view_indents_replies(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        messages = app.main.messages
        count = messages.count
        await pilot.press("T")
        await wait_for(pilot, lambda: isinstance(messages.source, IdSource))
        assert messages.count == count
        depths = [messages.envelope_at(r).thread_depth for r in range(count)]
        assert max(depths) >= 1
        reply = depths.index(1)
        messages.cursor = reply
        await pilot.pause()
        assert "└" in messages.render_line(reply - round(messages.scroll_y)).text
        assert "threads" in app.main.status.location
        await pilot.press("T")
        assert not messages.threaded and not isinstance(messages.source, IdSource)


async def test_search_shows_a_virtual_folder(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        await pilot.press("slash")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press(*"parcel", "enter")
        messages = app.main.messages
        await wait_for(pilot, lambda: app.main.search_text == "parcel")
        assert messages.count > 0
        assert all(
            "parcel" in (messages.envelope_at(r).subject.lower() + "parcel")
            for r in range(messages.count)
        )
        assert "search: parcel" in screen_text(app)
        await pilot.press("escape")  # back to the folder
        await wait_for(pilot, lambda: app.main.search_text is None)
        assert app.main.shown == ("demo", "INBOX")


async def test_compose_keys_call_the_compose_entry_point(
    demo_config: AppConfig, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tui_mail.ui.screens.compose as compose

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(compose, "start_compose", lambda app, mode, ref: calls.append((mode, ref)))
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        env = current(app)
        await pilot.press("c", "r", "R", "f", "F", "e")
        assert [mode for mode, _ in calls] == [
            "new",
            "reply",
            "reply_all",
            "forward",
            "forward_attached",
            "resume",
        ]
        assert calls[0][1] is None and all(ref == env.ref for _, ref in calls[1:])


async def test_outbox_and_setup_have_keys(
    demo_config: AppConfig, event_log: EventLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui_mail.ui.screens.setup import SetupScreen
    from tui_mail.ui.widgets.outbox import OutboxScreen

    monkeypatch.setenv("TUI_MAIL_CONFIG", str(tmp_path / "new.toml"))
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        await wait_for(pilot, lambda: getattr(app, "outbox", None) is not None)
        await pilot.press("W")
        await wait_for(pilot, lambda: isinstance(app.screen, OutboxScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, OutboxScreen))
        await pilot.press("plus")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert app.screen.config_path == tmp_path / "new.toml"  # the demo has no file
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SetupScreen))
        assert not (tmp_path / "new.toml").exists()  # left without saving: nothing written


async def test_missing_compose_module_is_a_status_message(
    demo_config: AppConfig, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tui_mail.ui.screens.main as main

    monkeypatch.setattr(main, "_module_exists", lambda name: False)
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        await pilot.press("r")
        assert "not available" in app.main.status.notice
        assert app.is_running


async def test_switch_account_and_archive_error(
    demo_config: AppConfig, event_log: EventLog, tmp_path: Path
) -> None:
    other = tmp_path / "other-maildir"
    for sub in ("cur", "new", "tmp"):
        (other / sub).mkdir(parents=True)
    (other / "new" / "1.1.host").write_bytes(
        b"From: a@example.org\r\nSubject: second account\r\n"
        b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nhello\r\n"
    )
    account = AccountConfig(
        name="other",
        email="o@example.org",
        receive=EndpointConfig(backend="maildir", path=other),
        send=EndpointConfig(backend="local"),
    )
    config = replace(demo_config, accounts={**demo_config.accounts, "other": account})
    app = MailApp(config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.main.shown == ("other", "INBOX"))
        await wait_for(pilot, lambda: app.main.messages.count == 1)
        assert "second account" in screen_text(app)
        await pilot.press("a")  # no Archive folder there: said in the status line
        assert "no Archive folder" in app.main.status.notice
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.main.shown == ("demo", "INBOX"))


async def test_palette_lists_folders_and_actions(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"folder demo/Sent")
        await wait_for(pilot, lambda: "Go to folder demo/Sent" in screen_text(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.shown == ("demo", "Sent"))
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"Threaded view")
        await wait_for(pilot, lambda: "Threaded view on/off" in screen_text(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.messages.threaded)


def _open_row(app: MailApp, message_id: str) -> None:
    messages = app.main.messages
    for row in range(messages.count):
        env = messages.envelope_at(row)
        if env is not None and env.message_id == message_id:
            messages.cursor = row
            return
    raise AssertionError(message_id)


async def test_save_attachment_asks_before_overwriting(
    demo_config: AppConfig, event_log: EventLog, tmp_path: Path
) -> None:
    target_dir = tmp_path / "saved"
    target_dir.mkdir()
    config = replace(demo_config, ui=UiConfig(save_dir=str(target_dir)))
    app = MailApp(config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        _open_row(app, HOSTILE_ATTACHMENT_MESSAGE_ID)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.view.raw is not None)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, AttachmentScreen))
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("enter")  # the configured folder is offered
        saved = target_dir / "passwd"  # "../../etc/passwd" made safe
        await wait_for(pilot, lambda: saved.exists())
        data = saved.read_bytes()
        assert data and list(target_dir.iterdir()) == [saved]
        saved.write_bytes(b"mine")
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, AttachmentScreen))
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause()
        assert saved.read_bytes() == b"mine"


async def test_open_attachment_runs_the_argument_list(
    demo_config: AppConfig, event_log: EventLog, tmp_path: Path
) -> None:
    out = tmp_path / "opened"
    script = f"import shutil, sys; shutil.copy(sys.argv[1], {str(out)!r})"
    config = replace(demo_config, ui=UiConfig(open_command=(sys.executable, "-c", script, "{}")))
    app = MailApp(config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        _open_row(app, HOSTILE_ATTACHMENT_MESSAGE_ID)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.view.raw is not None)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, AttachmentScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: out.exists())
        temp = app.main._temp_files.dirs[0]
        assert oct(temp.stat().st_mode & 0o777) == "0o700"
        assert (temp / "passwd").read_bytes() == out.read_bytes()
    assert not temp.exists()  # removed at quit


async def test_raw_source_and_layout_toggle(demo_config: AppConfig, event_log: EventLog) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.view.raw is not None)
        assert "Message-ID:" not in screen_text(app)
        await pilot.press("E")
        text = screen_text(app)
        assert "Raw source" in text and "Message-ID:" in text
        await pilot.press("E")
        assert "Raw source" not in screen_text(app)
        await pilot.press("V")
        assert app.main.mail_box.has_class("-beside")
        assert app.main.messages.display and app.main.view.display  # both visible
        await pilot.press("V")
        assert app.main.mail_box.has_class("-below")
        await pilot.press("V")
        assert app.main.mail_box.has_class("-replace")  # auto at 24 rows


async def test_view_keys_do_nothing_without_a_message(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        await pilot.press("v", "E", "h")
        assert app.is_running and not app.main.viewing


async def test_search_on_the_servers_too(demo_config: AppConfig, event_log: EventLog) -> None:
    # The demo accounts are local (Maildir): the servers part has nobody to ask, so
    # the local results stand, relabelled, and no account shows an error.
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await start(pilot, event_log)
        await pilot.press("S")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press(*"parcel", "enter")
        await wait_for(pilot, lambda: "with the servers" in app.main.status.location)
        assert app.main.search_text == "parcel" and app.main.messages.count > 0
        assert not app.main._server_pending
        assert "cannot search" not in screen_text(app)
