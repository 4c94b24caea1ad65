"""The sample frame measure works on: one row per request, its columns and dtypes.

The load generators write these columns (harness/load/samples.py ``COLUMNS``, the same order;
tests/test_measure_imports.py keeps the two equal) and :mod:`harness.rundir.frames` reads the
files into this frame. measure itself never touches a file.
"""

from __future__ import annotations

import pandas as pd

SAMPLE_DTYPES: dict[str, str] = {
    "source": "object",
    "start": "float64",
    "end": "float64",
    "status": "int64",
    "ok": "int8",
    "latency_ms": "float64",
    "bytes": "int64",
    "served_by": "object",
    "tier": "object",
    "region": "object",
    "degraded": "int8",
    "error": "object",
    "stream": "int8",
    "ttft_ms": "float64",
    "tokens": "int64",
    "max_gap_ms": "float64",
    "stream_completed": "int8",
    "cut_after_tokens": "int64",
    "intended": "float64",
    "splices": "int64",
    "splice_tokens_before": "int64",
    "splice_gap_ms": "float64",
    "tokens_lost": "int64",
    "tokens_repeated": "int64",
    "foreign_tokens": "int64",
}
"""The dtype of every sample column; text columns hold "" (never NaN) when a value is absent.

The last six describe a streamed answer (``"stream": true`` in the request's JSON body; the SSE
wire format is in harness/load): ``stream`` 1 when the request asked for a stream, ``ttft_ms``
send -> first token (NaN when no token arrived or not a stream), ``tokens`` received,
``max_gap_ms`` the longest gap between consecutive tokens (NaN with fewer than 2),
``stream_completed`` 1 when ``[DONE]`` arrived on a 2xx answer, ``cut_after_tokens`` the tokens a
2xx stream had delivered when it ended without ``[DONE]`` (-1 otherwise). ``intended`` (last) is
the instant a probe was due by its schedule (epoch s; NaN on Locust rows and in files written
before the column existed): ``start - intended`` is the probe's schedule lag. The last six (after
``intended``) are a stream's splice and its answer checked token by token (harness/load/samples.py):
``splices`` (0 without one), ``splice_tokens_before`` (-1 without a splice), ``splice_gap_ms`` (NaN
without a splice), ``tokens_lost``, ``tokens_repeated``, ``foreign_tokens`` (-1 when not checked)."""

STREAM_DEFAULTS: dict[str, float | int] = {
    "stream": 0,
    "ttft_ms": float("nan"),
    "tokens": 0,
    "max_gap_ms": float("nan"),
    "stream_completed": 0,
    "cut_after_tokens": -1,
}
"""What a request that did not stream holds in the streaming columns; sample files written before
those columns existed read with these values (harness/rundir/frames.py)."""

STREAM_COLUMNS: list[str] = list(STREAM_DEFAULTS)
"""The streaming columns, in file order (the six before ``intended``)."""

SPLICE_DEFAULTS: dict[str, float | int] = {
    "splices": 0,
    "splice_tokens_before": -1,
    "splice_gap_ms": float("nan"),
    "tokens_lost": -1,
    "tokens_repeated": -1,
    "foreign_tokens": -1,
}
"""What a request that did not stream (or was not checked) holds in the splice columns, the last six;
sample files written before those columns existed read with these values."""

OPTIONAL_DEFAULTS: dict[str, float | int] = {**STREAM_DEFAULTS, "intended": float("nan"), **SPLICE_DEFAULTS}
"""Every column a sample file may lack because it was written before the column existed, and the
value such a file reads with (harness/rundir/frames.py)."""

SAMPLE_COLUMNS: list[str] = list(SAMPLE_DTYPES)
"""The sample columns in file order."""


def empty_samples() -> pd.DataFrame:
    """A frame with no rows and the sample columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=SAMPLE_DTYPES[c]) for c in SAMPLE_COLUMNS})


def sort_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """``samples`` ordered by start time (stable), with a fresh 0..n-1 index."""
    if samples["start"].is_monotonic_increasing:
        return samples.reset_index(drop=True)
    return samples.sort_values("start", kind="mergesort", ignore_index=True)
