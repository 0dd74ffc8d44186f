"""Outgoing headers: CR, LF, NUL or a line separator in any header or address, typed
by the user or inherited from a replied-to or forwarded message (raw, or hidden in
RFC 2047 encoded words, once or several times over), never adds a header line or a
recipient.

Python 3.11 before 3.11.10 (CVE-2024-6923) writes a decoded encoded word back
unquoted when it folds a header: `msg["Subject"] = "=?utf-8?q?x=0D=0ABcc:_e@x?="`
gives a real Bcc line. The fix (in 3.11.10, 3.12.5, 3.13; backported to Debian's
3.11.2) encodes such a value again. The first tests show what the running interpreter
does; the others show that nothing of ours depends on it: every message is checked as bytes
(header names in the block written, split at CR, LF and CRLF alike, the way a lenient
server reads it) and by its envelope (the recipients the outbox would hand to SMTP).
"""

from __future__ import annotations

import asyncio
import base64
import email.errors
import imaplib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Set
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from hostile.maildir_app import fill, wait_for
from hostile.scripted import ScriptedSmtp, app_config, smtp_account
from tui_mail.backends.base import BackendContext
from tui_mail.backends.smtp.backend import SmtpSendBackend
from tui_mail.compose import build
from tui_mail.compose.build import (
    ComposeError,
    Draft,
    HeaderBlockError,
    build_message,
    envelope,
    header_fields,
    message_bytes,
    parse_address_list,
    strip_bcc,
)
from tui_mail.compose.headers_text import DraftError, parse_draft, render_draft
from tui_mail.compose.reply import forward_attached, forward_inline, reply
from tui_mail.config.schema import AccountConfig, EndpointConfig
from tui_mail.core.errors import MailError
from tui_mail.ui.app import MailApp
from tui_mail.ui.screens.compose import ComposeScreen, start_compose

EVIL = "evil@evil.test"
ME = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
DAVE = "dave@example.test"
ACCOUNT = AccountConfig(
    "alice", ME, EndpointConfig("maildir"), EndpointConfig("local"), display_name="Alice"
)


def _q(text: str) -> str:
    """`text` as one Q-encoded word, every byte escaped."""
    return "=?utf-8?q?" + "".join(f"={b:02X}" for b in text.encode()) + "?="


