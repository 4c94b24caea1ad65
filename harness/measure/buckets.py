"""Cutting time into fixed buckets, and finding sustained runs of buckets.

A bucket ``k`` of a grid anchored at ``origin_s`` spans ``[origin_s + k*bucket_s,
origin_s + (k+1)*bucket_s)``; a request belongs to the bucket its *start* falls in.
"""

from __future__ import annotations

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
