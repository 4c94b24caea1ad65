"""One call from samples to every figure of a run: phases, faults, objectives met or not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.measure.answers import AnswerStats, answer_phase_stats, has_invalid_answers
from harness.measure.goodness import describe_good, good_mask, latency_bound, visible_at
from harness.measure.health import Health, assess_health
from harness.measure.impact import Impact, measure_impact
from harness.measure.model import FaultTiming, HarnessTrouble, MeasureSettings, ObjectiveSpec, Phases
from harness.measure.objectives import ObjectiveResult, after_failover_span, all_met, evaluate_objectives
from harness.measure.phases import PhaseStats, phase_stats, stats_for
from harness.measure.recovery import FaultMeasure, measure_fault, method_text, resolution_s
from harness.measure.routing import first_good_from_tier_s, primary_tier
from harness.measure.samples import sort_samples
from harness.measure.streams import (
    ExpectedLengths,
    StreamStats,
    completion_window,
    expected_lengths,
    stream_phase_stats,
    stream_stats_for,
)

METHOD_ID = "drill.rto/v2"
"""Names the method in docs/method.md; bumped whenever a rule there changes."""


@dataclass(frozen=True)
class Measurement:
    """Everything measured from one run's samples (harness/results/model.py formats it for
    results.json)."""

    phases: dict[str, PhaseStats]
    faults: list[FaultMeasure]
    objectives: list[ObjectiveResult]
    settings: MeasureSettings
    samples: int
    primary_tier: str | None
    baseline_p95_ms: float | None
    latency_bound_ms: float | None
    lost_requests: int | None
    method: str
    latency_bound_rule: str = ""
    p95_window: PhaseStats | None = None
    streams: dict[str, StreamStats] = field(default_factory=dict)
    """Per phase, the streamed requests' figures; {} when no request of the run streamed."""
    stream_completion: StreamStats | None = None
    """The streams of the fault and recovery phases (``min_stream_completion``'s window)."""
    stream_lengths: ExpectedLengths = field(default_factory=dict)
    """Per load source, the fewest tokens of a completed baseline stream: a stream ending with
    [DONE] below it ended short, and is not completed (harness/measure/streams.py)."""
    ttft_window: StreamStats | None = None
    answers: dict[str, AnswerStats] = field(default_factory=dict)
    """Per phase, answers checked against their API; {} when none was invalid and no objective asks."""
    impact: Impact | None = None
    """What users felt from the first onset on, on the RTO's evidence rule (None without a fault)."""
    health: Health | None = None
    """The instrument's own health (measure/health.py); None for a run directory made before the
    harness recorded it (no ``intended`` column): such runs recompute to the figures they gave."""

    @property
    def objectives_met(self) -> bool:
        """Every objective passed (or none was set); harness/verdict.py turns this into the verdict."""
        return all_met(self.objectives)

    @property
    def undecided(self) -> list[str]:
        """One line per cause, ``objective: why`` for every objective the health step left
        undecided (harness/verdict.py: any makes the run inconclusive)."""
        if self.health is None:
            return []
        return [line for u in self.health.undecided for line in u.reasons]

    @property
    def decided_objectives_met(self) -> bool:
        """Every objective that the health step did not leave undecided passed."""
        undecided = set(self.health.undecided_names) if self.health is not None else set()
        return all_met([o for o in self.objectives if o.name not in undecided])

    @property
    def resolution_s(self) -> float:
        """The coarsest fault resolution (or the no-fault one when no fault was applied)."""
        if not self.faults:
            return resolution_s(self.settings, 0.0)
        return max(f.resolution_s for f in self.faults)


