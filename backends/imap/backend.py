"""IMAP as a receive backend: folders, UIDs, flags both ways, push.

One main connection carries every command the sync engine sends, one at a
time (the engine is sequential); IDLE gets a connection of its own so a push
can wait while the main connection works. A connection that failed in any
way (timeout, drop, malformed reply, cancel) is thrown away: the next call
opens a new one, and the worker's backoff decides how often that happens.

Folder names: the server's names are decoded from modified UTF-7 and its
hierarchy delimiter is replaced by "/". A "/" inside one level of a server
whose delimiter is something else becomes U+2215 (DIVISION SLASH) so it does
not invent a level; the wire name of every listed folder is remembered, so
commands always use exactly what the server sent. Names that are hostile as
paths are the store's business (its folder encoding), not ours.

Stale UIDs: every method taking ServerIds checks their UIDVALIDITY against
the folder's current one and refuses (ProtocolError) on a mismatch, so a
pending change can never hit another message after a UIDVALIDITY reset.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date

from msgspec import Struct

from tui_mail.backends.base import (
    SEARCH_DATE_FIELDS,
    SEARCH_FLAG_FIELDS,
    SEARCH_SIZE_FIELDS,
    SEARCH_TEXT_FIELDS,
    BackendContext,
    FolderState,
    ProgressCallback,
    ReceiveBackend,
    RemoteFolder,
    SearchTerm,
)
from tui_mail.backends.imap.client import (
    CommandResult,
    ImapConnection,
    ImapSettings,
)
from tui_mail.backends.imap.parse import (
    Limits,
    Literal,
    UidSet,
    Untagged,
    astring,
    decode_mutf7,
    encode_mutf7,
    parse_esearch,
    parse_internaldate,
    parse_list,
    parse_search,
    parse_status_items,
    parse_vanished,
    server_reason,
    server_text,
    to_bytes,
    uid_set,
    uid_set_chunks,
)
from tui_mail.config.schema import DEFAULT_PORTS
from tui_mail.config.secrets import resolve_oauth_token, resolve_password
from tui_mail.core.capabilities import Capabilities, Capability
from tui_mail.core.errors import ConfigError, ProtocolError, Unsupported
from tui_mail.core.flags import Flag, FlagSet
from tui_mail.core.models import FolderRole, RemoteMessage, ServerId

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_SIZE = 100 * 1024 * 1024
# UIDs per FETCH command. Memory is bounded by the client's flow control, not by
# this; what it sets is how often the download waits for the next command to be
# sent and answered (the next is sent as the reader takes the last one's end).
# At 5000, a first sync of 10k messages in 3 folders took 0.654 s against 0.702 s
# at 500 (median of 24 alternating runs; some sets showed no difference).
DEFAULT_BATCH = 5000
DEFAULT_WINDOW = 2  # FETCH commands in flight
# Command lines stay far below servers' limits (Dovecot: 64 KiB).
_MAX_SET_TEXT = 8000
# A server's listing may hold a few more UIDs than EXISTS said (new arrivals).
_UID_SLACK = 100_000
# The same for FETCH answers, which cost far more per message to collect.
_FETCH_SLACK = 10_000

_ROLES = {
    "\\sent": FolderRole.SENT,
    "\\drafts": FolderRole.DRAFTS,
    "\\trash": FolderRole.TRASH,
    "\\junk": FolderRole.JUNK,
    "\\archive": FolderRole.ARCHIVE,
}
# IMAP system flags (and the $Forwarded keyword) <-> our flags.
_FROM_IMAP = {
    "\\seen": Flag.SEEN,
    "\\answered": Flag.ANSWERED,
    "\\flagged": Flag.FLAGGED,
    "\\deleted": Flag.DELETED,
    "\\draft": Flag.DRAFT,
    "$forwarded": Flag.PASSED,
}
_TO_IMAP = {
    Flag.SEEN: b"\\Seen",
    Flag.ANSWERED: b"\\Answered",
    Flag.FLAGGED: b"\\Flagged",
    Flag.DELETED: b"\\Deleted",
    Flag.DRAFT: b"\\Draft",
    Flag.PASSED: b"$Forwarded",
}
_LEVEL_SLASH = "\u2215"  # stands for a "/" inside one level of the server's hierarchy


def flags_from_imap(items: tuple[str, ...] | None) -> FlagSet:
    """IMAP flags -> FlagSet; keywords other than $Forwarded kept as keywords.

    Memoised: a folder has few distinct flag combinations and a bulk FETCH
    converts the same few thousands of times.
    """
    key = items or ()
    found = _FLAG_CACHE.get(key)
    if found is None:
        found = _flags_from_imap(key)
        # Bounded in entries and in what one holds (a few KiB): neither endless
        # keywords nor megabytes of them in one FETCH can grow it.
        if len(key) <= 32 and sum(map(len, key)) <= 512:
            if len(_FLAG_CACHE) > 4096:
                _FLAG_CACHE.clear()
            _FLAG_CACHE[key] = found
    return found


_FLAG_CACHE: dict[tuple[str, ...], FlagSet] = {}


def _flags_from_imap(items: Iterable[str]) -> FlagSet:
    flags: set[Flag] = set()
    keywords: set[str] = set()
    for item in items:
        f = _FROM_IMAP.get(item.lower())
        if f is not None:
            flags.add(f)
        elif not item.startswith("\\"):  # \Recent and unknown system flags are not ours
            keywords.add(item)
    return FlagSet(frozenset(flags), keywords=frozenset(keywords))


def flags_to_imap(flags: Iterable[Flag]) -> bytes:
    return b"(" + b" ".join(sorted(_TO_IMAP[f] for f in flags)) + b")"


class _Selected(Struct):
    wire: bytes
    state: FolderState
    readonly: bool


class ImapReceiveBackend(ReceiveBackend):
    """IMAP4rev1 over TLS or STARTTLS (plaintext only on loopback or when allowed).

    Options (`[accounts.NAME.receive]`): `max_message_size` (bytes, default
    100 MiB; larger messages are skipped and listed in `skipped`),
    `fetch_batch` (UIDs per FETCH, default 5000), `push_folder` (the folder
    IDLE watches, default INBOX), `idle` (false: poll even where the server
    pushes), `folders` (shell patterns like mbsync's `Patterns`, e.g.
    `["INBOX", "Lists/*"]`: only matching folders are mirrored; INBOX always is).
    """

    name = "imap"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        ep = ctx.endpoint
        key = ep.key_path

        def where(k: str) -> str | None:
            return f"{key}.{k}" if key else None

        if not ep.host:
            raise ConfigError("an imap account needs `host`", key=where("host"))
        if not ep.user:
            raise ConfigError("an imap account needs `user`", key=where("user"))
        if ep.security == "none" and not (ep.allow_plaintext or _is_loopback(ep.host)):
            raise ConfigError(
                f'security = "none" to {ep.host} would send the password unencrypted',
                key=where("security"),
            )
        max_size = _positive(ep.options.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE))
        if max_size is None:
            raise ConfigError(
                "max_message_size must be a positive number of bytes",
                key=where("max_message_size"),
            )
        batch = _positive(ep.options.get("fetch_batch", DEFAULT_BATCH))
        if batch is None:
            raise ConfigError("fetch_batch must be a positive number", key=where("fetch_batch"))
        push_folder = ep.options.get("push_folder", "INBOX")
        if not isinstance(push_folder, str) or not push_folder:
            raise ConfigError("push_folder must be a folder name", key=where("push_folder"))
        use_idle = ep.options.get("idle", True)
        if not isinstance(use_idle, bool):
            raise ConfigError("idle must be true or false", key=where("idle"))
        patterns = ep.options.get("folders")
        if patterns is not None and (
            not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns)
        ):
            raise ConfigError("folders must be a list of folder patterns", key=where("folders"))
        self.use_idle = use_idle
        self.folder_patterns: tuple[str, ...] | None = (
            tuple(patterns) if patterns is not None else None
        )
        self.max_message_size = max_size
        self.batch = batch
        self.window = DEFAULT_WINDOW
        self.push_folder = push_folder
        self.settings = ImapSettings(
            host=ep.host,
            port=ep.port or DEFAULT_PORTS[("imap", ep.security)],
            security=ep.security,
            user=ep.user,
            ca_file=ep.ca_file,
            timeout=ep.timeout,
            # A literal a little over the message limit is a message we skip by
            # size beforehand; anything bigger is a broken or hostile server.
            limits=Limits(max_literal=max_size + 65536, max_response=max_size + 16 * 1024 * 1024),
            key_path=key,
        )
        self.skipped: dict[str, list[tuple[int, int]]] = {}  # folder -> [(uid, size)] too big
        # folder -> (UIDVALIDITY, UIDNEXT, SIZE) from the last STATUS=SIZE answer: every
        # message below that UIDNEXT was counted in SIZE (see _too_large).
        self._status_sizes: dict[str, tuple[int, int, int]] = {}
        self._conn: ImapConnection | None = None
        self._idle: ImapConnection | None = None
        self._idle_folder: str | None = None
        self._connecting = asyncio.Lock()
        self._server_caps: frozenset[str] = frozenset()
        self._enabled: frozenset[str] = frozenset()
        self._wire_names: dict[str, bytes] = {}
        self._delimiter: str | None = None
        self._selected: _Selected | None = None

    # ------------------------------------------------------------------ capabilities

    @property
    def capabilities(self) -> Capabilities:
        caps = {
            Capability.FOLDERS,
            Capability.SERVER_FLAGS,
            Capability.KEYWORDS,
            Capability.COPY,
            Capability.APPEND,
            Capability.SERVER_SEARCH,
        }
        server = self._server_caps
        if not server:
            return frozenset(caps)  # before connecting: what every IMAP4rev1 server has
        caps.add(Capability.MOVE)  # UID MOVE, or emulated by COPY + STORE + EXPUNGE
        if "IDLE" in server and self.use_idle:
            caps.add(Capability.PUSH)
        if "CONDSTORE" in server or "QRESYNC" in server:
            caps.add(Capability.CONDSTORE)
        if "QRESYNC" in server:
            caps.add(Capability.QRESYNC)
        return frozenset(caps)

    def take_alerts(self) -> list[str]:
        out: list[str] = []
        for conn in (self._conn, self._idle):
            if conn is not None:
                out.extend(conn.alerts)
                conn.alerts.clear()
        return out

    @property
    def server_capabilities(self) -> frozenset[str]:
        """The server's CAPABILITY atoms after login (for diagnostics and tests)."""
        return self._server_caps

    @property
    def commands_sent(self) -> int:
        """Commands sent on the main connection since it was opened."""
        return self._conn.commands_sent if self._conn is not None else 0

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        await self._main()

    async def close(self) -> None:
        for conn in (self._conn, self._idle):
            if conn is not None:
                await conn.logout()
        self._conn = self._idle = None
        self._selected = None

    async def abort(self) -> None:
        for conn in (self._conn, self._idle):
            if conn is not None:
                conn.abort()
        self._conn = self._idle = None
        self._selected = None

    async def check(self) -> str:
        conn = await self._main()
        folders = await self.list_folders()
        how = "TLS" if conn.tls else "no encryption"
        await self.close()
        return (
            f"IMAP {self.settings.where} ({how}) as {self.settings.user}: "
            f"{len(folders)} folder{'s' if len(folders) != 1 else ''}"
        )

    async def _open(self) -> ImapConnection:
        ep = self.ctx.endpoint
        # Secrets come from user commands (pass, gpg): run them off the event loop.
        if ep.oauth_token_command:
            token = await asyncio.to_thread(resolve_oauth_token, ep)
            password = ""
        else:
            password = await asyncio.to_thread(resolve_password, ep)
            token = None
        conn = ImapConnection(self.settings)
        await conn.open(lambda: password, (lambda: token) if token is not None else None)
        return conn

    async def _main(self) -> ImapConnection:
        async with self._connecting:
            conn = self._conn
            if conn is not None and conn.alive:
                return conn
            self._conn = None
            self._selected = None
            conn = await self._open()
            caps = conn.capabilities
            enabled: frozenset[str] = frozenset()
            try:
                if "ENABLE" in caps and "QRESYNC" in caps:
                    # QRESYNC implies CONDSTORE: MODSEQ in every FETCH, VANISHED for expunges.
                    enabled = await conn.enable(b"QRESYNC")
                elif "ENABLE" in caps and "CONDSTORE" in caps:
                    enabled = await conn.enable(b"CONDSTORE")
            except BaseException:  # a cancel (shutdown) too: no half-open link left behind
                conn.abort()
                raise
            self._conn = conn
            self._server_caps = caps
            self._enabled = enabled
            return conn

    @property
    def _condstore(self) -> bool:
        return bool({"CONDSTORE", "QRESYNC"} & self._server_caps)

    @property
    def _qresync(self) -> bool:
        return "QRESYNC" in self._enabled

    # ------------------------------------------------------------------ folders

    async def list_folders(self) -> list[RemoteFolder]:
        conn = await self._main()
        caps = self._server_caps
        if "LIST-EXTENDED" in caps and "SPECIAL-USE" in caps:
            result = await conn.check(b'LIST "" "*" RETURN (SPECIAL-USE)', what="LIST")
        else:
            result = await conn.check(b'LIST "" "*"', what="LIST")
        folders: list[RemoteFolder] = []
        names: dict[str, bytes] = {}
        for resp in result.named("LIST"):
            entry = parse_list(resp.args)
            if entry.delimiter is not None:
                self._delimiter = entry.delimiter
            name = self._local_name(entry.name, entry.delimiter)
            if name in names:
                log.warning("imap %s: two folders map to %r", self.settings.where, name)
                continue
            names[name] = entry.name
            role = FolderRole.INBOX if name == "INBOX" else FolderRole.NONE
            for attr in entry.attributes:
                role = _ROLES.get(attr, role)
            # A folder left out by `folders` stays listed, as one not to sync: listed,
            # its local copy is not taken for one deleted on the server.
            selectable = entry.selectable and self._wanted(name)
            folders.append(RemoteFolder(name, role, selectable))
        self._wire_names = names
        folders.sort(key=lambda f: (f.name != "INBOX", f.name))
        return folders

    def _wanted(self, name: str) -> bool:
        if self.folder_patterns is None or name == "INBOX":
            return True
        return any(fnmatch.fnmatchcase(name, p) for p in self.folder_patterns)

    @staticmethod
    def _local_name(wire: bytes, delimiter: str | None) -> str:
        try:
            text = decode_mutf7(wire)
        except (ValueError, UnicodeDecodeError):
            # Not modified UTF-7: some servers send raw UTF-8 regardless.
            text = wire.decode("utf-8", "replace")
        if delimiter and delimiter != "/":
            text = "/".join(p.replace("/", _LEVEL_SLASH) for p in text.split(delimiter))
        first, sep, rest = text.partition("/")
        if first.upper() == "INBOX":
            text = "INBOX" + sep + rest
        return text

    async def _wire(self, folder: str) -> bytes:
        if folder.upper() == "INBOX":
            return b"INBOX"
        if not self._wire_names:
            await self.list_folders()
        wire = self._wire_names.get(folder)
        if wire is not None:
            return wire
        delim = self._delimiter or "/"
        levels = [p.replace(_LEVEL_SLASH, "/") for p in folder.split("/")]
        return encode_mutf7(delim.join(levels))

    async def _select(self, folder: str, *, readonly: bool = False) -> _Selected:
        """SELECT (or EXAMINE) `folder` and read its state from the responses."""
        conn = await self._main()
        wire = await self._wire(folder)
        verb = b"EXAMINE" if readonly else b"SELECT"
        args = [verb, astring(wire)]
        if self._condstore and not self._enabled:
            args.append(b"(CONDSTORE)")
        self._selected = None
        result = await conn.command(*args)
        if not result.ok:
            code = result.status.code.name if result.status.code else ""
            what = "does not exist on" if code == "NONEXISTENT" else "cannot be opened on"
            raise ProtocolError(
                f"the folder {folder!r} {what} {self.settings.where}: "
                f"{server_reason(result.status.text)}"
            )
        sel = _Selected(wire, _folder_state(result), readonly)
        if not result.named("EXISTS"):
            # Required by RFC 3501; taking its absence for "0 messages" would make
            # the sync delete every local copy of the folder.
            raise ProtocolError(
                f"the IMAP server {self.settings.where} sent no message count (EXISTS) "
                f"for {folder!r}"
            )
        if sel.state.uidvalidity is None:
            raise ProtocolError(
                f"the IMAP server {self.settings.where} sent no UIDVALIDITY for {folder!r}"
            )
        conn.selected = wire
        self._selected = sel
        return sel

    async def _ensure_selected(
        self, folder: str, *, fresh: bool = False
    ) -> tuple[ImapConnection, _Selected]:
        """The folder selected on the main connection; `fresh` always SELECTs again.

        Writes that name UIDs use `fresh`: the folder may have been deleted and
        recreated (a new UIDVALIDITY) since it was selected, and only a new
        SELECT tells; one round trip is cheap next to touching the wrong mail.
        """
        conn = await self._main()
        wire = await self._wire(folder)
        sel = self._selected
        if (
            fresh
            or sel is None
            or sel.wire != wire
            or sel.readonly != self.read_only
            or conn.selected != wire
        ):
            sel = await self._select(folder, readonly=self.read_only)
        return conn, sel

    async def folder_state(self, folder: str) -> FolderState:
        """A fresh SELECT (EXAMINE when read-only): UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, EXISTS."""
        return (await self._select(folder, readonly=self.read_only)).state

    async def folder_statuses(self, folders: Sequence[str]) -> dict[str, FolderState]:
        """STATUS of every folder, pipelined: one round trip, nothing selected.

        Left out: a folder the server refuses (deleted meanwhile; the caller's
        SELECT of it then reports the error properly) and the selected one.
        """
        conn = await self._main()
        items = b"(MESSAGES UIDNEXT UIDVALIDITY"
        if self._condstore:
            items += b" HIGHESTMODSEQ"
        if "STATUS=SIZE" in self._server_caps:
            items += b" SIZE"  # RFC 8438: lets _too_large skip its SEARCH
        items += b")"
        wires = [(f, await self._wire(f)) for f in folders]
        # STATUS of the selected folder may describe the session's view of it, not
        # the folder now (Dovecot answers from the view until the next NOOP): leave
        # it out, and the caller SELECTs it again, which does see everything.
        wires = [(f, w) for f, w in wires if conn.selected != w]
        out: dict[str, FolderState] = {}
        simple = [(f, w) for f, w in wires if not isinstance(astring(w), Literal)]
        odd = [(f, w) for f, w in wires if isinstance(astring(w), Literal)]
        results: list[tuple[str, CommandResult]] = []
        for i in range(0, len(simple), 100):
            chunk = simple[i : i + 100]
            answers = await conn.pipeline([(b"STATUS", astring(w), items) for _, w in chunk])
            results.extend((f, r) for (f, _), r in zip(chunk, answers, strict=True))
        for f, w in odd:  # names sent as literals cannot be pipelined by pipeline()
            results.append((f, await conn.command(b"STATUS", astring(w), items)))
        for folder, result in results:
            if not result.ok:
                continue
            for resp in result.named("STATUS"):
                _name, values = parse_status_items(resp.args)
                validity = values.get("UIDVALIDITY")
                if validity is None:
                    continue
                # HIGHESTMODSEQ 0: the folder keeps no mod-sequences (RFC 7162 3.1.2.1).
                modseq = values.get("HIGHESTMODSEQ") or None
                uidnext, size = values.get("UIDNEXT"), values.get("SIZE")
                if uidnext is not None and size is not None:
                    self._status_sizes[folder] = (validity, uidnext, size)
                out[folder] = FolderState(
                    uidvalidity=validity,
                    uidnext=uidnext,
                    highestmodseq=modseq,
                    exists=values.get("MESSAGES", 0),
                )
        return out

    async def search(self, folder: str, criteria: Sequence[SearchTerm]) -> list[ServerId]:
        """UID SEARCH CHARSET UTF-8; every text goes out as a literal (no quoting rules
        to get wrong, any UTF-8 allowed). BADCHARSET with ASCII-only text: again
        without CHARSET."""
        conn, sel = await self._ensure_selected(folder)
        keys = search_keys(criteria)
        result = await conn.command(b"UID SEARCH CHARSET UTF-8", *keys)
        code = result.status.code.name if result.status.code else ""
        if not result.ok and code == "BADCHARSET" and all(k.isascii() for k in keys):
            result = await conn.command(b"UID SEARCH", *keys)
        if not result.ok:
            raise ProtocolError(
                f"the IMAP server {self.settings.where} refused the search: "
                f"{server_text(result.status.text)}"
            )
        uids: set[int] = set()
        for resp in result.named("SEARCH"):
            uids.update(parse_search(resp.args)[0])
        validity = sel.state.uidvalidity
        return [ServerId(uid=u, uidvalidity=validity) for u in sorted(uids)]

    def _check_ids(self, folder: str, sel: _Selected, ids: Sequence[ServerId]) -> list[int]:
        self._check_writable()
        uids: list[int] = []
        for sid in ids:
            if sid.uid is None:
                raise ValueError("IMAP works by UID; this ServerId has none")
            if sid.uidvalidity is not None and sid.uidvalidity != sel.state.uidvalidity:
                raise ProtocolError(
                    f"the UIDVALIDITY of {folder!r} changed on {self.settings.where}; "
                    "refusing to act on UIDs from before the change (sync first)"
                )
            uids.append(sid.uid)
        return sorted(set(uids))

    # ------------------------------------------------------------------ reading

    async def list_uids(self, folder: str, min_uid: int = 1) -> list[int]:
        conn, sel = await self._ensure_selected(folder)
        if sel.state.exists == 0:
            return []
        start = max(1, min_uid)
        bound = sel.state.exists + _UID_SLACK
        uids: list[int] = []
        if "ESEARCH" in self._server_caps:
            result = await conn.check(
                b"UID SEARCH RETURN (ALL) UID %d:*" % start, what="UID SEARCH"
            )
            for resp in result.named("ESEARCH"):
                found = parse_esearch(resp.args).get("ALL")
                if isinstance(found, str):
                    uset = UidSet.parse(found)
                    if len(uset) > bound:
                        raise ProtocolError(
                            f"the IMAP server {self.settings.where} listed more UIDs than "
                            "the folder holds"
                        )
                    uids.extend(uset)
        else:
            result = await conn.check(b"UID SEARCH UID %d:*" % start, what="UID SEARCH")
            for resp in result.named("SEARCH"):
                uids.extend(parse_search(resp.args)[0])
        # "n:*" always includes the highest UID, even when it is below n.
        return sorted({u for u in uids if u >= start})

    async def list_ids(self, folder: str) -> list[str]:
        return [str(u) for u in await self.list_uids(folder)]

    async def _too_large(
        self, conn: ImapConnection, folder: str, uidvalidity: int | None, uids: Sequence[int]
    ) -> dict[int, int]:
        """{uid: size} of those `uids` over max_message_size (one SEARCH, then sizes).

        No message can be over the limit when the folder's STATUS SIZE, which
        counted every message below its UIDNEXT, is within it and `uids` are all
        below that UIDNEXT: then the SEARCH (a round trip per folder) is left out.
        """
        known = self._status_sizes.get(folder)
        if known is not None:
            validity, uidnext, total = known
            if validity == uidvalidity and uids[-1] < uidnext and total <= self.max_message_size:
                return {}
        span = b"%d:%d" % (uids[0], uids[-1])
        result = await conn.check(
            b"UID SEARCH UID " + span + b" LARGER %d" % self.max_message_size,
            what="UID SEARCH",
        )
        wanted = set(uids)
        big = [u for r in result.named("SEARCH") for u in parse_search(r.args)[0] if u in wanted]
        if not big:
            return {}
        sizes: dict[int, int] = {}
        async for data in conn.fetch_stream(self._uid_commands(big, b"(UID RFC822.SIZE)")):
            if data.uid is not None and data.size is not None:
                sizes[data.uid] = data.size
        return sizes

    def _uid_commands(self, uids: Sequence[int], items: bytes, suffix: bytes = b"") -> list[bytes]:
        return [
            b"UID FETCH " + text.encode() + b" " + items + suffix
            for text in uid_set_chunks(uids, self.batch, _MAX_SET_TEXT)
        ]

    async def fetch_messages(
        self, folder: str, uids: Sequence[int], progress: ProgressCallback | None = None
    ) -> AsyncIterator[RemoteMessage]:
        """Stream the messages with these UIDs, oldest first, in pipelined batches.

        `raw` is exactly what the server sent (CRLF line endings). Messages
        over max_message_size are skipped (recorded in `skipped[folder]`),
        so one huge message cannot block the rest.
        """
        wanted = sorted(set(uids))
        if not wanted:
            return
        conn, sel = await self._ensure_selected(folder)
        too_big = await self._too_large(conn, folder, sel.state.uidvalidity, wanted)
        if too_big:
            self.skipped[folder] = sorted(too_big.items())
            log.warning(
                "imap %s: %d message(s) in %r exceed max_message_size (%d bytes); skipped",
                self.settings.where,
                len(too_big),
                folder,
                self.max_message_size,
            )
            wanted = [u for u in wanted if u not in too_big]
        else:
            self.skipped.pop(folder, None)
        want = set(wanted)
        uidvalidity = sel.state.uidvalidity
        # No INTERNALDATE: nothing below the backend uses it yet, and parsing 10k
        # dates costs more than the rest of the FETCH response.
        items = b"(UID FLAGS BODY.PEEK[])"
        if self._condstore:
            items = b"(UID FLAGS MODSEQ BODY.PEEK[])"
        total = len(wanted)
        done = 0
        if progress is not None:
            progress(0, total)
        async for data in conn.fetch_stream(self._uid_commands(wanted, items), self.window):
            uid = data.uid
            if uid is None or data.body is None or uid not in want:
                continue  # an unsolicited flag update from another session
            want.discard(uid)
            done += 1
            yield RemoteMessage(
                folder=folder,
                raw=data.body,
                flags=flags_from_imap(data.flags),
                server_id=ServerId(uid=uid, uidvalidity=uidvalidity, modseq=data.modseq),
                internal_date=(
                    parse_internaldate(data.internaldate) if data.internaldate else None
                ),
            )
            if progress is not None:
                progress(done, total)

    async def fetch_new(
        self, folder: str, known: set[str], progress: ProgressCallback | None = None
    ) -> AsyncIterator[RemoteMessage]:
        uids = [u for u in await self.list_uids(folder) if str(u) not in known]
        async for msg in self.fetch_messages(folder, uids, progress):
            yield msg

    async def fetch_flags(
        self, folder: str, since_modseq: int | None = None
    ) -> list[tuple[int, FlagSet, int | None]]:
        conn, sel = await self._ensure_selected(folder)
        if sel.state.exists == 0:
            return []
        if not self._condstore:
            cmd = b"UID FETCH 1:* (UID FLAGS)"
        elif since_modseq is None:
            cmd = b"UID FETCH 1:* (UID FLAGS MODSEQ)"
        else:
            cmd = b"UID FETCH 1:* (UID FLAGS MODSEQ) (CHANGEDSINCE %d)" % since_modseq
        out: dict[int, tuple[int, FlagSet, int | None]] = {}
        bound = sel.state.exists + _FETCH_SLACK
        async for data in conn.fetch_stream([cmd]):
            if data.uid is not None and data.flags is not None:
                out[data.uid] = (data.uid, flags_from_imap(data.flags), data.modseq)
                if len(out) > bound:
                    raise self._too_many(folder)
        return [out[u] for u in sorted(out)]

    def _too_many(self, folder: str) -> ProtocolError:
        # Nothing else bounds an answer to "1:*": a server that keeps inventing
        # messages would grow memory for as long as it talks.
        return ProtocolError(
            f"the IMAP server {self.settings.where} sent more messages for {folder!r} "
            "than the folder holds"
        )

    async def expunged(
        self, folder: str, known: Sequence[int], since_modseq: int | None = None
    ) -> list[int]:
        if not known:
            return []
        conn, sel = await self._ensure_selected(folder)
        if sel.state.exists == 0:
            return sorted(set(known))  # the server says the folder is empty
        if self._qresync and since_modseq is not None:
            vanished: list[UidSet] = []

            def collect(resp: object) -> None:
                if isinstance(resp, Untagged) and resp.name == "VANISHED":
                    vanished.append(parse_vanished(resp.args)[1])

            text = uid_set(known).encode()
            if len(text) > _MAX_SET_TEXT:
                text = b"1:*"
            cmd = b"UID FETCH " + text + b" (UID) (CHANGEDSINCE %d VANISHED)" % since_modseq
            async for _ in conn.fetch_stream([cmd], on_untagged=collect):
                pass  # FETCH lines here are flag changes; fetch_flags handles those
            return sorted({u for u in known if any(u in s for s in vanished)})
        on_server = set(await self.list_uids(folder))
        return sorted({u for u in known if u not in on_server})

    async def fetch_header_fields(
        self, folder: str, fields: Sequence[str], uids: Sequence[int] | None = None
    ) -> list[tuple[int, bytes, FlagSet]]:
        conn, sel = await self._ensure_selected(folder)
        if sel.state.exists == 0 or (uids is not None and not uids):
            return []
        names = " ".join(f.upper() for f in fields).encode("ascii")
        items = b"(UID FLAGS BODY.PEEK[HEADER.FIELDS (" + names + b")])"
        if uids is None:
            cmds = [b"UID FETCH 1:* " + items]
        else:
            cmds = self._uid_commands(sorted(set(uids)), items)
        out: list[tuple[int, bytes, FlagSet]] = []
        bound = sel.state.exists + _FETCH_SLACK
        async for data in conn.fetch_stream(cmds):
            if len(out) > bound:
                raise self._too_many(folder)
            header = data.item("BODY[HEADER.FIELDS")
            if data.uid is None or header is None:
                continue
            out.append((data.uid, to_bytes(header), flags_from_imap(data.flags)))
        out.sort(key=lambda t: t[0])
        return out

    # ------------------------------------------------------------------ writing

    async def set_flags(
        self,
        folder: str,
        ids: Sequence[ServerId],
        add: frozenset[Flag],
        remove: frozenset[Flag],
    ) -> None:
        conn, sel = await self._ensure_selected(folder, fresh=True)
        uids = self._check_ids(folder, sel, ids)
        for chunk in _chunks(uids, 1000):
            text = uid_set(chunk).encode()
            if add:
                await conn.check(
                    b"UID STORE", text, b"+FLAGS.SILENT", flags_to_imap(add), what="UID STORE"
                )
            if remove:
                await conn.check(
                    b"UID STORE", text, b"-FLAGS.SILENT", flags_to_imap(remove), what="UID STORE"
                )

    async def move(self, folder: str, ids: Sequence[ServerId], to_folder: str) -> None:
        conn, sel = await self._ensure_selected(folder, fresh=True)
        uids = self._check_ids(folder, sel, ids)
        target = astring(await self._wire(to_folder))
        for chunk in _chunks(uids, 1000):
            text = uid_set(chunk).encode()
            if "MOVE" in self._server_caps:
                await conn.check(b"UID MOVE", text, target, what="UID MOVE")
                continue
            await conn.check(b"UID COPY", text, target, what="UID COPY")
            await self._delete_uids(conn, folder, text)

    async def copy(self, folder: str, ids: Sequence[ServerId], to_folder: str) -> None:
        conn, sel = await self._ensure_selected(folder, fresh=True)
        uids = self._check_ids(folder, sel, ids)
        target = astring(await self._wire(to_folder))
        for chunk in _chunks(uids, 1000):
            await conn.check(b"UID COPY", uid_set(chunk).encode(), target, what="UID COPY")

    async def _delete_uids(self, conn: ImapConnection, folder: str, text: bytes) -> None:
        await conn.check(b"UID STORE", text, b"+FLAGS.SILENT (\\Deleted)", what="UID STORE")
        if "UIDPLUS" in self._server_caps:
            await conn.check(b"UID EXPUNGE", text, what="UID EXPUNGE")
        else:
            # A plain EXPUNGE would also remove every other \Deleted message in the
            # folder, which the user may not have meant: leave them marked.
            log.warning(
                "imap %s: no UIDPLUS; messages in %r are marked \\Deleted, not expunged",
                self.settings.where,
                folder,
            )

    async def remove_from_server(self, folder: str, ids: Sequence[ServerId]) -> None:
        conn, sel = await self._ensure_selected(folder, fresh=True)
        uids = self._check_ids(folder, sel, ids)
        for chunk in _chunks(uids, 1000):
            await self._delete_uids(conn, folder, uid_set(chunk).encode())

    def _check_writable(self) -> None:
        if self.read_only:
            # A dry run must not change the server; reaching this is a bug upstream.
            raise Unsupported(f"{self.settings.where}: read-only (dry run); no change is sent")

    async def append(self, folder: str, raw: bytes, flags: frozenset[Flag]) -> ServerId:
        """APPEND; the ServerId comes from APPENDUID (UIDPLUS), else it has no UID."""
        self._check_writable()
        conn = await self._main()
        wire = await self._wire(folder)
        # IMAP messages are CRLF on the wire; a bare LF from a local file is not.
        data = re.sub(rb"(?<!\r)\n", b"\r\n", raw)
        result = await conn.check(
            b"APPEND", astring(wire), flags_to_imap(flags), Literal(data), what="APPEND"
        )
        code = result.status.code
        if code is not None and code.name == "APPENDUID" and len(code.args) >= 2:
            uidvalidity = code.number()
            last = code.args[1]
            if isinstance(last, str) and last.isdigit():
                return ServerId(uid=int(last), uidvalidity=uidvalidity)
        return ServerId()

    # ------------------------------------------------------------------ push

    async def wait_for_push(self, timeout: float) -> bool:
        """IDLE on a connection of its own on `push_folder`; True when it reports a change.

        The change may be anywhere in that folder (new mail, flags, expunge):
        the caller syncs it. Servers without IDLE: Unsupported (poll instead).
        """
        if self._server_caps and "IDLE" not in self._server_caps:
            raise Unsupported(f"the IMAP server {self.settings.where} has no IDLE")
        conn = self._idle
        if conn is None or not conn.alive or self._idle_folder != self.push_folder:
            if conn is not None:
                conn.abort()
            self._idle = None
            conn = await self._open()
            try:
                if "IDLE" not in conn.capabilities:
                    raise Unsupported(f"the IMAP server {self.settings.where} has no IDLE")
                wire = await self._wire(self.push_folder)
                await conn.check(b"EXAMINE", astring(wire), what="EXAMINE")
            except BaseException:  # a cancel (shutdown) too: no half-open link left behind
                conn.abort()
                raise
            conn.changed.clear()  # the EXISTS of EXAMINE itself is not news
            self._idle = conn
            self._idle_folder = self.push_folder
        return await conn.idle(timeout)


