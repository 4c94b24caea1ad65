"""Synthetic samples for tests and benchmarks: a fixed-rate probe stream, segment by segment.

    samples = concat_samples(
        probe_segment(0.0, 10.0, rate_hz=20),                  # healthy, tier "hosted"
        probe_segment(10.0, 4.0, rate_hz=20, status=503),      # an outage
        probe_segment(14.0, 10.0, rate_hz=20, tier="gpu"),     # failed over
    )

Streamed answers (``"stream": true``): :func:`stream_segment` — completed, cut after N tokens,
or failed before the first token (a non-2xx status).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.measure.samples import OPTIONAL_DEFAULTS, SAMPLE_COLUMNS, SAMPLE_DTYPES, empty_samples, sort_samples


def probe_segment(
    start_s: float,
    duration_s: float,
    rate_hz: float = 20.0,
    *,
    status: int = 200,
    latency_ms: float = 20.0,
    tier: str = "hosted",
    served_by: str | None = None,
    region: str = "",
    degraded: int = 0,
    source: str = "probe",
    error: str | None = None,
) -> pd.DataFrame:
    """Requests starting every 1/rate_hz s in ``[start_s, start_s + duration_s)``, all alike.

    ``ok`` follows ``status`` (2xx); ``tier``/``served_by`` are blank for non-2xx responses, as
    the gateway sets no X-Tier when nothing served; ``error`` defaults to ``HTTP <status>`` or
    ``timeout`` for status 0.
    """
    n = max(0, int(round(duration_s * rate_hz)))
    starts = start_s + np.arange(n) / rate_hz
    ok = 1 if 200 <= status < 300 else 0
    if error is None:
        error = "" if ok else ("timeout" if status == 0 else f"HTTP {status}")
    frame = pd.DataFrame(
        {
            "source": source,
            "start": starts,
            "end": starts + latency_ms / 1000.0,
            "status": status,
            "ok": ok,
            "latency_ms": latency_ms,
            "bytes": 64 if ok else 0,
            "served_by": (served_by if served_by is not None else f"{tier}-1") if ok else "",
            "tier": tier if ok else "",
            "region": region if ok else "",
            "degraded": degraded if ok else 0,
            "error": error,
            **OPTIONAL_DEFAULTS,
        },
        columns=SAMPLE_COLUMNS,
    )
    return frame.astype(SAMPLE_DTYPES)


def stream_segment(
    start_s: float,
    duration_s: float,
    rate_hz: float = 20.0,
    *,
    status: int = 200,
    tokens: int = 10,
    ttft_ms: float = 50.0,
    gap_ms: float = 5.0,
    cut_after: int | None = None,
    tier: str = "hosted",
    source: str = "probe",
) -> pd.DataFrame:
    """Streamed requests every 1/rate_hz s in ``[start_s, start_s + duration_s)``, all alike, as
    the load generators record them (CONTRACT: the streaming sample columns).

    A 2xx stream delivers ``tokens`` tokens, the first ``ttft_ms`` after the send and the others
    ``gap_ms`` apart, then ``[DONE]`` (completed, ``ok`` 1) — or, with ``cut_after`` = N, ends
    after N tokens without ``[DONE]`` (``ok`` 0, ``cut_after_tokens`` N, error ``stream cut after
    N tokens``). A non-2xx ``status`` fails before any token (no tier, error ``HTTP <status>``).
    ``end`` is the last token's arrival (the send for a stream that got none, plus ``ttft_ms``).
    """
    answered = 200 <= status < 300
    delivered = (tokens if cut_after is None else cut_after) if answered else 0
    completed = answered and cut_after is None
    latency_ms = ttft_ms + gap_ms * max(delivered - 1, 0)
    frame = probe_segment(start_s, duration_s, rate_hz, status=status, latency_ms=latency_ms, tier=tier,
                          source=source)
    frame["stream"] = 1
    frame["ttft_ms"] = ttft_ms if delivered else float("nan")
    frame["tokens"] = delivered
    frame["max_gap_ms"] = gap_ms if delivered >= 2 else float("nan")
    frame["stream_completed"] = 1 if completed else 0
    frame["cut_after_tokens"] = delivered if answered and not completed else -1
    if answered and not completed:
        frame["ok"] = 0
        frame["error"] = f"stream cut after {delivered} tokens"
    return frame.astype(SAMPLE_DTYPES)


def concat_samples(*frames: pd.DataFrame) -> pd.DataFrame:
    """The frames as one start-sorted sample frame with the sample dtypes."""
    parts = [f for f in frames if len(f)]
    if not parts:
        return empty_samples()
    return sort_samples(pd.concat(parts, ignore_index=True).astype(SAMPLE_DTYPES))


def probe_stream(end_s: float, rate_hz: float = 20.0, phase_s: float = 0.0, **fields: object) -> pd.DataFrame:
    """One healthy stream from ``phase_s`` to ``end_s`` (see :func:`probe_segment` for fields)."""
    return probe_segment(phase_s, end_s - phase_s, rate_hz, **fields)  # type: ignore[arg-type]


def set_between(
    samples: pd.DataFrame,
    from_s: float,
    to_s: float,
    *,
    status: int | None = None,
    latency_ms: float | None = None,
    tier: str | None = None,
    degraded: int | None = None,
    where: np.ndarray | None = None,
) -> pd.DataFrame:
    """A copy of ``samples`` where requests starting in ``[from_s, to_s)`` (and, with ``where``,
    only rows where it is True) get the given values; ok/tier/error follow a new ``status``."""
    out = samples.copy()
    rows = (out["start"] >= from_s).to_numpy() & (out["start"] < to_s).to_numpy()
    if where is not None:
        rows &= where
    if status is not None:
        ok = 1 if 200 <= status < 300 else 0
        out.loc[rows, "status"] = status
        out.loc[rows, "ok"] = ok
        if not ok:
            out.loc[rows, ["tier", "served_by", "region"]] = ""
            out.loc[rows, "degraded"] = 0
            out.loc[rows, "error"] = "timeout" if status == 0 else f"HTTP {status}"
    if latency_ms is not None:
        out.loc[rows, "latency_ms"] = latency_ms
        out.loc[rows, "end"] = out.loc[rows, "start"] + latency_ms / 1000.0
    if tier is not None:
        out.loc[rows, "tier"] = tier
        out.loc[rows, "served_by"] = f"{tier}-1"
    if degraded is not None:
        out.loc[rows, "degraded"] = degraded
    return out.astype(SAMPLE_DTYPES)


def drop_between(samples: pd.DataFrame, from_s: float, to_s: float) -> pd.DataFrame:
    """``samples`` without the requests starting in ``[from_s, to_s)``: a gap in data."""
    keep = ~((samples["start"] >= from_s) & (samples["start"] < to_s))
    return samples[keep].reset_index(drop=True)


def scheduled(samples: pd.DataFrame) -> pd.DataFrame:
    """A copy where every probe row was sent exactly on schedule (``intended`` = ``start``)."""
    out = samples.copy()
    probes = (out["source"] == "probe").to_numpy()
    out.loc[probes, "intended"] = out.loc[probes, "start"]
    return out


def stall_probes(samples: pd.DataFrame, from_s: float, length_s: float) -> pd.DataFrame:
    """A copy where the probes due in ``[from_s, from_s + length_s)`` went out late, in a burst
    at ``from_s + length_s`` (the prober frozen, then catching up): ``start``/``end`` move,
    ``intended`` keeps the schedule. Rows without ``intended`` get it from ``start`` first."""
    out = samples.copy()
    due = out["intended"].fillna(out["start"])
    out["intended"] = due.where(out["source"] == "probe")
    rows = ((due >= from_s) & (due < from_s + length_s) & (out["source"] == "probe")).to_numpy()
    shift = (from_s + length_s) - out.loc[rows, "start"]
    out.loc[rows, "start"] = out.loc[rows, "start"] + shift
    out.loc[rows, "end"] = out.loc[rows, "end"] + shift
    return sort_samples(out.astype(SAMPLE_DTYPES))
