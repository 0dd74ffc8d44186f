"""The validated shape of config.toml. `load.py` builds these; nothing else parses TOML."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from msgspec import Struct, field

Security = Literal["tls", "starttls", "none"]

# (backend, security) -> default port
DEFAULT_PORTS: dict[tuple[str, str], int] = {
    ("imap", "tls"): 993,
    ("imap", "starttls"): 143,
    ("imap", "none"): 143,
    ("pop3", "tls"): 995,
    ("pop3", "starttls"): 110,
    ("pop3", "none"): 110,
    ("smtp", "tls"): 465,
    ("smtp", "starttls"): 587,
    ("smtp", "none"): 25,
}


class EndpointConfig(Struct, frozen=True):
    """One side of an account: where to receive from, or how to send.

    `options` keeps backend-specific keys (for example POP3's
    `delete_after_download`) that the generic schema does not know.
    """

    backend: str
    host: str | None = None
    port: int | None = None
    security: Security = "tls"
    user: str | None = None
    password: str | None = None
    password_command: str | None = None
    oauth_token_command: str | None = None
    ca_file: Path | None = None
    allow_plaintext: bool = False
    path: Path | None = None  # maildir receive / local send
    timeout: float = 30.0
    options: dict[str, object] = field(default_factory=dict)
    key_path: str = ""  # "accounts.work.receive", for error messages


class AccountConfig(Struct, frozen=True):
    name: str
    email: str
    receive: EndpointConfig
    send: EndpointConfig
    display_name: str = ""
    signature: str = ""
    aliases: tuple[str, ...] = ()


class UiConfig(Struct, frozen=True):
    theme: str = "default"
    keys: str = "vim"  # preset name
    layout: str = "auto"  # auto | beside | below
    # Opens an attachment: an argument list (never a shell string); "{}" is the file.
    open_command: tuple[str, ...] = ("xdg-open",)
    save_dir: str = ""  # where attachments are saved by default ("" = ~/Downloads or ~)
    # Address completion from an external program (argv, "{}" = what was typed);
    # it prints "address<TAB>name" lines. Empty: only addresses seen in mail.
    address_book_cmd: tuple[str, ...] = ()
    # New mail arriving while the TUI runs: "off", "bell", or a desktop
    # notification through the terminal, "osc9" (iTerm2, kitty...) or "osc777" (VTE).
    notify: str = "off"
    hyperlinks: bool = True  # links in a message as OSC 8 hyperlinks


class AppConfig(Struct, frozen=True):
    path: Path | None  # the file it came from; None for the built-in demo config
    accounts: dict[str, AccountConfig]
    ui: UiConfig = field(default_factory=UiConfig)
    key_overrides: dict[str, str] = field(default_factory=dict)  # action id -> keys
    searches: dict[str, str] = field(default_factory=dict)  # [searches] name -> query text
    warnings: tuple[str, ...] = ()
