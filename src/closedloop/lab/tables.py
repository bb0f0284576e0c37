"""Numbers as the lab's tables show them (Prefect artifacts, reports): 4 significant digits."""
from __future__ import annotations

import math
from typing import Any


def significant(value: Any, digits: int = 4) -> Any:
    """A float rounded to ``digits`` significant digits (NaN → None); anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, float):
        return value
    if math.isnan(value):
        return None
    return float(f"{value:.{digits}g}")
