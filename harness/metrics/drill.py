"""What a drill does with Prometheus, in the order the engine calls it (docs/metrics.md):

1. :meth:`MetricsWatch.preflight` before any fault: Prometheus answers, has scraped its targets,
   every query of the scenario runs, and each ``steady_state`` check holds for its ``for``.
   Unreachable or a query that fails to run: AbortedError (exit 3); an expression Prometheus
   cannot parse: ScenarioError (exit 2); a steady state not met: AbortedError naming the query.
2. :meth:`MetricsWatch.poll` from the drive loop: the ``stop_when.queries`` conditions, every
   :data:`POLL_S`; a trip is returned for the engine to roll back on.
3. :meth:`MetricsWatch.after_recovery` at the end of the recovery phase: the steady state again;
   a check that fails there fails the drill (verdict ``failed``, said by name) but aborts nothing.
4. :meth:`MetricsWatch.record` before the rollback stops the stack: the ``metrics`` queries over
   the whole run, into ``metrics.json`` for results and the report.

Every step is journaled (``metrics.*`` events) so results can be recomputed from the run
directory alone.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.errors import AbortedError, ScenarioError
from harness.metrics import METRICS_FILE
from harness.metrics.checks import CheckOutcome, ConditionTracker, ConditionTrip, first_broken_at, judge_window
from harness.metrics.client import PrometheusClient, PrometheusError, PromQLError, Series
from harness.rundir.events import (
    DependencyLost,
    MetricsError,
    MetricsPreflight,
    MetricsRecorded,
    MetricsSteadyStateAfter,
    StopMetricsReaction,
    StopTripped,
)
from harness.rundir.journal import Journal
from harness.runtime.base import Runtime
from harness.scenario.model import PromCheck, Scenario

POLL_S = 0.25  # stop conditions: well under the 1 s scrape interval, so a new sample is seen within 0.25 s
FIRST_SCRAPE_TIMEOUT_S = 20.0
LOST_AFTER_S = 3.0  # a stop condition nobody can evaluate for this long aborts the drill
REACTION_STEP_S = 0.1  # the resolution of "when the condition became true in Prometheus"
Say = Callable[[str], None]


def uses_prometheus(spec: Scenario) -> bool:
    return bool(spec.steady_state or spec.metrics or (spec.stop_when is not None and spec.stop_when.queries))


def open_metrics_watch(
    spec: Scenario, scenario_path: Path, stack: Runtime, journal: Journal, say: Say
) -> MetricsWatch | None:
    """The watch for a scenario that uses Prometheus (None otherwise); ScenarioError (exit 2)
    when it does but names no Prometheus and the stack runs none."""
    if not uses_prometheus(spec):
        return None
    url = spec.prometheus.url if spec.prometheus is not None else stack.prometheus_url
    if url is None:
        raise ScenarioError(
            f"{scenario_path}: steady_state, stop_when.queries and metrics need a Prometheus: add "
            "`prometheus: {url: http://127.0.0.1:9090}` or use a stack that runs one "
            "(targets/local-stack.yaml, compose/staging.yaml)"
        )
    return MetricsWatch(spec, PrometheusClient(url), journal, say)


class MetricsWatch:
    def __init__(self, spec: Scenario, client: PrometheusClient, journal: Journal, say: Say) -> None:
        self.spec = spec
        self.client = client
        self.journal = journal
        self.say = say
        self.scrape_interval_s = 1.0
        stop_checks = spec.stop_when.queries if spec.stop_when is not None else []
        self.trackers = [ConditionTracker(check) for check in stop_checks]
        self._next_poll = 0.0
        self._failing_since: float | None = None

    # -- 1. preflight -----------------------------------------------------------------------

    def preflight(self) -> None:
        url = self.client.url
        self.say(f"preflight: Prometheus at {url}")
        try:
            self.scrape_interval_s = self.client.scrape_interval_s()
            self.client.wait_for_first_scrape(FIRST_SCRAPE_TIMEOUT_S)
            for query in self._all_queries():
                self.client.query(query)
        except PromQLError as exc:
            self.journal.write(MetricsPreflight(url=url, ok=False, error=str(exc)))
            raise ScenarioError(f"{exc}. Nothing was applied.") from None
        except PrometheusError as exc:
            self.journal.write(MetricsPreflight(url=url, ok=False, error=str(exc)))
            raise AbortedError(f"{exc}. Nothing was applied.", reason="preflight") from None
        outcomes = self._steady_state_now()
        self.journal.write(MetricsPreflight(url=url, ok=all(o.passed for o in outcomes),
                           scrape_interval_s=self.scrape_interval_s, steady_state=[o.to_dict() for o in outcomes]))
        failed = [o for o in outcomes if not o.passed]
        for o in outcomes:
            mark = "met" if o.passed else "[red]NOT met[/red]"
            self.say(f"steady state {mark}: {escape(o.condition)} ({escape(o.detail)})")
        if failed:
            raise AbortedError(
                "steady state not met before any fault: "
                + "; ".join(f"{o.condition}: {o.detail}" for o in failed) + ". Nothing was applied.",
                reason="preflight",
            )

    def _all_queries(self) -> list[str]:
        return ([c.query for c in self.spec.steady_state] + [t.check.query for t in self.trackers]
                + [m.query for m in self.spec.metrics])

    def _steady_state_now(self) -> list[CheckOutcome]:
        """Each check over the ``for`` that starts now (the longest one is waited for once)."""
        if not self.spec.steady_state:
            return []
        longest_s = max(c.for_s for c in self.spec.steady_state)
        start = time.time()
        if longest_s:
            self.say(f"preflight: watching the steady state for {longest_s:g} s")
            # Data up to the window's end must be scraped before it is judged.
            time.sleep(longest_s + self.scrape_interval_s)
        return self._judge(start + longest_s, "preflight")

    def _judge(self, end: float, when: str) -> list[CheckOutcome]:
        outcomes = []
        for check in self.spec.steady_state:
            start = end - check.for_s
            try:
                series = self._window(check, start, end)
            except PrometheusError as exc:
                outcomes.append(CheckOutcome(check.query, check.describe(), False, f"query failed: {exc}", start, end))
                continue
            outcomes.append(judge_window(check, series, start, end))
        return outcomes

    def _window(self, check: PromCheck, start: float, end: float) -> list[Series]:
        if check.for_s <= 0:
            return [Series(s.labels, [(end, s.value)]) for s in self.client.query(check.query, at=end)]
        return self.client.query_range(check.query, start, end, min(self.scrape_interval_s, check.for_s))

    # -- 2. stop conditions -----------------------------------------------------------------

    def poll(self, now: float) -> ConditionTrip | None:
        """Evaluate the stop conditions (at most every POLL_S); a trip, or None. Prometheus
        failing for LOST_AFTER_S aborts: a drill must not run on without its stop condition."""
        if not self.trackers or now < self._next_poll:
            return None
        self._next_poll = now + POLL_S
        for tracker in self.trackers:
            try:
                samples = self.client.query(tracker.check.query, at=now)
            except PrometheusError as exc:
                self._failing_since = self._failing_since or now
                if now - self._failing_since >= LOST_AFTER_S:
                    self.journal.write(DependencyLost(what="prometheus", url=self.client.url, error=str(exc)))
                    raise AbortedError(
                        f"the stop condition cannot be evaluated: {exc} (for {LOST_AFTER_S:g} s)", reason="dependency"
                    ) from None
                return None
            self._failing_since = None
            trip = tracker.update(now, samples)
            if trip is not None:
                return trip
        return None

    def tripped(self, trip: ConditionTrip, detected_at: float) -> None:
        self.journal.write(StopTripped(
            condition=trip.condition(), query=trip.check.query, source="prometheus",
            measured=None if math.isnan(trip.breach.value) else trip.breach.value, series=trip.breach.series,
            for_s=trip.check.for_s, broken_since=trip.broken_since, held_at=trip.held_at, detected_at=detected_at,
        ))

    def rolled_back(self, trip: ConditionTrip, rollback_done_at: float) -> dict[str, Any]:
        """When the condition became true in Prometheus (a fine range query over the last
        moments, so the instant is the breaching sample's, to REACTION_STEP_S), and how long
        from there and from the condition holding for its ``for`` to the end of the rollback."""
        look_back_s = trip.check.for_s + 3 * self.scrape_interval_s + 5.0
        true_at: float | None = None
        try:
            series = self.client.query_range(trip.check.query, trip.held_at - look_back_s, trip.held_at,
                                             REACTION_STEP_S)
            true_at = first_broken_at(trip.check, series, trip.held_at)
            # The range query's grid lags the breaching sample by up to one step; the engine's own
            # first evaluation that saw the breach cannot precede the sample: take the earlier.
            true_at = trip.broken_since if true_at is None else min(true_at, trip.broken_since)
        except PrometheusError as exc:
            self.journal.write(MetricsError(what="stop reaction", error=str(exc)))
        held_in_prometheus = None if true_at is None else true_at + trip.check.for_s
        reaction = StopMetricsReaction(
            condition_true_at=true_at,
            condition_held_at=held_in_prometheus,
            rollback_done_at=rollback_done_at,
            true_to_rollback_s=None if true_at is None else rollback_done_at - true_at,
            held_to_rollback_s=None if held_in_prometheus is None else rollback_done_at - held_in_prometheus,
            scrape_interval_s=self.scrape_interval_s,
        )
        self.journal.write(reaction)
        figures: dict[str, Any] = reaction.fields()
        if held_in_prometheus is not None:
            self.say(
                f"rollback finished {rollback_done_at - held_in_prometheus:.2f} s after the condition held in "
                f"Prometheus (true at its sample +{trip.check.for_s:g} s; scrape interval {self.scrape_interval_s:g} s)"
            )
        return figures

    # -- 3. after recovery ------------------------------------------------------------------

    def after_recovery(self, recovery_end: float) -> list[CheckOutcome]:
        if not self.spec.steady_state:
            return []
        # The last scrape of the recovery phase must land before the window is judged.
        time.sleep(self.scrape_interval_s + 0.5)
        outcomes = self._judge(recovery_end, "after recovery")
        self.journal.write(MetricsSteadyStateAfter(steady_state=[o.to_dict() for o in outcomes]))
        for o in outcomes:
            mark = "held" if o.passed else "[red]NOT met[/red]"
            self.say(f"steady state after recovery {mark}: {escape(o.condition)} ({escape(o.detail)})")
        return outcomes

    # -- 4. recording -----------------------------------------------------------------------

    def record(self, run_dir: Path, start: float, end: float) -> None:
        """The ``metrics`` queries over [start, end] into ``metrics.json`` (best effort: a query
        that fails is noted in the file, never fails the drill)."""
        recorded: list[dict[str, Any]] = []
        step_s = max(self.scrape_interval_s, 0.25)
        # This runs before the rollback: once Prometheus fails to answer, the rest are not asked,
        # so a dead server delays the faults' removal by one timeout, not one per query.
        gave_up: str | None = None
        for metric in self.spec.metrics:
            entry: dict[str, Any] = {"name": metric.title, "query": metric.query, "unit": metric.unit}
            if gave_up is not None:
                entry["series"], entry["error"] = [], f"not asked: {gave_up}"
                recorded.append(entry)
                continue
            try:
                entry["series"] = [
                    {"labels": s.labels, "points": [[t, v if math.isfinite(v) else None] for t, v in s.points]}
                    for s in self.client.query_range(metric.query, start, end, step_s)
                ]
            except PromQLError as exc:
                entry["series"], entry["error"] = [], str(exc)
            except PrometheusError as exc:
                entry["series"], entry["error"] = [], str(exc)
                gave_up = f"Prometheus failed on an earlier query ({exc})"
            recorded.append(entry)
        document = {"prometheus_url": self.client.url, "scrape_interval_s": self.scrape_interval_s,
                    "start": start, "end": end, "step_s": step_s, "queries": recorded}
        path = Path(run_dir) / METRICS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document, indent=1), encoding="utf-8")
        os.replace(tmp, path)
        self.journal.write(MetricsRecorded(file=METRICS_FILE, queries=len(recorded),
                           errors=[e["error"] for e in recorded if "error" in e]))

    def close(self) -> None:
        self.client.close()

