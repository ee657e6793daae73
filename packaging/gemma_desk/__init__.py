"""Briefcase's app module: Briefcase starts ``python -m <app module>``, and the app is ``gemma-desk``.

The code lives in ``app`` and ``model_io``; this package only gives the installed app the module
name Briefcase derives from the app name, so ``/usr/bin/gemma-desk`` (or the macOS/Windows
launcher) behaves exactly like the ``gemma-desk`` command: no arguments opens the window.
"""
