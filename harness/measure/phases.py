"""Per-phase request statistics: rate, error rate and latency percentiles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.journal import utc_iso
from harness.measure.model import Phases

PERCENTILES = (50.0, 95.0, 99.0)


@dataclass(frozen=True)
class PhaseStats:
    """One phase. Requests are those whose start falls in ``[start, end)``.

    ``error_rate`` is the share of requests with ok == 0 (no response, or a non-2xx status).
    Latency percentiles are over *all* requests of the phase, failed ones included (a timeout
    counts with the time it took to give up), with linear interpolation between ranks (numpy's
    default). Rates and percentiles are None when the phase has no requests.
    """

    name: str
    start: float
    end: float
    requests: int
    rps: float | None
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": utc_iso(self.start),
            "end": utc_iso(self.end),
            "requests": self.requests,
            "rps": _round(self.rps, 3),
            "error_rate": _round(self.error_rate, 6),
            "p50_ms": _round(self.p50_ms, 3),
            "p95_ms": _round(self.p95_ms, 3),
            "p99_ms": _round(self.p99_ms, 3),
        }


def phase_slice(starts_s: np.ndarray, start: float, end: float) -> slice:
    """The rows of start-sorted ``starts_s`` whose start lies in ``[start, end)``."""
    lo, hi = np.searchsorted(starts_s, [start, end], side="left")
    return slice(int(lo), int(hi))


def stats_for(samples: pd.DataFrame, name: str, start: float, end: float) -> PhaseStats:
    """:class:`PhaseStats` of one interval; ``samples`` must be sorted by ``start``."""
    rows = phase_slice(samples["start"].to_numpy(), start, end)
    ok = samples["ok"].to_numpy()[rows]
    latency_ms = samples["latency_ms"].to_numpy()[rows]
    n = int(ok.size)
    duration_s = end - start
    if n == 0:
        return PhaseStats(name, start, end, 0, 0.0 if duration_s > 0 else None, None, None, None, None)
    p50, p95, p99 = (float(v) for v in np.percentile(latency_ms, PERCENTILES))
    return PhaseStats(
        name=name,
        start=start,
        end=end,
        requests=n,
        rps=n / duration_s if duration_s > 0 else None,
        error_rate=float(np.count_nonzero(ok != 1)) / n,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
    )


def phase_stats(samples: pd.DataFrame, phases: Phases) -> dict[str, PhaseStats]:
    """:class:`PhaseStats` for every phase in ``phases``, in the given order."""
    return {name: stats_for(samples, name, start, end) for name, (start, end) in phases.items()}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
