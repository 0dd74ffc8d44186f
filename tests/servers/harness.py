"""Python side of the real-mail-server harness (tests/servers/mailstack.sh).

The shell script does the work (packages, TLS, configs, Dovecot + Postfix); this
module starts/stops it and turns ``DIR/mailstack.env`` into a :class:`Mailstack`.
Everything listens on 127.0.0.1 only. Starting needs root (Dovecot/Postfix run as
their own system users), and DIR's parent folders must be world-traversable, so use
``tempfile.mkdtemp(dir="/dev/shm")``, never pytest's ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAILSTACK_SH = Path(__file__).with_name("mailstack.sh")

# Default ports before MAILSTACK_PORT_OFFSET; keep in sync with mailstack.sh.
BASE_PORTS = (10143, 10993, 10110, 10995, 10024, 10025, 10587, 10465)


class MailstackError(RuntimeError):
    """The stack could not be started/stopped; the message carries the script's output."""


@dataclass(frozen=True)
class Mailstack:
    """A running stack, as described by DIR/mailstack.env."""

    dir: Path
    host: str
    imap_port: int  # plain + STARTTLS
    imaps_port: int  # implicit TLS
    pop3_port: int  # plain + STLS
    pop3s_port: int  # implicit TLS
    lmtp_port: int  # direct delivery into Dovecot, no Postfix
    smtp_port: int  # MX role: no AUTH, local recipients only (+ catch-all from 127/8)
    submission_port: int  # STARTTLS required, AUTH only after TLS
    submissions_port: int  # implicit TLS + AUTH
    ca_file: Path
    users: dict[str, str]  # user -> password
    env: dict[str, str] = field(default_factory=dict, repr=False)  # raw mailstack.env

    @property
    def doveconf(self) -> Path:
        return self.dir / "etc" / "dovecot.conf"

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the stack's private CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def doveadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``doveadm -c DIR/etc/dovecot.conf ARGS...`` against this stack."""
        return subprocess.run(
            ["doveadm", "-c", str(self.doveconf), *args],
            check=check,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )


def parse_env_file(path: Path) -> dict[str, str]:
    """Parse the shell-sourceable KEY=value lines of mailstack.env."""
    env: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^([A-Z0-9_]+)=(.*)$", line.strip())
        if m:
            value = m.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            env[m.group(1)] = value
    return env


