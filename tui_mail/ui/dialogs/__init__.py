"""Modal dialogs: folder picker, text prompt, confirmation, attachments."""
