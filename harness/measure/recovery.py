"""Per-fault figures: time to detect, RTO (sustained-window rule, buckets judged on evidence),
failover, failback, degraded time, lost requests — each on a named clock, with its resolution.
docs/method.md states the rule; the steps below follow it one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.measure.buckets import (
    bucket_counts,
    bucket_index,
    first_after_last_marker,
    first_sustained_run,
    unhealthy_buckets,
)
from harness.measure.goodness import constant_rate_rows
from harness.measure.incidents import IncidentFigures, find_incidents
from harness.measure.model import FaultTiming, MeasureSettings
from harness.measure.routing import ONSET_LOOKBACK_S, degraded_s, failback_s, failover_s, served_elsewhere_at_onset

IMPACT_NONE = "none"
IMPACT_RECOVERED = "recovered"
IMPACT_UNRECOVERED = "unrecovered"

CLOCKS = {
    "time_to_detect_s": "visible: a failure at its arrival, a slow request at send + latency bound",
    "service_restored_s": "send: start of the first good request after the incident",
    "last_impacted_answer_s": "arrival: end of the last bad request of the incident",
    "rto_s": "the later of service_restored_s and last_impacted_answer_s",
    "failover_s": "arrival: end of the first successful answer from another tier",
    "failback_s": "arrival: end of the first successful primary answer of the lasting return",
}
"""Which clock each per-fault figure is on (results.json ``measurement.clocks``)."""


@dataclass(frozen=True)
class Incident:
    """What one stream of requests says about one fault (offsets in seconds from the onset).

    ``impact`` is ``none``, ``recovered`` or ``unrecovered``; ``open_reason`` names the bucket
    and the requests that kept an unrecovered incident open.
    """

    impact: str
    time_to_detect_s: float | None = None
    service_restored_s: float | None = None
    last_impacted_answer_s: float | None = None
    data_gaps_s: float = 0.0
    end_bucket: int = 0
    open_reason: str | None = None

    @property
    def rto_s(self) -> float | None:
        if self.impact == IMPACT_NONE:
            return 0.0
        if self.service_restored_s is None or self.last_impacted_answer_s is None:
            return None
        return max(self.service_restored_s, self.last_impacted_answer_s)


@dataclass(frozen=True)
class FaultMeasure:
    """The measured figures of one fault. Seconds are counted from the fault's onset (t0).

    ``impact`` is ``none`` (no unhealthy bucket after t0; ``rto_s`` = 0), ``recovered`` or
    ``unrecovered`` (never healthy for W before the data ends; ``rto_s`` is None).
    ``recovered_at`` is the recovery instant t0 + rto_s (epoch s). ``rto_by_stream`` holds the
    RTO from the probe stream alone and from every request. ``notes`` says why a figure is None.
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
    service_restored_s: float | None = None
    last_impacted_answer_s: float | None = None
    rto_by_stream: dict[str, float | None] = field(default_factory=dict)
    incidents: tuple[IncidentFigures, ...] = ()
    """Every incident from the onset to the next fault's (or the end of the data), on the RTO's
    evidence rule (harness/measure/incidents.py)."""


def resolution_s(settings: MeasureSettings, onset_uncertainty_s: float) -> float:
    """max(1 / probe_rate_hz + onset_uncertainty_s, bucket_s): how exact a fault's figures are."""
    return max(settings.probe_interval_s + onset_uncertainty_s, settings.bucket_s)


def method_text(settings: MeasureSettings, max_error_rate: float | None, good_rule: str) -> str:
    """The rule in one line, e.g. for ``faults[].method``."""
    threshold = "0 (any bad request)" if max_error_rate is None else f"{max_error_rate:g}"
    return (
        f"sustained window: {settings.bucket_s * 1000:g} ms buckets, unhealthy when >= "
        f"{settings.min_bad_requests} bad and the {settings.confidence:.0%} Wilson lower bound of "
        f"the bad ratio > {threshold}, empty buckets never healthy; recovered after "
        f"{settings.window_s:g} s of healthy buckets; {good_rule}"
    )


