"""results.json as pydantic models: the typed outcome of one run (schema ``drill.results/v1``).

    RunResults
    ├── scenario: ScenarioRef            name, path, sha256, description
    ├── verdict: Verdict                 harness/verdict.py (passed | failed | aborted)
    ├── environment: {str: JSON}         the run's fingerprint, as the journal recorded it
    ├── phases: {name: PhaseResult}      baseline / fault / recovery; closed_loop: ClosedLoopStats;
    │                                    streaming: StreamingResult (only when requests streamed)
    ├── faults: [FaultResult]            figures on their clocks; incidents: [IncidentResult]; agreement: Agreement;
    │                                    capacity figures of a capacity run (FaultCapacity keys)
    ├── objectives: [ObjectiveResult]
    ├── measurement: MeasurementInfo     clocks, resolution, the latency bound, lost requests;
    │                                    streaming: StreamingInfo (only when requests streamed);
    │                                    health: HealthResult (runs that record probe schedules)
    ├── cleanup: Cleanup
    ├── capacity: CapacityResult         only in a capacity run
    ├── abort_reason                     only when aborted
    ├── stop: StopResult                 only when a stop condition held
    ├── impact: ImpactResult             what users felt (the RTO's evidence rule); only after an onset;
    │                                    incidents: IncidentSummaryResult (the faults' incidents added up)
    ├── runbook: RunbookResult           when the runbook trigger would have fired and cleared
    ├── quality: QualityResult           answer quality on canary queries (only with load.canaries)
    ├── human: HumanTimeline             the people's lane (drill gameday)
    └── cost: CostResult                 what the failover cost (docs/cost.md): counts per phase and
                                         tier, amplification per fault, instances, spend at the prices

The keys are those of DESIGN.md's results.json; optional ones are *absent*, not null, when they
do not apply. :meth:`RunResults.document` gives exactly that JSON shape: a field is written when it
was given (``exclude_unset``), so build the models with keyword arguments, leaving out what does
not apply. Models forbid unknown keys, except where the journal's own records pass through
(``environment``, ``cleanup``).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from harness import measure
from harness.measure import cost as measure_cost
from harness.measure.agreement import StackAgreement
from harness.measure.health import LATE_S, Health, HealthProblem
from harness.measure.incidents import IncidentFigures, IncidentSummary
from harness.measure.quality_phases import QualityStats
from harness.measure.recovery import CLOCKS
from harness.measure.shapes import ShapeFigures
from harness.rundir.journal import utc_iso
from harness.verdict import Verdict

SCHEMA: Final = "drill.results/v1"

Seconds = float | None
"""Seconds from a fault's onset (rounded to microseconds); None when not measured."""

LATENCY_CLOCK = (
    "latency figures and objectives are judged on the actual send (end - start); latency_from_intended "
    "(end - intended) is reported beside them, and a probe sent late is a health problem, never a slow answer"
)
LATENCY_STREAM = "probe (constant rate, open loop); Locust users are throughput only"
TTFT_CLOCK = "send clock: ttft_ms = first token's arrival - the request's start, per streamed request"
STREAMING_METHOD = (
    "streams = requests whose JSON asked for \"stream\": true, placed by their start (send clock); "
    "completed = [DONE] arrived on a 2xx answer and the answer had at least expected_tokens tokens "
    "(the fewest of a completed baseline stream from the same load source and tier; a source and "
    "tier with fewer than 10 completed baseline streams, a fallback tier among them, is not checked); "
    "ended_short = [DONE] arrived but with fewer tokens "
    "(a gateway padding a cut stream with its own [DONE]), never completed; "
    "cut = a 2xx answer that ended without [DONE] "
    "(cut_after_tokens = tokens it had delivered); failed mid-stream = not completed after >= 1 token; "
    "failed before the first token = not completed with no token; TTFT p50/p95 over the probe's streams "
    "that got a first token (every stream when the probe sent none), linear interpolation; "
    "failed_over = streams answered by a tier other than the primary tier"
)


def _round(value: float | None, digits: int = 6) -> float | None:
    # Seconds to microseconds: well below any resolution, and stable in JSON.
    return None if value is None else round(value, digits)


def _instant(epoch_s: float | None) -> str | None:
    return None if epoch_s is None else utc_iso(epoch_s)


def epoch(instant: str | None) -> float | None:
    """An instant as results.json writes it (UTC ISO, microseconds) -> epoch seconds; None for None.

    The one reader of results.json's instants: the report, history and packs take their epoch
    seconds from the models' ``*_epoch`` properties, which call this."""
    if instant is None:
        return None
    when = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()

Target = float | int | str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScenarioRef(_Model):
    name: str
    path: str | None
    sha256: str | None
    description: str | None


