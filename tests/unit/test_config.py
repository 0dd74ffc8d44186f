"""Config loading: the happy path, every error kind, secrets and the template."""

from __future__ import annotations

import re
import stat
import sys
import tomllib
import types
from pathlib import Path

import msgspec.structs
import pytest

from tui_mail.config import load, secrets
from tui_mail.config.load import load_config, parse_config, summarize
from tui_mail.config.schema import DEFAULT_PORTS, AppConfig, EndpointConfig, UiConfig
from tui_mail.config.secrets import resolve_oauth_token, resolve_password
from tui_mail.config.template import CONFIG_TEMPLATE, write_template
from tui_mail.core.errors import ConfigError, MailError

_real_known_backends = load._known_backends


@pytest.fixture(autouse=True)
def builtin_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the backend list so these tests do not depend on which backends exist yet."""
    monkeypatch.setattr(load, "_known_backends", lambda role: list(load.FALLBACK_BACKENDS[role]))


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def load_text(tmp_path: Path, text: str, mode: int = 0o600) -> AppConfig:
    return load_config(write(tmp_path, text, mode))


def fail(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return info.value


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line of `text` containing `needle`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def assert_error(err: ConfigError, path: Path, key: str, line: int | None, *expected: str) -> None:
    message = str(err)
    assert err.file == str(path)
    assert err.key == key
    assert err.line == line
    assert message.startswith(f"{path}:{line}: {key}: " if line else f"{path}: {key}: ")
    for part in expected:
        assert part in message


IMAP_ACCOUNT = """\
[accounts.work]
email = "me@example.com"

[accounts.work.receive]
backend = "imap"
host = "imap.example.com"
password_command = "echo pw"
{receive}
[accounts.work.send]
backend = "smtp"
host = "smtp.example.com"
password_command = "echo pw"
{send}"""


def imap(receive: str = "", send: str = "") -> str:
    return IMAP_ACCOUNT.format(receive=receive, send=send)


GOOD = """\
[ui]
theme = "nord"
keys = "mutt"
layout = "below"

[keys]
compose = "m"
reply = ["r", "R"]
thread.next = "J"

[accounts.work]
email = "me@example.com"
name = "Me Myself"
signature = "-- \\nMe"
aliases = ["me@example.org", "boss@example.net"]

[accounts.work.receive]
backend = "imap"
host = "imap.example.com"
user = "me"
password_command = "pass show work"
idle = true
folders = ["INBOX", "Sent"]
poll_interval = 60
timeout = 10

[accounts.work.send]
backend = "smtp"
host = "smtp.example.com"
security = "starttls"
password_command = "pass show work"
server_saves_sent = true

[accounts.pop]
email = "pop@example.com"
receive = { backend = "pop3", host = "pop.example.com", delete_after_days = 7 }
send = { backend = "local", path = "/usr/sbin/sendmail" }

[accounts.home]
email = "me@localhost"

