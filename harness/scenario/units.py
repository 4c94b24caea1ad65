"""Durations (``500ms``, ``20s``, ``2m``, ``1h``, ``90d``) and latency bounds (``250`` or ``2x baseline``)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_FACTOR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*baseline\s*$", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}  # d: campaign schedules (every: 90d)


MAX_DURATION_S = 7 * 24 * 3600.0
"""No drill lasts a week; a longer duration is a typo (and would overflow what is built from it)."""

MAX_SCHEDULE_S = 5 * 366 * 24 * 3600.0
"""A campaign schedule (``every: 90d``) may span years, never more than five."""


def parse_duration(value: Any, max_s: float = MAX_DURATION_S) -> float:
    """Seconds from ``30s``-style text; plain numbers are seconds; at most ``max_s``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, got {value!r}")
    seconds: float | None = None
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected a duration like 30s, got {value!r} (negative)")
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    elif isinstance(value, str) and len(value) <= 40:
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds is None:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 40 else repr(value[:37] + "...")
        raise ValueError(f"expected a duration like 500ms, 30s or 2m, got {shown}")
    if not math.isfinite(seconds) or seconds > max_s:
        raise ValueError(f"expected a duration of at most {max_s / 86400:g} days")
    return seconds


def parse_schedule(value: Any) -> float:
    """A campaign's ``every``: a duration of up to five years (``90d``)."""
    return parse_duration(value, MAX_SCHEDULE_S)


def format_duration(seconds: float) -> str:
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]

ScheduleDuration = Annotated[
    float, BeforeValidator(parse_schedule), PlainSerializer(format_duration, return_type=str)
]


def parse_latency_bound(value: Any) -> tuple[float | None, float | None]:
    """``250`` -> (250.0, None); ``"2x baseline"`` -> (None, 2.0)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value):
        return float(value), None
    if isinstance(value, str):
        match = _FACTOR.match(value)
        if match and 0 < float(match.group(1)) < 1e6:
            return None, float(match.group(1))
        try:
            number = float(value)
        except ValueError:
            number = -1
        if number > 0 and math.isfinite(number):
            return number, None
    raise ValueError(f"expected milliseconds like 250 or a factor like '2x baseline', got {value!r}")
