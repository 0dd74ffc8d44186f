"""Hostile text from mail must reach the terminal as inert, visible text."""

from __future__ import annotations

import pytest

from tui_mail.core.sanitize import inert, inert_line, safe_filename

HOSTILE = [
    "\x1b]0;pwned\x07",  # OSC: set the window title
    "\x1b[31mred\x1b[0m",  # CSI SGR
    "\x1b[2J\x1b[H",  # clear screen
    "\x9b31m",  # C1 CSI
    "\x1bP+q\x1b\\",  # DCS
    "a\x00b\x08c\x7fd",
    "\u202eevil\u202c",  # RLO ... PDF
    "\u2066isolate\u2069",
]


def _has_control(s: str, allow: str = "") -> bool:
    bad = set(range(0x20)) | {0x7F} | set(range(0x80, 0xA0))
    bad |= {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069}
    return any(ord(ch) in bad and ch not in allow for ch in s)


@pytest.mark.parametrize("text", HOSTILE)
def test_inert_removes_every_control(text: str) -> None:
    out = inert(text)
    assert not _has_control(out, allow="\n\t")
    assert "\x1b" not in out


@pytest.mark.parametrize("text", HOSTILE)
def test_inert_line_removes_every_control(text: str) -> None:
    out = inert_line(text)
    assert not _has_control(out)


def test_escape_is_visible_not_dropped() -> None:
    assert inert("\x1b[31m") == "\u241b[31m"
    assert inert("\x07") == "\u2407"
    assert inert("\x7f") == "\u2421"
    assert inert("\x9b") == "<9B>"
    assert inert("x\u202ey") == "x<RLO>y"
    assert inert("\u2069") == "<PDI>"


def test_body_keeps_newlines_and_tabs_and_normalises_cr() -> None:
    assert inert("a\r\nb\rc\n\td") == "a\nb\nc\n\td"
    assert inert("a\u2028b") == "a\nb"


def test_flags_replace_newlines_and_tabs() -> None:
    assert inert("a\nb\tc", keep_newlines=False, keep_tabs=False) == "a\u240ab\u2409c"
    assert inert("a\nb\tc", keep_newlines=False) == "a\u240ab\tc"
    assert inert("a\nb\tc", keep_tabs=False) == "a\nb\u2409c"


def test_inert_line() -> None:
    assert inert_line("Re: hello\r\n\tworld") == "Re: hello world"
    assert inert_line("one\ntwo") == "one\u240atwo"
    assert inert_line("a\tb") == "a b"
    assert "\n" not in inert_line("x\u2028y")
    assert inert_line("") == ""


def test_markup_is_left_as_plain_text() -> None:
    # Markup safety is the UI's job (Content(str), never markup): the text stays as is.
    for s in ("[bold red]x[/]", "[@click=app.quit]x[/]"):
        assert inert(s) == s
        assert inert_line(s) == s


def test_plain_text_untouched() -> None:
    s = "Grüße, 你好, שלום, emoji 📬 — ok"
    assert inert(s) == s
    assert inert_line(s) == s


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("/abs/path/x.txt", "x.txt"),
        ("..", "attachment"),
        ("...", "attachment"),
        ("", "attachment"),
        (None, "attachment"),
        ("   ", "attachment"),
        (".bashrc", "bashrc"),
        ("-rf", "rf"),
        ("--help.txt", "help.txt"),
        ("a..b.txt", "a.b.txt"),
        ("evil\x1b[31m.txt", "evil[31m.txt"),
        ("name\u202etxt.exe", "nametxt.exe"),
        ('a<b>c:d"e|f?g*h.txt', "a_b_c_d_e_f_g_h.txt"),
        ("CON.txt", "_CON.txt"),
        ("trailing. ", "trailing"),
        ("dir/", "dir"),
    ],
)
def test_safe_filename(name: str | None, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_length_keeps_extension() -> None:
    out = safe_filename("x" * 500 + ".pdf")
    assert len(out) <= 120
    assert out.endswith(".pdf")
    out = safe_filename("y" * 500)
    assert len(out) <= 120
    assert safe_filename("a." + "z" * 40).startswith("a.")


def test_safe_filename_never_separator_or_control() -> None:
    for name in [*HOSTILE, "a/b/../c", "x\\y", "\x00", "/", "\\", "./."]:
        out = safe_filename(name)
        assert out
        assert "/" not in out
        assert "\\" not in out
        assert ".." not in out
        assert not out.startswith((".", "-"))
        assert not _has_control(out)


def test_lone_surrogates_become_replacement_characters() -> None:
    raw = "a\udce2\udc80\udcaeb"  # undecodable bytes kept by surrogateescape
    assert inert(raw) == "a\ufffd\ufffd\ufffdb"
    assert inert_line(raw) == "a\ufffd\ufffd\ufffdb"
    assert safe_filename(raw) == "ab"
