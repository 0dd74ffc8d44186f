"""Maildir++ storage for one account: files that mutt, mbsync and Python read too.

Layout: the account root is INBOX (root/cur, new, tmp); folder "A/B" lives in
root/".A.B". Every write goes to tmp/ first, is fsynced, then renamed into
place, and the target directory is fsynced, so a crash leaves either the whole
message or nothing outside tmp/. See docs/store.md.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import os
import shutil
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from msgspec import Struct

from tui_mail.core.errors import StoreError
from tui_mail.core.flags import normalise_maildir_letters

INBOX = "INBOX"
SUBDIRS = ("new", "cur")
INFO = ":2,"
# Characters that would change the meaning of a Maildir++ directory name or a path.
_UNSAFE = frozenset("./%\\")
_COPY_CHUNK = 1 << 20

_counter = itertools.count(1)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC
# Few distinct flag strings exist; parsing each through FlagSet costs ~5 us.
_letters = functools.lru_cache(maxsize=1024)(normalise_maildir_letters)
_hostname_cache: str | None = None
_per_process: tuple[int, str, str] = (0, "", "")  # (pid, P<pid>Q, R<random>.host)
# `base / name` re-parses the whole path (~5 us: a fifth of add() on a small message);
# CPython's own constructor for a directory entry does not. Private API, so taken
# only from the versions known to have it with this meaning.
child_path: Callable[[Path, str], Path] = (
    Path._make_child_relpath  # type: ignore[attr-defined]
    if sys.version_info < (3, 13) and hasattr(Path, "_make_child_relpath")
    else operator.truediv
)


class StoredFile(Struct, frozen=True):
    folder: str
    key: str  # the unique name before ":2,"; stable across flag changes
    subdir: str  # "new" or "cur"
    flags: str  # Maildir letters as found on disk
    path: Path
    size: int
    mtime: float


# --- names -------------------------------------------------------------------------


def _is_control(ch: str) -> bool:
    o = ord(ch)
    return o < 0x20 or 0x7F <= o <= 0x9F


def _escape_component(comp: str) -> str:
    if comp == "":
        # "%" alone can never come out of escaping (a real "%" becomes "%25"),
        # so it is free to mean "empty component".
        return "%"
    out: list[str] = []
    for ch in comp:
        if ch in _UNSAFE or _is_control(ch) or 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
        else:
            out.append(ch)
    return "".join(out)


def _unescape_component(comp: str) -> str:
    if comp == "%":
        return ""
    if comp == "":
        raise StoreError("empty folder name component")
    raw = bytearray()
    i = 0
    while i < len(comp):
        ch = comp[i]
        if ch == "%":
            hexpart = comp[i + 1 : i + 3]
            if len(hexpart) != 2 or not all(c in "0123456789ABCDEFabcdef" for c in hexpart):
                raise StoreError(f"bad escape in folder directory name {comp!r}")
            raw.append(int(hexpart, 16))
            i += 3
        else:
            raw += ch.encode("utf-8", "surrogateescape")
            i += 1
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise StoreError(f"folder directory name {comp!r} is not UTF-8") from exc


def is_inbox(name: str) -> bool:
    # IMAP: INBOX is case-insensitive, every other name is not. ASCII-only so that
    # e.g. a dotless "ı" cannot upper-case its way into the root.
    return name.isascii() and name.upper() == INBOX


def encode_folder(name: str) -> str:
    """Folder name ("/" between levels) -> directory name under the root ("" = INBOX)."""
    if not isinstance(name, str):
        raise StoreError(f"folder name must be text, not {type(name).__name__}")
    if is_inbox(name):
        return ""
    return "." + ".".join(_escape_component(c) for c in name.split("/"))


def decode_folder(dirname: str) -> str:
    """Directory name -> folder name. Raises StoreError for names we would not write."""
    if dirname == "":
        return INBOX
    if not dirname.startswith(".") or dirname in (".", ".."):
        raise StoreError(f"{dirname!r} is not a Maildir++ folder directory")
    return "/".join(_unescape_component(c) for c in dirname[1:].split("."))


def split_name(name: str) -> tuple[str, str]:
    """File name -> (key, flag letters). Info other than "2," has no flags for us."""
    key, _, info = name.partition(":")
    return key, info[2:] if info.startswith("2,") else ""


def file_name(key: str, subdir: str, flags: str) -> str:
    """The file name of a message with these flag letters in new/ or cur/."""
    # new/ holds messages no MUA has looked at yet: they carry no info suffix.
    if subdir == "new" and not flags:
        return key
    return f"{key}{INFO}{flags}"


def _hostname() -> str:
    global _hostname_cache
    if _hostname_cache is None:
        host = socket.gethostname() or "localhost"
        # The Maildir spec's own escapes: "/" and ":" would break the name.
        _hostname_cache = host.replace("/", r"\057").replace(":", r"\072")
    return _hostname_cache


def unique_name() -> str:
    """time.M<usec>P<pid>Q<counter>R<random>.host, as cr.yp.to/proto/maildir.html suggests.

    R is drawn once per process: pid and counter already make every name of this
    host unique, and R is only for another host of the same name sharing the
    Maildir. A fresh one per name was a third of this function's cost.
    """
    global _per_process
    pid = os.getpid()
    if _per_process[0] != pid:  # the first call, or a forked child
        _per_process = (pid, f"P{pid}Q", f"R{os.urandom(8).hex()}.{_hostname()}")
    now = time.time()
    sec = int(now)
    _, pid_part, tail = _per_process
    return f"{sec}.M{int((now - sec) * 1_000_000)}{pid_part}{next(_counter)}{tail}"


def _utf8_name(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_key(key: str) -> None:
    if not key or "/" in key or "\0" in key or key.startswith(".") or ":" in key:
        raise StoreError(f"bad message key {key!r}")


def _fsync_dir(path: Path | str) -> None:
    try:
        fd = os.open(path, _DIRECTORY)
    except OSError as exc:
        raise StoreError(f"cannot open {path} to sync it: {exc.strerror}") from exc
    try:
        _fsync_dir_fd(fd, path)
    finally:
        os.close(fd)


def _fsync_dir_fd(fd: int, path: Path | str) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems refuse fsync on directories; the rename is all we can do there.
        if exc.errno not in (22, 95):  # EINVAL, EOPNOTSUPP
            raise StoreError(f"cannot sync {path}: {exc.strerror}") from exc


def _check_same_dir(fd: int, path: str, folder: str) -> None:
    """StoreError unless `path` still leads to the directory open as `fd`."""
    try:
        here, there = os.fstat(fd), os.stat(path)
        same = (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
    except OSError:
        same = False
    if not same:
        raise StoreError(
            f"the folder {folder!r} was moved or removed while messages were written into it"
        )


def _os_error(what: str, exc: OSError) -> StoreError:
    return StoreError(f"{what}: {exc.strerror or exc}")


# --- the store ---------------------------------------------------------------------


class MaildirStore:
    """One account's Maildir++ tree. Not safe to share between threads during batch()."""

    def __init__(self, root: Path, create: bool = True) -> None:
        self.root = Path(root)
        self._batch_depth = 0
        self._dirty: set[str] = set()
        self._dirs: dict[str, str] = {}  # folder -> directory known to exist
        # "<dir>/cur" -> its Path: `base / name` costs half of Path(whole string),
        # which showed in the profile of an initial sync. Keyed by the string, so
        # never stale.
        self._subdir_paths: dict[str, Path] = {}
        if create:
            self._make_maildir(self.root, subfolder=False)
        elif not (self.root / "cur").is_dir():
            raise StoreError(f"{self.root} is not a Maildir (no cur/ directory)")

    # -- folders

    def folder_path(self, folder: str) -> Path:
        dirname = encode_folder(folder)
        path = self.root / dirname if dirname else self.root
        # encode_folder cannot produce "/" or "..": this is a second lock on the door.
        if dirname and path.parent != self.root:
            raise StoreError(f"folder {folder!r} would leave the account root")
        return path

    def _make_maildir(self, path: Path, *, subfolder: bool) -> None:
        try:
            created = not path.exists()
            path.mkdir(mode=0o700, parents=not subfolder, exist_ok=True)
            for sub in ("cur", "new", "tmp"):
                (path / sub).mkdir(mode=0o700, exist_ok=True)
            if subfolder:
                # Maildir++ marks subfolders with this file; Courier/Dovecot deliver needs it.
                (path / "maildirfolder").touch(mode=0o600, exist_ok=True)
        except OSError as exc:
            raise _os_error(f"cannot create Maildir {path}", exc) from exc
        if created:
            _fsync_dir(path)
            _fsync_dir(path.parent)

    def _dir(self, folder: str, *, create: bool) -> Path:
        path = self.folder_path(folder)
        if create:
            self._make_maildir(path, subfolder=path != self.root)
        elif not (path / "cur").is_dir():
            raise StoreError(f"no folder {folder!r} in {self.root}")
        return path

    def _dir_str(self, folder: str) -> str:
        """The folder's directory as a string, created if needed; cached per folder."""
        cached = self._dirs.get(folder)
        if cached is None:
            cached = self._dirs[folder] = str(self._dir(folder, create=True))
        return cached

    def list_folders(self) -> list[str]:
        """ "INBOX" first, then the other folders sorted. Non-canonical dirs are skipped."""
        names: list[str] = []
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    dirname = entry.name
                    if not dirname.startswith(".") or dirname in (".", ".."):
                        continue
                    if not entry.is_dir():
                        continue
                    try:
                        name = decode_folder(dirname)
                    except StoreError:
                        continue
                    # Only names we would write ourselves: anything else could make two
                    # directories decode to one folder (".INBOX" vs the root, "%41" vs "A").
                    if encode_folder(name) != dirname:
                        continue
                    if os.path.isdir(os.path.join(entry.path, "cur")):
                        names.append(name)
        except OSError as exc:
            raise _os_error(f"cannot list {self.root}", exc) from exc
        return [INBOX, *sorted(names)]

    def create_folder(self, name: str) -> None:
        self._dir(name, create=True)

    def delete_folder(self, name: str, force: bool = False) -> None:
        """Remove one folder (not its Maildir++ children). Refuses a non-empty one."""
        if is_inbox(name):
            raise StoreError("INBOX cannot be deleted")
        path = self.folder_path(name)
        if not (path / "cur").is_dir():
            raise StoreError(f"no folder {name!r}")
        if not force and any(True for _ in self.scan_names(name)):
            raise StoreError(f"folder {name!r} is not empty")
        # Rename out of sight first (atomic), then remove at leisure: a crash midway
        # leaves a stray directory in tmp/, never a half-deleted folder.
        grave = self.root / "tmp" / f".deleted-{unique_name()}"
        try:
            os.rename(path, grave)
        except OSError as exc:
            raise _os_error(f"cannot delete folder {name!r}", exc) from exc
        _fsync_dir(self.root)
        self._dirs.pop(name, None)
        shutil.rmtree(grave, ignore_errors=True)

    def rename_folder(self, old: str, new: str) -> None:
        """Rename a folder and its children (IMAP RENAME semantics)."""
        if is_inbox(old) or is_inbox(new):
            raise StoreError("INBOX cannot be renamed")
        moves: list[tuple[Path, Path]] = []
        for name in self.list_folders():
            if name == old or name.startswith(old + "/"):
                target = self.folder_path(new + name[len(old) :])
                if target.exists():
                    raise StoreError(f"folder {new + name[len(old) :]!r} already exists")
                moves.append((self.folder_path(name), target))
        if not moves:
            raise StoreError(f"no folder {old!r}")
        try:
            for src, dst in moves:
                os.rename(src, dst)
        except OSError as exc:
            raise _os_error(f"cannot rename folder {old!r}", exc) from exc
        finally:
            self._dirs.clear()
            _fsync_dir(self.root)

    # -- durability

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer directory fsyncs to the end of the block (one per directory).

        File contents are still fsynced before each rename, and a move still syncs
        its target before removing the source, so a crash can lose the last renames
        of the batch but never a message. Use around bulk downloads and rescans.
        """
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                dirty, self._dirty = self._dirty, set()
                for path in dirty:
                    if os.path.isdir(path):
                        _fsync_dir(path)

    def _sync_dir(self, path: Path | str) -> None:
        if self._batch_depth:
            self._dirty.add(str(path))
        else:
            _fsync_dir(path)

    # -- writing

    def add(self, folder: str, raw: bytes, flags: str = "", key: str | None = None) -> StoredFile:
        """Write one message durably (see add_many); its directory is fsynced before
        this returns, or at the end of the batch() it is called in."""
        if key is not None:
            _check_key(key)
        return self._write(folder, ((raw, flags, key),))[0]

    def add_many(self, folder: str, messages: Iterable[tuple[bytes, str]]) -> list[StoredFile]:
        """Write (raw, flag letters) messages durably: the bulk path of a download.

        Each file is written to tmp/, fsynced and renamed into new/ or cur/ before
        the next is begun; each directory is fsynced once, at the end (inside
        batch(), at the end of that). A failure to write raises StoreError (an
        error of `messages` itself passes through as it is), leaving the files
        already renamed in place (mail that nothing records yet) and no
        half-written file. No message, no folder made.
        """
        return self._write(folder, ((raw, flags, None) for raw, flags in messages))

    def _write(
        self, folder: str, messages: Iterable[tuple[bytes, str, str | None]]
    ) -> list[StoredFile]:
        """add() and add_many(), through descriptors of the folder's directories.

        Names relative to an open tmp/, new/ and cur/ spare the kernel the walk
        down the whole path for each open and (twice) each rename: ~2.5 us of
        ~20 per message. Such a descriptor follows its directory if the folder
        is moved or removed meanwhile, so before the files are called durable
        the paths are checked to still lead to those directories (StoreError
        if not: nothing records the files, and the next sync fetches them
        again). Plain os calls, no buffered file object and no fstat: for a small
        message the Python around the syscalls cost more than the syscalls.
        The mtime, which only dates a message without a Date header, is the
        clock's at the write; the size is what was written.
        """
        out: list[StoredFile] = []
        dirs: dict[str, int] = {}
        bases: dict[str, Path] = {}
        fdir, at_tmp = "", -1
        try:
            for raw, letters, given in messages:
                if not dirs:  # opened at the first message: none, no folder made
                    fdir, dirs = self._open_dirs(folder)
                    at_tmp = dirs["tmp"]
                    bases = {sub: self._subdir_path(f"{fdir}/{sub}") for sub in SUBDIRS}
                flags = _letters(letters)
                key = unique_name() if given is None else given
                try:
                    fd = os.open(key, _NEW_FILE, 0o600, dir_fd=at_tmp)
                except OSError as exc:
                    raise _os_error(f"cannot write into {fdir}/tmp", exc) from exc
                try:
                    try:
                        written = os.write(fd, raw)
                        if written < len(raw):  # a short write: only ever seen for large files
                            view = memoryview(raw)[written:]
                            while view:
                                view = view[os.write(fd, view) :]
                        mtime = time.time()
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    subdir = "cur" if flags else "new"
                    name = file_name(key, subdir, flags)
                    os.rename(key, name, src_dir_fd=at_tmp, dst_dir_fd=dirs[subdir])
                except BaseException as exc:
                    with contextlib.suppress(OSError):
                        os.unlink(key, dir_fd=at_tmp)
                    if isinstance(exc, OSError):
                        raise _os_error(f"cannot store a message in {folder!r}", exc) from exc
                    raise
                out.append(
                    StoredFile(
                        folder, key, subdir, flags, child_path(bases[subdir], name), len(raw), mtime
                    )
                )
            for subdir in {s.subdir for s in out}:
                where = f"{fdir}/{subdir}"
                _check_same_dir(dirs[subdir], where, folder)
                if self._batch_depth:
                    self._dirty.add(where)
                else:
                    _fsync_dir_fd(dirs[subdir], where)
            return out
        finally:
            for fd in dirs.values():
                os.close(fd)

    def _open_dirs(self, folder: str) -> tuple[str, dict[str, int]]:
        """(folder directory, descriptors of its tmp/ new/ cur/), made if needed."""
        for attempt in (1, 2):
            fdir = self._dir_str(folder)
            dirs: dict[str, int] = {}
            try:
                for sub in ("tmp", *SUBDIRS):
                    dirs[sub] = os.open(f"{fdir}/{sub}", _DIRECTORY)
                return fdir, dirs
            except OSError as exc:
                for fd in dirs.values():
                    os.close(fd)
                if attempt == 1 and isinstance(exc, FileNotFoundError):
                    # The folder went away behind our back since we last looked: make it again.
                    self._dirs.pop(folder, None)
                    continue
                raise _os_error(f"cannot write into {fdir}", exc) from exc
        raise AssertionError("unreachable")

    def _subdir_path(self, where: str) -> Path:
        base = self._subdir_paths.get(where)
        if base is None:
            base = self._subdir_paths[where] = Path(where)
        return base

    def _open_tmp(self, folder: str, key: str) -> tuple[str, str, int]:
        """(folder directory, tmp/ path, fd) of a new, exclusive tmp file."""
        # Plain strings on this path: pathlib objects cost more than the syscalls
        # when an initial sync writes thousands of messages.
        fdir = self._dir_str(folder)
        tmp = f"{fdir}/tmp/{key}"
        try:
            return fdir, tmp, os.open(tmp, _NEW_FILE, 0o600)
        except FileNotFoundError:
            # The folder went away behind our back since we last looked: make it again.
            self._dirs.pop(folder, None)
            fdir = self._dir_str(folder)
            tmp = f"{fdir}/tmp/{key}"
            try:
                return fdir, tmp, os.open(tmp, _NEW_FILE, 0o600)
            except OSError as exc:
                raise _os_error(f"cannot write into {fdir}/tmp", exc) from exc
        except OSError as exc:
            raise _os_error(f"cannot write into {fdir}/tmp", exc) from exc

    def add_stream(
        self, folder: str, chunks: Iterable[bytes], flags: str = "", key: str | None = None
    ) -> StoredFile:
        """Write a message durably; a failure (in chunks too) leaves no file behind.

        `key` lets a caller record the name before the file exists (see
        store/seen.py), so a crash mid-write can be told apart from no write.
        """
        flags = _letters(flags)
        if key is None:
            key = unique_name()
        else:
            _check_key(key)
        fdir, tmp, fd = self._open_tmp(folder, key)
        ours = False  # is the code running ours (file I/O) or the caller's iterator?
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    ours = True
                    fh.write(chunk)
                    ours = False
                ours = True
                fh.flush()
                os.fsync(fh.fileno())
                st = os.fstat(fh.fileno())
            subdir = "cur" if flags else "new"
            target = f"{fdir}/{subdir}/{file_name(key, subdir, flags)}"
            os.rename(tmp, target)
        except BaseException as exc:
            # Whatever went wrong (disk full, the network feeding chunks, a cancel),
            # the half-written file must not survive to be mistaken for mail.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            # A ConnectionError from the source is an OSError too, but not ours to wrap.
            if ours and isinstance(exc, OSError):
                raise _os_error(f"cannot store a message in {folder!r}", exc) from exc
            raise
        self._sync_dir(f"{fdir}/{subdir}")
        return StoredFile(folder, key, subdir, flags, Path(target), st.st_size, st.st_mtime)

    def locate(
        self, folder: str, key: str, hint: tuple[str, str] | None = None
    ) -> StoredFile | None:
        """Find a message by key, whatever flags another tool gave it.

        `hint` is the (subdir, flags) last seen (the index has them); with it the
        usual case is one stat() instead of a directory scan.
        """
        _check_key(key)
        fdir = self.folder_path(folder)
        guesses: list[tuple[str, str]] = []
        if hint is not None and hint[0] in SUBDIRS:
            guesses.append((hint[0], file_name(key, hint[0], hint[1])))
        guesses += [("new", key), ("cur", key + INFO)]
        for subdir, name in guesses:
            try:
                st = os.stat(fdir / subdir / name)
            except OSError:
                continue
            return StoredFile(
                folder, key, subdir, split_name(name)[1], fdir / subdir / name, st.st_size,
                st.st_mtime,
            )  # fmt: skip
        prefix = key + ":"
        for subdir in ("cur", "new"):
            try:
                with os.scandir(fdir / subdir) as entries:
                    for entry in entries:
                        if entry.name == key or entry.name.startswith(prefix):
                            try:
                                st = entry.stat()
                            except OSError:
                                continue
                            return StoredFile(
                                folder, key, subdir, split_name(entry.name)[1],
                                Path(entry.path), st.st_size, st.st_mtime,
                            )  # fmt: skip
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise _os_error(f"cannot scan {fdir / subdir}", exc) from exc
        return None

    def _require(self, folder: str, key: str, hint: tuple[str, str] | None) -> StoredFile:
        found = self.locate(folder, key, hint)
        if found is None:
            raise StoreError(f"message {key} is no longer in {folder!r}")
        return found

    def set_flags(
        self, folder: str, key: str, flags: str, hint: tuple[str, str] | None = None
    ) -> StoredFile:
        """Rename to cur/key:2,<letters>; letters sorted, unknown ones kept."""
        letters = _letters(flags)
        current = self._require(folder, key, hint)
        return self._rename_in_folder(current, "cur", letters)

    def mark_seen_cur(
        self, folder: str, key: str, hint: tuple[str, str] | None = None
    ) -> StoredFile:
        """Move a message from new/ to cur/ keeping its flags (what a MUA does on view)."""
        current = self._require(folder, key, hint)
        if current.subdir == "cur":
            return current
        return self._rename_in_folder(current, "cur", _letters(current.flags))

    def _rename_in_folder(self, current: StoredFile, subdir: str, letters: str) -> StoredFile:
        fdir = current.path.parent.parent
        target = fdir / subdir / file_name(current.key, subdir, letters)
        if current.path == target:
            return current
        for attempt in range(3):
            try:
                os.rename(current.path, target)
                break
            except FileNotFoundError:
                # Another tool renamed it between our look and our rename: look again.
                again = self.locate(current.folder, current.key) if attempt < 2 else None
                if again is None:
                    raise StoreError(
                        f"message {current.key} vanished from {current.folder!r}"
                    ) from None
                current = again
            except OSError as exc:
                raise _os_error(f"cannot change flags of {current.key}", exc) from exc
        self._sync_dir(target.parent)
        if current.path.parent != target.parent:
            self._sync_dir(current.path.parent)
        return StoredFile(
            current.folder, current.key, subdir, letters, target, current.size, current.mtime
        )

    def move(
        self, folder: str, key: str, to_folder: str, hint: tuple[str, str] | None = None
    ) -> StoredFile:
        """Move keeping key and flags when possible. Never a moment with no copy on disk."""
        src = self._require(folder, key, hint)
        if self.folder_path(to_folder) == self.folder_path(folder):
            return src
        ddir = Path(self._dir_str(to_folder))
        target = ddir / src.subdir / src.path.name
        new_key = key
        try:
            for _ in range(3):
                try:
                    os.link(src.path, target)
                    break
                except FileExistsError:
                    # The key is taken there (a copy made earlier): give this one a new key.
                    new_key = unique_name()
                    target = ddir / src.subdir / (new_key + src.path.name[len(key) :])
            else:
                raise StoreError(f"cannot find a free name in {to_folder!r}")
        except OSError as exc:
            # No hard links here (some FUSE/SMB mounts, or the folder is on another
            # filesystem): fall back to a full copy, then unlink.
            if isinstance(exc, FileNotFoundError):
                raise StoreError(f"message {key} vanished from {folder!r}") from exc
            copied = self.copy(folder, key, to_folder, hint=(src.subdir, src.flags))
            _fsync_dir(copied.path.parent)
            self._unlink(src)
            return copied
        # The new name must be on disk before the old one goes, even inside batch().
        _fsync_dir(target.parent)
        self._unlink(src)
        return StoredFile(to_folder, new_key, src.subdir, src.flags, target, src.size, src.mtime)

    def _unlink(self, stored: StoredFile) -> None:
        try:
            os.unlink(stored.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _os_error(f"cannot remove {stored.path}", exc) from exc
        self._sync_dir(stored.path.parent)

    def copy(
        self, folder: str, key: str, to_folder: str, hint: tuple[str, str] | None = None
    ) -> StoredFile:
        """A new file with a new key and the same flags, written the durable way."""
        src = self._require(folder, key, hint)
        try:
            with open(src.path, "rb") as fh:
                chunks = iter(lambda: fh.read(_COPY_CHUNK), b"")
                return self.add_stream(to_folder, chunks, src.flags)
        except FileNotFoundError as exc:
            raise StoreError(f"message {key} vanished from {folder!r}") from exc
        except OSError as exc:
            raise _os_error(f"cannot copy {key}", exc) from exc

    def remove(self, folder: str, key: str, hint: tuple[str, str] | None = None) -> bool:
        """Delete a message file; False if it was already gone."""
        found = self.locate(folder, key, hint)
        if found is None:
            return False
        self._unlink(found)
        return True

    def read_bytes(self, folder: str, key: str, hint: tuple[str, str] | None = None) -> bytes:
        for _ in range(3):
            found = self._require(folder, key, hint)
            try:
                return found.path.read_bytes()
            except FileNotFoundError:
                hint = None  # renamed under us by another tool: locate again
            except OSError as exc:
                raise _os_error(f"cannot read {found.path}", exc) from exc
        raise StoreError(f"message {key} keeps moving in {folder!r}")

    # -- scanning

    def scan_names(self, folder: str) -> Iterator[tuple[str, str]]:
        """(subdir, file name) for every message; no stat, so cheap for 100k files."""
        fdir = self.folder_path(folder)
        for subdir in SUBDIRS:
            try:
                with os.scandir(fdir / subdir) as entries:
                    for entry in entries:
                        # Dotfiles are other tools' bookkeeping; tmp/ is never mail.
                        if entry.name.startswith(".") or not entry.is_file():
                            continue
                        yield subdir, entry.name
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise _os_error(f"cannot scan {fdir / subdir}", exc) from exc

    def list_names(self, folder: str) -> tuple[set[str], set[str]]:
        """File names in new/ and in cur/ (dotfiles skipped): the rescan fast path.

        os.listdir makes no per-entry objects beyond the names, which matters
        at 100k files; a stray directory in cur/ shows up as a name and fails
        later, harmlessly, when read.
        """
        fdir = self.folder_path(folder)
        result: list[set[str]] = []
        for subdir in ("new", "cur"):
            try:
                names = os.listdir(fdir / subdir)
            except FileNotFoundError:
                names = []
            except OSError as exc:
                raise _os_error(f"cannot scan {fdir / subdir}", exc) from exc
            # A name that is not UTF-8 (os.listdir hands it over surrogate-escaped)
            # cannot be a key in the index; we never write one, so it is not ours.
            result.append({n for n in names if not n.startswith(".") and _utf8_name(n)})
        return result[0], result[1]

    def scan(self, folder: str) -> Iterator[StoredFile]:
        fdir = self.folder_path(folder)
        for subdir, name in self.scan_names(folder):
            path = fdir / subdir / name
            try:
                st = os.stat(path)
            except OSError:
                continue  # gone since the directory was read
            key, flags = split_name(name)
            yield StoredFile(folder, key, subdir, flags, path, st.st_size, st.st_mtime)

    def stored_file(self, folder: str, subdir: str, name: str) -> StoredFile | None:
        """A StoredFile for a name from scan_names(), or None if it is gone."""
        path = self.folder_path(folder) / subdir / name
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        key, flags = split_name(name)
        return StoredFile(folder, key, subdir, flags, path, st.st_size, st.st_mtime)


def to_local_line_endings(raw: bytes) -> bytes:
    """CRLF as sent on the wire becomes LF, the Maildir convention.

    mutt, mbsync and Dovecot all keep LF on disk; a file with CRLF shows
    stray ^M in some readers. Senders convert back to CRLF for the wire.
    """
    return raw.replace(b"\r\n", b"\n") if b"\r\n" in raw else raw
