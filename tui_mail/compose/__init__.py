"""Composing mail: building messages, replies and forwards, and the editable draft text.

Pure standard library (`email`), no I/O besides reading attachment files, no Textual:
the compose screen, the worker and `tui-mail send` all use it.
"""

from tui_mail.compose.build import (
    AddressError,
    Attachment,
    ComposeError,
    Draft,
    build_message,
    message_bytes,
    one_line,
    parse_address_list,
)
from tui_mail.compose.headers_text import DraftError, parse_draft, render_draft
from tui_mail.compose.reply import (
    forward_attached,
    forward_inline,
    new_message,
    parse_original,
    reply,
    reply_all,
)

__all__ = [
    "AddressError",
    "Attachment",
    "ComposeError",
    "Draft",
    "DraftError",
    "build_message",
    "forward_attached",
    "forward_inline",
    "message_bytes",
    "new_message",
    "one_line",
    "parse_address_list",
    "parse_draft",
    "parse_original",
    "render_draft",
    "reply",
    "reply_all",
]
