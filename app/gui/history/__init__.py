"""Saved conversations: the SQLite store, its migrations and the exporters."""
