"""Gemma Desk's Qt-free runtime.

No telemetry: huggingface_hub (used only for explicit downloads) reads this once, when it is first
imported, and otherwise adds machine details to its requests' user agent; every runtime module is
imported through this package first, so it is always set in time.
"""

import os

os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
