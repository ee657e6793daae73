"""Gemma Desk application layer: command line now, Qt window later (Qt is imported lazily)."""
