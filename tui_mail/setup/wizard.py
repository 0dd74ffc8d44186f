"""The setup flow shared by `tui-mail setup` (interactive or not) and the TUI screen.

discover -> choose IMAP or POP3 -> one password, tested against the receive
and the send server -> store it the way the user chose -> write the account.
Every failure is a `SetupError` with a message and a hint saying what to try
next; none of them leaves anything written.
"""

from __future__ import annotations

import asyncio
import getpass
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from msgspec import Struct, field

from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig
from tui_mail.core.errors import AuthError, ConfigError, ConnectError, MailError, TLSError
from tui_mail.setup.discover import Discovery, InvalidAddress, Report, Step, discover, domain_of
from tui_mail.setup.probe import PROTOCOL_NAMES, RECEIVE_PROTOCOLS, NetOptions, Probe, Protocol
from tui_mail.setup.write import (
    WriteError,
    account_table,
    add_account,
    check_existing,
    existing_accounts,
    setup_comment,
)

Storage = Literal["command", "keyring", "file"]
KEYRING_SERVICE = "tui-mail"
CHECK_TIMEOUT = 30.0

# Lines of at most 72 characters: they are printed by the CLI and shown by
# the TUI screen, whose text column is narrower than the terminal.
IMAP_VS_POP3 = """\
This provider offers both IMAP and POP3:
- IMAP keeps your mail on the server and syncs folders and read or
  flagged marks with your phone and other computers. Choose it unless
  you know you want POP3.
- POP3 downloads the inbox to this machine. Other devices do not see
  what you read, file or delete here, and there are no server folders."""

PASSWORD_NOTE = """\
Your password is asked once and tests both receiving and sending: the
IMAP/POP3 and SMTP passwords are usually the same. Providers with
two-step verification (Gmail, iCloud, Outlook, Yahoo, Fastmail...)
refuse your normal password here: create an "app password" (a separate
password for one mail program) in your account's security settings."""

FILE_WARNING = """\
The password will be written in plain text into the config file (mode
0600: only you can read it). Anyone with your account or a backup of
the file can read it; a password command (like `pass`) or the system
keyring is safer."""

_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_RESERVED = frozenset({".", "..", "demo"})


