"""How report figures are written for people: units, sensible precision, and "—" for missing.

The unit of a plain number comes from its name, as everywhere in drill: ``*_s`` seconds,
``*_ms`` milliseconds, ``*_hz`` hertz, ``*error_rate`` a ratio shown in percent, ``rps``
requests per second, ``*_requests``/``samples`` counts. Objective names such as
``rto_s[provider-down]`` are looked up by their leading identifier (``rto_s``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

MISSING = "—"

_LEADING_NAME = re.compile(r"[A-Za-z0-9_]+")


def base_name(name: str) -> str:
    """``rto_s[provider-down]`` -> ``rto_s``; the part of a name that carries its unit."""
    match = _LEADING_NAME.match(name)
    return match.group(0) if match else name


def is_missing(value: Any) -> bool:
    """None and NaN are missing; 0 is a measurement."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def seconds(value: float) -> str:
    """``0 s``, ``4.0 ms``, ``0.25 s``, ``8.75 s``, ``60.0 s``, ``125 s (2 min 5 s)``.

    Below 0.1 s (onset uncertainties, detection times) the figure is given in ms.
    """
    if value == 0:
        text = "0 s"
    elif abs(value) < 0.1:
        text = milliseconds(value * 1000)
    elif value < 10:
        text = f"{value:.2f} s"
    elif value < 100:
        text = f"{value:.1f} s"
    else:
        minutes, rest = divmod(round(value), 60)
        text = f"{value:.0f} s ({minutes} min {rest} s)"
    return text


def milliseconds(value: float) -> str:
    """``4.2 ms``, ``612 ms``, ``12,400 ms``."""
    return f"{value:.1f} ms" if value < 10 else f"{value:,.0f} ms"


def percent(ratio: float) -> str:
    """A ratio as percent: ``0 %``, ``0.35 %``, ``3.4 %``, ``100 %``."""
    pct = ratio * 100
    if pct == 0:
        return "0 %"
    if pct < 1:
        return f"{pct:.2f} %"
    if pct < 99.95:
        return f"{pct:.1f} %"
    return f"{pct:.0f} %"


def count(value: float) -> str:
    return f"{value:,.0f}"


def plain(value: Any) -> str:
    """A value with no known unit: booleans as yes/no, lists comma-joined, floats trimmed."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value) if value else "none"
    return str(value)


def quantity(name: str, value: Any) -> str:
    """Format ``value`` by the unit its ``name`` implies; :data:`MISSING` when missing.

    Strings pass through unchanged (a target such as ``2x baseline`` or a tier such as ``gpu``).
    """
    if is_missing(value):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return plain(value)
    key = base_name(name)
    if key.endswith("_ms"):
        return milliseconds(value)
    if key.endswith("_s"):
        return seconds(value)
    if key.endswith("_hz"):
        return f"{value:g} Hz"
    if key.endswith("error_rate") or key.endswith("_ratio") or key.endswith("completion") or key == "completion_rate":
        return percent(value)
    if key == "rps" or key.endswith("_rps"):
        return f"{value:,.1f} req/s"
    if key.endswith("amplification"):
        return f"{value:.2f}x"  # upstream calls per client request (docs/cost.md)
    if key.startswith("max_cost_per_1k") or key.startswith("cost_per_1k"):
        return f"{value:.4g} per 1k requests"
    if key.endswith("requests") or key in ("samples", "requests"):
        return count(value)
    return plain(value)


def utc_text(value: Any) -> str:
    """An ISO timestamp or epoch seconds -> ``2026-01-14 10:00:00.123 UTC``; raw text if unparsable."""
    if is_missing(value):
        return MISSING
    when: datetime
    if isinstance(value, (int, float)):
        when = datetime.fromtimestamp(value, tz=UTC)
    else:
        try:
            when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def parse_utc(value: Any) -> float | None:
    """An ISO timestamp (or epoch seconds) -> epoch seconds; None when unparsable."""
    if is_missing(value):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def byte_size(size: int) -> str:
    """``812 B``, ``14.2 KiB``, ``3.1 MiB``."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def target_text(name: str, target: Any, resolved: float | None = None) -> str:
    """An objective's target; a relative one shows what it resolved to: ``2x baseline (236 ms)``.

    A target that already states its resolution (``2x baseline (= 236.0 ms)``) is left alone.
    """
    text = quantity(name, target)
    if isinstance(target, str) and resolved is not None and not re.search(r"\d\s*ms", target):
        text += f" ({quantity(name, resolved)})"
    return text