class ClosedLoopStats(_Model):
    """The Locust users' own figures: throughput only, never used for a verdict."""

    requests: int
    rps: float | None
    error_rate: float | None
    p95_ms: float | None
    note: str

    @classmethod
    def of(cls, closed: measure.ClosedLoop) -> ClosedLoopStats:
        return cls(requests=closed.requests, rps=closed.rps, error_rate=closed.error_rate,
                   p95_ms=closed.p95_ms, note=closed.note)


class SpliceResult(_Model):
    """Splices and answers checked token by token, over a window's probe streams
    (harness/measure/streams.py ``SpliceStats``)."""

    stream: str  # probe | all
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

    @classmethod
    def of(cls, stats: measure.SpliceStats) -> SpliceResult:
        return cls(
            stream=stats.stream, streams=stats.streams, spliced=stats.spliced,
            splice_gap_p50_ms=_round(stats.splice_gap_p50_ms, 3), splice_gap_p95_ms=_round(stats.splice_gap_p95_ms, 3),
            splice_gap_max_ms=_round(stats.splice_gap_max_ms, 3),
            tokens_before_splice_p50=stats.tokens_before_splice_p50,
            tokens_after_splice_p50=stats.tokens_after_splice_p50,
            checked=stats.checked, tokens_lost=stats.tokens_lost, tokens_lost_max=stats.tokens_lost_max,
            tokens_repeated=stats.tokens_repeated, tokens_repeated_max=stats.tokens_repeated_max,
            foreign_tokens=stats.foreign_tokens, foreign_tokens_max=stats.foreign_tokens_max,
        )


class StreamingResult(_Model):
    """Streamed requests of one phase or window (harness/measure/streams.py, docs/method.md)."""

    streams: int
    completed: int
    completion_rate: float | None
    cut: int
    failed_mid_stream: int
    failed_before_first_token: int
    cut_after_tokens_p50: float | None
    cut_after_tokens_max: int | None
    ttft_stream: str  # probe | all
    ttft_samples: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    failed_over: int | None
    splices: SpliceResult | None = None  # only when some stream was spliced or checked token by token
    ended_short: int | None = None  # [DONE] on a 2xx answer short of the baseline's length (never completed)

    @classmethod
    def of(cls, stats: measure.StreamStats) -> StreamingResult:
        made = cls(
            streams=stats.streams, completed=stats.completed, completion_rate=_round(stats.completion_rate),
            cut=stats.cut, failed_mid_stream=stats.failed_mid_stream,
            failed_before_first_token=stats.failed_before_first_token,
            cut_after_tokens_p50=stats.cut_after_tokens_p50, cut_after_tokens_max=stats.cut_after_tokens_max,
            ttft_stream=stats.ttft_stream, ttft_samples=stats.ttft_samples,
            ttft_p50_ms=_round(stats.ttft_p50_ms, 3), ttft_p95_ms=_round(stats.ttft_p95_ms, 3),
            failed_over=stats.failed_over, ended_short=stats.ended_short,
        )
        if stats.splices is not None:
            made.splices = SpliceResult.of(stats.splices)
        return made


class StreamingInfo(_Model):
    """How streamed requests were measured, and the streams of ``min_stream_completion``'s window
    (the fault and recovery phases)."""

    method: str
    ttft_clock: str
    completion_window_start: str
    completion_window_end: str
    completion: StreamingResult
    expected_tokens: dict[str, int] | None = None  # per source/tier: the baseline's shortest completed stream

    @classmethod
    def of(cls, window: measure.StreamStats) -> StreamingInfo:
        return cls(method=STREAMING_METHOD, ttft_clock=TTFT_CLOCK, completion_window_start=utc_iso(window.start),
                   completion_window_end=utc_iso(window.end), completion=StreamingResult.of(window),
                   expected_tokens=dict(window.expected or {}))


class AnswerResult(_Model):
    """Answers checked against their API in one phase (harness/measure/answers.py)."""

    stream: str  # probe | all
    requests: int
    invalid: int
    invalid_rate: float | None
    by_tier: dict[str, int]
    reasons: dict[str, int]

    @classmethod
    def of(cls, stats: measure.AnswerStats) -> AnswerResult:
        return cls(stream=stats.stream, requests=stats.requests, invalid=stats.invalid,
                   invalid_rate=_round(stats.invalid_rate), by_tier=dict(stats.by_tier), reasons=dict(stats.reasons))


