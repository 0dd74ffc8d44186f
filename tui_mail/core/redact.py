"""Keep secrets out of logs, crash reports and error lines, even when a bug puts them there.

Code never formats a password or token into a message on purpose (see
`tui_mail.config.secrets`). This is the second line: every secret the process
obtains is remembered here, and everything that leaves the process as text for a
person to read (the log file, crash reports, internal-error lines) passes through
`redact()`, which replaces any remembered secret, in the forms a traceback or a repr
would show it, with "[redacted]".
"""

from __future__ import annotations

import base64
import logging

REDACTED = "[redacted]"
# Shorter "secrets" would turn ordinary words of a message into [redacted]; a real
# password or token is longer than this.
_MIN_LENGTH = 4

_forms: set[str] = set()


def remember(secret: str) -> str:
    """Note `secret` for redaction; returns it unchanged."""
    if len(secret) >= _MIN_LENGTH:
        raw = secret.encode("utf-8", "surrogatepass")
        # As typed, as repr() escapes it (tracebacks, %r), and as SASL sends it.
        for form in (secret, repr(secret)[1:-1], base64.b64encode(raw).decode("ascii")):
            if len(form) >= _MIN_LENGTH:
                _forms.add(form)
    return secret


def redact(text: str) -> str:
    """`text` with every remembered secret replaced by "[redacted]"."""
    # tuple(): resolving runs in worker threads; the snapshot is taken under the GIL.
    for form in sorted(tuple(_forms), key=len, reverse=True):
        if form in text:
            text = text.replace(form, REDACTED)
    return text


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output (message, arguments, traceback) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
