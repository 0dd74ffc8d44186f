"""Read config.toml into the records of `schema.py`.

Every bad input raises exactly one `ConfigError` that names the file, the
dotted key path, the line (when it can be found) and what was expected.
Tables are checked in file order and checking stops at the first error.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from tui_mail.config.schema import (
    DEFAULT_PORTS,
    AccountConfig,
    AppConfig,
    EndpointConfig,
    UiConfig,
)
from tui_mail.core.errors import ConfigError

KeyPath = tuple[str, ...]
Validator = Callable[["_Ctx", Any, KeyPath], Any]

FALLBACK_BACKENDS: dict[str, list[str]] = {
    "receive": ["imap", "maildir", "pop3"],
    "send": ["local", "smtp"],
}
NETWORK_BACKENDS = ("imap", "pop3", "smtp")
SECURITY_CHOICES = ("tls", "starttls", "none")
KEY_PRESETS = ("vim", "mutt")
LAYOUTS = ("auto", "beside", "below")
NOTIFY_CHOICES = ("off", "bell", "osc9", "osc777")
RESERVED_ACCOUNT_NAMES = frozenset({".", "..", "demo"})

_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_TOML_POS = re.compile(r"^(?P<msg>.*?) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")
_IMPLICIT_TLS_PORT = {"imap": 993, "pop3": 995, "smtp": 465}
_PLAINTEXT_PORTS = {"imap": (143,), "pop3": (110,), "smtp": (587, 25)}
_NO_ACCOUNTS_HINT = (
    "no accounts configured; add an [accounts.NAME] table "
    "(run `tui-mail config init` to write a commented template), "
    "or run `tui-mail demo` to try tui-mail on built-in sample mail"
)


def _known_backends(role: str) -> list[str]:
    """Backend names for `role` ("receive" or "send"): the registry's, or the built-ins."""
    try:
        from tui_mail.backends.registry import available_backends
    except ModuleNotFoundError as exc:
        if exc.name not in ("tui_mail.backends", "tui_mail.backends.registry"):
            raise
        return list(FALLBACK_BACKENDS[role])
    return sorted(available_backends(role))


# --------------------------------------------------------------------------- public API


def load_config(path: Path) -> AppConfig:
    """Read and validate the config file at `path`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            "no config file here; run `tui-mail config init` to write a commented "
            "template, or `tui-mail demo` to try tui-mail on built-in sample mail",
            file=str(path),
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", file=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            "the file is not valid UTF-8; save it as UTF-8", file=str(path), line=line
        ) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> AppConfig:
    """Validate TOML `text`; `path` is used for messages, relative paths and permissions."""
    ctx = _Ctx(path=path, text=text.removeprefix("\ufeff"))
    data = _decode(ctx)
    spec: dict[str, Validator] = {
        "accounts": _accounts,
        "ui": _ui,
        "keys": _keys,
        "searches": _searches,
    }
    values = _walk(ctx, data, (), spec)
    accounts: dict[str, AccountConfig] = values.get("accounts") or {}
    if not accounts:
        raise ctx.error(_NO_ACCOUNTS_HINT, ("accounts",))
    _check_permissions(ctx, accounts)
    return AppConfig(
        path=path,
        accounts=accounts,
        ui=values.get("ui", UiConfig()),
        key_overrides=values.get("keys", {}),
        searches=values.get("searches", {}),
        warnings=tuple(ctx.warnings),
    )


def summarize(cfg: AppConfig) -> str:
    """What `tui-mail config check` prints: one line per account, then warnings."""
    width = max((len(name) for name in cfg.accounts), default=0)
    lines = [
        f"{name:<{width}}  {acct.email}  receive: {_endpoint_summary(acct.receive)}"
        f"  send: {_endpoint_summary(acct.send)}"
        for name, acct in cfg.accounts.items()
    ]
    lines.extend(f"warning: {warning}" for warning in cfg.warnings)
    return "\n".join(lines)


def _endpoint_summary(ep: EndpointConfig) -> str:
    if ep.host:
        host = f"[{ep.host}]" if ":" in ep.host else ep.host
        return f"{ep.backend} {host}:{ep.port} {ep.security}"
    if ep.path:
        return f"{ep.backend} {ep.path}"
    return ep.backend


# --------------------------------------------------------------------------- context


class _Ctx:
    """One load's file, text and warnings (a working object, not a record)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        self.warnings: list[str] = []

    @cached_property
    def lines(self) -> dict[KeyPath, int]:
        found: dict[KeyPath, int] = {}
        for lineno, key, _is_header in _scan(self.text):
            for end in range(1, len(key) + 1):
                found.setdefault(key[:end], lineno)
        return found

    def error(self, message: str, key: KeyPath, line_of: KeyPath | None = None) -> ConfigError:
        """An error about `key`, located at the line of `line_of` (default: `key`)."""
        line = self.lines.get(key if line_of is None else line_of)
        return ConfigError(message, file=str(self.path), key=_dotted(key) or None, line=line)

    def resolve(self, raw: str) -> Path:
        """`~` expanded; relative paths are relative to the config file's directory."""
        p = Path(raw).expanduser()
        return p if p.is_absolute() else self.path.parent / p


