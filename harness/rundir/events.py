"""Every record the journal holds, in one place (the way Locust's ``event.py`` lists its hooks).

A record on disk is one JSON line: ``ts`` (epoch seconds, 6 decimals) and ``at`` (the same
instant as UTC ISO), then ``event`` (the name below), then the event's fields in the order they
are listed here. :class:`harness.rundir.journal.Journal` writes one of these models; every
reader gets them back through :func:`harness.rundir.journal.read_journal`. A field left out at
construction is left out of the line (old readers never saw it either); an event name this
version does not know reads as :class:`OtherEvent`, so a journal written by a newer drill still
recomputes. No other module spells an event's name: it matches on these classes.

=========================== ===================================================================
event                       when, and what it carries
=========================== ===================================================================
**the run**
``run.start``               the run directory exists: ``run_id``, ``scenario`` (its name),
                            ``scenario_path``, ``scenario_sha256``, ``run_dir``, ``user``,
                            ``host``, ``drill_version``, ``pid`` (the drill's own)
``run.environment``         ``environment``: runtime, tool versions, image ids (results.json's)
``run.error``               an unexpected error: ``error``, ``traceback_file`` (in the run dir)
``run.aborted``             a stop condition, an unhealthy stack or an infra error: ``reason``
``run.finished``            the rollback is done; the data ends here
``run.end``                 the verdict as the run decided it: ``verdict``
**the stack**
``preflight``               before anything is applied: ``failures``, ``unhealthy`` members
``stack.starting``          ``runtime`` (local, compose, external), the stack ``file``
``stack.started``           healthy: ``endpoints`` and the ``process_groups`` it started (for
                            ``drill recover`` after a ``kill -9``)
``stack.stopped``           the drill's stack is down; ``why`` and ``groups`` when recover did it
``stack.stop_failed``       ``error``
``stack.events``            the stack's own event log fetched: ``url``, ``ok``, ``count``,
                            ``file`` (stack-events.json) or ``error``
``dependency.lost``         Toxiproxy, Prometheus or stack members went away mid-run: ``what``,
                            ``url``, ``error``, ``members``
**Toxiproxy proxies the drill makes**
``toxiproxy.connected``     ``url``, ``version``
``proxy.intent``            before creating one: ``proxy``, ``listen``, ``upstream``, ``undo``
``proxy.created``           ``proxy``
``proxy.deleted``           ``proxy`` (``why`` = recover when recover did it)
``proxy.delete_failed``     ``proxy``, ``error``
**load**
``load.starting``           ``plan`` (users, rates, the request)
``load.started``            ``process_groups`` of the load generators
``load.stopped``            ``why`` and ``groups`` when recover did it
``load.stop_failed``        ``error``
``capacity.stopped``        the serving-pool sampler stopped
``capacity.stop_failed``    ``error``
**phases**
``phase.start``             ``phase`` (baseline, fault, recovery); ``ts`` is the phase's start
``phase.end``               ``phase``; ``ts`` is its end (the data ends here when no abort)
**faults** (the ledger ``drill recover`` works from, :func:`~harness.rundir.journal.fault_ledger`)
``fault.intent``            BEFORE the apply: ``fault_id``, ``name``, ``type``, ``targets``,
                            ``params``, ``undo`` (:mod:`harness.rundir.undo`),
                            ``planned_revert_at``
``fault.applied``           ``fault_id``, ``onset_at``, ``onset_source``, ``onset_uncertainty_s``
``fault.apply_failed``      ``fault_id``, ``error`` (it may have half-happened: still revertable)
``fault.step_intent``       BEFORE a schedule's step (docs/scenarios.md "Schedules"): ``fault_id``,
                            ``index``, ``param`` (latency_ms, share, ...), ``value``,
                            ``planned_at``; the fault's undo record covers every step
``fault.step``              the step in force: the same, ``onset_at``, ``onset_source``,
                            ``onset_uncertainty_s`` (step 0's onset is the apply's); ``late_s``
                            when the update began over 0.25 s after ``planned_at``
``fault.step_failed``       ``fault_id``, ``index``, ``error`` (the rollback follows)
``fault.revert_intent``     ``fault_id``, ``why`` (end, rollback, watchdog, stop_when, recover)
``fault.revert_retry``      ``fault_id``, ``attempt``, ``error``
``fault.revert_failed``     ``fault_id``, ``error``, ``why``
``fault.reverted``          ``fault_id``, ``reverted_at``, ``why``
**cleanup**
``cleanup.check_failed``    the check itself could not look: ``what``, ``error``
``cleanup.verified``        what the rollback's check found (results.json ``cleanup``): ``ok``,
                            ``toxics_left``, ``containers_not_running``, ``faults_not_reverted``,
                            ``hook_faults_active``
**stop conditions**
``stop.tripped``            the condition held: ``condition`` and what was measured (error rate
                            from the samples, or a Prometheus ``query``, ``series``)
``stop.reverted``           ``first_revert_at``, ``reaction_s`` (held -> first revert call)
``stop.metrics_reaction``   the same reaction seen in Prometheus (``condition_true_at``, ...)
**Prometheus**
``metrics.preflight``       ``url``, ``ok``, ``scrape_interval_s``, ``steady_state`` or ``error``
``metrics.steady_state_after`` ``steady_state``: the checks judged after recovery
``metrics.recorded``        ``file`` (metrics.json), ``queries``, ``errors``
``metrics.error``           ``what``, ``error``
**the game-day console** (docs/gameday.md)
``gameday.participants``    the people in the room, named at the start: ``participants``
``gameday.inject``          the facilitator injected a ``manual`` fault: ``fault``, ``by``
``gameday.hold``            the facilitator held a phase: ``phase``, ``seconds``, ``by``
``gameday.abort``           the facilitator aborted: ``by``, ``requested_at`` (the rollback follows)
``human.entry``             one person's entry on the drill's clock (``ts`` is the click):
                            ``participant``, ``kind`` (noticed, diagnosed, decided, acted,
                            escalated, note), ``note``
**Kubernetes** (harness/faults/kubernetes.py)
``k8s.chain_link``          a repair-chain link from a watch event: ``fault`` (its name), ``link``,
                            ``seen_at``, ``object``, ``api_at``, ``node``, ``detail``
``k8s.replicas``            ``fault``, ``service``, ``ready``, ``desired``, ``seen_at``
=========================== ===================================================================
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from harness.rundir.undo import ProxyCreatedUndo, Undo, UnknownUndo

MAX_EPOCH_S = 1e10  # the year 2286: a larger instant is damage, and would overflow date arithmetic
Epoch = Annotated[float, Field(ge=0, le=MAX_EPOCH_S)]
"""An instant in epoch seconds; out of range is damage (named FILE:LINE by the reader)."""
Seconds = Annotated[float, Field(ge=0, le=1e6)]


class Event(BaseModel):
    """One journal record's payload. Read strictly (:func:`parse_event`: a field of the wrong type
    is damage, never coerced); built leniently, so a writer handing over a numpy integer never
    fails on the way to the journal (mypy checks the writers' types)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event: str

    def fields(self) -> dict[str, Any]:
        """The fields as written after ``event``: those given at construction (or read), in
        declaration order, as JSON values."""
        # Only the top level is trimmed to what was given: a nested undo record is written whole.
        return self.model_dump(mode="json", include=self.model_fields_set - {"event"})


# --- the run ----------------------------------------------------------------------------------


class RunStart(Event):
    event: Literal["run.start"] = "run.start"
    run_id: str | None = None
    scenario: str | None = None
    scenario_path: str | None = None
    scenario_sha256: str | None = None
    run_dir: str | None = None
    user: str | None = None
    host: str | None = None
    drill_version: str | None = None
    pid: int | None = None


class RunEnvironment(Event):
    event: Literal["run.environment"] = "run.environment"
    environment: dict[str, JsonValue]


class RunError(Event):
    event: Literal["run.error"] = "run.error"
    error: str
    traceback_file: str | None = None


class RunAborted(Event):
    event: Literal["run.aborted"] = "run.aborted"
    reason: str


class RunFinished(Event):
    event: Literal["run.finished"] = "run.finished"


class RunEnd(Event):
    event: Literal["run.end"] = "run.end"
    verdict: str


# --- the stack --------------------------------------------------------------------------------


class Preflight(Event):
    event: Literal["preflight"] = "preflight"
    failures: list[str]
    unhealthy: list[str]


class StackStarting(Event):
    event: Literal["stack.starting"] = "stack.starting"
    runtime: str
    file: str


class StackStarted(Event):
    event: Literal["stack.started"] = "stack.started"
    endpoints: dict[str, str] = Field(default_factory=dict)
    process_groups: dict[str, int] = Field(default_factory=dict)


class StackStopped(Event):
    event: Literal["stack.stopped"] = "stack.stopped"
    why: str | None = None
    groups: list[str] | None = None


class StackStopFailed(Event):
    event: Literal["stack.stop_failed"] = "stack.stop_failed"
    error: str


class StackEvents(Event):
    event: Literal["stack.events"] = "stack.events"
    url: str
    ok: bool
    count: int | None = None
    file: str | None = None
    error: str | None = None


class DependencyLost(Event):
    event: Literal["dependency.lost"] = "dependency.lost"
    what: str
    url: str | None = None
    error: str | None = None
    members: list[str] | None = None


# --- Toxiproxy proxies --------------------------------------------------------------------------


class ToxiproxyConnected(Event):
    event: Literal["toxiproxy.connected"] = "toxiproxy.connected"
    url: str
    version: str | None = None


class ProxyIntent(Event):
    event: Literal["proxy.intent"] = "proxy.intent"
    proxy: str
    listen: str | None = None
    upstream: str | None = None
    undo: ProxyCreatedUndo | None = None


class ProxyCreated(Event):
    event: Literal["proxy.created"] = "proxy.created"
    proxy: str


class ProxyDeleted(Event):
    event: Literal["proxy.deleted"] = "proxy.deleted"
    proxy: str
    why: str | None = None


class ProxyDeleteFailed(Event):
    event: Literal["proxy.delete_failed"] = "proxy.delete_failed"
    proxy: str
    error: str


# --- load ---------------------------------------------------------------------------------------


class LoadStarting(Event):
    event: Literal["load.starting"] = "load.starting"
    plan: dict[str, JsonValue]


class LoadStarted(Event):
    event: Literal["load.started"] = "load.started"
    process_groups: dict[str, int | None] = Field(default_factory=dict)


class LoadStopped(Event):
    event: Literal["load.stopped"] = "load.stopped"
    why: str | None = None
    groups: list[str] | None = None


class LoadStopFailed(Event):
    event: Literal["load.stop_failed"] = "load.stop_failed"
    error: str


class CapacityStopped(Event):
    event: Literal["capacity.stopped"] = "capacity.stopped"


class CapacityStopFailed(Event):
    event: Literal["capacity.stop_failed"] = "capacity.stop_failed"
    error: str


# --- phases -------------------------------------------------------------------------------------


class PhaseStart(Event):
    event: Literal["phase.start"] = "phase.start"
    phase: str


class PhaseEnd(Event):
    event: Literal["phase.end"] = "phase.end"
    phase: str | None = None


# --- faults -------------------------------------------------------------------------------------


class FaultIntent(Event):
    event: Literal["fault.intent"] = "fault.intent"
    fault_id: str
    name: str = ""
    type: str = ""
    targets: list[str] = Field(default_factory=list)
    params: dict[str, JsonValue] = Field(default_factory=dict)
    undo: Undo = Field(default_factory=UnknownUndo)
    planned_revert_at: Epoch | None = None


class FaultApplied(Event):
    event: Literal["fault.applied"] = "fault.applied"
    fault_id: str
    onset_at: Epoch
    onset_source: str
    onset_uncertainty_s: Seconds


class FaultStepIntent(Event):
    event: Literal["fault.step_intent"] = "fault.step_intent"
    fault_id: str
    index: int
    param: str
    value: float
    planned_at: Epoch


class FaultStep(Event):
    event: Literal["fault.step"] = "fault.step"
    fault_id: str
    index: int
    param: str
    value: float
    planned_at: Epoch
    onset_at: Epoch
    onset_source: str
    onset_uncertainty_s: Seconds
    late_s: Seconds | None = None  # written only when the step's update began late (engine/schedule.py)


class FaultStepFailed(Event):
    event: Literal["fault.step_failed"] = "fault.step_failed"
    fault_id: str
    index: int
    error: str


class FaultApplyFailed(Event):
    event: Literal["fault.apply_failed"] = "fault.apply_failed"
    fault_id: str
    error: str


class FaultRevertIntent(Event):
    event: Literal["fault.revert_intent"] = "fault.revert_intent"
    fault_id: str
    why: str | None = None


class FaultRevertRetry(Event):
    event: Literal["fault.revert_retry"] = "fault.revert_retry"
    fault_id: str
    attempt: int
    error: str


class FaultRevertFailed(Event):
    event: Literal["fault.revert_failed"] = "fault.revert_failed"
    fault_id: str
    error: str
    why: str | None = None


class FaultReverted(Event):
    event: Literal["fault.reverted"] = "fault.reverted"
    fault_id: str
    reverted_at: Epoch | None = None
    why: str | None = None


# --- cleanup ------------------------------------------------------------------------------------


class CleanupCheckFailed(Event):
    event: Literal["cleanup.check_failed"] = "cleanup.check_failed"
    what: str
    error: str


class CleanupVerified(Event):
    """What the rollback's own check found; ``None`` where the check could not look."""

    event: Literal["cleanup.verified"] = "cleanup.verified"
    ok: bool
    toxics_left: int | None = None
    containers_not_running: list[str] | None = None
    faults_not_reverted: list[str] | None = None
    hook_faults_active: list[str] | None = None

    def doubts(self) -> list[str]:
        """What the check found still applied or not running (empty when clean)."""
        found = {"faults_not_reverted": self.faults_not_reverted, "hook_faults_active": self.hook_faults_active,
                 "containers_not_running": self.containers_not_running}
        return [f"{key}: {', '.join(values)}" for key, values in found.items() if values]


# --- stop conditions ------------------------------------------------------------------------------


class StopTripped(Event):
    event: Literal["stop.tripped"] = "stop.tripped"
    condition: str
    error_rate_threshold: float | None = None
    query: str | None = None
    source: str | None = None
    for_s: float | None = None
    measured: float | None = None
    series: JsonValue = None
    bad_requests: int | None = None
    requests: int | None = None
    broken_since: float | None = None
    held_at: float | None = None
    detected_at: float | None = None


class StopReverted(Event):
    event: Literal["stop.reverted"] = "stop.reverted"
    first_revert_at: float | None = None
    reaction_s: float | None = None


class StopMetricsReaction(Event):
    event: Literal["stop.metrics_reaction"] = "stop.metrics_reaction"
    condition_true_at: float | None = None
    condition_held_at: float | None = None
    rollback_done_at: float | None = None
    true_to_rollback_s: float | None = None
    held_to_rollback_s: float | None = None
    scrape_interval_s: float | None = None


# --- Prometheus -----------------------------------------------------------------------------------


class MetricsPreflight(Event):
    event: Literal["metrics.preflight"] = "metrics.preflight"
    url: str | None = None
    ok: bool | None = None
    error: str | None = None
    scrape_interval_s: float | None = None
    steady_state: list[dict[str, JsonValue]] = Field(default_factory=list)


class MetricsSteadyStateAfter(Event):
    event: Literal["metrics.steady_state_after"] = "metrics.steady_state_after"
    steady_state: list[dict[str, JsonValue]] = Field(default_factory=list)


class MetricsRecorded(Event):
    event: Literal["metrics.recorded"] = "metrics.recorded"
    file: str
    queries: int
    errors: list[str] = Field(default_factory=list)


class MetricsError(Event):
    event: Literal["metrics.error"] = "metrics.error"
    what: str
    error: str


# --- the game-day console ----------------------------------------------------------------------

HumanKind = Literal["noticed", "diagnosed", "decided", "acted", "escalated", "note"]
HUMAN_KINDS: tuple[str, ...] = get_args(HumanKind)


class GamedayParticipants(Event):
    event: Literal["gameday.participants"] = "gameday.participants"
    participants: list[str] = Field(default_factory=list)


class GamedayInject(Event):
    event: Literal["gameday.inject"] = "gameday.inject"
    fault: str
    by: str = ""


class GamedayHold(Event):
    event: Literal["gameday.hold"] = "gameday.hold"
    phase: str
    seconds: float
    by: str = ""


class GamedayAbort(Event):
    event: Literal["gameday.abort"] = "gameday.abort"
    by: str = ""
    requested_at: float | None = None


class HumanEntry(Event):
    event: Literal["human.entry"] = "human.entry"
    participant: str
    kind: HumanKind
    note: str = ""


# --- Kubernetes (harness/faults/kubernetes.py) ------------------------------------------------------


class KubeChainLink(Event):
    """One link of a Kubernetes fault's repair chain, seen in a watch event: ``link``
    (node_not_ready, taint_added, evicted, scheduled, ready, create_refused, unschedulable),
    ``seen_at`` when the watch event arrived (epoch s; the figure's clock), ``api_at`` the instant the
    API server recorded on the object (whole seconds: a cross-check), ``object`` (kind/name),
    ``node``, ``region`` (the node's ``topology.kubernetes.io/region`` label), ``detail`` (a
    reason or message the cluster gave)."""

    event: Literal["k8s.chain_link"] = "k8s.chain_link"
    fault: str
    link: str
    seen_at: Epoch
    object: str
    api_at: float | None = None
    node: str | None = None
    region: str | None = None
    detail: str | None = None


class KubeReplicas(Event):
    """A service's ready replicas changed during a Kubernetes fault (Deployment watch)."""

    event: Literal["k8s.replicas"] = "k8s.replicas"
    fault: str
    service: str
    ready: int
    desired: int
    seen_at: Epoch


# --- anything else --------------------------------------------------------------------------------


class OtherEvent(Event):
    """A record of an event this version does not know (written by another version of drill):
    its name and its fields, kept whole."""

    model_config = ConfigDict(frozen=True, extra="allow")

    def fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


JournalEvent = (
    RunStart | RunEnvironment | RunError | RunAborted | RunFinished | RunEnd
    | Preflight | StackStarting | StackStarted | StackStopped | StackStopFailed | StackEvents | DependencyLost
    | ToxiproxyConnected | ProxyIntent | ProxyCreated | ProxyDeleted | ProxyDeleteFailed
    | LoadStarting | LoadStarted | LoadStopped | LoadStopFailed | CapacityStopped | CapacityStopFailed
    | PhaseStart | PhaseEnd
    | FaultIntent | FaultApplied | FaultApplyFailed | FaultRevertIntent | FaultRevertRetry | FaultRevertFailed
    | FaultReverted | FaultStepIntent | FaultStep | FaultStepFailed
    | CleanupCheckFailed | CleanupVerified
    | StopTripped | StopReverted | StopMetricsReaction
    | MetricsPreflight | MetricsSteadyStateAfter | MetricsRecorded | MetricsError
    | GamedayParticipants | GamedayInject | GamedayHold | GamedayAbort | HumanEntry
    | KubeChainLink | KubeReplicas
    | OtherEvent
)
"""Every journal record, discriminated on ``event``."""

CATALOGUE: dict[str, type[Event]] = {
    cls.model_fields["event"].default: cls for cls in get_args(JournalEvent) if cls is not OtherEvent
}
"""Event name -> its model: the one place a name is bound to its fields."""


def parse_event(record: dict[str, Any]) -> JournalEvent:
    """A parsed journal line as its typed event (``ts`` and ``at`` are the reader's). Raises
    pydantic's ``ValidationError`` when a known event's field is missing or of the wrong type."""
    model = CATALOGUE.get(str(record.get("event")), OtherEvent)
    return cast(JournalEvent, model.model_validate(record, strict=True))
