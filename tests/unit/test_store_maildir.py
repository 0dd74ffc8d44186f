"""The Maildir half of the store: what other tools see on disk."""

from __future__ import annotations

import contextlib
import mailbox
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui_mail.core.errors import StoreError
from tui_mail.store.maildir import (
    MaildirStore,
    decode_folder,
    encode_folder,
    split_name,
    unique_name,
)

MSG = b"From: a@example.org\nSubject: hello\nMessage-ID: <1@example.org>\n\nbody\n"


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and p.name != "maildirfolder"}


@pytest.fixture
def store(tmp_path: Path) -> MaildirStore:
    return MaildirStore(tmp_path / "sandbox" / "mail")


def test_written_maildir_reads_back_through_python_mailbox(store: MaildirStore) -> None:
    plain = store.add("INBOX", MSG)
    flagged = store.add("INBOX", MSG.replace(b"hello", b"two"), "SR")
    listed = store.add("Lists/python-dev", b"Subject: list\n\nx\n", "S")

    md = mailbox.Maildir(store.root, factory=None, create=False)
    assert md.get_bytes(plain.key) == MSG
    assert md.get_message(plain.key).get_subdir() == "new"
    assert md.get_message(plain.key).get_flags() == ""
    assert md.get_message(flagged.key).get_subdir() == "cur"
    assert md.get_message(flagged.key).get_flags() == "RS"  # ASCII order on disk

    assert md.list_folders() == ["Lists.python-dev"]
    sub = md.get_folder("Lists.python-dev")
    assert sub.get_bytes(listed.key) == b"Subject: list\n\nx\n"
    assert sub.get_message(listed.key).get_flags() == "S"
    assert store.list_folders() == ["INBOX", "Lists/python-dev"]


def test_flags_sorted_and_unknown_letters_kept(store: MaildirStore) -> None:
    stored = store.add("INBOX", MSG)
    assert stored.subdir == "new"
    changed = store.set_flags("INBOX", stored.key, "SaZFa")
    assert changed.subdir == "cur"
    assert changed.path.name == f"{stored.key}:2,FSZa"
    assert not stored.path.exists()
    md = mailbox.Maildir(store.root, factory=None, create=False)
    assert md.get_message(stored.key).get_flags() == "FSZa"
    # Flags written by mailbox.Maildir (another tool) are found and kept.
    msg = md.get_message(stored.key)
    msg.set_flags("TSb")
    md[stored.key] = msg
    found = store.locate("INBOX", stored.key)
    assert found is not None and found.flags == "STb"


def test_mark_seen_cur_moves_without_changing_flags(store: MaildirStore) -> None:
    stored = store.add("INBOX", MSG)
    moved = store.mark_seen_cur("INBOX", stored.key)
    assert moved.subdir == "cur" and moved.flags == ""
    assert moved.path.name == f"{stored.key}:2,"


def test_failed_stream_leaves_no_file(store: MaildirStore) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"From: a@b\n\n"
        yield b"x" * 100_000
        raise ConnectionError("link dropped")

    with pytest.raises(ConnectionError):
        store.add_stream("INBOX", chunks())
    assert _files(store.root) == set()
    store.add_stream("INBOX", iter([b"Subject: ok\n\n", b"fine\n"]))
    assert len(_files(store.root)) == 1


def test_unique_names_follow_the_spec() -> None:
    names = {unique_name() for _ in range(1000)}
    assert len(names) == 1000
    name = names.pop()
    sec, rest = name.split(".", 1)
    assert sec.isdigit() and rest.startswith("M") and "P" in rest and "Q" in rest
    assert "/" not in name and ":" not in name


