"""Translatable wording shared by the model manager's widgets: sizes, speeds, time left, RAM fit, stages."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication

from app.gui.models_state import JobProgress, RamFit
from app.gui.widgets.status_panel import human_bytes


def duration(seconds: float) -> str:
    """Rounded the way people say it: "45 s", "3 min", "1 h 20 min"."""
    whole = max(0, round(seconds))
    if whole < 60:
        return QCoreApplication.translate("ModelManagerText", "%1 s").replace("%1", str(whole))
    minutes = round(whole / 60)
    if minutes < 60:
        return QCoreApplication.translate("ModelManagerText", "%1 min").replace("%1", str(minutes))
    return (
        QCoreApplication.translate("ModelManagerText", "%1 h %2 min")
        .replace("%1", str(minutes // 60))
        .replace("%2", str(minutes % 60))
    )


def stage_name(stage: str) -> str:
    names = {
        "downloading": QCoreApplication.translate("ModelManagerText", "Downloading"),
        "checking": QCoreApplication.translate("ModelManagerText", "Checking the bytes already here"),
        "copying": QCoreApplication.translate("ModelManagerText", "Copying"),
        "header": QCoreApplication.translate("ModelManagerText", "Reading the checkpoint's index"),
        "fetch": QCoreApplication.translate("ModelManagerText", "Fetching the image and speech towers"),
        "write": QCoreApplication.translate("ModelManagerText", "Writing the projector"),
        "verify": QCoreApplication.translate("ModelManagerText", "Verifying the projector"),
    }
    return names.get(stage, stage.capitalize())


def progress_detail(progress: JobProgress) -> str:
    """ "1.2 GiB of 2.8 GiB · 25.0 MiB/s · about 1 min left"."""
    parts = [
        QCoreApplication.translate("ModelManagerText", "%1 of %2")
        .replace("%1", human_bytes(progress.done))
        .replace("%2", human_bytes(progress.total))
    ]
    if progress.bytes_per_s > 0:
        parts.append(
            QCoreApplication.translate("ModelManagerText", "%1/s").replace(
                "%1", human_bytes(int(progress.bytes_per_s))
            )
        )
    if progress.eta_s is not None and progress.done < progress.total:
        parts.append(
            QCoreApplication.translate("ModelManagerText", "about %1 left").replace(
                "%1", duration(progress.eta_s)
            )
        )
    return " · ".join(parts)


def fit_text(fit: RamFit) -> str:
    return {
        RamFit.FITS: QCoreApplication.translate("ModelManagerText", "fits this computer"),
        RamFit.TIGHT: QCoreApplication.translate("ModelManagerText", "tight: close other programs"),
        RamFit.TOO_LARGE: QCoreApplication.translate("ModelManagerText", "too large for this computer"),
        RamFit.UNKNOWN: QCoreApplication.translate("ModelManagerText", "unknown"),
    }[fit]


def size_text(size: int | None, estimate: bool = False) -> str:
    if size is None:
        return QCoreApplication.translate("ModelManagerText", "unknown")
    return ("≈ " if estimate else "") + human_bytes(size)
