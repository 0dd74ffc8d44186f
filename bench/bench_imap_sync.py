"""Initial and no-change IMAP sync: `tui-mail sync` against mbsync, same run, same server.

    .venv/bin/python bench/bench_imap_sync.py [--count 10000] [--folders 3] [--runs 3]

Needs root (it starts its own mailstack, tests/servers/mailstack.sh, on /dev/shm)
and isync's `mbsync`. It loads COUNT synthetic messages spread over FOLDERS
folders of alice's account, then, alternating the clients in each round:

* ours    - `tui-mail sync --quiet` (the installed command, as cron would run it)
            with a config naming that account, its data directories
            (XDG_DATA_HOME, XDG_STATE_HOME) fresh under the round's folder:
            Maildir + SQLite index with full-text search, over IMAPS. It parses
            headers and writes index rows in a helper process on the other core
            (store/bulk.py), which the command waits for;
* raw     - our IMAP client alone: `fetch_messages` into plain Maildir files
            (the store's writer, no index), to separate the protocol from the
            indexing cost;
* mbsync  - `mbsync -a` into an empty Maildir (tests/servers/templates/mbsyncrc.in,
            all folders), IMAPS, its default FSync.

then each again with no change on the server, and ours and mbsync once more
against bob's account, which has no mail ("empty"): what a run costs before and
around its messages (interpreter, connection, folder list), so the difference to
the initial sync is the cost of the messages themselves, printed per message.
Times are wall clock from process start to exit (interpreter start included),
medians over the rounds. CPU (user +
system) and peak RSS come from wait4(): CPU counts the waited-for children too
(our index helper), peak RSS is the largest single process, not their sum.
FSYNC_POLICY below (printed with the results) says what each side makes durable.

Our initial sync stores every row with its list fields and leaves the body
text for full-text search to `AccountStore.fill_fts` (what the TUI's account
worker runs when idle). The "ours bodies" row times that pass on its own, as a
separate process right after each initial sync, so its cost is shown, not hidden.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

USER = "alice"
EMPTY_USER = "bob"  # given the same folders as alice, all empty
FSYNC_POLICY = (
    "fsync: mbsync (FSync yes, its default) and ours both fsync every message file\n"
    "       before renaming it into cur/ or new/; ours fsyncs each directory once per\n"
    "       batch (100 to 500 messages) and commits the batch's index rows after that,\n"
    "       so no row or sync state names a file that is not durable."
)


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of mailstack.env (children do not import the test harness,
    whose smtplib and subprocess imports would count as our start-up time)."""
    env = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.isupper():
            env[key] = value.strip("\"'")
    return env


def _backend(env: dict[str, str]):  # type: ignore[no-untyped-def]
    from tui_mail.backends.base import BackendContext
    from tui_mail.backends.imap.backend import ImapReceiveBackend
    from tui_mail.config.schema import AccountConfig, EndpointConfig

    ep = EndpointConfig(
        backend="imap",
        host="127.0.0.1",  # the test certificate names the IP too
        port=int(env["MAILSTACK_IMAPS_PORT"]),
        security="tls",
        user=USER,
        password=f"{USER}pass",
        ca_file=Path(env["MAILSTACK_CA_FILE"]),
        timeout=60.0,
    )
    acct = AccountConfig(USER, f"{USER}@localhost", ep, EndpointConfig(backend="local"))
    return ImapReceiveBackend(BackendContext(acct, ep))


def ours_command(stack: Path, dest: Path, user: str = USER) -> tuple[list[str], dict[str, str]]:
    """`tui-mail sync` of `user`'s account into fresh data directories under `dest`."""
    env = parse_env_file(stack / "mailstack.env")
    dest.mkdir(exist_ok=True)
    config = dest / "config.toml"

    def endpoint(role: str, backend: str, port: str) -> str:
        return (
            f'[accounts.{user}.{role}]\nbackend = "{backend}"\nhost = "127.0.0.1"\n'
            f'port = {port}\nsecurity = "tls"\nuser = "{user}"\npassword = "{user}pass"\n'
            f'ca_file = "{stack / "tls/ca.crt"}"\n'
        )

    # A user's account: IMAPS in, and SMTP out, since building that backend is part
    # of every sync.
    config.write_text(
        f'[accounts.{user}]\nemail = "{user}@localhost"\n\n'
        + endpoint("receive", "imap", env["MAILSTACK_IMAPS_PORT"])
        + "\n"
        + endpoint("send", "smtp", env["MAILSTACK_SUBMISSIONS_PORT"])
    )
    config.chmod(0o600)  # as a user's: tui-mail warns about a plain password others can read
    script = Path(sys.executable).parent / "tui-mail"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "tui_mail"]
    dirs = {f"XDG_{kind}_HOME": str(dest / kind.lower()) for kind in ("DATA", "STATE", "CACHE")}
    return [*cmd, "--config", str(config), "sync", "--quiet"], dirs


