"""tui_mail.core.redact: the second line of defence that keeps secrets out of the log
file, crash reports and internal-error lines when a bug formats one into a message."""

from __future__ import annotations

import base64
import logging
import uuid
from pathlib import Path

import pytest

from tui_mail.config.schema import EndpointConfig
from tui_mail.config.secrets import resolve_oauth_token, resolve_password
from tui_mail.core.redact import REDACTED, RedactingFormatter, redact, remember
from tui_mail.crash import write_crash_report


def test_every_form_of_a_remembered_secret_is_redacted() -> None:
    secret = remember(f"pä'ss-{uuid.uuid4().hex}")
    b64 = base64.b64encode(secret.encode()).decode()
    text = f"a {secret} b {secret!r} c {b64} d"
    out = redact(text)
    assert secret not in out and repr(secret)[1:-1] not in out and b64 not in out
    assert out.count(REDACTED) == 3


def test_short_values_are_not_treated_as_secrets() -> None:
    remember("abc")
    assert redact("abc abcd") == "abc abcd"


def test_secrets_resolved_from_the_config_are_remembered(tmp_path: Path) -> None:
    token, password = f"tok-{uuid.uuid4().hex}", f"pw-{uuid.uuid4().hex}"
    (tmp_path / "t").write_text(token + "\n")
    resolve_oauth_token(EndpointConfig(backend="imap", oauth_token_command=f"cat {tmp_path}/t"))
    resolve_password(EndpointConfig(backend="imap", password=password))
    assert redact(f"{token} {password}") == f"{REDACTED} {REDACTED}"


def test_the_log_formatter_redacts_messages_arguments_and_tracebacks() -> None:
    secret = remember(f"pw-{uuid.uuid4().hex}")
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "login with %r", (secret,), None)
    try:
        raise RuntimeError(f"bug holding {secret}")
    except RuntimeError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    out = RedactingFormatter(logging.BASIC_FORMAT).format(record)
    assert secret not in out and "RuntimeError: bug holding [redacted]" in out


def test_crash_reports_are_redacted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    secret = remember(f"pw-{uuid.uuid4().hex}")
    try:
        raise ValueError(secret)
    except ValueError as exc:
        where = write_crash_report(exc)
    assert isinstance(where, Path)
    text = where.read_text()
    assert secret not in text and "ValueError: [redacted]" in text