def _dotted(key: KeyPath) -> str:
    return ".".join(p if _BARE_KEY.fullmatch(p) else json.dumps(p) for p in key)


def _decode(ctx: _Ctx) -> dict[str, Any]:
    try:
        return tomllib.loads(ctx.text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(ctx, str(exc)) from None


def _syntax_error(ctx: _Ctx, raw: str) -> ConfigError:
    m = _TOML_POS.match(raw)
    if not m:
        msg = raw.removesuffix(" (at end of document)")
        if msg == raw:
            return ConfigError(f"invalid TOML: {raw}", file=str(ctx.path))
        return ConfigError(
            f"invalid TOML: {msg} at the end of the file; is a string, array or table unclosed?",
            file=str(ctx.path),
            line=len(ctx.text.splitlines()) or None,
        )
    line, col = int(m["line"]), int(m["col"])
    source = ctx.text.splitlines()[line - 1] if line <= len(ctx.text.splitlines()) else ""
    message = f"invalid TOML: {m['msg']} at column {col}{_syntax_hint(m['msg'], source, col)}"
    key = _key_at_line(ctx.text, line)
    return ConfigError(message, file=str(ctx.path), key=_dotted(key) or None, line=line)


def _syntax_hint(msg: str, source: str, col: int) -> str:
    if msg == "Illegal character '\\n'":
        return "; a string is missing its closing quote"
    word = re.match(r"[A-Za-z][\w.@-]*", source[col - 1 :]) if col >= 1 else None
    if not word or "=" not in source[: col - 1]:
        return ""
    if word.group().lower() in ("true", "false", "yes", "no", "on", "off"):
        return "; booleans are written true or false (lowercase, no quotes)"
    return f'; text values need quotes, e.g. "{word.group()}"'


def _key_at_line(text: str, line: int) -> KeyPath:
    table: KeyPath = ()
    for lineno, key, is_header in _scan(text):
        if lineno > line:
            break
        if lineno == line:
            return key
        if is_header:
            table = key
    return table


# --------------------------------------------------------------------------- messages


def _describe(value: object, secret: bool = False) -> str:
    """'a string "abc"', 'an integer 5', 'a table', ... (never the value when secret)."""
    shown: str | None = None
    if isinstance(value, bool):
        kind, shown = "a boolean", str(value).lower()
    elif isinstance(value, int):
        kind, shown = "an integer", str(value)
    elif isinstance(value, float):
        kind, shown = "a float", str(value)
    elif isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        kind, shown = "a string", json.dumps(text, ensure_ascii=False)
    elif isinstance(value, list):
        kind = "an array"
    elif isinstance(value, dict):
        kind = "a table"
    else:
        kind, shown = "a date/time", str(value)
    return kind if secret or shown is None else f"{kind} {shown}"


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    import difflib  # only for a config with a mistake: not at every start

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _unknown_key(
    ctx: _Ctx, key: str, value: object, where: KeyPath, allowed: Sequence[str]
) -> ConfigError:
    message = f"unknown key '{key}'"
    hint = _did_you_mean(key, allowed)
    owners = [b for b, opts in _BACKEND_OPTIONS.items() if key in opts]
    if hint:
        message += hint
    elif owners and len(where) == 3 and where[0] == "accounts":
        message += f"; it is only allowed for the {' and '.join(owners)} backend"
    elif isinstance(value, dict) and len(where) == 2 and where[0] == "accounts":
        name = json.dumps(f"{where[1]}.{key}")
        message += f"; an account name containing a dot must be quoted: [accounts.{name}]"
    else:
        message += f"; expected one of: {', '.join(allowed)}"
    return ctx.error(message, (*where, key))


def _missing(ctx: _Ctx, key: str, where: KeyPath, what: str) -> ConfigError:
    return ctx.error(f"missing required key '{key}' ({what})", (*where, key), line_of=where)


# --------------------------------------------------------------------------- validators


def _walk(
    ctx: _Ctx,
    table: Mapping[str, Any],
    where: KeyPath,
    spec: Mapping[str, Validator],
    extra_ok: bool = False,
) -> dict[str, Any]:
    """Check `table` key by key in file order; unknown keys are errors unless `extra_ok`."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        check = spec.get(key)
        if check is None and not extra_ok:
            raise _unknown_key(ctx, key, value, where, list(spec))
        out[key] = value if check is None else check(ctx, value, (*where, key))
    return out


def _typed(expected: str, ok: Callable[[Any], bool], secret: bool = False) -> Validator:
    def check(ctx: _Ctx, value: Any, key: KeyPath) -> Any:
        if not ok(value):
            raise ctx.error(f"expected {expected}, got {_describe(value, secret)}", key)
        return value

    return check


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


_STR = _typed("a string", lambda v: isinstance(v, str))
_NONEMPTY = _typed("a non-empty string", lambda v: isinstance(v, str) and v.strip() != "")
_SECRET = _typed("a string", lambda v: isinstance(v, str), secret=True)
_BOOL = _typed("a boolean (true or false)", lambda v: isinstance(v, bool))
_STR_LIST = _typed("an array of strings", _is_str_list)
_PORT = _typed("an integer from 1 to 65535", lambda v: _is_int(v) and 1 <= v <= 65535)
_DAYS = _typed("an integer of 0 or more", lambda v: _is_int(v) and v >= 0)
_BYTES = _typed("a size in bytes above 0", lambda v: _is_int(v) and v > 0)
_COUNT = _typed("an integer above 0", lambda v: _is_int(v) and v > 0)
_SECONDS_CHECK = _typed("a number of seconds above 0", lambda v: _is_number(v) and v > 0)
_EMAIL_CHECK = _typed(
    'an email address like "you@example.com"',
    lambda v: isinstance(v, str) and _EMAIL.fullmatch(v) is not None,
)
_EMAIL_LIST = _typed(
    'an array of email addresses like ["you@example.com"]',
    lambda v: _is_str_list(v) and all(_EMAIL.fullmatch(x) for x in v),
)


def _seconds(ctx: _Ctx, value: Any, key: KeyPath) -> float:
    return float(_SECONDS_CHECK(ctx, value, key))


def _choice(choices: Sequence[str]) -> Validator:
    listed = ", ".join(json.dumps(c) for c in choices)

    def check(ctx: _Ctx, value: Any, key: KeyPath) -> str:
        if not isinstance(value, str) or value not in choices:
            hint = _did_you_mean(value, choices) if isinstance(value, str) else ""
            raise ctx.error(f"expected one of {listed}, got {_describe(value)}{hint}", key)
        return value

    return check


def _table(ctx: _Ctx, value: Any, key: KeyPath) -> dict[str, Any]:
    if not isinstance(value, dict):
        header = f"[{_dotted(key)}]"
        raise ctx.error(f"expected a table ({header}), got {_describe(value)}", key)
    return value


def _host(ctx: _Ctx, value: Any, key: KeyPath) -> str:
    host = str(_NONEMPTY(ctx, value, key)).strip()
    bare = host.strip("[]")
    if "://" in host or "/" in host or (":" in bare and not _is_ip(bare)):
        raise ctx.error(
            f'expected a bare host name like "mail.example.com", got {_describe(value)}; '
            "put the port in the 'port' key and leave out any scheme",
            key,
        )
    return bare


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ca_file(ctx: _Ctx, value: Any, key: KeyPath) -> Path:
    path = ctx.resolve(_NONEMPTY(ctx, value, key))
    if not path.is_file():
        raise ctx.error(
            f"ca_file not found: {path} (expected a PEM file of CA certificates; "
            "remove the key to use the system's trusted CAs)",
            key,
        )
    return path


def _local_path(ctx: _Ctx, value: Any, key: KeyPath) -> Path:
    return ctx.resolve(_NONEMPTY(ctx, value, key))


def _program_path(ctx: _Ctx, value: Any, key: KeyPath) -> Path:
    return Path(_NONEMPTY(ctx, value, key)).expanduser()


# --------------------------------------------------------------------------- tables


_CONNECTION_SPEC: dict[str, Validator] = {
    "backend": _STR,
    "host": _host,
    "port": _PORT,
    "security": _choice(SECURITY_CHOICES),
    "user": _NONEMPTY,
    "password_command": _NONEMPTY,
    "password": _SECRET,
    "oauth_token_command": _NONEMPTY,
    "ca_file": _ca_file,
    "allow_plaintext": _BOOL,
    "timeout": _seconds,
}
_BACKEND_OPTIONS: dict[str, dict[str, Validator]] = {
    "imap": {
        "poll_interval": _seconds,
        "idle": _BOOL,
        "folders": _STR_LIST,
        "server_saves_sent": _BOOL,
        "max_message_size": _BYTES,
        "fetch_batch": _COUNT,
        "push_folder": _NONEMPTY,
    },
    "pop3": {
        "delete_after_download": _BOOL,
        "delete_after_days": _DAYS,
        "poll_interval": _seconds,
        "max_message_size": _BYTES,
    },
    "smtp": {"server_saves_sent": _BOOL},
}
_LOCAL_SPEC: dict[str, dict[str, Validator]] = {
    "maildir": {"backend": _STR, "path": _local_path},
    "local": {"backend": _STR, "path": _program_path},
}
_ENDPOINT_FIELDS = (
    "host",
    "port",
    "security",
    "user",
    "password",
    "password_command",
    "oauth_token_command",
    "ca_file",
    "allow_plaintext",
    "timeout",
    "path",
)


def _accounts(ctx: _Ctx, value: Any, key: KeyPath) -> dict[str, AccountConfig]:
    table = _table(ctx, value, key)
    accounts: dict[str, AccountConfig] = {}
    seen: dict[str, str] = {}
    for name, body in table.items():
        where = (*key, name)
        _check_account_name(ctx, name, where)
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise ctx.error(
                f"accounts '{other}' and '{name}' differ only in case; "
                "their mail directories would collide on some systems",
                where,
            )
        accounts[name] = _account(ctx, body, where)
    return accounts


def _check_account_name(ctx: _Ctx, name: str, where: KeyPath) -> None:
    if name == "demo":
        raise ctx.error(
            "the account name 'demo' is reserved for `tui-mail demo`; choose another name",
            where,
        )
    if not _ACCOUNT_NAME.fullmatch(name) or name in RESERVED_ACCOUNT_NAMES:
        raise ctx.error(
            f"invalid account name {json.dumps(name)}: use only letters, digits, '_', '.' "
            "and '-' (it becomes a directory name)",
            where,
        )


def _account(ctx: _Ctx, value: Any, where: KeyPath) -> AccountConfig:
    table = _table(ctx, value, where)
    spec: dict[str, Validator] = {
        "email": _EMAIL_CHECK,
        "name": _STR,
        "signature": _STR,
        "aliases": _EMAIL_LIST,
        "receive": lambda c, v, k: _endpoint(c, v, k, "receive"),
        "send": lambda c, v, k: _endpoint(c, v, k, "send"),
    }
    vals = _walk(ctx, table, where, spec)
    if "email" not in vals:
        raise _missing(ctx, "email", where, 'your address, e.g. email = "you@example.com"')
    if "receive" not in vals:
        raise _missing(ctx, "receive", where, f"add an [{_dotted(where)}.receive] table")
    receive: EndpointConfig = vals["receive"]
    send: EndpointConfig | None = vals.get("send")
    if send is None:
        if receive.backend != "maildir":
            raise _missing(
                ctx,
                "send",
                where,
                f'add an [{_dotted(where)}.send] table with backend = "smtp" or "local"',
            )
        send = EndpointConfig(backend="local", key_path=_dotted((*where, "send")))
    return AccountConfig(
        name=where[-1],
        email=vals["email"],
        receive=receive,
        send=send,
        display_name=vals.get("name", ""),
        signature=vals.get("signature", ""),
        aliases=tuple(vals.get("aliases", ())),
    )


def _endpoint(ctx: _Ctx, value: Any, where: KeyPath, role: str) -> EndpointConfig:
    table = _table(ctx, value, where)
    backend = _backend(ctx, table, where, role)
    if backend in NETWORK_BACKENDS:
        spec = {**_CONNECTION_SPEC, **_BACKEND_OPTIONS[backend]}
        vals = _walk(ctx, table, where, spec)
        return _network_endpoint(ctx, vals, where, backend)
    if backend in _LOCAL_SPEC:
        vals = _walk(ctx, table, where, _LOCAL_SPEC[backend])
        if backend == "maildir" and "path" not in vals:
            raise _missing(ctx, "path", where, 'the Maildir directory, e.g. path = "~/Maildir"')
        return _make_endpoint(vals, where, backend)
    # A registered plugin backend: check the keys we know, pass the rest on.
    spec = {**_CONNECTION_SPEC, "path": _local_path}
    return _make_endpoint(_walk(ctx, table, where, spec, extra_ok=True), where, backend)


def _backend(ctx: _Ctx, table: Mapping[str, Any], where: KeyPath, role: str) -> str:
    key = (*where, "backend")
    if isinstance(table.get("backend"), str) and table["backend"] in FALLBACK_BACKENDS[role]:
        # A built-in is always known: scanning the installed packages' entry points
        # (importlib.metadata) costs ~25 ms of every start for nothing.
        return str(table["backend"])
    known = _known_backends(role)
    if "backend" not in table:
        raise _missing(ctx, "backend", where, f"one of {', '.join(known)}")
    name = _STR(ctx, table["backend"], key)
    if name in known:
        return str(name)
    other = "send" if role == "receive" else "receive"
    if name in _known_backends(other):
        hint = f"; '{name}' is a {other} backend"
    else:
        hint = _did_you_mean(name, known)
    raise ctx.error(
        f"unknown {role} backend '{name}'; known {role} backends: {', '.join(known)}{hint}", key
    )


def _network_endpoint(
    ctx: _Ctx, vals: dict[str, Any], where: KeyPath, backend: str
) -> EndpointConfig:
    if "host" not in vals:
        raise _missing(ctx, "host", where, 'the server name, e.g. host = "mail.example.com"')
    security = vals.setdefault("security", "tls")
    if "port" in vals:
        _check_port_pair(ctx, backend, security, vals["port"], where)
    else:
        vals["port"] = DEFAULT_PORTS[(backend, security)]
    if security == "none":
        _check_plaintext(ctx, vals["host"], vals.get("allow_plaintext", False), where)
    if "password" in vals and "password_command" in vals:
        raise ctx.error(
            "set either 'password' or 'password_command', not both "
            "(password_command is the safer choice)",
            (*where, "password"),
        )
    return _make_endpoint(vals, where, backend)


def _make_endpoint(vals: dict[str, Any], where: KeyPath, backend: str) -> EndpointConfig:
    fields = {k: vals[k] for k in _ENDPOINT_FIELDS if k in vals}
    options = {k: v for k, v in vals.items() if k not in fields and k != "backend"}
    return EndpointConfig(backend=backend, options=options, key_path=_dotted(where), **fields)


def _check_port_pair(ctx: _Ctx, backend: str, security: str, port: int, where: KeyPath) -> None:
    proto = backend.upper()
    tls_port = _IMPLICIT_TLS_PORT[backend]
    if security == "tls" and port in _PLAINTEXT_PORTS[backend]:
        message = (
            f"port {port} is where {proto} starts unencrypted (STARTTLS), but "
            f'security = "tls" expects TLS from the first byte; set security = "starttls" '
            f'to keep port {port}, or port = {tls_port} to keep security = "tls"'
        )
    elif security != "tls" and port == tls_port:
        plain_port = DEFAULT_PORTS[(backend, security)]
        message = (
            f"port {port} is {proto} over TLS from the first byte, but "
            f'security = "{security}" expects an unencrypted greeting; set security = "tls" '
            f'to keep port {port}, or port = {plain_port} to keep security = "{security}"'
        )
    else:
        return
    raise ctx.error(message, (*where, "port"))


def _check_plaintext(ctx: _Ctx, host: str, allowed: bool, where: KeyPath) -> None:
    if _is_loopback(host):
        return
    if not allowed:
        raise ctx.error(
            f'security = "none" would send your password and mail unencrypted to {host}; '
            'use "tls" or "starttls", or add allow_plaintext = true if you really mean it '
            "(only localhost, 127.0.0.0/8 and ::1 are allowed without it)",
            (*where, "security"),
        )
    ctx.warnings.append(
        f"{ctx.path}: {_dotted(where)} talks to {host} without encryption "
        "(allow_plaintext = true); passwords and mail cross the network in the clear"
    )


def _ui(ctx: _Ctx, value: Any, key: KeyPath) -> UiConfig:
    spec: dict[str, Validator] = {
        "theme": _NONEMPTY,
        "keys": _choice(KEY_PRESETS),
        "layout": _choice(LAYOUTS),
        "open_command": _open_command,
        "save_dir": _STR,
        "address_book_cmd": _address_book_cmd,
        "notify": _choice(NOTIFY_CHOICES),
        "hyperlinks": _BOOL,
    }
    return UiConfig(**_walk(ctx, _table(ctx, value, key), key, spec))


def _open_command(ctx: _Ctx, value: Any, key: KeyPath) -> tuple[str, ...]:
    """An argument list, never a shell string: mail-supplied names must not reach a shell."""
    if not _is_str_list(value) or not value or not value[0].strip():
        raise ctx.error(
            'expected an argument list like ["xdg-open"] (the file is added at the end, '
            f'or replaces a "{{}}" item), got {_describe(value)}',
            key,
        )
    return tuple(value)


def _address_book_cmd(ctx: _Ctx, value: Any, key: KeyPath) -> tuple[str, ...]:
    if not _is_str_list(value) or not value or not value[0].strip():
        raise ctx.error(
            'expected an argument list like ["khard", "email", "--parsable", "{}"] (what was '
            'typed replaces a "{}" item, or is added at the end), got ' + _describe(value),
            key,
        )
    return tuple(value)


def _searches(ctx: _Ctx, value: Any, key: KeyPath) -> dict[str, str]:
    """[searches] name = "query": each query is checked now, not when its folder opens."""
    from tui_mail.search.query import QueryError, parse_query

    out: dict[str, str] = {}
    for name, text in _table(ctx, value, key).items():
        where = (*key, name)
        if not isinstance(text, str):
            raise ctx.error(
                f'expected a search query like "is:unread", got {_describe(text)}', where
            )
        try:
            parse_query(text)
        except QueryError as exc:
            raise ctx.error(
                f"bad search query at character {exc.position + 1}: {exc.message}"
                f" (in {json.dumps(text, ensure_ascii=False)})",
                where,
            ) from None
        out[name] = text
    return out


def _keys(ctx: _Ctx, value: Any, key: KeyPath) -> dict[str, str]:
    """Action id -> key string; a list of keys is joined with ','. Dotted ids are flattened."""
    out: dict[str, str] = {}
    for action, binding in _table(ctx, value, key).items():
        where = (*key, action)
        if isinstance(binding, dict):
            nested = _keys(ctx, binding, where)
            out.update({f"{action}.{sub}": keys for sub, keys in nested.items()})
            continue
        if isinstance(binding, list) and _is_str_list(binding):
            binding = ",".join(binding)
        if not isinstance(binding, str):
            raise ctx.error(
                'expected a key string like "ctrl+r" or an array of them like ["r", "R"], '
                f"got {_describe(binding)}",
                where,
            )
        out[action] = binding
    return out


def _check_permissions(ctx: _Ctx, accounts: Mapping[str, AccountConfig]) -> None:
    keys = [
        f"{ep.key_path}.password"
        for acct in accounts.values()
        for ep in (acct.receive, acct.send)
        if ep.password is not None
    ]
    if not keys or os.name == "nt":
        return
    try:
        mode = ctx.path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        ctx.warnings.append(
            f"{ctx.path} holds a plain password ({', '.join(keys)}) and can be read by "
            f"group or others (mode {mode & 0o777:04o}); run `chmod 600 {ctx.path}` "
            "or use password_command instead"
        )


# --------------------------------------------------------------------------- line finder


def _scan(text: str) -> Iterator[tuple[int, KeyPath, bool]]:
    """Yield (line, full key path, is_header) for every table header and key, best-effort."""
    table: KeyPath = ()
    multiline: str | None = None
    array_depth = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if multiline:
            multiline = None if multiline in line else multiline
            continue
        if array_depth > 0:
            array_depth += _bracket_depth(line)
            continue
        s = line.lstrip()
        if s.startswith("["):
            got = _read_key(s, 2 if s.startswith("[[") else 1)
            if got:
                table = got[0]
                yield lineno, table, True
            continue
        got = _read_key(s, 0)
        if not got or not s[got[1] :].startswith("="):
            continue
        full = table + got[0]
        yield lineno, full, False
        value = s[got[1] + 1 :].lstrip()
        if value.startswith("{"):
            yield from ((lineno, sub, False) for sub in _scan_inline(value, full))
        elif value.startswith("["):
            array_depth = _bracket_depth(value)
        else:
            multiline = _multiline_opener(value)


def _multiline_opener(value: str) -> str | None:
    for delim in ('"""', "'''"):
        if value.startswith(delim) and value.count(delim) == 1:
            return delim
    return None


def _read_key(s: str, i: int) -> tuple[KeyPath, int] | None:
    """Parse a (dotted, maybe quoted) key at `s[i:]`; return its parts and the end index."""
    parts: list[str] = []
    n = len(s)
    while True:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            return None
        if s[i] in "\"'":
            end = _skip_string(s, i)
            if end > n or s[end - 1] != s[i] or end - i < 2:
                return None
            raw = s[i + 1 : end - 1]
            parts.append(raw.replace('\\"', '"').replace("\\\\", "\\") if s[i] == '"' else raw)
            i = end
        else:
            m = _BARE_KEY.match(s, i)
            if not m:
                return None
            parts.append(m.group())
            i = m.end()
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] == ".":
            i += 1
            continue
        return tuple(parts), i


