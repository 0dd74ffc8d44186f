"""Built-in colour themes (installed as `tui_mail.themes`).

Each `<name>.toml` holds Textual base colours under `[colors]` and app
variables under `[variables]` (`mail-unread`, `mail-flagged`, `flag-pending`,
`sync-error`, `sync-ok`, plus any Textual variable). This package is data
only: `tui_mail.ui.theme` turns the files into `textual.theme.Theme` objects.
"""

from __future__ import annotations

from pathlib import Path

THEMES_DIR = Path(__file__).resolve().parent


def builtin_theme_files() -> dict[str, Path]:
    """Theme name (the file stem) -> path, for every shipped theme."""
    return {p.stem: p for p in sorted(THEMES_DIR.glob("*.toml"))}
