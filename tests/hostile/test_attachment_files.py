"""Hostile attachment names: saving writes one new file inside the chosen folder and
nothing else, never over an existing file or through a symlink; opening runs the
configured program as an argument list, never through a shell.

Each name is carried the ways real mail carries it (a quoted parameter, RFC 2231
percent-encoding with continuations, RFC 2047 encoded words, the Content-Type name)
and goes through the same code the TUI uses: `tui_mail.ui.mime` decodes it,
`tui_mail.ui.files` saves it. The last tests drive the attachments screen by its keys.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import os
import sys
import urllib.parse
from pathlib import Path

import pytest
from msgspec.structs import replace

from hostile.maildir_app import SIZE, fill, maildir_config, select, wait_for
from tui_mail.config.schema import UiConfig
from tui_mail.ui import files
from tui_mail.ui.app import MailApp
from tui_mail.ui.dialogs.attachments import AttachmentScreen
from tui_mail.ui.dialogs.prompt import ConfirmScreen, PromptScreen
from tui_mail.ui.files import SaveError, TargetExists, TempFiles, save_attachment, target_path
from tui_mail.ui.mime import attachment_data, parse_message

NAME_MAX = 255  # bytes, Linux and every common file system

# {outside} is replaced by the absolute path of a folder next to the chosen one, which
# holds a file every test checks is never touched.
HOSTILE_NAMES = [
    "../../../../../../etc/passwd",
    "../outside/sentinel.txt",
    "{outside}/sentinel.txt",
    "/etc/cron.d/evil",
    "..\\..\\outside\\sentinel.txt",
    "C:\\Windows\\System32\\evil.dll",
    "\\\\server\\share\\evil.exe",
    "//server/share/evil",
    "~/.ssh/authorized_keys",
    "dir/",
    "a\x00b.txt",
    "evil.txt\x00.pdf",
    "\x1b[31mred\x1b[0m.txt",
    "\x1b]0;pwned\x07title.txt",
    "line\r\nX-Injected: 1.txt",
    "\u202etxt.exe",
    "foo\u2028bar.txt",
    "\x7f\x85\x9bcsi.txt",
    "CON",
    "con.txt",
    "NUL.tar.gz",
    "LPT1",
    "COM9 .log",
    ".",
    "..",
    "...",
    "",
    "   ",
    ".bashrc",
    "-rf",
    "--output=x",
    "a" * 300,
    "b" * 300 + ".pdf",
    "日本語" * 100 + ".pdf",
    "😀" * 300,
    "name." + "x" * 40,
    'a:b<c>d|e?f*g"h.txt',
    "file.txt. . .",
    "$(touch pwned).txt",
    "`id`.sh",
    "a; rm -rf ~.txt",
    "%2e%2e%2fescaped",
]


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ew(value: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(value.encode()).decode() + "?="


def _rfc2231(value: str) -> str:
    encoded = urllib.parse.quote(value.encode(), safe="")
    # Continuations, in 30-character sections, as long names arrive from real clients.
    sections = [encoded[i : i + 30] for i in range(0, len(encoded), 30)] or [""]
    first = f"filename*0*=utf-8''{sections[0]}"
    rest = "".join(f";\r\n filename*{n}*={s}" for n, s in enumerate(sections[1:], 1))
    return first + rest


def _disposition(name: str, how: str) -> bytes:
    if how == "2231":
        head = (
            "Content-Type: application/octet-stream\r\n"
            f"Content-Disposition: attachment;\r\n {_rfc2231(name)}"
        )
    elif how == "2047":
        head = (
            "Content-Type: application/octet-stream\r\n"
            f"Content-Disposition: attachment; filename={_quoted(_ew(name))}"
        )
    elif how == "ctype-name":
        head = f"Content-Type: application/octet-stream; name={_quoted(_ew(name))}"
    else:  # a plain quoted parameter: only for names without line breaks
        head = (
            "Content-Type: application/octet-stream\r\n"
            f"Content-Disposition: attachment; filename={_quoted(name)}"
        )
    return head.encode("utf-8", "surrogateescape")


def message_with(*attachments: tuple[str, str, bytes], message_id: str = "<att@x>") -> bytes:
    """A multipart/mixed message: a text part, then one part per (name, how, data)."""
    parts = [
        b"From: Mallory <m@evil.test>\r\nTo: alice@example.test\r\nSubject: files\r\n"
        b"Date: Mon, 03 Nov 2025 10:00:00 +0000\r\nMessage-ID: " + message_id.encode() + b"\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XX"\r\n\r\n'
        b"--XX\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
    ]
    for name, how, data in attachments:
        parts.append(
            b"--XX\r\n"
            + _disposition(name, how)
            + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(data).replace(b"\n", b"\r\n")
        )
    parts.append(b"--XX--\r\n")
    return b"".join(parts)


def tree(root: Path) -> dict[str, str]:
    """Every entry under `root`: files by content hash, symlinks by target, folders."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


