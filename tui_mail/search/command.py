"""`tui-mail search QUERY`: search the local index and print the matches, headless."""

from __future__ import annotations

import json
import string
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from tui_mail.core.models import Envelope
from tui_mail.core.sanitize import inert_line

if TYPE_CHECKING:
    from tui_mail.config.schema import AppConfig
    from tui_mail.store.index import MailIndex

FIELDS = (
    "id",
    "date",
    "account",
    "folder",
    "from",
    "from_name",
    "from_addr",
    "subject",
    "flags",
    "thread",
    "message_id",
    "key",
)
FORMAT_HELP = (
    "'table' (default), 'json' (one object per line), or a template such as "
    "'{date} {from} {subject}' with fields " + " ".join(f"{{{f}}}" for f in FIELDS)
)
EXIT_FOUND, EXIT_NONE, EXIT_USAGE = 0, 1, 2
EXIT_FAIL = 3  # --server: a server could not be searched (what was found is printed)


def _fields(env: Envelope) -> dict[str, str]:
    return {
        "id": str(env.ref.id),
        "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(env.date)) if env.date else "",
        "account": env.ref.account,
        "folder": env.ref.folder,
        "from": env.sender.display(),
        "from_name": env.sender.name,
        "from_addr": env.sender.addr,
        "subject": env.subject,
        "flags": env.flags.to_maildir() if hasattr(env.flags, "to_maildir") else str(env.flags),
        "thread": str(env.thread_id or ""),
        "message_id": env.message_id,
        "key": env.ref.key,
    }


def check_template(fmt: str) -> str | None:
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        return str(exc)
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if name not in FIELDS:
            return f"unknown field {{{name}}}; known: " + " ".join(f"{{{f}}}" for f in FIELDS)
        if conv:
            return f"conversions like !{conv} are not supported"
        if spec and "{" in spec:
            return "nested fields are not supported"
    return None


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def write(envelopes: Sequence[Envelope], fmt: str, out: TextIO) -> None:
    """Every value made inert first: subjects and names come from strangers."""
    for env in envelopes:
        values = {k: inert_line(v) for k, v in _fields(env).items()}
        if fmt == "json":
            # ensure_ascii: JSON escapes leave nothing a terminal could act on.
            out.write(json.dumps(_fields(env), ensure_ascii=True) + "\n")
        elif fmt == "table":
            where = _clip(f"{values['account']}/{values['folder']}", 24)
            sender = _clip(values["from"], 24)
            out.write(
                f"{values['date']:16}  {where:24}  {sender:24}  {values['subject']}\n".rstrip()
                + "\n"
            )
        else:
            out.write(fmt.format_map(values) + "\n")


