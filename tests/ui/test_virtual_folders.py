"""The "Searches" group of the folder pane: unified inbox and saved searches.

The demo account plus a second account on a local Maildir (no network), with
`[searches]` in the config. Expected counts come from the second account's known
mail and from the index's own rows, not from the code under test.
"""

from __future__ import annotations

from pathlib import Path

from msgspec.structs import replace
from pilot_helpers import SIZE, EventLog, screen_text, wait_for

from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig
from tui_mail.core import events as ev
from tui_mail.core.flags import Flag
from tui_mail.store.maildir import MaildirStore
from tui_mail.ui.app import MailApp
from tui_mail.ui.virtual import VirtualSource

WORK = "work"
SEARCHES = {"Flagged": "is:flagged", "Work unread": "account:work is:unread"}


def _mail(n: int, subject: str) -> bytes:
    return (
        f"From: Colleague {n} <c{n}@work.example>\r\nTo: me@work.example\r\n"
        f"Subject: {subject}\r\nDate: Mon, {n} Jan 2035 09:00:00 +0000\r\n"
        f"Message-ID: <work-{n}@work.example>\r\n\r\nbody {n}\r\n"
    ).encode()


def _work_account(tmp_path: Path) -> AccountConfig:
    """Three INBOX messages, two of them unread, and one in Archive."""
    root = tmp_path / "work-maildir"
    store = MaildirStore(root)
    store.add("INBOX", _mail(1, "work unread one"))
    store.add("INBOX", _mail(2, "work unread two"))
    store.add("INBOX", _mail(3, "work already read"), flags="S")
    store.add("Archive", _mail(4, "work archived"), flags="S")
    receive = EndpointConfig(backend="maildir", path=root, key_path=f"accounts.{WORK}.receive")
    send = EndpointConfig(
        backend="local", path=tmp_path / "delivered", key_path=f"accounts.{WORK}.send"
    )
    return AccountConfig(WORK, "me@work.example", receive, send)


def two_accounts(demo: AppConfig, tmp_path: Path, searches: dict[str, str]) -> AppConfig:
    return replace(
        demo, accounts={**demo.accounts, WORK: _work_account(tmp_path)}, searches=searches
    )


async def wait_synced(pilot, log: EventLog, accounts: set[str]) -> None:
    app = pilot.app
    await wait_for(
        pilot,
        lambda: (
            {e.account for e in log.of(ev.SyncFinished)} >= accounts
            and all(app.main.status.account(a).last_sync is not None for a in accounts)
        ),
    )


def virtual_names(app: MailApp) -> list[str]:
    return [r.name for r in app.main.folders.rows if r.kind == "virtual"]


def shown_ids(app: MailApp) -> list[int]:
    source = app.main.messages.source
    assert isinstance(source, VirtualSource)
    return list(source.ids)


def index_rows(app: MailApp, where: str, params: tuple = ()) -> list[tuple[int, str, str]]:
    """(id, account, flags) of the index's rows matching `where`: the oracle."""
    return [
        tuple(r)
        for r in app.main.index.execute_read(
            f"SELECT id, account, flags FROM messages WHERE {where}", params
        )
    ]


def expected_counts(rows: list[tuple[int, str, str]]) -> tuple[int, int]:
    return len(rows), sum(1 for r in rows if "S" not in r[2])


async def open_virtual(pilot, app: MailApp, name: str) -> None:
    assert app.main.folders.select_virtual(name)
    await wait_for(
        pilot,
        lambda: (
            isinstance(app.main.messages.source, VirtualSource)
            and app.main.messages.source.virtual == name
        ),
    )


