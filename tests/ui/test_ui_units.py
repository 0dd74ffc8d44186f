"""Pure parts of the UI: saving attachments, opening them, thread order, links, pickers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tui_mail.ui.dialogs.picker import fuzzy_filter
from tui_mail.ui.files import (
    SaveError,
    TargetExists,
    TempFiles,
    command_for,
    open_with,
    save_attachment,
    target_path,
)
from tui_mail.ui.threads import Row, thread_order
from tui_mail.ui.widgets.message_view import link_content, plain_links


def test_target_path_keeps_hostile_names_inside(tmp_path: Path) -> None:
    assert target_path(tmp_path, "../../etc/passwd") == tmp_path / "passwd"
    assert target_path(tmp_path, "..") == tmp_path / "attachment"
    assert target_path(tmp_path, "a\x1b[31m.pdf").parent == tmp_path


def test_save_never_overwrites_without_asking(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    save_attachment(b"one", target)
    with pytest.raises(TargetExists):
        save_attachment(b"two", target)
    assert target.read_bytes() == b"one"
    save_attachment(b"two", target, overwrite=True)
    assert target.read_bytes() == b"two"


def test_save_refuses_a_symlink_even_with_overwrite(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "a.txt"
    link.symlink_to(victim)
    for overwrite in (False, True):
        with pytest.raises(SaveError, match="symbolic link"):
            save_attachment(b"evil", link, overwrite=overwrite)
    dangling = tmp_path / "b.txt"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(SaveError):
        save_attachment(b"evil", dangling)
    assert victim.read_bytes() == b"precious" and not (tmp_path / "nowhere").exists()


def test_save_into_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SaveError, match="not a folder"):
        save_attachment(b"x", tmp_path / "no" / "a.txt")


def test_open_command_is_an_argument_list(tmp_path: Path) -> None:
    assert command_for(["xdg-open"], Path("/t/a b.pdf")) == ["xdg-open", "/t/a b.pdf"]
    assert command_for(["mpv", "{}", "--loop"], Path("/t/x")) == ["mpv", "/t/x", "--loop"]
    # A name that would be a shell command stays one argument (no shell is ever run).
    temp = TempFiles()
    try:
        path = temp.write(b"data", "$(touch pwned); x.txt")
        out = tmp_path / "args"
        script = f"import sys; open({str(out)!r}, 'w').write(repr(sys.argv[1:]))"
        open_with([sys.executable, "-c", script], path).wait(10)
        assert out.read_text() == repr([str(path)])
        assert not Path("pwned").exists()
        assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    finally:
        temp.cleanup()
    assert not path.parent.exists()


def test_open_with_a_missing_program() -> None:
    with pytest.raises(SaveError, match="cannot run"):
        open_with(["/nonexistent/viewer"], Path(os.devnull))


def test_thread_order_nests_replies_under_parents() -> None:
    rows = [
        Row(1, 10, 100, "<a>", ""),
        Row(2, 10, 200, "<b>", "<a>"),
        Row(3, 10, 300, "<c>", "<b>"),
        Row(4, 10, 250, "<d>", "<a>"),
        Row(5, None, 400, "<e>", ""),
        Row(6, 20, 50, "<f>", "<gone>"),
    ]
    ids, depths = thread_order(rows)
    assert ids == [5, 1, 2, 3, 4, 6]  # newest thread first, replies under their parent
    assert [depths[i] for i in ids] == [0, 0, 1, 2, 1, 0]
    ids, _ = thread_order(rows, descending=False)
    assert ids[0] == 6 and ids[-1] == 5


def test_thread_order_survives_reply_loops() -> None:
    rows = [Row(1, 7, 1, "<a>", "<b>"), Row(2, 7, 2, "<b>", "<a>")]
    ids, _ = thread_order(rows)
    assert sorted(ids) == [1, 2]


def test_plain_links_and_safe_hyperlinks() -> None:
    text = "see https://a.example/x?y=1. and <mailto:b@example.org>, https://a.example/x?y=1"
    assert plain_links(text) == ["https://a.example/x?y=1", "mailto:b@example.org"]
    good = link_content(1, "https://a.example/x")
    assert any(span.style and "link" in str(span.style) for span in good.spans)
    bad = link_content(2, "https://a.example/\x1b]8;;evil\x07")
    assert "\x1b" not in bad.plain
    assert not any("link" in str(span.style) for span in bad.spans)
    assert not any("link" in str(s.style) for s in link_content(3, "javascript:x").spans)


def test_fuzzy_filter_ranks_and_escapes() -> None:
    names = ["INBOX", "Archive", "Lists/python-dev", "Lists/textual-users", "Evil\x1b[2J"]
    assert next(n for n, _ in fuzzy_filter("arch", names)) == "Archive"
    assert [n for n, _ in fuzzy_filter("txtu", names)] == ["Lists/textual-users"]
    shown = {n: c.plain for n, c in fuzzy_filter("", names)}
    assert "\x1b" not in shown["Evil\x1b[2J"]
