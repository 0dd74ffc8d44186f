"""Turn `password_command` / `oauth_token_command` into the secret they print.

Secrets are never logged and never put into an error message: a failing
command is reported by its exit status and the first line of its stderr.
"""

from __future__ import annotations

import subprocess

from tui_mail.config.schema import EndpointConfig
from tui_mail.core.errors import ConfigError
from tui_mail.core.redact import remember

COMMAND_TIMEOUT = 30.0  # seconds; long enough for a GPG pinentry prompt
_STDERR_LIMIT = 200


def resolve_password(ep: EndpointConfig) -> str:
    """The password of `ep`: the output of `password_command`, else `password`."""
    # remember(): should a bug ever put the secret into a message, logs, crash reports
    # and error lines print "[redacted]" instead (tui_mail/core/redact.py).
    if ep.password_command:
        return remember(run_secret_command(ep.password_command, f"{ep.key_path}.password_command"))
    if ep.password is not None:
        return remember(ep.password)
    raise ConfigError(
        "no password configured; set password_command (for example "
        '"pass show mail/work") or password',
        key=ep.key_path or None,
    )


def resolve_oauth_token(ep: EndpointConfig) -> str:
    """The OAuth2 access token printed by `oauth_token_command`."""
    if ep.oauth_token_command:
        return remember(
            run_secret_command(ep.oauth_token_command, f"{ep.key_path}.oauth_token_command")
        )
    raise ConfigError("no oauth_token_command configured", key=ep.key_path or None)


def run_secret_command(command: str, key: str) -> str:
    """Run the user's shell `command`; return its stdout minus one trailing newline."""
    try:
        done = subprocess.run(  # shell=True: the user wrote this command in their own config
            command,
            shell=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"the command did not finish within {COMMAND_TIMEOUT:g} seconds", key=key
        ) from None
    except OSError as exc:
        raise ConfigError(f"the command could not be started: {exc.strerror}", key=key) from None
    if done.returncode != 0:
        raise ConfigError(
            f"the command failed (exit status {done.returncode}){_first_line(done.stderr)}",
            key=key,
        )
    return _secret_from(done.stdout, key)


def _secret_from(stdout: bytes, key: str) -> str:
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("the command printed something that is not UTF-8", key=key) from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise ConfigError("the command succeeded but printed nothing", key=key)
    return text


def _first_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    if not lines:
        return ""
    line = lines[0].strip()
    if len(line) > _STDERR_LIMIT:
        line = line[: _STDERR_LIMIT - 3] + "..."
    return f": {line}"
