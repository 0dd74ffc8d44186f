"""Index speed at 100k messages in one folder: paging, counts, bulk upsert, rescan.

    .venv/bin/python bench/bench_index_page.py [--dir /dev/shm] [--rows 100000] [--files]

Run it on /dev/shm: the ext4 disks of CI machines swing 5-10x between runs
(docs/PERFORMANCE.md). Prints p50/p95 page latency for offsets 0, 50%, 99.9%
with every sort order, folder_counts() time, upsert_many() throughput and,
with --files, the time of an unchanged rescan of a real 100k-file Maildir.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tui_mail.core.models import Address
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex
from tui_mail.store.maildir import StoredFile, unique_name
from tui_mail.store.parse import ParsedHeaders, parse_headers, parse_message

ACCOUNT = "bench"
FOLDER = "INBOX"
WORDS = "alpha beta gamma delta release meeting patch review build python sqlite mail".split()


def synthetic(n: int, root: Path) -> list[tuple[StoredFile, ParsedHeaders, None]]:
    rng = random.Random(42)
    items = []
    start = 1_500_000_000
    for i in range(n):
        key = unique_name()
        flags = "S" if rng.random() < 0.8 else ""
        parent = f"<m{rng.randrange(i)}@bench>" if i and rng.random() < 0.4 else ""
        path = root / "cur" / f"{key}:2,{flags}"
        size = rng.randrange(500, 90_000)
        stored = StoredFile(FOLDER, key, "cur", flags, path, size, float(start + i))
        prefix = "Re: " if parent else ""
        body = " ".join(rng.choice(WORDS) for _ in range(80))
        parsed = ParsedHeaders(
            date=start + i * 60 + rng.randrange(600),
            sender=Address(
                f"Sender {rng.randrange(2000)}", f"user{rng.randrange(2000)}@example.org"
            ),
            to=(Address("Me", "me@example.org"),),
            cc=(),
            subject=f"{prefix}Subject {rng.randrange(20_000)} {rng.choice(WORDS)}",
            message_id=f"<m{i}@bench>",
            in_reply_to=parent,
            references=(parent,) if parent else (),
            has_attachment=rng.random() < 0.1,
            list_id="",
            body_text=body,
        )
        items.append((stored, parsed, None))
    return items


def timed(fn, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--files", action="store_true", help="also time rescans of a real Maildir")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tui-mail-bench-", dir=args.dir))
    try:
        index = MailIndex.open(work / "index.sqlite3")
        items = synthetic(args.rows, work / "mail")
        # The harness's own 100k objects would make every GC pass slow and be
        # billed to the index; a real rescan holds only one 500-file chunk.
        gc.freeze()
        t0 = time.perf_counter()
        for start in range(0, len(items), 5000):
            index.upsert_many(ACCOUNT, FOLDER, items[start : start + 5000])
        dt = time.perf_counter() - t0
        print(f"upsert_many: {args.rows} rows in {dt:.2f} s = {args.rows / dt:,.0f} rows/s")
        db_mb = os.path.getsize(work / "index.sqlite3") / 1e6
        print(f"index size: {db_mb:.0f} MB (WAL excluded)")
        index.close()
        index = MailIndex.open(work / "index.sqlite3")  # cold-ish: a fresh connection

        n = args.rows
        for sort in ("date", "from", "subject", "size"):
            for offset in (0, n // 2, int(n * 0.999)):
                p50, p95 = timed(
                    lambda o=offset, s=sort: index.page(ACCOUNT, FOLDER, o, 50, s, True),
                    args.repeat,
                )
                print(
                    f"page sort={sort:<7} offset={offset:>6}: p50 {p50:6.2f} ms  p95 {p95:6.2f} ms"
                )
        p50, p95 = timed(lambda: index.folder_counts(ACCOUNT), args.repeat)
        print(f"folder_counts: p50 {p50:.3f} ms  p95 {p95:.3f} ms")
        p50, p95 = timed(lambda: index.count(ACCOUNT, FOLDER, unread_only=True), args.repeat)
        print(f"count(unread): p50 {p50:.3f} ms  p95 {p95:.3f} ms")
        p50, p95 = timed(lambda: index.search(ACCOUNT, "patch review", limit=50), 10)
        print(f"search 2 words (limit 50): p50 {p50:.1f} ms  p95 {p95:.1f} ms")
        index.close()

        if args.files:
            rescan_bench(work, min(args.rows, 100_000))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rescan_bench(work: Path, n: int) -> None:
    index = MailIndex.open(work / "files.sqlite3")
    store = AccountStore(ACCOUNT, work / "maildir", index)
    cur = work / "maildir" / "cur"
    # Written directly (no fsync): this measures the index, not the disk.
    for i in range(n):
        msg = (
            f"From: User {i % 500} <u{i % 500}@example.org>\r\nTo: me@example.org\r\n"
            f"Subject: message {i}\r\nMessage-ID: <f{i}@bench>\r\n"
            f"Date: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\r\n\r\nhello {i}\r\n"
        )
        (cur / f"{unique_name()}:2,{'S' if i % 3 else ''}").write_text(msg)
    raws = [(cur / name).read_bytes() for name in sorted(os.listdir(cur))[:10_000]]
    t0 = time.perf_counter()
    for raw in raws:
        parse_message(raw)
    dt = time.perf_counter() - t0
    print(f"parse_message: {len(raws) / dt:,.0f} messages/s")
    t0 = time.perf_counter()
    for raw in raws:
        parse_headers(raw)
    dt = time.perf_counter() - t0
    print(f"parse_headers (list fields, no body): {len(raws) / dt:,.0f} messages/s")
    t0 = time.perf_counter()
    store.deliver_many("Other", [(raw, "", None) for raw in raws])
    dt = time.perf_counter() - t0
    print(f"deliver_many (write+fsync, parse headers, index) {len(raws)}: {dt:.2f} s")
    t0 = time.perf_counter()
    result = store.rescan(FOLDER)
    dt = time.perf_counter() - t0
    print(f"first rescan (read+parse+index) of {n} files: {dt:.1f} s = {n / dt:,.0f} files/s")
    assert result.added == n, result
    for _ in range(2):
        t0 = time.perf_counter()
        result = store.rescan(FOLDER)
        print(f"unchanged rescan of {n} files: {(time.perf_counter() - t0) * 1000:.0f} ms {result}")
    names = sorted(os.listdir(cur))[:1000]
    for name in names:
        os.rename(cur / name, cur / (name.split(":")[0] + ":2,FS"))
    t0 = time.perf_counter()
    result = store.rescan(FOLDER)
    print(f"rescan with 1000 flag changes: {(time.perf_counter() - t0) * 1000:.0f} ms {result}")
    pending = index.fts_pending_count(ACCOUNT)
    t0 = time.perf_counter()
    index.search(ACCOUNT, "message 4242")
    dt = time.perf_counter() - t0
    print(f"search with {pending} bodies not indexed yet: {dt * 1000:.0f} ms")
    t0 = time.perf_counter()
    while store.fill_fts(1000):
        pass
    dt = time.perf_counter() - t0
    print(f"fill_fts (read, full parse, FTS) of {pending}: {dt:.1f} s = {pending / dt:,.0f}/s")
    index.close()


if __name__ == "__main__":
    main()
