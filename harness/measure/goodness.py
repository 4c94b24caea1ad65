"""Which requests are good: succeeded, and within the latency bound when there is one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.measure.model import ObjectiveSpec


def latency_bound_ms(objectives: ObjectiveSpec, baseline_p95_ms: float | None) -> float | None:
    """The latency a good request must not exceed, in ms; None when there is no bound.

    ``p95_ms`` gives it directly; ``p95_baseline_factor`` gives factor x the baseline p95 (None
    when the baseline p95 is unknown, i.e. the baseline has no samples).
    """
    if objectives.p95_ms is not None:
        return float(objectives.p95_ms)
    if objectives.p95_baseline_factor is not None and baseline_p95_ms is not None:
        return float(objectives.p95_baseline_factor) * baseline_p95_ms
    return None


def good_mask(samples: pd.DataFrame, bound_ms: float | None) -> np.ndarray:
    """Boolean array aligned with ``samples``: ok == 1 and (no bound or latency_ms <= bound)."""
    good = samples["ok"].to_numpy() == 1
    if bound_ms is not None:
        good &= samples["latency_ms"].to_numpy() <= bound_ms
    return good


def describe_good(bound_ms: float | None) -> str:
    """``good = ok and latency <= 84.0 ms`` — the rule in words, for method strings."""
    if bound_ms is None:
        return "good = ok (2xx)"
    return f"good = ok (2xx) and latency <= {bound_ms:.1f} ms"
