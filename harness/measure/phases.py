"""Per-phase request statistics: rate, error rate and latency percentiles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.measure.goodness import constant_rate_rows
from harness.measure.model import Phases

PERCENTILES = (50.0, 95.0, 99.0)


@dataclass(frozen=True)
class ClosedLoop:
    """The Locust users' own figures in a window: throughput only, never used for a verdict."""

    requests: int
    rps: float | None
    error_rate: float | None
    p95_ms: float | None
    note: str = "Locust users (closed loop): throughput only, not used for verdicts"


@dataclass(frozen=True)
class PhaseStats:
    """One phase (or any window). Requests are those whose start falls in ``[start, end)``.

    ``requests`` and ``rps`` count every request of every stream: throughput. ``error_rate``
    (share with ok == 0) and the latency percentiles come from the **constant-rate** probe
    stream (``stream`` = ``probe``): its requests are spread evenly over time whatever the stack
    does, while closed-loop users slow down with the stack and hide a slow period (coordinated
    omission). Percentiles are over *successful* requests only (a fast failure is no evidence of
    speed), with linear interpolation between ranks (numpy's default); ``latency_samples`` says
    how many. Without probe requests in the window everything falls back to all requests
    (``stream`` = ``all``). ``closed_loop`` keeps the Locust users' own figures, labelled as
    such. Rates and percentiles are None when there is nothing to compute them from.
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
    stream: str = "probe"
    stream_requests: int = 0
    latency_samples: int = 0
    closed_loop: ClosedLoop | None = None


def phase_slice(starts_s: np.ndarray, start: float, end: float) -> slice:
    """The rows of start-sorted ``starts_s`` whose start lies in ``[start, end)``."""
    lo, hi = np.searchsorted(starts_s, [start, end], side="left")
    return slice(int(lo), int(hi))


def stats_for(samples: pd.DataFrame, name: str, start: float, end: float) -> PhaseStats:
    """:class:`PhaseStats` of one interval; ``samples`` must be sorted by ``start``."""
    rows = phase_slice(samples["start"].to_numpy(), start, end)
    ok = samples["ok"].to_numpy()[rows]
    latency_ms = samples["latency_ms"].to_numpy()[rows]
    constant = constant_rate_rows(samples)[rows]
    n = int(ok.size)
    duration_s = end - start
    rps = n / duration_s if duration_s > 0 else None
    stream = "probe" if constant.any() else "all"
    chosen = constant if stream == "probe" else np.ones(n, dtype=bool)
    chosen_ok = ok[chosen] == 1
    stream_n = int(chosen.sum())
    successes = latency_ms[chosen][chosen_ok]
    p50: float | None
    p95: float | None
    p99: float | None
    if successes.size:
        p50, p95, p99 = (float(v) for v in np.percentile(successes, PERCENTILES))
    else:
        p50 = p95 = p99 = None
    closed = ~constant
    closed_loop = None
    if closed.any():
        closed_ok = ok[closed] == 1
        closed_latency = latency_ms[closed][closed_ok]
        closed_loop = ClosedLoop(
            requests=int(closed.sum()),
            rps=_round(int(closed.sum()) / duration_s, 3) if duration_s > 0 else None,
            error_rate=_round(float(np.count_nonzero(~closed_ok)) / int(closed.sum()), 6),
            p95_ms=_round(float(np.percentile(closed_latency, 95.0)), 3) if closed_latency.size else None,
        )
    return PhaseStats(
        name=name,
        start=start,
        end=end,
        requests=n,
        rps=rps,
        error_rate=float(np.count_nonzero(~chosen_ok)) / stream_n if stream_n else None,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        stream=stream,
        stream_requests=stream_n,
        latency_samples=int(successes.size),
        closed_loop=closed_loop,
    )


def phase_stats(samples: pd.DataFrame, phases: Phases) -> dict[str, PhaseStats]:
    """:class:`PhaseStats` for every phase in ``phases``, in the given order."""
    return {name: stats_for(samples, name, start, end) for name, (start, end) in phases.items()}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
