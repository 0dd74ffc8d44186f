"""Composing mail: building messages, replies and forwards, and the editable draft text.

Pure standard library (`email`), no I/O besides reading attachment files, no Textual:
the compose screen, the worker and `tui-mail send` all use it. Import the
submodule you need (build, headers_text, reply): `email` costs ~10 ms to import,
which `tui-mail sync` should not pay.
"""