@dataclass(frozen=True)
class _Stream:
    """The rows of one stream from the onset to the end of the data, with their buckets."""

    starts: np.ndarray
    ends: np.ndarray
    bad: np.ndarray
    visible: np.ndarray
    rows: np.ndarray
    index: np.ndarray
    n_buckets: int
    in_flight_bad_ends: np.ndarray
    in_flight_bad_visible: np.ndarray


def _stream(
    samples: pd.DataFrame,
    good: np.ndarray,
    visible: np.ndarray,
    rows: np.ndarray,
    onset_s: float,
    data_end_s: float,
    bucket_s: float,
) -> _Stream:
    """Step 1: the requests of ``rows`` that started in [onset, data end), bucketed. Only whole
    buckets are judged: a partial last bucket (the load stopping) decides nothing."""
    starts_all = samples["start"].to_numpy()
    ends_all = samples["end"].to_numpy()
    n_buckets = max(0, int(np.floor((data_end_s - onset_s) / bucket_s + 1e-9)))
    window_end = onset_s + n_buckets * bucket_s
    inside = rows & (starts_all >= onset_s) & (starts_all < window_end)
    # In flight at the onset and seen to go bad after it: a request already visibly bad before
    # the onset was hurt by something else.
    in_flight = rows & (starts_all < onset_s) & (ends_all > onset_s) & ~good & (visible >= onset_s)
    starts = starts_all[inside]
    return _Stream(
        starts=starts,
        ends=ends_all[inside],
        bad=~good[inside],
        visible=visible[inside],
        rows=np.flatnonzero(inside),
        index=bucket_index(starts, onset_s, bucket_s),
        n_buckets=n_buckets,
        in_flight_bad_ends=ends_all[in_flight],
        in_flight_bad_visible=visible[in_flight],
    )


def find_incident(
    stream: _Stream,
    onset_s: float,
    settings: MeasureSettings,
    threshold: float | None,
    samples: pd.DataFrame,
    bound_ms: float | None,
) -> Incident:
    """Steps 2-5: judge buckets on evidence, find the incident and its end, stamp the clocks."""
    n = stream.n_buckets
    window = f"{settings.window_s:g} s"
    if n == 0 or stream.starts.size == 0:
        return Incident(IMPACT_UNRECOVERED, open_reason="no requests started after the onset: nothing was observed")
    total = bucket_counts(stream.index, n)
    bad_n = bucket_counts(stream.index, n, stream.bad)
    known = total > 0
    unhealthy = unhealthy_buckets(bad_n, total, threshold, settings.min_bad_requests, settings.confidence)
    healthy = known & ~unhealthy
    unhealthy_at = np.flatnonzero(unhealthy)
    w = settings.window_buckets

    if unhealthy_at.size == 0:
        run = first_sustained_run(healthy, w)
        gaps = float(np.count_nonzero(~known[: n if run is None else run])) * settings.bucket_s
        if run is None:
            return Incident(
                IMPACT_UNRECOVERED, data_gaps_s=gaps,
                open_reason=f"never healthy for {window} after the onset before the data ends "
                f"({n * settings.bucket_s:.2f} s observed): too little was seen",
            )
        return Incident(IMPACT_NONE, data_gaps_s=gaps)

    first = int(unhealthy_at[0])
    run = first_sustained_run(healthy, w, after=first)
    row = None if run is None else first_after_last_marker(stream.index, stream.bad, ~stream.bad, run)
    closing = n - 1 if row is None or run is None else run - 1
    in_incident = stream.bad & (stream.index >= first) & (stream.index <= closing)
    visible = stream.visible[in_incident]
    ends = stream.ends[in_incident]
    if first == 0:  # requests in flight at the onset and hurt by it belong to the incident
        visible = np.concatenate([visible, stream.in_flight_bad_visible])
        ends = np.concatenate([ends, stream.in_flight_bad_ends])
    detect = float(max(0.0, visible.min() - onset_s))
    gaps = float(np.count_nonzero(~known[: closing + 1])) * settings.bucket_s
    if row is None:
        last = int(unhealthy_at[-1])
        return Incident(
            IMPACT_UNRECOVERED, time_to_detect_s=detect, data_gaps_s=gaps, end_bucket=last,
            open_reason=_open_reason(stream, last, settings, int(bad_n[last]), int(total[last]), n, samples, bound_ms),
        )
    return Incident(
        IMPACT_RECOVERED,
        time_to_detect_s=detect,
        service_restored_s=float(stream.starts[row] - onset_s),
        last_impacted_answer_s=float(max(0.0, ends.max() - onset_s)),
        data_gaps_s=gaps,
        end_bucket=closing,
    )


