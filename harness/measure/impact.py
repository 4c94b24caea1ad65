"""What users felt of a run, on the RTO's evidence rule: the impact counts, the time users were
affected, and when the runbook trigger would have fired and cleared (docs/method.md).

The report's story, impact table and runbook view render these figures; they never count buckets
themselves. Affected time judges the very buckets the RTO judges (requests by start, from the first
onset to the end of the data, whole buckets only, unhealthy on evidence: at least
``min_bad_requests`` bad and the Wilson lower bound of the bad ratio above the error objective), so
the two figures can differ only for the reasons :func:`difference_note` states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.measure.buckets import bucket_counts, bucket_index, unhealthy_buckets
from harness.measure.incidents import IncidentSummary, find_incidents, summarise
from harness.measure.model import MeasureSettings
from harness.measure.recovery import FaultMeasure

MAX_RUNBOOK_STEPS = 5000
"""Evaluation instants of the runbook walk; a long run is stepped more coarsely."""


@dataclass(frozen=True)
class Impact:
    """Requests that ended at or after the first onset (in-flight ones included), how many failed
    or were slow, and the time users were affected: unhealthy buckets x bucket width.

    ``note`` says in one line why ``affected_s`` differs from the RTO (None when they agree or
    there is nothing to compare)."""

    requests: int
    failed: int
    slow: int
    affected_s: float
    unhealthy_buckets: int
    judged_buckets: int
    bucket_s: float
    note: str | None = None
    incidents: IncidentSummary | None = None
    """The incidents from the first onset to the end of the data, added up (seconds from the
    first onset; harness/measure/incidents.py); None when the visible instants were not given."""


def unhealthy_after(
    samples: pd.DataFrame, good: np.ndarray, onset_s: float, data_end_s: float,
    settings: MeasureSettings, max_error_rate: float | None,
) -> np.ndarray:
    """Which whole buckets from ``onset_s`` to ``data_end_s`` are unhealthy on evidence, judged on
    every request by its start: the RTO's ``all`` stream (harness/measure/recovery.py)."""
    n = max(0, int(np.floor((data_end_s - onset_s) / settings.bucket_s + 1e-9)))
    starts = samples["start"].to_numpy()
    inside = (starts >= onset_s) & (starts < onset_s + n * settings.bucket_s)
    index = bucket_index(starts[inside], onset_s, settings.bucket_s)
    total = bucket_counts(index, n)
    bad = bucket_counts(index, n, ~good[inside])
    result: np.ndarray = unhealthy_buckets(bad, total, max_error_rate, settings.min_bad_requests, settings.confidence)
    return result


def measure_impact(
    samples: pd.DataFrame,
    good: np.ndarray,
    bound_ms: float | None,
    faults: list[FaultMeasure],
    data_end_s: float | None,
    settings: MeasureSettings,
    max_error_rate: float | None,
    visible: np.ndarray | None = None,
) -> Impact | None:
    """The impact from the first onset on; None when no fault took effect or there are no samples.

    ``samples`` are start-sorted and ``good`` aligned with them (:func:`~harness.measure.goodness.good_mask`
    with ``bound_ms``); with ``visible`` (:func:`~harness.measure.goodness.visible_at`) the
    incidents are added up too."""
    if not faults or samples.empty:
        return None
    onset = min(f.fault.onset_at for f in faults)
    ends = samples["end"].to_numpy(dtype=float)
    after = ends >= onset
    ok = samples["ok"].to_numpy() == 1
    slow = ok & (samples["latency_ms"].to_numpy(dtype=float) > bound_ms) if bound_ms is not None else np.zeros_like(ok)
    end = data_end_s if data_end_s is not None else float(samples["start"].to_numpy()[-1])
    unhealthy = unhealthy_after(samples, good, onset, end, settings, max_error_rate)
    count = int(np.count_nonzero(unhealthy))
    affected = round(count * settings.bucket_s, 6)
    return Impact(
        requests=int(np.count_nonzero(after)),
        failed=int(np.count_nonzero(after & ~ok)),
        slow=int(np.count_nonzero(after & slow)),
        affected_s=affected,
        unhealthy_buckets=count,
        judged_buckets=int(unhealthy.size),
        bucket_s=settings.bucket_s,
        note=difference_note(unhealthy, onset, faults, settings),
        incidents=None if visible is None else summarise(
            find_incidents(samples, good, visible, onset, end, settings, max_error_rate)),
    )


