"""Search latency over 100,000 indexed messages, and `tui-mail status` wall time.

    .venv/bin/python bench/bench_search.py [--dir /dev/shm] [--rows 100000] [--reps 30]

Builds a synthetic index (tui_mail/search/synthetic.py: several accounts and
folders, Zipf-distributed words, threads, flags) under --dir, then for each
operator kind runs a few queries --reps times and prints p50/p95 of

* first page: run_query(limit=100), what the UI waits for before it can draw,
* all ids:    run_query() without a limit, the whole result list (its cost grows
              with the number of matches, shown as "hits"),

and finally the wall time of `tui-mail status` as tmux runs it (a fresh
process each time, pointed at this index through XDG_DATA_HOME), next to a
bare `python -c pass` for scale. Targets: p95 < 50 ms per query, status < 150 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KINDS: dict[str, list[str]] = {
    "free text (rare)": ["zyxquartz", "kumquatreport"],
    "free text (common)": ["{common}", "{common} {second}"],
    "phrase": ['"{common} {second}"'],
    "prefix": ["{mid5}*", "{common3}*"],
    "from:": ["from:rarely.writes@odd.example", "from:{common}", "from:{common3}*"],
    "to:/cc:": ["to:{common}", "cc:{common}", "to:{mid5}*"],
    "subject:/body:": ["subject:kumquatreport", "body:{common}"],
    "folder:": ["folder:Lists/*", "folder:INBOX"],
    "account:": ["account:work"],
    "has:attachment": ["has:attachment"],
    "is:": ["is:unread", "is:flagged", "is:answered"],
    "before:/after:": ["after:2022-06-01", "before:2021-01-01", "after:30d"],
    "negation": ["-{common}", "-is:read -folder:Trash"],
    "OR": ["zyxquartz OR kumquatreport", "is:flagged OR has:attachment"],
    "combined": [
        "{common} is:unread folder:INBOX",
        "(is:flagged OR has:attachment) account:work -folder:INBOX after:2022-01-01",
        "from:{common} -{second} before:1000d",
    ],
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def build(db: Path, rows: int) -> None:
    from tui_mail.search import synthetic
    from tui_mail.store.index import MailIndex

    index = MailIndex.open(db)
    try:
        started = time.perf_counter()
        synthetic.fill(index, rows)
        print(f"built {rows} messages in {time.perf_counter() - started:.1f}s")
    finally:
        index.close()


def common_words(db: Path) -> tuple[str, str, str]:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        counts: dict[str, int] = {}
        for (body,) in conn.execute("SELECT body FROM messages_fts LIMIT 3000"):
            for word in set(body.split()):
                counts[word] = counts.get(word, 0) + 1
    finally:
        conn.close()
    ranked = sorted(counts, key=lambda w: -counts[w])
    return ranked[0], ranked[1], ranked[min(200, len(ranked) - 1)]


def bench_queries(db: Path, reps: int) -> None:
    from tui_mail.search.query import parse_query
    from tui_mail.search.run import run_query
    from tui_mail.store.index import MailIndex

    common, second, mid = common_words(db)
    index = MailIndex.open(db)
    try:
        run_query(index, parse_query("is:flagged"), limit=1)  # creates the search index once
        print(f"\nwords: {common!r}, {second!r} (most common), {mid!r} (200th); {reps} runs\n")
        print(
            f"{'operator kind':22} {'first page p50/p95':>20} {'all ids p50/p95':>18} {'hits':>8}"
        )
        for kind, templates in KINDS.items():
            first: list[float] = []
            full: list[float] = []
            hits = 0
            for template in templates:
                text = template.format(
                    common=common, second=second, common3=common[:3], mid5=mid[:5]
                )
                query = parse_query(text)
                for _ in range(reps):
                    t0 = time.perf_counter()
                    run_query(index, query, limit=100)
                    t1 = time.perf_counter()
                    ids = run_query(index, query)
                    t2 = time.perf_counter()
                    first.append((t1 - t0) * 1000)
                    full.append((t2 - t1) * 1000)
                hits = max(hits, len(ids))
            print(
                f"{kind:22} {pct(first, 50):9.1f} /{pct(first, 95):6.1f} ms"
                f" {pct(full, 50):7.1f} /{pct(full, 95):6.1f} ms {hits:8d}"
            )
    finally:
        index.close()


def wall(cmd: list[str], env: dict[str, str], reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def bench_status(data_home: Path, reps: int) -> None:
    env = dict(os.environ)
    env["XDG_DATA_HOME"] = str(data_home)
    env["XDG_CONFIG_HOME"] = str(data_home / "no-config")
    env["XDG_STATE_HOME"] = str(data_home / "state")
    env.pop("TUI_MAIL_CONFIG", None)
    script = Path(sys.executable).with_name("tui-mail")
    status_cmd = (
        [str(script), "status"] if script.exists() else [sys.executable, "-m", "tui_mail", "status"]
    )
    line = subprocess.run(status_cmd, env=env, capture_output=True, text=True, check=True).stdout
    base = wall([sys.executable, "-c", "pass"], env, reps)
    status = wall(status_cmd, env, reps)
    print(f"\n`tui-mail status` -> {line.strip()!r}")
    print(f"  python -c pass     p50 {pct(base, 50):6.1f} ms  p95 {pct(base, 95):6.1f} ms")
    print(f"  tui-mail status    p50 {pct(status, 50):6.1f} ms  p95 {pct(status, 95):6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to build (default: a temp dir)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the built index")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-search-", dir=args.dir))
    try:
        # Where `tui-mail status` finds it: $XDG_DATA_HOME/tui-mail/index.sqlite3.
        os.environ["XDG_DATA_HOME"] = str(root)
        from tui_mail import paths

        db = paths.index_path()
        build(db, args.rows)
        bench_queries(db, args.reps)
        bench_status(root, args.reps)
    finally:
        if args.keep:
            print(f"\nkept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
