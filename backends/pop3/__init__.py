"""The pop3 backend."""