# --------------------------------------------------------------------------- helpers


def _folder_state(result: CommandResult) -> FolderState:
    codes = result.codes()

    def number(name: str) -> int | None:
        resp = codes.get(name)
        if resp is None or resp.code is None:
            return None
        return resp.code.number()

    exists = 0
    for r in result.named("EXISTS"):
        exists = r.number or 0
    modseq = None if "NOMODSEQ" in codes else number("HIGHESTMODSEQ")
    return FolderState(
        uidvalidity=number("UIDVALIDITY"),
        uidnext=number("UIDNEXT"),
        highestmodseq=modseq,
        exists=exists,
    )


_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_SEARCH_FLAG = {
    "seen": (b"SEEN", b"UNSEEN"),
    "flagged": (b"FLAGGED", b"UNFLAGGED"),
    "answered": (b"ANSWERED", b"UNANSWERED"),
    "draft": (b"DRAFT", b"UNDRAFT"),
    "deleted": (b"DELETED", b"UNDELETED"),
}


def search_keys(criteria: Sequence[SearchTerm]) -> list[bytes]:
    """SearchTerms as IMAP search keys (RFC 3501 6.4.4); ANDed, as IMAP does."""
    keys: list[bytes] = []
    for term in criteria:
        name = term.field.lower()
        if term.negate and name not in SEARCH_FLAG_FIELDS:
            keys.append(b"NOT")
        if name in SEARCH_TEXT_FIELDS or name.startswith("header:"):
            if not isinstance(term.value, str):
                raise ValueError(f"search term {term.field!r} needs text")
            text = Literal(term.value.encode("utf-8"))
            if name.startswith("header:"):
                header = term.field.split(":", 1)[1].strip()
                if not header or not header.isascii() or any(c in header for c in " :\r\n"):
                    raise ValueError(f"bad header name in search term {term.field!r}")
                keys += [b"HEADER", astring(header.encode("ascii")), text]
            else:
                keys += [name.upper().encode(), text]
        elif name in SEARCH_DATE_FIELDS:
            if not isinstance(term.value, date):
                raise ValueError(f"search term {term.field!r} needs a date")
            d = term.value
            keys += [name.upper().encode(), f"{d.day}-{_MONTHS[d.month - 1]}-{d.year}".encode()]
        elif name in SEARCH_FLAG_FIELDS:
            keys.append(_SEARCH_FLAG[name][1 if term.negate else 0])
        elif name in SEARCH_SIZE_FIELDS:
            if not isinstance(term.value, int) or isinstance(term.value, bool) or term.value < 0:
                raise ValueError(f"search term {term.field!r} needs a size in bytes")
            keys += [name.upper().encode(), str(term.value).encode()]
        else:
            raise ValueError(f"unknown search field {term.field!r}")
    return keys or [b"ALL"]


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _positive(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