def _b(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


INJECT = f"Bcc: {EVIL}"
# Each tries to end the header it is in and start "Bcc: evil" (or another header).
PAYLOADS = {
    "crlf": f"x\r\n{INJECT}",
    "lf": f"x\n{INJECT}",
    "cr": f"x\r{INJECT}",
    "nul": f"x\x00{INJECT}",
    "crlf-crlf": f"x\r\n\r\n{INJECT}",
    "fold": f"x\r\n {INJECT}\r\nX-Injected: 1",
    "u2028": f"x\u2028{INJECT}",
    "nel": f"x\x85{INJECT}",
    "q-word": f"=?utf-8?q?x=0D=0ABcc:_{EVIL}?=",
    "q-word-lf": f"=?utf-8?q?x=0ABcc:_{EVIL}?=",
    "q-word-nul": f"=?utf-8?q?x=00Bcc:_{EVIL}?=",
    "b-word": _b(f"x\r\n{INJECT}"),
    "q-word-no-specials": "=?utf-8?q?x=0D=0ABcc=3A_evil=40evil=2Etest?=",
    "adjacent-words": f"=?utf-8?q?x?= =?utf-8?q?=0D=0ABcc:_{EVIL}?=",
    "long-then-word": "y" * 90 + f" =?utf-8?q?x=0D=0ABcc:_{EVIL}?=",
    "non-ascii-then-word": f"Grüße =?utf-8?q?x=0D=0ABcc:_{EVIL}?=",
    "double-encoded": _q(f"=?utf-8?q?x=0D=0ABcc:_{EVIL}?="),
    "triple-encoded": _q(_q(f"x\r\n{INJECT}")),
    "ten-deep": _b(_b(_b(_b(_b(_b(_b(_b(_b(_b(f"x\r\n{INJECT}")))))))))),
    "unknown-charset-word": f"=?x-evil?q?x=0D=0ABcc:_{EVIL}?=",
    "quoted-word": f'"=?utf-8?q?x=0D=0ABcc:_{EVIL}?="',
    # Not a line break: Python 3.11 drops these quotes when it folds a long header,
    # which turned the display name into a second recipient.
    "quoted-comma-long": f'"{EVIL}, ' + "y" * 80 + '"',
    "quoted-comma-short": f'"{EVIL}, Bob"',
    "quoted-comma-non-ascii": f'"Grüße, {EVIL}, ' + "ü" * 40 + '"',
}
# What the top-level header block of anything we build may hold; nothing else.
ALLOWED = {
    "date",
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}


def header_names(raw: bytes) -> list[str]:
    """Names of the top-level header block, lines split at CRLF, bare CR and bare LF
    alike (as the most lenient reader would), up to the first empty line."""
    names: list[str] = []
    for line in re.split(rb"\r\n|\r|\n", raw):
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            continue
        name = line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
        names.append(name)
    return names


def assert_clean(
    raw: bytes, expected_recipients: set[str], *, extra: Set[str] = frozenset()
) -> None:
    names = header_names(raw)
    assert set(names) <= ALLOWED | extra, names
    assert len(names) == len(set(names)), names  # no header twice
    assert b"\x00" not in raw.split(b"\r\n\r\n", 1)[0]
    _, recipients = envelope(raw, ME)
    assert set(recipients) == expected_recipients
    assert EVIL not in recipients
    # What a recipient sees: the same headers, none made from a payload.
    msg = message_from_bytes(raw, policy=policy.default)
    assert "bcc" not in {k.lower() for k in msg.keys()} or "bcc" in extra
    for name, value in msg.items():
        assert "\r" not in str(value) and "\n" not in str(value), (name, value)


# --------------------------------------------------------------------------- the hazard


def test_what_the_stdlib_alone_makes_of_an_encoded_line_break() -> None:
    """The hazard we guard against, on this interpreter: the header registry decodes
    an encoded word, and Python 3.11 before 3.11.10 writes the CRLF it decoded to as a
    real line break (a Bcc line); with the fix it writes the value encoded again.
    Anything else (a line break where no header starts, say) fails here: our gate was
    written for these two. A refusal by the generator's own check
    (verify_generated_headers, 3.11.10+) would be a third safe answer."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = PAYLOADS["q-word"]
    msg.set_content("x")
    refused = getattr(email.errors, "HeaderWriteError", None)
    try:
        raw = msg.as_bytes()
    except Exception as exc:
        if refused is None or not isinstance(exc, refused):
            raise
        return
    names = header_names(raw)
    if "bcc" in names:
        return  # the unfixed interpreter: the hazard itself
    assert sorted(names) == sorted(k.lower() for k in msg.keys()), names
    written = message_from_bytes(raw, policy=policy.default)["Subject"]
    assert str(written) == f"x\r\nBcc: {EVIL}", written  # still one value, encoded


def test_without_our_first_gate_the_stdlib_never_gets_a_header_through() -> None:
    """With header_text() (the first gate) disabled, a draft's encoded line break
    reaches the stdlib as it is: where the stdlib injects, message_bytes() refuses
    the bytes; where it encodes the value again, no header and no recipient is added
    (the decoded Subject still holds the line break: keeping that out is the first
    gate's job, which the other tests check)."""
    draft = Draft(to=(Address("Bob", addr_spec=BOB),), subject=PAYLOADS["q-word"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "header_text", build.one_line)
        msg = build_message(draft, ACCOUNT)
    try:
        raw = message_bytes(msg)
    except HeaderBlockError:
        return
    names = header_names(raw)
    assert sorted(names) == sorted(k.lower() for k in msg.keys()), names
    assert "bcc" not in names
    assert envelope(raw, ME)[1] == [BOB]


def test_the_last_gate_refuses_a_value_the_generator_writes_as_two_lines() -> None:
    """message_bytes() checks the bytes the generator wrote, whatever let a line break
    through: on every Python, a value stored raw (set_raw, no policy check) is written
    as it is, as an encoded word was before the fix."""
    msg = build_message(Draft(to=(Address("Bob", addr_spec=BOB),), subject="s"), ACCOUNT)
    if hasattr(msg.policy, "verify_generated_headers"):  # 3.11.10+: its own check, off
        msg.policy = msg.policy.clone(verify_generated_headers=False)
    del msg["Subject"]
    msg.set_raw("Subject", f"x\r\nBcc: {EVIL}")
    with pytest.raises(HeaderBlockError):
        message_bytes(msg)


# --------------------------------------------------------------------------- typed fields


def _draft_with(field_name: str, payload: str) -> Draft:
    to = (Address("Bob", addr_spec=BOB),)
    if field_name == "subject":
        return Draft(to=to, subject=payload)
    if field_name == "to-name":
        return Draft(to=(Address(build.one_line(payload), addr_spec=BOB),), subject="s")
    if field_name == "cc-name":
        return Draft(to=to, cc=(Address(build.one_line(payload), addr_spec=CAROL),), subject="s")
    if field_name == "from-name":
        return Draft(to=to, from_=Address(build.one_line(payload), addr_spec=ME), subject="s")
    if field_name == "reply-to-name":
        return Draft(to=to, reply_to=(Address(build.one_line(payload), addr_spec=ME),))
    if field_name == "extra":
        return Draft(to=to, subject="s", extra=(("Mail-Followup-To", payload),))
    raise AssertionError(field_name)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
@pytest.mark.parametrize(
    "field_name", ["subject", "to-name", "cc-name", "from-name", "reply-to-name", "extra"]
)
def test_typed_field_adds_no_header_and_no_recipient(field_name: str, payload: str) -> None:
    draft = _draft_with(field_name, payload)
    raw = message_bytes(build_message(draft, ACCOUNT))
    expected = {BOB, CAROL} if field_name == "cc-name" else {BOB}
    assert_clean(raw, expected, extra={"mail-followup-to"} if field_name == "extra" else set())


# A line break typed in the editor is a new line of the text (the user's own header),
# so the editor's text form is tried with every payload that keeps to one line.
ONE_LINE = {k: v for k, v in PAYLOADS.items() if "\r" not in v and "\n" not in v}


@pytest.mark.parametrize("payload", ONE_LINE.values(), ids=ONE_LINE.keys())
@pytest.mark.parametrize("header", ["Subject", "To", "Cc", "From", "Reply-To"])
def test_headers_typed_in_the_editor_stay_in_their_header(header: str, payload: str) -> None:
    """The editor's text form: the payload typed into one header line is refused with
    a message naming the line, or stays inside that header."""
    values = {"From": f"Alice <{ME}>", "To": BOB, "Cc": "", "Subject": "s", "Reply-To": ""}
    if header == "Subject":
        values[header] = payload
    else:
        values[header] = f"{payload} <{ME if header in ('From', 'Reply-To') else CAROL}>"
    text = "".join(f"{k}: {v}\n" for k, v in values.items()) + "\nbody\n"
    parsed = parse_draft(text)
    if isinstance(parsed, DraftError):
        return  # refused with a message naming the line: nothing is sent
    expected = {"To": {CAROL}, "Cc": {BOB, CAROL}}.get(header, {BOB})
    raw = message_bytes(build_message(parsed, ACCOUNT))
    assert_clean(raw, expected)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_a_typed_address_with_a_line_break_is_refused_or_stays_one_address(payload: str) -> None:
    for text in (f"{BOB}{payload}", f"{payload}{BOB}", f"<{BOB}{payload}>", f"{payload} <{BOB}>"):
        try:
            found = parse_address_list(text, "To")
        except ComposeError:
            continue
        assert len(found) == 1 and EVIL not in found[0].addr_spec, found


# --------------------------------------------------------------------------- inherited


def hostile_original(payload: str, where: str) -> bytes:
    """A message to alice whose header `where` carries `payload` (raw bytes, so CR,
    LF and NUL really are in the header as a broken or hostile sender writes them)."""
    fields = {
        "From": f"Bob <{BOB}>",
        "To": f"Alice <{ME}>, Carol <{CAROL}>",
        "Cc": "",
        "Reply-To": "",
        "Subject": "plans",
        "Message-ID": "<orig@example.test>",
        "In-Reply-To": "<parent@example.test>",
        "References": "<root@example.test> <parent@example.test>",
    }
    if where in ("From", "Reply-To"):
        fields[where] = f"{payload} <{BOB}>"
    elif where == "Cc":
        fields[where] = f"{payload} <{CAROL}>"
    elif where == "To":
        fields[where] = f"{ME}, {payload} <{CAROL}>"
    elif where in ("Message-ID", "In-Reply-To"):
        fields[where] = f"<{payload}@example.test>"
    elif where == "References":
        fields[where] = f"<root@example.test> <{payload}> {payload}"
    else:
        fields[where] = payload
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v)
    return (head + "Date: Mon, 03 Nov 2025 10:00:00 +0000\r\n\r\nhello\r\n").encode(
        "utf-8", "surrogateescape"
    )


def _answer(mode: str, raw: bytes) -> tuple[Draft, set[str]]:
    if mode == "reply":
        return reply(raw, ACCOUNT), {BOB}
    if mode == "reply_all":
        return reply(raw, ACCOUNT, reply_all=True), {BOB, CAROL}
    draft = forward_inline(raw, ACCOUNT) if mode == "forward" else forward_attached(raw, ACCOUNT)
    return replace(draft, to=(Address("", addr_spec=DAVE),)), {DAVE}


_INHERITED = [
    pytest.param(payload, where, id=f"{where}-{name}")
    for where in (
        "Subject",
        "From",
        "Reply-To",
        "To",
        "Cc",
        "Message-ID",
        "In-Reply-To",
        "References",
    )
    for name, payload in PAYLOADS.items()
    # Not a case: CRLF + space continues the same header, so a folded address header
    # really lists that address (as a group member) and answering everyone includes it.
    if not (name == "fold" and where in ("From", "Reply-To", "To", "Cc"))
]


@pytest.mark.parametrize(("payload", "where"), _INHERITED)
@pytest.mark.parametrize("mode", ["reply", "reply_all", "forward", "forward_attached"])
def test_inherited_header_adds_no_header_and_no_recipient(
    mode: str, where: str, payload: str
) -> None:
    raw = hostile_original(payload, where)
    draft, expected = _answer(mode, raw)
    if not draft.recipients:  # nobody readable to answer: the user types the address
        draft = replace(draft, to=(Address("", addr_spec=BOB),))
    # Lenient reading of a broken original may drop an address it cannot read (a
    # hostile Reply-To is then ignored, falling back to From), never add one.
    sent = message_bytes(build_message(draft, ACCOUNT))
    _, recipients = envelope(sent, ME)
    assert set(recipients) <= expected | {BOB}
    assert_clean(sent, set(recipients))
    # The draft goes through the editor's text form and back, as in the composer.
    again = parse_draft(render_draft(draft, f"Alice <{ME}>"), draft)
    assert not isinstance(again, DraftError), again
    assert_clean(message_bytes(build_message(again, ACCOUNT)), set(recipients))


def test_forward_as_attachment_keeps_the_hostile_original_inside_its_part() -> None:
    """The forwarded message travels byte for byte, but as the body of a message/rfc822
    part: its header lines are not the outer message's."""
    raw = hostile_original(PAYLOADS["crlf"], "Subject")
    draft, _ = _answer("forward_attached", raw)
    sent = message_bytes(build_message(draft, ACCOUNT))
    assert_clean(sent, {DAVE})
    outer = message_from_bytes(sent, policy=policy.default)
    (part,) = outer.iter_attachments()
    assert part.get_content_type() == "message/rfc822"
    assert EVIL.encode() in sent.split(b"\r\n\r\n", 1)[1]  # there, but only as content


# --------------------------------------------------------------------------- generated


_PIECES = st.sampled_from(
    [
        "\r",
        "\n",
        "\r\n",
        "\x00",
        "\u2028",
        "\x85",
        " ",
        "\t",
        ":",
        "Bcc:",
        "To:",
        f" {EVIL}",
        "=?utf-8?q?",
        "=?utf-8?b?",
        "?=",
        "=0D",
        "=0A",
        "=00",
        "=3A",
        "=40",
        "_",
        '"',
        "<",
        ">",
        ",",
        ";",
        "é",
        "x",
    ]
)
_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=3)), max_size=20).map("".join)


