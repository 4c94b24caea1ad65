"""Building blocks every scenario model shares: the strict base model and text/URL checks.

Kept apart from ``model.py`` so the fault specs (``fault_specs.py``) and the scenario model can
both use them without importing each other.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are errors (a typo must not be ignored), and so are NaN and infinity."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


def control_chars(text: str, allow_tab: bool = False) -> bool:
    """True when ``text`` holds a control character (tab allowed on request)."""
    return any((ord(c) < 0x20 and not (allow_tab and c == "\t")) or ord(c) == 0x7F for c in text)


def check_url(value: str, example: str) -> str:
    """An http(s) URL with a host and, when given, a port in 1..65535; no spaces or control
    characters (they would split an HTTP request line)."""
    if len(value) > 2048 or control_chars(value) or " " in value:
        raise ValueError(f"expected an http:// URL like {example} (no spaces or control characters)")
    if not re.match(r"^https?://[^/]+", value):
        raise ValueError(f"expected an http:// URL like {example}, got {value!r}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(f"expected a port in 1..65535 in {value!r}") from None
    if not parts.hostname:
        raise ValueError(f"expected a host in {value!r}")
    if port == 0:
        raise ValueError(f"expected a port in 1..65535 in {value!r}")
    return value