async def test_group_counts_and_unified_inbox(
    demo_config: AppConfig, event_log: EventLog, tmp_path: Path
) -> None:
    config = two_accounts(demo_config, tmp_path, SEARCHES)
    app = MailApp(config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_synced(pilot, event_log, {"demo", WORK})
        folders = app.main.folders
        assert virtual_names(app) == ["Unified inbox", "Flagged", "Work unread"]
        # The group sits at the top, above the accounts; the first real folder still
        # opens at start, not a virtual one.
        assert [r.kind for r in folders.rows[:4]] == ["group", "virtual", "virtual", "virtual"]
        assert app.main.messages.folder == "INBOX" and app.main.messages.account == "demo"

        inbox = index_rows(app, "folder = 'INBOX'")
        flagged = index_rows(app, "instr(flags, 'F') > 0")
        assert {r[1] for r in inbox} == {"demo", WORK} and flagged  # the demo has flags
        await wait_for(
            pilot,
            lambda: (
                folders.virtual
                == {
                    "Unified inbox": expected_counts(inbox),
                    "Flagged": expected_counts(flagged),
                    "Work unread": (2, 2),
                }
            ),
        )
        demo_inbox = folders.folder("demo", "INBOX")
        assert expected_counts(inbox) == (demo_inbox.total + 3, demo_inbox.unread + 2)
        unread, total = expected_counts(inbox)[1], expected_counts(inbox)[0]
        assert f"{unread}/{total}" in screen_text(app)

        # Selecting the unified inbox shows both accounts' INBOX, newest first.
        await open_virtual(pilot, app, "Unified inbox")
        assert sorted(shown_ids(app)) == sorted(r[0] for r in inbox)
        messages = app.main.messages
        assert messages.count == len(inbox)
        envs = [messages.envelope_at(i) for i in range(messages.count)]
        assert all(e is not None and e.ref.folder == "INBOX" for e in envs)
        dates = [e.date for e in envs]
        assert dates == sorted(dates, reverse=True)
        assert "Unified inbox" in app.main.messages.label  # the status line says where we are

        # A saved search shows exactly its matches.
        await open_virtual(pilot, app, "Work unread")
        subjects = {messages.envelope_at(i).subject for i in range(messages.count)}
        assert subjects == {"work unread one", "work unread two"}

        # Back to a real folder: the list is that folder again.
        assert folders.select_folder(WORK, "Archive")
        await wait_for(pilot, lambda: messages.folder == "Archive" and messages.account == WORK)
        assert app.main.search_text is None


async def test_flag_change_updates_count_and_list_live(
    demo_config: AppConfig, event_log: EventLog, tmp_path: Path
) -> None:
    config = two_accounts(demo_config, tmp_path, SEARCHES)
    app = MailApp(config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_synced(pilot, event_log, {"demo", WORK})
        folders = app.main.folders
        flagged = index_rows(app, "instr(flags, 'F') > 0")
        await wait_for(pilot, lambda: folders.virtual.get("Flagged") == expected_counts(flagged))

        # Flag a work message from the "Work unread" search result: the "Flagged"
        # count follows without any key press on the pane.
        await open_virtual(pilot, app, "Work unread")
        messages = app.main.messages
        messages.focus()
        messages.cursor = 0
        env = messages.current
        assert env is not None and Flag.FLAGGED not in env.flags
        await pilot.press("s")
        total, unread = expected_counts(flagged)
        await wait_for(pilot, lambda: folders.virtual.get("Flagged") == (total + 1, unread + 1))

        # Open the "Flagged" folder and unflag it there: it leaves the list and the count.
        await open_virtual(pilot, app, "Flagged")
        assert env.ref.id in shown_ids(app)
        row = shown_ids(app).index(env.ref.id)
        messages.focus()
        messages.cursor = row
        await pilot.press("s")
        await wait_for(pilot, lambda: folders.virtual.get("Flagged") == (total, unread))
        await wait_for(pilot, lambda: env.ref.id not in shown_ids(app))
        assert messages.count == total


async def test_open_read_and_archive_from_unified_inbox(
    demo_config: AppConfig, event_log: EventLog, tmp_path: Path
) -> None:
    config = two_accounts(demo_config, tmp_path, {})
    app = MailApp(config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_synced(pilot, event_log, {"demo", WORK})
        folders = app.main.folders
        assert virtual_names(app) == ["Unified inbox"]  # two accounts, no saved search
        inbox = index_rows(app, "folder = 'INBOX'")
        await wait_for(
            pilot, lambda: folders.virtual.get("Unified inbox") == expected_counts(inbox)
        )
        total, unread = expected_counts(inbox)

        await open_virtual(pilot, app, "Unified inbox")
        messages = app.main.messages
        messages.focus()
        # Opening an unread work message shows it and marks it read: unread count drops.
        row = next(
            i
            for i in range(messages.count)
            if messages.envelope_at(i).ref.account == WORK
            and Flag.SEEN not in messages.envelope_at(i).flags
        )
        messages.cursor = row
        target = messages.current
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.viewing and app.main.view.parsed is not None)
        assert target.subject in screen_text(app)
        await wait_for(pilot, lambda: folders.virtual.get("Unified inbox") == (total, unread - 1))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.main.viewing)

        # Archiving moves it out of INBOX: out of the unified inbox and its count.
        messages.cursor = shown_ids(app).index(target.ref.id)
        await pilot.press("a")
        await wait_for(
            pilot, lambda: folders.virtual.get("Unified inbox") == (total - 1, unread - 1)
        )
        await wait_for(pilot, lambda: target.ref.id not in shown_ids(app))
        archived = index_rows(app, "account = ? AND folder = 'Archive'", (WORK,))
        assert len(archived) == 2


async def test_one_account_with_no_saved_search_has_no_group(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_synced(pilot, event_log, {"demo"})
        assert virtual_names(app) == []
        assert not any(r.kind == "group" for r in app.main.folders.rows)
        assert "Searches" not in screen_text(app)


async def test_one_account_saved_search_without_unified_inbox(
    demo_config: AppConfig, event_log: EventLog
) -> None:
    config = replace(demo_config, searches={"Unread": "is:unread"})
    app = MailApp(config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_synced(pilot, event_log, {"demo"})
        assert virtual_names(app) == ["Unread"]
        unread_rows = index_rows(app, "instr(flags, 'S') = 0")
        n = len(unread_rows)
        await wait_for(pilot, lambda: app.main.folders.virtual.get("Unread") == (n, n))
        assert "Searches" in screen_text(app)
        await open_virtual(pilot, app, "Unread")
        assert sorted(shown_ids(app)) == sorted(r[0] for r in unread_rows)


async def test_escape_from_a_virtual_folder_returns_to_the_folder_open_before(
    demo_config: AppConfig, event_log: EventLog, tmp_path: Path
) -> None:
    config = two_accounts(demo_config, tmp_path, SEARCHES)
    app = MailApp(config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_synced(pilot, event_log, {"demo", WORK})
        app.main.open_folder(WORK, "Archive", focus_list=True)
        await wait_for(pilot, lambda: app.main.messages.folder == "Archive")
        await open_virtual(pilot, app, "Flagged")
        app.main.messages.focus()
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.main.messages.source, VirtualSource))
        # Not the first account's INBOX: where the user was.
        assert (app.main.messages.account, app.main.messages.folder) == (WORK, "Archive")
        row = app.main.folders.selected
        assert row is not None and (row.account, row.name) == (WORK, "Archive")


async def test_an_account_added_while_running_syncs_without_a_restart(
    demo_config: AppConfig, event_log: EventLog, tmp_path: Path
) -> None:
    """What the setup screen's save leads to (MailApp.add_account_from): the new
    account from the config file gets its worker, folders, counts and the unified
    inbox, with the app running."""
    work = _work_account(tmp_path)
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[accounts.{WORK}]\nemail = "me@work.example"\n'
        f'[accounts.{WORK}.receive]\nbackend = "maildir"\npath = "{work.receive.path}"\n'
        f'[accounts.{WORK}.send]\nbackend = "local"\npath = "{tmp_path / "delivered"}"\n'
    )
    app = MailApp(demo_config)
    async with app.run_test(size=SIZE, message_hook=event_log) as pilot:
        await wait_synced(pilot, event_log, {"demo"})
        assert virtual_names(app) == []  # one account: no unified inbox yet
        app.add_account_from(config_file, WORK)
        await wait_synced(pilot, event_log, {"demo", WORK})
        folders = app.main.folders
        await wait_for(
            pilot,
            lambda: (
                {(r.account, r.name) for r in folders.rows if r.kind == "folder"}
                >= {(WORK, "INBOX"), (WORK, "Archive")}
            ),
        )
        assert virtual_names(app) == ["Unified inbox"]
        app.main.open_folder(WORK, "INBOX", focus_list=True)
        await wait_for(pilot, lambda: app.main.messages.count == 3)
        assert "work unread one" in screen_text(app)
        assert WORK in app.config.accounts and WORK in app.bridge.runtime.workers
        # Added twice (a second save of the same name): said, not crashed.
        app.add_account_from(config_file, WORK)
        await pilot.pause()
        status = app.main.status
        assert status.notice == f"account {WORK} is already running" and status.notice_is_error
        assert list(app.bridge.runtime.workers) == ["demo", WORK]
