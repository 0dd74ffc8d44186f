"""The imap backend."""
