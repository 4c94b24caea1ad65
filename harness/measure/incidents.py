"""Every incident of a fault, on the RTO's evidence rule: when users were hurt, for how long, how
badly, and what the stack's own record says caused it (docs/method.md "Incidents").

The RTO answers "when was the service stable again": an incident ends only after W (5 s) of
healthy buckets, so a gateway whose cooldown cycle re-probes a failing provider every few seconds
keeps one long incident open, and an impact 14 s after the onset makes the RTO 14 s although users
were hurt for a quarter of a second. Incidents tell it as it is:

1. The buckets are the RTO's (requests by their start, whole buckets of ``bucket_s`` from the
   onset, unhealthy when at least ``min_bad_requests`` are bad and the Wilson lower bound of the bad
   ratio is above the error objective), judged on every request (the RTO's ``all`` stream).
2. An incident is a run of unhealthy buckets; two runs less than :data:`INCIDENT_GAP_S` apart (the
   buckets between them healthy or empty) are one incident. At 20 Hz a quarter-second bucket holds
   5 probes, so one healthy bucket inside an outage is luck; a cooldown cycle's re-probes are
   seconds apart. Two incidents whose spans (step 3 to step 4) overlap are one as well: a slow
   answer of the first can still be arriving when users of the second see theirs.
3. Its ``start_s`` is the first instant a client could see one of its bad requests (the time to
   detect's clock: a failure at its arrival, a slow answer at send + the latency bound); requests in
   flight at the onset and hurt by it belong to an incident that begins in the first bucket.
4. Its ``end_s`` is the RTO's end, applied to the incident's last unhealthy bucket: the later of
   the send of the first good request after that bucket's last bad one, and the arrival of the
   incident's last bad answer. None when no good request followed before the window ends (the
   incident is still open; ``length_s`` then runs to the end of the window).
5. ``bad``, ``failed``, ``slow``, ``requests`` and ``worst_latency_ms`` count the requests that
   started in its buckets (first to last unhealthy, the healthy ones between included).
6. ``cause``: the first event of the stack's own record (``stack-events.json``: the reference
   gateway's ``breaker_half_open`` re-probe, ``breaker_close`` / ``failback`` sending traffic
   back, a gateway's ``cooldown_end``) that came before users could see the incident: from one
   bucket before its first bad request was sent to one bucket after ``start_s``. Later events
   (a re-probe in the middle of an outage) did not cause it. None when the record names none (or
   the run kept no record).

Seconds are from the fault's onset. :func:`summarise` adds a window's incidents up: the time users
were affected in all (the lengths summed), first and last affected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.measure.buckets import bucket_counts, bucket_index, first_after_last_marker, unhealthy_buckets
from harness.measure.model import MeasureSettings

INCIDENT_GAP_S = 1.0
"""Unhealthy buckets less than this far apart belong to one incident."""

CAUSE_EVENTS: dict[str, str] = {
    "breaker_half_open": "breaker half-open: a re-probe of the failing tier",
    "cooldown_end": "cooldown ended: the gateway called the failing provider again",
    "breaker_close": "breaker closed: traffic sent back",
    "failback": "failback",
}
"""The stack events that name an incident's cause, and what they mean in words."""


@dataclass(frozen=True)
class IncidentFigures:
    """One incident of a fault (seconds from its onset); docs/method.md "Incidents"."""

    start_s: float
    end_s: float | None
    length_s: float
    requests: int
    bad: int
    failed: int
    slow: int
    worst_latency_ms: float | None
    unhealthy_buckets: int
    cause: str | None = None

    @property
    def open(self) -> bool:
        """Still open where the window ends: ``length_s`` is a lower bound."""
        return self.end_s is None


@dataclass(frozen=True)
class IncidentSummary:
    """A window's incidents added up (seconds from its start): ``total_s`` the lengths summed
    (a lower bound when ``open``), ``first_s`` the first incident's start, ``last_s`` the last
    one's end (its start + length when it is still open)."""

    incidents: int
    total_s: float
    first_s: float | None
    last_s: float | None
    open: bool