def _open_reason(
    stream: _Stream, bucket: int, settings: MeasureSettings, bad: int, total: int, n: int,
    samples: pd.DataFrame, bound_ms: float | None,
) -> str:
    """``never healthy for 5 s after bucket +12.50 s (4/5 bad: 3 HTTP 503, 1 slower than 250 ms);
    data ends at +20.00 s``: what kept the incident open."""
    rows = stream.rows[(stream.index == bucket) & stream.bad]
    causes = pd.Series(why_bad(samples.iloc[rows], bound_ms)).value_counts()
    listed = ", ".join(f"{count} {cause}" for cause, count in causes.head(3).items())
    return (
        f"never healthy for {settings.window_s:g} s after bucket +{bucket * settings.bucket_s:.2f} s "
        f"({bad}/{total} bad: {listed}); data ends at +{n * settings.bucket_s:.2f} s"
    )


def _quiet_impact(
    samples: pd.DataFrame, rows: np.ndarray, fault: FaultTiming, data_end_s: float, good: np.ndarray
) -> str:
    """What users saw of a fault that caused no incident: the bad requests there were (too few
    per bucket to be evidence) and the slowest successful answer while it was applied."""
    starts = samples["start"].to_numpy()
    until = fault.reverted_at if fault.reverted_at is not None else data_end_s
    during = rows & (starts >= fault.onset_at) & (starts < until)
    ok = samples["ok"].to_numpy() == 1
    latency = samples["latency_ms"].to_numpy()[during & ok]
    bad = int(np.count_nonzero(~good[during]))
    slowest = f"slowest successful answer {latency.max():.0f} ms" if latency.size else "no successful answer"
    if bad == 0:
        return f"while applied, none of {int(during.sum())} requests failed or was too slow; {slowest}"
    return (
        f"while applied, {bad} of {int(during.sum())} requests were bad, never enough in one bucket to be "
        f"evidence of an incident; {slowest}"
    )


def why_bad(samples: pd.DataFrame, bound_ms: float | None) -> np.ndarray:
    """Each request's reason for being bad in a few words (``HTTP 503``, ``timeout``,
    ``slower than 250 ms``); "" for good ones."""
    ok = samples["ok"].to_numpy() == 1
    errors = samples["error"].to_numpy().astype(object)
    status = samples["status"].to_numpy()
    out = np.where(ok, "", np.where(errors != "", errors, "HTTP " + status.astype(str))).astype(object)
    if bound_ms is not None:
        slow = ok & (samples["latency_ms"].to_numpy() > bound_ms)
        out[slow] = f"slower than {bound_ms:.0f} ms"
    return out


