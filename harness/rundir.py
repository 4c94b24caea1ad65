"""The run directory's files that several rooms share, and their readers.

``stack-events.json`` is the stack's own routing-event log (``stack.events_url``), fetched at the
end of a run: ``{"url": ..., "fetched_at": epoch s, "events": [{"ts", "event", ...}, ...]}``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError

STACK_EVENTS_FILE = "stack-events.json"


def write_stack_events(run_dir: Path, url: str, events: list[Any]) -> Path:
    """Write the stack's event log atomically into the run directory."""
    path = Path(run_dir) / STACK_EVENTS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url, "fetched_at": time.time(), "events": events}, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_stack_events(run_dir: Path) -> list[dict[str, Any]] | None:
    """The events with a numeric ``ts`` and a text ``event`` (others are skipped), or None when
    the run kept no event log. A damaged file is bad input, named with its path."""
    path = Path(run_dir) / STACK_EVENTS_FILE
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ScenarioError(f"{path}: not a readable stack event log ({exc})") from None
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list):
        raise ScenarioError(f"{path}: expected an object with an 'events' list")
    return [
        e for e in events
        if isinstance(e, dict) and isinstance(e.get("event"), str)
        and isinstance(e.get("ts"), (int, float)) and not isinstance(e.get("ts"), bool) and math.isfinite(e["ts"])
    ]