def ours_files(dest: Path) -> int:
    """Message files the sync left in the account's Maildir."""
    root = dest / "data" / "tui-mail" / "mail" / USER
    return sum(1 for p in root.rglob("*") if p.parent.name in ("cur", "new") and p.is_file())


def child_bodies(stack: str, dest: str) -> None:
    """The full-text pass after an initial sync: fill_fts until nothing is left."""
    from tui_mail.store.account_store import AccountStore
    from tui_mail.store.index import MailIndex

    data = Path(dest) / "data" / "tui-mail"
    index = MailIndex(data / "index.sqlite3")
    store = AccountStore(USER, data / "mail" / USER, index)
    pending = index.fts_pending_count(USER)
    try:
        while store.fill_fts(1000):
            pass
        print(json.dumps({"indexed": pending - index.fts_pending_count(USER)}))
    finally:
        index.close()


def child_raw(stack: str, dest: str) -> None:
    """Our client alone: every message of every folder into plain Maildir files."""
    from tui_mail.store.maildir import MaildirStore

    env = parse_env_file(Path(stack) / "mailstack.env")

    async def run() -> dict[str, int]:
        b = _backend(env)
        md = MaildirStore(Path(dest) / "mail")
        n = 0
        try:
            for folder in await b.list_folders():
                uids = await b.list_uids(folder.name)
                batch: list[tuple[bytes, str]] = []
                async for msg in b.fetch_messages(folder.name, uids):
                    batch.append((msg.raw, msg.flags.to_maildir()))
                    if len(batch) >= 500:
                        await asyncio.to_thread(_write, md, folder.name, batch)
                        n += len(batch)
                        batch = []
                await asyncio.to_thread(_write, md, folder.name, batch)
                n += len(batch)
            return {"fetched": n, "commands": b.commands_sent}
        finally:
            await b.close()

    print(json.dumps(asyncio.run(run())))


