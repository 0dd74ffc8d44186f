"""The wizard's decisions and messages, without a network."""

from __future__ import annotations

import argparse
import shlex
import sys
import types
from pathlib import Path

import pytest

from tui_mail.config.load import load_config
from tui_mail.setup import wizard
from tui_mail.setup.discover import Discovery
from tui_mail.setup.probe import Candidate, NetOptions, Probe
from tui_mail.setup.wizard import (
    Options,
    Plan,
    Secret,
    SetupError,
    account_name_problem,
    make_plan,
    parse_port_map,
    parse_resolver,
    save,
    suggest_account_name,
)


def usable(protocol, host, port, security="tls", source="SRV", username=None) -> Probe:
    c = Candidate(protocol, host, port, security, source, username=username)
    return Probe(c, True, security, ("PLAIN",), True)


def found(*probes: Probe) -> Discovery:
    return Discovery("jo@example.com", "example.com", list(probes))


def test_parse_resolver_and_port_map() -> None:
    assert parse_resolver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_resolver("192.0.2.1") == ("192.0.2.1", 53)
    assert parse_resolver("[::1]:5300") == ("::1", 5300)
    for bad in ("dns.example.com", "127.0.0.1:x", "127.0.0.1:70000", ""):
        with pytest.raises(ValueError):
            parse_resolver(bad)
    assert parse_port_map(["993=10993", "587=10587"]) == {993: 10993, 587: 10587}
    with pytest.raises(ValueError):
        parse_port_map(["993:10993"])


def test_account_names() -> None:
    assert suggest_account_name("jo@example.com", []) == "example"
    assert suggest_account_name("jo@example.com", ["Example", "example-2"]) == "example-3"
    assert suggest_account_name("jo@demo.org", []) == "demo-mail"
    assert account_name_problem("work", ["home"]) is None
    assert "already exists" in (account_name_problem("Home", ["home"]) or "")
    assert "cannot be an account name" in (account_name_problem("my mail", []) or "")
    assert "cannot be an account name" in (account_name_problem("demo", []) or "")


def test_plan_defaults_to_imap_and_autoconfig_usernames() -> None:
    d = found(
        usable("pop3", "pop.example.com", 995),
        usable("imap", "imap.example.com", 993, username="jo"),
        usable("smtp", "smtp.example.com", 465),
    )
    assert d.receive_protocols() == ["imap", "pop3"]
    plan = make_plan(d, Options(display_name="Jo"))
    assert plan.protocol == "imap" and plan.user == "jo"
    assert plan.send_user == "jo@example.com"
    pop = make_plan(d, Options(user="login"), "pop3")
    assert pop.protocol == "pop3" and pop.user == pop.send_user == "login"


def test_plan_errors_say_what_to_try() -> None:
    bad_cert = Probe(
        Candidate("imap", "imap.example.com", 993, "tls", "guess"),
        True,
        "tls",
        (),
        True,
        cert_error="Hostname mismatch, certificate is not valid for 'imap.example.com'.",
    )
    with pytest.raises(SetupError, match="certificate") as err:
        make_plan(found(bad_cert, usable("smtp", "s", 465)), Options())
    assert "--ca-file" in err.value.hint

    plain = Probe(Candidate("imap", "old.example.com", 143, "starttls", "guess"), True, "none")
    with pytest.raises(SetupError, match="without encryption"):
        make_plan(found(plain), Options())

    with pytest.raises(SetupError, match=r"no mail servers found for example\.com") as err:
        make_plan(found(), Options())
    assert "spelling" in err.value.hint

    with pytest.raises(SetupError, match="SMTP server"):
        make_plan(found(usable("imap", "i", 993)), Options())
    with pytest.raises(SetupError, match="POP3 server"):
        make_plan(found(usable("imap", "i", 993), usable("smtp", "s", 465)), Options(), "pop3")


def _plan(ca_file: Path | None = None) -> Plan:
    return Plan(
        email="jo@example.com",
        receive=usable("imap", "imap.example.com", 993),
        send=usable("smtp", "smtp.example.com", 587, "starttls"),
        user="jo@example.com",
        send_user="jo@example.com",
        display_name="Jo Example",
        ca_file=ca_file,
    )


