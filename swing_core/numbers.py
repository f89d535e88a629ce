"""Small number rules shared by every layer (prompts, charts, priors)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite_or_none"]


def finite_or_none(value: Any) -> float | None:
    """``value`` as a finite float, else None (None, NaN, ±inf and non-numbers alike)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
