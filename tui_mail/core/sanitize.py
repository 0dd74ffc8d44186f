"""Make text from mail and servers inert before it reaches a terminal.

Everything a message or a server gives us (subjects, addresses, bodies,
folder names, error strings) can carry terminal control sequences (ESC, CSI,
OSC), C1 controls, Unicode bidi overrides that reorder what the user sees, or
zero-width characters that hide text. `inert()` replaces each of them with a
visible placeholder, so a hostile subject shows as text and never acts on the
terminal. Callers still put the
result into Textual as plain text (never markup): this module is about the
terminal, markup safety is about how the UI builds its Content.

Pure functions, no I/O, no Textual.
"""

from __future__ import annotations

import re

# --- placeholders ---------------------------------------------------------------

# C0 controls 0x00-0x1F -> U+2400-U+241F (control pictures: ␀ … ␛ … ␟), DEL -> ␡.
_C0 = {cp: chr(0x2400 + cp) for cp in range(0x20)}
_DEL = {0x7F: "\u2421"}
# C1 controls 0x80-0x9F have no control pictures: show them as <80> … <9F>.
_C1 = {cp: f"<{cp:02X}>" for cp in range(0x80, 0xA0)}
# Bidi embeddings, overrides and isolates (the "Trojan Source" set).
BIDI_CONTROLS: dict[int, str] = {
    0x202A: "LRE",
    0x202B: "RLE",
    0x202C: "PDF",
    0x202D: "LRO",
    0x202E: "RLO",
    0x2066: "LRI",
    0x2067: "RLI",
    0x2068: "FSI",
    0x2069: "PDI",
}
_BIDI = {cp: f"<{name}>" for cp, name in BIDI_CONTROLS.items()}
# Unicode line and paragraph separators: line breaks to some renderers.
_SEPARATORS_LINE = {0x2028: "\u2424", 0x2029: "\u2424"}
# Invisible characters: they hide text ("pay\u200bpal" is not "paypal" to a filter but
# looks it), the bidi marks steer reordering like the overrides above, and a terminal
# may join a ZWJ sequence into one glyph while Textual counts cells per character.
ZERO_WIDTH: dict[int, str] = {
    0x200B: "ZWSP",
    0x200C: "ZWNJ",
    0x200D: "ZWJ",
    0x200E: "LRM",
    0x200F: "RLM",
    0x061C: "ALM",
    0x180E: "MVS",
    0x2060: "WJ",
    0x2061: "U+2061",
    0x2062: "U+2062",
    0x2063: "U+2063",
    0x2064: "U+2064",
    0xFEFF: "ZWNBSP",
}
_ZERO_WIDTH = {cp: f"<{name}>" for cp, name in ZERO_WIDTH.items()}

# Lone surrogates (undecodable bytes smuggled through surrogateescape) are not text.
_SURROGATES = dict.fromkeys(range(0xD800, 0xE000), "\ufffd")

_ALL_TABLE: dict[int, str] = {
    **_C0,
    **_DEL,
    **_C1,
    **_BIDI,
    **_ZERO_WIDTH,
    **_SEPARATORS_LINE,
    **_SURROGATES,
}


def _table(keep_newlines: bool, keep_tabs: bool) -> dict[int, str]:
    table = dict(_ALL_TABLE)
    if keep_newlines:
        del table[0x0A]
        table[0x2028] = table[0x2029] = "\n"
    if keep_tabs:
        del table[0x09]
    return table


_TABLES = {(nl, tab): _table(nl, tab) for nl in (False, True) for tab in (False, True)}
_LINE_TABLE = {**_ALL_TABLE, 0x09: " "}  # a tab in a one-line field is just space

_CRLF = re.compile(r"\r\n?")


def inert(s: str, *, keep_newlines: bool = True, keep_tabs: bool = True) -> str:
    """Replace control characters and bidi overrides with visible placeholders.

    With the defaults (body text) newlines and tabs stay; CRLF and lone CR
    become "\\n". With `keep_newlines=False` and `keep_tabs=False` every
    control character, newline and tab included, becomes a control picture.
    Lone surrogates (undecodable bytes) become U+FFFD.
    """
    if not s:
        return ""
    if s[0] == "\ufeff":  # a byte order mark left by the decoder, not hidden text
        s = s[1:]
    if keep_newlines and "\r" in s:
        s = _CRLF.sub("\n", s)
    return s.translate(_TABLES[keep_newlines, keep_tabs])


def inert_line(s: str) -> str:
    """Like `inert`, for one-line fields (subjects, names, folder names).

    Newlines become a visible "␊" (a folded header continuation is joined
    with a space first), tabs become a space, and nothing can start a new line.
    """
    if not s:
        return ""
    if "\r" in s or "\n" in s:
        s = _CRLF.sub("\n", s)
        # A folded header line ("...\n\t...") is one logical line: join it.
        s = re.sub(r"\n[ \t]+", " ", s)
    return s.translate(_LINE_TABLE)


# --- filenames -------------------------------------------------------------------

_FILENAME_MAX = 120
# File systems limit a name in bytes (NAME_MAX, 255 on Linux), not characters: 120
# CJK characters are 360 bytes of UTF-8 and would fail to save.
_FILENAME_MAX_BYTES = 200
_EXT_MAX = 16
_FORBIDDEN = re.compile(r'[<>:"|?*\\/]')
_CONTROL_OR_BIDI = re.compile(
    "[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\u200b-\u200f\u2060-\u2064"
    "\u061c\u180e\ufeff"
    "\ud800-\udfff]"
)
_DOTS = re.compile(r"\.{2,}")
_SPACES = re.compile(r"\s+")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)


def safe_filename(name: str | None, *, fallback: str = "attachment") -> str:
    """A name that is safe to create in a chosen directory.

    Keeps only the last path component (of "/" or "\\" paths), drops control
    and bidi characters, replaces characters that are special on common
    filesystems, collapses ".." runs, strips leading dots, dashes and
    spaces (no hidden files, nothing that looks like an option), and limits
    the length while keeping a short extension. Never returns "" or "." or "..".
    """
    if not name:
        return fallback
    s = str(name)
    s = _CONTROL_OR_BIDI.sub("", s)
    # basename: the last non-empty component of either separator
    parts = [p for p in re.split(r"[/\\]", s) if p.strip()]
    s = parts[-1] if parts else ""
    s = _FORBIDDEN.sub("_", s)
    s = _SPACES.sub(" ", s)
    s = _DOTS.sub(".", s)
    s = s.strip().lstrip(".-_ ").rstrip(". ")
    if not s:
        return fallback
    stem, dot, ext = s.rpartition(".")
    if not dot:
        stem, ext = s, ""
    if len(ext) > _EXT_MAX:
        stem, ext = f"{stem}.{ext}" if stem else ext, ""
    suffix = f".{ext}" if ext else ""
    stem = stem[: max(1, _FILENAME_MAX - len(suffix))]
    budget = max(1, _FILENAME_MAX_BYTES - len(suffix.encode()))
    stem = stem.encode()[:budget].decode("utf-8", "ignore").rstrip(". ")
    s = f"{stem}{suffix}" if stem else suffix.lstrip(".")
    # Windows (and a Samba or exFAT share) reserves "CON", "con.txt", "CON .tar.gz" alike.
    if s.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_RESERVED:
        s = "_" + s
    return s or fallback
