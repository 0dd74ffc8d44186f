"""Index rows of a bulk download in a helper process, on the machine's other core.

An initial sync is CPU-bound in one Python process: reading the IMAP stream,
writing the files, parsing their headers and inserting the rows all take the
same interpreter lock. Headers and rows are about half of that
(bench/bench_imap_sync.py), so `AccountStore.bulk()` starts this helper for
large downloads and `AccountStore.send_rows` hands it each batch, while this
process goes on reading the next batch from the network and writing its files.

The order of docs/store.md holds: a batch is handed over only after its files
are fsynced and renamed and their directories fsynced; the helper parses them
(`parse_headers`, as the in-process path does) and commits their rows in one
transaction, then answers with the row ids, in the order the batches came; the
sync saves a folder's state only after every answer came back. The helper opens
the index with `MailIndex(attach=True)`: no schema work, never a reset.

Any failure of the helper (it cannot start, dies, answers garbage, takes longer
than `TIMEOUT`) is a `BulkHelperError` for every batch not yet answered; the
callers then index those and the rest of the download in their own process (a
later `bulk()` block starts a new helper), so the result is never worse than
without it. A batch the helper committed but could not confirm is indexed again,
which upsert_many turns into a refresh of the same rows, never a second copy.

Wire format: 8-byte big-endian length, then a pickle, both ways, over the
helper's stdin and stdout (both ends are this module, in two processes of the
same user). The helper ignores Ctrl-C (the parent decides) and exits when its
stdin closes, so it never outlives the process that started it.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import pickle
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from tui_mail.core.errors import MailError

if TYPE_CHECKING:
    # Only names here: prestart() runs before the record types are imported.
    from tui_mail.core.models import ServerId
    from tui_mail.store.maildir import StoredFile

# (the durable file, its bytes as written, the server's id for it)
WrittenFile: TypeAlias = "tuple[StoredFile, bytes, ServerId | None]"

# A batch of 500 takes the helper ~30 ms; a lock held by another writer can make it
# wait busy_timeout (5 s) and fail. Far beyond both means it is stuck.
TIMEOUT = 60.0
_MAX_REPLY = 64 * 1024 * 1024
_PIPE_SIZE = 1024 * 1024  # Linux's default pipe-max-size for unprivileged users


class BulkHelperError(MailError):
    """The helper process failed; index in this process instead."""


class IndexHelper:
    """The parent's end: `send` a batch, later collect its row ids with `result`.

    Batches are sent while earlier ones are still being committed, so the helper
    goes from one to the next without waiting for us to read an answer and send
    again (a round trip cost it 2-5 ms a batch, ~20% of its time). It answers in
    the order it was sent. Thread-safe: a sender waits for other senders (and for
    room in the pipe), a waiter for the answers before its own. After any failure
    it is closed for good, and every batch not yet answered fails with it.
    """

    def __init__(self, index_path: Path, *, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self.index_path = index_path
        self._send_lock = threading.Lock()  # the order of the requests on the pipe
        self._lock = threading.Condition()  # the fields below
        self._closed = False
        self._failure = "the index helper was stopped"
        self._sent = 0  # requests written, which numbers the next one
        self._read = 0  # answers read, in the same order
        self._answers: dict[int, object] = {}  # read, not yet taken by their sender
        self._reading = False  # a thread is reading the next answer
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tui_mail.store.bulk", str(index_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # Whatever the helper might print (an interpreter failing to start)
                # must not reach the user's terminal; failures come back as replies.
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    _widen_pipe(pipe.fileno())
        except OSError as exc:
            raise BulkHelperError(f"cannot start the index helper: {exc.strerror or exc}") from exc

    @property
    def pid(self) -> int:
        return self._proc.pid

    def upsert_many(self, account: str, folder: str, written: list[WrittenFile]) -> list[int]:
        """The row ids of these durable files, committed by the helper; BulkHelperError."""
        return self.result(self.send(account, folder, written), len(written))

    def send(self, account: str, folder: str, written: list[WrittenFile]) -> int:
        """Hand the rows of these durable files over; the ticket for `result`."""
        rows = [
            (
                s.key,
                s.subdir,
                s.flags,
                s.size,
                s.mtime,
                raw,
                None if sid is None else (sid.uid, sid.uidvalidity, sid.modseq, sid.uidl),
            )
            for s, raw, sid in written
        ]
        payload = pickle.dumps((account, folder, rows), protocol=5)
        stdin = self._proc.stdin
        assert stdin is not None
        with self._send_lock:
            if self._closed:
                raise BulkHelperError(self._failure)
            try:
                stdin.write(len(payload).to_bytes(8, "big") + payload)
                stdin.flush()
            except Exception as exc:  # a broken pipe: it died
                broken = exc
            else:
                self._sent += 1
                return self._sent - 1
        raise self._fail(f"the index helper failed: {broken}") from broken

    def result(self, ticket: int, count: int) -> list[int]:
        """The `count` row ids of the batch `send` gave this ticket for, once committed."""
        self._collect(ticket)
        with self._lock:
            reply = self._answers.pop(ticket)
        status, value = reply if isinstance(reply, tuple) and len(reply) == 2 else ("", None)
        if (
            status != "ok"
            or not isinstance(value, list)
            or len(value) != count
            or not all(type(i) is int for i in value)
        ):
            why = value if status == "error" and isinstance(value, str) else "a bad answer"
            raise self._fail(f"the index helper failed: {why}", kill=False)
        return value

    def _collect(self, ticket: int) -> None:
        """Read answers in order until the one for `ticket` is in; one thread reads at
        a time, for whoever waits. BulkHelperError if the helper stops first."""
        while True:
            with self._lock:
                while self._read <= ticket and self._reading and not self._closed:
                    self._lock.wait()
                if self._read > ticket:
                    return
                if self._closed:
                    raise BulkHelperError(self._failure)
                self._reading = True
            answer: object = None
            # Until the answer is in: an interrupt (Ctrl-C in this thread) leaves the
            # pipe mid-answer, out of step for any other reader, so it fails too.
            failure: str | None = "reading the index helper's answer was interrupted"
            try:
                answer = self._read_answer()
                failure = None
            except BulkHelperError as exc:
                failure = str(exc)
            except Exception as exc:  # a garbled answer
                failure = f"the index helper failed: {exc}"
            finally:
                with self._lock:
                    if failure is None:
                        self._answers[self._read] = answer
                        self._read += 1
                    self._reading = False
                    self._lock.notify_all()
                if failure is not None:
                    self._fail(failure)  # an interrupt goes on after this
            if failure is not None:
                raise BulkHelperError(failure)

    def _read_answer(self) -> object:
        stdout = self._proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + self.timeout
        size = int.from_bytes(_read_exact(stdout.fileno(), 8, deadline), "big")
        if size > _MAX_REPLY:
            raise BulkHelperError("the index helper sent an oversized answer")
        return pickle.loads(_read_exact(stdout.fileno(), size, deadline))

    def _fail(self, why: str, *, kill: bool = True) -> BulkHelperError:
        """Stop it for good (killed: it may be stuck); the error for every waiter."""
        with self._lock:
            if not self._closed:
                self._failure = why
        self._stop(kill=kill)
        return BulkHelperError(why)

    def close(self) -> None:
        """Stop the helper once the batches sent are answered (their senders still get
        their ids): EOF on its stdin ends it; killed if it does not go."""
        if self._sent:
            with contextlib.suppress(BulkHelperError):  # then they index their own
                self._collect(self._sent - 1)
        self._stop()

    def _stop(self, kill: bool = False) -> None:
        """`kill`: it failed, so it may be stuck; a kill mid-transaction rolls back.
        Batches not answered by then fail: their senders index them themselves."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        proc = self._proc
        if kill:
            proc.kill()
        # Not while a batch is being written. A write can wait for the helper to read,
        # and the helper for its answers to be read, which nobody does once closed:
        # then the kill ends the write.
        if not self._send_lock.acquire(timeout=5.0):
            proc.kill()
            self._send_lock.acquire()
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        finally:
            self._send_lock.release()
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with self._lock:
            while self._reading:  # it ends at the EOF the helper's exit gave it
                self._lock.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _widen_pipe(fd: int) -> None:
    """Room for a whole batch (~300 KiB for 500 small messages) in the pipe, so the
    parent's write returns at once instead of in 64 KiB turns with the helper; and
    for hundreds of answers (~2.5 KiB each) not yet read on the way back."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or over the limit
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


def collect_less() -> None:
    """Run the cyclic garbage collector less often, for a bulk download.

    A download makes many short-lived objects per message and no cycles worth
    finding early. At the default gen-0 threshold (700), a 10k-message first sync ran
    ~90 collections in the main process, one of them over every object the imports
    made. At 50,000 it runs none; cycles still go, just later. Benchmark (10k
    messages, 3 x 10-12 alternating runs): 7-22 ms less wall time, 17-22 ms less CPU.
    """
    gc.set_threshold(50_000, 50, 100)


def cpus() -> int:
    """Cores this process may run on: with one, a helper would only take turns with us."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_prestarted: IndexHelper | None = None


