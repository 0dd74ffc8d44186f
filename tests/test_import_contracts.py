"""The layering rules of docs/architecture.md, checked on the source itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL_LIBS = {"aioimaplib", "aiosmtplib", "poplib", "smtplib", "imaplib", "ssl"}


def _python_files(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in (ROOT / d).rglob("*.py")]


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_checks_see_the_code() -> None:
    assert len(_python_files("tui_mail", "backends")) > 20


@pytest.mark.parametrize(
    "path",
    [p for p in _python_files("tui_mail", "backends") if "ui" not in p.relative_to(ROOT).parts],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_only_the_ui_imports_textual(path: Path) -> None:
    textual = {m for m in _imports(path) if _is_under(m, "textual")}
    assert not textual, f"{path} imports {textual}"
    # The CLI may start the UI from inside a function; nothing imports it at load time.
    ui = {m for m in _imports(path, top_level_only=True) if _is_under(m, "tui_mail.ui")}
    assert not ui, f"{path} imports {ui} at module level"


@pytest.mark.parametrize(
    "path", _python_files("tui_mail/ui"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_the_ui_speaks_no_protocol(path: Path) -> None:
    bad = {
        m
        for m in _imports(path)
        if m.split(".")[0] in PROTOCOL_LIBS or _is_under(m, "tui_mail.backends")
    }
    assert not bad, f"{path} imports {bad}"


def _runs_clean(code: str) -> None:
    """`code` in a fresh interpreter (nothing imported yet) exits 0."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_headless_paths_load_no_textual() -> None:
    code = (
        "import sys, tui_mail.cli, tui_mail.headless, tui_mail.sync.runtime, "
        "tui_mail.config.load, tui_mail.demo.setup\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(bad)\nraise SystemExit(1 if bad else 0)\n"
    )
    _runs_clean(code)


def test_building_an_smtp_account_loads_no_smtp_library_until_it_sends(tmp_path: Path) -> None:
    """`tui-mail sync` builds every account's send backend; aiosmtplib and the email
    package (~15 ms) wait for the first message actually sent."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[accounts.a]\nemail = "a@example.org"\n'
        '[accounts.a.receive]\nbackend = "imap"\nhost = "imap.example.org"\nuser = "a"\n'
        '[accounts.a.send]\nbackend = "smtp"\nhost = "smtp.example.org"\nuser = "a"\n'
    )
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tui_mail.config.load import load_config\n"
        "from tui_mail.sync.runtime import Runtime\n"
        f"rt = Runtime(load_config(Path({str(config)!r})), Path({str(tmp_path / 'i.db')!r}))\n"
        "send = rt._backends['a'][1]\n"
        "early = sorted(m for m in sys.modules if m.startswith(('aiosmtplib.', 'email.')))\n"
        "import tui_mail.backends.smtp.backend as smtp\n"
        "assert type(send).__module__ == smtp.__name__, type(send)\n"
        "smtp.aiosmtplib.SMTP  # the first use loads it\n"
        "late = 'aiosmtplib.smtp' in sys.modules\n"
        "print(early, late)\n"
        "raise SystemExit(0 if not early and late else 1)\n"
    )
    _runs_clean(code)


def test_lazy_import_is_the_module_itself_and_missing_ones_fail_at_once() -> None:
    from tui_mail.core.lazy import lazy_import

    assert lazy_import("json") is sys.modules["json"]
    with pytest.raises(ModuleNotFoundError):
        lazy_import("tui_mail_no_such_module")
