"""The IMAP backend against the harness's real Dovecot (IMAP + STARTTLS, IMAPS).

Another client's view is always taken with the standard library's imaplib,
never with the code under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import re
import time
from collections.abc import Iterator

import msgspec.structs
import pytest
from servers.harness import Mailstack, deliver_lmtp, reset_user_mail

from tui_mail.backends.base import BackendContext
from tui_mail.backends.imap.backend import ImapReceiveBackend
from tui_mail.backends.registry import backend_class
from tui_mail.config.schema import AccountConfig, EndpointConfig
from tui_mail.core.capabilities import Capability
from tui_mail.core.errors import AuthError, ProtocolError, TLSError
from tui_mail.core.flags import Flag
from tui_mail.core.models import FolderRole, ServerId

pytestmark = pytest.mark.servers

USER = "alice"


@pytest.fixture
def ms(mailstack: Mailstack) -> Iterator[Mailstack]:
    reset_user_mail(mailstack, USER)  # each test starts from an empty mail store
    yield mailstack


def make(
    ms: Mailstack,
    security: str = "starttls",
    *,
    ca: bool = True,
    password: str | None = None,
    **options: object,
) -> ImapReceiveBackend:
    ep = EndpointConfig(
        backend="imap",
        host=ms.host,
        port=ms.imaps_port if security == "tls" else ms.imap_port,
        security=security,  # type: ignore[arg-type]
        user=USER,
        password=ms.users[USER] if password is None else password,
        ca_file=ms.ca_file if ca else None,
        timeout=10.0,
        options=dict(options),
        key_path="accounts.alice.receive",
    )
    acct = AccountConfig("alice", "alice@localhost", ep, EndpointConfig(backend="local"))
    return ImapReceiveBackend(BackendContext(acct, ep))


def other_client(ms: Mailstack) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL(ms.host, ms.imaps_port, ssl_context=ms.ssl_context(), timeout=10)
    imap.login(USER, ms.users[USER])
    return imap


def sample(n: int, tag: str = "imap") -> bytes:
    return (
        f"From: Bob <bob@localhost>\nTo: alice@localhost\nSubject: {tag} test {n}\n"
        f"Message-ID: <{tag}-{n}@tui-mail.test>\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        f"Message {n} – Grüße\n"
    ).encode()


def deliver(ms: Mailstack, count: int, tag: str = "imap") -> None:
    for n in range(count):
        deliver_lmtp(ms, USER, sample(n, tag))


# ---------------------------------------------------------------- TLS and login


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_verified_tls_both_ways(ms: Mailstack, security: str) -> None:
    b = make(ms, security)
    text = await b.check()
    assert text.startswith(f"IMAP {ms.host}:") and "(TLS) as alice" in text
    assert "6 folders" in text  # INBOX plus the five special-use folders


async def test_capabilities_from_the_server(ms: Mailstack) -> None:
    b = make(ms)
    await b.connect()
    try:
        caps = b.capabilities
        for cap in (
            Capability.FOLDERS,
            Capability.SERVER_FLAGS,
            Capability.MOVE,
            Capability.APPEND,
            Capability.PUSH,
            Capability.CONDSTORE,
            Capability.QRESYNC,
        ):
            assert cap in caps
        assert "STARTTLS" not in b.server_capabilities  # asked again after TLS and login
    finally:
        await b.close()


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_untrusted_certificate_is_refused(ms: Mailstack, security: str) -> None:
    with pytest.raises(TLSError, match=r"certificate .* not accepted.*ca_file"):
        await make(ms, security, ca=False).connect()


async def test_wrong_password_is_an_auth_error(ms: Mailstack) -> None:
    b = make(ms, "starttls", password="not-the-password")
    # Dovecot delays further logins from an address that failed one; fail from 127.0.0.2
    # so the other tests (from 127.0.0.1) stay fast.
    b.settings = msgspec.structs.replace(b.settings, source_address=("127.0.0.2", 0))
    with pytest.raises(AuthError) as err:
        await b.connect()
    assert str(err.value).startswith(f"IMAP login to {ms.host}:{ms.imap_port} as alice was refused")
    assert "not-the-password" not in str(err.value)


async def test_registry_builds_it(ms: Mailstack) -> None:
    assert backend_class("imap", "receive") is ImapReceiveBackend


# ---------------------------------------------------------------- folders


async def test_list_folders_with_roles_and_decoded_names(ms: Mailstack) -> None:
    imap = other_client(ms)
    # Dovecot's Maildir refuses "." and a leading "~"; the store's encoding handles those.
    for wire in ("Entw&APw-rfe", "Entw&APw-rfe/&U,BTFw-", "A &- B", "back\\\\sl", "Projects/2024"):
        assert imap.create(f'"{wire}"')[0] == "OK", wire
    imap.logout()
    b = make(ms)
    try:
        folders = {f.name: f for f in await b.list_folders()}
    finally:
        await b.close()
    assert folders["INBOX"].role == FolderRole.INBOX
    for name, role in (
        ("Sent", FolderRole.SENT),
        ("Drafts", FolderRole.DRAFTS),
        ("Trash", FolderRole.TRASH),
        ("Junk", FolderRole.JUNK),
        ("Archive", FolderRole.ARCHIVE),
    ):
        assert folders[name].role == role
    for name in ("Entwürfe", "Entwürfe/台北", "A & B", "back\\sl", "Projects/2024"):
        assert folders[name].selectable
    assert not folders["Projects"].selectable  # \Noselect parent
    assert folders["Entwürfe"].role == FolderRole.NONE


# ---------------------------------------------------------------- fetching


async def test_fetch_messages_byte_identical_with_flags(ms: Mailstack) -> None:
    deliver(ms, 5)
    imap = other_client(ms)
    imap.select("INBOX")
    imap.uid("STORE", "2", "+FLAGS", "(\\Seen \\Flagged $Forwarded $Work)")
    _, data = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    server = {
        int(re.search(rb"UID (\d+)", part[0]).group(1)): part[1]  # type: ignore[union-attr]
        for part in data
        if isinstance(part, tuple)
    }
    imap.logout()
    b = make(ms, "tls")
    try:
        state = await b.folder_state("INBOX")
        uids = await b.list_uids("INBOX")
        got = [m async for m in b.fetch_messages("INBOX", uids)]
        assert await b.list_uids("INBOX", 4) == [4, 5]
    finally:
        await b.close()
    assert uids == [1, 2, 3, 4, 5] and state.exists == 5 and state.uidnext == 6
    assert [m.server_id.uid for m in got] == uids
    for m in got:
        assert m.raw == server[m.server_id.uid] and type(m.raw) is bytes
        assert m.server_id.uidvalidity == state.uidvalidity and m.server_id.modseq
    assert got[1].flags.flags == {Flag.SEEN, Flag.FLAGGED, Flag.PASSED}
    assert got[1].flags.keywords == {"$Work"}
    assert not got[0].flags.flags


async def test_too_large_messages_are_skipped_not_fatal(ms: Mailstack) -> None:
    deliver_lmtp(ms, USER, sample(1))
    deliver_lmtp(ms, USER, sample(2) + b"x" * 5000 + b"\n")
    deliver_lmtp(ms, USER, sample(3))
    b = make(ms, max_message_size=2000)
    try:
        got = [m.server_id.uid async for m in b.fetch_messages("INBOX", [1, 2, 3])]
    finally:
        await b.close()
    assert got == [1, 3]
    assert [uid for uid, _ in b.skipped["INBOX"]] == [2]


async def test_status_size_spares_the_size_search_only_when_it_proves_enough(
    ms: Mailstack, caplog: pytest.LogCaptureFixture
) -> None:
    """STATUS=SIZE (Dovecot has it): a folder whose total is within max_message_size
    needs no LARGER search before its FETCH; a message that arrived after the
    STATUS, or a folder over the limit, still gets one, and the too-large
    message is still skipped."""
    deliver_lmtp(ms, USER, sample(1))
    deliver_lmtp(ms, USER, sample(2))
    caplog.set_level(logging.DEBUG, logger="tui_mail.backends.imap.client")

    def searches() -> int:
        return len(re.findall(r"> T\d+ UID SEARCH", caplog.text))

    big = (sample(3) + b"x" * 5000 + b"\n").replace(b"\n", b"\r\n")
    b = make(ms, max_message_size=2000)
    try:
        await b.connect()
        assert "STATUS=SIZE" in b._server_caps
        await b.folder_statuses(["INBOX", "Archive"])
        got = [m.server_id.uid async for m in b.fetch_messages("INBOX", [1, 2])]
        assert got == [1, 2] and searches() == 0  # the SIZE of both is under 2000

        c = other_client(ms)
        c.append("Archive", None, None, big)  # after the STATUS that said Archive is empty
        c.logout()
        got = [m.server_id.uid async for m in b.fetch_messages("Archive", [1])]
        assert got == [] and searches() == 1  # not covered by that SIZE: searched
        assert [uid for uid, _ in b.skipped["Archive"]] == [1]
    finally:
        await b.close()
    b = make(ms, max_message_size=2000)
    try:
        await b.folder_statuses(["Archive"])  # its SIZE is over the limit now
        got = [m.server_id.uid async for m in b.fetch_messages("Archive", [1])]
        assert got == [] and searches() == 2
    finally:
        await b.close()


# ---------------------------------------------------------------- changing things


async def test_set_flags_move_append_remove_seen_by_another_client(ms: Mailstack) -> None:
    deliver(ms, 4)
    b = make(ms)
    try:
        state = await b.folder_state("INBOX")
        v = state.uidvalidity

        def sid(uid: int) -> ServerId:
            return ServerId(uid=uid, uidvalidity=v)

        await b.set_flags(
            "INBOX", [sid(1), sid(2)], frozenset({Flag.SEEN, Flag.PASSED}), frozenset()
        )
        await b.set_flags("INBOX", [sid(2)], frozenset({Flag.FLAGGED}), frozenset({Flag.SEEN}))
        await b.move("INBOX", [sid(3)], "Archive")
        appended = await b.append("Drafts", sample(9, "draft"), frozenset({Flag.DRAFT}))
        await b.remove_from_server("INBOX", [sid(4)])
        # A ServerId from before a UIDVALIDITY change never reaches the server.
        with pytest.raises(ProtocolError, match="UIDVALIDITY"):
            await b.set_flags(
                "INBOX",
                [ServerId(uid=1, uidvalidity=v + 1)],
                frozenset({Flag.DELETED}),
                frozenset(),
            )
    finally:
        await b.close()

    imap = other_client(ms)
    imap.select("INBOX")
    _, data = imap.uid("FETCH", "1:*", "(FLAGS)")
    flags = {
        int(re.search(rb"UID (\d+)", d).group(1)): d  # type: ignore[union-attr]
        for d in data
        if isinstance(d, bytes)
    }
    assert set(flags) == {1, 2}  # 3 moved away, 4 expunged
    assert b"\\Seen" in flags[1] and b"$Forwarded" in flags[1]
    assert b"\\Seen" not in flags[2] and b"\\Flagged" in flags[2] and b"\\Deleted" not in flags[1]
    imap.select("Archive")
    _, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    assert b"<imap-2@tui-mail.test>" in b"".join(p[1] for p in data if isinstance(p, tuple))
    imap.select("Drafts")
    _, uv = imap.response("UIDVALIDITY")
    assert appended.uid == 1 and appended.uidvalidity == int(uv[0])
    _, data = imap.uid("FETCH", "1", "(FLAGS BODY.PEEK[])")
    assert b"\\Draft" in data[0][0]
    assert data[0][1] == sample(9, "draft").replace(b"\n", b"\r\n")
    imap.logout()


async def test_move_without_the_move_extension(ms: Mailstack) -> None:
    deliver(ms, 2)
    b = make(ms)
    try:
        state = await b.folder_state("INBOX")
        b._server_caps = b._server_caps - {"MOVE"}  # the COPY + STORE + UID EXPUNGE path
        await b.move("INBOX", [ServerId(uid=1, uidvalidity=state.uidvalidity)], "Trash")
        assert await b.list_uids("INBOX") == [2]
        assert await b.list_uids("Trash") == [1]
    finally:
        await b.close()


async def test_flags_since_modseq_and_expunged(ms: Mailstack) -> None:
    deliver(ms, 5)
    b = make(ms)
    try:
        before = await b.folder_state("INBOX")
        assert before.highestmodseq is not None
        assert await b.fetch_flags("INBOX", before.highestmodseq) == []
        imap = other_client(ms)
        imap.select("INBOX")
        imap.uid("STORE", "3", "+FLAGS", "(\\Answered)")
        imap.uid("STORE", "5", "+FLAGS", "(\\Deleted)")
        imap.expunge()
        imap.logout()
        changed = await b.fetch_flags("INBOX", before.highestmodseq)
        assert [(u, f.flags) for u, f, _ in changed] == [(3, {Flag.ANSWERED})]
        assert all(m is not None and m > before.highestmodseq for _, _, m in changed)
        assert await b.expunged("INBOX", [1, 2, 3, 4, 5], before.highestmodseq) == [5]
        assert await b.expunged("INBOX", [1, 2, 3, 4, 5]) == [5]  # the listing way
        assert len(await b.fetch_flags("INBOX")) == 4
    finally:
        await b.close()


# ---------------------------------------------------------------- push


async def test_idle_sees_a_delivery_within_seconds(ms: Mailstack) -> None:
    b = make(ms)
    try:
        assert await b.wait_for_push(0.3) is False  # opens the IDLE connection; nothing new
        waiter = asyncio.create_task(b.wait_for_push(20))
        await asyncio.sleep(0.3)
        start = time.monotonic()
        await asyncio.to_thread(deliver_lmtp, ms, USER, sample(1))
        assert await asyncio.wait_for(waiter, 10) is True
        assert time.monotonic() - start < 5
        # A change while nobody was idling is reported by the next call at once.
        await asyncio.to_thread(deliver_lmtp, ms, USER, sample(2))
        assert await asyncio.wait_for(b.wait_for_push(20), 5) is True
        assert await b.wait_for_push(0.3) is False
    finally:
        await b.close()


async def test_close_after_a_cancelled_idle_logs_out_at_once(ms: Mailstack) -> None:
    """Shutdown cancels the push task mid-IDLE, then closes: the connection must
    leave IDLE first, or the server takes LOGOUT for a bad DONE and close() waits
    out its 5 s bound for an answer that never comes (Ctrl-C of `sync --watch`)."""
    b = make(ms)
    try:
        assert await b.wait_for_push(0.3) is False  # the IDLE connection is open
        waiter = asyncio.create_task(b.wait_for_push(60))
        await asyncio.sleep(0.3)  # in IDLE now
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        # Still usable: the server ended the IDLE and answers the next command.
        assert await b.wait_for_push(0.3) is False
        waiter = asyncio.create_task(b.wait_for_push(60))
        await asyncio.sleep(0.3)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    finally:
        await asyncio.wait_for(b.close(), 2.0)  # LOGOUT answered: well inside the 5 s bound
