"""Pure domain types shared by the UI, the workers, the store and the backends.

Nothing in this package does I/O or imports Textual or a protocol library.
"""
