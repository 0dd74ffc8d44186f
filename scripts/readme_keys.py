"""Print the README's key table from the keymap (tui_mail/ui/keymap.py).

    .venv/bin/python scripts/readme_keys.py

tests/ui/test_theme_keymap.py checks that README.md holds exactly this table.
"""

from __future__ import annotations

from tui_mail.ui.keymap import ACTIONS, PRESETS


def table() -> str:
    lines = [
        "| action id | what | vim (default) | mutt |",
        "| --- | --- | --- | --- |",
    ]
    for action in ACTIONS.values():
        keys = [
            ", ".join(f"`{k}`" for k in PRESETS[p].get(action.id, "").split(",") if k)
            for p in ("vim", "mutt")
        ]
        lines.append(f"| `{action.id}` | {action.description} | {keys[0]} | {keys[1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