class SetupError(MailError):
    """A setup step failed: `str()` says what, `hint` what to try next."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class Plan(Struct, frozen=True):
    """What will be written, once the logins are proven."""

    email: str
    receive: Probe
    send: Probe
    user: str
    send_user: str
    display_name: str = ""
    ca_file: Path | None = None

    @property
    def protocol(self) -> Protocol:
        return self.receive.protocol


class Secret(Struct, frozen=True):
    """The password (for the tests; written only when `storage` is "file") and how to keep it."""

    password: str
    storage: Storage
    command: str | None = None  # storage "command": the user's command


class Options(Struct):
    """Everything the CLI flags (or the TUI fields) can set."""

    email: str = ""
    display_name: str = ""
    account: str | None = None
    protocol: Protocol | None = None
    user: str | None = None
    password_command: str | None = None
    autoconfig_url: str | None = None
    net: NetOptions = field(default_factory=NetOptions)


# --------------------------------------------------------------------------- steps


def check_address(email: str) -> str:
    try:
        domain_of(email)
    except InvalidAddress as exc:
        raise SetupError(str(exc), "run setup again with the full address") from None
    return email.strip()


async def find_servers(
    email: str, opts: Options, report: Report, protocols: Sequence[Protocol] | None = None
) -> Discovery:
    wanted = protocols or ((opts.protocol,) if opts.protocol else RECEIVE_PROTOCOLS)
    try:
        return await discover(
            check_address(email),
            opts.net,
            report,
            protocols=wanted,
            autoconfig_url=opts.autoconfig_url,
        )
    except InvalidAddress as exc:
        raise SetupError(str(exc), "run setup again with the full address") from None


def make_plan(found: Discovery, opts: Options, protocol: Protocol | None = None) -> Plan:
    """Pick the best receive server of `protocol` (default: IMAP if found) and SMTP."""
    choices = found.receive_protocols()
    protocol = protocol or opts.protocol or (choices[0] if choices else None)
    receive = found.best(protocol) if protocol else None
    send = found.best("smtp")
    if receive is None or send is None:
        raise _not_found(found, protocol, missing_send=send is None)
    return Plan(
        email=found.email,
        receive=receive,
        send=send,
        user=opts.user or receive.candidate.username or found.email,
        send_user=opts.user or send.candidate.username or found.email,
        display_name=opts.display_name,
        ca_file=opts.net.ca_file,
    )


def _not_found(found: Discovery, protocol: Protocol | None, missing_send: bool) -> SetupError:
    untrusted = found.untrusted()
    if untrusted:
        p = untrusted[0]
        return SetupError(
            f"{PROTOCOL_NAMES[p.protocol]} server {p.candidate.where} answered, but its TLS "
            f"certificate does not verify: {p.cert_error}",
            "check that the address is right; if your organisation uses its own certificate "
            "authority, run setup again with --ca-file PATH (its CA certificate in PEM). "
            "tui-mail never turns certificate checks off.",
        )
    plain = found.plaintext_only()
    if plain:
        where = ", ".join(p.candidate.where for p in plain[:3])
        return SetupError(
            f"only servers without encryption answered ({where}); tui-mail does not send "
            "your password over an unencrypted connection",
            "ask your provider for the TLS (SSL) or STARTTLS settings",
        )
    if not found.probes or not any(p.reachable for p in found.probes):
        return SetupError(
            f"no mail servers found for {found.domain}",
            "check the spelling of the domain; your provider's help pages list the server "
            "names, which you can write into the config yourself (`tui-mail config init` "
            "writes a commented template)",
        )
    what = (
        "an SMTP server for sending"
        if missing_send
        else (f"a {PROTOCOL_NAMES[protocol]} server" if protocol else "an IMAP or POP3 server")
    )
    return SetupError(
        f"found no usable {what} for {found.domain}",
        "your provider's help pages list the server names; "
        "`tui-mail config init` writes a template to fill in by hand",
    )


def endpoint(
    plan: Plan, role: Literal["receive", "send"], secret: Secret | None, keyring_cmd: str | None
) -> dict[str, object]:
    """The TOML keys of one side of the account (in the order they are written)."""
    probe = plan.receive if role == "receive" else plan.send
    c = probe.candidate
    values: dict[str, object] = {
        "backend": c.protocol,
        "host": c.host,
        "port": c.port,
        "security": probe.security or c.security,
        "user": plan.user if role == "receive" else plan.send_user,
    }
    if secret is not None:
        if secret.storage == "command" and secret.command:
            values["password_command"] = secret.command
        elif secret.storage == "keyring" and keyring_cmd:
            values["password_command"] = keyring_cmd
        elif secret.storage == "file":
            values["password"] = secret.password
    if plan.ca_file is not None:
        values["ca_file"] = str(plan.ca_file.expanduser().resolve())
    return values


def _endpoint_config(plan: Plan, role: Literal["receive", "send"], password: str) -> EndpointConfig:
    v = endpoint(plan, role, None, None)
    return EndpointConfig(
        backend=str(v["backend"]),
        host=str(v["host"]),
        port=int(v["port"]),  # type: ignore[call-overload]
        security=v["security"],  # type: ignore[arg-type]
        user=str(v["user"]),
        password=password,
        ca_file=plan.ca_file,
        timeout=CHECK_TIMEOUT,
        key_path=f"{role} server",
    )


async def verify_logins(plan: Plan, password: str, report: Report) -> None:
    """Log in to the receive and the send server with the backends themselves."""
    from tui_mail.backends.base import BackendContext
    from tui_mail.backends.registry import backend_class

    receive = _endpoint_config(plan, "receive", password)
    send = _endpoint_config(plan, "send", password)
    account = AccountConfig(name="setup", email=plan.email, receive=receive, send=send)
    for role, ep in (("receive", receive), ("send", send)):
        name = PROTOCOL_NAMES[ep.backend]
        report(Step("login", f"logging in to {name} {ep.host}:{ep.port} as {ep.user}"))
        backend = backend_class(ep.backend, role)(BackendContext(account, ep))
        try:
            async with asyncio.timeout(CHECK_TIMEOUT * 2):
                detail = await backend.check()
        except AuthError as exc:
            raise SetupError(
                f"the {name} server refused the login: {exc}",
                "check the password (it is case-sensitive). If your provider uses two-step "
                "verification, create an app password and use it instead. If your login name "
                "is not your address, give it with --user.",
            ) from None
        except TLSError as exc:
            raise SetupError(
                f"a secure connection to {name} {ep.host}:{ep.port} failed: {exc}",
                "if your organisation uses its own certificate authority, give its "
                "certificate with --ca-file PATH",
            ) from None
        except (ConnectError, TimeoutError) as exc:
            raise SetupError(
                f"could not log in to {name} {ep.host}:{ep.port}: {exc or 'no answer'}",
                "check your network connection and try again in a moment",
            ) from None
        except MailError as exc:
            raise SetupError(f"the {name} login test failed: {exc}") from None
        finally:
            await backend.abort()
        report(Step("login", f"{name}: {detail}", True))


def password_from_command(command: str) -> str:
    from tui_mail.config.secrets import run_secret_command

    try:
        return run_secret_command(command, "--password-command")
    except ConfigError as exc:
        raise SetupError(
            f"the password command failed: {exc.detail}",
            f"run it yourself to see what it prints: {command}",
        ) from None


# --------------------------------------------------------------------------- storing


def keyring_available() -> bool:
    """True when the optional `keyring` package has a working backend here."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False
    try:
        return not isinstance(keyring.get_keyring(), fail.Keyring)
    except Exception:  # a broken keyring backend must not break setup
        return False