@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(subject=_TEXT, name=_TEXT, encode=st.integers(0, 3))
def test_generated_subjects_and_names_never_inject(subject: str, name: str, encode: int) -> None:
    for _ in range(encode):  # the same text encoded once, twice, three times over
        subject, name = _q(subject), _q(name)
    draft = Draft(
        to=(Address(build.one_line(name), addr_spec=BOB),),
        subject=subject,
        from_=Address(build.one_line(name), addr_spec=ME),
    )
    assert_clean(message_bytes(build_message(draft, ACCOUNT)), {BOB})
    original = hostile_original(subject, "Subject").replace(b"Bob <", name.encode() + b" <", 1)
    answer = reply(original, ACCOUNT)
    if not answer.recipients:  # an unreadable From: the user types the address
        answer = replace(answer, to=(Address("", addr_spec=BOB),))
    sent = message_bytes(build_message(answer, ACCOUNT))
    _, recipients = envelope(sent, ME)
    assert set(recipients) <= {BOB}
    assert_clean(sent, set(recipients))


# --------------------------------------------------------------------------- SMTP


async def test_smtp_backend_refuses_line_breaks_in_the_envelope() -> None:
    """The last line before the wire: an envelope address with CR/LF never becomes an
    SMTP command, and a message that still has Bcc is not sent."""
    async with ScriptedSmtp() as server:
        account = smtp_account("a", server.port, Path("/nonexistent"))
        backend = SmtpSendBackend(BackendContext(account, account.send))
        raw = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: s\r\n\r\nx\r\n"
        for bad in (f"{BOB}\r\nRCPT TO:<{EVIL}>", f"{BOB}\n", f"{BOB}\x00", f"<{BOB}>"):
            with pytest.raises(MailError):
                await backend.send(raw, ME, [bad])
            with pytest.raises(MailError):
                await backend.send(raw, bad, [BOB])
        with pytest.raises(MailError, match="Bcc"):
            await backend.send(b"Bcc: " + EVIL.encode() + b"\r\n" + raw, ME, [BOB])
        assert not any(EVIL.encode() in line for line in server.received)
        result = await backend.send(raw, ME, [BOB])
        assert tuple(result.accepted) == (BOB,)
    rcpts = [line for line in server.received if line.upper().startswith(b"RCPT")]
    assert rcpts == [f"RCPT TO:<{BOB}>\r\n".encode()]


