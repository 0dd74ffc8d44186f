"""Composing: new message, reply, reply-all, forward, resuming a draft; then review.

`start_compose(app, mode, ref)` is what the keys call. It reads the message from the
local store (never the network), builds the draft (compose.reply), opens the review
screen and, on top of it, the editor: $VISUAL/$EDITOR with the app suspended, or the
built-in editor. The review screen shows what will be sent and offers:

    y send   e edit again   p postpone to Drafts   a attach a file   q cancel (confirmed)

Sending hands `cmd.Send` to the account worker, which writes the message to the
outbox before any network traffic; the screen closes at once and the outcome comes
to the status line. If the message never reached the outbox (a disk error), the
composer reopens with the reason, so nothing the user wrote is lost. Postponing
APPENDs the message to the Drafts folder (flags Draft and Seen); a resumed draft is
deleted once its successor is safe (sent, queued, or saved again).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui_mail.compose.build import ComposeError, Draft
from tui_mail.core import commands as cmd
from tui_mail.core import events as ev
from tui_mail.core.flags import Flag
from tui_mail.core.models import Address, FolderRole, MessageRef
from tui_mail.core.sanitize import inert, inert_line
from tui_mail.ui.address_completion import completer_for
from tui_mail.ui.screens.compose_dialogs import ConfirmScreen, PathPrompt
from tui_mail.ui.screens.compose_editor import EditorScreen
from tui_mail.ui.screens.compose_session import (
    MODE_TITLES,
    MODES,
    ComposeSession,
    EditorUnavailable,
    editor_argv,
    initial_draft,
    run_editor,
)

if TYPE_CHECKING:
    from tui_mail.ui.app import MailApp

__all__ = ["ComposeScreen", "start_compose"]

DRAFT_FLAGS = frozenset({Flag.DRAFT, Flag.SEEN})
# What a sent reply/forward marks on the original, as other clients do.
SOURCE_FLAG = {"reply": Flag.ANSWERED, "reply_all": Flag.ANSWERED}
FORWARD_MODES = ("forward", "forward_attached")


# --------------------------------------------------------------------------- entry point


def start_compose(app: MailApp, mode: str, ref: MessageRef | None) -> None:
    """Open the composer. `mode`: new, reply, reply_all, forward, forward_attached or
    resume (a postponed draft, or any message "edited as new"); `ref` the message."""
    app.run_worker(_open(app, mode, ref), name="compose", group="compose", exit_on_error=False)


def _current_account(app: MailApp) -> str | None:
    shown = getattr(app.main, "shown", None)
    if shown:
        return str(shown[0])
    return next(iter(app.config.accounts), None)


def folder_with_role(store: Any, role: FolderRole) -> str | None:
    for folder in store.folders():
        if folder.role is role:
            return str(folder.name)
    return None


async def _open(app: MailApp, mode: str, ref: MessageRef | None) -> None:
    name = ref.account if ref is not None else _current_account(app)
    account = app.config.accounts.get(name) if name else None
    if account is None:
        notice(app, "no account to send from", error=True)
        return
    if mode not in MODES:
        notice(app, f"unknown compose mode {mode!r}", error=True)
        return
    raw: bytes | None = None
    replaces: MessageRef | None = None
    if ref is not None and mode != "new":
        store = app.bridge.stores.get(ref.account)
        if store is None:
            notice(app, f"{ref.account}: the mail store is not open yet", error=True)
            return
        try:
            raw = await asyncio.to_thread(store.read, ref)
            drafts = await asyncio.to_thread(folder_with_role, store, FolderRole.DRAFTS)
        except Exception as exc:  # gone meanwhile, unreadable: say so, open nothing
            notice(app, f"cannot read the message: {exc}", error=True)
            return
        # Only a message in Drafts is superseded; "edit as new" on a sent one keeps it.
        if mode == "resume" and ref.folder in (drafts, "Drafts"):
            replaces = ref
    try:
        draft = await asyncio.to_thread(initial_draft, mode, account, raw)
    except ComposeError as exc:
        notice(app, str(exc), error=True)
        return
    session = ComposeSession.start(account, mode, draft, replaces=replaces, source=ref)
    await app.push_screen(ComposeScreen(session, edit_first=True))


def notice(app: MailApp, message: str, *, error: bool = False) -> None:
    """A line in the main screen's status line (visible once the composer is closed)."""
    app.main.show_notice(message, error=error)


