"""Distributions over repeated runs of one scenario (``drill run --repeat N``).

A quarterly figure should not be one noisy sample: each figure is summarised by its median, min,
max and a percentile-bootstrap confidence interval of the median (seeded, so the same runs give
the same interval).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FAULT_FIGURES = ("rto_s", "time_to_detect_s", "failover_s", "failback_s", "degraded_s", "capacity_restored_s")
PHASE_FIGURES = ("error_rate", "p95_ms")
STREAM_FIGURES = (("ttft_p95_ms", "ttft_p95_ms"), ("completion_rate", "stream_completion"))
"""(key in ``phases.<phase>.streaming``, figure name): summarised when the runs streamed."""


def distribution(
    values: list[float | None], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """median/min/max and a bootstrap CI of the median over the values that were measured."""
    present = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    out: dict[str, Any] = {"n": int(present.size), "missing": len(values) - int(present.size)}
    if present.size == 0:
        return out | {"median": None, "min": None, "max": None, "ci_low": None, "ci_high": None}
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(present, size=(resamples, present.size), replace=True), axis=1)
    tail = (1 - confidence) / 2
    return out | {
        "median": float(np.median(present)),
        "min": float(present.min()),
        "max": float(present.max()),
        "ci_low": float(np.quantile(medians, tail)),
        "ci_high": float(np.quantile(medians, 1 - tail)),
        "confidence": confidence,
    }


def summarize_repeats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One entry per figure, ``faults.<name>.<figure>`` and ``phases.<phase>.<figure>``."""
    names: dict[str, list[float | None]] = {}
    for i, results in enumerate(runs):
        for fault in results.get("faults", []):
            for figure in FAULT_FIGURES:
                if figure in fault:
                    names.setdefault(f"faults.{fault['name']}.{figure}", [None] * len(runs))[i] = fault[figure]
        for phase, stats in (results.get("phases") or {}).items():
            for figure in PHASE_FIGURES:
                names.setdefault(f"phases.{phase}.{figure}", [None] * len(runs))[i] = stats.get(figure)
            streaming = stats.get("streaming")
            if isinstance(streaming, dict):
                for key, figure in STREAM_FIGURES:
                    names.setdefault(f"phases.{phase}.{figure}", [None] * len(runs))[i] = streaming.get(key)
    return {
        "runs": [{"run_id": r.get("run_id"), "verdict": r.get("verdict")} for r in runs],
        # harness.verdict.VERDICT_COUNTS (measure imports nothing of harness): inconclusive apart
        "verdicts": {v: sum(1 for r in runs if r.get("verdict") == v)
                     for v in ("passed", "failed", "inconclusive", "aborted")},
        "figures": {name: distribution(values) | {"values": values} for name, values in sorted(names.items())},
    }
