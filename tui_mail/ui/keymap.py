"""Stable action ids, key presets, and user overrides.

Every binding in the UI is a `Binding(id=<action id>)`. The effective keymap
(preset, then `[keys]` overrides from the config) maps each id to a
comma-separated key list and is applied once per widget by `rebind()`, so the
same id gets the same keys in every pane that binds it. The help screen is
generated from the same data.

Why not `App.set_keymap`: Textual re-applies a keymap to every node of the
focus chain on every key press and footer refresh, in time quadratic in the
number of bindings; with this app's ~40 actions that was most of the cost of
a page-down. Rewriting each node's bindings once gives the same result.
"""

from __future__ import annotations

from dataclasses import replace  # for textual's Binding, a dataclass
from typing import Any

from msgspec import Struct
from textual.binding import Binding, BindingsMap


class Action(Struct, frozen=True):
    id: str
    description: str
    context: str  # where it applies, for the help screen
    show: bool = False  # shown in the footer


ACTIONS: dict[str, Action] = {
    a.id: a
    for a in (
        Action("next", "Next message / line", "list, folders, view"),
        Action("prev", "Previous message / line", "list, folders, view"),
        Action("page_down", "Page down", "list, folders, view"),
        Action("page_up", "Page up", "list, folders, view"),
        Action("top", "First", "list, folders, view"),
        Action("bottom", "Last", "list, folders, view"),
        Action("open", "Open message / folder", "list, folders", show=True),
        Action("back", "Close the message", "view", show=True),
        Action("toggle_headers", "All headers on/off", "view", show=True),
        Action("reply", "Reply", "list, view"),
        Action("reply_all", "Reply to all", "list, view"),
        Action("forward", "Forward", "list, view"),
        Action("forward_attached", "Forward as attachment", "list, view"),
        Action("compose", "New message", "anywhere"),
        Action("delete", "Delete (to Trash; in Trash: for good)", "list, view"),
        Action("archive", "Archive", "list, view"),
        Action("move", "Move to a folder…", "list, view"),
        Action("copy", "Copy to a folder…", "list, view"),
        Action("toggle_read", "Read / unread", "list, view"),
        Action("toggle_flagged", "Flag / unflag", "list, view"),
        Action("mark_thread_read", "Mark the thread read", "list, view"),
        Action("mark", "Select / unselect (acts on all selected)", "list"),
        Action("clear_marks", "Clear the selection", "list"),
        Action("undo", "Undo the last flag change or move", "anywhere"),
        Action("search", "Search…", "anywhere"),
        Action("search_server", "Search on the servers too…", "anywhere"),
        Action("sort", "Sort: date, sender, subject, size", "list"),
        Action("reverse_sort", "Reverse the sort order", "list"),
        Action("toggle_threads", "Threaded view on/off", "list"),
        Action("attachments", "Attachments: save / open…", "view"),
        Action("raw_source", "Raw source on/off", "view"),
        Action("copy_link", "Copy a link of the message (OSC 52)", "view"),
        Action("copy_address", "Copy the sender's address (OSC 52)", "list, view"),
        Action("switch_account", "Next account", "anywhere"),
        Action("toggle_layout", "View below / beside the list", "anywhere"),
        Action("palette", "Command palette", "anywhere"),
        Action("next_folder", "Next folder", "anywhere"),
        Action("prev_folder", "Previous folder", "anywhere"),
        Action("toggle_folders", "Show/hide folders", "anywhere", show=True),
        Action("sync_now", "Sync all accounts", "anywhere", show=True),
        Action("outbox", "Outbox: queued and failed sends", "anywhere"),
        Action("resume_draft", "Edit a draft again", "list, view"),
        Action("setup", "Add an account…", "anywhere"),
        Action("help", "Keys (this screen)", "anywhere", show=True),
        Action("quit", "Quit", "anywhere", show=True),
    )
}

PRESETS: dict[str, dict[str, str]] = {
    "vim": {
        "next": "j,down",
        "prev": "k,up",
        "page_down": "pagedown,ctrl+f",
        "page_up": "pageup,ctrl+b",
        "top": "g,home",
        "bottom": "G,end",
        "open": "enter,l",
        "back": "escape,q",
        "toggle_headers": "h",
        "next_folder": "J",
        "prev_folder": "K",
        "toggle_folders": "backslash",
        "sync_now": "ctrl+r",
        "help": "question_mark,f1",
        "quit": "q",
        "reply": "r",
        "reply_all": "R",
        "forward": "f",
        "forward_attached": "F",
        "compose": "c",
        "delete": "d,delete",
        "archive": "a",
        "move": "m",
        "copy": "y",
        "toggle_read": "N",
        "toggle_flagged": "s",
        "mark_thread_read": "A",
        "mark": "space,x",
        "clear_marks": "X",
        "undo": "u",
        "search": "slash",
        "search_server": "S",
        "sort": "o",
        "reverse_sort": "O",
        "toggle_threads": "T",
        "attachments": "v",
        "raw_source": "E",
        "copy_link": "U",
        "copy_address": "Y",
        "switch_account": "ctrl+n",
        "toggle_layout": "V",
        "palette": "colon,ctrl+p",
        "outbox": "W",
        "resume_draft": "e",
        "setup": "plus",
    },
    "mutt": {
        "next": "j,down",
        "prev": "k,up",
        "page_down": "pagedown,greater_than_sign",
        "page_up": "pageup,less_than_sign",
        "top": "home,equals_sign",
        "bottom": "end,asterisk",
        "open": "enter,space",
        "back": "q,i,escape",
        "toggle_headers": "h",
        "next_folder": "ctrl+n",
        "prev_folder": "ctrl+p",
        "toggle_folders": "B",
        "sync_now": "dollar_sign",
        "help": "question_mark",
        "quit": "q",
        # neomutt's own letters where it has the action (r g f m d s C N F ^R t / o O v e $).
        "reply": "r",
        "reply_all": "g",
        "forward": "f",
        "forward_attached": "ctrl+f",
        "compose": "m",
        "delete": "d",
        "archive": "a",
        "move": "s",
        "copy": "C",
        "toggle_read": "N",
        "toggle_flagged": "F",
        "mark_thread_read": "ctrl+r",
        "mark": "t",
        "clear_marks": "ctrl+t",
        "undo": "u",
        "search": "slash",
        "search_server": "S",
        "sort": "o",
        "reverse_sort": "O",
        "toggle_threads": "T",
        "attachments": "v",
        "raw_source": "e",
        "copy_link": "U",
        "copy_address": "Y",
        "switch_account": "c",
        "toggle_layout": "V",
        "palette": "colon",
        "outbox": "W",
        "resume_draft": "R",  # neomutt's recall-message
        "setup": "plus",
    },
}
DEFAULT_PRESET = "vim"


