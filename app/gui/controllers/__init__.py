"""One controller per panel: they hold behaviour, the widgets only show state and emit intents."""
