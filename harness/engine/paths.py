"""Where a run writes: a new run directory's name, and a traceback saved for a bug report."""

from __future__ import annotations

import secrets
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path


def new_run_dir(scenario_name: str, reports_dir: Path = Path("reports")) -> Path:
    """``reports/<scenario>/<UTC timestamp>-<6 hex>``: sortable by time, unique per run."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return reports_dir / scenario_name / f"{stamp}-{secrets.token_hex(3)}"


def tempfile_dir() -> str:
    """Where a stack opened only to be looked at may write its (empty) logs."""
    return tempfile.gettempdir()


def write_traceback(run_dir: Path, exc: BaseException) -> Path:
    """Save ``exc``'s traceback as ``RUN_DIR/traceback.txt`` (for a bug report) and return the path."""
    path = Path(run_dir) / "traceback.txt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except OSError:
        pass
    return path
