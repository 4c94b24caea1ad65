"""Which requests are good, and when a client could see that one was bad.

A request is **good** when it succeeded (2xx) and its latency is within the latency bound. The
bound is a measurement setting, not a latency objective: a percentile objective judges a window,
the bound judges one request (docs/method.md, "Good and bad requests").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.measure.model import DEFAULT_GOOD_LATENCY_FACTOR, MeasureSettings


@dataclass(frozen=True)
class LatencyBound:
    """The bound in ms (None: no bound, good = ok) and the rule that gave it, in words."""

    ms: float | None
    rule: str


def latency_bound(settings: MeasureSettings, baseline_p95_ms: float | None) -> LatencyBound:
    """The latency a good request must not exceed.

    ``good_latency_ms`` gives it directly; ``good_latency_factor`` gives factor x the baseline
    p95 (no bound when the baseline is unknown); by default it is the runbook trigger
    max(2 x baseline p95, floor), or the floor alone when the baseline is unknown.
    """
    if settings.good_latency_ms is not None:
        return LatencyBound(float(settings.good_latency_ms), f"good_latency_ms {settings.good_latency_ms:g}")
    if settings.good_latency_factor is not None:
        if baseline_p95_ms is None:
            return LatencyBound(None, "no bound: good_latency_ms is relative but the baseline p95 is unknown")
        factor = settings.good_latency_factor
        return LatencyBound(factor * baseline_p95_ms, f"{factor:g}x baseline p95 ({baseline_p95_ms:.1f} ms)")
    floor = settings.good_latency_floor_ms
    if baseline_p95_ms is None:
        return LatencyBound(floor, f"default floor {floor:g} ms (baseline p95 unknown)")
    relative = DEFAULT_GOOD_LATENCY_FACTOR * baseline_p95_ms
    if relative >= floor:
        return LatencyBound(
            relative, f"default {DEFAULT_GOOD_LATENCY_FACTOR:g}x baseline p95 ({baseline_p95_ms:.1f} ms)"
        )
    return LatencyBound(
        floor,
        f"default max({DEFAULT_GOOD_LATENCY_FACTOR:g}x baseline p95 = {relative:.1f} ms, floor {floor:g} ms)",
    )


def good_mask(samples: pd.DataFrame, bound_ms: float | None) -> np.ndarray:
    """Boolean array aligned with ``samples``: ok == 1 and (no bound or latency_ms <= bound)."""
    good = np.asarray(samples["ok"].to_numpy() == 1, dtype=bool)
    if bound_ms is not None:
        good &= samples["latency_ms"].to_numpy() <= bound_ms
    return good


def visible_at(samples: pd.DataFrame, bound_ms: float | None) -> np.ndarray:
    """For each request, the first instant a client could tell it was bad (epoch s).

    A failure is visible at its arrival (``end``); a request slower than the bound at
    ``start + bound`` — the moment it became too slow, even while still in flight. Whichever
    comes first. Meaningful for bad requests only.
    """
    ends = samples["end"].to_numpy()
    if bound_ms is None:
        return ends
    return np.asarray(np.minimum(ends, samples["start"].to_numpy() + bound_ms / 1000.0), dtype=float)


def describe_good(bound: LatencyBound) -> str:
    """``good = ok (2xx) and latency <= 250.0 ms (default ...)`` — the rule in words."""
    if bound.ms is None:
        return f"good = ok (2xx); {bound.rule}"
    return f"good = ok (2xx) and latency <= {bound.ms:.1f} ms ({bound.rule})"


CONSTANT_RATE_SOURCE = "probe"


def constant_rate_rows(samples: pd.DataFrame) -> np.ndarray:
    """Rows of the constant-rate (open-loop) probe stream: the only stream whose requests are
    spread evenly over time whatever the stack does, so latency statistics come from it."""
    return np.asarray(samples["source"].to_numpy() == CONSTANT_RATE_SOURCE, dtype=bool)