EDITOR = r"""
import os, sys
path = sys.argv[-1]
text = open(path, encoding="utf-8").read()
head, sep, body = text.partition("\n\n")
lines = head.split("\n")
for name in ("To", "Subject"):
    value = os.environ.get("EDIT_" + name.upper())
    if value is not None:
        lines = [f"{name}: {value}" if l.startswith(name + ":") else l for l in lines]
open(path, "w", encoding="utf-8").write("\n".join(lines) + "\n\n" + body)
"""


@pytest.mark.parametrize("mode", ["new", "reply", "reply_all", "forward", "forward_attached"])
async def test_composer_sends_exactly_the_intended_recipients(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the TUI: the composer, the outbox and SMTP (a scripted server that
    records the envelope). A double-encoded hostile original is answered, or the user
    types an encoded word in the subject; RCPT TO is exactly the intended list."""
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    typed = PAYLOADS["q-word"]
    monkeypatch.setenv("EDIT_SUBJECT", typed if mode == "new" else "kept")
    if mode in ("new", "forward", "forward_attached"):
        monkeypatch.setenv("EDIT_TO", f"{PAYLOADS['double-encoded']} <{DAVE}>")
    else:
        monkeypatch.delenv("EDIT_TO", raising=False)
        monkeypatch.delenv("EDIT_SUBJECT", raising=False)
    original = hostile_original(PAYLOADS["double-encoded"], "Subject").replace(
        b"Bob <", PAYLOADS["double-encoded"].encode() + b" <", 1
    )
    root = tmp_path / "Maildir"
    fill(root, [original])
    async with ScriptedSmtp() as server:
        app = MailApp(app_config(smtp_account("alice", server.port, root)))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.main.messages.count == 1)
            ref = app.main.messages.current.ref if mode != "new" else None
            start_compose(app, mode, ref)
            await wait_for(
                pilot, lambda: isinstance(app.screen, ComposeScreen) and app.screen.edits > 0
            )
            assert not app.screen.session.error, app.screen.session.error
            await pilot.press("y")
            await wait_for(pilot, lambda: bool(server.delivered), timeout=20)
            await asyncio.sleep(0.1)
    expected = {DAVE} if mode in ("new", "forward", "forward_attached") else {BOB}
    if mode == "reply_all":
        expected = {BOB, CAROL}
    rcpts = {
        line[len("RCPT TO:<") :].split(b">", 1)[0].decode()
        for line in server.received
        if line.upper().startswith(b"RCPT")
    }
    assert rcpts == expected
    (data,) = server.delivered
    assert_clean(data.replace(b"\r\n..", b"\r\n."), expected)


# --------------------------------------------------------------------------- real servers


def _write_config(tmp_path: Path, ms: object) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[accounts.alice]
email = "alice@localhost"
name = "Alice"

[accounts.alice.receive]
backend = "maildir"
path = "{tmp_path / "Maildir"}"

[accounts.alice.send]
backend = "smtp"
host = "127.0.0.1"
port = {ms.submission_port}
security = "starttls"
timeout = 20
user = "alice"
password_command = "printf %s {ms.users["alice"]}"
ca_file = "{ms.ca_file}"
"""
    )
    path.chmod(0o600)
    return path


