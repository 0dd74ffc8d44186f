"""The built-in demo account: a generated, deterministic sample mailbox."""