def measure_fault(
    samples: pd.DataFrame,
    good: np.ndarray,
    visible: np.ndarray,
    bound_ms: float | None,
    fault: FaultTiming,
    settings: MeasureSettings,
    *,
    max_error_rate: float | None,
    primary: str | None,
    method: str,
    data_end_s: float | None = None,
    incidents_until_s: float | None = None,
    stack_events: Sequence[dict[str, Any]] | None = None,
) -> FaultMeasure:
    """Measure one fault from start-sorted ``samples`` and the aligned ``good`` and ``visible``
    (:func:`~harness.measure.goodness.visible_at`) arrays; ``bound_ms`` is the latency bound
    they were made with (for the words of a reason).

    The data ends at ``data_end_s`` (the end of the last phase; default: the last start), and
    only whole buckets before it are judged. ``max_error_rate`` is the bucket threshold (None: any
    bad request, on evidence); ``primary`` the baseline tier (None: failover/failback cannot be
    measured). Incidents are listed up to ``incidents_until_s`` (default: the end of the data),
    each with its cause when ``stack_events`` (the stack's own record) names one.
    """
    onset_s = fault.onset_at
    end_s = data_end_or_last_start(samples, onset_s, data_end_s)
    streams = request_streams(samples)
    incidents = {
        name: find_incident(
            _stream(samples, good, visible, rows, onset_s, end_s, settings.bucket_s),
            onset_s, settings, max_error_rate, samples, bound_ms,
        )
        for name, rows in streams.items()
    }
    incident = incidents["all"]
    resolution = resolution_s(settings, fault.onset_uncertainty_s)
    quiet = None
    if incident.impact == IMPACT_NONE:
        quiet = _quiet_impact(samples, streams.get("probe", streams["all"]), fault, end_s, good)
    window = after_onset(samples, onset_s, end_s, settings.bucket_s)
    routing = routing_figures(samples, window, onset_s, primary, settings)
    rto = incident.rto_s
    return FaultMeasure(
        fault=fault,
        time_to_detect_s=incident.time_to_detect_s,
        rto_s=rto,
        recovered_at=None if rto is None else onset_s + rto,
        failover_s=routing.failover_s,
        failback_s=routing.failback_s,
        degraded_s=routing.degraded_s,
        lost_requests=lost_requests(samples, window),
        data_gaps_s=incident.data_gaps_s,
        resolution_s=resolution,
        impact=incident.impact,
        method=method,
        notes=incident_notes(incident, resolution, quiet) | routing_notes(routing, primary, settings),
        service_restored_s=incident.service_restored_s,
        last_impacted_answer_s=incident.last_impacted_answer_s,
        rto_by_stream={name: inc.rto_s for name, inc in incidents.items()},
        incidents=tuple(find_incidents(
            samples, good, visible, onset_s, end_s if incidents_until_s is None else min(end_s, incidents_until_s),
            settings, max_error_rate, stack_events,
        )),
    )


def data_end_or_last_start(samples: pd.DataFrame, onset_s: float, data_end_s: float | None) -> float:
    """Where the data ends: ``data_end_s`` when given, else the last request's start (the onset
    when there are no requests)."""
    if data_end_s is not None:
        return data_end_s
    starts = samples["start"].to_numpy()
    return float(starts[-1]) if starts.size else onset_s


def request_streams(samples: pd.DataFrame) -> dict[str, np.ndarray]:
    """The streams an incident is judged on, as row masks: ``probe`` (the constant-rate stream,
    when the run had one) and ``all`` (every request). ``all`` decides the figures; both give
    ``rto_by_stream``."""
    everything = np.ones(len(samples), dtype=bool)
    probe_rows = constant_rate_rows(samples)
    if probe_rows.any():
        return {"probe": probe_rows, "all": everything}
    return {"all": everything}


def incident_notes(incident: Incident, resolution: float, quiet_impact: str | None) -> dict[str, str]:
    """Why the incident's figures are missing or coarse: no impact (with what users saw of the
    fault, ``quiet_impact``), never recovered, or detected faster than the resolution."""
    notes: dict[str, str] = {}
    if incident.impact == IMPACT_NONE:
        notes["time_to_detect_s"] = "no observed impact: no bucket after the onset was unhealthy on evidence"
        if quiet_impact is not None:
            notes["impact"] = quiet_impact
    elif incident.impact == IMPACT_UNRECOVERED:
        notes["rto_s"] = incident.open_reason or "not recovered"
        if incident.time_to_detect_s is None:
            notes["time_to_detect_s"] = "no bad request observed after the onset"
    if incident.time_to_detect_s is not None and incident.time_to_detect_s < resolution:
        notes.setdefault(
            "time_to_detect_s",
            f"finer than the {resolution:.2f} s resolution: read as 'within {resolution:.2f} s'",
        )
    return notes