def prestart(index_path: Path) -> None:
    """Start the helper for `index_path` now, for `take_prestarted` to hand out later.

    A first sync knows it will want one before it has imported the sync code:
    started then, the helper's own start-up (an interpreter and the index
    modules, ~80 ms of CPU) runs on the other core during ours, instead of
    competing with the server for it while the first messages arrive. Quietly
    does nothing when a helper cannot start; the store then starts its own.
    """
    global _prestarted
    if _prestarted is None and cpus() > 1:
        try:
            _prestarted = IndexHelper(index_path)
        except BulkHelperError:
            pass


def take_prestarted(index_path: Path) -> IndexHelper | None:
    """The helper `prestart` began for this index, once; None if there is none."""
    global _prestarted
    helper = _prestarted
    if helper is None or helper.index_path != index_path:
        return None
    _prestarted = None
    return helper


def discard_prestarted() -> None:
    """Stop a prestarted helper nobody took (the command ended without a download).

    Killed, not closed: it has done no work, and closing would wait for it to
    finish starting up (a config error on a first run would wait for that).
    """
    global _prestarted
    helper, _prestarted = _prestarted, None
    if helper is not None:
        helper._stop(kill=True)


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    """n bytes from the pipe, or BulkHelperError on EOF or after the deadline."""
    chunks: list[bytes] = []
    while n > 0:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise BulkHelperError("the index helper did not answer in time")
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise BulkHelperError("the index helper ended unexpectedly")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- the helper


