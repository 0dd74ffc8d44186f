"""Stable action ids, key presets, and user overrides.

Every binding in the UI is a `Binding(id=<action id>)`. The effective keymap
(preset, then `[keys]` overrides from the config) maps each id to a
comma-separated key list and is applied once with `App.set_keymap`, so the
same id gets the same keys in every pane that binds it. The help screen is
generated from the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Action:
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
        Action("next_folder", "Next folder", "anywhere"),
        Action("prev_folder", "Previous folder", "anywhere"),
        Action("toggle_folders", "Show/hide folders", "anywhere", show=True),
        Action("sync_now", "Sync all accounts", "anywhere", show=True),
        Action("help", "Keys (this screen)", "anywhere", show=True),
        Action("quit", "Quit", "anywhere", show=True),
    )
}

PRESETS: dict[str, dict[str, str]] = {
    "vim": {
        "next": "j,down",
        "prev": "k,up",
        "page_down": "pagedown,ctrl+f,space",
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
    },
}
DEFAULT_PRESET = "vim"


@dataclass(frozen=True)
class ResolvedKeymap:
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
        "dollar_sign": "$",
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