# --------------------------------------------------------------------------- review screen


class ComposeScreen(Screen[None]):
    DEFAULT_CSS = """
    ComposeScreen { layout: vertical; }
    ComposeScreen > #compose-title { height: 1; background: $panel; padding: 0 1; }
    ComposeScreen > #compose-headers { height: auto; max-height: 12; padding: 0 1; }
    ComposeScreen > #compose-error {
        height: auto; max-height: 4; padding: 0 1; color: $error; display: none;
    }
    ComposeScreen.-error > #compose-error { display: block; }
    ComposeScreen > VerticalScroll {
        height: 1fr; padding: 0 1; border-top: hkey $panel;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "send", "Send", show=True),
        Binding("e", "edit", "Edit", show=True),
        Binding("p", "postpone", "Postpone", show=True),
        Binding("a", "attach", "Attach", show=True),
        Binding("q,escape", "cancel", "Cancel", show=True),
        Binding("j,down", "scroll(1)", "Down", show=False),
        Binding("k,up", "scroll(-1)", "Up", show=False),
        Binding("space,pagedown", "page(1)", "Page down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
    ]

    def __init__(self, session: ComposeSession, *, edit_first: bool = False) -> None:
        super().__init__()
        self.session = session
        self.edit_first = edit_first
        self.edits = 0  # texts taken back from an editor (for tests and the title)

    @property
    def app_(self) -> MailApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="compose-title", markup=False)
        yield Static(id="compose-headers", markup=False)
        yield Static(id="compose-error", markup=False)
        with VerticalScroll(id="compose-body"):
            yield Static(id="compose-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.show_session()
        if self.edit_first:
            self.edit_first = False
            # After the first frame, so the terminal is in a known state when we hand it
            # to the editor, and this screen is what comes back.
            self.call_after_refresh(self.edit)

    # --- display ----------------------------------------------------------------------

    def show_session(self) -> None:
        s = self.session
        title = f"{MODE_TITLES.get(s.mode, s.mode)} · {s.account.name}"
        if s.replaces is not None:
            title += " · resumed draft"
        self.query_one("#compose-title", Static).update(Content(inert_line(title)))
        self.query_one("#compose-headers", Static).update(self._headers())
        self.query_one("#compose-error", Static).update(Content(inert(s.error)))
        self.set_class(bool(s.error), "-error")
        body = s.draft.body if s.draft is not None else s.text.partition("\n\n")[2]
        self.query_one("#compose-text", Static).update(Content(inert(body)))

    def _headers(self) -> Content:
        s = self.session
        if s.draft is None:
            # Not parseable: show the header lines as typed, the bad one marked.
            head = s.text.replace("\r\n", "\n").partition("\n\n")[0].split("\n")
            parts: list[Content | str | tuple[str, str]] = []
            for number, line in enumerate(head, 1):
                style = "bold $error" if number == s.error_line else ""
                parts.append((inert_line(line) + "\n", style))
            return Content.assemble(*parts).rstrip()
        return header_content(s.draft, str(s.draft.from_ or s.account.email))

    # --- actions ----------------------------------------------------------------------

    def action_scroll(self, lines: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_page(self, pages: int) -> None:
        scroll = self.query_one(VerticalScroll)
        scroll.scroll_relative(y=pages * max(1, scroll.size.height - 1), animate=False)

    def action_edit(self) -> None:
        self.edit()

    def edit(self) -> None:
        """Edit the text: the user's editor if one is set, else the built-in one."""
        title = MODE_TITLES.get(self.session.mode, "Compose")
        try:
            argv = editor_argv()
        except ComposeError as exc:
            self.notify(str(exc), severity="error", markup=False)
            argv = None
        if argv is not None:
            try:
                text = self._run_external(argv)
            except EditorUnavailable as exc:
                self.notify(f"{exc}; using the built-in editor", severity="warning", markup=False)
            except ComposeError as exc:  # the editor failed: the previous text stays
                self.notify(str(exc), severity="error", markup=False)
                return
            else:
                if text is not None:
                    self.edited(text)
                    return
        completer = completer_for(self.app)
        self.app.push_screen(EditorScreen(self.session.text, title, completer), self.edited)

    def _run_external(self, argv: list[str]) -> str | None:
        """The external editor's text, or None when the terminal cannot be handed over."""
        from textual.app import SuspendNotSupported

        if self.app.is_headless:
            # No terminal to hand over (tests): the "editor" is a script; run it as is.
            return run_editor(argv, self.session.text)
        try:
            # Blocking on purpose: the app is suspended, nothing may draw meanwhile.
            with self.app.suspend():
                return run_editor(argv, self.session.text)
        except SuspendNotSupported:
            return None

    def edited(self, text: str | None) -> None:
        if text is None:
            return
        self.edits += 1
        self.session.update(text)
        self.show_session()

    def action_attach(self) -> None:
        if self.session.draft is None:
            self.notify("fix the draft first (e edits it)", severity="error", markup=False)
            return
        self.app.push_screen(PathPrompt("Attach a file:"), self._attach_chosen)

    def _attach_chosen(self, path: str | None) -> None:
        if not path:
            return
        try:
            self.session.attach(path)
        except ComposeError as exc:
            self.notify(str(exc), severity="error", markup=False)
        self.show_session()

    def action_send(self) -> None:
        s = self.session
        if s.draft is None:
            self.notify("fix the draft first (e edits it)", severity="error", markup=False)
            return
        try:
            raw, message_id = s.message()
        except ComposeError as exc:
            s.fail(str(exc))
            self.show_session()
            return
        app = self.app_
        self.dismiss()
        app.run_worker(send(app, s, raw, message_id), group="compose-send", exit_on_error=False)

    def action_postpone(self) -> None:
        s = self.session
        if s.draft is None:
            self.notify("fix the draft first (e edits it)", severity="error", markup=False)
            return
        try:
            raw, _ = s.message(require_recipients=False)
        except ComposeError as exc:
            s.fail(str(exc))
            self.show_session()
            return
        app = self.app_
        self.dismiss()
        app.run_worker(postpone(app, s, raw), group="compose-send", exit_on_error=False)

    def action_cancel(self) -> None:
        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss()

        self.app.push_screen(ConfirmScreen("Discard this message?"), answered)


