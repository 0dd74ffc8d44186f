"""The smtp backend."""
