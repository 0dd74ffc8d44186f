"""The built-in demo account: a real Maildir under the data dir, made once."""

from __future__ import annotations

from pathlib import Path

from tui_mail import paths
from tui_mail.config.schema import AccountConfig, AppConfig, EndpointConfig, UiConfig
from tui_mail.demo.generate import DEMO_EMAIL, DEMO_NAME, generate_demo
from tui_mail.store.account_store import AccountStore
from tui_mail.store.index import MailIndex

DEMO_ACCOUNT = "demo"
# Written last: its presence means every message before it is durable.
MARKER = ".tui-mail-demo-complete"


def demo_config(root: Path | None = None, ui: UiConfig | None = None) -> AppConfig:
    root = root or paths.demo_root()
    account = AccountConfig(
        name=DEMO_ACCOUNT,
        email=DEMO_EMAIL,
        display_name=DEMO_NAME,
        receive=EndpointConfig(
            backend="maildir", path=root, key_path=f"accounts.{DEMO_ACCOUNT}.receive"
        ),
        send=EndpointConfig(backend="local", key_path=f"accounts.{DEMO_ACCOUNT}.send"),
        signature="Sent from the tui-mail demo",
    )
    return AppConfig(path=None, accounts={DEMO_ACCOUNT: account}, ui=ui or UiConfig())


def ensure_demo(ui: UiConfig | None = None) -> AppConfig:
    """Create the demo Maildir and its index rows if they are not there yet."""
    root = paths.demo_root()
    index = MailIndex.open(paths.index_path())
    try:
        store = AccountStore(DEMO_ACCOUNT, root, index)
        if not (root / MARKER).exists():
            # A half-made demo (killed midway) is started again from nothing.
            _remove_tree(root)
            store = AccountStore(DEMO_ACCOUNT, root, index)
            index.clear_account(DEMO_ACCOUNT)
            by_folder: dict[str, list[tuple[bytes, str, None]]] = {}
            for message in generate_demo():
                by_folder.setdefault(message.folder, []).append((message.raw, message.flags, None))
            for folder, messages in by_folder.items():
                store.deliver_many(folder, messages)
            # The demo is small: make every body searchable before the first screen.
            for _ in range(100):
                if not store.fill_fts(1000):
                    break
            (root / MARKER).touch()
        else:
            store.rescan()
    finally:
        index.close()
    return demo_config(root, ui)


def _remove_tree(root: Path) -> None:
    import shutil

    if root.exists():
        shutil.rmtree(root)