def test_save_with_a_password_command(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    path = tmp_path / "config.toml"
    cfg = save(path, "work", _plan(ca), Secret("pw", "command", "pass show mail/work"))
    acct = cfg.accounts["work"]
    assert acct.receive.password_command == acct.send.password_command == "pass show mail/work"
    assert acct.receive.password is None
    assert acct.send.security == "starttls" and acct.send.port == 587
    assert acct.receive.ca_file == ca
    assert "pw" not in path.read_text()


def test_save_refuses_a_taken_name(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    save(path, "work", _plan(), Secret("pw", "file"))
    before = path.read_text()
    with pytest.raises(SetupError, match="already exists"):
        save(path, "Work", _plan(), Secret("pw", "file"))
    assert path.read_text() == before


class FakeKeyring(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("keyring")
        self.store: dict[tuple[str, str], str] = {}

    def set_password(self, service: str, user: str, password: str) -> None:
        self.store[(service, user)] = password

    def delete_password(self, service: str, user: str) -> None:
        del self.store[(service, user)]


def test_save_to_the_keyring_and_undo_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeKeyring()
    monkeypatch.setitem(sys.modules, "keyring", fake)
    path = tmp_path / "config.toml"
    cfg = save(path, "work", _plan(), Secret("s3cret", "keyring"))
    assert fake.store == {("tui-mail", "work"): "s3cret"}
    command = cfg.accounts["work"].receive.password_command or ""
    assert shlex.split(command)[-4:] == ["keyring", "get", "tui-mail", "work"]
    assert "s3cret" not in path.read_text()

    def broken(*args: object, **kwargs: object) -> None:
        raise wizard.WriteError("disk full")

    monkeypatch.setattr(wizard, "add_account", broken)
    with pytest.raises(SetupError, match="disk full"):
        save(path, "other", _plan(), Secret("x", "keyring"))
    assert ("tui-mail", "other") not in fake.store  # no orphan secret


def _args(**kw: object) -> argparse.Namespace:
    base = dict(email=None, non_interactive=True, password_command=None, resolver=None)
    return argparse.Namespace(**{**base, **kw})


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    assert wizard.main(path, _args()) == 2
    assert "--email" in capsys.readouterr().err
    assert wizard.main(path, _args(email="jo@example.com", resolver="nope")) == 2
    assert "--resolver" in capsys.readouterr().err
    assert wizard.main(path, _args(email="jo@example.com", ca_file="/no/such.pem")) == 2
    assert wizard.main(path, _args(email="a@b.c", autoconfig_url="http://evil.example/x")) == 2
    assert "https" in capsys.readouterr().err
    assert wizard.main(path, _args(email="jo@example.com")) == 1
    err = capsys.readouterr().err
    assert "--password-command" in err and "nothing was written" in err
    assert wizard.main(path, _args(email="jo", password_command="true")) == 1
    assert "not an email address" in capsys.readouterr().err
    assert not path.exists()


def test_cli_refuses_before_the_network_when_the_config_is_broken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("discovery must not run")

    monkeypatch.setattr(wizard, "find_servers", no_network)
    path = tmp_path / "config.toml"
    path.write_text("[accounts.x]\nemail = 3\n")
    code = wizard.main(path, _args(email="jo@example.com", password_command="printf pw"))
    assert code == 1
    assert "existing config has an error" in capsys.readouterr().err
    assert path.read_text() == "[accounts.x]\nemail = 3\n"


def test_written_config_passes_config_check(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    save(path, "work", _plan(), Secret("pw", "file"))
    cfg = load_config(path)
    assert cfg.accounts["work"].receive.password == "pw"
    assert not cfg.warnings
    assert NetOptions().resolver is None


def test_interactive_without_a_terminal_says_what_to_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def eof(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", eof)
    path = tmp_path / "config.toml"
    assert wizard.main(path, _args(non_interactive=False), say=lambda s: None) == 1
    assert "--non-interactive" in capsys.readouterr().err
    assert not path.exists()
