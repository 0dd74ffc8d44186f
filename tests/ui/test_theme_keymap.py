"""Theme files and key presets, without running the app."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.color import Color

from tui_mail.ui import keymap
from tui_mail.ui.theme import APP_VARIABLE_DEFAULTS, builtin_dir, choose, theme_from_file


def _xterm256() -> set[tuple[int, int, int]]:
    steps = (0, 95, 135, 175, 215, 255)
    cube = {(r, g, b) for r in steps for g in steps for b in steps}
    grey = {(8 + 10 * i,) * 3 for i in range(24)}
    return cube | grey


def test_builtin_themes_load_with_app_variables() -> None:
    files = sorted(builtin_dir().glob("*.toml"))
    assert {p.stem for p in files} >= {"default", "mono-256"}
    for path in files:
        theme = theme_from_file(path)
        assert set(APP_VARIABLE_DEFAULTS) <= set(theme.variables)


def test_mono_256_uses_only_xterm_palette_colours() -> None:
    theme = theme_from_file(builtin_dir() / "mono-256.toml")
    palette = _xterm256()
    keys = ("primary", "secondary", "accent", "warning", "error", "success")
    keys += ("foreground", "background", "surface", "panel")
    colours = [getattr(theme, k) for k in keys]
    colours += [theme.variables[k] for k in APP_VARIABLE_DEFAULTS]
    for value in colours:
        c = Color.parse(value)
        assert (c.r, c.g, c.b) in palette, value


def test_unknown_theme_falls_back_with_a_message() -> None:
    choice = choose("no-such-theme")
    assert choice.name == "default"
    assert any("no-such-theme" in w for w in choice.warnings)


def test_textual_builtin_theme_name_is_accepted() -> None:
    assert choose("nord").name == "nord"
    assert choose("mono-256").name == "mono-256"


def test_bad_theme_file_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[colors]\nprimary = "#123456"\nbogus = "#000000"\n')
    with pytest.raises(ValueError, match=r"bad\.toml: colors\.bogus"):
        theme_from_file(bad)
    bad.write_text('[colors]\nprimary = "not a colour"\n')
    with pytest.raises(ValueError, match=r"colors\.primary"):
        theme_from_file(bad)


def test_user_theme_dir_is_used(isolated_dirs) -> None:
    folder = isolated_dirs.config / "tui-mail" / "themes"
    folder.mkdir(parents=True)
    (folder / "mine.toml").write_text('[colors]\nprimary = "#336699"\n')
    choice = choose("mine")
    assert choice.name == "mine"
    assert not choice.warnings


def test_presets_cover_every_action() -> None:
    for name, keys in keymap.PRESETS.items():
        assert set(keys) == set(keymap.ACTIONS), name


def test_overrides_and_unknown_actions() -> None:
    resolved = keymap.resolve("vim", {"next": "n, down", "no_such_action": "x", "prev": ""})
    assert resolved.keys["next"] == "n,down"
    assert resolved.keys["prev"] == keymap.PRESETS["vim"]["prev"]
    assert any("no_such_action" in w for w in resolved.warnings)
    assert any("prev" in w for w in resolved.warnings)


def test_unknown_preset_falls_back_to_vim() -> None:
    resolved = keymap.resolve("emacs")
    assert resolved.preset == "vim"
    assert resolved.warnings


def test_the_readme_key_table_is_the_keymap() -> None:
    """The README lists every action with its keys; scripts/readme_keys.py prints it."""
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("readme_keys", root / "scripts/readme_keys.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.table() in (root / "README.md").read_text(encoding="utf-8"), (
        "README.md's key table is out of date: paste the output of scripts/readme_keys.py"
    )