def _skip_string(s: str, i: int) -> int:
    """Index just past the string literal starting at `s[i]` (or len(s) if unclosed)."""
    quote = s[i]
    if s.startswith(quote * 3, i):
        end = s.find(quote * 3, i + 3)
        return len(s) if end < 0 else end + 3
    j = i + 1
    while j < len(s):
        if s[j] == "\\" and quote == '"':
            j += 2
            continue
        if s[j] == quote:
            return j + 1
        j += 1
    return len(s)


def _bracket_depth(s: str) -> int:
    depth, i = 0, 0
    while i < len(s):
        c = s[i]
        if c in "\"'":
            i = _skip_string(s, i)
            continue
        if c == "#":
            break
        depth += {"[": 1, "]": -1}.get(c, 0)
        i += 1
    return depth


def _scan_inline(s: str, base: KeyPath) -> Iterator[KeyPath]:
    """Key paths inside the one-line inline table `s` that is the value of `base`."""
    tables: list[KeyPath] = []
    brackets: list[str] = []
    pending = base
    i = 0
    while i < len(s):
        c = s[i]
        if c in "\"'":
            i = _skip_string(s, i)
            continue
        if c == "#":
            return
        if c in "{[":
            brackets.append(c)
            if c == "{":
                tables.append(pending)
        elif c in "}]" and brackets:
            if brackets.pop() == "{":
                tables.pop()
            if not brackets:
                return
        if c in "{," and brackets and brackets[-1] == "{":
            got = _read_key(s, i + 1)
            if got and s[got[1] :].startswith("="):
                pending = tables[-1] + got[0]
                yield pending
                i = got[1] + 1
                continue
        i += 1