def keyring_command(account: str) -> str:
    # The keyring CLI of the interpreter running tui-mail: always present with the package.
    return shlex.join([sys.executable, "-m", "keyring", "get", KEYRING_SERVICE, account])


def suggest_account_name(email: str, taken: Sequence[str]) -> str:
    """The domain's first label ("example" for you@mail.example.com is "mail"; fine)."""
    domain = email.rpartition("@")[2].lower()
    base = re.sub(r"[^A-Za-z0-9_-]", "", domain.split(".")[0]) or "mail"
    if base in _RESERVED:
        base = f"{base}-mail"
    taken_lower = {t.lower() for t in taken}
    name, n = base, 2
    while name.lower() in taken_lower:
        name, n = f"{base}-{n}", n + 1
    return name


def account_name_problem(name: str, taken: Sequence[str]) -> str | None:
    if not _ACCOUNT_NAME.fullmatch(name) or name in _RESERVED:
        return (
            f"{name!r} cannot be an account name: use letters, digits, '_', '.' and '-' "
            "('demo' is reserved)"
        )
    if name.lower() in {t.lower() for t in taken}:
        return f"an account named {name!r} already exists"
    return None


def save(path: Path, name: str, plan: Plan, secret: Secret) -> AppConfig:
    """Store the secret as chosen and write the account; all or nothing."""
    problem = account_name_problem(name, existing_accounts(path))
    if problem:
        raise SetupError(problem, "choose another name with --account")
    try:
        check_existing(path)
    except WriteError as exc:
        raise SetupError(str(exc), exc.hint) from None
    kr_cmd = keyring_command(name) if secret.storage == "keyring" else None
    fields: dict[str, object] = {"email": plan.email}
    if plan.display_name:
        fields["name"] = plan.display_name
    table = account_table(
        fields,
        endpoint(plan, "receive", secret, kr_cmd),
        endpoint(plan, "send", secret, kr_cmd),
        comment=setup_comment(_sources(plan)),
    )
    if secret.storage == "keyring":
        _keyring_set(name, secret.password)
    try:
        return add_account(path, name, table, private=secret.storage == "file")
    except WriteError as exc:
        if secret.storage == "keyring":
            _keyring_delete(name)
        raise SetupError(str(exc), exc.hint) from None
    except BaseException:
        if secret.storage == "keyring":
            _keyring_delete(name)
        raise


def _sources(plan: Plan) -> str:
    sources = dict.fromkeys((plan.receive.candidate.source, plan.send.candidate.source))
    return " and ".join(s if s != "guess" else "probing" for s in sources)


def _keyring_set(account: str, password: str) -> None:
    import keyring

    try:
        keyring.set_password(KEYRING_SERVICE, account, password)
    except Exception as exc:  # every backend has its own errors
        raise SetupError(
            f"the system keyring refused the password: {exc}",
            "choose a password command or the config file instead",
        ) from None


def _keyring_delete(account: str) -> None:
    import keyring

    try:
        keyring.delete_password(KEYRING_SERVICE, account)
    except Exception:  # best effort: the config that would use it was not written
        pass


# --------------------------------------------------------------------------- CLI flows


Say = Callable[[str], None]


def print_step(say: Say) -> Report:
    marks = {True: "+", False: "-", None: " "}

    def report(step: Step) -> None:
        say(f"  {marks[step.ok]} [{step.stage}] {step.text}")

    return report


