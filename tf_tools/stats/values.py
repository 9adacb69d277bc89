"""Numbers read from records strictly, and values quoted in error messages.

A JSON ``true`` is not the integer 1 here, and ``"3"`` is not a number: a field that holds
either is treated as missing, so a hand-edited record cannot slip a string into a sum.
"""

from __future__ import annotations

import math
from typing import Any

from tf_tools.schema import is_int


def integer(value: Any) -> int | None:
    """A JSON integer (not a boolean), else None."""
    return value if is_int(value) else None


def real(value: Any) -> float | None:
    """A JSON number as a finite float (not a boolean, not a numeric string), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def shown(value: Any, limit: int = 60) -> str:
    """A value quoted in an error message, cut short (it may be a whole answer)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
