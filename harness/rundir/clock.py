"""``locust-workers.json``: the distributed load's clocks, read back for results.

When Locust runs as a master with workers (processes that each stamp their own samples), the
master records each worker's clock offset against its own and the uncertainty of that offset
(rtt / 2); every figure's resolution then carries the largest (``load_clock`` in results.json).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.rundir import LOAD_WORKERS_FILE
from harness.rundir.journal import DamagedFileError

__all__ = ["LoadClock", "load_clock"]


@dataclass(frozen=True)
class LoadClock:
    """Each worker's offset against the master, its uncertainty (rtt / 2) and row count;
    ``uncertainty_s`` is the largest, which every figure's resolution carries."""

    workers: dict[str, dict[str, object]]
    uncertainty_s: float

    def to_dict(self) -> dict[str, object]:
        return {"file": LOAD_WORKERS_FILE, "uncertainty_s": round(self.uncertainty_s, 6), "workers": self.workers}


def load_clock(run_dir: Path) -> LoadClock | None:
    """The run's :class:`LoadClock`; None when its Locust ran in one process. A damaged file is
    bad input (exit 2) naming it, like every other file of a run directory."""
    path = Path(run_dir) / LOAD_WORKERS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        workers = {str(k): dict(v) for k, v in data["workers"].items()}
        uncertainty_s = max((float(w.get("uncertainty_s") or 0.0) for w in workers.values()), default=0.0)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DamagedFileError(f"{path}: cannot be read as the load workers' clocks ({exc})") from None
    return LoadClock(workers, uncertainty_s)