def _open_into(root: Path) -> list[str]:
    """What this process holds open under `root` (a count of all fds is not stable:
    other tests' leftovers close as the collector finds them)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(root)):
                held.append(target)
    return held


def test_add_many_writes_every_message_where_other_tools_read_it(store: MaildirStore) -> None:
    stored = store.add_many("Lists/x", [(MSG, ""), (MSG + b"2\n", "S"), (MSG + b"3\n", "FS")])
    assert [s.subdir for s in stored] == ["new", "cur", "cur"]
    assert [s.size for s in stored] == [len(MSG), len(MSG) + 2, len(MSG) + 2]
    assert all(s.path.read_bytes()[: len(MSG)] == MSG for s in stored)
    box = mailbox.Maildir(store.folder_path("Lists/x"), factory=None, create=False)
    assert sorted(box.get_message(s.key).get_flags() for s in stored) == ["", "FS", "S"]
    assert not os.listdir(store.folder_path("Lists/x") / "tmp")
    assert _open_into(store.root) == []


def test_add_many_of_nothing_makes_no_folder(store: MaildirStore) -> None:
    assert store.add_many("Never", []) == []
    assert not store.folder_path("Never").exists()


def test_add_many_makes_a_folder_removed_since_it_was_last_written_again(
    store: MaildirStore,
) -> None:
    store.add("Gone", MSG)
    shutil.rmtree(store.folder_path("Gone"))
    (stored,) = store.add_many("Gone", [(MSG, "S")])
    assert stored.path.read_bytes() == MSG


@pytest.mark.parametrize("how", ["moved", "removed"])
def test_a_folder_moved_or_removed_during_add_many_is_an_error_not_a_silent_loss(
    store: MaildirStore, how: str
) -> None:
    """The writes go through descriptors of the folder's directories, which follow it
    wherever it goes: the paths the caller would record must not be taken on trust."""
    store.add("Work", MSG)
    folder = store.folder_path("Work")

    def messages() -> Iterator[tuple[bytes, str]]:
        yield MSG, "S"
        if how == "moved":
            os.rename(folder, folder.with_name(".Elsewhere"))
        else:
            shutil.rmtree(folder)
        yield MSG, "S"

    with pytest.raises(StoreError, match=r"moved or removed|cannot write"):
        store.add_many("Work", messages())
    assert _open_into(store.root) == []
    if how == "moved":  # what was written is still there, in the moved folder
        moved = folder.with_name(".Elsewhere")
        assert len(os.listdir(moved / "cur")) == 2 and not os.listdir(moved / "tmp")


def test_add_many_leaves_no_half_file_when_its_input_fails(store: MaildirStore) -> None:

    def messages() -> Iterator[tuple[bytes, str]]:
        yield MSG, ""
        raise RuntimeError("the network went away")

    with pytest.raises(RuntimeError):
        store.add_many("INBOX", messages())
    assert len(os.listdir(store.root / "new")) == 1 and not os.listdir(store.root / "tmp")
    assert _open_into(store.root) == []


def test_unique_names_of_a_forked_child_carry_its_own_pid_and_random_part() -> None:
    ours = unique_name()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its name and leave without running pytest's exit
        os.write(write, unique_name().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        theirs = pipe.read().decode()
    assert f"P{pid}Q" in theirs and f"P{os.getpid()}Q" in ours
    assert theirs.split("R")[-1] != ours.split("R")[-1]


def test_add_reports_what_the_file_holds(store: MaildirStore) -> None:
    """add() takes size and mtime from what it wrote, not from a stat of the file."""
    before = time.time()
    stored = store.add("INBOX", MSG, "S")
    st = stored.path.stat()
    assert stored.size == st.st_size == len(MSG)
    # The file system's clock is coarser than time.time(): a few ms, or seconds.
    assert before <= stored.mtime <= time.time() and abs(stored.mtime - st.st_mtime) < 2.5


@pytest.mark.parametrize(
    "name",
    ["..", ".", "a/../../b", "\x1b[31m", "", "/", "a//b", "%", "%41", "x\\y", "a.b", "ü/ß", "\x00"],
)
def test_hostile_folder_names_stay_under_root(store: MaildirStore, name: str) -> None:
    dirname = encode_folder(name)
    assert "/" not in dirname and dirname not in (".", "..")
    assert decode_folder(dirname) == name
    store.add(name, MSG)
    path = store.folder_path(name)
    assert path.parent == store.root
    assert path.resolve().is_relative_to(store.root.resolve())
    assert name in store.list_folders()
    # Nothing was created beside the root.
    assert sorted(p.name for p in store.root.parent.iterdir()) == ["mail"]


def test_folder_encoding_examples() -> None:
    assert encode_folder("INBOX") == ""
    assert encode_folder("Lists/python-dev") == ".Lists.python-dev"
    assert encode_folder("a.b") == ".a%2Eb"
    assert decode_folder(".Lists.python-dev") == "Lists/python-dev"
    with pytest.raises(StoreError):
        decode_folder("Lists")


def test_non_canonical_directories_are_not_folders(store: MaildirStore) -> None:
    for odd in (".INBOX", ".a%zz", "..x"):
        for sub in ("cur", "new", "tmp"):
            (store.root / odd / sub).mkdir(parents=True)
    assert store.list_folders() == ["INBOX"]


def test_locate_after_another_tool_renamed(store: MaildirStore) -> None:
    stored = store.add("INBOX", MSG, "S")
    os.rename(stored.path, stored.path.with_name(f"{stored.key}:2,FRS"))
    found = store.locate("INBOX", stored.key, hint=("cur", "S"))
    assert found is not None and found.flags == "FRS"
    assert store.read_bytes("INBOX", stored.key, hint=("cur", "S")) == MSG
    assert store.locate("INBOX", "1.M1P1Q1.nothere") is None


def test_move_copy_remove(store: MaildirStore) -> None:
    stored = store.add("INBOX", MSG, "S")
    moved = store.move("INBOX", stored.key, "Archive")
    assert moved.key == stored.key and moved.folder == "Archive"
    assert moved.path.read_bytes() == MSG and not stored.path.exists()
    copied = store.copy("Archive", moved.key, "INBOX")
    assert copied.key != moved.key and copied.flags == "S"
    assert store.read_bytes("INBOX", copied.key) == MSG
    assert store.remove("Archive", moved.key) is True
    assert store.remove("Archive", moved.key) is False
    with pytest.raises(StoreError):
        store.read_bytes("Archive", moved.key)


def test_move_onto_a_taken_key_gets_a_new_key(store: MaildirStore) -> None:
    stored = store.add("INBOX", MSG)
    (store.folder_path("Archive") / "new").mkdir(parents=True)
    (store.folder_path("Archive") / "cur").mkdir()
    (store.folder_path("Archive") / "tmp").mkdir()
    (store.folder_path("Archive") / "new" / stored.key).write_bytes(b"other")
    moved = store.move("INBOX", stored.key, "Archive")
    assert moved.key != stored.key and moved.path.read_bytes() == MSG
    assert (store.folder_path("Archive") / "new" / stored.key).read_bytes() == b"other"


def test_folder_management(store: MaildirStore) -> None:
    store.add("Work", MSG)
    store.add("Work/Sub", MSG)
    with pytest.raises(StoreError):
        store.delete_folder("Work")  # not empty
    with pytest.raises(StoreError):
        store.delete_folder("INBOX")
    store.rename_folder("Work", "Job")
    assert store.list_folders() == ["INBOX", "Job", "Job/Sub"]
    store.delete_folder("Job", force=True)
    assert store.list_folders() == ["INBOX", "Job/Sub"]
    store.create_folder("Empty")
    assert (store.folder_path("Empty") / "maildirfolder").exists()
    store.delete_folder("Empty")
    assert "Empty" not in store.list_folders()


def test_scan_skips_tmp_and_dotfiles(store: MaildirStore) -> None:
    a = store.add("INBOX", MSG)
    b = store.add("INBOX", MSG, "F")
    (store.root / "tmp" / "partial").write_bytes(b"x")
    (store.root / "cur" / ".hidden").write_bytes(b"x")
    scanned = {(s.key, s.subdir, s.flags) for s in store.scan("INBOX")}
    assert scanned == {(a.key, "new", ""), (b.key, "cur", "F")}
    assert split_name(f"{b.key}:2,F") == (b.key, "F")


def test_batch_defers_directory_syncs(store: MaildirStore, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    from tui_mail.store import maildir as mod

    monkeypatch.setattr(mod, "_fsync_dir", lambda p: synced.append(str(p)))
    with store.batch():
        for _ in range(5):
            store.add("INBOX", MSG)
        assert synced == []
    assert synced == [str(store.root / "new")]


def test_missing_root_without_create(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        MaildirStore(tmp_path / "nothing", create=False)
