"""Local search, threading and virtual folders (issue 7).

Kept import-light on purpose: `config.load` imports `search.query` to check
saved searches and `store.index` imports `search.threads`, so this package
file must not pull in either of them (or anything heavy) itself.
"""
