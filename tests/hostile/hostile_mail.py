"""Hostile messages for the terminal, markup and sender-spoofing tests, and the probes
that read what the app would write to a terminal.

Each message is built as raw bytes, the way an attacker would send it: controls raw in a
header, hidden in RFC 2047 encoded words (Q and B), in quoted-printable or base64
bodies, in RFC 2231 attachment names. Every payload carries a marker word so a test can
find where it landed on the screen.
"""

from __future__ import annotations

import base64
import io
import quopri
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostile.maildir_app import fill, select, wait_for

# --- payloads --------------------------------------------------------------------------

ESC = "\x1b"
BEL = "\x07"
ST = ESC + "\\"
OSC_TITLE = f"{ESC}]0;PWNED-TITLE{BEL}"  # set the window / pane title
OSC_TITLE_ST = f"{ESC}]2;PWNED-TITLE2{ST}"
WINDOW_NAME = f"{ESC}kPWNED-WINDOW{ST}"  # tmux/screen: rename the window
OSC_52 = f"{ESC}]52;c;{base64.b64encode(b'rm -rf ~').decode()}{BEL}"  # set the clipboard
OSC_8 = f"{ESC}]8;;https://evil.example/{ST}click{ESC}]8;;{ST}"  # a hidden hyperlink
CSI_CLEAR = f"{ESC}[2J{ESC}[H"
CSI_RED = f"{ESC}[31m"
DCS = f"{ESC}P+q544e{ST}"  # a terminfo query: the terminal would answer on stdin
C1_CSI = "\x9b31m"  # the 8-bit CSI
C1_OSC = "\x9d0;PWNED-C1\x9c"  # the 8-bit OSC ... ST
RLO = "\u202e"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"

ALL_ATTACKS = (
    OSC_TITLE
    + OSC_TITLE_ST
    + WINDOW_NAME
    + OSC_52
    + OSC_8
    + CSI_CLEAR
    + CSI_RED
    + DCS
    + C1_CSI
    + C1_OSC
    + BEL
    + "\x08\x08\x08"
    + BIDI
    + ZERO_WIDTH
)

MARKUP = [
    "[b]bold?",
    "[/",
    "[/]",
    "[@click=app.quit]x[/]",
    "[link=https://evil.example]y[/link]",
    "[on red]z",
    "[@click=screen.dismiss]d[/]",
]
MARKUP_TEXT = " ".join(MARKUP)

# Characters that must never reach the terminal from mail: C0 (but the line feed Rich
# itself writes between lines is filtered out separately), DEL, C1, bidi controls and
# zero-width characters.
FORBIDDEN = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200b-\u200f\u2060\ufeff\u061c]"
)

# --- building messages --------------------------------------------------------------


def q_word(text: str) -> str:
    """`text` as one RFC 2047 Q encoded word (every byte encoded: nothing is left raw)."""
    return "=?utf-8?q?" + "".join(f"={b:02X}" for b in text.encode()) + "?="


def b_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def qp(text: str) -> bytes:
    return quopri.encodestring(text.encode(), quotetabs=True)


