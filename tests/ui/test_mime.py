"""Message parsing for the view: tolerant of bad input, HTML turned into text."""

from __future__ import annotations

from tui_mail.ui.mime import html_to_text, human_size, parse_message


def test_plain_message_headers_and_body() -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\n"
        b"To: you@example.org\r\n"
        b"Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\n"
        b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Hello\r\nWorld\r\n"
    )
    msg = parse_message(raw)
    assert msg.header("From") == "Jürgen <j@example.org>"
    assert msg.header("subject") == "Grüße"
    assert msg.body_type == "plain"
    assert msg.body.splitlines()[:2] == ["Hello", "World"]
    assert not msg.problems


def test_html_only_message_becomes_text_with_numbered_links() -> None:
    raw = (
        b"Subject: html\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{}</style></head><body><p>Read <a href='https://a.example/x'>this</a>"
        b"</p><img src='http://tracker.example/p.gif' alt='logo'>"
        b"<script>evil()</script></body></html>"
    )
    msg = parse_message(raw)
    assert msg.body_type == "html"
    assert "Read this[1]" in msg.body
    assert "[1] https://a.example/x" in msg.body
    assert "evil" not in msg.body
    assert "p{}" not in msg.body
    assert "[image: logo]" in msg.body
    assert "tracker.example" not in msg.body  # images are never listed as links, never fetched


def test_multipart_prefers_plain_and_lists_attachments() -> None:
    raw = (
        b"Subject: parts\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nthe text\r\n"
        b"--B\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="../../etc/passwd"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nQUJDRA==\r\n"
        b"--B--\r\n"
    )
    msg = parse_message(raw)
    assert msg.body.strip() == "the text"
    assert len(msg.attachments) == 1
    att = msg.attachments[0]
    assert att.filename == "../../etc/passwd"
    assert att.size == 4
    assert att.content_type == "application/pdf"


def test_malformed_message_still_opens() -> None:
    raw = (
        b"Subject: =?bogus-charset?q?broken?=\r\n"
        b'Content-Type: multipart/mixed; boundary="never"\r\n\r\n'
        b"--never\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\nsome text \xff\xfe"
    )
    msg = parse_message(raw)
    assert "some text" in msg.body
    assert msg.header("Subject")


def test_garbage_bytes_do_not_raise() -> None:
    for raw in (b"", b"\x00\x01\x02", b"no headers at all", b"A: b\r\n\r\n" + bytes(range(256))):
        parse_message(raw)


def test_html_to_text_lists_and_entities() -> None:
    text, links = html_to_text("<ul><li>a &amp; b</li><li>c</li></ul><ol><li>x</li></ol>")
    assert "* a & b" in text
    assert "* c" in text
    assert "1. x" in text
    assert links == []


def test_html_repeated_link_keeps_its_number() -> None:
    text, links = html_to_text('<a href="u">one</a> <a href="u">two</a>')
    assert links == ["u"]
    assert "one[1] two[1]" in text


def test_human_size() -> None:
    assert human_size(10) == "10 B"
    assert human_size(2048) == "2.0 KB"
    assert human_size(5 * 1024 * 1024) == "5.0 MB"
