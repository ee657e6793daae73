"""A spin box that shows words for a few values ("automatic", "all") and reads them back when typed.

QSpinBox's own ``specialValueText`` names only the minimum; GPU layers need two named values.
"""

from __future__ import annotations

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QSpinBox, QWidget


class LabelledSpinBox(QSpinBox):
    """An integer spin box where some values are shown (and may be typed) as words."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._labels: dict[int, str] = {}

    def set_labels(self, labels: dict[int, str]) -> None:
        """Name these values (for a language change too); the shown text follows at once."""
        self._labels = dict(labels)
        self.lineEdit().setText(self.textFromValue(self.value()))

    def textFromValue(self, value: int) -> str:
        return self._labels.get(value, super().textFromValue(value))

    def valueFromText(self, text: str) -> int:
        named = self._named(text)
        return named if named is not None else super().valueFromText(text)

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        typed = text.strip().casefold()
        if self._named(text) is not None:
            return QValidator.State.Acceptable, text, pos
        if typed and any(label.casefold().startswith(typed) for label in self._labels.values()):
            return QValidator.State.Intermediate, text, pos
        return super().validate(text, pos)

    def _named(self, text: str) -> int | None:
        typed = text.strip().casefold()
        return next((value for value, label in self._labels.items() if label.casefold() == typed), None)
