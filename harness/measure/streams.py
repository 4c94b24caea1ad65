"""Streamed answers (``"stream": true``): time to first token, completion, cut streams.

A *stream* is a sample row with ``stream`` = 1. Per window (a phase, or any ``[start, end)`` on
the send clock, like :mod:`harness.measure.phases`):

- **completed**: ``[DONE]`` arrived on a 2xx answer (``stream_completed`` = 1) *and* the answer is
  not short: at least as many tokens as the shortest completed stream of the baseline phase from
  the same load source (probe or Locust users: each sends its own request) served by the same
  tier (a fallback may answer shorter by design: a tier the baseline never saw is not checked). A gateway that pads a
  stream its provider cut with a ``[DONE]`` of its own (LiteLLM does) hands the client a clean end
  on a truncated answer; such a stream is **ended short** (counted apart, never completed). The
  expected length is the baseline's (:func:`expected_lengths`), not the reference model server's
  answer length, so the rule holds for any provider: what the stack answered when healthy. Without
  at least :data:`MIN_BASELINE_STREAMS` completed baseline streams of a source and tier, their
  streams' length is not checked (``expected`` says which were);
- **cut**: a 2xx answer that ended without ``[DONE]`` (``cut_after_tokens`` >= 0: a clean end, a
  reset, the gateway's error event, a timeout mid-stream), with the tokens it had delivered;
- **failed mid-stream**: not completed after at least one token (the user saw a partial answer);
- **failed before the first token**: not completed and no token (an HTTP error, a timeout or a
  refused connection before the first token, or a 2xx stream cut at 0 tokens) — a client could
  still retry these invisibly, which it cannot do for a partial answer.

Completed + ended short + failed mid-stream + failed before the first token = streams.

**TTFT** (time to first token) = first token's arrival - send, per request (``ttft_ms``). Its
percentiles come from the **constant-rate probe stream** (``source`` = ``probe``) for the same
reason as the latency percentiles (coordinated omission: closed-loop users send less when the
stack is slow); without probe streams in the window they fall back to every stream
(``ttft_stream`` = ``all``). Only streams whose first token arrived have a TTFT (a stream that
got none is counted as failed before the first token, never as fast), linear interpolation
between ranks as for latency.

**Splices** (harness/load/streams.py): a stream is *spliced* when its answer went on from another
source mid-stream (``splices`` >= 1); its *splice gap* is the longest arrival gap across a splice
(``splice_gap_ms``). A stream is *checked* when its tokens were placed in the reference answer to
its request (``tokens_lost`` >= 0): then it says how many tokens were lost, repeated, or foreign
(another answer's). These figures come from the probe's streams, like TTFT (from every stream when
the probe sent none); the objectives ``splice_gap_p95_ms``, ``max_tokens_lost``,
``max_tokens_repeated`` and ``max_foreign_tokens`` are judged on the worst stream (the p95 for the
gap) of the fault and recovery phases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.measure.buckets import bucket_counts
from harness.measure.goodness import constant_rate_rows
from harness.measure.phases import phase_slice

MIN_BASELINE_STREAMS = 10
"""Completed baseline streams of a source needed before its answers' length is checked."""

ExpectedLengths = dict[str, int]
"""Per load source and serving tier (``probe/hosted``, ``locust/hosted``: :func:`length_key`), the
fewest tokens a completed baseline stream had."""


def length_key(source: object, tier: object) -> str:
    """``probe/hosted``: the key of :data:`ExpectedLengths` (tier "" when none was attributed)."""
    return f"{source}/{tier}"


def expected_lengths(samples: pd.DataFrame, baseline: tuple[float, float] | None,
                     first_onset_s: float | None = None) -> ExpectedLengths:
    """Per load source and serving tier, the fewest tokens of the baseline's completed streams
    (``[DONE]`` on a 2xx answer) that also *ended* before ``first_onset_s`` (a stream in flight at
    the onset may be cut by the fault), when there are at least :data:`MIN_BASELINE_STREAMS` of
    them: the shortest answer that tier gave that request when healthy. The minimum, not a low
    percentile: a provider whose answers vary in length must not have its healthy short answers
    counted as cut. Per tier: a fallback (a smaller model) may answer shorter by design, and the
    baseline says nothing of it, so its streams are not checked."""
    if baseline is None or not has_streams(samples):
        return {}
    rows = phase_slice(samples["start"].to_numpy(), *baseline)
    frame = samples.iloc[rows]
    healthy = (frame["stream"].to_numpy() == 1) & (frame["stream_completed"].to_numpy() == 1)
    if first_onset_s is not None:
        healthy &= frame["end"].to_numpy() < first_onset_s
    done = frame[healthy]
    out: ExpectedLengths = {}
    for (source, tier), tokens in done.groupby(["source", "tier"])["tokens"]:
        if len(tokens) >= MIN_BASELINE_STREAMS and int(tokens.min()) > 0:
            out[length_key(source, tier)] = int(tokens.min())
    return out