def measure_run(
    samples: pd.DataFrame,
    phases: Phases,
    faults: list[FaultTiming],
    objectives: ObjectiveSpec,
    settings: MeasureSettings,
    troubles: list[HarnessTrouble] | None = None,
    stack_events: list[dict[str, Any]] | None = None,
) -> Measurement:
    """Measure a run. ``samples`` has the sample columns (any order of rows); ``phases`` maps
    ``baseline``/``fault``/``recovery`` to (start_epoch_s, end_epoch_s).

    The data ends where the last phase ends (requests started after it, as the load stops, are
    not judged). The latency bound of a good request comes from the settings (default: the
    runbook trigger, see :func:`~harness.measure.goodness.latency_bound`); the primary tier from
    ``settings.primary_tier`` or, when None, the baseline's successful responses.

    ``troubles``: the harness's own trouble records; given (even empty), the run's measurement
    health is assessed (``Measurement.health``); None for run directories made before it existed.
    ``stack_events``: the stack's own record (``{ts, event, ...}``), which names incidents' causes.
    """
    samples = sort_samples(samples)
    stats = phase_stats(samples, phases)
    baseline = stats.get("baseline")
    baseline_p95 = None if baseline is None else baseline.p95_ms
    bound = latency_bound(settings, baseline_p95)
    good = good_mask(samples, bound.ms)
    visible = visible_at(samples, bound.ms)
    data_end_s = max(end for _, end in phases.values()) if phases else None
    primary = settings.primary_tier or primary_tier(samples, samples["ok"].to_numpy() == 1, phases.get("baseline"))
    method = method_text(settings, objectives.max_error_rate, describe_good(bound))
    ordered = sorted(faults, key=lambda f: f.onset_at)
    measured = [
        measure_fault(
            samples, good, visible, bound.ms, fault, settings,
            max_error_rate=objectives.max_error_rate, primary=primary, method=method, data_end_s=data_end_s,
            incidents_until_s=_next_onset(fault, ordered), stack_events=stack_events,
        )
        for fault in ordered
    ]
    impact = measure_impact(samples, good, bound.ms, measured, data_end_s, settings, objectives.max_error_rate,
                            visible)
    first_onset = ordered[0].onset_at if ordered else None
    lost = None
    failover_to_s = None
    if first_onset is not None:
        starts = samples["start"].to_numpy()
        after = (starts >= first_onset) & (starts < (data_end_s if data_end_s is not None else np.inf))
        lost = int(np.count_nonzero(after & (samples["status"].to_numpy() == 0)))
        if objectives.failover_to is not None:
            answered = samples["ok"].to_numpy() == 1
            failover_to_s = first_good_from_tier_s(samples, answered, objectives.failover_to, first_onset)
    p95_window = _p95_window(samples, objectives, stats, measured)
    lengths = expected_lengths(samples, phases.get("baseline"), first_onset)
    streams = stream_phase_stats(samples, phases, primary, lengths)
    completion = completion_window(samples, phases, primary, lengths, first_onset) if streams else None
    ttft_window = _ttft_window(samples, objectives, streams, stats, measured, primary, lengths)
    baseline_streams = streams.get("baseline")
    answers: dict[str, AnswerStats] = {}
    if objectives.max_invalid_answer_rate is not None or has_invalid_answers(samples):
        answers = answer_phase_stats(samples, phases)
    results = evaluate_objectives(
        objectives,
        phases=stats,
        faults=measured,
        baseline_p95_ms=baseline_p95,
        p95_window=p95_window,
        failover_to_s=failover_to_s,
        lost_requests=lost,
        baseline_ttft_p95_ms=None if baseline_streams is None else baseline_streams.ttft_p95_ms,
        ttft_window=ttft_window,
        completion=completion,
        answers=answers.get("fault"),
        impact=None if impact is None else impact.incidents,
    )
    health = None if troubles is None else assess_health(
        samples, phases, troubles, spec=objectives, objectives=results, stats=stats, faults=measured,
        p95_window=p95_window, baseline_p95_ms=baseline_p95, probe_interval_s=settings.probe_interval_s,
        window_s=settings.window_s, bucket_s=settings.bucket_s,
        impact=None if impact is None else impact.incidents,
    )
    return Measurement(
        phases=stats,
        faults=measured,
        objectives=results,
        settings=settings,
        samples=len(samples),
        primary_tier=primary,
        baseline_p95_ms=baseline_p95,
        latency_bound_ms=bound.ms,
        lost_requests=lost,
        method=f"{METHOD_ID} (docs/method.md): {method}",
        latency_bound_rule=bound.rule,
        p95_window=p95_window,
        streams=streams,
        stream_completion=completion,
        stream_lengths=lengths,
        ttft_window=ttft_window,
        answers=answers,
        impact=impact,
        health=health,
    )


def _next_onset(fault: FaultTiming, ordered: list[FaultTiming]) -> float | None:
    """Where a fault's incidents stop being its own: the first later onset after it was reverted
    (faults applied together share their incidents); None: the end of the data."""
    if fault.reverted_at is None:
        return None
    later = [f.onset_at for f in ordered if f.onset_at >= fault.reverted_at and f is not fault]
    return min(later, default=None)


def _p95_window(
    samples: pd.DataFrame, objectives: ObjectiveSpec, stats: dict[str, PhaseStats], faults: list[FaultMeasure]
) -> PhaseStats | None:
    """The window a latency objective is judged on: the fault phase, the recovery phase, or
    ``after_failover`` (:func:`harness.measure.objectives.after_failover_span`). None when the window does not exist (no
    such phase; no failover)."""
    if not objectives.has_p95:
        return None
    if objectives.p95_during != "after_failover":
        return stats.get(objectives.p95_during)
    span = after_failover_span(stats, faults)
    return None if span is None else stats_for(samples, "after_failover", *span)


def _ttft_window(
    samples: pd.DataFrame,
    objectives: ObjectiveSpec,
    streams: dict[str, StreamStats],
    stats: dict[str, PhaseStats],
    faults: list[FaultMeasure],
    primary: str | None,
    lengths: ExpectedLengths | None = None,
) -> StreamStats | None:
    """The window the TTFT objective is judged on, chosen as for latency (:func:`_p95_window`)."""
    if not objectives.has_ttft_p95:
        return None
    if objectives.ttft_p95_during != "after_failover":
        phase = stats.get(objectives.ttft_p95_during)
        if phase is None:
            return None
        return streams.get(objectives.ttft_p95_during) or stream_stats_for(
            samples, phase.name, phase.start, phase.end, primary, lengths)
    span = after_failover_span(stats, faults)
    return None if span is None else stream_stats_for(samples, "after_failover", *span, primary, lengths)
