"""Passwords and tokens never appear in logs, tracebacks, crash reports, the index, the
terminal or the process list.

`tui-mail sync` / `tui-mail send` run as a user runs them, against the REAL Dovecot and
Postfix, with every logger at DEBUG (TUI_MAIL_DEBUG), in the ways that write the most:
a wrong password, an unreachable server, OAuth tokens a server does not take, and
internal errors whose exception text carries the secret (a bug we simulate with a
``sitecustomize`` in the child: the one thing the real program cannot be made to do).
Afterwards every byte under the state and data directories, stdout and stderr is
searched for the secret. The process list is watched while the client and its
``password_command`` child run.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from servers.harness import Mailstack, reset_user_mail

from hostile.mitm import Mitm, assert_one_clear_line, run_cli, write_config

pytestmark = pytest.mark.servers

# Every logger we have, plus the libraries', at DEBUG: the most a user can make us write.
DEBUG_ALL = {"TUI_MAIL_DEBUG": "tui_mail,asyncio,aiosmtplib"}
USER = {"imap": "alice", "pop3": "bob", "smtp": "alice"}


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    for user in ("alice", "bob"):
        reset_user_mail(mailstack, user)
    yield mailstack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def secret_command(tmp_path: Path, secret: str, name: str = "secret", delay: float = 0) -> str:
    """A password_command that prints `secret` from a file (so it is not in its argv)."""
    path = tmp_path / name
    path.write_text(secret)
    path.chmod(0o600)
    return f"sleep {delay}; cat {path}" if delay else f"cat {path}"


def config_for(
    tmp_path: Path,
    ms: Mailstack,
    protocol: str,
    *,
    port: int | None = None,
    password_command: str | None = None,
    oauth_token_command: str | None = None,
    security: str = "tls",
    timeout: float = 5,
) -> Path:
    user = USER[protocol]
    default_port = {"imap": ms.imaps_port, "pop3": ms.pop3s_port, "smtp": ms.submissions_port}
    remote: dict[str, object] = {
        "backend": protocol,
        "host": "localhost",
        "port": port or default_port[protocol],
        "security": security,
        "user": user,
        "ca_file": str(ms.ca_file),
        "timeout": timeout,
    }
    if oauth_token_command:
        remote["oauth_token_command"] = oauth_token_command
    else:
        remote["password_command"] = password_command
    local = (
        {"backend": "maildir", "path": str(tmp_path / "Maildir")}
        if protocol == "smtp"
        else {"backend": "local", "path": str(tmp_path / "sent")}
    )
    return write_config(
        tmp_path / "config.toml",
        user,
        f"{user}@localhost",
        local if protocol == "smtp" else remote,
        remote if protocol == "smtp" else local,
    )


def run(
    config: Path, protocol: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if protocol == "smtp":
        raw = b"From: alice@localhost\r\nTo: bob@localhost\r\nSubject: s\r\n\r\nhello\r\n"
        return run_cli(config, "send", stdin=raw, env={**DEBUG_ALL, **(env or {})})
    return run_cli(config, "sync", env={**DEBUG_ALL, **(env or {})})


def forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode()]


def assert_secret_nowhere(
    secret: str, result: subprocess.CompletedProcess[str], dirs: SimpleNamespace
) -> list[Path]:
    """Not on the terminal, not in any file the run left (log, crash reports, index,
    outbox, Maildir); returns the files searched, for the caller to check they exist."""
    searched: list[Path] = []
    for label, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        assert secret not in text, f"{label}: {text!r}"
    for root in (Path(dirs.state), Path(os.environ["XDG_DATA_HOME"])):
        for path in root.rglob("*"):
            if path.is_file():
                searched.append(path)
                data = path.read_bytes()
                for form in forms(secret):
                    assert form not in data, f"{form!r} is in {path}"
    return searched


def state_files(dirs: SimpleNamespace, pattern: str) -> list[Path]:
    return sorted(Path(dirs.state).rglob(pattern))


# ---------------------------------------------------------------- failures that log


@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
def test_a_wrong_password_is_not_written_anywhere(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace, protocol: str
) -> None:
    wrong = f"wrong-Pw-{uuid.uuid4().hex}"
    # Postfix answers a failed AUTH only after ~5 s (Dovecot's auth failure delay).
    config = config_for(
        tmp_path, ms, protocol, password_command=secret_command(tmp_path, wrong), timeout=15
    )
    result = run(config, protocol)
    assert_one_clear_line(result, "refused")
    searched = assert_secret_nowhere(wrong, result, isolated_dirs)
    assert any(p.name == "tui-mail.log" for p in searched)


@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
def test_an_unreachable_server_writes_no_password(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace, protocol: str
) -> None:
    password = ms.users[USER[protocol]]
    config = config_for(
        tmp_path,
        ms,
        protocol,
        port=free_port(),
        password_command=secret_command(tmp_path, password),
    )
    result = run(config, protocol)
    assert "Traceback" not in result.stderr
    assert result.returncode == (75 if protocol == "smtp" else 1), result.stderr
    assert "refused" in result.stderr.lower()  # the connection was
    assert_secret_nowhere(password, result, isolated_dirs)


@pytest.mark.parametrize("protocol", ["imap", "smtp"])
def test_an_oauth_token_the_server_cannot_take_is_not_written_anywhere(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace, protocol: str
) -> None:
    """The harness servers offer no XOAUTH2: the token is fetched, then refused."""
    token = f"ya29.tok-{uuid.uuid4().hex}"
    command = secret_command(tmp_path, token, "token")
    config = config_for(tmp_path, ms, protocol, oauth_token_command=command)
    result = run(config, protocol)
    assert_one_clear_line(result, "XOAUTH2")
    assert_secret_nowhere(token, result, isolated_dirs)


# ---------------------------------------------------------------- internal errors

# Simulated bugs whose exception text carries the secret: the worst a real bug can do.
SITECUSTOMIZE = textwrap.dedent(
    """
    import os

    where = os.environ.get("HOSTILE_BUG")
    if where == "imap-login":
        from tui_mail.backends.imap import client

        async def _login(self, password, oauth_token):
            raise RuntimeError(f"simulated bug while logging in with {password()!r}")

        client.ImapConnection._login = _login
    elif where == "smtp-login":
        from tui_mail.backends.smtp import backend

        async def _login(self, client, user, secret):
            raise KeyError(secret)

        backend.SmtpSendBackend._login = _login
    elif where == "top-level":
        from tui_mail import cli
        from tui_mail.config import secrets

        def _run_sync(args):
            config = cli._load(args)
            endpoint = next(iter(config.accounts.values())).receive
            raise ValueError(f"simulated bug: {secrets.resolve_password(endpoint)}")

        cli._run_sync = _run_sync
    """
)


@pytest.fixture
def buggy(tmp_path: Path) -> dict[str, str]:
    d = tmp_path / "site"
    d.mkdir()
    (d / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(d), os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize("bug, protocol", [("imap-login", "imap"), ("smtp-login", "smtp")])
def test_an_internal_error_carrying_the_password_is_redacted(
    ms: Mailstack,
    tmp_path: Path,
    isolated_dirs: SimpleNamespace,
    buggy: dict[str, str],
    bug: str,
    protocol: str,
) -> None:
    """A bug inside a command: the worker logs the traceback and reports the error."""
    password = ms.users[USER[protocol]]
    config = config_for(tmp_path, ms, protocol, password_command=secret_command(tmp_path, password))
    result = run(config, protocol, env={**buggy, "HOSTILE_BUG": bug})
    assert "Traceback" not in result.stderr
    assert result.returncode != 0 and result.stderr.strip(), result
    log = (Path(isolated_dirs.state) / "tui-mail" / "tui-mail.log").read_text()
    assert "simulated bug" in log or "KeyError" in log, "the simulated bug did not run"
    assert "[redacted]" in log  # logged, with the secret taken out
    assert_secret_nowhere(password, result, isolated_dirs)


def test_a_crash_report_carrying_the_password_is_redacted(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace, buggy: dict[str, str]
) -> None:
    """A bug that escapes to the top: exit 70, one line, the details in a crash file."""
    password = ms.users["alice"]
    config = config_for(tmp_path, ms, "imap", password_command=secret_command(tmp_path, password))
    result = run(config, "imap", env={**buggy, "HOSTILE_BUG": "top-level"})
    assert result.returncode == 70, result.stderr
    assert "internal error" in result.stderr and "Traceback" not in result.stderr
    (crash,) = state_files(isolated_dirs, "crash-*.txt")
    text = crash.read_text()
    assert "ValueError: simulated bug: [redacted]" in text, text
    assert_secret_nowhere(password, result, isolated_dirs)


# ---------------------------------------------------------------- the process list


def test_the_process_list_never_shows_the_password(
    ms: Mailstack, tmp_path: Path, isolated_dirs: SimpleNamespace
) -> None:
    """Every process's command line, sampled while `tui-mail sync` runs: the client,
    the shell of its password_command and that command's children."""
    password = ms.users["alice"]
    command = secret_command(tmp_path, password, delay=0.5)
    # A server that says OK to STARTTLS and then stalls keeps the client alive with the
    # password in memory for the whole timeout.
    with Mitm("imap", (ms.host, ms.imap_port), "fake-ok") as mitm:
        config = config_for(
            tmp_path,
            ms,
            "imap",
            port=mitm.port,
            password_command=command,
            security="starttls",
            timeout=2,
        )
        child = subprocess.Popen(
            [sys.executable, "-m", "tui_mail", "--config", str(config), "sync"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen_command = seen_client = False
        samples = 0
        while child.poll() is None:
            for cmdline in _cmdlines():
                assert password.encode() not in cmdline, cmdline
                seen_command |= b"sleep 0.5; cat " in cmdline
                seen_client |= b"tui_mail" in cmdline and str(config).encode() in cmdline
            samples += 1
            time.sleep(0.02)
        out, err = child.communicate(timeout=30)
        mitm.wait_closed()
    assert seen_command and seen_client, f"the sampling missed the processes ({samples})"
    assert child.returncode == 1 and "STARTTLS" in err, err
    assert password not in out + err


def _cmdlines() -> Iterator[bytes]:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                yield (proc / "cmdline").read_bytes()
            except OSError:
                continue  # the process ended meanwhile