def _serve(index_path: str) -> None:
    collect_less()
    # Imported here: the parent side above needs none of this.
    from msgspec import Struct

    from tui_mail.core.models import ServerId
    from tui_mail.store.index import MailIndex
    from tui_mail.store.parse import parse_headers

    class FileRow(Struct, frozen=True):
        """index.FileFacts: what a row takes from its file (no path: none holds it)."""

        key: str
        subdir: str
        flags: str
        size: int
        mtime: float

    # Opened at the first batch: a helper started with the command (prestart) runs
    # before the index file has its schema.
    index: MailIndex | None = None
    rd, wr = sys.stdin.buffer, sys.stdout.buffer

    try:
        while True:
            head = rd.read(8)
            if len(head) < 8:
                return  # the parent closed our stdin (or died): done
            size = int.from_bytes(head, "big")
            payload = rd.read(size)
            if len(payload) < size:
                return
            reply: tuple[str, object]
            try:
                account, folder, rows = pickle.loads(payload)
                if index is None:
                    index = MailIndex(Path(index_path), attach=True)
                items = [
                    (
                        FileRow(key, subdir, flags, size, mtime),
                        parse_headers(raw, mtime),
                        None if sid is None else ServerId(*sid),
                    )
                    for key, subdir, flags, size, mtime, raw, sid in rows
                ]
                # Files write_files just made: none has a row yet (failing, not
                # doubling, if one did; the parent then indexes the batch itself).
                reply = ("ok", index.upsert_many(account, folder, items, new_files=True))
            except Exception as exc:  # the parent indexes the batch itself
                reply = ("error", f"{type(exc).__name__}: {exc}")
            out = pickle.dumps(reply, protocol=5)
            wr.write(len(out).to_bytes(8, "big") + out)
            wr.flush()
    finally:
        # No PRAGMA optimize here (an ANALYZE of a fresh download would hold up the
        # parent waiting for us to exit): the index's owner runs it when it closes.
        if index is not None:
            index.close(optimize=False)


def main() -> int:
    import signal

    # Ctrl-C in the terminal reaches the whole process group: the parent decides
    # what to do, and our stdin closing ends us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if len(sys.argv) != 2:
        return 2
    try:
        _serve(sys.argv[1])
    except BaseException:  # a broken pipe, an index that cannot open: the parent sees EOF
        return 1
    return 0


if __name__ == "__main__":
    status = main()
    # Every answer was flushed as it was sent (_serve) and the index is closed. The
    # parent waits for this exit before its own index closes; the interpreter's
    # teardown (module cleanup, ~10 ms) would only add to that wait.
    os._exit(status)
