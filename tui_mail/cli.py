"""The `tui-mail` command: the TUI by default, headless subcommands beside it.

Textual is imported only on the TUI path, so `sync` and `config check` start
fast enough for cron and tmux status lines.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from tui_mail import __version__, paths
from tui_mail.core.errors import ConfigError, MailError

if TYPE_CHECKING:
    import logging

    from tui_mail.config.schema import AppConfig

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70

NO_CONFIG_HELP = """\
tui-mail: no config file at {path}

To look around first, start the built-in demo account (no server needed):
    tui-mail demo
To add your account: give your address, and setup finds the servers,
tests the login and writes the config:
    tui-mail setup
Or write a commented template and edit it yourself:
    tui-mail config init
    $EDITOR {path}
    tui-mail config check
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tui-mail", description="A keyboard-driven terminal mail client."
    )
    parser.add_argument("--version", action="version", version=f"tui-mail {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"config file (default: ${paths.CONFIG_ENV} or {paths.default_config_path()})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("demo", help="open the TUI on the built-in demo account (no network)")

    setup = sub.add_parser(
        "setup",
        help="find the servers for your address, test the login, add the account",
        description="Looks up SRV records, the provider's autoconfig document, then the usual "
        "host names; tests the login; adds the account to the config. Exit status: 0 written, "
        "1 failed (nothing written), 2 bad arguments.",
    )
    setup.add_argument("--email", metavar="ADDRESS", help="your email address")
    setup.add_argument("--non-interactive", action="store_true", help="ask nothing (scripts)")
    setup.add_argument("--name", help="your name for the From: line")
    setup.add_argument("--account", metavar="NAME", help="account name (default: from domain)")
    setup.add_argument("--protocol", choices=("imap", "pop3"), help="default: IMAP if offered")
    setup.add_argument("--user", help="login name, if it is not the email address")
    setup.add_argument(
        "--password-command", metavar="CMD", help="a command that prints the password"
    )
    setup.add_argument("--ca-file", metavar="PATH", help="trust this CA (PEM) as well")
    setup.add_argument("--resolver", metavar="IP:PORT", help="ask this DNS server instead")
    setup.add_argument("--autoconfig-url", metavar="URL", help="fetch autoconfig from here")
    setup.add_argument(
        "--probe-port",
        action="append",
        metavar="STD=PORT",
        help="probe PORT instead of standard port STD (testing)",
    )
    setup.add_argument("--timeout", type=float, default=10.0, help="seconds per server check")

    config = sub.add_parser("config", help="check or create the config file")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_sub.add_parser("check", help="validate the config and list its accounts")
    config_sub.add_parser("init", help="write a commented config template")
    config_sub.add_parser("path", help="print where the config file is looked for")

    index = sub.add_parser("index", help="maintain the local index")
    index_sub = index.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    rebuild = index_sub.add_parser("rebuild", help="recreate the index from the Maildir alone")
    rebuild.add_argument("--account", help="only this account")

    fsck = sub.add_parser(
        "fsck",
        help="check the Maildir against the index (and the server); --repair fixes the index",
        description="Never deletes a mail file or server mail. Exit status: 0 no problem "
        "left, 1 problems left (the report says which).",
    )
    fsck.add_argument("--account", help="only this account")
    fsck.add_argument("--repair", action="store_true", help="fix the index")
    fsck.add_argument("--server", action="store_true", help="compare UIDs with the server too")

    sync = sub.add_parser("sync", help="synchronise accounts without the TUI")
    sync.add_argument("--account", help="only this account")
    sync.add_argument("--folder", help="only this folder")
    sync.add_argument("--dry-run", action="store_true", help="show what would change")
    sync.add_argument(
        "--watch",
        action="store_true",
        help="stay connected and follow changes (IDLE) until interrupted",
    )
    sync.add_argument(
        "--interval",
        type=float,
        default=60.0,
        help="with --watch: seconds between checks of the folders IDLE does not watch",
    )
    sync.add_argument("-q", "--quiet", action="store_true", help="print errors only")

    send = sub.add_parser(
        "send",
        help="send a complete message from FILE or stdin through the outbox (like sendmail -t)",
        description="Recipients come from To, Cc and Bcc; Bcc is removed before sending. "
        "Exit status: 0 sent, 75 queued for a retry, 1 not sent.",
    )
    send.add_argument("file", nargs="?", metavar="FILE", help="the message (default: stdin)")
    send.add_argument("--account", help="send through this account (default: by From)")
    action = send.add_mutually_exclusive_group()
    action.add_argument(
        "--flush", action="store_true", help="only deliver what the outbox holds, now"
    )
    action.add_argument("--list", action="store_true", help="show the outbox")
    action.add_argument("--retry", type=int, metavar="ID", help="send a failed message again")
    action.add_argument("--cancel", type=int, metavar="ID", help="drop a queued message")

    # issue 7: search and status (implementations in tui_mail/search/, tui_mail/status.py)
    search = sub.add_parser(
        "search",
        help="search the local index and print the matching messages",
        description='Query language: words, "phrases", from: to: cc: subject: body: '
        "folder: account: has:attachment is:unread/read/flagged/answered/draft "
        "before:/after: (2024-01-31, 7d, 2w, 3m, 1y, today), -negation, NOT, OR, ( ). "
        "Put -- before a query that starts with '-'. "
        "Exit status: 0 found, 1 nothing found, 2 bad query, 3 a server search failed "
        "(with --server; what was found is still printed).",
    )
    search.add_argument("query", nargs="+", metavar="QUERY", help="the words of the query")
    search.add_argument("--account", action="append", help="only this account (repeat for several)")
    search.add_argument("--limit", type=int, metavar="N", help="print at most N messages")
    search.add_argument("--format", default="table", help="table, json or a {field} template")
    search.add_argument(
        "--server",
        action="store_true",
        help="also ask the IMAP servers (UID SEARCH) and download matches not yet local",
    )
    status = sub.add_parser(
        "status",
        help="one line for tmux status-right: unread, pending sends, offline accounts",
        description="Reads only the local index: no network. Fields: {summary} {unread} "
        "(INBOX unread) {unread_all} {accounts} {by[ACCOUNT]} {pending} {failed} {offline}.",
    )
    status.add_argument("--format", help="a template of {fields} (default: '{summary}')")
    return parser


def run() -> NoReturn:
    """The `tui-mail` command: `main()`, then exit without the interpreter's teardown.

    Freeing every module and object of a finished command cost ~20 ms, a tenth
    of a no-change sync. What must outlive the process is durable before
    main() returns: message files are fsynced before their rows are committed,
    and SQLite's WAL keeps every commit (a connection left open only skips its
    checkpoint, which the next open runs). So only what is buffered is flushed
    here. While another thread is still running, or a flush fails, the normal
    exit runs instead; atexit handlers are skipped (the code registers none).
    """
    import os
    import threading

    code = main()
    if threading.active_count() > 1:
        raise SystemExit(code)
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: started with that descriptor closed
                stream.flush()
    except (OSError, ValueError):  # a closed pipe: let the normal exit report it
        raise SystemExit(code) from None
    if "logging" in sys.modules:
        import logging

        logging.shutdown()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "status":
        # tmux runs this every few seconds: no logging setup, nothing heavy imported.
        from tui_mail.status import run_status

        return run_status(args.format, args.config)
    import logging  # not at the top: ~12 ms that `status` does without

    logging.basicConfig(level=logging.WARNING, handlers=[_log_handler()])
    _debug_loggers()
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"tui-mail: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MailError as exc:
        print(f"tui-mail: error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130
    except Exception:
        # Imported here: traceback and datetime cost `tui-mail status` ~8 ms otherwise.
        from tui_mail.crash import crash_message, write_crash_report

        print(crash_message(write_crash_report()), file=sys.stderr)
        return EXIT_INTERNAL


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return _run_demo()
    if args.command == "config":
        return _run_config(args)
    if args.command == "index":
        return _run_index_rebuild(args)
    if args.command == "sync":
        return _run_sync(args)
    if args.command == "fsck":
        from tui_mail.headless import run_fsck

        config = _load(args)
        names = _account_names(config, args.account)
        ok = run_fsck(config, names, repair=args.repair, server=args.server)
        return EXIT_OK if ok else EXIT_FAIL
    if args.command == "send":
        return _run_send(args)
    if args.command == "search":
        from tui_mail.search.command import run_search

        server = None
        if args.server:
            server = _load(args)
            for name in args.account or ():
                _account_names(server, name)  # an unknown name is a config error

        def config() -> AppConfig | None:
            # Only to index bodies a sync left for later: the index alone answers.
            with contextlib.suppress(ConfigError):
                return _load(args, warn=False)
            return None

        return run_search(
            " ".join(args.query), args.account, args.limit, args.format,
            server=server, config=config,
        )  # fmt: skip
    if args.command == "setup":
        from tui_mail.setup.wizard import main as setup_main

        return setup_main(paths.config_path(args.config), args)
    return _run_tui(args)


def _load(args: argparse.Namespace, *, warn: bool = True) -> AppConfig:
    from tui_mail.config.load import load_config

    path = paths.config_path(args.config)
    if not path.exists():
        raise ConfigError("no such file; run `tui-mail config init` to write one", file=str(path))
    config = load_config(path)
    for warning in config.warnings if warn else ():
        print(f"tui-mail: warning: {warning}", file=sys.stderr)
    return config


def _run_tui(args: argparse.Namespace) -> int:
    path = paths.config_path(args.config)
    if not path.exists() and not args.config:
        print(NO_CONFIG_HELP.format(path=path), file=sys.stderr, end="")
        return EXIT_FAIL
    config = _load(args)
    from tui_mail.ui.app import run_app

    return run_app(config)


def _run_demo() -> int:
    from tui_mail.demo.setup import ensure_demo

    config = ensure_demo()
    from tui_mail.ui.app import run_app

    return run_app(config)


def _run_config(args: argparse.Namespace) -> int:
    path = paths.config_path(args.config)
    if args.config_command == "path":
        print(path)
        return EXIT_OK
    if args.config_command == "init":
        from tui_mail.config.template import write_template

        write_template(path)
        print(f"wrote a commented template to {path}; edit it, then run `tui-mail config check`")
        return EXIT_OK
    from tui_mail.config.load import summarize

    config = _load(args, warn=False)  # summarize() lists the warnings itself
    print(f"{path}: OK")
    print(summarize(config))
    return EXIT_OK


def _run_index_rebuild(args: argparse.Namespace) -> int:
    from tui_mail.sync.runtime import Runtime

    config = _load(args)
    names = _account_names(config, args.account)
    runtime = Runtime(config)
    try:
        for name in names:
            result = runtime.stores[name].rebuild()
            print(f"{name}: indexed {result.added} messages")
    finally:
        runtime.index.close()
    return EXIT_OK


def _run_sync(args: argparse.Namespace) -> int:
    from tui_mail.store import bulk

    bulk.collect_less()
    # No index yet: this is a first sync, which will index in a helper process. Start
    # it before our own imports, so both start up at once (store/bulk.py).
    if not args.dry_run and not paths.index_path().exists():
        bulk.prestart(paths.index_path())
    try:
        return _sync_command(args)
    finally:
        bulk.discard_prestarted()


def _sync_command(args: argparse.Namespace) -> int:
    import asyncio  # here, not at the top: `tui-mail status` must start fast

    from tui_mail.core.commands import Command, FlushOutbox, SyncNow
    from tui_mail.headless import run_commands, text_reporter
    from tui_mail.sync.outbox import accounts_with_due_mail

    config = _load(args)
    names = _account_names(config, args.account)
    if args.watch and args.dry_run:
        raise ConfigError("--dry-run and --watch cannot be combined")
    if args.interval <= 0:
        raise ConfigError("--interval must be a positive number of seconds")
    report = text_reporter(quiet=args.quiet, watch=args.watch)

    async def once() -> bool:
        plan: dict[str, list[Command]] = {
            n: [SyncNow(folder=args.folder, dry_run=args.dry_run)] for n in names
        }
        if not args.dry_run:
            for name in accounts_with_due_mail(names):
                plan[name].insert(0, FlushOutbox())
        return await run_commands(config, plan, report)

    if args.watch:
        from tui_mail.headless import watch

        ok = asyncio.run(watch(config, names, report, interval=args.interval, folder=args.folder))
    else:
        ok = asyncio.run(once())
    return EXIT_OK if ok else EXIT_FAIL


def _run_send(args: argparse.Namespace) -> int:
    import asyncio

    from tui_mail.core.sanitize import inert_line
    from tui_mail.sync import outbox

    config = _load(args)
    if args.list:
        for line in outbox.outbox_listing(config, args.account).splitlines():
            print(inert_line(line))
        return EXIT_OK
    if args.retry is not None or args.cancel is not None:
        action = "retry" if args.retry is not None else "cancel"
        message_id = args.retry if args.retry is not None else args.cancel
        print(outbox.outbox_action(config, action, message_id))
        if action == "cancel":
            return EXIT_OK
        args.flush = True  # retrying means: try it now
    raw = None
    if not args.flush:
        try:
            if args.file:
                with open(args.file, "rb") as message:
                    raw = message.read()
            else:
                raw = sys.stdin.buffer.read()
        except OSError as exc:
            print(f"tui-mail: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAIL
    result = asyncio.run(
        outbox.headless_send(config, account=args.account, raw=raw, flush_only=args.flush)
    )
    for line in result.lines:
        print(f"tui-mail: {inert_line(line)}", file=sys.stderr)
    return result.exit_code


def _account_names(config: AppConfig, only: str | None) -> list[str]:
    if only is None:
        return list(config.accounts)
    if only not in config.accounts:
        known = ", ".join(config.accounts) or "none"
        raise ConfigError(f"no account named {only!r}; accounts: {known}", file=str(config.path))
    return [only]


def _debug_loggers() -> None:
    """TUI_MAIL_DEBUG=name[,name...]: those loggers at DEBUG into the log file.

    For diagnosis and tests, out of the user's way: e.g.
    `TUI_MAIL_DEBUG=tui_mail.backends.imap.client` logs every IMAP command
    sent (its name only, never its arguments).
    """
    import logging
    import os

    for name in filter(None, (n.strip() for n in os.environ.get("TUI_MAIL_DEBUG", "").split(","))):
        logging.getLogger(name).setLevel(logging.DEBUG)


def _log_handler() -> logging.Handler:
    """Logs go to a file: anything printed would land in the middle of the TUI."""
    import logging

    try:
        log_dir = paths.state_dir()
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_dir / "tui-mail.log")
    except OSError:
        return logging.NullHandler()
    from tui_mail.core.redact import RedactingFormatter

    # Before basicConfig, which keeps a formatter it finds: no secret reaches the file.
    handler.setFormatter(RedactingFormatter(logging.BASIC_FORMAT))
    return handler
