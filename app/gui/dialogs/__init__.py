"""Modal dialogs, behind plain callables so tests (and other front ends) can replace them."""
