"""Build a Gemma 3n projector (mmproj GGUF with vision AND audio) from Google's safetensors checkpoint.

No public Gemma 3n mmproj carries a working audio tower, so Gemma Desk makes one from the
official ``google/gemma-3n-E2B-it`` / ``-E4B-it`` checkpoint (gated: the user's token).  Only the
vision tower, the audio tower and their multimodal embedders are fetched, with HTTP range
requests located through each shard's safetensors header; the text model (most of the
checkpoint) is never transferred.  Tensor names, storage types and metadata are those of the
project's synthetic writer (``model_io.synth``), which mirrors llama.cpp's converter with
``--outtype f16`` plus the SSCP norms the converter fails to map.

The build resumes: fetched tensors are converted straight into their final place in
``OUT.partial`` and recorded in a journal, so a re-run after an interruption or a cancel
fetches only what is missing.  The finished file is verified and renamed into place, so a
half-built file never looks complete.

This module only defines the public API; the work lives in the submodules and is imported on
first use, so importing it stays cheap for the GUI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Stage = Literal["header", "fetch", "write", "verify"]


@dataclass(frozen=True)
class BuildProgress:
    """One progress report, delivered on the thread that called :func:`build_mmproj`.

    ``header``: reading the repository listing, config and safetensors headers (``done_bytes`` so
    far, ``total_bytes`` 0 = unknown); ``fetch``: tensor bytes fetched, converted and written,
    including any kept from an earlier run; ``write``: finishing the file; ``verify``: bytes of the
    finished file read back and checked.  Reports come at most ten times a second per stage.
    """

    stage: str  # one of Stage
    done_bytes: int
    total_bytes: int
    bytes_per_s: float
    eta_s: float | None

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass(frozen=True)
class BuildResult:
    path: Path
    size_bytes: int
    fetched_bytes: int  # bytes transferred this run (less on resume)
    has_vision: bool
    has_audio: bool


def build_mmproj(
    repo_id: str,
    out_path: Path,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    revision: str = "main",
    progress: Callable[[BuildProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> BuildResult:
    """Build ``out_path`` from the Gemma 3n checkpoint ``repo_id`` on the hub (``endpoint`` or HF_ENDPOINT).

    Cancel raises :class:`model_io.download.DownloadCancelled` (the partial build is kept for a
    re-run); everything else a user can cause raises a :class:`model_io.errors.GemmaDeskError`:
    AccessDeniedError (gated repo, no or bad token), InputError (unknown repo or revision, output
    taken), UnsupportedModelError (not a Gemma 3n checkpoint), ModelFileError (missing or malformed
    tensors, corrupt responses), DiskSpaceError, DownloadError (network, after retries).
    """
    from model_io.mmproj_build.builder import run_build

    return run_build(
        repo_id,
        Path(out_path),
        token=token,
        endpoint=endpoint,
        revision=revision,
        progress=progress,
        cancel=cancel,
    )


def default_output_name(repo_id: str) -> str:
    """``google/gemma-3n-E2B-it`` → ``gemma-3n-E2B-it-mmproj-F16.gguf`` (found beside that model)."""
    return f"{repo_id.rstrip('/').rsplit('/', 1)[-1]}-mmproj-F16.gguf"


__all__ = ["BuildProgress", "BuildResult", "Stage", "build_mmproj", "default_output_name"]
