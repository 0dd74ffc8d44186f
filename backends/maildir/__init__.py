"""The maildir backend."""
