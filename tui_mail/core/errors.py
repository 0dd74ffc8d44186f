"""The errors that cross the boundary. Each one carries a message fit for a user."""

from __future__ import annotations


class MailError(Exception):
    """Base class: `str(err)` is shown to the user as it is."""


class ConfigError(MailError):
    """A bad config file; names the file, the key path and the line."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = file
        self.key = key
        self.line = line
        self.detail = message
        where = []
        if file:
            where.append(file if line is None else f"{file}:{line}")
        if key:
            where.append(key)
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class ConnectError(MailError):
    """The server could not be reached or the link dropped: retry with backoff."""

    retryable = True


class TLSError(MailError):
    """Certificate or TLS negotiation failed. Never retried in plaintext."""

    retryable = False


class AuthError(MailError):
    """Wrong credentials: retrying the same password will not help."""

    retryable = False


class ProtocolError(MailError):
    """The server said something we cannot accept (malformed or oversized)."""

    retryable = True


class Unsupported(MailError):
    """The backend lacks the capability for this command."""

    retryable = False


class StoreError(MailError):
    """The local store could not be read or written."""
