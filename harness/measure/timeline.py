"""Per-bucket series for the report's charts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.measure.buckets import bucket_counts, bucket_index
from harness.measure.streams import ExpectedLengths, has_streams, stream_timeline


def timeline(
    samples: pd.DataFrame,
    good: np.ndarray,
    run_start_s: float,
    bucket_s: float = 0.25,
    run_end_s: float | None = None,
    expected: ExpectedLengths | None = None,
) -> pd.DataFrame:
    """One row per bucket from ``run_start_s`` to ``run_end_s`` (default: the last sample).

    Columns: ``t_s`` (bucket start, seconds after run start), ``requests``, ``error_rate``
    (ok == 0 share), ``bad_ratio`` (not-good share, latency bound included), ``p95_ms``,
    ``degraded_share`` (of good responses), and ``tier:<name>`` — each tier's share of the good
    responses (``tier:`` for responses without a tier). Empty buckets are kept, with 0 requests
    and NaN rates, so gaps in data show as gaps. ``samples`` must be sorted by ``start``.

    A run with streamed requests gets the streaming series too (TTFT p50/p95, completion share,
    cut streams: :func:`harness.measure.streams.stream_timeline`, ``expected`` the baseline's
    stream lengths); a run without keeps exactly the columns above.
    """
    starts_s = samples["start"].to_numpy()
    first = int(np.searchsorted(starts_s, run_start_s, side="left"))
    last = len(starts_s) if run_end_s is None else int(np.searchsorted(starts_s, run_end_s, side="left"))
    rows = slice(first, max(first, last))
    index = bucket_index(starts_s[rows], run_start_s, bucket_s)
    if run_end_s is not None:
        n_buckets = max(0, int(np.ceil((run_end_s - run_start_s) / bucket_s - 1e-9)))
    else:
        n_buckets = int(index[-1]) + 1 if index.size else 0
    ok = samples["ok"].to_numpy()[rows]
    is_good = good[rows]
    requests = bucket_counts(index, n_buckets)
    good_n = bucket_counts(index, n_buckets, is_good)
    with np.errstate(invalid="ignore", divide="ignore"):
        series: dict[str, np.ndarray] = {
            "t_s": np.arange(n_buckets) * bucket_s,
            "requests": requests,
            "error_rate": bucket_counts(index, n_buckets, ok != 1) / requests,
            "bad_ratio": (requests - good_n) / requests,
            "p95_ms": _bucket_p95(index, samples["latency_ms"].to_numpy()[rows], n_buckets),
            "degraded_share": bucket_counts(
                index, n_buckets, is_good & (samples["degraded"].to_numpy()[rows] == 1)
            ) / good_n,
        }
        tiers = samples["tier"].to_numpy()[rows]
        for tier in sorted(set(tiers[is_good].tolist())):
            series[f"tier:{tier}"] = bucket_counts(index, n_buckets, is_good & (tiers == tier)) / good_n
    if has_streams(samples):
        series.update(stream_timeline(samples, rows, index, n_buckets, expected))
    return pd.DataFrame(series)


def _bucket_p95(index: np.ndarray, latency_ms: np.ndarray, n_buckets: int) -> np.ndarray:
    out = np.full(n_buckets, np.nan)
    if index.size:
        p95 = pd.Series(latency_ms).groupby(index).quantile(0.95)
        out[p95.index.to_numpy()] = p95.to_numpy()
    return out