def ended_short(samples: pd.DataFrame, expected: ExpectedLengths | None) -> np.ndarray:
    """Per row: the stream ended with ``[DONE]`` on a 2xx answer but delivered fewer tokens than
    the baseline streams of its source and tier (``expected``); False where the length is not
    checked (no such baseline streams)."""
    short = np.zeros(len(samples), dtype=bool)
    if not expected:
        return short
    done = (samples["stream"].to_numpy() == 1) & (samples["stream_completed"].to_numpy() == 1)
    keys = samples["source"].astype(str).to_numpy().astype(object) + "/" + samples["tier"].astype(str).to_numpy()
    tokens = samples["tokens"].to_numpy()
    for key, floor in expected.items():
        short |= done & (keys == key) & (tokens < floor)
    return short


@dataclass(frozen=True)
class StreamStats:
    """Streamed requests that started in ``[start, end)``; None where there is nothing to compute
    a figure from. ``failed_over`` counts streams answered by a tier other than ``primary_tier``
    (the baseline's tier); the gateway sends its headers with the first token, so this is the tier
    that produced the answer (failover before the first token)."""

    name: str
    start: float
    end: float
    streams: int
    completed: int
    completion_rate: float | None
    cut: int
    failed_mid_stream: int
    failed_before_first_token: int
    cut_after_tokens_p50: float | None
    cut_after_tokens_max: int | None
    ttft_stream: str
    ttft_samples: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    failed_over: int | None
    primary_tier: str | None
    splices: SpliceStats | None = None
    ended_short: int = 0
    """Streams that ended with ``[DONE]`` on a 2xx answer but short of the baseline's length
    (never ``completed``)."""
    expected: ExpectedLengths | None = None
    """The length check's floors per source (None: not checked)."""


@dataclass(frozen=True)
class SpliceStats:
    """The splice and answer figures of a window's probe streams (``stream``: ``probe``, or
    ``all`` when the probe sent no stream). ``spliced`` streams had a splice; the gap figures are
    over them (None without one). ``checked`` streams were placed token by token in their
    expected answer; the lost / repeated / foreign figures are over them (sums and the worst
    stream; None without a checked stream)."""

    stream: str
    streams: int
    spliced: int
    splice_gap_p50_ms: float | None
    splice_gap_p95_ms: float | None
    splice_gap_max_ms: float | None
    tokens_before_splice_p50: float | None
    tokens_after_splice_p50: float | None
    checked: int
    tokens_lost: int
    tokens_lost_max: int | None
    tokens_repeated: int
    tokens_repeated_max: int | None
    foreign_tokens: int
    foreign_tokens_max: int | None


def has_streams(samples: pd.DataFrame) -> bool:
    """True when any request of the run asked for a stream (a frame without the streaming
    columns, built by hand from the older columns, streamed nothing)."""
    return "stream" in samples.columns and bool((samples["stream"].to_numpy() == 1).any())