async def run_noninteractive(path: Path, opts: Options, say: Say) -> AppConfig:
    """`tui-mail setup --email A --non-interactive`: every answer comes from `opts`."""
    email = check_address(opts.email)
    if not opts.password_command:
        raise SetupError(
            "--non-interactive needs --password-command",
            "give a command that prints the password, e.g. --password-command 'pass show mail/you'",
        )
    check_existing_or_fail(path)
    taken = existing_accounts(path)
    name = opts.account or suggest_account_name(email, taken)
    problem = account_name_problem(name, taken)
    if problem:
        raise SetupError(problem, "choose another name with --account")
    password = await asyncio.to_thread(password_from_command, opts.password_command)
    say(f"Looking for the mail servers of {email}:")
    found = await find_servers(email, opts, print_step(say))
    plan = make_plan(found, opts)
    await verify_logins(plan, password, print_step(say))
    config = save(path, name, plan, Secret(password, "command", opts.password_command))
    say(_done(path, name, config))
    return config


def check_existing_or_fail(path: Path) -> None:
    # Before any network work: a broken config would make the final write fail anyway.
    try:
        check_existing(path)
    except WriteError as exc:
        raise SetupError(str(exc), exc.hint) from None


def _done(path: Path, name: str, config: AppConfig) -> str:
    lines = [f"Account {name!r} written to {path}."]
    lines.extend(f"warning: {w}" for w in config.warnings)
    lines.append("Next: run `tui-mail` to read your mail, or `tui-mail sync` to fetch it now.")
    return "\n".join(lines)


class Prompter:
    """Console questions; tests replace `ask` and `secret`."""

    def __init__(self, say: Say = print) -> None:
        self.say = say

    def ask(self, question: str, default: str = "") -> str:
        shown = f"{question} [{default}]: " if default else f"{question}: "
        answer = input(shown).strip()
        return answer or default

    def secret(self, question: str) -> str:
        return getpass.getpass(f"{question}: ")

    def choose(self, question: str, options: Sequence[str], default: int = 1) -> int:
        for n, option in enumerate(options, 1):
            self.say(f"  {n}) {option}")
        while True:
            answer = self.ask(question, str(default))
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return int(answer)
            self.say(f"  please type a number from 1 to {len(options)}")


async def run_interactive(path: Path, opts: Options, ui: Prompter) -> AppConfig:
    say = ui.say
    check_existing_or_fail(path)
    say("Set up a mail account. Ctrl+C stops at any time; nothing is written until the end.")
    while True:
        try:
            email = check_address(opts.email or ui.ask("Your email address"))
            break
        except SetupError as exc:
            say(f"  {exc}")
            opts.email = ""
    opts.display_name = opts.display_name or ui.ask("Your name, for the From: line (optional)")
    say(f"Looking for the mail servers of {email}:")
    found = await find_servers(email, opts, print_step(say))
    protocol = opts.protocol
    choices = found.receive_protocols()
    if protocol is None and len(choices) > 1:
        say("")
        say(IMAP_VS_POP3)
        protocol = choices[ui.choose("Receive with", ["IMAP (recommended)", "POP3"]) - 1]
    plan = make_plan(found, opts, protocol)
    say(f"Receive: {plan.receive.describe()}")
    say(f"Send:    {plan.send.describe()}")

    if opts.password_command:
        password = await asyncio.to_thread(password_from_command, opts.password_command)
        await verify_logins(plan, password, print_step(say))
        secret = Secret(password, "command", opts.password_command)
    else:
        say("")
        say(PASSWORD_NOTE)
        password = await _password_loop(ui, plan, opts)
        plan = _with_user(plan, opts)
        secret = _ask_storage(ui, password)

    taken = existing_accounts(path)
    name = opts.account or ""
    while True:
        name = name or ui.ask("Account name", suggest_account_name(email, taken))
        problem = account_name_problem(name, taken)
        if not problem:
            break
        say(f"  {problem}")
        name = ""
    config = save(path, name, plan, secret)
    say(_done(path, name, config))
    return config


async def _password_loop(ui: Prompter, plan: Plan, opts: Options) -> str:
    for attempt in range(3):
        password = ui.secret(f"Password for {plan.user}")
        try:
            await verify_logins(_with_user(plan, opts), password, print_step(ui.say))
            return password
        except SetupError as exc:
            ui.say(f"  {exc}")
            if exc.hint:
                ui.say(f"  {exc.hint}")
            if attempt == 2 or "refused the login" not in str(exc):
                raise
            user = ui.ask("Login name", opts.user or plan.user)
            opts.user = user if user != plan.email else None
    raise AssertionError("unreachable")


