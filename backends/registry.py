"""Backends found by name through the `tui_mail.backends` entry-point group.

Built-ins register the same way a third-party package would, so the config
error for an unknown name can list everything that is installed.
"""

from __future__ import annotations

from functools import cache

from tui_mail.backends.base import (
    BackendContext,
    MailBackend,
    ReceiveBackend,
    SendBackend,
)
from tui_mail.core.errors import ConfigError

GROUP = "tui_mail.backends"

# Used when the package metadata is missing (running from a bare checkout):
# the same table pyproject.toml declares.
_BUILTIN = {
    "maildir": "tui_mail.backends.maildir.backend:MaildirReceiveBackend",
    "local": "tui_mail.backends.local.backend:LocalSendBackend",
    "imap": "tui_mail.backends.imap.backend:ImapReceiveBackend",
    "pop3": "tui_mail.backends.pop3.backend:Pop3ReceiveBackend",
    "smtp": "tui_mail.backends.smtp.backend:SmtpSendBackend",
}

# Roles of the built-ins, known without importing them (an import may be slow).
_BUILTIN_ROLES = {
    "maildir": "receive",
    "imap": "receive",
    "pop3": "receive",
    "local": "send",
    "smtp": "send",
}


@cache
def _entry_points() -> dict[str, str]:
    # Imported here: importlib.metadata and the scan of every installed package's
    # metadata cost ~10 ms, paid only when a name is not a built-in.
    from importlib.metadata import entry_points

    found = dict(_BUILTIN)
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep.value
    return found


def _import(target: str) -> type[MailBackend]:
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    cls = getattr(module, attr)
    if not (isinstance(cls, type) and issubclass(cls, MailBackend)):
        raise TypeError(f"{target} is not a MailBackend")
    return cls


def available_backends(role: str) -> list[str]:
    """Names usable for `role` ("receive" or "send"), sorted.

    Built-ins are listed from the table without importing them, so a config
    check stays fast; third-party entry points are imported to learn roles.
    """
    names = {n for n, r in _BUILTIN_ROLES.items() if r == role}
    for name, target in _entry_points().items():
        if name in _BUILTIN_ROLES:
            continue
        try:
            cls = _import(target)
        except (ImportError, AttributeError, TypeError):
            continue
        if role in cls.roles:
            names.add(name)
    return sorted(names)


def backend_class(name: str, role: str) -> type[MailBackend]:
    """The class registered as `name`; a built-in name always means the built-in."""
    target = _BUILTIN.get(name) or _entry_points().get(name)
    if target is None:
        raise ConfigError(f"unknown {role} backend {name!r}; known: {_known(role)}")
    try:
        cls = _import(target)
    except (ImportError, AttributeError, TypeError) as exc:
        raise ConfigError(
            f"{role} backend {name!r} cannot be loaded ({exc}); known: {_known(role)}"
        ) from exc
    if role not in cls.roles:
        raise ConfigError(f"backend {name!r} cannot {role} mail; known: {_known(role)}")
    return cls


def _known(role: str) -> str:
    return ", ".join(available_backends(role))


def make_receive(ctx: BackendContext) -> ReceiveBackend:
    cls = backend_class(ctx.endpoint.backend, "receive")
    backend = cls(ctx)
    assert isinstance(backend, ReceiveBackend)
    return backend


def make_send(ctx: BackendContext) -> SendBackend:
    cls = backend_class(ctx.endpoint.backend, "send")
    backend = cls(ctx)
    assert isinstance(backend, SendBackend)
    return backend
