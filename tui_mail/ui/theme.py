"""Theme files (`themes/*.toml`, plus the user's own) -> `textual.theme.Theme`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from msgspec import Struct, field
from textual.color import Color, ColorParseError
from textual.theme import BUILTIN_THEMES, Theme

from tui_mail import paths

DEFAULT_THEME = "default"

# The app's own variables. These defaults apply to any theme that does not set
# them (Textual's built-in themes, for example), so the stylesheet always parses.
APP_VARIABLE_DEFAULTS: dict[str, str] = {
    "mail-unread": "#f2f4f8",
    "mail-flagged": "#e0a84f",
    "flag-pending": "#b48ead",
    "sync-error": "#e05f6f",
    "sync-ok": "#6fbf73",
}

_COLOR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_TOP_KEYS = {"name", "dark", "ansi", "colors", "variables", "luminosity_spread", "text_alpha"}


class ThemeChoice(Struct):
    themes: list[Theme]  # every theme we could load, to register with the app
    name: str  # the theme to activate
    warnings: list[str] = field(default_factory=list)


def builtin_dir() -> Path:
    try:
        from tui_mail.themes import THEMES_DIR  # installed package (package-dir mapping)

        return THEMES_DIR
    except ImportError:  # an editable install made before themes/ had an __init__
        return Path(__file__).resolve().parents[2] / "themes"


def user_dir() -> Path:
    return paths.default_config_path().parent / "themes"


def theme_files() -> dict[str, Path]:
    """Name -> file; a user's file of the same name wins over a built-in one."""
    found: dict[str, Path] = {}
    for folder in (builtin_dir(), user_dir()):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.toml"))})
    return found


def theme_from_file(path: Path, name: str | None = None) -> Theme:
    """Parse one theme file; `ValueError` names the file and the key on problems."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    colors = data.get("colors", {})
    variables = data.get("variables", {})
    if not isinstance(colors, dict) or not isinstance(variables, dict):
        raise ValueError(f"{path}: [colors] and [variables] must be tables")
    for key, value in colors.items():
        if key not in _COLOR_KEYS:
            raise ValueError(
                f"{path}: colors.{key}: unknown colour (have: {', '.join(_COLOR_KEYS)})"
            )
        _check_color(path, f"colors.{key}", value)
    if "primary" not in colors:
        raise ValueError(f"{path}: colors.primary is required")
    for key, value in variables.items():
        if not isinstance(value, str):
            raise ValueError(f"{path}: variables.{key}: expected a string")
        if key in APP_VARIABLE_DEFAULTS:
            _check_color(path, f"variables.{key}", value)
    return Theme(
        name=name or str(data.get("name") or path.stem),
        dark=bool(data.get("dark", True)),
        # ansi: colours are the terminal's palette entries ("ansi_blue"), for 16-colour use.
        ansi=bool(data.get("ansi", False)),
        luminosity_spread=float(data.get("luminosity_spread", 0.15)),
        text_alpha=float(data.get("text_alpha", 0.95)),
        variables={**APP_VARIABLE_DEFAULTS, **variables},
        **colors,
    )


def _check_color(path: Path, key: str, value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{path}: {key}: expected a colour string")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f"{path}: {key}: {value!r} is not a colour") from None


def choose(requested: str | None) -> ThemeChoice:
    """Load every theme file and pick `requested`, falling back to the default."""
    choice = ThemeChoice(themes=[], name=DEFAULT_THEME)
    for name, path in theme_files().items():
        try:
            choice.themes.append(theme_from_file(path, name))
        except ValueError as exc:
            choice.warnings.append(f"theme: {exc}")
    ours = {t.name for t in choice.themes}
    wanted = requested or DEFAULT_THEME
    if wanted in ours or wanted in BUILTIN_THEMES:
        choice.name = wanted
    else:
        known = sorted(ours | {"textual-dark", "nord", "gruvbox"})
        choice.warnings.append(
            f"theme {wanted!r} not found (try: {', '.join(known)}); using {DEFAULT_THEME}"
        )
    if choice.name == DEFAULT_THEME and DEFAULT_THEME not in ours:
        choice.name = "textual-dark"  # the shipped default is missing or broken
    return choice