class PhaseResult(_Model):
    start: str
    end: str
    requests: int
    rps: float | None
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    stream: str  # probe | all
    stream_requests: int
    latency_samples: int
    closed_loop: ClosedLoopStats | None
    streaming: StreamingResult | None = None  # only when some request of the run streamed
    answers: AnswerResult | None = None  # only when answers were checked against their API

    @classmethod
    def of(cls, stats: measure.PhaseStats, streams: measure.StreamStats | None = None,
           answers: measure.AnswerStats | None = None) -> PhaseResult:
        made = cls(
            start=utc_iso(stats.start), end=utc_iso(stats.end), requests=stats.requests,
            rps=_round(stats.rps, 3), error_rate=_round(stats.error_rate, 6),
            p50_ms=_round(stats.p50_ms, 3), p95_ms=_round(stats.p95_ms, 3), p99_ms=_round(stats.p99_ms, 3),
            stream=stats.stream, stream_requests=stats.stream_requests, latency_samples=stats.latency_samples,
            closed_loop=None if stats.closed_loop is None else ClosedLoopStats.of(stats.closed_loop),
        )
        if streams is not None:
            made.streaming = StreamingResult.of(streams)
        if answers is not None:
            made.answers = AnswerResult.of(answers)
        return made

    @property
    def start_epoch(self) -> float | None:
        return epoch(self.start)

    @property
    def end_epoch(self) -> float | None:
        return epoch(self.end)


class Agreement(_Model):
    """The stack's own failover / failback instants beside the harness's (seconds from onset)."""

    source: str
    resolution_s: float
    failover_s: Seconds
    failover_delta_s: Seconds
    failback_s: Seconds
    failback_delta_s: Seconds
    agrees: bool | None

    @classmethod
    def of(cls, found: StackAgreement) -> Agreement:
        return cls(
            source=found.source, resolution_s=found.resolution_s, failover_s=found.failover_s,
            failover_delta_s=found.failover_delta_s, failback_s=found.failback_s,
            failback_delta_s=found.failback_delta_s, agrees=found.agrees,
        )


class FaultCapacity(_Model):
    """The capacity figures a capacity run adds to a fault (harness/measure/capacity.py)."""

    capacity_restored_s: float | None
    capacity_lost_at_s: float | None = None
    capacity_min_healthy: int | None = None
    replacement_region: str | None
    replacement_nodes: list[str]
    degraded_requests: int | None
    capacity_notes: dict[str, str]


class ShapeResult(_Model):
    """A scheduled fault's figures (docs/method.md "Reaction threshold"): where the stack
    reacted on the ramp and how often it moved; only faults with a ``schedule`` carry it."""

    shape: str  # ramp | steps | flap
    param: str  # the magnitude the schedule moved: latency_ms, share, ...
    steps: int
    failover_magnitude: float | None
    failover_step: int | None
    stack_reaction_s: Seconds
    stack_magnitude: float | None
    stack_step: int | None
    agrees_within_step: bool | None
    first_affected_s: Seconds
    first_affected_magnitude: float | None
    failovers: int
    failbacks: int
    stack_breaker_opens: int | None
    time_on_tier_s: dict[str, float]
    bad_answers: int
    bad_per_transition: float | None
    breaker_open_s: Seconds = None
    breaker_open_magnitude: float | None = None
    breaker_open_step: int | None = None
    bad_before_breaker: int | None = None
    timeline: list[tuple[float, float]] | None = None  # (onset epoch s, magnitude) of each step applied

    @classmethod
    def of(cls, figures: ShapeFigures) -> ShapeResult:
        return cls.model_validate(dataclasses.asdict(figures))


class AfterResult(_Model):
    """A fault placed ``after`` another (compound timelines, harness/scenario/timelines.py)."""

    fault: str
    when: str  # onset | revert
    offset_s: float


class IncidentResult(_Model):
    """One incident (harness/measure/incidents.py; seconds from the fault's onset): when users
    could first see it, when it ended (None: still open where the fault's window ends), how long,
    the requests sent in it and how many were bad (failed or slow), the worst latency, and the
    cause when the stack's own record names one."""

    start_s: float
    end_s: Seconds
    length_s: float
    requests: int
    bad: int
    failed: int
    slow: int
    worst_latency_ms: float | None
    unhealthy_buckets: int
    cause: str | None

    @classmethod
    def of(cls, figures: IncidentFigures) -> IncidentResult:
        return cls.model_validate(dataclasses.asdict(figures))


class IncidentSummaryResult(_Model):
    """The run's incidents from the first onset to the end of the data, added up (seconds from the
    first onset): how many, the time users were affected in all (``impact_s``, the lengths summed;
    a lower bound when ``open``), when they were first and last affected."""

    incidents: int
    impact_s: float
    first_affected_s: Seconds
    last_affected_s: Seconds
    open: bool

    @classmethod
    def of(cls, summary: IncidentSummary) -> IncidentSummaryResult:
        return cls(incidents=summary.incidents, impact_s=summary.total_s, first_affected_s=summary.first_s,
                   last_affected_s=summary.last_s, open=summary.open)


