"""The message view: headers, the text body, links, attachments, or the raw source.

Every string that came from the message goes through `inert()` / `inert_line()`
and into `Content` as plain text: nothing in a message is ever read as markup.
Links are numbered and listed; each listed http(s)/mailto link also carries an
OSC 8 hyperlink (terminals without support show plain text), and only after
the URL is checked to be printable ASCII, so it cannot end the escape early.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.style import Style
from textual.widgets import Static

from tui_mail.core.models import Envelope
from tui_mail.core.sanitize import inert, inert_line, safe_filename
from tui_mail.ui import keymap

if TYPE_CHECKING:  # the parser (email, compose) loads with the first message, not at start
    from tui_mail.ui.mime import ParsedMessage

BODY_LIMIT = 500_000  # characters shown; a bigger body is cut with a note
# Characters of one header value shown: wrapping a 500 KiB subject froze the UI for a
# second at every redraw. The raw source view (E) shows the rest.
HEADER_LIMIT = 4_000
TAB_SIZE = 8
_URL = re.compile(r"\b(?:https?://|mailto:)[^\s<>\"'()\[\]]+[^\s<>\"'()\[\].,;:!?]")
_LINKABLE = ("http://", "https://", "mailto:")


def plain_links(text: str) -> list[str]:
    """URLs in a plain-text body, in order of first appearance, each once."""
    found: list[str] = []
    for m in _URL.finditer(text):
        if m.group(0) not in found:
            found.append(m.group(0))
    return found


def link_content(n: int, url: str, *, hyperlink: bool = True) -> Content:
    """ "[n] url", the URL as an OSC 8 hyperlink when that is safe (and wanted)."""
    shown = inert_line(url)
    safe = (
        hyperlink
        and shown == url
        and url.lower().startswith(_LINKABLE)
        and all(33 <= ord(ch) < 127 for ch in url)
    )
    style = Style(link=url, underline=True) if safe else Style()
    return Content.assemble(f"[{n}] ", (shown, style))


class MessageView(VerticalScroll, can_focus=True, inherit_bindings=False):
    BINDINGS: ClassVar[list[BindingType]] = [
        keymap.binding("next", "scroll_down"),
        keymap.binding("prev", "scroll_up"),
        keymap.binding("page_down", "page_down"),
        keymap.binding("page_up", "page_up"),
        keymap.binding("top", "scroll_home"),
        keymap.binding("bottom", "scroll_end"),
    ]

    DEFAULT_CSS = """
    MessageView { scrollbar-size-vertical: 1; }
    MessageView > Static { width: 1fr; height: auto; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.envelope: Envelope | None = None
        self.parsed: ParsedMessage | None = None
        self.all_headers = False
        self.raw: bytes | None = None
        self.show_raw = False
        self.hyperlinks = True  # [ui] hyperlinks

    def compose(self):  # type: ignore[override]
        yield Static(Content(""), id="view-headers", markup=False)
        yield Static(Content(""), id="view-body", markup=False)
        yield Static(Content(""), id="view-attachments", markup=False)

    # --- attributes down -------------------------------------------------------------

    def show_loading(self, envelope: Envelope) -> None:
        self.envelope, self.parsed, self.raw = envelope, None, None
        self.show_raw = False
        subject = inert_line(envelope.subject) or "(no subject)"
        self._set(
            headers=Content.assemble(("Subject: ", "bold"), subject),
            body=Content.styled("Loading…", "italic"),
            attachments=Content(""),
        )
        self.scroll_home(animate=False, immediate=True)

    def show_error(self, envelope: Envelope, message: str) -> None:
        self.envelope, self.parsed = envelope, None
        self._set(
            headers=Content.assemble(("Subject: ", "bold"), inert_line(envelope.subject)),
            body=Content.styled(f"Could not open this message: {inert_line(message)}", "$error"),
            attachments=Content(""),
        )

    def show_message(
        self, envelope: Envelope, parsed: ParsedMessage, raw: bytes | None = None
    ) -> None:
        self.envelope, self.parsed, self.raw = envelope, parsed, raw
        self._render_parsed()
        self.scroll_home(animate=False, immediate=True)

    def toggle_headers(self) -> None:
        self.all_headers = not self.all_headers
        if self.parsed is not None:
            self._render_parsed()

    def toggle_raw(self) -> None:
        self.show_raw = not self.show_raw
        if self.parsed is not None:
            self._render_parsed()
            self.scroll_home(animate=False, immediate=True)

    def clear(self) -> None:
        self.envelope = self.parsed = None
        self.raw = None
        self.show_raw = False
        self._set(headers=Content(""), body=Content(""), attachments=Content(""))

    # --- rendering -----------------------------------------------------------------------

    def _set(self, *, headers: Content, body: Content, attachments: Content) -> None:
        self.query_one("#view-headers", Static).update(headers)
        self.query_one("#view-body", Static).update(body)
        self.query_one("#view-attachments", Static).update(attachments)

    def _render_parsed(self) -> None:
        parsed = self.parsed
        assert parsed is not None
        if self.show_raw and self.raw is not None:
            self._set(
                headers=Content.styled("Raw source (toggle again to go back)", "bold $text-muted"),
                body=self.raw_content(self.raw),
                attachments=Content(""),
            )
            return
        self._set(
            headers=self.header_content(parsed, all_headers=self.all_headers),
            body=self.body_content(parsed, hyperlinks=self.hyperlinks)
            + self.link_list(parsed, hyperlinks=self.hyperlinks),
            attachments=self.attachment_content(parsed),
        )

    @staticmethod
    def header_content(parsed: ParsedMessage, *, all_headers: bool = False) -> Content:
        from tui_mail.ui.mime import MAIN_HEADERS

        if all_headers:
            rows = [(name, value) for name, value in parsed.headers]
        else:
            rows = [(name, parsed.header(name)) for name in MAIN_HEADERS if parsed.header(name)]
        lines: list[Content] = []
        for name, value in rows:
            style = "bold" if name.lower() == "subject" else ""
            note = ""
            if len(value) > HEADER_LIMIT:
                note = f" [… {len(value) - HEADER_LIMIT} more characters; E shows the source]"
                value = value[:HEADER_LIMIT]
            lines.append(
                Content.assemble(
                    (f"{inert_line(name[:HEADER_LIMIT])}: ", "bold $text-muted"),
                    (inert_line(value), style),
                    (note, "italic $text-muted"),
                )
            )
        if parsed.show_reply_to:
            target = ", ".join(parsed.reply_to) or "(no valid address: type one in the reply)"
            lines.append(
                Content.assemble(
                    ("Reply goes to: ", "bold $warning"), (inert_line(target), "$warning")
                )
            )
        for problem in parsed.problems:
            lines.append(Content.styled(f"! {inert_line(problem)}", "$warning"))
        return Content("\n").join(lines)

    @staticmethod
    def body_content(parsed: ParsedMessage, *, hyperlinks: bool = True) -> Content:
        text = parsed.body
        note = ""
        if len(text) > BODY_LIMIT:
            cut = len(parsed.body) - BODY_LIMIT
            text, note = text[:BODY_LIMIT], f"\n[… {cut} more characters not shown]"
        if not text.strip():
            note = "(this message has no text part)" if parsed.body_type == "none" else "(empty)"
        if parsed.body_type == "html":
            listing = Content("")
            marker = "\n\nLinks:\n"
            if parsed.links and marker in text:
                text, _ = text.rsplit(marker, 1)
                lines = [Content.styled("\n\nLinks:", "bold")]
                lines += [
                    link_content(n, url, hyperlink=hyperlinks)
                    for n, url in enumerate(parsed.links, 1)
                ]
                listing = Content("\n").join(lines)
            return Content.assemble(
                ("[converted from HTML]\n", "italic $text-muted"),
                inert(text).expandtabs(TAB_SIZE),
                listing,
                note,
            )
        text = inert(text).expandtabs(TAB_SIZE)
        return Content.assemble(text, (note, "italic $text-muted"))

    @staticmethod
    def raw_content(raw: bytes) -> Content:
        """The message as stored, decoded leniently and made inert."""
        text = raw[:BODY_LIMIT].decode("utf-8", errors="replace")
        note = ""
        if len(raw) > BODY_LIMIT:
            note = f"\n[… {len(raw) - BODY_LIMIT} more bytes not shown]"
        return Content.assemble(inert(text).expandtabs(TAB_SIZE), (note, "italic $text-muted"))

    @staticmethod
    def link_list(parsed: ParsedMessage, *, hyperlinks: bool = True) -> Content:
        """Numbered links: the HTML body lists its own; a plain body gets them found."""
        if parsed.body_type == "html" or not parsed.body:
            return Content("")
        links = plain_links(parsed.body[:BODY_LIMIT])
        if not links:
            return Content("")
        lines = [Content.styled("\nLinks:", "bold")]
        lines += [link_content(n, url, hyperlink=hyperlinks) for n, url in enumerate(links, 1)]
        return Content("\n").join(lines)

    def links(self) -> list[str]:
        """The numbered links of the message shown, in their order ([1] first)."""
        parsed = self.parsed
        if parsed is None:
            return []
        if parsed.body_type == "html":
            return list(parsed.links)
        return plain_links(parsed.body[:BODY_LIMIT]) if parsed.body else []

    @staticmethod
    def attachment_content(parsed: ParsedMessage) -> Content:
        from tui_mail.ui.mime import human_size

        if not parsed.attachments:
            return Content("")
        lines: list[Content] = [Content.styled("\nAttachments:", "bold")]
        for n, att in enumerate(parsed.attachments, 1):
            name = inert_line(att.filename) or "(no name)"
            safe = safe_filename(att.filename)
            line = Content.assemble(
                f"  [{n}] ",
                (name, "bold"),
                f"  {inert_line(att.content_type)}, {human_size(att.size)}",
            )
            if att.filename and safe != att.filename:
                line = line + Content.styled(f"  (saves as {safe})", "$text-muted")
            lines.append(line)
        return Content("\n").join(lines)