def find_incidents(
    samples: pd.DataFrame,
    good: np.ndarray,
    visible: np.ndarray,
    onset_s: float,
    until_s: float,
    settings: MeasureSettings,
    threshold: float | None,
    events: Sequence[dict[str, Any]] | None = None,
) -> list[IncidentFigures]:
    """Every incident from ``onset_s`` to ``until_s`` (epoch s). ``samples`` are start-sorted,
    ``good`` and ``visible`` aligned with them (:func:`~harness.measure.goodness.good_mask`,
    :func:`~harness.measure.goodness.visible_at`); ``threshold`` is the error objective (None: any
    bad request, on evidence); ``events`` the stack's own record (``{ts, event, tier, detail}``)."""
    bucket_s = settings.bucket_s
    n = max(0, int(np.floor((until_s - onset_s) / bucket_s + 1e-9)))
    starts_all = samples["start"].to_numpy(dtype=float)
    ends_all = samples["end"].to_numpy(dtype=float)
    window_end = onset_s + n * bucket_s
    inside = (starts_all >= onset_s) & (starts_all < window_end)
    rows = np.flatnonzero(inside)
    if n == 0 or rows.size == 0:
        return []
    index = bucket_index(starts_all[rows], onset_s, bucket_s)
    bad = ~good[rows]
    total = bucket_counts(index, n)
    bad_n = bucket_counts(index, n, bad)
    unhealthy = np.flatnonzero(unhealthy_buckets(bad_n, total, threshold, settings.min_bad_requests,
                                                 settings.confidence))
    if unhealthy.size == 0:
        return []
    gap = max(1, math.ceil(INCIDENT_GAP_S / bucket_s - 1e-9))
    splits = np.flatnonzero(np.diff(unhealthy) - 1 >= gap) + 1
    in_flight = (starts_all < onset_s) & (ends_all > onset_s) & ~good & (visible >= onset_s)
    ok_all = samples["ok"].to_numpy() == 1
    latency_all = samples["latency_ms"].to_numpy(dtype=float)
    found = []
    for group in np.split(unhealthy, splits):
        first, last = int(group[0]), int(group[-1])
        span = (index >= first) & (index <= last)
        members = rows[span]
        bad_rows = rows[span & bad]
        if first == 0:
            bad_rows = np.concatenate([bad_rows, np.flatnonzero(in_flight)])
            members = np.concatenate([members, np.flatnonzero(in_flight)])
        start = float(max(0.0, visible[bad_rows].min() - onset_s))
        restored = first_after_last_marker(index, bad, ~bad, last + 1)
        end: float | None = None
        if restored is not None:
            end = float(max(starts_all[rows[restored]], ends_all[bad_rows].max()) - onset_s)
        length = (end if end is not None else n * bucket_s) - start
        latencies = latency_all[members]
        found.append(IncidentFigures(
            start_s=round(start, 6),
            end_s=None if end is None else round(end, 6),
            length_s=round(max(0.0, length), 6),
            requests=int(members.size),
            bad=int(bad_rows.size),
            failed=int(np.count_nonzero(~ok_all[bad_rows])),
            slow=int(np.count_nonzero(ok_all[bad_rows])),
            worst_latency_ms=round(float(latencies.max()), 3) if latencies.size else None,
            unhealthy_buckets=int(group.size),
            cause=_cause(events, onset_s, float(starts_all[bad_rows].min()) - bucket_s,
                         onset_s + start + bucket_s),
        ))
    return _merged(found)


def _merged(incidents: list[IncidentFigures]) -> list[IncidentFigures]:
    """Incidents whose spans overlap made one: a slow answer of one (a 5 s timeout) can still be
    arriving when the next one's users see theirs, and the time is counted once."""
    out: list[IncidentFigures] = []
    for nxt in incidents:
        prev = out[-1] if out else None
        if prev is None or prev.end_s is None or prev.end_s < nxt.start_s:
            out.append(nxt)
            continue
        end = None if nxt.end_s is None else max(prev.end_s, nxt.end_s)
        length = (end if end is not None else nxt.start_s + nxt.length_s) - prev.start_s
        worst = [w for w in (prev.worst_latency_ms, nxt.worst_latency_ms) if w is not None]
        out[-1] = IncidentFigures(
            start_s=prev.start_s, end_s=end, length_s=round(length, 6), requests=prev.requests + nxt.requests,
            bad=prev.bad + nxt.bad, failed=prev.failed + nxt.failed, slow=prev.slow + nxt.slow,
            worst_latency_ms=max(worst) if worst else None,
            unhealthy_buckets=prev.unhealthy_buckets + nxt.unhealthy_buckets, cause=prev.cause or nxt.cause,
        )
    return out


def _cause(events: Sequence[dict[str, Any]] | None, onset_s: float, since: float, until: float) -> str | None:
    """``breaker half-open: a re-probe of the failing tier (hosted: cool-down of 5s over) at
    +13.76 s``: the first cause event of the stack's record in [since, until]."""
    for event in sorted(events or [], key=lambda e: float(e["ts"])):
        name = str(event.get("event"))
        if name in CAUSE_EVENTS and since <= float(event["ts"]) <= until:
            said = ": ".join(str(event[k]) for k in ("tier", "detail") if event.get(k))
            where = f" ({said})" if said else ""
            return f"{CAUSE_EVENTS[name]}{where}, stack's record at +{float(event['ts']) - onset_s:.2f} s"
    return None


def summarise(incidents: Sequence[IncidentFigures]) -> IncidentSummary:
    """The incidents of one window added up."""
    if not incidents:
        return IncidentSummary(incidents=0, total_s=0.0, first_s=None, last_s=None, open=False)
    last = incidents[-1]
    return IncidentSummary(
        incidents=len(incidents),
        total_s=round(sum(i.length_s for i in incidents), 6),
        first_s=incidents[0].start_s,
        last_s=round(last.end_s if last.end_s is not None else last.start_s + last.length_s, 6),
        open=any(i.open for i in incidents),
    )
