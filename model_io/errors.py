"""User-facing error types shared by the runtime, the CLI and the GUI.

Every failure a user can cause (bad file, bad argument, missing model) is raised
as a subclass of :class:`GemmaDeskError` with a one-line, specific message; the
CLI maps the class to an exit code and the GUI shows the message.
"""

from __future__ import annotations


class GemmaDeskError(Exception):
    """Base class for errors whose message is meant for the user."""

    exit_code = 1


class InputError(GemmaDeskError):
    """Bad arguments or unusable input data (exit code 2)."""

    exit_code = 2


class ModelError(GemmaDeskError):
    """A model file is missing, corrupt, unsupported or failed to load (exit code 3)."""

    exit_code = 3


class ModelFileError(ModelError):
    """The GGUF file itself is missing, truncated or malformed."""


class UnsupportedModelError(ModelError):
    """The GGUF is well-formed but not something this app can run as asked."""


class EngineFailure(GemmaDeskError):
    """llama.cpp failed while evaluating a request (exit code 3)."""

    exit_code = 3


class DiskFullError(GemmaDeskError):
    """The disk (or quota) filled up while writing; nothing half-written is left (exit code 3)."""

    exit_code = 3