def _with_user(plan: Plan, opts: Options) -> Plan:
    if not opts.user:
        return plan
    from msgspec.structs import replace

    return replace(plan, user=opts.user, send_user=opts.user)


def _ask_storage(ui: Prompter, password: str) -> Secret:
    options = ["a password command (e.g. `pass show mail/you`): safest"]
    kinds: list[Storage] = ["command"]
    if keyring_available():
        options.append("the system keyring")
        kinds.append("keyring")
    options.append("in the config file (plain text, mode 0600)")
    kinds.append("file")
    ui.say("")
    ui.say("How should tui-mail get the password later?")
    kind = kinds[ui.choose("Keep the password in", options) - 1]
    if kind == "file":
        ui.say(FILE_WARNING)
        return Secret(password, "file")
    if kind == "keyring":
        return Secret(password, "keyring")
    while True:
        command = ui.ask("Command that prints the password")
        if not command:
            continue
        try:
            printed = password_from_command(command)
        except SetupError as exc:
            ui.say(f"  {exc}")
            continue
        if printed != password:
            ui.say("  that command prints a different password than the one you typed")
            continue
        return Secret(password, "command", command)


# --------------------------------------------------------------------------- `tui-mail setup`

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def parse_resolver(text: str) -> tuple[str, int]:
    """ "IP", "IP:PORT" or "[IPv6]:PORT" -> (ip, port)."""
    from tui_mail.setup.probe import is_ip

    host, port = text.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
    if not is_ip(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--resolver expects IP or IP:PORT, got {text!r}")
    return host, int(port)


def parse_port_map(items: Sequence[str]) -> dict[int, int]:
    """["993=10993", ...] -> {993: 10993}."""
    out: dict[int, int] = {}
    for item in items:
        std, sep, actual = item.partition("=")
        if not sep or not std.isdigit() or not actual.isdigit():
            raise ValueError(f"--probe-port expects STANDARD=ACTUAL like 993=10993, got {item!r}")
        out[int(std)] = int(actual)
    return out


def options_from_args(args: object) -> Options:
    """The argparse namespace of `tui-mail setup` as Options (ValueError on bad values)."""
    get = args.__dict__.get
    ca_file = Path(get("ca_file")).expanduser() if get("ca_file") else None
    if ca_file is not None and not ca_file.is_file():
        raise ValueError(f"--ca-file {ca_file}: no such file")
    url = get("autoconfig_url")
    if url:
        from tui_mail.setup.autoconfig import url_allowed

        if not url_allowed(url):
            raise ValueError("--autoconfig-url must be https (http only for this machine)")
    net = NetOptions(
        resolver=parse_resolver(get("resolver")) if get("resolver") else None,
        ca_file=ca_file.resolve() if ca_file else None,
        timeout=float(get("timeout") or 10.0),
        port_map=parse_port_map(get("probe_port") or []),
    )
    return Options(
        email=(get("email") or "").strip(),
        display_name=get("name") or "",
        account=get("account"),
        protocol=get("protocol"),
        user=get("user"),
        password_command=get("password_command"),
        autoconfig_url=url,
        net=net,
    )


def main(path: Path, args: object, say: Say = print) -> int:
    """Run `tui-mail setup`; the exit status. Errors go to stderr with a hint."""

    def err(text: str) -> None:
        print(text, file=sys.stderr)

    try:
        opts = options_from_args(args)
    except ValueError as exc:
        err(f"tui-mail setup: {exc}")
        return EXIT_USAGE
    interactive = not args.__dict__.get("non_interactive")
    if not interactive and not opts.email:
        err("tui-mail setup: --non-interactive needs --email ADDRESS")
        return EXIT_USAGE
    try:
        if interactive:
            asyncio.run(run_interactive(path, opts, Prompter(say)))
        else:
            asyncio.run(run_noninteractive(path, opts, say))
    except SetupError as exc:
        err(f"tui-mail setup: {exc}")
        if exc.hint:
            err(f"  what to try: {exc.hint}")
        err(f"  nothing was written to {path}")
        return EXIT_FAIL
    except EOFError:
        err("tui-mail setup: no answer on standard input; for scripts use --non-interactive")
        err(f"  nothing was written to {path}")
        return EXIT_FAIL
    except KeyboardInterrupt:
        err(f"\ntui-mail setup: stopped; nothing was written to {path}")
        return 130
    return EXIT_OK