@dataclass(frozen=True)
class AfterOnset:
    """The requests that started in [onset, data end): their rows and their buckets from the onset."""

    rows: slice
    bucket: np.ndarray
    n_buckets: int


def after_onset(samples: pd.DataFrame, onset_s: float, data_end_s: float, bucket_s: float) -> AfterOnset:
    starts = samples["start"].to_numpy()
    rows = slice(
        int(np.searchsorted(starts, onset_s, side="left")),
        int(np.searchsorted(starts, data_end_s, side="left")),
    )
    bucket = bucket_index(starts[rows], onset_s, bucket_s)
    return AfterOnset(rows=rows, bucket=bucket, n_buckets=int(bucket[-1]) + 1 if bucket.size else 0)


@dataclass(frozen=True)
class Routing:
    """Where traffic went after the onset (seconds from the onset; None when not seen)."""

    failover_s: float | None
    failback_s: float | None
    degraded_s: float | None
    elsewhere_at_onset: str | None = None  # the tier traffic was already on, not the primary


def routing_figures(
    samples: pd.DataFrame, window: AfterOnset, onset_s: float, primary: str | None, settings: MeasureSettings
) -> Routing:
    """Failover, failback and degraded time.

    Routing figures look at every successful answer that arrived after the onset, including
    requests in flight at the onset that a gateway retried on another tier: that is when traffic
    moved, and what a gateway's routing log records. Whether the answer was fast enough is the
    RTO's business: the first answers from the alternate carry the failed attempt's time. When
    traffic was already off the primary at the onset, no failover is measured (:func:`harness.
    measure.routing.served_elsewhere_at_onset`).
    """
    answered = samples["ok"].to_numpy() == 1
    ends = samples["end"].to_numpy()
    tiers = samples["tier"].to_numpy()
    rows = window.rows
    elsewhere = served_elsewhere_at_onset(ends, answered, tiers, onset_s, primary)
    failover = None if elsewhere is not None else failover_s(ends, answered, tiers, onset_s, primary)
    failback = failback_s(
        ends[rows], answered[rows], tiers[rows], window.bucket, window.n_buckets, onset_s, primary,
        None if failover is None else int(failover // settings.bucket_s), settings.window_buckets,
    )
    degraded = degraded_s(
        answered[rows], samples["degraded"].to_numpy()[rows], window.bucket, window.n_buckets, settings.bucket_s
    )
    return Routing(failover_s=failover, failback_s=failback, degraded_s=degraded, elsewhere_at_onset=elsewhere)


def routing_notes(routing: Routing, primary: str | None, settings: MeasureSettings) -> dict[str, str]:
    """Why failover or failback is missing."""
    if primary is None:
        reason = "primary tier unknown: no successful baseline response carried X-Tier"
        return {"failover_s": reason, "failback_s": reason}
    if routing.elsewhere_at_onset is not None:
        return {
            "failover_s": f"traffic was already on {routing.elsewhere_at_onset}, not {primary}, in the "
                          f"{ONSET_LOOKBACK_S:g} s before the onset: this fault caused no failover to measure",
            "failback_s": "no failover",
        }
    if routing.failover_s is None:
        return {
            "failover_s": f"no good response from a tier other than {primary} after onset",
            "failback_s": "no failover",
        }
    if routing.failback_s is None:
        return {"failback_s": f"never served by {primary} alone for {settings.window_s:g} s after the failover"}
    return {}


def lost_requests(samples: pd.DataFrame, window: AfterOnset) -> int:
    """Requests started after the onset that got no response at all (status 0)."""
    return int(np.count_nonzero(samples["status"].to_numpy()[window.rows] == 0))
