from tui_mail.cli import run

run()
