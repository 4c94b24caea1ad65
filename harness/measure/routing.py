"""Where good responses came from: primary tier, failover, failback and degraded time.

All functions take start-sorted arrays restricted to the requests at or after a fault's onset
(see :class:`harness.measure.recovery.FaultWindow`) and return seconds after that onset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.measure.buckets import bucket_counts, first_after_last_marker, first_sustained_run
from harness.measure.phases import phase_slice


def primary_tier(
    samples: pd.DataFrame, answered: np.ndarray, baseline: tuple[float, float] | None
) -> str | None:
    """The most common ``tier`` of successful baseline responses, fast or slow (ties:
    alphabetical first): where the stack sends traffic, as :func:`failover_s` reads where it
    moved. Counting only the answers within the latency bound named a busy run's fallback the
    primary: its gateway's breaker opened and closed on a slow primary in the baseline, the
    primary's slow answers did not count, and the return to it after the fault read as a failover
    (docs/method.md).

    None when there is no baseline or no successful baseline response carries a tier.
    """
    if baseline is None:
        return None
    rows = phase_slice(samples["start"].to_numpy(), *baseline)
    tiers = samples["tier"].to_numpy()[rows][answered[rows]]
    tiers = tiers[tiers != ""]
    if tiers.size == 0:
        return None
    counts = pd.Series(tiers).value_counts()
    best = counts[counts == counts.iloc[0]].index
    return str(sorted(best)[0])


ONSET_LOOKBACK_S = 1.0
"""How far before an onset :func:`served_elsewhere_at_onset` looks for where traffic was."""


def served_elsewhere_at_onset(
    ends_s: np.ndarray, good: np.ndarray, tiers: np.ndarray, onset_s: float, primary: str | None
) -> str | None:
    """The tier traffic was on at the onset when it was not the primary: every good answer with a
    tier that arrived in the :data:`ONSET_LOOKBACK_S` before the onset came from other tiers
    (the most common of them is named). None when the primary served any of them, or none
    arrived. A stack already failed over (a slow primary opened a gateway's breaker in the
    baseline) has no failover left for the fault to cause: the first answer from the alternate
    after the onset would read as a failover of a few milliseconds."""
    if primary is None:
        return None
    recent = good & (tiers != "") & (ends_s < onset_s) & (ends_s >= onset_s - ONSET_LOOKBACK_S)
    served = tiers[recent]
    if served.size == 0 or (served == primary).any():
        return None
    return str(pd.Series(served).value_counts().index[0])


def failover_s(
    ends_s: np.ndarray, good: np.ndarray, tiers: np.ndarray, onset_s: float, primary: str | None
) -> float | None:
    """Onset -> arrival (``end``) of the first good response from a tier other than the primary,
    over every request that ended after the onset (requests in flight at the onset included).

    Arrival, not start: the first failed-over request may carry a failed attempt at the primary
    inside it, and traffic has moved when the alternate's answer arrives — the moment the
    gateway's own routing log records. Responses without a tier do not count.
    """
    if primary is None:
        return None
    arrived = ends_s[good & (tiers != primary) & (tiers != "") & (ends_s >= onset_s)]
    return None if arrived.size == 0 else float(arrived.min() - onset_s)


def failback_s(
    ends_s: np.ndarray,
    good: np.ndarray,
    tiers: np.ndarray,
    index: np.ndarray,
    n_buckets: int,
    onset_s: float,
    primary: str | None,
    failover_bucket: int | None,
    window_buckets: int,
) -> float | None:
    """Onset -> the return to the primary tier that lasted, after a failover.

    A bucket is *primary-served* when it holds good responses and all of them came from the
    primary tier. Failback is the first run of W primary-served buckets after the failover
    bucket; the instant is the first good primary response after the last good non-primary
    response before that run (or, when the bucket before the run is a gap, the first good
    primary response of the run), at its arrival (``end``) like failover. ``failover_bucket`` is
    the bucket the failover arrived in. None without a failover or without such a run.
    """
    if primary is None or failover_bucket is None:
        return None
    from_primary = good & (tiers == primary)
    elsewhere = good & ~from_primary
    served = bucket_counts(index, n_buckets, good)
    not_primary = bucket_counts(index, n_buckets, elsewhere)
    primary_served = (served > 0) & (not_primary == 0)
    run = first_sustained_run(primary_served, window_buckets, after=failover_bucket)
    if run is None:
        return None
    row = first_after_last_marker(index, elsewhere, from_primary, run)
    return None if row is None else float(ends_s[row] - onset_s)


def degraded_s(
    good: np.ndarray, degraded: np.ndarray, index: np.ndarray, n_buckets: int, bucket_s: float
) -> float:
    """Total time good responses came from a degraded tier: buckets holding one, x bucket_s."""
    hits = bucket_counts(index, n_buckets, good & (degraded == 1))
    return float(np.count_nonzero(hits)) * bucket_s


def first_good_from_tier_s(
    samples: pd.DataFrame, good: np.ndarray, tier: str, onset_s: float
) -> float | None:
    """Onset -> arrival of the first good response served by ``tier`` (requests in flight at the
    onset included, as for failover); None when there is none."""
    ends_s = samples["end"].to_numpy()
    arrived = ends_s[good & (samples["tier"].to_numpy() == tier) & (ends_s >= onset_s)]
    return None if arrived.size == 0 else float(arrived.min() - onset_s)