def read_env(dir: str | os.PathLike[str]) -> Mailstack:
    """Read DIR/mailstack.env (written by ``mailstack.sh start``) into a Mailstack."""
    d = Path(dir)
    env = parse_env_file(d / "mailstack.env")

    def port(name: str) -> int:
        return int(env[f"MAILSTACK_{name}_PORT"])

    users = dict(u.split(":", 1) for u in env["MAILSTACK_USERS"].split())
    return Mailstack(
        dir=d,
        host=env["MAILSTACK_HOST"],
        imap_port=port("IMAP"),
        imaps_port=port("IMAPS"),
        pop3_port=port("POP3"),
        pop3s_port=port("POP3S"),
        lmtp_port=port("LMTP"),
        smtp_port=port("SMTP"),
        submission_port=port("SUBMISSION"),
        submissions_port=port("SUBMISSIONS"),
        ca_file=Path(env["MAILSTACK_CA_FILE"]),
        users=users,
        env=env,
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port_offset() -> int:
    """MAILSTACK_PORT_OFFSET if set, else the first multiple of 1000 whose ports are all free
    (so a developer's long-running stack on the default ports does not break the tests)."""
    if os.environ.get("MAILSTACK_PORT_OFFSET"):
        return int(os.environ["MAILSTACK_PORT_OFFSET"])
    for off in range(0, 50000, 1000):
        if all(_port_free(p + off) for p in BASE_PORTS):
            return off
    raise MailstackError("no free block of mailstack ports found")


def _run_script(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    try:
        proc = subprocess.run(
            ["bash", str(MAILSTACK_SH), *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise MailstackError(f"mailstack.sh {' '.join(args)} timed out after {timeout}s") from e
    if proc.returncode != 0:
        raise MailstackError(
            f"mailstack.sh {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def start_mailstack(dir: str | os.PathLike[str], port_offset: int | None = None) -> Mailstack:
    """Start (or reload) the stack in DIR and return it. Installs the Debian packages
    first if they are missing (root only). The port offset only matters for a new DIR."""
    env = dict(os.environ)
    if not (Path(dir) / "mailstack.env").exists():
        env["MAILSTACK_PORT_OFFSET"] = str(
            pick_port_offset() if port_offset is None else port_offset
        )
    _run_script("start", str(dir), env=env)
    return read_env(dir)


def stop_mailstack(dir: str | os.PathLike[str]) -> None:
    """Stop the servers started from DIR (no-op if they are not running). Keeps DIR."""
    _run_script("stop", str(dir), timeout=120)


def mailstack_running(dir: str | os.PathLike[str]) -> bool:
    """True if ``mailstack.sh status DIR`` reports every server up."""
    try:
        _run_script("status", str(dir), timeout=30)
    except MailstackError:
        return False
    return True


def deliver_lmtp(
    ms: Mailstack, rcpt: str, raw_bytes: bytes, mail_from: str = "sender@example.test"
) -> None:
    """Deliver one raw RFC 5322 message straight into Dovecot over LMTP (TCP), bypassing
    Postfix: fast, no queue, no Received/Return-Path from Postfix. ``rcpt`` may be a bare
    user ("bob") or an address. Bare LF line endings are converted to CRLF. When this
    returns the message is stored (LMTP answers after the mailbox write)."""
    if "@" not in rcpt:
        rcpt = f"{rcpt}@localhost"
    data = re.sub(rb"\r?\n", b"\r\n", raw_bytes)
    with smtplib.LMTP(ms.host, ms.lmtp_port, timeout=30) as lmtp:
        refused = lmtp.sendmail(mail_from, [rcpt], data)
    if refused:
        raise MailstackError(f"LMTP refused {rcpt}: {refused}")


def reset_user_mail(ms: Mailstack, user: str) -> None:
    """Give ``user`` a brand-new, empty mail store: kick the user's IMAP/POP3 sessions,
    then delete the whole home (DIR/mail/USER: all mailboxes, messages, indexes and
    subscriptions). Dovecot recreates it at the next login or delivery with an empty
    INBOX and the auto-subscribed special-use folders. Takes ~20-40 ms. UIDVALIDITY is
    derived from the clock, so two resets within one second may give the same value.
    Do not call it while a delivery to the user may still be in flight in Postfix."""
    if user not in ms.users:
        raise ValueError(f"unknown mailstack user {user!r}")
    ms.doveadm("kick", user, check=False)  # exit 68 ("no users kicked") is fine
    deadline = time.monotonic() + 5
    while user in ms.doveadm("who", user, check=False).stdout.split():
        if time.monotonic() > deadline:
            raise MailstackError(f"sessions of {user} did not end after doveadm kick")
        time.sleep(0.02)
    shutil.rmtree(ms.dir / "mail" / user, ignore_errors=True)


_USER_RE = re.compile(r"[a-z0-9._-]+")
_PASSWORD_RE = re.compile(r"[A-Za-z0-9._+-]+")


def add_user(ms: Mailstack, user: str, password: str) -> None:
    """Give the running stack one more mail user (IMAP/POP3 login, LMTP delivery).

    Dovecot re-reads its passwd-file when it changes, so the user can log in at
    once; MAILSTACK_USERS in mailstack.env is updated too, so a later `start` of
    the same DIR (which re-renders the users) keeps it and makes it a Postfix
    recipient as well. Adding a user that exists with the same password is a no-op.
    """
    if ms.users.get(user) == password:
        return
    if user in ms.users:
        raise ValueError(f"mailstack user {user!r} exists with another password")
    if not _USER_RE.fullmatch(user) or not _PASSWORD_RE.fullmatch(password):
        raise ValueError(f"bad mailstack user or password: {user!r}")
    with open(ms.dir / "etc" / "users", "a") as f:  # keeps root:dovecot 0640
        f.write(f"{user}:{{PLAIN}}{password}::::::\n")
    env_file = ms.dir / "mailstack.env"
    users = " ".join(f"{u}:{p}" for u, p in {**ms.users, user: password}.items())
    text = re.sub(
        r"(?m)^MAILSTACK_USERS=.*$", f'MAILSTACK_USERS="{users}"', env_file.read_text(), count=1
    )
    env_file.write_text(text)
    ms.users[user] = password
    ms.env["MAILSTACK_USERS"] = users
    # Dovecot notices a changed passwd-file at its next lookup, but looks at the
    # file at most about once a second: wait until it knows the user.
    deadline = time.monotonic() + 10
    while ms.doveadm("user", user, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise MailstackError(f"dovecot did not pick up the new user {user!r}")
        time.sleep(0.1)


def load_mail(ms: Mailstack, user: str, count: int, mailbox: str = "INBOX") -> None:
    """Bulk-load `count` synthetic messages into `user`'s `mailbox` (mailstack.sh load;
    see loadmail.py for what they look like)."""
    if user not in ms.users:
        raise ValueError(f"unknown mailstack user {user!r}")
    _run_script("load", str(ms.dir), user, str(count), mailbox, timeout=300)


# --------------------------------------------------------------------------- Dovecot faults


def dovecot_master(ms: Mailstack) -> int:
    return int((ms.dir / "run" / "dovecot" / "master.pid").read_text().split()[0])


def dovecot_running(ms: Mailstack) -> bool:
    try:
        return Path(f"/proc/{dovecot_master(ms)}").exists()
    except (OSError, ValueError):
        return False


def stop_dovecot(ms: Mailstack) -> None:
    """Stop this stack's Dovecot and end its sessions, as a crash or reboot would.

    `doveadm stop` alone leaves sessions of TLS clients running (their login
    process proxies TLS), so those children of this stack's master are ended
    by pid as well.
    """
    master = dovecot_master(ms)
    children = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{d}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                    children.append(int(d))
    ms.doveadm("stop")
    deadline = time.monotonic() + 15
    while Path(f"/proc/{master}").exists():
        if time.monotonic() > deadline:
            raise AssertionError("the dovecot master did not exit within 15 s")
        time.sleep(0.05)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def dovecot_restored(ms: Mailstack) -> Iterator[None]:
    """Whatever happens in the test, the shared stack is running again afterwards."""
    try:
        yield
    finally:
        if not dovecot_running(ms):
            start_mailstack(ms.dir)
