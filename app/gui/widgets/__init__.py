"""Passive widgets: they show state and emit intent signals; controllers decide what happens."""