def header_content(draft: Draft, sender: str) -> Content:
    """From, To, Cc, Bcc, Reply-To, Subject and the attachments, as they will go out."""
    rows: list[tuple[str, str]] = [("From", sender)]
    for label, addresses in (
        ("To", draft.to),
        ("Cc", draft.cc),
        ("Bcc", draft.bcc),
        ("Reply-To", draft.reply_to),
    ):
        if addresses or label == "To":
            rows.append((label, ", ".join(str(a) for a in addresses) or "(nobody yet)"))
    rows.append(("Subject", draft.subject or "(no subject)"))
    files = [f"{a.filename} ({a.mime_type}, {_size(len(a.data))})" for a in draft.attachments]
    for path in draft.attach_paths:
        try:
            size = _size(path.stat().st_size)
        except OSError:
            size = "missing"
        files.append(f"{path} ({size})")
    for n, item in enumerate(files, 1):
        rows.append(("Attach" if n == 1 else "", f"{n}. {item}"))
    parts: list[Content | str | tuple[str, str]] = []
    for label, value in rows:
        parts.append((f"{label + ':' if label else '':<9} ", "bold"))
        parts.append(inert_line(value) + "\n")
    return Content.assemble(*parts).rstrip()


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


# --------------------------------------------------------------------------- outcomes