def stream_stats_for(
    samples: pd.DataFrame, name: str, start: float, end: float, primary_tier: str | None = None,
    expected: ExpectedLengths | None = None, in_flight_at: float | None = None,
) -> StreamStats:
    """:class:`StreamStats` of one window; ``samples`` must be sorted by ``start``; ``expected``
    the baseline's lengths (:func:`expected_lengths`; None: lengths not checked). With
    ``in_flight_at`` (an onset), the streams sent before ``start`` and still open at that instant
    (ended after it) count too: a fault may cut them."""
    starts, ends = samples["start"].to_numpy(), samples["end"].to_numpy()
    first = start
    if in_flight_at is not None:
        open_then = (starts < start) & (ends > in_flight_at) & (samples["stream"].to_numpy() == 1)
        if open_then.any():
            first = float(starts[open_then].min())
    rows = phase_slice(starts, first, end)
    streamed = samples["stream"].to_numpy()[rows] == 1
    if in_flight_at is not None:
        streamed &= (starts[rows] >= start) | (ends[rows] > in_flight_at)
    short = ended_short(samples, expected)[rows][streamed]
    completed = (samples["stream_completed"].to_numpy()[rows][streamed] == 1) & ~short
    tokens = samples["tokens"].to_numpy()[rows][streamed]
    cut_after = samples["cut_after_tokens"].to_numpy()[rows][streamed]
    ttft_ms = samples["ttft_ms"].to_numpy()[rows][streamed]
    from_probe = constant_rate_rows(samples)[rows][streamed]
    tiers = samples["tier"].to_numpy()[rows][streamed]
    n = int(streamed.sum())
    failed = ~completed & ~short
    cut = cut_after[cut_after >= 0]
    ttft_stream = "probe" if from_probe.any() else "all"
    chosen = ttft_ms[from_probe] if ttft_stream == "probe" else ttft_ms
    first_tokens = chosen[np.isfinite(chosen)]
    p50 = p95 = None
    if first_tokens.size:
        p50, p95 = (float(v) for v in np.percentile(first_tokens, (50.0, 95.0)))
    splices = _splice_stats(samples, rows, streamed, from_probe)
    failed_over = None
    if primary_tier is not None:
        failed_over = int(np.count_nonzero((tiers != "") & (tiers != primary_tier)))
    return StreamStats(
        name=name,
        start=start,
        end=end,
        streams=n,
        completed=int(completed.sum()),
        completion_rate=float(completed.sum()) / n if n else None,
        cut=int(cut.size),
        failed_mid_stream=int(np.count_nonzero(failed & (tokens >= 1))),
        failed_before_first_token=int(np.count_nonzero(failed & (tokens < 1))),
        cut_after_tokens_p50=float(np.median(cut)) if cut.size else None,
        cut_after_tokens_max=int(cut.max()) if cut.size else None,
        ttft_stream=ttft_stream,
        ttft_samples=int(first_tokens.size),
        ttft_p50_ms=p50,
        ttft_p95_ms=p95,
        failed_over=failed_over,
        primary_tier=primary_tier,
        splices=splices,
        ended_short=int(short.sum()),
        expected=expected,
    )


def _splice_stats(samples: pd.DataFrame, rows: slice, streamed: np.ndarray,
                  from_probe: np.ndarray) -> SpliceStats | None:
    """:class:`SpliceStats` of the window's streams; None when no stream was spliced or checked
    (or the frame predates the splice columns)."""
    if "splices" not in samples.columns:
        return None
    which = "probe" if from_probe.any() else "all"
    chosen = from_probe if which == "probe" else np.ones_like(from_probe)

    def column(name: str) -> np.ndarray:
        return np.asarray(samples[name].to_numpy()[rows][streamed][chosen])

    splices = column("splices")
    gap_ms = column("splice_gap_ms")
    before = column("splice_tokens_before")
    tokens = column("tokens")
    lost, repeated, foreign = column("tokens_lost"), column("tokens_repeated"), column("foreign_tokens")
    spliced = (splices >= 1) & np.isfinite(gap_ms)
    checked = lost >= 0
    if not spliced.any() and not checked.any():
        return None
    p50 = p95 = top = None
    if spliced.any():
        p50, p95 = (float(v) for v in np.percentile(gap_ms[spliced], (50.0, 95.0)))
        top = float(gap_ms[spliced].max())

    def worst(values: np.ndarray) -> int | None:
        return int(values[checked].max()) if checked.any() else None

    return SpliceStats(
        stream=which,
        streams=int(splices.size),
        spliced=int(spliced.sum()),
        splice_gap_p50_ms=p50,
        splice_gap_p95_ms=p95,
        splice_gap_max_ms=top,
        tokens_before_splice_p50=float(np.median(before[spliced])) if spliced.any() else None,
        tokens_after_splice_p50=float(np.median(tokens[spliced] - before[spliced])) if spliced.any() else None,
        checked=int(checked.sum()),
        tokens_lost=int(lost[checked].sum()),
        tokens_lost_max=worst(lost),
        tokens_repeated=int(repeated[checked].sum()),
        tokens_repeated_max=worst(repeated),
        foreign_tokens=int(foreign[checked].sum()),
        foreign_tokens_max=worst(foreign),
    )