class FaultResult(_Model):
    """One fault's figures. A fault that never took effect has only the keys up to ``impact``
    (``impact`` = ``not applied``); a measured one has them all; capacity figures and
    ``agreement`` are there when the run kept what they are computed from."""

    name: str
    type: str
    targets: list[str]
    onset_at: str | None
    onset_source: str | None
    onset_uncertainty_s: float | None
    reverted_at: str | None
    time_to_detect_s: Seconds
    rto_s: Seconds
    failover_s: Seconds
    failback_s: Seconds
    degraded_s: Seconds
    impact: str  # none | recovered | unrecovered | not applied
    service_restored_s: Seconds = None
    last_impacted_answer_s: Seconds = None
    rto_by_stream: dict[str, Seconds] | None = None
    recovered_at: str | None = None
    lost_requests: int | None = None
    data_gaps_s: Seconds = None
    resolution_s: Seconds = None
    method: str | None = None
    notes: dict[str, str] | None = None
    incidents: list[IncidentResult] | None = None  # every incident of a measured fault (may be [])
    capacity_restored_s: float | None = None
    capacity_lost_at_s: float | None = None
    capacity_min_healthy: int | None = None
    replacement_region: str | None = None
    replacement_nodes: list[str] | None = None
    degraded_requests: int | None = None
    capacity_notes: dict[str, str] | None = None
    agreement: Agreement | None = None
    shape: ShapeResult | None = None
    after: AfterResult | None = None
    branch: str | None = None

    @classmethod
    def of(cls, figures: measure.FaultMeasure) -> FaultResult:
        """A measured fault: every key up to ``notes`` (DESIGN.md's keys first, then additions)."""
        fault = figures.fault
        return cls(
            name=fault.name, type=fault.type, targets=list(fault.targets),
            onset_at=utc_iso(fault.onset_at), onset_source=fault.onset_source,
            onset_uncertainty_s=fault.onset_uncertainty_s, reverted_at=_instant(fault.reverted_at),
            time_to_detect_s=_round(figures.time_to_detect_s), rto_s=_round(figures.rto_s),
            failover_s=_round(figures.failover_s), failback_s=_round(figures.failback_s),
            degraded_s=_round(figures.degraded_s), impact=figures.impact,
            service_restored_s=_round(figures.service_restored_s),
            last_impacted_answer_s=_round(figures.last_impacted_answer_s),
            rto_by_stream={name: _round(value) for name, value in figures.rto_by_stream.items()},
            recovered_at=_instant(figures.recovered_at), lost_requests=figures.lost_requests,
            data_gaps_s=_round(figures.data_gaps_s), resolution_s=_round(figures.resolution_s),
            method=figures.method, notes=dict(figures.notes),
            incidents=[IncidentResult.of(i) for i in figures.incidents],
        )

    @property
    def onset_epoch(self) -> float | None:
        return epoch(self.onset_at)

    @property
    def reverted_epoch(self) -> float | None:
        return epoch(self.reverted_at)

    @property
    def recovered_epoch(self) -> float | None:
        return epoch(self.recovered_at)

    def add_capacity(self, capacity: FaultCapacity) -> None:
        """Merge a capacity run's figures for this fault (only the keys the capacity measure set)."""
        for key in capacity.model_fields_set:
            setattr(self, key, getattr(capacity, key))


class ObjectiveResult(_Model):
    """``measured`` None means it could not be measured (and then it failed); ``note`` says why,
    or how ``target`` was resolved (absent when there is nothing to say)."""

    name: str
    target: Target
    measured: float | int | str | None
    passed: bool
    note: str | None = None
    undecided: list[str] | None = None
    """Only when the measurement's own trouble could flip ``passed``: one line per cause
    (``measurement.health``); ``passed`` is then what the figure said, not a decision."""

    @classmethod
    def of(cls, result: measure.ObjectiveResult, undecided: tuple[str, ...] = ()) -> ObjectiveResult:
        made = cls(name=result.name, target=result.target, measured=result.measured, passed=result.passed)
        if result.note:
            made.note = result.note
        if undecided:
            made.undecided = list(undecided)
        return made


class HealthProblemResult(_Model):
    """One stretch in which the instrument could not see well: ``at_s`` seconds after the run's
    start, ``length_s`` long, able to move a figure by ``magnitude_s``."""

    kind: str
    start: str
    at_s: float | None
    length_s: float
    magnitude_s: float
    detail: str
    partial: bool

    @classmethod
    def of(cls, p: HealthProblem, run_start_s: float | None) -> HealthProblemResult:
        return cls(kind=p.kind, start=utc_iso(p.start_s),
                   at_s=None if run_start_s is None else _round(p.start_s - run_start_s),
                   length_s=_round(p.length_s) or 0.0, magnitude_s=_round(p.magnitude_s) or 0.0,
                   detail=p.detail, partial=p.partial)


class ProbeScheduleResult(_Model):
    """The probe against its schedule: ``late`` = sent more than ``late_after_ms`` after its
    intended instant; ``skipped`` = not sent (too many in flight)."""

    probes: int
    late: int
    skipped: int
    late_after_ms: float
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    lag_max_ms: float | None


