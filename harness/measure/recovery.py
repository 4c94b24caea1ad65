"""Per-fault figures: time to detect, RTO (sustained-window rule), failover, failback,
degraded time, lost requests — each with its resolution. docs/method.md states the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.journal import utc_iso
from harness.measure.buckets import (
    bucket_counts,
    bucket_index,
    first_after_last_marker,
    first_sustained_run,
)
from harness.measure.model import FaultTiming, MeasureSettings
from harness.measure.routing import degraded_s, failback_s, failover_s

IMPACT_NONE = "none"
IMPACT_RECOVERED = "recovered"
IMPACT_UNRECOVERED = "unrecovered"


@dataclass(frozen=True)
class FaultMeasure:
    """The measured figures of one fault. Seconds are counted from the fault's onset (t0).

    ``impact`` is ``none`` (no unhealthy bucket after t0; ``rto_s`` = 0), ``recovered`` or
    ``unrecovered`` (never healthy for W before the data ends; ``rto_s`` is None).
    ``recovered_at`` is the recovery instant t_r (epoch s). ``data_gaps_s`` is the time in empty
    buckets that the incident was extended by. ``notes`` says why a figure is None.
    """

    fault: FaultTiming
    time_to_detect_s: float | None
    rto_s: float | None
    recovered_at: float | None
    failover_s: float | None
    failback_s: float | None
    degraded_s: float | None
    lost_requests: int
    data_gaps_s: float
    resolution_s: float
    impact: str
    method: str
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``faults[]`` entry of results.json (DESIGN.md keys first, then additions)."""
        fault = self.fault
        return {
            "name": fault.name,
            "type": fault.type,
            "targets": list(fault.targets),
            "onset_at": utc_iso(fault.onset_at),
            "onset_source": fault.onset_source,
            "onset_uncertainty_s": fault.onset_uncertainty_s,
            "reverted_at": None if fault.reverted_at is None else utc_iso(fault.reverted_at),
            "time_to_detect_s": _round_s(self.time_to_detect_s),
            "rto_s": _round_s(self.rto_s),
            "failover_s": _round_s(self.failover_s),
            "failback_s": _round_s(self.failback_s),
            "degraded_s": _round_s(self.degraded_s),
            "impact": self.impact,
            "recovered_at": None if self.recovered_at is None else utc_iso(self.recovered_at),
            "lost_requests": self.lost_requests,
            "data_gaps_s": _round_s(self.data_gaps_s),
            "resolution_s": _round_s(self.resolution_s),
            "method": self.method,
            "notes": dict(self.notes),
        }


def resolution_s(settings: MeasureSettings, onset_uncertainty_s: float) -> float:
    """max(1 / probe_rate_hz + onset_uncertainty_s, bucket_s): how exact a fault's figures are."""
    return max(settings.probe_interval_s + onset_uncertainty_s, settings.bucket_s)


def method_text(settings: MeasureSettings, max_error_rate: float | None, good_rule: str) -> str:
    """The rule in one line, e.g. for ``faults[].method``."""
    if max_error_rate is None:
        unhealthy = "any request bad"
    else:
        unhealthy = f"bad ratio > {max_error_rate:g}"
    return (
        f"sustained window: {settings.bucket_s * 1000:g} ms buckets, unhealthy when {unhealthy}, "
        f"empty buckets never healthy; recovered after {settings.window_s:g} s of healthy "
        f"buckets; {good_rule}"
    )


