"""A spin box for learning rates: scientific notation, steps by factors, no rounding to zero."""

from __future__ import annotations

import math

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox, QWidget

# The arrows move through 1, 2, 5, 10, ... (the grid learning rates are tried on); typing takes
# any number in the range.
_STEPS = (1.0, 2.0, 5.0)


def format_rate(value: float) -> str:
    """1.4e-06 stays 1.4e-06 (a six-decimal box showed 0.000001); 0.001 reads 1e-03."""
    text = f"{value:.2g}"
    if "e" not in text:
        text = f"{value:.1e}".replace(".0e", "e")
    return text


class RateSpinBox(QDoubleSpinBox):
    def __init__(self, parent: QWidget | None = None, low: float = 1e-8, high: float = 10.0) -> None:
        super().__init__(parent)
        self.setDecimals(12)  # the stored value is never rounded; the text shows two digits
        self.setRange(low, high)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt's name)
        return format_rate(value)

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        stripped = text.strip()
        try:
            value = float(stripped)
        except ValueError:
            # a number being typed: "3e", "3e-", "1.", "-"
            ok = stripped == "" or all(c in "0123456789.eE+-" for c in stripped)
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid), text, pos
        if self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802
        value = self.value()
        exponent = math.floor(math.log10(value))
        mantissa = value / 10**exponent
        # the index of the grid point at or below the value, then move along the grid
        index = max(i for i, m in enumerate(_STEPS) if m <= mantissa * (1 + 1e-9))
        on_grid = abs(mantissa - _STEPS[index]) < 1e-6 * mantissa
        position = exponent * len(_STEPS) + index + (0 if on_grid or steps > 0 else 1)
        position += steps
        decade, i = divmod(position, len(_STEPS))
        self.setValue(min(max(_STEPS[i] * 10**decade, self.minimum()), self.maximum()))