async def send(app: MailApp, session: ComposeSession, raw: bytes, message_id: str) -> None:
    """Submit the message and report; reopen the composer if it never reached the outbox."""
    name = session.account.name
    subject = session.draft.subject if session.draft is not None else ""
    label = f"“{subject}”" if subject else "the message"
    notice(app, f"sending {label}…")
    reply = await app.bridge.request(name, cmd.Send(raw=raw))
    if isinstance(reply, ev.Done):
        notice(app, f"sent {label}")
        _note_recipients(app, session)
        _after_safe(app, session)
        return
    reason = getattr(reply, "message", "") or "cancelled"
    entry = await asyncio.to_thread(outbox_entry, app, name, message_id)
    if entry is None:
        # It never got into the outbox (no disk space, ...): the draft is all there is.
        session.fail(f"not sent, not queued: {reason}")
        await app.push_screen(ComposeScreen(session))
        return
    # In the outbox: it survives us, so the old draft can go.
    _note_recipients(app, session)
    _after_safe(app, session, mark_source=entry.will_retry or entry.state.value == "sent")
    from tui_mail.ui.widgets.outbox import outbox_hint

    outcome = outbox_outcome(entry, reason, outbox_hint(app))
    notice(app, f"{label}: {outcome}", error=not entry.will_retry)


def _note_recipients(app: MailApp, session: ComposeSession) -> None:
    """Count the recipients for completion now; the index sees them only once the Sent
    copy is indexed, and it keeps no Bcc column at all."""
    draft = session.draft
    if draft is None:
        return
    people = (*draft.to, *draft.cc, *draft.bcc)
    completer_for(app).note_sent(Address(a.display_name, a.addr_spec) for a in people)


def outbox_outcome(entry: Any, reason: str, hint: str = "") -> str:
    """What happened to a message the worker did not report as sent."""
    from tui_mail.sync.outbox import State

    if entry.state is State.SENT:
        return "sent"
    if entry.state is State.UNCERTAIN:
        return "interrupted while sending; it may have gone out: check the outbox" + hint
    if entry.will_retry:
        when = ""
        if entry.retry_at is not None:
            when = time.strftime(" at %H:%M:%S", time.localtime(entry.retry_at))
        why = entry.last_error or reason
        return f"queued, will retry{when}" + (f": {why}" if why else "")
    return f"not sent: {entry.last_error or reason}; kept in the outbox{hint}"


def outbox_entry(app: MailApp, account: str, message_id: str) -> Any:
    """The outbox row of the message with this Message-ID (any state), or None."""
    from tui_mail.sync.outbox import Outbox, State

    index = app.bridge.index
    if index is None or not message_id:
        return None
    found = [e for e in Outbox(index).entries(account, tuple(State)) if e.message_id == message_id]
    return found[-1] if found else None


async def postpone(app: MailApp, session: ComposeSession, raw: bytes) -> None:
    name = session.account.name
    store = app.bridge.stores.get(name)
    folder = None
    if store is not None:
        folder = await asyncio.to_thread(folder_with_role, store, FolderRole.DRAFTS)
    folder = folder or "Drafts"
    reply = await app.bridge.request(name, cmd.Append(folder=folder, raw=raw, flags=DRAFT_FLAGS))
    if not isinstance(reply, ev.Done):
        session.fail(f"not saved to {folder}: {getattr(reply, 'message', '') or 'cancelled'}")
        await app.push_screen(ComposeScreen(session))
        return
    notice(app, f"draft saved to {folder}")
    replaced = session.replaces
    session.replaces = None
    if replaced is not None:
        app.bridge.submit(replaced.account, cmd.Delete(refs=(replaced,)))


def _after_safe(app: MailApp, session: ComposeSession, *, mark_source: bool = True) -> None:
    """The message is sent or queued: drop the draft it came from, mark the original."""
    replaced, session.replaces = session.replaces, None
    if replaced is not None:
        app.bridge.submit(replaced.account, cmd.Delete(refs=(replaced,)))
    source = session.source
    if not mark_source:
        return
    flag = SOURCE_FLAG.get(session.mode) or (Flag.PASSED if session.mode in FORWARD_MODES else None)
    if source is not None and flag is not None and source != replaced:
        app.bridge.submit(source.account, cmd.SetFlags(refs=(source,), add=frozenset({flag})))