def measure_fault(
    samples: pd.DataFrame,
    good: np.ndarray,
    fault: FaultTiming,
    settings: MeasureSettings,
    *,
    max_error_rate: float | None,
    primary: str | None,
    method: str,
) -> FaultMeasure:
    """Measure one fault from start-sorted ``samples`` and the aligned ``good`` mask.

    Only requests that start at or after the onset are looked at, up to the last sample.
    ``max_error_rate`` is the bucket threshold (None: any bad request makes a bucket
    unhealthy); ``primary`` the baseline tier (None: failover/failback cannot be measured).
    """
    onset_s = fault.onset_at
    first_row = int(np.searchsorted(samples["start"].to_numpy(), onset_s, side="left"))
    starts_s = samples["start"].to_numpy()[first_row:]
    ok_good = good[first_row:]
    status = samples["status"].to_numpy()[first_row:]
    tiers = samples["tier"].to_numpy()[first_row:]
    degraded = samples["degraded"].to_numpy()[first_row:]
    window = f"{settings.window_s:g} s"
    resolution = resolution_s(settings, fault.onset_uncertainty_s)
    lost = int(np.count_nonzero(status == 0))
    notes: dict[str, str] = {}

    if starts_s.size == 0:
        reason = "no requests started after the onset: nothing was observed"
        return FaultMeasure(
            fault, None, None, None, None, None, None, lost, 0.0, resolution,
            IMPACT_UNRECOVERED, method,
            {k: reason for k in ("time_to_detect_s", "rto_s", "failover_s", "failback_s", "degraded_s")},
        )

    bucket_s = settings.bucket_s
    index = bucket_index(starts_s, onset_s, bucket_s)
    n_buckets = int(index[-1]) + 1
    bad = ~ok_good
    total = bucket_counts(index, n_buckets)
    bad_n = bucket_counts(index, n_buckets, bad)
    known = total > 0
    if max_error_rate is None:
        unhealthy = bad_n > 0
    else:
        ratio = np.divide(bad_n, total, out=np.zeros(n_buckets), where=known)
        unhealthy = known & (ratio > max_error_rate)
    healthy = known & ~unhealthy
    windows = settings.window_buckets
    unhealthy_at = np.flatnonzero(unhealthy)

    rto: float | None
    recovered_at: float | None = None
    time_to_detect: float | None = None
    if unhealthy_at.size == 0:
        run = first_sustained_run(healthy, windows)
        if run is not None:
            impact, rto = IMPACT_NONE, 0.0
            notes["time_to_detect_s"] = "no observed impact: no unhealthy bucket after the onset"
        else:
            impact, rto = IMPACT_UNRECOVERED, None
            notes["rto_s"] = f"never healthy for {window} before the data ends"
            notes["time_to_detect_s"] = "no bad request observed after the onset"
        gap_end = n_buckets if run is None else run
    else:
        run = first_sustained_run(healthy, windows, after=int(unhealthy_at[0]))
        bad_rows = np.flatnonzero(bad)
        time_to_detect = float(starts_s[bad_rows[0]] - onset_s)
        row = None if run is None else first_after_last_marker(index, bad, ok_good, run)
        if row is None:
            impact, rto = IMPACT_UNRECOVERED, None
            last_s = float(starts_s[-1] - onset_s)
            notes["rto_s"] = (
                f"never healthy for {window} before the data ends ({last_s:.2f} s after onset)"
            )
            gap_end = n_buckets
        else:
            impact = IMPACT_RECOVERED
            recovered_at = float(starts_s[row])
            rto = recovered_at - onset_s
            gap_end = run
    data_gaps_s = float(np.count_nonzero(~known[:gap_end])) * bucket_s

    # Failover looks at every answer that arrived after the onset, including requests in flight
    # at the onset that a gateway retried on another tier: that is when traffic moved.
    failover = failover_s(
        samples["end"].to_numpy(), good, samples["tier"].to_numpy(), onset_s, primary
    )
    failback = failback_s(
        samples["end"].to_numpy()[first_row:], ok_good, tiers, index, n_buckets, onset_s, primary,
        None if failover is None else int(failover // bucket_s), windows,
    )
    if primary is None:
        reason = "primary tier unknown: no good baseline response carried X-Tier"
        notes["failover_s"] = notes["failback_s"] = reason
    else:
        if failover is None:
            notes["failover_s"] = f"no good response from a tier other than {primary!r} after onset"
            notes["failback_s"] = "no failover"
        elif failback is None:
            notes["failback_s"] = f"never served by {primary!r} alone for {window} after the failover"

    return FaultMeasure(
        fault=fault,
        time_to_detect_s=time_to_detect,
        rto_s=rto,
        recovered_at=recovered_at,
        failover_s=failover,
        failback_s=failback,
        degraded_s=degraded_s(ok_good, degraded, index, n_buckets, bucket_s),
        lost_requests=lost,
        data_gaps_s=data_gaps_s,
        resolution_s=resolution,
        impact=impact,
        method=method,
        notes=notes,
    )


def _round_s(value: float | None) -> float | None:
    # Microseconds: well below any resolution, and stable in JSON.
    return None if value is None else round(value, 6)
