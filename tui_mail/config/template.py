"""The commented config.toml that `tui-mail config init` writes."""

from __future__ import annotations

import os
from pathlib import Path

from tui_mail.core.errors import ConfigError

CONFIG_TEMPLATE = """\
# tui-mail configuration (TOML: https://toml.io).
#
# Lines starting with "#" are comments. To use an example below, delete the
# "# " in front of its lines and fill in your details. Then check the file:
#
#     tui-mail config check
#
# Want to look around first?  Run  tui-mail demo  (no config needed).
#
# Paths may start with "~" (your home directory). A relative path is taken
# relative to the directory of this file.
#
# Keep secrets out of this file: prefer password_command over password.
# If you do write a password here, run  chmod 600  on this file.


# ============================================================== accounts
#
# Each account is a table [accounts.NAME]. NAME may contain letters, digits,
# "_", "." and "-" (it names the account's mail directory; "demo" is
# reserved). Accounts are shown in the order they appear here.
#
# Account keys:
#   email                (required) your address, e.g. "you@example.com"
#   name                 your display name for the From: header
#   signature            text added below new messages ("\\n" for a new line)
#   aliases              your other addresses, e.g. ["you@example.org"];
#                        replies from them are sent as them
#
# [accounts.NAME.receive] says where mail comes from:
#   backend              (required) "imap", "pop3" or "maildir"
#
#   With backend "maildir" (mail another program delivers or syncs):
#   path                 (required) the Maildir directory, e.g. "~/Maildir"
#
#   With backend "imap" or "pop3":
#   host                 (required) the server, e.g. "imap.example.com"
#   security             "tls" (default; encrypted from the first byte),
#                        "starttls" (plain connection upgraded to TLS), or
#                        "none" (no encryption; refused unless the host is
#                        localhost, 127.0.0.0/8 or ::1, or allow_plaintext
#                        is true)
#   port                 default follows backend and security:
#                        IMAP 993 for tls, 143 for starttls/none;
#                        POP3 995 for tls, 110 for starttls/none
#   user                 the login name, often your email address
#   password_command     a shell command that prints the password,
#                        e.g. "pass show mail/work" (runs with a 30 s limit)
#   password             the password itself (avoid; see chmod note above)
#   oauth_token_command  a shell command that prints an OAuth2 access token
#   ca_file              a PEM file of CA certificates to trust instead of
#                        the system's (for a self-signed server); must exist
#   allow_plaintext      true to allow security "none" to a remote host
#   timeout              network timeout in seconds (default 30)
#
#   Extra keys for "imap":
#   poll_interval        seconds between checks for new mail
#   idle                 true to be told of new mail at once (IMAP IDLE; default)
#   folders              only sync folders matching these patterns, e.g.
#                        ["Sent", "Lists/*"] (INBOX always syncs)
#   server_saves_sent    true if the server files sent mail by itself
#   push_folder          the folder IDLE watches (default "INBOX")
#   fetch_batch          messages asked for per FETCH (default 5000)
#   max_message_size     skip (and report) messages larger than this many bytes
#
#   Extra keys for "pop3":
#   delete_after_download  true to remove mail from the server once saved
#   delete_after_days      remove it from the server after this many days
#   max_message_size       skip (and report) messages larger than this many bytes
#   poll_interval          seconds between checks for new mail
#
# [accounts.NAME.send] says how mail goes out:
#   backend              (required) "smtp" or "local"; may be left out
#                        entirely when receive uses "maildir" (then "local")
#
#   With backend "smtp": host, security, port, user, password_command,
#   password, oauth_token_command, ca_file, allow_plaintext and timeout as
#   above; the default port is 465 for tls, 587 for starttls, 25 for none.
#   server_saves_sent    true if the server files sent mail by itself
#                        (then no copy is saved to your Sent folder)
#
#   With backend "local" (hand mail to the system's sendmail):
#   path                 the sendmail program, e.g. "/usr/sbin/sendmail"


# ---- Example: an IMAP + SMTP account ----------------------------------
# [accounts.work]
# email = "you@example.com"
# name = "Your Name"
# signature = "-- \\nYour Name"
# aliases = ["you@example.org"]
#
# [accounts.work.receive]
# backend = "imap"
# host = "imap.example.com"
# security = "tls"
# port = 993
# user = "you@example.com"
# password_command = "pass show mail/work"
# idle = true
#
# [accounts.work.send]
# backend = "smtp"
# host = "smtp.example.com"
# security = "starttls"
# port = 587
# user = "you@example.com"
# password_command = "pass show mail/work"


# ---- Example: a local Maildir (works as it is) -------------------------
# [accounts.home]
# email = "you@localhost"
#
# [accounts.home.receive]
# backend = "maildir"
# path = "~/Maildir"
#
# No [accounts.home.send] table is needed: mail goes out with "local".


# ============================================================== ui
#
#   theme                colour theme name (default "default")
#   keys                 key binding preset: "vim" (default) or "mutt"
#   layout               message list and reader: "auto" (default; side by
#                        side on wide terminals), "beside" or "below"
#   open_command         program that opens an attachment, as an argument
#                        list (no shell); "{}" stands for the file, else it
#                        is added at the end (default ["xdg-open"])
#   save_dir             folder offered when saving an attachment
#   address_book_cmd     extra addresses for Tab completion in the composer
#                        (after those seen in mail, ranked by use): a program
#                        as an argument list (no shell); "{}" stands for what
#                        was typed, else it is added at the end. It prints
#                        "address<TAB>name" lines and gets 3 seconds
#   notify               new mail while tui-mail runs: "off" (default),
#                        "bell", or a desktop notification sent through the
#                        terminal: "osc9" (iTerm2, kitty, WezTerm, foot) or
#                        "osc777" (VTE terminals: GNOME Terminal, Tilix)
#   hyperlinks           links in a message are clickable (OSC 8) where the
#                        terminal supports it (default true)
#
# [ui]
# theme = "default"
# keys = "vim"
# layout = "auto"
# open_command = ["xdg-open"]
# save_dir = "~/Downloads"
# address_book_cmd = ["khard", "email", "--parsable", "{}"]
# notify = "off"
# hyperlinks = true


# ============================================================== keys
#
# Change single key bindings on top of the preset: each key of [keys] is an
# action id, each value a key like "ctrl+r" or a list of keys like ["r", "R"].
#
# [keys]
# sync_now = ["ctrl+r", "f5"]
"""


def write_template(path: Path) -> None:
    """Write CONFIG_TEMPLATE to `path` (mode 0600); never overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            "a config file already exists here; edit it, or move it away to start afresh",
            file=str(path),
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(CONFIG_TEMPLATE)
