"""Protocol backends (installed as `tui_mail.backends`). No Textual here."""