class IntendedLatencyResult(_Model):
    probes: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class WidenedFigureResult(_Model):
    fault: str
    figure: str
    resolution_s: float
    widened_resolution_s: float
    reason: str


class UndecidedResult(_Model):
    objective: str
    reasons: list[str]


class HealthResult(_Model):
    """results.json ``measurement.health``: the instrument's own figures (measure/health.py).
    Empty ``problems`` means the instrument saw the whole run."""

    problems: list[HealthProblemResult]
    probe_schedule: ProbeScheduleResult | None
    figures: list[WidenedFigureResult]
    undecided: list[UndecidedResult]
    latency_from_intended: dict[str, IntendedLatencyResult]
    latency_clock: str

    @classmethod
    def of(cls, h: Health) -> HealthResult:
        schedule = None if h.schedule is None else ProbeScheduleResult(
            probes=h.schedule.probes, late=h.schedule.late, skipped=h.schedule.skipped,
            late_after_ms=LATE_S * 1000.0, lag_p50_ms=h.schedule.lag_p50_ms, lag_p99_ms=h.schedule.lag_p99_ms,
            lag_max_ms=h.schedule.lag_max_ms,
        )
        return cls(
            problems=[HealthProblemResult.of(p, h.run_start_s) for p in h.problems],
            probe_schedule=schedule,
            figures=[WidenedFigureResult(fault=f.fault, figure=f.figure, resolution_s=_round(f.resolution_s) or 0.0,
                                         widened_resolution_s=f.widened_resolution_s, reason=f.reason)
                     for f in h.figures],
            undecided=[UndecidedResult(objective=u.name, reasons=list(u.reasons)) for u in h.undecided],
            latency_from_intended={
                name: IntendedLatencyResult(probes=v.probes, p50_ms=v.p50_ms, p95_ms=v.p95_ms, p99_ms=v.p99_ms)
                for name, v in h.latency_from_intended.items()
            },
            latency_clock=LATENCY_CLOCK,
        )


class MeasurementInfo(_Model):
    samples: int
    probe_rate_hz: float
    resolution_s: float
    method: str
    bucket_s: float
    recovery_window_s: float
    primary_tier: str | None
    baseline_p95_ms: float | None
    latency_bound_ms: float | None
    latency_bound_rule: str
    latency_stream: str
    min_bad_requests: int
    confidence: float
    clocks: dict[str, str]
    lost_requests: int | None
    streaming: StreamingInfo | None = None  # only when some request of the run streamed
    health: HealthResult | None = None  # only when the run recorded probe schedules (measure/health.py)

    @classmethod
    def of(cls, m: measure.Measurement) -> MeasurementInfo:
        made = cls(
            samples=m.samples, probe_rate_hz=m.settings.probe_rate_hz, resolution_s=round(m.resolution_s, 6),
            method=m.method, bucket_s=m.settings.bucket_s, recovery_window_s=m.settings.window_s,
            primary_tier=m.primary_tier, baseline_p95_ms=_round(m.baseline_p95_ms, 3),
            latency_bound_ms=_round(m.latency_bound_ms, 3), latency_bound_rule=m.latency_bound_rule,
            latency_stream=LATENCY_STREAM, min_bad_requests=m.settings.min_bad_requests,
            confidence=m.settings.confidence, clocks=dict(CLOCKS), lost_requests=m.lost_requests,
        )
        if m.stream_completion is not None:
            made.streaming = StreamingInfo.of(m.stream_completion)
        if m.health is not None:
            made.health = HealthResult.of(m.health)
        return made


class Cleanup(_Model):
    """``cleanup.verified`` as the engine journaled it (``ok`` False when it never was)."""

    model_config = ConfigDict(extra="allow")

    ok: bool | None
    toxics_left: int | list[JsonValue] | None = None
    containers_not_running: list[JsonValue] | None = None


class CapacityChange(_Model):
    ts: float
    healthy: int
    regions: dict[str, int]
    nodes: list[str]


class CapacityTimeline(_Model):
    changes: list[CapacityChange]
    min_healthy: int | None
    max_healthy: int | None
    first_healthy: int | None
    last_healthy: int | None
    regions: list[str]


class CapacityResult(_Model):
    target: int | None
    sustain_s: float
    interval_s: float | None
    resolution_s: float | None
    samples: int
    failed_polls: int
    timeline: CapacityTimeline
    per_fault: dict[str, FaultCapacity]


class StopResult(_Model):
    """The stop condition, what was measured when it held, and the engine's reaction time."""

    condition: str | None
    error_rate_threshold: float | None
    for_s: float | None
    measured: float | None
    bad_requests: int | None
    requests: int | None
    held_at: str | None
    detected_at: str | None
    first_revert_at: str | None
    reaction_s: float | None

    @property
    def held_epoch(self) -> float | None:
        return epoch(self.held_at)


