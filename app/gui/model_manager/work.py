"""What the model manager's background jobs do, as plain functions of (report, cancel).

Each ``*_work`` returns a :data:`Work` callable that runs on a worker thread, reports
:class:`~app.gui.models_state.JobProgress`, honours ``cancel`` by raising
:class:`~model_io.download.DownloadCancelled`, and returns an :class:`Arrival` describing the file it
produced (validated with :func:`model_io.model_info.inspect_model`, so nothing unusable is offered).
Qt-free, so each is testable on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.gui.models_state import JobProgress
from model_io.catalog import FileSource
from model_io.model_info import ModelInfo, inspect_model

if TYPE_CHECKING:
    from model_io.download import DownloadProgress
    from model_io.mmproj_build import BuildProgress

Report = Callable[[JobProgress], None]
Work = Callable[[Report, threading.Event], "Arrival"]


@dataclass(frozen=True)
class Arrival:
    """A file a job put in place, and what it is."""

    path: Path
    info: ModelInfo
    transferred: int = 0  # bytes fetched over the network by this job
    resumed_from: int = 0  # bytes reused from an earlier, interrupted attempt


def download_work(source: FileSource, folder: Path, token: str | None, endpoint: str | None) -> Work:
    """Resumable, verified download of one hub file (see :func:`model_io.download.download_model`)."""

    def run(report: Report, cancel: threading.Event) -> Arrival:
        from model_io.download import download_model  # huggingface_hub: imported on the worker thread

        def relay(progress: DownloadProgress) -> None:
            report(
                JobProgress(
                    progress.phase, progress.done, progress.total, progress.bytes_per_s, progress.eta_s
                )
            )

        result = download_model(
            source, dest_dir=folder, token=token, endpoint=endpoint, progress=relay, cancel=cancel
        )
        info = inspect_model(result.path)
        return Arrival(result.path, info, result.transferred, result.resumed_from)

    return run


def build_work(
    repo_id: str, out_path: Path, token: str | None, endpoint: str | None, revision: str = "main"
) -> Work:
    """Build the audio + vision projector from an official checkpoint (``model_io.mmproj_build``)."""

    def run(report: Report, cancel: threading.Event) -> Arrival:
        from model_io.mmproj_build import build_mmproj

        def relay(progress: BuildProgress) -> None:
            p = progress
            report(JobProgress(p.stage, p.done_bytes, p.total_bytes, p.bytes_per_s, p.eta_s))

        result = build_mmproj(
            repo_id,
            out_path,
            token=token,
            endpoint=endpoint,
            revision=revision,
            progress=relay,
            cancel=cancel,
        )
        return Arrival(Path(result.path), inspect_model(result.path), int(result.fetched_bytes))

    return run


def import_work(source: Path, folder: Path) -> Work:
    """Validate a local GGUF, then copy it into the models folder (a cancelled copy leaves nothing).

    :func:`~model_io.discovery.import_model` inspects the file before copying a byte, so a corrupt
    file or an architecture the bundled llama.cpp does not know is refused with its specific message.
    """

    def run(report: Report, cancel: threading.Event) -> Arrival:
        from model_io.discovery import import_model
        from model_io.download import DownloadCancelled, partial_path

        def copied(done: int, total: int) -> None:
            if cancel.is_set():
                raise DownloadCancelled(f"import of {source.name} cancelled; nothing was imported")
            report(JobProgress("copying", done, total))

        target = folder / (source.name if source.name.lower().endswith(".gguf") else f"{source.name}.gguf")
        try:
            result = import_model(source, dest_dir=folder, progress=copied)
        except DownloadCancelled:
            partial_path(target).unlink(missing_ok=True)
            raise
        return Arrival(result.path, result.info)

    return run
