"""Cutting time into fixed buckets, and finding sustained runs of buckets.

A bucket ``k`` of a grid anchored at ``origin_s`` spans ``[origin_s + k*bucket_s,
origin_s + (k+1)*bucket_s)``; a request belongs to the bucket its *start* falls in.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np


def bucket_index(starts_s: np.ndarray, origin_s: float, bucket_s: float) -> np.ndarray:
    """The bucket of each start time (int64; negative for starts before ``origin_s``)."""
    return np.floor((starts_s - origin_s) / bucket_s).astype(np.int64)


def bucket_counts(index: np.ndarray, n_buckets: int, mask: np.ndarray | None = None) -> np.ndarray:
    """How many requests (or, with ``mask``, how many of those where mask is True) per bucket."""
    if mask is not None:
        index = index[mask]
    return np.bincount(index, minlength=n_buckets)[:n_buckets]


def first_sustained_run(flags: np.ndarray, length: int, after: int = -1) -> int | None:
    """Start of the first run of at least ``length`` True flags that begins after index ``after``.

    A run begins where a True follows a False (or the start of the array). A run that reaches
    the end of ``flags`` counts only if it is already ``length`` long: data that stops early
    never completes a window. None when there is no such run.
    """
    padded = np.concatenate(([0], flags.astype(np.int8), [0]))
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    fits = (starts > after) & (ends - starts >= length)
    hits = np.flatnonzero(fits)
    return int(starts[hits[0]]) if hits.size else None


def first_after_last_marker(
    index: np.ndarray, marker: np.ndarray, wanted: np.ndarray, bucket: int
) -> int | None:
    """The row that ends an episode just before the sustained run that starts at ``bucket``.

    ``index`` is the (sorted) bucket of each row. When bucket ``bucket - 1`` holds marker rows
    (bad requests, say), the answer is the first ``wanted`` row after its last marker row; when it
    holds none (it is empty — a gap in data), the first ``wanted`` row in bucket ``bucket`` or
    later, so a gap never moves the instant earlier. None when no ``wanted`` row follows.
    """
    lo, hi = np.searchsorted(index, [bucket - 1, bucket], side="left")
    in_previous = np.flatnonzero(marker[lo:hi])
    begin = int(lo + in_previous[-1] + 1) if in_previous.size else int(hi)
    following = np.flatnonzero(wanted[begin:])
    return begin + int(following[0]) if following.size else None


def wilson_lower(bad_n: np.ndarray, total: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Wilson score lower bound of each bucket's bad ratio at ``confidence``.

    0 where a bucket is empty. At 95 %: 1 bad of 5 -> 0.036, 2 of 5 -> 0.143, 5 of 5 -> 0.649.
    """
    z = NormalDist().inv_cdf(confidence)
    n = np.maximum(total, 1).astype(float)
    p = bad_n / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    lower = (centre - spread) / (1 + z2 / n)
    return np.where(total > 0, np.maximum(lower, 0.0), 0.0)


def unhealthy_buckets(
    bad_n: np.ndarray, total: np.ndarray, threshold: float | None, min_bad: int, confidence: float
) -> np.ndarray:
    """A bucket is unhealthy when the evidence says its bad ratio exceeds ``threshold``
    (None: 0, any bad request): at least ``min_bad`` bad requests, and the Wilson lower bound of
    the bad ratio above the threshold. One slow request among five is not an incident; two of
    five are (0.143 > 0.10), and so is any bucket where most requests fail."""
    limit = 0.0 if threshold is None else threshold
    return (total > 0) & (bad_n >= min_bad) & (wilson_lower(bad_n, total, confidence) > limit)
