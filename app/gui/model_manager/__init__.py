"""The model manager: catalog downloads, projector builds, imports and models already on disk.

Pieces: :mod:`app.gui.models_state` (Qt-free library state), :mod:`.work` (Qt-free job bodies),
:mod:`.jobs` (one job on a worker thread), :mod:`.controller`, the section widgets and
:mod:`.page`, and :mod:`.manager`, which puts them together for the main window.
"""