[accounts.home.receive]
backend = "maildir"
path = "~/Maildir"
"""


# --------------------------------------------------------------------------- happy path


def test_good_config_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    cfg = load_config(path)
    assert cfg.path == path
    assert list(cfg.accounts) == ["work", "pop", "home"]
    assert (cfg.ui.theme, cfg.ui.keys, cfg.ui.layout) == ("nord", "mutt", "below")
    assert cfg.key_overrides == {"compose": "m", "reply": "r,R", "thread.next": "J"}
    assert cfg.warnings == ()

    work = cfg.accounts["work"]
    assert work.email == "me@example.com"
    assert work.display_name == "Me Myself"
    assert work.signature == "-- \nMe"
    assert work.aliases == ("me@example.org", "boss@example.net")
    assert work.receive == EndpointConfig(
        backend="imap",
        host="imap.example.com",
        port=993,
        security="tls",
        user="me",
        password_command="pass show work",
        timeout=10.0,
        options={"idle": True, "folders": ["INBOX", "Sent"], "poll_interval": 60.0},
        key_path="accounts.work.receive",
    )
    assert work.send.port == 587
    assert work.send.security == "starttls"
    assert work.send.options == {"server_saves_sent": True}
    assert work.send.key_path == "accounts.work.send"

    pop = cfg.accounts["pop"]
    assert (pop.receive.backend, pop.receive.port) == ("pop3", 995)
    assert pop.receive.options == {"delete_after_days": 7}
    assert pop.send == EndpointConfig(
        backend="local", path=Path("/usr/sbin/sendmail"), key_path="accounts.pop.send"
    )

    home = cfg.accounts["home"]
    assert home.receive.path == Path.home() / "Maildir"
    assert home.send.backend == "local"
    assert home.display_name == ""


def test_parse_config_matches_load_config(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert parse_config(GOOD, path) == load_config(path)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xef\xbb\xbf" + imap().encode())
    assert list(load_config(path).accounts) == ["work"]


def test_relative_maildir_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    text = '[accounts.a]\nemail = "a@b.c"\nreceive = { backend = "maildir", path = "mail" }\n'
    cfg = load_text(tmp_path, text)
    assert cfg.accounts["a"].receive.path == tmp_path / "mail"


@pytest.mark.parametrize(("backend", "security"), sorted(DEFAULT_PORTS))
def test_default_ports(tmp_path: Path, backend: str, security: str) -> None:
    endpoint = f'backend = "{backend}"\nhost = "127.0.0.1"\nsecurity = "{security}"\n'
    if backend == "smtp":
        text = (
            '[accounts.a]\nemail = "a@b.c"\n[accounts.a.receive]\nbackend = "maildir"\n'
            f'path = "m"\n[accounts.a.send]\n{endpoint}'
        )
    else:
        text = f'[accounts.a]\nemail = "a@b.c"\n[accounts.a.receive]\n{endpoint}'
        text += '[accounts.a.send]\nbackend = "local"\n'
    cfg = load_text(tmp_path, text)
    ep = cfg.accounts["a"].send if backend == "smtp" else cfg.accounts["a"].receive
    assert ep.port == DEFAULT_PORTS[(backend, security)]
    assert ep.security == security


def test_summarize(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, GOOD)
    out = summarize(cfg).splitlines()
    assert out[0].startswith("work  me@example.com  ")
    assert "receive: imap imap.example.com:993 tls" in out[0]
    assert "send: smtp smtp.example.com:587 starttls" in out[0]
    assert "receive: pop3 pop.example.com:995 tls" in out[1]
    assert "send: local /usr/sbin/sendmail" in out[1]
    assert f"receive: maildir {Path.home() / 'Maildir'}" in out[2]
    assert out[2].endswith("send: local")
    assert len(out) == 3


def test_summarize_lists_warnings(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, imap(receive='security = "none"\nallow_plaintext = true\n'))
    out = summarize(cfg).splitlines()
    assert out[-1].startswith("warning: ") and "without encryption" in out[-1]


# --------------------------------------------------------------------------- error kinds


def test_invalid_toml_names_line_column_and_key(tmp_path: Path) -> None:
    text = imap().replace('host = "imap.example.com"', "host = imap.example.com")
    err = fail(tmp_path, text)
    line = line_of(text, "host = imap.example.com")
    assert_error(
        err,
        tmp_path / "config.toml",
        "accounts.work.receive.host",
        line,
        "invalid TOML",
        "column 8",
        'quotes, e.g. "imap.example.com"',
    )


def test_invalid_toml_boolean_hint(tmp_path: Path) -> None:
    text = imap(receive="idle = True\n")
    err = fail(tmp_path, text)
    assert err.line == line_of(text, "idle = True")
    assert "booleans are written true or false" in str(err)


def test_invalid_toml_duplicate_key(tmp_path: Path) -> None:
    text = imap(receive='host = "again.example.com"\n')
    err = fail(tmp_path, text)
    assert err.line == line_of(text, "again.example.com")
    assert "invalid TOML" in str(err)


def test_unknown_key_suggests_closest(tmp_path: Path) -> None:
    text = imap(receive="prot = 993\n")
    err = fail(tmp_path, text)
    assert_error(
        err,
        tmp_path / "config.toml",
        "accounts.work.receive.prot",
        line_of(text, "prot = 993"),
        "unknown key 'prot'; did you mean 'port'?",
    )


def test_unknown_key_without_close_match_lists_keys(tmp_path: Path) -> None:
    err = fail(tmp_path, 'colour = "red"\n' + imap())
    assert_error(
        err,
        tmp_path / "config.toml",
        "colour",
        1,
        "unknown key 'colour'; expected one of: accounts, ui, keys",
    )


def test_backend_specific_key_on_the_wrong_backend(tmp_path: Path) -> None:
    text = imap().replace('"imap"', '"pop3"').replace('host = "imap', 'idle = true\nhost = "imap')
    err = fail(tmp_path, text)
    assert_error(
        err,
        tmp_path / "config.toml",
        "accounts.work.receive.idle",
        line_of(text, "idle = true"),
        "only allowed for the imap backend",
    )


@pytest.mark.parametrize(
    ("setting", "key", "expected"),
    [
        ('port = "abc"', "port", 'expected an integer from 1 to 65535, got a string "abc"'),
        ("port = 70000", "port", "expected an integer from 1 to 65535, got an integer 70000"),
        ("port = 993.0", "port", "got a float 993.0"),
        ('idle = "yes"', "idle", 'expected a boolean (true or false), got a string "yes"'),
        ("timeout = 0", "timeout", "expected a number of seconds above 0, got an integer 0"),
        ('folders = "INBOX"', "folders", "expected an array of strings"),
        ("folders = [1]", "folders", "expected an array of strings, got an array"),
        ('security = "ssl"', "security", 'expected one of "tls", "starttls", "none"'),
        ("user = 5", "user", "expected a non-empty string, got an integer 5"),
        ('host = ""', "host", "expected a non-empty string"),
    ],
)
def test_wrong_types(tmp_path: Path, setting: str, key: str, expected: str) -> None:
    text = imap(receive=setting + "\n")
    if key == "host":
        text = text.replace('host = "imap.example.com"\n', "")
    err = fail(tmp_path, text)
    assert_error(
        err,
        tmp_path / "config.toml",
        f"accounts.work.receive.{key}",
        line_of(text, setting),
        expected,
    )


def test_host_with_port_or_scheme(tmp_path: Path) -> None:
    text = imap().replace('"imap.example.com"', '"imaps://imap.example.com:993"')
    err = fail(tmp_path, text)
    assert err.key == "accounts.work.receive.host"
    assert "put the port in the 'port' key" in str(err)


def test_wrong_type_never_shows_a_password(tmp_path: Path) -> None:
    text = imap(send="password = 123456789\n").replace('password_command = "echo pw"\n', "")
    err = fail(tmp_path, text)
    assert err.key == "accounts.work.send.password"
    assert "expected a string, got an integer" in str(err)
    assert "123456789" not in str(err)


@pytest.mark.parametrize(
    ("text", "key", "header", "expected"),
    [
        (
            '[accounts.work]\nname = "x"\n[accounts.work.receive]\nbackend = "maildir"\n'
            'path = "m"\n',
            "accounts.work.email",
            "[accounts.work]",
            "missing required key 'email'",
        ),
        (
            '[accounts.work]\nemail = "a@b.c"\n',
            "accounts.work.receive",
            "[accounts.work]",
            "missing required key 'receive'",
        ),
        (
            '[accounts.work]\nemail = "a@b.c"\n[accounts.work.receive]\nhost = "x"\n',
            "accounts.work.receive.backend",
            "[accounts.work.receive]",
            "missing required key 'backend' (one of imap, maildir, pop3)",
        ),
        (
            imap().replace('host = "imap.example.com"\n', ""),
            "accounts.work.receive.host",
            "[accounts.work.receive]",
            "missing required key 'host'",
        ),
        (
            '[accounts.work]\nemail = "a@b.c"\n[accounts.work.receive]\nbackend = "maildir"\n',
            "accounts.work.receive.path",
            "[accounts.work.receive]",
            "missing required key 'path'",
        ),
        (
            imap().split("[accounts.work.send]")[0],
            "accounts.work.send",
            "[accounts.work]",
            'add an [accounts.work.send] table with backend = "smtp" or "local"',
        ),
    ],
)
def test_missing_required_key(
    tmp_path: Path, text: str, key: str, header: str, expected: str
) -> None:
    err = fail(tmp_path, text)
    assert_error(err, tmp_path / "config.toml", key, line_of(text, header), expected)


def test_send_may_be_missing_for_maildir(tmp_path: Path) -> None:
    text = '[accounts.a]\nemail = "a@b.c"\n[accounts.a.receive]\nbackend = "maildir"\npath = "m"\n'
    send = load_text(tmp_path, text).accounts["a"].send
    assert send == EndpointConfig(backend="local", key_path="accounts.a.send")


def test_unknown_backend_lists_known_ones(tmp_path: Path) -> None:
    text = imap().replace('backend = "imap"', 'backend = "imaps"')
    err = fail(tmp_path, text)
    assert_error(
        err,
        tmp_path / "config.toml",
        "accounts.work.receive.backend",
        line_of(text, '"imaps"'),
        "unknown receive backend 'imaps'; known receive backends: imap, maildir, pop3",
        "did you mean 'imap'?",
    )


def test_send_backend_used_for_receive(tmp_path: Path) -> None:
    err = fail(tmp_path, imap().replace('backend = "imap"', 'backend = "smtp"'))
    assert "'smtp' is a send backend" in str(err)


@pytest.mark.parametrize(
    ("side", "backend", "security", "port", "expected"),
    [
        (
            "receive",
            "imap",
            "tls",
            143,
            'set security = "starttls" to keep port 143, or port = 993',
        ),
        (
            "receive",
            "imap",
            "starttls",
            993,
            'set security = "tls" to keep port 993, or port = 143',
        ),
        (
            "receive",
            "pop3",
            "tls",
            110,
            'set security = "starttls" to keep port 110, or port = 995',
        ),
        (
            "receive",
            "pop3",
            "starttls",
            995,
            'set security = "tls" to keep port 995, or port = 110',
        ),
        ("send", "smtp", "tls", 587, 'set security = "starttls" to keep port 587, or port = 465'),
        ("send", "smtp", "tls", 25, 'set security = "starttls" to keep port 25, or port = 465'),
        ("send", "smtp", "starttls", 465, 'set security = "tls" to keep port 465, or port = 587'),
    ],
)
def test_impossible_security_port_pair(
    tmp_path: Path, side: str, backend: str, security: str, port: int, expected: str
) -> None:
    setting = f'security = "{security}"\nport = {port}\n'
    text = imap(**{side: setting})
    if backend == "pop3":
        text = text.replace('"imap"', '"pop3"')
    err = fail(tmp_path, text)
    assert_error(
        err,
        tmp_path / "config.toml",
        f"accounts.work.{side}.port",
        line_of(text, f"port = {port}"),
        f"port {port} is",
        expected,
    )


def test_none_security_on_the_tls_port(tmp_path: Path) -> None:
    text = imap(receive='security = "none"\nport = 993\n').replace("imap.example.com", "localhost")
    err = fail(tmp_path, text)
    assert err.key == "accounts.work.receive.port"
    assert 'security = "none" expects an unencrypted greeting' in str(err)


def test_missing_ca_file(tmp_path: Path) -> None:
    text = imap(receive='ca_file = "certs/nope.pem"\n')
    err = fail(tmp_path, text)
    assert_error(
        err,
        tmp_path / "config.toml",
        "accounts.work.receive.ca_file",
        line_of(text, "ca_file"),
        f"ca_file not found: {tmp_path / 'certs' / 'nope.pem'}",
        "expected a PEM file",
    )


def test_existing_ca_file_is_resolved(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("PEM\n")
    cfg = load_text(tmp_path, imap(receive='ca_file = "ca.pem"\n'))
    assert cfg.accounts["work"].receive.ca_file == tmp_path / "ca.pem"


@pytest.mark.parametrize("text", ["", "# nothing yet\n", '[ui]\ntheme = "x"\n', "[accounts]\n"])
def test_no_accounts(tmp_path: Path, text: str) -> None:
    err = fail(tmp_path, text)
    line = 1 if text.startswith("[accounts]") else None
    assert_error(
        err,
        tmp_path / "config.toml",
        "accounts",
        line,
        "no accounts configured",
        "tui-mail config init",
        "tui-mail demo",
    )


@pytest.mark.parametrize(
    ("header", "name", "expected"),
    [
        ('[accounts."my work"]', '"my work"', 'invalid account name "my work"'),
        ('[accounts."../x"]', '"../x"', "it becomes a directory name"),
        ('[accounts.".."]', '".."', "invalid account name"),
        ("[accounts.demo]", "demo", "reserved for `tui-mail demo`"),
    ],
)
def test_bad_account_names(tmp_path: Path, header: str, name: str, expected: str) -> None:
    text = f'{header}\nemail = "a@b.c"\n'
    err = fail(tmp_path, text)
    assert_error(err, tmp_path / "config.toml", f"accounts.{name}", 1, expected)


def test_dotted_account_name_hint(tmp_path: Path) -> None:
    text = '[accounts.my.work]\nemail = "a@b.c"\n'
    err = fail(tmp_path, text)
    assert err.key == "accounts.my.work"
    assert 'must be quoted: [accounts."my.work"]' in str(err)


def test_account_names_differing_in_case(tmp_path: Path) -> None:
    block = '[accounts.{}]\nemail = "a@b.c"\nreceive = {{ backend = "maildir", path = "m" }}\n'
    err = fail(tmp_path, block.format("Work") + block.format("work"))
    assert err.key == "accounts.work"
    assert "differ only in case" in str(err)


def test_bad_email(tmp_path: Path) -> None:
    text = imap().replace('"me@example.com"', '"me at example"')
    err = fail(tmp_path, text)
    assert_error(
        err,
        tmp_path / "config.toml",
        "accounts.work.email",
        2,
        'expected an email address like "you@example.com", got a string "me at example"',
    )


def test_table_expected(tmp_path: Path) -> None:
    err = fail(tmp_path, '[accounts]\nwork = "imap"\n')
    assert_error(
        err,
        tmp_path / "config.toml",
        "accounts.work",
        2,
        'expected a table ([accounts.work]), got a string "imap"',
    )


def test_first_error_in_file_order_wins(tmp_path: Path) -> None:
    text = imap(receive="prot = 1\n", send='security = "bogus"\n')
    assert fail(tmp_path, text).key == "accounts.work.receive.prot"
    ui_first = '[ui]\nlayout = "sideways"\n' + imap(receive="prot = 1\n")
    err = fail(tmp_path, ui_first)
    assert err.key == "ui.layout"
    assert 'expected one of "auto", "beside", "below", got a string "sideways"' in str(err)


def test_password_and_password_command_together(tmp_path: Path) -> None:
    err = fail(tmp_path, imap(receive='password = "x"\n'))
    assert err.key == "accounts.work.receive.password"
    assert "not both" in str(err)


def test_pop3_option_range(tmp_path: Path) -> None:
    text = imap(receive="delete_after_days = -1\n").replace('"imap"', '"pop3"')
    err = fail(tmp_path, text)
    assert err.key == "accounts.work.receive.delete_after_days"
    assert "expected an integer of 0 or more, got an integer -1" in str(err)


def test_imap_tuning_options(tmp_path: Path) -> None:
    options = 'fetch_batch = 50\nmax_message_size = 1000000\npush_folder = "Lists/x"\n'
    config = load_text(tmp_path, imap(receive=options))
    assert config.accounts["work"].receive.options["fetch_batch"] == 50
    err = fail(tmp_path, imap(receive="fetch_batch = 0\n"))
    assert err.key == "accounts.work.receive.fetch_batch"
    assert "expected an integer above 0" in str(err)
    err = fail(tmp_path, imap(receive='push_folder = ""\n'))
    assert err.key == "accounts.work.receive.push_folder"


def test_keys_table_values_must_be_strings(tmp_path: Path) -> None:
    text = "[keys]\nreply = 5\n" + imap()
    err = fail(tmp_path, text)
    assert_error(
        err, tmp_path / "config.toml", "keys.reply", 2, "expected a key string", "got an integer 5"
    )
    text = '[keys]\nreply = ["r", 1]\n' + imap()
    assert "got an array" in str(fail(tmp_path, text))


def test_ui_key_preset(tmp_path: Path) -> None:
    err = fail(tmp_path, '[ui]\nkeys = "emac"\n' + imap())
    assert err.key == "ui.keys"
    assert 'expected one of "vim", "mutt"' in str(err)


# --------------------------------------------------------------------------- line finder


def test_line_of_key_in_inline_table(tmp_path: Path) -> None:
    text = (
        '[accounts.work]\nemail = "a@b.c"\n'
        'send = { backend = "local" }\n'
        'receive = { backend = "imap", host = "h", opts = "{x", prot = 1 }\n'
    )
    err = fail(tmp_path, text)
    assert (err.key, err.line) == ("accounts.work.receive.opts", 4)


def test_line_of_dotted_key(tmp_path: Path) -> None:
    text = (
        '[accounts]\nwork.email = "a@b.c"\nwork.send.backend = "local"\n'
        'work.receive.backend = "imap"\nwork.receive.host = "h"\n'
        'work.receive.port = "x"\n'
    )
    err = fail(tmp_path, text)
    assert (err.key, err.line) == ("accounts.work.receive.port", 6)


def test_line_finder_skips_multiline_strings_and_arrays(tmp_path: Path) -> None:
    text = imap(
        receive='folders = [\n  "INBOX",\n  "prot = 2",\n]\nprot = 1\n',
    ).replace(
        'email = "me@example.com"', 'email = "me@example.com"\nsignature = """\nport = 9\n"""'
    )
    err = fail(tmp_path, text)
    assert (err.key, err.line) == ("accounts.work.receive.prot", line_of(text, "prot = 1"))


def test_line_of_quoted_keys(tmp_path: Path) -> None:
    text = imap().replace("[accounts.work.receive]", '[ accounts . "work" . receive ]')
    text = text.replace('host = "imap.example.com"', '"host" = "imap.example.com"\n\'prot\' = 1')
    err = fail(tmp_path, text)
    assert (err.key, err.line) == ("accounts.work.receive.prot", line_of(text, "'prot'"))


# --------------------------------------------------------------------------- plaintext


def test_plaintext_refused_for_remote_host(tmp_path: Path) -> None:
    text = imap(receive='security = "none"\n')
    err = fail(tmp_path, text)
    assert_error(
        err,
        tmp_path / "config.toml",
        "accounts.work.receive.security",
        line_of(text, 'security = "none"'),
        "unencrypted to imap.example.com",
        "allow_plaintext = true",
    )


def test_plaintext_allowed_with_allow_plaintext(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, imap(receive='security = "none"\nallow_plaintext = true\n'))
    receive = cfg.accounts["work"].receive
    assert (receive.security, receive.port, receive.allow_plaintext) == ("none", 143, True)
    assert len(cfg.warnings) == 1
    assert "accounts.work.receive" in cfg.warnings[0]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"])
def test_plaintext_allowed_for_loopback(tmp_path: Path, host: str) -> None:
    text = imap(send='security = "none"\n').replace("smtp.example.com", host)
    cfg = load_text(tmp_path, text)
    assert cfg.accounts["work"].send.port == 25
    assert cfg.accounts["work"].send.host == host.strip("[]")
    assert cfg.warnings == ()


# --------------------------------------------------------------------------- permissions


def test_plain_password_in_readable_file_warns(tmp_path: Path) -> None:
    text = imap(receive='password = "hunter2"\n').replace('password_command = "echo pw"\n', "", 1)
    cfg = load_text(tmp_path, text, mode=0o644)
    path = tmp_path / "config.toml"
    assert len(cfg.warnings) == 1
    warning = cfg.warnings[0]
    assert str(path) in warning
    assert "accounts.work.receive.password" in warning
    assert f"chmod 600 {path}" in warning and "password_command" in warning
    assert "hunter2" not in warning
    assert cfg.accounts["work"].receive.password == "hunter2"


def test_plain_password_in_private_file_is_fine(tmp_path: Path) -> None:
    text = imap(receive='password = "hunter2"\n').replace('password_command = "echo pw"\n', "", 1)
    assert load_text(tmp_path, text, mode=0o600).warnings == ()
    assert stat.S_IMODE((tmp_path / "config.toml").stat().st_mode) == 0o600


def test_password_command_in_readable_file_is_fine(tmp_path: Path) -> None:
    assert load_text(tmp_path, imap(), mode=0o644).warnings == ()


# --------------------------------------------------------------------------- load_config


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert info.value.file == str(tmp_path / "absent.toml")
    assert "tui-mail config init" in str(info.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[ui]\ntheme = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 2
    assert "UTF-8" in str(info.value)


# --------------------------------------------------------------------------- backends


def test_known_backends_falls_back_without_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tui_mail.backends.registry", None)
    assert _real_known_backends("receive") == ["imap", "maildir", "pop3"]
    assert _real_known_backends("send") == ["local", "smtp"]


def test_known_backends_uses_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("tui_mail.backends.registry")
    fake.available_backends = lambda role: {"receive": ["zz", "imap"], "send": ["smtp"]}[role]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tui_mail.backends.registry", fake)
    assert _real_known_backends("receive") == ["imap", "zz"]


def test_plugin_backend_passes_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "_known_backends", lambda role: ["jmap", "local", "maildir"])
    text = (
        '[accounts.a]\nemail = "a@b.c"\n'
        '[accounts.a.receive]\nbackend = "jmap"\nhost = "j.example.com"\nsession = "s"\n'
        '[accounts.a.send]\nbackend = "local"\n'
    )
    receive = load_text(tmp_path, text).accounts["a"].receive
    assert (receive.backend, receive.host, receive.options) == (
        "jmap",
        "j.example.com",
        {"session": "s"},
    )


# --------------------------------------------------------------------------- secrets


def endpoint(**kw: object) -> EndpointConfig:
    return EndpointConfig(backend="imap", key_path="accounts.work.receive", **kw)  # type: ignore[arg-type]


def test_password_command_resolves() -> None:
    assert resolve_password(endpoint(password_command="printf 'hunter2\\n'")) == "hunter2"
    assert resolve_password(endpoint(password_command="printf 'a b\\n\\n'")) == "a b\n"
    assert resolve_password(endpoint(password_command="printf 'x'")) == "x"


def test_plain_password_is_returned() -> None:
    assert resolve_password(endpoint(password="pw")) == "pw"


def test_password_command_failure_shows_stderr_not_the_password() -> None:
    ep = endpoint(password_command="echo hunter2; echo 'gpg: decryption failed' >&2; exit 3")
    with pytest.raises(MailError) as info:
        resolve_password(ep)
    message = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert message.startswith("accounts.work.receive.password_command: ")
    assert "exit status 3" in message
    assert "gpg: decryption failed" in message
    assert "hunter2" not in message


def test_password_command_printing_nothing() -> None:
    with pytest.raises(ConfigError, match="printed nothing"):
        resolve_password(endpoint(password_command="true"))


def test_password_command_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "COMMAND_TIMEOUT", 0.2)
    with pytest.raises(ConfigError, match=r"did not finish within 0\.2 seconds"):
        resolve_password(endpoint(password_command="sleep 5"))


def test_no_password_configured() -> None:
    with pytest.raises(ConfigError, match="no password configured"):
        resolve_password(endpoint())


def test_oauth_token() -> None:
    assert resolve_oauth_token(endpoint(oauth_token_command="echo tok")) == "tok"
    with pytest.raises(ConfigError, match="oauth_token_command"):
        resolve_oauth_token(endpoint())


# --------------------------------------------------------------------------- template

_EXAMPLE_LINE = re.compile(r"^# (\[.*\]|[A-Za-z_][\w.-]* = .*)$")


def uncomment(template: str) -> str:
    return "\n".join(
        line[2:] if _EXAMPLE_LINE.match(line) else line for line in template.splitlines()
    )


def test_template_is_valid_toml_with_everything_commented() -> None:
    assert tomllib.loads(CONFIG_TEMPLATE) == {}


def test_template_examples_parse_when_uncommented(tmp_path: Path) -> None:
    cfg = parse_config(uncomment(CONFIG_TEMPLATE), tmp_path / "config.toml")
    assert list(cfg.accounts) == ["work", "home"]
    assert cfg.accounts["work"].receive.port == 993
    assert cfg.accounts["work"].send.port == 587
    assert cfg.accounts["home"].send.backend == "local"
    assert cfg.key_overrides == {"sync_now": "ctrl+r,f5"}


def test_template_documents_every_key() -> None:
    assert "[accounts.NAME.receive]" in CONFIG_TEMPLATE
    assert "[accounts.NAME.send]" in CONFIG_TEMPLATE
    keys = {"email", "name", "signature", "aliases", "theme", "keys", "layout"}
    keys |= set(load._CONNECTION_SPEC) | {"path"}
    for options in load._BACKEND_OPTIONS.values():
        keys |= set(options)
    for key in sorted(keys):
        assert re.search(rf"^#\s+{key}\s", CONFIG_TEMPLATE, re.M), key


def test_template_documents_every_ui_key(tmp_path: Path) -> None:
    for key in (f.name for f in msgspec.structs.fields(UiConfig)):
        assert re.search(rf"^#\s+{key}\s", CONFIG_TEMPLATE, re.M), key
    cfg = parse_config(uncomment(CONFIG_TEMPLATE), tmp_path / "config.toml")
    assert cfg.ui.address_book_cmd == ("khard", "email", "--parsable", "{}")


def test_address_book_cmd_is_an_argument_list(tmp_path: Path) -> None:
    base = '[accounts.a]\nemail = "a@b.example"\nreceive = { backend = "maildir", path = "m" }\n'
    assert parse_config(base, tmp_path / "c.toml").ui.address_book_cmd == ()
    for bad in ('"abook --mutt-query"', "[]", '[""]', "[1]", "true"):
        with pytest.raises(ConfigError) as info:
            parse_config(f"{base}[ui]\naddress_book_cmd = {bad}\n", tmp_path / "c.toml")
        assert "ui.address_book_cmd" in str(info.value), bad
        assert "argument list" in str(info.value), bad


def test_write_template(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "config.toml"
    write_template(path)
    assert path.read_text(encoding="utf-8") == CONFIG_TEMPLATE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_template_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("mine\n")
    with pytest.raises(ConfigError) as info:
        write_template(path)
    assert info.value.file == str(path)
    assert "already exists" in str(info.value)
    assert path.read_text() == "mine\n"


def test_invalid_toml_unclosed_string(tmp_path: Path) -> None:
    text = imap().replace('"me@example.com"', '"me@example.com')
    err = fail(tmp_path, text)
    assert (err.key, err.line) == ("accounts.work.email", 2)
    assert "missing its closing quote" in str(err)
    err = fail(tmp_path, imap() + 'signature = """never closed\n')
    assert err.line == len((imap() + "x").splitlines())
    assert "at the end of the file" in str(err)