class ResolvedKeymap(Struct, frozen=True):
    keys: dict[str, str]  # action id -> "key,key"
    preset: str
    warnings: tuple[str, ...] = ()


def resolve(preset: str | None, overrides: dict[str, str] | None = None) -> ResolvedKeymap:
    """The preset's keys with the user's overrides; problems become warnings."""
    warnings: list[str] = []
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        warnings.append(
            f"unknown key preset {name!r} (have: {', '.join(sorted(PRESETS))}); using vim"
        )
        name = DEFAULT_PRESET
    keys = dict(PRESETS[name])
    for action_id, value in (overrides or {}).items():
        if action_id not in ACTIONS:
            warnings.append(f"[keys] {action_id}: unknown action (ignored)")
            continue
        if not isinstance(value, str) or not [k for k in value.split(",") if k.strip()]:
            warnings.append(f"[keys] {action_id}: expected keys like 'j,down' (ignored)")
            continue
        keys[action_id] = ",".join(k.strip() for k in value.split(",") if k.strip())
    return ResolvedKeymap(keys, name, tuple(warnings))


def binding(action_id: str, action: str | None = None, *, show: bool | None = None) -> Binding:
    """A Binding for `action_id` whose default keys are the vim preset's.

    `action` is the Textual action string (defaults to the id itself).
    """
    meta = ACTIONS[action_id]
    return Binding(
        PRESETS[DEFAULT_PRESET][action_id],
        action or action_id,
        _short(meta.description),
        show=meta.show if show is None else show,
        id=action_id,
    )


def _short(description: str) -> str:
    return {
        "Open message / folder": "Open",
        "Close the message": "Back",
        "All headers on/off": "Headers",
        "Show/hide folders": "Folders",
        "Sync all accounts": "Sync",
        "Keys (this screen)": "Help",
        "Delete (to Trash; in Trash: for good)": "Delete",
        "Move to a folder…": "Move",
        "Copy to a folder…": "Copy",
        "Select / unselect (acts on all selected)": "Select",
        "Undo the last flag change or move": "Undo",
        "Sort: date, sender, subject, size": "Sort",
        "Attachments: save / open…": "Attachments",
        "Outbox: queued and failed sends": "Outbox",
        "Edit a draft again": "Draft",
        "Add an account…": "Add account",
        "Copy a link of the message (OSC 52)": "Copy link",
        "Copy the sender's address (OSC 52)": "Copy address",
    }.get(description, description)


def display_keys(keys: str) -> str:
    """'question_mark,f1' -> '? F1' for the help screen."""
    names = {
        "question_mark": "?",
        "backslash": "\\",
        "greater_than_sign": ">",
        "less_than_sign": "<",
        "equals_sign": "=",
        "asterisk": "*",
        "plus": "+",
        "dollar_sign": "$",
        "slash": "/",
        "colon": ":",
        "delete": "Del",
        "space": "Space",
        "escape": "Esc",
        "enter": "Enter",
        "pagedown": "PgDn",
        "pageup": "PgUp",
        "home": "Home",
        "end": "End",
        "up": "↑",
        "down": "↓",
    }
    out = []
    for key in keys.split(","):
        key = key.strip()
        if key.startswith("ctrl+"):
            out.append("^" + names.get(key[5:], key[5:]))
        elif len(key) > 1 and key[0] == "f" and key[1:].isdigit():
            out.append(key.upper())
        else:
            out.append(names.get(key, key))
    return " ".join(out)


def rebind(root: Any, keys: dict[str, str]) -> None:
    """Give every binding with an action id under `root` (itself included) its keys.

    Bindings without an id are left as they are. Done once, after mount.
    """
    nodes = [root, *root.walk_children(with_self=False)]
    for node in nodes:
        current = getattr(node, "_bindings", None)
        if current is None or getattr(node, "_tui_mail_rebound", False):
            continue
        node._bindings = rebound(current, keys)
        node._tui_mail_rebound = True


def rebound(bindings: BindingsMap, keys: dict[str, str]) -> BindingsMap:
    new: dict[str, list[Binding]] = {}
    done: set[tuple[str, str]] = set()
    for key, key_bindings in bindings.key_to_bindings.items():
        for binding in key_bindings:
            if binding.id is None or binding.id not in keys:
                new.setdefault(key, []).append(binding)
                continue
            if (binding.id, binding.action) in done:
                continue  # one Binding per key in the map: rebind the id once
            done.add((binding.id, binding.action))
            for user_key in keys[binding.id].split(","):
                user_key = user_key.strip()
                if user_key:
                    new.setdefault(user_key, []).append(replace(binding, key=user_key))
    return BindingsMap.from_keys(new)