def stream_phase_stats(
    samples: pd.DataFrame, phases: dict[str, tuple[float, float]], primary_tier: str | None = None,
    expected: ExpectedLengths | None = None,
) -> dict[str, StreamStats]:
    """:class:`StreamStats` for every phase, in the given order; {} when nothing streamed."""
    if not has_streams(samples):
        return {}
    return {name: stream_stats_for(samples, name, s, e, primary_tier, expected) for name, (s, e) in phases.items()}


COMPLETION_WINDOW = ("fault", "recovery")
"""``min_stream_completion`` is judged on the streams sent in the fault and recovery phases:
where a fault cuts streams, and where its revert (a failback in the middle of a stream) can too.
The baseline is left out: a healthy baseline would only dilute the share."""


def completion_window(samples: pd.DataFrame, phases: dict[str, tuple[float, float]],
                      primary_tier: str | None = None, expected: ExpectedLengths | None = None,
                      first_onset_s: float | None = None) -> StreamStats | None:
    """Streams sent from the fault phase's start to the recovery phase's end (the phases that
    exist of the two), and those sent before it that were still open at the first onset
    (``first_onset_s``): the fault may cut them, and they belong to the incident (a whole run cut
    2 of them, sent 24 ms and 4 ms before the fault phase, which the objective never saw). None
    when neither phase ran."""
    spans = [phases[name] for name in COMPLETION_WINDOW if name in phases]
    if not spans:
        return None
    start = min(s for s, _ in spans)
    end = max(e for _, e in spans)
    return stream_stats_for(samples, "fault+recovery", start, end, primary_tier, expected, in_flight_at=first_onset_s)


def stream_timeline(samples: pd.DataFrame, rows: slice, index: np.ndarray, n_buckets: int,
                    expected: ExpectedLengths | None = None) -> dict[str, np.ndarray]:
    """Per-bucket streaming series for the report, for the requests ``rows`` of start-sorted
    ``samples`` whose buckets are ``index`` (what :func:`harness.measure.timeline.timeline` cut):
    ``streams``, ``streams_completed``, ``stream_completion`` (completed share of the streams sent
    in the bucket, NaN without one; a stream ended short of ``expected`` is not completed),
    ``streams_cut``, ``streams_failed_mid_stream``, ``ttft_samples``, ``ttft_p50_ms`` and
    ``ttft_p95_ms`` (from the probe's streams; from every stream when the probe never streamed in
    the run; NaN for a bucket without a first token)."""
    streamed = samples["stream"].to_numpy()[rows] == 1
    completed = streamed & (samples["stream_completed"].to_numpy()[rows] == 1) & ~ended_short(samples, expected)[rows]
    cut = streamed & (samples["cut_after_tokens"].to_numpy()[rows] >= 0)
    mid_stream = streamed & ~completed & (samples["tokens"].to_numpy()[rows] >= 1)
    probe = constant_rate_rows(samples)
    probe_streamed = bool((probe & (samples["stream"].to_numpy() == 1)).any())
    ttft_ms = samples["ttft_ms"].to_numpy()[rows]
    ttft_rows = streamed & np.isfinite(ttft_ms)
    if probe_streamed:
        ttft_rows &= probe[rows]
    streams = bucket_counts(index, n_buckets, streamed)
    done = bucket_counts(index, n_buckets, completed)
    with np.errstate(invalid="ignore", divide="ignore"):
        completion = done / streams
    p50, p95 = _bucket_percentiles(index[ttft_rows], ttft_ms[ttft_rows], n_buckets)
    return {
        "streams": streams,
        "streams_completed": done,
        "stream_completion": completion,
        "streams_cut": bucket_counts(index, n_buckets, cut),
        "streams_failed_mid_stream": bucket_counts(index, n_buckets, mid_stream),
        "ttft_samples": bucket_counts(index, n_buckets, ttft_rows),
        "ttft_p50_ms": p50,
        "ttft_p95_ms": p95,
    }


def _bucket_percentiles(index: np.ndarray, values: np.ndarray, n_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    p50 = np.full(n_buckets, np.nan)
    p95 = np.full(n_buckets, np.nan)
    inside = (index >= 0) & (index < n_buckets)
    if inside.any():
        grouped = pd.Series(values[inside]).groupby(index[inside])
        for out, q in ((p50, 0.5), (p95, 0.95)):
            found = grouped.quantile(q)
            out[found.index.to_numpy()] = found.to_numpy()
    return p50, p95