def b64(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return base64.encodebytes(data)


@dataclass(frozen=True)
class Sample:
    message_id: str  # without the brackets
    raw: bytes
    what: str  # how the attack is carried, for messages in assertions


def _message(
    mid: str,
    subject: str,
    body: bytes,
    *,
    sender: str = "Mallory <mallory@evil.example>",
    cte: str = "8bit",
    ctype: str = "text/plain; charset=utf-8",
    extra: str = "",
) -> bytes:
    head = (
        f"From: {sender}\r\n"
        "To: alice@example.test\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
        f"Message-ID: <{mid}>\r\n"
        f"{extra}"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: {ctype}\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n"
        "\r\n"
    )
    return head.encode("utf-8", "surrogateescape") + body


def _with_attachment(mid: str, subject: str, name: str, how: str) -> bytes:
    if how == "2231":
        param = "filename*=utf-8''" + urllib.parse.quote(name, safe="")
    else:  # an RFC 2047 word inside the quoted parameter, as many mailers send it
        param = f'filename="{b_word(name)}"'
    body = (
        "--BOUND\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "see attachment\r\n"
        "--BOUND\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Disposition: attachment; {param}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{base64.b64encode(b'MZ not really').decode()}\r\n"
        "--BOUND--\r\n"
    ).encode()
    return _message(mid, subject, body, ctype='multipart/mixed; boundary="BOUND"')


def terminal_samples() -> list[Sample]:
    """One message per carrier of terminal attacks."""
    body_text = (
        f"BODYMARK start {ALL_ATTACKS} end\r\n"
        "line\rover\x08\x08\x08\x08written\r\n"
        f"invoice{RLO}gpj.exe and a{ZERO_WIDTH}b\r\n"
    )
    return [
        Sample(
            "raw-subject@x",
            _message(
                "raw-subject@x",
                f"RAWSUBJ {OSC_TITLE}{WINDOW_NAME}{CSI_CLEAR}{C1_CSI}{BEL}\x08{RLO}tail",
                b"raw controls in the subject\r\n",
            ),
            "raw controls in the Subject header",
        ),
        Sample(
            "q-subject@x",
            _message(
                "q-subject@x",
                q_word(f"QSUBJ {OSC_52}{OSC_TITLE_ST}{DCS}\r\nX-Injected: 1"),
                b"encoded controls in the subject\r\n",
            ),
            "OSC 52, OSC 2, DCS and CR/LF in a Q encoded Subject",
        ),
        Sample(
            "b-subject@x",
            _message(
                "b-subject@x",
                b_word(f"BSUBJ {C1_OSC}{OSC_8}{ZERO_WIDTH}{BIDI}line1\nline2"),
                b"base64 encoded controls in the subject\r\n",
                sender=b_word(f"NAMEMARK {OSC_TITLE}{CSI_RED}{RLO}moc.evil") + " <m@x.example>",
            ),
            "C1, OSC 8, bidi, zero-width, LF in a B encoded Subject; OSC in the From name",
        ),
        Sample(
            "qp-body@x",
            _message("qp-body@x", "QP body", qp(body_text), cte="quoted-printable"),
            "every attack in a quoted-printable body",
        ),
        Sample(
            "b64-body@x",
            _message("b64-body@x", "B64 body", b64(body_text), cte="base64"),
            "every attack in a base64 body",
        ),
        Sample(
            "html-body@x",
            _message(
                "html-body@x",
                "HTML body",
                qp(f"<p>HTMLMARK {ALL_ATTACKS}</p><a href='https://evil.example/{ESC}]0;x'>l</a>"),
                cte="quoted-printable",
                ctype="text/html; charset=utf-8",
            ),
            "attacks in an HTML body and an href",
        ),
        Sample(
            "reversed@x",
            _with_attachment("reversed@x", "Your invoice", f"invoice{RLO}gpj.exe", "2231"),
            "an attachment name reversed by RLO (RFC 2231)",
        ),
        Sample(
            "esc-attachment@x",
            _with_attachment(
                "esc-attachment@x",
                "Attachment with escapes",
                f"ATTMARK{OSC_TITLE}{OSC_52}.pdf",
                "2047",
            ),
            "OSC title and OSC 52 in an RFC 2047 attachment name",
        ),
    ]


# Folder names carrying attacks (the Maildir store escapes them on disk; the name
# itself reaches the folder pane, the status line and the move picker).
HOSTILE_FOLDERS = [
    f"FOLDMARK{OSC_TITLE}{OSC_52}\r\nNEXTLINE",
    f"Bidi{RLO}gpj.exe{ZERO_WIDTH}",
    "[@click=app.quit]FoldQuit[/]",
    "[link=https://evil.example]FoldLink[/link]",
]

# Server text as it reaches the UI (`* OK [ALERT] ...`, a tagged NO's text).
HOSTILE_ALERTS = [
    f"[ALERT] ALERTMARK {OSC_TITLE}{OSC_52}{CSI_CLEAR}{C1_CSI}{BEL}{RLO}",
    f"NO NOMARK {DCS}{OSC_8}\r\n* OK injected second line {ZERO_WIDTH}",
    "[ALERT] [@click=app.quit]AlertQuit[/] [link=https://evil.example]AlertLink[/link]",
]


def markup_samples() -> list[Sample]:
    """Subjects, names, bodies and attachment names that look like Textual markup."""
    return [
        Sample(
            f"markup-{n}@x",
            _message(
                f"markup-{n}@x",
                f"MK{n} {text}",
                f"MKBODY{n} {text}\r\n{MARKUP_TEXT}\r\n".encode(),
                sender=f'"{text}" <markup{n}@evil.example>',
            ),
            f"markup {text!r} in subject, name and body",
        )
        for n, text in enumerate(MARKUP)
    ] + [
        Sample(
            "markup-attachment@x",
            _with_attachment(
                "markup-attachment@x", "Markup attachment", "[@click=app.quit]ATT[/].pdf", "2231"
            ),
            "markup in an attachment name",
        ),
        Sample(
            "markup-encoded@x",
            _message(
                "markup-encoded@x",
                q_word("[@click=app.quit]QMK[/]"),
                b64("[@click=app.quit]B64MK[/] [link=https://evil.example]y[/link]\n"),
                sender=f"{b_word('[@click=app.quit]NMK[/]')} <n@evil.example>",
                cte="base64",
            ),
            "markup inside RFC 2047 words and a base64 body",
        ),
    ]


def spoof_samples() -> list[Sample]:
    def msg(mid: str, head: str) -> Sample:
        raw = (
            f"{head}"
            "To: alice@example.test\r\n"
            f"Subject: spoof {mid}\r\n"
            "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
            f"Message-ID: <{mid}>\r\n"
            "\r\n"
            "Please pay.\r\n"
        ).encode()
        return Sample(mid, raw, head.strip())

    return [
        msg("plain@x", "From: Bob <bob@example.test>\r\n"),
        msg("several@x", "From: ceo@bank.example, mallory@evil.example\r\n"),
        msg("name-address@x", 'From: "paypal@paypal.com" <evil@x.example>\r\n'),
        msg(
            "encoded-name-address@x",
            f"From: {q_word('service@paypal.com <service@paypal.com>')} <evil@x.example>\r\n",
        ),
        msg("malformed@x", "From: paypal.com <<evil@x.example\r\n"),
        msg("no-address@x", "From: PayPal Service\r\n"),
        msg(
            "reply-to@x",
            "From: Bank <help@bank.example>\r\nReply-To: Bank <collect@evil.example>\r\n",
        ),
        msg(
            "two-from@x",
            "From: Bank <help@bank.example>\r\nFrom: Mallory <mallory@evil.example>\r\n",
        ),
    ]


# --- what reaches the terminal ------------------------------------------------------

# Textual's own output: SGR styling, cursor moves and mode switches (CSI with numeric
# parameters), and OSC 8 hyperlinks whose target is printable ASCII (only our own link
# list produces them, after checking the URL).
_OWN_SEQUENCES = re.compile(
    r"\x1b\[[0-9;:?]*[A-Za-z]" r"|\x1b\]8;[\x21-\x7e]*;[\x21-\x7e]*\x1b\\" r"|\x1b\]8;;\x1b\\"
)


def terminal_stream(app: Any) -> str:
    """Exactly what the app's driver would write for a full repaint of the screen.

    `App._display` turns the compositor's update into this string with the app's own
    console (in `run_test` the headless driver then drops it). Computing it here gives
    the bytes a real terminal would receive, Textual's escape sequences included.
    """
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    return update.render_segments(app.console)


def foreign_controls(stream: str) -> list[str]:
    """Every control, bidi or zero-width character in `stream` that is not part of one of
    Textual's own sequences, with some context."""
    rest = _OWN_SEQUENCES.sub("", stream)
    return [repr(rest[max(0, m.start() - 20) : m.end() + 20]) for m in FORBIDDEN.finditer(rest)]


def osc8_targets(stream: str) -> list[str]:
    """The URL of every OSC 8 hyperlink in the stream."""
    return re.findall(r"\x1b\]8;[^;\x1b]*;([^\x1b]+)\x1b\\", stream)


# --- the account and the screen -------------------------------------------------------


def hostile_account(root: Path, samples: Sequence[Sample], folders: Sequence[str] = ()) -> int:
    """A Maildir at `root` holding `samples` in INBOX and one plain message in each of
    `folders`; returns how many messages INBOX holds."""
    fill(root, [s.raw for s in samples])
    plain = _message("folder-filler@x", "filler", b"nothing to see\r\n")
    for folder in folders:
        fill(root, [plain], folder=folder)
    return len(samples)


def screen_lines(app: Any) -> list[str]:
    """The screen as lines of plain text, what the user reads."""
    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text(styles=False).splitlines()


def line_with(lines: list[str], text: str) -> str:
    """The one screen line holding `text` (fails if none or several do)."""
    found = [line for line in lines if text in line]
    assert len(found) == 1, f"{text!r} is on {len(found)} lines:\n" + "\n".join(lines)
    return found[0]


async def open_message(pilot: Any, app: Any, message_id: str) -> list[str]:
    """Select and open `message_id` in the app; the screen's lines once it shows."""
    select(app, message_id)
    await pilot.press("enter")
    await wait_for(
        pilot,
        lambda: (
            app.main.view.raw is not None
            and app.main.view.envelope is not None
            and app.main.view.envelope.message_id == message_id
        ),
    )
    return screen_lines(app)
