"""`tui-mail setup`: find the servers for an address, prove them, write the account."""
