"""The TUI on a 100,000-message folder, against NeoMutt with a warm header cache.

    .venv/bin/python bench/bench_tui_first_paint.py [--messages 100000] [--runs 5]
        [--dir /dev/shm] [--size 120x40] [--keep] [--reuse DIR] [--no-peer]

Needs tmux, and NeoMutt for the comparison (`apt-get install -y tmux neomutt`,
or `bash bench/install.sh`); without NeoMutt only tui-mail is measured.

Builds one Maildir folder of generated messages, indexes it with the real
store (AccountStore.rescan), writes a config for a `maildir` account on it,
then, in the same run and alternating launch by launch, starts the installed
`tui-mail` and `neomutt -f` on that Maildir in their own tmux panes and
measures, from the outside, what a user sees:

* first paint: from `tmux new-session` until capture-pane shows the newest
  message's subject in the list;
* page-down: from `send-keys PageDown` until the pane changes, attributes
  included (`capture-pane -e`): the first page-down of tui-mail moves the
  cursor to the last row of the screen, which changes only colours;
* open: from `send-keys Enter` until the message's headers are on screen;
* peak memory: VmHWM of the client process, read just before it quits.

Before timing, the package's bytecode is compiled (`compileall`, what pip
does when it installs a wheel): with PYTHONDONTWRITEBYTECODE set, as in some
CI environments, every launch would otherwise compile ~50 modules from
source, about 0.2 s that an installed client never pays.

`--keep` leaves the work folder; `--reuse DIR` measures on a kept one again
(no generating or indexing). Polling capture-pane costs about 2 ms a call,
the same for both programs, and the poll waits 3 ms between calls so it does
not starve the client measured; every figure can be up to ~8 ms late, for both
programs alike.
Targets (issue 6): first paint under 0.5 s, page-down under 50 ms, peak
memory under 200 MB.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FOLDER_SUBJECT = "Newest message of the benchmark folder"
# Between two capture-panes: a poll is a tmux client process plus work in the tmux
# server, and polling back to back took most of a core from the program measured
# (the first paint of either client came out ~30% slower on a 2-core machine).
POLL_GAP = 0.003
WORDS = "alpha beta gamma delta release meeting patch review build python sqlite mail".split()


@dataclass
class Figures:
    first_paint: list[float] = field(default_factory=list)
    page_down: list[float] = field(default_factory=list)
    open_message: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------- the folder


def build_maildir(root: Path, n: int) -> None:
    """n small messages in root/cur, one per minute, the last with a known subject."""
    rng = random.Random(42)
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    start = 1_600_000_000
    cur = root / "cur"
    for i in range(n):
        newest = i == n - 1
        subject = FOLDER_SUBJECT if newest else f"Subject {i} {rng.choice(WORDS)}"
        parent = f"In-Reply-To: <m{rng.randrange(i)}@bench>\n" if i and rng.random() < 0.3 else ""
        when = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(start + i * 60))
        body = " ".join(rng.choice(WORDS) for _ in range(60))
        msg = (
            f"From: Sender {i % 997} <user{i % 997}@example.org>\nTo: me@example.org\n"
            f"Subject: {subject}\nDate: {when}\nMessage-ID: <m{i}@bench>\n{parent}"
            f"Content-Type: text/plain; charset=utf-8\n\n{body}\n"
        )
        flags = "S" if rng.random() < 0.8 else ""
        (cur / f"{start + i}.M{i}P1.bench:2,{flags}").write_text(msg)


def index_maildir(root: Path) -> float:
    """Index the folder through the real store, as `tui-mail` would find it."""
    from tui_mail import paths
    from tui_mail.store.account_store import AccountStore
    from tui_mail.store.index import MailIndex

    t0 = time.perf_counter()
    index = MailIndex.open(paths.index_path())
    try:
        result = AccountStore("bench", root, index).rescan()
        fill = getattr(AccountStore("bench", root, index), "fill_fts", None)
        while fill is not None and fill(5000):
            pass
    finally:
        index.close()
    assert result.added or result.changed or True
    return time.perf_counter() - t0


def write_config(path: Path, maildir: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[accounts.bench]\n"
        'email = "me@example.org"\n\n'
        "[accounts.bench.receive]\n"
        'backend = "maildir"\n'
        f'path = "{maildir}"\n'
    )
    path.chmod(0o600)


def write_muttrc(path: Path, hcache: Path, maildir: Path) -> None:
    path.write_text(
        f"set folder = {maildir.parent}\n"
        f"set spoolfile = {maildir}\n"
        f"set header_cache = {hcache}\n"
        "set mbox_type = Maildir\n"
        "set sort = reverse-date\n"
        "set quit = yes\n"
        "set sleep_time = 0\n"
        "set wait_key = no\n"
        "set mark_old = no\n"
        "set pager_index_lines = 0\n"
        "set read_inc = 0\n"
        "set confirmappend = no\n"
    )


# --------------------------------------------------------------------------- tmux


class Pane:
    def __init__(self, socket: str, env: dict[str, str], size: tuple[int, int]) -> None:
        self.socket, self.env, self.size = socket, env, size

    def tmux(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=check,
        )
        return result.stdout

    def start(self, command: str) -> float:
        w, h = self.size
        t0 = time.perf_counter()
        self.tmux("new-session", "-d", "-s", "b", "-x", str(w), "-y", str(h), f"exec {command}")
        return t0

    def capture(self, *, attributes: bool = False) -> str:
        flags = ("-p", "-e") if attributes else ("-p",)
        return self.tmux("capture-pane", *flags, "-t", "b", check=False)

    def until(
        self, condition: Callable[[str], bool], timeout: float = 60.0, *, attributes: bool = False
    ) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if condition(self.capture(attributes=attributes)):
                return time.perf_counter()
            time.sleep(POLL_GAP)
        raise TimeoutError(f"pane never matched; it shows:\n{self.capture()}")

    def key(self, key: str) -> float:
        t0 = time.perf_counter()
        self.tmux("send-keys", "-t", "b", key)
        return t0

    def pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", "b", "#{pane_pid}").strip())

    def alive(self) -> bool:
        return (
            subprocess.run(
                ["tmux", "-L", self.socket, "has-session", "-t", "b"],
                capture_output=True,
                env=self.env,
            ).returncode
            == 0
        )

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
        tmpdir = os.environ.get("TMUX_TMPDIR", "/tmp")
        Path(tmpdir, f"tmux-{os.getuid()}", self.socket).unlink(missing_ok=True)


def peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def session(
    pane: Pane,
    command: str,
    figures: Figures,
    *,
    opened: Callable[[str], bool],
    back_keys: tuple[str, ...],
    quit_keys: tuple[str, ...],
    pages: int,
    opens: int,
) -> None:
    """One launch: first paint, page-downs, message opens, peak memory, quit."""
    t0 = pane.start(command)
    t1 = pane.until(lambda s: FOLDER_SUBJECT[:30] in s)
    figures.first_paint.append(t1 - t0)
    time.sleep(1.0)  # let background work (the worker's first rescan) settle
    for _ in range(pages):
        before = pane.capture(attributes=True)
        t0 = pane.key("PageDown")
        t1 = pane.until(lambda s, b=before: s != b, attributes=True)  # type: ignore[misc]
        figures.page_down.append(t1 - t0)
        time.sleep(0.05)
    for _ in range(opens):
        pane.key("Down")
        time.sleep(0.1)
        t0 = pane.key("Enter")
        t1 = pane.until(opened)
        figures.open_message.append(t1 - t0)
        time.sleep(0.1)
        for key in back_keys:
            pane.key(key)
        pane.until(lambda s: not opened(s))
        time.sleep(0.1)
    figures.peak_mb.append(peak_mb(pane.pid()))
    for key in quit_keys:
        pane.key(key)
    deadline = time.monotonic() + 10
    while pane.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    pane.kill()


def compile_bytecode() -> None:
    """Compile tui_mail to .pyc as an installed wheel has it (see the docstring)."""
    import compileall

    import tui_mail

    for root in {Path(p).resolve() for p in tui_mail.__path__}:
        compileall.compile_dir(root, quiet=1)
    try:
        import tui_mail.backends as backends
    except ImportError:
        return
    for root in {Path(p).resolve() for p in backends.__path__}:
        compileall.compile_dir(root, quiet=1)


def med(values: list[float], scale: float = 1000.0) -> str:
    return f"{statistics.median(values) * scale:7.1f}" if values else "    n/a"


def p95(values: list[float], scale: float = 1000.0) -> str:
    if not values:
        return "    n/a"
    ordered = sorted(values)
    return f"{ordered[max(0, int(len(ordered) * 0.95) - 1)] * scale:7.1f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--opens", type=int, default=5)
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--reuse", metavar="DIR", help="a work folder kept by --keep: measure again")
    ap.add_argument("--no-peer", action="store_true", help="measure tui-mail only")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        print("needs tmux (apt-get install tmux)", file=sys.stderr)
        return 2
    script = Path(sys.executable).parent / "tui-mail"
    neomutt = None if args.no_peer else shutil.which("neomutt")
    w, h = (int(x) for x in args.size.split("x"))
    compile_bytecode()

    reuse = Path(args.reuse) if args.reuse else None
    if reuse is not None and not (reuse / "Maildir" / "cur").is_dir():
        print(f"{reuse}: not a work folder kept by --keep", file=sys.stderr)
        return 2
    work = reuse or Path(tempfile.mkdtemp(prefix="tui-mail-bench-", dir=args.dir))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    for name in ("config", "data", "state", "cache"):
        (work / name).mkdir(exist_ok=True)
        env[f"XDG_{name.upper()}_HOME"] = os.environ[f"XDG_{name.upper()}_HOME"] = str(work / name)
    env.update(TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env.pop("TUI_MAIL_CONFIG", None)
    maildir = work / "Maildir"
    config = work / "config" / "tui-mail" / "config.toml"
    try:
        if reuse is None:
            t0 = time.perf_counter()
            build_maildir(maildir, args.messages)
            print(f"generated {args.messages:,} messages in {time.perf_counter() - t0:.1f} s")
            print(f"indexed them (tui_mail store rescan) in {index_maildir(maildir):.1f} s")
        else:
            args.messages = sum(1 for _ in (maildir / "cur").iterdir())
            print(f"reusing {work} ({args.messages:,} messages)")
        write_config(config, maildir)
        muttrc = work / "muttrc"
        write_muttrc(muttrc, work / "hcache", maildir)

        ours, theirs = Figures(), Figures()
        pane = Pane(f"tui-mail-bench-{os.getpid()}", env, (w, h))
        our_cmd = f"{script} --config {config}"
        their_cmd = f"{neomutt} -n -F {muttrc} -f {maildir}" if neomutt else ""
        if neomutt:  # warm the header cache once, untimed
            session(
                pane, their_cmd, Figures(), opened=_mutt_opened, back_keys=("q",),
                quit_keys=("q",), pages=0, opens=0,
            )  # fmt: skip
        for run in range(args.runs):
            session(
                pane, our_cmd, ours, opened=_ours_opened, back_keys=("Escape",),
                quit_keys=("q",), pages=args.pages, opens=args.opens,
            )  # fmt: skip
            if neomutt:
                session(
                    pane, their_cmd, theirs, opened=_mutt_opened, back_keys=("q",),
                    quit_keys=("q",), pages=args.pages, opens=args.opens,
                )  # fmt: skip
            print(f"run {run + 1}/{args.runs} done", flush=True)

        print()
        print(f"{args.messages:,} messages, one folder, tmux {w}x{h}, {args.runs} launches each")
        print(f"{'':28}{'tui-mail':>12}{'neomutt':>12}{'ratio':>8}")
        rows = [
            ("first paint (ms, median)", ours.first_paint, theirs.first_paint, med),
            ("page-down (ms, median)", ours.page_down, theirs.page_down, med),
            ("page-down (ms, p95)", ours.page_down, theirs.page_down, p95),
            ("open message (ms, median)", ours.open_message, theirs.open_message, med),
        ]
        for label, a, b, fn in rows:
            ratio = ""
            if a and b:
                ratio = f"{float(fn(a)) / float(fn(b)):8.2f}"
            print(f"{label:28}{fn(a):>12}{fn(b) if b else 'n/a':>12}{ratio}")
        ours_mb = max(ours.peak_mb) if ours.peak_mb else float("nan")
        theirs_mb = max(theirs.peak_mb) if theirs.peak_mb else float("nan")
        ratio = f"{ours_mb / theirs_mb:8.2f}" if theirs.peak_mb else ""
        print(f"{'peak memory (MB, max)':28}{ours_mb:12.1f}{theirs_mb:12.1f}{ratio}")
        print()
        fp, pd = statistics.median(ours.first_paint), sorted(ours.page_down)
        print(
            "targets: first paint < 500 ms: "
            + ("met" if fp < 0.5 else "MISSED")
            + "; page-down p95 < 50 ms: "
            + ("met" if pd and pd[max(0, int(len(pd) * 0.95) - 1)] < 0.05 else "MISSED")
            + "; peak memory < 200 MB: "
            + ("met" if ours_mb < 200 else "MISSED")
        )
        if not neomutt and not args.no_peer:
            print("neomutt not installed (apt-get install -y neomutt): no comparison")
    finally:
        Pane(f"tui-mail-bench-{os.getpid()}", env, (w, h)).kill()  # after an error, too
        if args.keep or reuse is not None:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _ours_opened(screen: str) -> bool:
    return "From:" in screen and "Subject:" in screen


def _mutt_opened(screen: str) -> bool:
    return "From:" in screen and "Subject:" in screen and "Date:" in screen


if __name__ == "__main__":
    raise SystemExit(main())