class LoadClockResult(_Model):
    """Distributed load: each Locust worker's clock offset against the master (``locust-workers.json``)."""

    file: str
    uncertainty_s: float
    workers: dict[str, dict[str, JsonValue]]


class ImpactResult(_Model):
    """What users felt from the first onset on (harness/measure/impact.py): requests that ended at
    or after it, how many failed or were slow, and the time users were affected = unhealthy
    buckets (the RTO's evidence rule) x ``bucket_s``. ``note`` says why that differs from the RTO."""

    requests: int
    failed: int
    slow: int
    affected_s: float
    unhealthy_buckets: int
    judged_buckets: int
    bucket_s: float
    note: str | None = None
    incidents: IncidentSummaryResult | None = None  # absent in results.json written before it

    @classmethod
    def of(cls, impact: measure.Impact) -> ImpactResult:
        made = cls(requests=impact.requests, failed=impact.failed, slow=impact.slow, affected_s=impact.affected_s,
                   unhealthy_buckets=impact.unhealthy_buckets, judged_buckets=impact.judged_buckets,
                   bucket_s=impact.bucket_s)
        if impact.note:
            made.note = impact.note
        if impact.incidents is not None:
            made.incidents = IncidentSummaryResult.of(impact.incidents)
        return made


class RunbookResult(_Model):
    """The runbook trigger (the scenario's ``runbook:``, else the playbook's) and when it would have
    fired and cleared (harness/measure/impact.py). ``p95_limit_ms`` is ``p95`` resolved (None: a
    relative bound without a baseline p95); ``reason`` says why nothing was computed."""

    error_rate: float
    p95: float | str
    p95_limit_ms: float | None
    window_s: float
    stream: str | None
    fired_at: str | None
    fired_by: str | None  # error_rate | p95
    fired_value: float | None
    fired_answers: int | None
    cleared_at: str | None
    reason: str | None = None

    @classmethod
    def of(cls, error_rate: float, p95: float | str, trigger: measure.RunbookTrigger,
           walk: measure.RunbookWalk) -> RunbookResult:
        made = cls(
            error_rate=error_rate, p95=p95, p95_limit_ms=_round(trigger.p95_limit_ms, 3), window_s=trigger.window_s,
            stream=walk.stream, fired_at=_instant(walk.fired_at), fired_by=walk.fired_by,
            fired_value=_round(walk.fired_value), fired_answers=walk.fired_answers,
            cleared_at=_instant(walk.cleared_at),
        )
        if walk.reason:
            made.reason = walk.reason
        return made

    @property
    def fired_epoch(self) -> float | None:
        return epoch(self.fired_at)

    @property
    def cleared_epoch(self) -> float | None:
        return epoch(self.cleared_at)


class MetricSeries(BaseModel):
    """One Prometheus series of a recorded query: its labels and (epoch s, value) points."""

    labels: dict[str, str] = {}
    points: list[tuple[float, float | None]] = []


class MetricQuery(BaseModel):
    """One recorded query of results.json ``metrics.series`` (harness/metrics/results.py writes
    ``metrics`` as JSON; this is how the report reads an entry of it)."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    query: str | None = None
    unit: str | None = None
    error: str | None = None
    series: list[MetricSeries] = []


class TierQualityResult(_Model):
    answers: int
    score: float | None


class QualityPhaseResult(_Model):
    """The scored canary answers of one phase: how many, their mean score (the metric of
    :class:`QualityResult`), the worst canary's mean, and the same per tier that answered
    (harness/measure/quality_phases.py)."""

    answers: int
    score: float | None
    worst_canary_score: float | None
    by_tier: dict[str, TierQualityResult]

    @classmethod
    def of(cls, stats: QualityStats) -> QualityPhaseResult:
        return cls(answers=stats.answers, score=_round(stats.score),
                   worst_canary_score=_round(stats.worst_canary_score),
                   by_tier={t: TierQualityResult(answers=q.answers, score=_round(q.score))
                            for t, q in stats.by_tier.items()})


class QualityIndexResult(_Model):
    """Who built the canary documents' index, or answered the chat canaries' reference answers
    (``samples/quality-index.json``)."""

    served_by: str
    tier: str
    model: str
    documents: int
    problem: str | None = None


class QualityResult(_Model):
    """Answer quality on the probe's canary queries (``load.canaries``; docs/quality.md): the
    metric, the index it is measured against, and per phase the scored answers
    (raw rows: ``samples/quality.csv``)."""

    metric: str  # recall@K (retrieval canaries) | similarity (chat canaries: to the primary's answer)
    index: QualityIndexResult | None
    phases: dict[str, QualityPhaseResult]


class HumanEntryResult(_Model):
    """One person's entry on the drill's clock (``human.entry``): ``offset_s`` from the first
    fault's onset (negative: before it; None: no fault took effect)."""

    at: str
    offset_s: float | None
    participant: str
    kind: str  # noticed | diagnosed | decided | acted | escalated | note
    note: str


