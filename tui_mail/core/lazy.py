"""A module loaded at its first use instead of at import (importlib's LazyLoader).

For libraries that most runs never call: `tui-mail sync` builds every account's
send backend, but sends only when the outbox has mail, so aiosmtplib (~15 ms to
import) waits for the first message.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """`name` as `import name` gives it, except that its code runs at the first
    attribute access. ModuleNotFoundError at once if it is not installed.

    That first access should come from one thread (on 3.11 a second one could see
    the module half-loaded): the SMTP backend's all come from the event loop.
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
