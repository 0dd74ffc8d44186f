"""The client TLS context every backend uses: the system's trust plus an account's ca_file.

Certificates and host names are always verified (PROTOCOL_TLS_CLIENT sets
CERT_REQUIRED and check_hostname) and TLS 1.2 is the floor.

The system store is read lazily where the system keeps it as a hashed directory
(Debian's /etc/ssl/certs, kept by update-ca-certificates next to the bundle
file with the same certificates): OpenSSL then reads the one CA certificate a
handshake asks for. `ssl.create_default_context()` parses the whole bundle up
front, ~22 ms of CPU before every first connection (a `tui-mail sync` from
cron, the TUI's start) against ~1 ms. Where there is no hashed directory, or
SSL_CERT_FILE names a bundle other than the system's own, OpenSSL's defaults
are loaded as create_default_context loads them.
"""

from __future__ import annotations

import functools
import os
import re
import ssl
from pathlib import Path

from tui_mail.core.errors import ConfigError

_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")


@functools.cache
def _hashed_system_dir() -> str | None:
    """OpenSSL's default CA directory, if the lazy lookup can use it (looked at once)."""
    paths = ssl.get_default_verify_paths()
    chosen = os.environ.get(paths.openssl_cafile_env)
    if chosen and os.path.realpath(chosen) != os.path.realpath(paths.openssl_cafile):
        return None  # the user's own bundle: it may hold CAs the directory lacks
    if not paths.capath:
        return None
    try:
        with os.scandir(paths.capath) as entries:
            if any(_HASHED_NAME.fullmatch(e.name) for e in entries):
                return paths.capath
    except OSError:
        pass
    return None


def client_context(ca_file: Path | None = None, key: str | None = None) -> ssl.SSLContext:
    """A verifying client context; ConfigError (naming `key`) if ca_file cannot be loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname=True
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    capath = _hashed_system_dir()
    if capath is not None:
        ctx.load_verify_locations(capath=capath)
    else:
        ctx.load_default_certs()
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            why = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            raise ConfigError(
                f"cannot load the CA certificates in {ca_file}: {why}", key=key
            ) from None
    return ctx
