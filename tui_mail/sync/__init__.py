"""Account workers: one asyncio task per account, shared by the TUI and the CLI."""