@pytest.fixture
def place(tmp_path: Path) -> tuple[Path, Path]:
    """(the chosen folder, a folder beside it with a sentinel file), under one root."""
    chosen = tmp_path / "root" / "chosen"
    outside = tmp_path / "root" / "outside"
    chosen.mkdir(parents=True)
    outside.mkdir()
    (outside / "sentinel.txt").write_bytes(b"do not touch")
    return chosen, outside


def assert_safe_name(name: str) -> None:
    assert name not in ("", ".", "..")
    assert not name.startswith((".", "-", " "))
    assert len(name.encode()) <= NAME_MAX
    assert not any(c in name for c in "/\\\x00")
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in name)
    assert not any(c in name for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    assert stem not in {"CON", "PRN", "AUX", "NUL", "LPT1", "COM9"}


_NAMED = [
    (template, how)
    for template in HOSTILE_NAMES
    for how in ("quoted", "2231", "2047", "ctype-name")
    # A quoted parameter cannot carry a line break or NUL: no such mail exists.
    if not (how == "quoted" and any(c in template for c in "\r\n\x00"))
]


@pytest.mark.parametrize(("template", "how"), _NAMED)
def test_hostile_name_saves_one_file_inside_the_chosen_folder(
    template: str, how: str, place: tuple[Path, Path]
) -> None:
    chosen, outside = place
    name = template.replace("{outside}", str(outside))
    data = b"payload for " + name.encode("utf-8", "surrogateescape")
    raw = message_with((name, how, data))
    parsed = parse_message(raw)
    assert len(parsed.attachments) == 1, parsed
    shown = parsed.attachments[0].filename
    before = tree(chosen.parent)

    target = target_path(chosen, shown)
    saved = save_attachment(attachment_data(raw, 0), target)

    assert saved.parent == chosen and saved.resolve().parent == chosen.resolve()
    assert_safe_name(saved.name)
    assert saved.read_bytes() == data
    after = tree(chosen.parent)
    new = set(after) - set(before)
    assert new == {f"chosen/{saved.name}"}, new
    assert {k: v for k, v in after.items() if k in before} == before  # nothing else changed
    assert not Path("pwned").exists()


@pytest.mark.parametrize("template", HOSTILE_NAMES)
def test_an_existing_file_is_never_replaced_without_asking(
    template: str, place: tuple[Path, Path]
) -> None:
    chosen, outside = place
    name = template.replace("{outside}", str(outside))
    target = target_path(chosen, name)
    target.write_bytes(b"mine")
    with pytest.raises(TargetExists):
        save_attachment(b"theirs", target)
    assert target.read_bytes() == b"mine"
    assert (outside / "sentinel.txt").read_bytes() == b"do not touch"


@pytest.mark.parametrize("template", HOSTILE_NAMES)
def test_a_symlink_waiting_in_the_folder_is_never_followed(
    template: str, place: tuple[Path, Path]
) -> None:
    chosen, outside = place
    name = template.replace("{outside}", str(outside))
    target = target_path(chosen, name)
    victim = outside / "sentinel.txt"
    for points_to in (victim, outside / "created-through-the-link"):
        target.symlink_to(points_to)
        for overwrite in (False, True):
            with pytest.raises(SaveError):
                save_attachment(b"evil", target, overwrite=overwrite)
        assert target.is_symlink() and os.readlink(target) == str(points_to)
        target.unlink()
    assert victim.read_bytes() == b"do not touch"
    assert not (outside / "created-through-the-link").exists()


def test_a_symlink_raced_in_after_the_check_is_not_followed(
    place: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the lstat and the open an attacker swaps a symlink in: O_EXCL and
    O_NOFOLLOW make the open fail instead of writing through it."""
    chosen, outside = place
    victim = outside / "sentinel.txt"
    target = chosen / "report.pdf"
    real_lstat = os.lstat

    def lstat_then_race(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if Path(str(path)) == target and not target.is_symlink():
            target.symlink_to(victim)  # planted just after our look
            raise FileNotFoundError(path)
        return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(files.os, "lstat", lstat_then_race)
    with pytest.raises(SaveError):
        save_attachment(b"evil", target)
    assert victim.read_bytes() == b"do not touch"
    monkeypatch.undo()

    # The same with the user's "replace it": the regular file becomes a link meanwhile.
    target.unlink()
    target.write_bytes(b"old")
    st = os.lstat(target)
    target.unlink()
    target.symlink_to(victim)
    monkeypatch.setattr(
        files.os, "lstat", lambda p, *a, **k: st if Path(str(p)) == target else real_lstat(p)
    )
    with pytest.raises(SaveError):
        save_attachment(b"evil", target, overwrite=True)
    assert victim.read_bytes() == b"do not touch"


def test_duplicate_names_do_not_overwrite_each_other(place: tuple[Path, Path]) -> None:
    chosen, _ = place
    raw = message_with(
        ("report.pdf", "quoted", b"first"),
        ("../report.pdf", "2231", b"second"),
        ("=report.pdf", "2047", b"third"),
        ("report.pdf", "ctype-name", b"fourth"),
    )
    parsed = parse_message(raw)
    assert len(parsed.attachments) == 4
    targets = {target_path(chosen, a.filename) for a in parsed.attachments[:2]}
    assert targets == {chosen / "report.pdf"}  # two names, one file name
    save_attachment(attachment_data(raw, 0), chosen / "report.pdf")
    for n in (1, 3):
        with pytest.raises(TargetExists):
            target = target_path(chosen, parsed.attachments[n].filename)
            save_attachment(attachment_data(raw, n), target)
    assert (chosen / "report.pdf").read_bytes() == b"first"
    assert sorted(tree(chosen)) == ["report.pdf"]


def test_long_names_are_bounded_in_bytes_and_still_save(place: tuple[Path, Path]) -> None:
    """300 characters of CJK are 900 bytes: the saved name must fit NAME_MAX (it once
    failed with "File name too long"), keep its extension, and be distinct per call."""
    chosen, _ = place
    for name in ("日本語" * 100 + ".pdf", "😀" * 300 + ".png", "é" * 300, "x" * 300 + ".tar.gz"):
        target = target_path(chosen, name)
        assert len(target.name.encode()) <= NAME_MAX
        assert target.suffix == Path(name).suffix
        save_attachment(b"data", target)
        assert target.read_bytes() == b"data"


def test_saving_into_a_missing_or_non_folder_is_an_error(place: tuple[Path, Path]) -> None:
    chosen, outside = place
    with pytest.raises(SaveError, match="not a folder"):
        save_attachment(b"x", target_path(chosen / "missing", "a.txt"))
    with pytest.raises(SaveError, match="not a folder"):
        save_attachment(b"x", target_path(outside / "sentinel.txt", "a.txt"))
    (chosen / "sub").mkdir()
    with pytest.raises(SaveError, match="not a regular file"):
        save_attachment(b"x", chosen / "sub", overwrite=True)
    assert (outside / "sentinel.txt").read_bytes() == b"do not touch"


# --------------------------------------------------------------------------- opening

SHELL_NAMES = [
    "$(touch {tmp}/pwned-dollar).txt",
    "`touch {tmp}/pwned-backtick`.txt",
    "x; touch {tmp}/pwned-semicolon; y.txt",
    "x && touch {tmp}/pwned-and.txt",
    "x | touch {tmp}/pwned-pipe.txt",
    "x\ntouch {tmp}/pwned-newline\n.txt",
    "'; touch {tmp}/pwned-quote; '.txt",
    "-e touch {tmp}/pwned-option.txt",
    "{{}}; touch {tmp}/pwned-braces.txt",
]


def _recorder(out: Path) -> list[str]:
    """An "open command" that writes the arguments it got, one per line, as repr()."""
    script = f"import sys; open({str(out)!r}, 'w').write('\\n'.join(repr(a) for a in sys.argv[1:]))"
    return [sys.executable, "-c", script]


@pytest.mark.parametrize("template", SHELL_NAMES)
def test_opening_passes_one_argument_and_runs_no_shell(
    template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = template.format(tmp=tmp_path)
    raw = message_with((name, "2231", b"%PDF-1.4 hostile"))
    parsed = parse_message(raw)
    popens: list[tuple[object, dict[str, object]]] = []
    real_popen = files.subprocess.Popen

    def spy(args: object, **kwargs: object) -> object:
        popens.append((args, kwargs))
        return real_popen(args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(files.subprocess, "Popen", spy)
    temp = TempFiles()
    try:
        out = tmp_path / "argv"
        path = temp.write(attachment_data(raw, 0), parsed.attachments[0].filename)
        for command in (_recorder(out), [*_recorder(out), "{}", "--flag"]):
            assert files.open_with(command, path).wait(20) == 0
            args = [ast.literal_eval(line) for line in out.read_text().splitlines()]
            assert str(path) in args and args.count(str(path)) == 1
            assert args in ([str(path)], [str(path), "--flag"])
        assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
        assert path.read_bytes() == b"%PDF-1.4 hostile"
    finally:
        temp.cleanup()
    assert not path.parent.exists()
    assert all(isinstance(a, list) and not k.get("shell") for a, k in popens)
    assert not list(tmp_path.glob("pwned*")), list(tmp_path.glob("pwned*"))


def test_a_shell_viewer_gets_the_name_as_data(tmp_path: Path) -> None:
    """Even a user's open command that is itself a shell script sees the path as "$1",
    one argument: the hostile text reaches the script as data, never as code."""
    script = tmp_path / "viewer.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {tmp_path}/seen\n')
    script.chmod(0o700)
    name = f"$(touch {tmp_path}/pwned).txt"
    temp = TempFiles()
    try:
        path = temp.write(b"x", name)
        assert files.open_with([str(script)], path).wait(20) == 0
        assert (tmp_path / "seen").read_text() == str(path)
    finally:
        temp.cleanup()
    assert not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------- in the TUI


async def test_attachments_screen_saves_every_hostile_name_inside_and_asks(
    tmp_path: Path,
) -> None:
    """Every attachment of one hostile message saved by its keys (v, s, Enter): each
    lands inside the folder, a duplicate and a name with a waiting symlink are not
    written, and the answer "n" to "Replace it?" keeps the file that was there."""
    chosen = tmp_path / "saved"
    outside = tmp_path / "outside"
    chosen.mkdir()
    outside.mkdir()
    victim = outside / "sentinel.txt"
    victim.write_bytes(b"do not touch")
    (chosen / "authorized_keys").symlink_to(victim)  # waiting for "~/.ssh/authorized_keys"
    names = [
        ("../../outside/sentinel.txt", "2231"),
        (f"{outside}/sentinel.txt", "2047"),
        ("~/.ssh/authorized_keys", "quoted"),
        ("C:\\evil\\report.pdf", "quoted"),
        ("report.pdf", "ctype-name"),  # a duplicate of the one before
        ("\x1b[2J$(touch pwned)\u202egnp.exe", "2231"),
        ("CON", "quoted"),
        ("..", "quoted"),
    ]
    raw = message_with(*((n, how, f"data {i}".encode()) for i, (n, how) in enumerate(names)))
    root = tmp_path / "Maildir"
    fill(root, [raw])
    before_outside = tree(outside)
    config = maildir_config(root, UiConfig(save_dir=str(chosen)))
    app = MailApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == 1)
        select(app, "<att@x>")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.view.raw is not None)
        assert len(app.main.view.parsed.attachments) == len(names)
        for number in range(len(names)):
            await pilot.press("v")
            await wait_for(pilot, lambda: isinstance(app.screen, AttachmentScreen))
            await pilot.press(*["down"] * number)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
            await pilot.press("enter")  # the configured folder
            await wait_for(
                pilot,
                lambda: (
                    isinstance(app.screen, ConfirmScreen)
                    or any(w in str(app.main.status.notice) for w in ("saved", "not saved"))
                ),
            )
            if isinstance(app.screen, ConfirmScreen):
                await pilot.press("n")
                await wait_for(pilot, lambda: app.screen is app.main)
            app.main.status.set_notice("")
    saved = tree(chosen)
    assert saved["authorized_keys"] == f"-> {victim}"  # the waiting link, untouched
    assert (chosen / "sentinel.txt").read_bytes() == b"data 0"
    assert (chosen / "report.pdf").read_bytes() == b"data 3"  # the duplicate did not win
    assert (chosen / "_CON").read_bytes() == b"data 6"
    assert (chosen / "attachment").read_bytes() == b"data 7"
    assert len([k for k in saved if k.endswith("gnp.exe")]) == 1
    for name in saved:
        assert_safe_name(name)
    assert tree(outside) == before_outside
    assert not Path("pwned").exists() and not (tmp_path / "pwned").exists()


async def test_attachments_screen_opens_with_an_argument_list(tmp_path: Path) -> None:
    out = tmp_path / "argv"
    name = f"$(touch {tmp_path}/pwned); `touch {tmp_path}/pwned2`.pdf"
    raw = message_with((name, "2231", b"%PDF-1.4"))
    root = tmp_path / "Maildir"
    fill(root, [raw])
    config = maildir_config(root, UiConfig(open_command=(*_recorder(out), "{}")))
    app = MailApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.main.messages.count == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.main.view.raw is not None)
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, AttachmentScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: out.exists() and out.stat().st_size > 0)
        (arg,) = [ast.literal_eval(line) for line in out.read_text().splitlines()]
        temp = app.main._temp_files.dirs[0]
        assert Path(arg).parent == temp and Path(arg).read_bytes() == b"%PDF-1.4"
        assert_safe_name(Path(arg).name)
    assert not temp.exists()
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_config_with_an_open_command_string_is_still_an_argument_list(tmp_path: Path) -> None:
    """UiConfig holds a tuple; a command given as one string is one program name,
    never a command line for a shell."""
    config = replace(UiConfig(), open_command=(f"touch {tmp_path}/pwned",))
    temp = TempFiles()
    try:
        path = temp.write(b"x", "a.txt")
        with pytest.raises(SaveError, match="cannot run"):
            files.open_with(config.open_command, path)
    finally:
        temp.cleanup()
    assert not (tmp_path / "pwned").exists()
