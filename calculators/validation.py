"""Input checks shared by every calculator: each failure is a ValueError that names the field.

>>> require_finite("requests_per_day", 10.0, low=0)
10.0
>>> require_finite("requests_per_day", float("nan"), low=0)
Traceback (most recent call last):
...
ValueError: requests_per_day must be a finite number, got nan
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from numbers import Real

from calculators.filelimits import short as _short

__all__ = ["require_finite", "require_int", "require_fraction", "relabel"]


def require_finite(
    field: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
) -> float:
    """Return ``value`` as float if it is a finite real in [low, high]; else raise ValueError naming ``field``.

    >>> require_finite("x", 0, low=0, low_inclusive=False)
    Traceback (most recent call last):
    ...
    ValueError: x must be > 0, got 0
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{field} must be a number, got {_short(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond a float's range (10**400): too large for any field
        raise ValueError(f"{field} must be a finite number, got {_short(value)}") from None
    if not math.isfinite(v):
        raise ValueError(f"{field} must be a finite number, got {v}")
    if low is not None:
        if low_inclusive and v < low:
            raise ValueError(f"{field} must be >= {low:g}, got {v:g}")
        if not low_inclusive and v <= low:
            raise ValueError(f"{field} must be > {low:g}, got {v:g}")
    if high is not None and v > high:
        raise ValueError(f"{field} must be <= {high:g}, got {v:g}")
    return v


def require_int(field: str, value: object, *, low: int = 0, high: int | None = None) -> int:
    """Return ``value`` as int if it is a whole number in [low, high].

    >>> require_int("min_replicas", 2.0, low=1)
    2
    >>> require_int("min_replicas", 1.5, low=1)
    Traceback (most recent call last):
    ...
    ValueError: min_replicas must be a whole number, got 1.5
    """
    v = require_finite(field, value, low=low, high=high)
    if v != int(v):
        raise ValueError(f"{field} must be a whole number, got {v:g}")
    return int(v)


def require_fraction(field: str, value: object) -> float:
    """A share between 0 and 1 inclusive.

    >>> require_fraction("cached_input_fraction", 1.2)
    Traceback (most recent call last):
    ...
    ValueError: cached_input_fraction must be <= 1, got 1.2
    """
    return require_finite(field, value, low=0.0, high=1.0)


_OPERATORS = ((">=", "at least"), ("<=", "at most"), (">", "more than"), ("<", "less than"))


def relabel(message: str, labels: Mapping[str, str]) -> str:
    """``message`` (a ValueError of these checks) for a person: each field name in ``labels`` (a dotted path
    such as ``traffic.output_tokens``, or a bare one such as ``max_model_len``) becomes its widget label, and
    ``must be >= x`` becomes ``must be at least x``. Longest names first, whole words only; the validators
    keep naming code paths (the CLI and the files use them), the UI shows labels.

    >>> labels = {"traffic.output_tokens": "Output tokens per request", "max_model_len": "Max model length"}
    >>> relabel("traffic.output_tokens must be >= 0.01, got 0", labels)
    'Output tokens per request must be at least 0.01, got 0'
    >>> relabel("max_model_len must be <= 131072, got 200000", labels)
    'Max model length must be at most 131072, got 200000'
    >>> relabel("mbu must be > 0, got 0", {})
    'mbu must be more than 0, got 0'
    """
    out = message
    names = sorted(labels, key=len, reverse=True)
    if names:
        pattern = re.compile(r"(?<![\w.])(" + "|".join(re.escape(n) for n in names) + r")(?![\w])")
        out = pattern.sub(lambda m: labels[m.group(1)], out)
    for op, words in _OPERATORS:
        out = re.sub(rf"\bmust be {re.escape(op)} ", f"must be {words} ", out)
    return out