def _write(md, folder: str, batch: list[tuple[bytes, str]]) -> None:  # type: ignore[no-untyped-def]
    md.add_many(folder, batch)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str, float]:
    """(wall seconds, peak RSS in KiB, stdout, user + system CPU seconds) of one child
    process, its waited-for children included."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{err[-3000:]}")
    return elapsed, usage.ru_maxrss, out, usage.ru_utime + usage.ru_stime


def mbsyncrc(stack: Path, dest: Path, user: str = USER) -> Path:
    text = (REPO / "tests/servers/templates/mbsyncrc.in").read_text()
    if user != "alice":  # the template's account
        text = text.replace("User alice", f"User {user}").replace("alicepass", f"{user}pass")

    env = parse_env_file(stack / "mailstack.env")
    text = text.replace("@DIR@/peers/mbsync/alice", str(dest))
    text = text.replace("@DIR@", str(stack)).replace("@IMAPS_PORT@", env["MAILSTACK_IMAPS_PORT"])
    text = text.replace("Patterns INBOX", "Patterns *")  # every folder, as ours does
    rc = dest.parent / f"{dest.name}.mbsyncrc"
    rc.write_text(text)
    return rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--folders", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the mailstack folder behind")
    args = ap.parse_args()
    if shutil.which("mbsync") is None:
        raise SystemExit("mbsync (Debian package isync) is not installed")

    from servers.harness import start_mailstack, stop_mailstack

    base = Path(tempfile.mkdtemp(prefix="tui-mail-bench-imap.", dir="/dev/shm"))
    os.chmod(base, 0o755)  # Dovecot's users traverse it
    stack = base / "stack"
    stack.mkdir()
    work = base / "work"
    work.mkdir()
    try:
        t = time.perf_counter()
        start_mailstack(stack)
        folders = ["INBOX"] + [f"Bench{i}" for i in range(2, args.folders + 1)]
        per = [args.count // len(folders)] * len(folders)
        per[0] += args.count - sum(per)
        # alice's messages; bob gets the same folders with nothing in them.
        loads = [(USER, name, n) for name, n in zip(folders, per, strict=True)]
        loads += [(EMPTY_USER, name, 0) for name in folders[1:]]
        for user, name, n in loads:
            subprocess.run(
                ["bash", str(REPO / "tests/servers/mailstack.sh"), "load", str(stack), user,
                 str(n), name],
                check=True, capture_output=True,
            )  # fmt: skip
        print(
            f"loaded {args.count} messages into {len(folders)} folders in "
            f"{time.perf_counter() - t:.1f}s ({stack})"
        )
        py = sys.executable
        # Children keep compiled bytecode (under our temp folder, not in the repo), as an
        # installed tui-mail would: with PYTHONDONTWRITEBYTECODE every start recompiles.
        child_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        child_env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        me = str(Path(__file__).resolve())
        results: dict[str, list[tuple[float, int, str, float]]] = {}

        def run(label: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
            results.setdefault(label, []).append(timed(cmd, {**child_env, **(env or {})}))

        for r in range(args.runs + 1):  # round 0 warms Dovecot's caches and is dropped
            order = ["mbsync", "ours", "raw"] if r % 2 else ["ours", "raw", "mbsync"]
            for who in order:
                dest = work / f"{who}-{r}"
                env: dict[str, str] = {}
                if who == "mbsync":
                    dest.mkdir()
                    rc = mbsyncrc(stack, dest)
                    cmd = ["mbsync", "-q", "-c", str(rc), "-a"]
                elif who == "ours":
                    cmd, env = ours_command(stack, dest)
                else:
                    cmd = [py, me, "--child-raw", str(stack), str(dest)]
                run(f"{who} initial", cmd, env)
                if who == "ours":
                    if (n := ours_files(dest)) != args.count:
                        raise SystemExit(f"tui-mail sync stored {n} of {args.count} messages")
                    run("ours bodies", [py, me, "--child-bodies", str(stack), str(dest)])
                if who != "raw":  # raw is a download, not a sync: nothing to compare
                    # mbsync sleeps 1 s when the Maildir changed less than 1 s ago.
                    time.sleep(1.1)
                    run(f"{who} no-change", cmd, env)
                    empty = work / f"{who}-{r}-empty"
                    if who == "mbsync":
                        empty.mkdir()
                        cmd = ["mbsync", "-q", "-c", str(mbsyncrc(stack, empty, EMPTY_USER)), "-a"]
                    else:
                        cmd, env = ours_command(stack, empty, EMPTY_USER)
                    run(f"{who} empty", cmd, env)
            if r == 0:
                results.clear()

        def med(label: str) -> float:
            return statistics.median(t for t, *_ in results[label])

        print(f"\n{args.count} messages, {len(folders)} folders, median of {args.runs} rounds:")
        for label in results:
            times = ", ".join(f"{t:.2f}" for t, *_ in results[label])
            rss = max(m for _, m, *_ in results[label]) / 1024
            cpu = statistics.median(c for *_, c in results[label])
            extra = results[label][-1][2].strip()
            print(
                f"  {label:18} {med(label):7.3f} s   [{times}]  cpu {cpu:5.2f} s"
                f"  peak RSS {rss:6.1f} MiB  {extra}"
            )
        print(FSYNC_POLICY)
        # The interpreter decides much of "ours": a pyenv-built 3.11.7 (no PGO) was ~7%
        # slower here than Debian's 3.11.2 (scripts/python.sh).
        print(f"python: {sys.version.split()[0]} from {sys.base_prefix}")
        print("ratios (ours / mbsync; < 1 is faster):")
        m = med("mbsync initial")
        print(
            f"  initial    ours {med('ours initial') / m:5.2f}x   "
            f"client only (raw) {med('raw initial') / m:5.2f}x   "
            f"ours + bodies pass {(med('ours initial') + med('ours bodies')) / m:5.2f}x"
        )
        # The same ratio round by round: both ran within seconds of each other, so the
        # machine's slow and fast minutes (often +-10% here) weigh on both alike.
        paired = sorted(
            o / b
            for (o, *_), (b, *_) in zip(
                results["ours initial"], results["mbsync initial"], strict=True
            )
        )
        print(
            f"  initial, round by round: median {statistics.median(paired):.2f}x"
            f" (from {paired[0]:.2f}x to {paired[-1]:.2f}x; ours faster in"
            f" {sum(r < 1 for r in paired)} of {len(paired)})"
        )
        print(f"  no-change  ours {med('ours no-change') / med('mbsync no-change'):5.2f}x")
        # The initial sync less the run with no mail: what the messages themselves cost.
        ours_empty, mbsync_empty = med("ours empty"), med("mbsync empty")
        per_ours = (med("ours initial") - ours_empty) / args.count
        per_mbsync = (m - mbsync_empty) / args.count
        print(
            f"  empty account    ours {ours_empty * 1e3:4.0f} ms  mbsync "
            f"{mbsync_empty * 1e3:4.0f} ms  ({ours_empty / mbsync_empty:.2f}x)"
        )
        print(
            f"  per message      ours {per_ours * 1e6:4.1f} us  mbsync {per_mbsync * 1e6:4.1f} us"
            f"  ({per_ours / per_mbsync:.2f}x)"
        )
    finally:
        try:
            stop_mailstack(stack)
        finally:
            if not args.keep:
                shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child-bodies":
        child_bodies(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "--child-raw":
        child_raw(sys.argv[2], sys.argv[3])
    else:
        main()