def run_search(
    query_text: str,
    accounts: Sequence[str] | None,
    limit: int | None,
    fmt: str,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    server: AppConfig | None = None,
    config: Callable[[], AppConfig | None] | None = None,
) -> int:
    """0 when something matched, 1 when nothing did (like grep), 2 for a bad query.

    `server`: the config whose IMAP accounts are asked too (`--server`); matches
    not downloaded yet are fetched into the store first, so they print like any
    other. 3 when a server could not be searched (the rest is still printed).
    `config` loads the config (None if it cannot): bodies its accounts' downloads
    left for full-text search are indexed first (fill_pending_bodies). It is only
    called when some are waiting; with `server`, that config is used."""
    out = out or sys.stdout  # looked up now: tests and callers may swap sys.stdout
    err = err or sys.stderr
    from tui_mail import paths
    from tui_mail.search.query import QueryError, describe_error, parse_query
    from tui_mail.search.run import run_query

    try:
        query = parse_query(query_text)
    except QueryError as exc:
        err.write(describe_error(query_text, exc, "tui-mail: search: ") + "\n")
        return EXIT_USAGE
    if fmt not in ("table", "json") and (problem := check_template(fmt)):
        err.write(f"tui-mail: search --format: {problem}\n")
        return EXIT_USAGE
    if limit is not None and limit < 1:
        err.write("tui-mail: search --limit: must be 1 or more\n")
        return EXIT_USAGE
    failed = False
    if server is not None:
        from tui_mail.search.imap import server_search_plan

        try:
            # Refused before any connection: the same check the workers make.
            server_search_plan(query, "", ["INBOX"])
        except QueryError as exc:
            err.write(describe_error(query_text, exc, "tui-mail: search: ") + "\n")
            return EXIT_USAGE
        failed = not ask_servers(server, query_text, accounts, err)
    from tui_mail.store.index import MailIndex

    index = MailIndex.open(paths.index_path())
    try:
        if accounts:
            known = {r[0] for r in index.execute_read("SELECT DISTINCT account FROM folder_stats")}
            unknown = [a for a in accounts if a not in known]
            if unknown:
                listed = ", ".join(sorted(known)) or "none indexed yet"
                err.write(f"tui-mail: search: no mail indexed for {unknown[0]!r}; accounts: ")
                err.write(inert_line(listed) + "\n")
                return EXIT_USAGE
        if server is not None:
            fill_pending_bodies(lambda: server, index, accounts, err)
        elif config is not None:
            fill_pending_bodies(config, index, accounts, err)
        ids = run_query(index, query, accounts or None, limit)
        try:
            # Envelopes in pages: a match-everything query over 100k rows stays flat.
            for start in range(0, len(ids), 500):
                write(index.envelopes(ids[start : start + 500]), fmt, out)
            out.flush()
        except BrokenPipeError:
            # `tui-mail search x | head`: the reader has what it wanted. Point stdout
            # at /dev/null so the interpreter's final flush does not fail again.
            if out is sys.stdout:
                import os

                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        index.close()
    if failed:
        return EXIT_FAIL
    return EXIT_FOUND if ids else EXIT_NONE


def fill_pending_bodies(
    load_config: Callable[[], AppConfig | None],
    index: MailIndex,
    accounts: Sequence[str] | None,
    err: TextIO,
) -> None:
    """Index the bodies bulk downloads left for later, so a word in a body finds them.

    The TUI and `sync --watch` do this while idle; a one-shot `tui-mail sync`
    (cron) does not hold up its exit for it, so the first search after one
    pays here, once. The config is loaded only if bodies wait; accounts not in
    it (the demo) are left as they are.
    """
    pending = index.execute_read(
        "SELECT m.account, count(*) FROM fts_pending AS p JOIN messages AS m ON m.id = p.id"
        " GROUP BY m.account"
    )
    waiting = {str(a): int(n) for a, n in pending if accounts is None or a in accounts}
    if not waiting:
        return
    config = load_config()
    if config is None:
        return
    waiting = {n: count for n, count in waiting.items() if n in config.accounts}
    if not waiting:
        return
    from tui_mail.sync.runtime import Runtime

    total = sum(waiting.values())
    if total >= 1000:  # a few seconds: say why the answer takes a moment
        err.write(f"tui-mail: search: indexing {total} message bodies first\n")
        err.flush()
    runtime = Runtime(config, index.path, accounts=list(waiting))
    try:
        for name in waiting:
            while runtime.stores[name].fill_fts(1000):
                pass
    finally:
        runtime.index.close()


def ask_servers(
    config: AppConfig, query_text: str, accounts: Sequence[str] | None, err: TextIO
) -> bool:
    """Run the server search of every IMAP account (others are skipped quietly);
    the matches land in the index. False when one of them failed (said on `err`)."""
    import asyncio

    from tui_mail.core import commands as cmd
    from tui_mail.core import events as ev
    from tui_mail.headless import run_commands, text_reporter

    names = list(accounts) if accounts else list(config.accounts)
    said = text_reporter(err)
    failed: list[str] = []

    def report(event: ev.Event) -> None:
        if isinstance(event, ev.UnsupportedReply):
            return  # Maildir, POP3: their mail is all local already
        if isinstance(event, ev.Failed):
            failed.append(event.account)
        said(event)

    commands = {name: [cmd.Search(query=query_text, server=True)] for name in names}
    asyncio.run(run_commands(config, commands, report))
    return not failed