class HumanTimeline(_Model):
    """The people's lane beside the measured one (docs/gameday.md): who was in the room, what
    they recorded, the facilitator's injects, holds and abort, and the pairs an auditor asks for,
    each from the first fault's onset: time to notice (first ``noticed``) vs time to detect (the
    first impact a client could see), time to decide (first ``decided``) vs failover, and the
    runbook trigger vs the first notice."""

    participants: list[str]
    entries: list[HumanEntryResult]
    onset_at: str | None
    time_to_notice_s: Seconds
    time_to_detect_s: Seconds
    time_to_decide_s: Seconds
    failover_s: Seconds
    runbook_fired_s: Seconds
    notice_after_runbook_s: Seconds
    injects: list[dict[str, JsonValue]]
    holds: list[dict[str, JsonValue]]
    aborted_by: str | None = None

    @classmethod
    def of(cls, participants: list[str], entries: list[tuple[float, str, str, str]], onset: float | None,
           first_fault: FaultResult | None, runbook_fired_at: float | None,
           injects: list[dict[str, JsonValue]], holds: list[dict[str, JsonValue]],
           aborted_by: str | None) -> HumanTimeline:
        """``entries``: (epoch, participant, kind, note) in journal order."""

        def since(t: float | None) -> float | None:
            return None if t is None or onset is None else _round(t - onset, 3)

        def first(kind: str) -> float | None:
            return min((t for t, _, k, _ in entries if k == kind and (onset is None or t >= onset)), default=None)

        notice = since(first("noticed"))
        runbook = since(runbook_fired_at)
        return cls(
            participants=participants,
            entries=[HumanEntryResult(at=_instant(t) or "", offset_s=since(t), participant=who, kind=kind, note=note)
                     for t, who, kind, note in entries],
            onset_at=_instant(onset),
            time_to_notice_s=notice,
            time_to_detect_s=first_fault.time_to_detect_s if first_fault else None,
            time_to_decide_s=since(first("decided")),
            failover_s=first_fault.failover_s if first_fault else None,
            runbook_fired_s=runbook,
            notice_after_runbook_s=None if notice is None or runbook is None else _round(notice - runbook, 3),
            injects=injects,
            holds=holds,
            aborted_by=aborted_by,
        )


class CostTier(_Model):
    upstream_calls: int
    source: str
    answers: int
    output_tokens: int
    tokens_wasted: int
    spend: float | None


class CostPhase(_Model):
    duration_s: float
    client_requests: int
    upstream_calls: int
    amplification: float | None
    tiers: dict[str, CostTier]
    instance_hours: dict[str, float]
    spend: float | None
    cost_per_1k_requests: float | None


class CostFault(_Model):
    name: str
    start: str
    end: str
    client_requests: int
    upstream_calls: int
    amplification: float | None
    calls_by_tier: dict[str, int]
    proxy_statuses: dict[str, int]


class CostInstance(_Model):
    id: str
    node: str
    region: str
    launched_at: str
    terminated_at: str | None
    launched_in_run: bool
    lifetime_in_run_s: float
    spend: float | None


class CostResult(_Model):
    """What the failover cost (harness/measure/cost.py): the counts each figure comes from
    (``sources`` names the files), and spend when the scenario gave prices."""

    phases: dict[str, CostPhase]
    faults: list[CostFault]
    instances: list[CostInstance]
    priced: bool
    currency: str | None
    example_prices: bool
    extra_spend: float | None
    baseline_spend_per_hour: float | None
    proxy_counted: bool
    instances_counted: bool
    notes: list[str]
    sources: dict[str, str]

    @classmethod
    def of(cls, figures: measure_cost.CostFigures, sources: dict[str, str]) -> CostResult:
        return cls(
            phases={name: CostPhase(
                duration_s=p.duration_s, client_requests=p.client_requests, upstream_calls=p.upstream_calls,
                amplification=p.amplification,
                tiers={t: CostTier.model_validate(dataclasses.asdict(c)) for t, c in p.tiers.items()},
                instance_hours=p.instance_hours, spend=p.spend, cost_per_1k_requests=p.cost_per_1k_requests,
            ) for name, p in figures.phases.items()},
            faults=[CostFault(
                name=f.name, start=utc_iso(f.start), end=utc_iso(f.end), client_requests=f.client_requests,
                upstream_calls=f.upstream_calls, amplification=f.amplification, calls_by_tier=f.calls_by_tier,
                proxy_statuses=f.proxy_statuses,
            ) for f in figures.faults],
            instances=[CostInstance(
                id=i.id, node=i.node, region=i.region, launched_at=utc_iso(i.launched_at),
                terminated_at=None if i.terminated_at is None else utc_iso(i.terminated_at),
                launched_in_run=i.launched_in_run, lifetime_in_run_s=i.lifetime_in_run_s, spend=i.spend,
            ) for i in figures.instances],
            priced=figures.priced, currency=figures.currency, example_prices=figures.example_prices,
            extra_spend=figures.extra_spend, baseline_spend_per_hour=figures.baseline_spend_per_hour,
            proxy_counted=figures.proxy_counted, instances_counted=figures.instances_counted,
            notes=list(figures.notes), sources=sources,
        )

    def money(self, value: float | None) -> str:
        """``USD 0.0123`` (or ``-`` when not priced)."""
        return "-" if value is None or self.currency is None else f"{self.currency} {value:.4g}"

    @property
    def worst_amplification(self) -> CostFault | None:
        measured = [f for f in self.faults if f.amplification is not None]
        return max(measured, key=lambda f: f.amplification or 0.0) if measured else None