def _copies(ms: object, user: str, token: str, *, wait: float) -> list[bytes]:
    deadline = time.monotonic() + wait
    with imaplib.IMAP4_SSL(ms.host, ms.imaps_port, ssl_context=ms.ssl_context()) as imap:
        imap.login(user, ms.users[user])
        while True:
            imap.select("INBOX")
            _, data = imap.search(None, "HEADER", "Message-ID", token)
            nums = data[0].split()
            if nums or time.monotonic() > deadline:
                found = []
                for num in nums:
                    _, parts = imap.fetch(num, "(BODY.PEEK[])")
                    found.append(parts[0][1])  # type: ignore[index]
                return found
            time.sleep(0.2)


@pytest.mark.servers
def test_postfix_delivers_no_injected_header_and_no_extra_recipient(
    mailstack: object, tmp_path: Path
) -> None:
    """End to end through the real Postfix submission port into Dovecot: replies to
    originals hiding Bcc in double-encoded words (subject, display names, references)
    arrive at bob only, with no Bcc or injected header; the catch-all, which gets every
    address outside the local domains, receives nothing."""
    from servers.harness import reset_user_mail

    ms = mailstack
    for user in ("bob", "catchall"):
        reset_user_mail(ms, user)  # type: ignore[arg-type]
    account = replace(ACCOUNT, email="alice@localhost")
    evil = "catchall@localhost"
    tokens = []
    config = _write_config(tmp_path, ms)
    for where in ("Subject", "From", "References"):
        payload = _q(f"=?utf-8?q?x=0D=0ABcc:_{evil}=0D=0AX-Injected:_1?=")
        raw = hostile_original(payload, where).replace(BOB.encode(), b"bob@localhost")
        raw = raw.replace(ME.encode(), b"alice@localhost")
        token = uuid.uuid4().hex
        tokens.append(token)
        msg = build_message(reply(raw, account), account, message_id=make_msgid(token, "localhost"))
        data = strip_bcc(message_bytes(msg))
        assert {n.lower() for n, _ in header_fields(data)} <= ALLOWED
        done = subprocess.run(
            [sys.executable, "-m", "tui_mail", "--config", str(config), "send"],
            input=data,
            capture_output=True,
            timeout=120,
            env=os.environ.copy(),
        )
        assert done.returncode == 0, done.stderr.decode()
    for token in tokens:
        (got,) = _copies(ms, "bob", token, wait=20)
        head = got.split(b"\r\n\r\n", 1)[0]
        assert not re.search(rb"(?im)^(bcc|x-injected):", head), head
        parsed = message_from_bytes(got, policy=policy.default)
        assert [a.addr_spec for a in parsed["To"].addresses] == ["bob@localhost"]
    time.sleep(1)  # anything Postfix had queued for the catch-all has arrived by now
    for token in tokens:
        assert _copies(ms, "catchall", token, wait=1) == []
