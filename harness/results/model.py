"""results.json as pydantic models: the typed outcome of one run (schema ``drill.results/v1``).

    RunResults
    ├── scenario: ScenarioRef            name, path, sha256, description
    ├── verdict: Verdict                 harness/verdict.py (passed | failed | aborted)
    ├── environment: {str: JSON}         the run's fingerprint, as the journal recorded it
    ├── phases: {name: PhaseResult}      baseline / fault / recovery; closed_loop: ClosedLoopStats
    ├── faults: [FaultResult]            figures on their clocks; agreement: Agreement;
    │                                    capacity figures of a capacity run (FaultCapacity keys)
    ├── objectives: [ObjectiveResult]
    ├── measurement: MeasurementInfo     clocks, resolution, the latency bound, lost requests
    ├── cleanup: Cleanup
    ├── capacity: CapacityResult         only in a capacity run
    ├── abort_reason                     only when aborted
    └── stop: StopResult                 only when a stop condition held

The keys are those of DESIGN.md's results.json; optional ones are *absent*, not null, when they
do not apply. :meth:`RunResults.document` gives exactly that JSON shape: a field is written when it
was given (``exclude_unset``), so build the models with keyword arguments, leaving out what does
not apply. Models forbid unknown keys, except where the journal's own records pass through
(``environment``, ``cleanup``).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from harness.verdict import Verdict

SCHEMA: Final = "drill.results/v1"

Seconds = float | None
"""Seconds from a fault's onset (rounded to microseconds); None when not measured."""

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


class PhaseResult(_Model):
    start: str
    end: str
    requests: int
    rps: float | None
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    stream: Literal["probe", "all"]
    stream_requests: int
    latency_samples: int
    closed_loop: ClosedLoopStats | None


class Agreement(_Model):
    """The stack's own failover / failback instants beside the harness's (seconds from onset)."""

    source: str
    resolution_s: float
    failover_s: Seconds
    failover_delta_s: Seconds
    failback_s: Seconds
    failback_delta_s: Seconds
    agrees: bool | None


class FaultCapacity(_Model):
    """The capacity figures a capacity run adds to a fault (harness/measure/capacity.py)."""

    capacity_restored_s: float | None
    capacity_lost_at_s: float | None = None
    capacity_min_healthy: int | None = None
    replacement_region: str | None
    replacement_nodes: list[str]
    degraded_requests: int | None
    capacity_notes: dict[str, str]


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
    impact: Literal["none", "recovered", "unrecovered", "not applied"]
    service_restored_s: Seconds = None
    last_impacted_answer_s: Seconds = None
    rto_by_stream: dict[str, Seconds] | None = None
    recovered_at: str | None = None
    lost_requests: int | None = None
    data_gaps_s: Seconds = None
    resolution_s: Seconds = None
    method: str | None = None
    notes: dict[str, str] | None = None
    capacity_restored_s: float | None = None
    capacity_lost_at_s: float | None = None
    capacity_min_healthy: int | None = None
    replacement_region: str | None = None
    replacement_nodes: list[str] | None = None
    degraded_requests: int | None = None
    capacity_notes: dict[str, str] | None = None
    agreement: Agreement | None = None

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

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def document(self) -> dict[str, JsonValue]:
        """The results.json object: ``schema`` first, every given key, nothing more."""
        dumped = self.model_dump(mode="json", exclude_unset=True, exclude={"schema_"})
        return {"schema": SCHEMA, **dumped}

    @classmethod
    def from_document(cls, document: dict[str, JsonValue]) -> RunResults:
        """Validate a results.json object (``schema`` checked by the caller)."""
        return cls.model_validate({k: v for k, v in document.items() if k != "schema"})
