"""``health.jsonl``: the instrument's own trouble, one JSON object a line, appended as it is seen.

    {"kind": "host_stall", "start": 1733490001.25, "end": 1733490001.96, "magnitude_s": 0.71,
     "detail": "host stalled 0.71 s", "partial": false}

``kind`` is one of :data:`harness.measure.model.TROUBLE_KINDS`; ``start``/``end`` are epoch seconds
on the samples' wall clock. Writers are the watchdog (a child process: this module imports only
the standard library at the top), the engine and the sample writers. Each line is written with a
single ``write`` and flushed, so a crash leaves whole lines; a torn last line is skipped on read.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from harness.rundir import HEALTH_FILE

if TYPE_CHECKING:
    from harness.measure.model import HarnessTrouble


def health_path(run_dir: Path) -> Path:
    return Path(run_dir) / HEALTH_FILE


def append_trouble(
    run_dir: Path, kind: str, start_s: float, end_s: float, magnitude_s: float, detail: str, partial: bool = False
) -> None:
    """Append one trouble record (opened, written whole, flushed and closed each time: rare events)."""
    record = {"kind": kind, "start": start_s, "end": end_s, "magnitude_s": magnitude_s, "detail": detail,
              "partial": partial}
    line = json.dumps(record, separators=(",", ":")) + "\n"
    fd = os.open(health_path(run_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def read_health(run_dir: Path) -> list[HarnessTrouble]:
    """Every whole record, in file order; an absent file is an empty list (a run before this file
    existed, or a run with no trouble). Lines that are not a whole record are skipped."""
    from harness.measure.model import HarnessTrouble

    path = health_path(run_dir)
    if not path.exists():
        return []
    troubles: list[HarnessTrouble] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
            trouble = HarnessTrouble(
                kind=str(record["kind"]),
                start_s=float(record["start"]),
                end_s=float(record["end"]),
                magnitude_s=float(record["magnitude_s"]),
                detail=str(record["detail"]),
                partial=bool(record.get("partial", False)),
            )
        except (ValueError, KeyError, TypeError):
            continue
        if math.isfinite(trouble.start_s) and math.isfinite(trouble.end_s):
            troubles.append(trouble)
    return troubles