class RepairChainLink(_Model):
    """One link of a Kubernetes repair chain: when its watch event arrived (``at``, and seconds
    after the fault's onset) and the API server's own timestamp (whole seconds) beside it."""

    link: str
    object: str
    at: str
    after_onset_s: float | None
    api_at: str | None = None
    node: str | None = None
    region: str | None = None  # the node's topology.kubernetes.io/region label
    detail: str | None = None

    @property
    def at_epoch(self) -> float | None:
        return epoch(self.at)


class RepairChainResult(_Model):
    """A Kubernetes fault's repair chain (harness/measure/repair_chain.py): seconds from the
    onset to the first of each link, ``reschedule_s`` to the last needed replacement Ready,
    the pods left Pending (the scheduler's message) or refused (the quota's), where the
    replacements landed (node and region), each service's fewest ready replicas, and ``api_gap_s``: the largest
    gap between a watch event's arrival and the API's own timestamp (within ``resolution_s``
    when the two agree)."""

    fault: str
    type: str
    onset_at: str | None
    node_not_ready_s: float | None = None
    taint_added_s: float | None = None
    evicted_s: float | None = None
    scheduled_s: float | None = None
    reschedule_s: float | None = None
    evicted: int
    replaced: int
    min_ready_replicas: dict[str, int]
    desired_replicas: dict[str, int]
    pending: list[RepairChainLink]
    refused: list[RepairChainLink]
    replacement_nodes: dict[str, str]
    replacement_regions: dict[str, str] = {}  # pod -> its node's region
    api_gap_s: float | None
    resolution_s: float
    links: list[RepairChainLink]

    @property
    def onset_epoch(self) -> float | None:
        return epoch(self.onset_at)


class RunResults(_Model):
    """The whole results.json."""

    schema_: Literal["drill.results/v1"] = SCHEMA
    run_id: str
    scenario: ScenarioRef
    started_at: str | None
    ended_at: str | None
    verdict: Verdict
    operator: str | None = None
    host: str | None = None
    environment: dict[str, JsonValue]
    phases: dict[str, PhaseResult]
    faults: list[FaultResult]
    objectives: list[ObjectiveResult]
    measurement: MeasurementInfo
    cleanup: Cleanup
    capacity: CapacityResult | None = None
    abort_reason: str | None = None
    stop: StopResult | None = None
    load_clock: LoadClockResult | None = None
    metrics: dict[str, JsonValue] | None = None  # Prometheus (harness/metrics/results.py)
    impact: ImpactResult | None = None  # absent in results.json written before it, and without a fault
    runbook: RunbookResult | None = None  # absent in results.json written before it
    quality: QualityResult | None = None  # only with load.canaries (answer quality)
    human: HumanTimeline | None = None  # only for a run with a human timeline (drill gameday)
    cost: CostResult | None = None  # issue 30: absent without an HTTP fault proxy or a cost block


    repair_chains: list[RepairChainResult] | None = None  # Kubernetes faults only

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def document(self) -> dict[str, JsonValue]:
        """The results.json object: ``schema`` first, every given key, nothing more."""
        dumped = self.model_dump(mode="json", exclude_unset=True, exclude={"schema_"})
        return {"schema": SCHEMA, **dumped}

    @property
    def metric_queries(self) -> list[MetricQuery | str]:
        """``metrics.series`` as typed queries; an entry that does not read as one is the reason why."""
        entries = (self.metrics or {}).get("series")
        out: list[MetricQuery | str] = []
        for entry in entries if isinstance(entries, list) else []:
            try:
                out.append(MetricQuery.model_validate(entry))
            except ValueError as exc:
                out.append(f"unreadable metrics entry ({str(exc).splitlines()[0]})")
        return out

    @property
    def started_epoch(self) -> float | None:
        return epoch(self.started_at)

    @property
    def ended_epoch(self) -> float | None:
        return epoch(self.ended_at)

    @classmethod
    def from_document(cls, document: dict[str, JsonValue]) -> RunResults:
        """Validate a results.json object (``schema`` checked by the caller)."""
        return cls.model_validate({k: v for k, v in document.items() if k != "schema"})