def difference_note(
    unhealthy: np.ndarray, onset_s: float, faults: list[FaultMeasure], settings: MeasureSettings
) -> str | None:
    """Why the affected time and the RTO differ, in one line; None when they agree (within one
    bucket) or no fault recovered. The RTO's span runs from the first onset to the last recovery
    instant; affected time counts unhealthy buckets only."""
    recovered = [f.recovered_at for f in faults if f.recovered_at is not None]
    if len(recovered) != len(faults) or not recovered:
        return None
    span = max(recovered) - onset_s
    affected = float(np.count_nonzero(unhealthy)) * settings.bucket_s
    if abs(affected - span) < settings.bucket_s - 1e-9:
        return None
    what = "the RTO" if len(faults) == 1 else "the span from the first onset to the last recovery"
    starts = np.arange(unhealthy.size) * settings.bucket_s
    later = int(np.count_nonzero(unhealthy & (starts >= span)))
    if affected > span:
        return (f"Users were affected for longer than {what} ({affected:.2f} s against {span:.2f} s): "
                f"{later} unhealthy bucket{'s' if later != 1 else ''} came after service had been healthy for "
                f"{settings.window_s:g} s, which ends an incident.")
    healthy_inside = int(np.count_nonzero(~unhealthy & (starts + settings.bucket_s <= span + 1e-9)))
    return (f"Users were affected for less than {what} ({affected:.2f} s against {span:.2f} s): affected time "
            f"counts only the unhealthy {settings.bucket_s:g} s buckets, while {what} also spans "
            f"{healthy_inside} healthy bucket{'s' if healthy_inside != 1 else ''} inside the incident and runs "
            f"until the first good request after the last bad one and the last impacted answer.")


@dataclass(frozen=True)
class RunbookTrigger:
    """The runbook's trigger: error rate above ``error_rate``, or p95 above ``p95_limit_ms`` (None:
    no latency leg), over the answers that arrived in the last ``window_s``."""

    error_rate: float
    p95_limit_ms: float | None
    window_s: float


@dataclass(frozen=True)
class RunbookWalk:
    """When the trigger would have fired and cleared (epoch s), what held when it fired
    (``fired_by`` ``error_rate`` or ``p95``, its value, over how many answers), on which stream;
    ``reason`` says why nothing could be computed."""

    stream: str | None = None
    fired_at: float | None = None
    fired_by: str | None = None
    fired_value: float | None = None
    fired_answers: int | None = None
    cleared_at: float | None = None
    reason: str | None = None


def runbook_walk(
    samples: pd.DataFrame, trigger: RunbookTrigger, onset_s: float | None, data_end_s: float | None, step_s: float
) -> RunbookWalk:
    """Walk the run in steps of ``step_s`` from the first onset; at each instant t the trigger looks
    at the requests *answered* in (t - window, t] (what a dashboard sees) and fires when their
    error rate exceeds the rule's or their p95 its limit. Cleared is the first later instant where
    it no longer holds. The constant-rate probe stream is used when the run had one (closed-loop
    users slow down with the stack, so their share of a window shrinks exactly when it matters)."""
    if onset_s is None:
        return RunbookWalk(reason="no fault took effect")
    if samples.empty:
        return RunbookWalk(reason="no request samples")
    stream = "all requests"
    if "source" in samples.columns and (samples["source"] == "probe").any():
        samples = samples[samples["source"] == "probe"]
        stream = "the constant-rate probe stream"
    ends = samples["end"].to_numpy(dtype=float)
    order = np.argsort(ends, kind="stable")
    ends = ends[order]
    bad = (samples["ok"].to_numpy(dtype=int)[order] != 1).astype(np.int64)
    latency = samples["latency_ms"].to_numpy(dtype=float)[order]
    bad_before = np.concatenate([[0], np.cumsum(bad)])
    stop = float(ends[-1])
    if data_end_s is not None:
        stop = min(stop, data_end_s)  # load winding down after the last phase is not the drill
    if stop <= onset_s:
        return RunbookWalk(stream, reason="no answer after the onset")
    step_s = max(step_s, (stop - onset_s) / MAX_RUNBOOK_STEPS)
    limit = trigger.p95_limit_ms
    fired: tuple[float, str, float, int] | None = None
    for t in np.arange(onset_s + step_s, stop + step_s / 2, step_s):
        lo, hi = np.searchsorted(ends, t - trigger.window_s, "right"), np.searchsorted(ends, t, "right")
        n = int(hi - lo)
        if n == 0:
            continue
        rate = float((bad_before[hi] - bad_before[lo]) / n)
        p95 = float(np.percentile(latency[lo:hi], 95)) if limit is not None else None
        firing = rate > trigger.error_rate or (p95 is not None and limit is not None and p95 > limit)
        if fired is None and firing:
            fired = ((float(t), "error_rate", rate, n) if rate > trigger.error_rate
                     else (float(t), "p95", p95 or 0.0, n))
        elif fired is not None and not firing:
            return RunbookWalk(stream, *fired, cleared_at=float(t))
    if fired is None:
        return RunbookWalk(stream)
    return RunbookWalk(stream, *fired)
