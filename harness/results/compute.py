"""Run directory -> typed results (:class:`~harness.results.model.RunResults`), from the run
directory alone.

``drill run`` and ``drill report RUN_DIR`` both call :func:`compute_results`, so every figure in
a report can be recomputed from what the run directory keeps: ``journal.jsonl`` (phases, fault
onsets and reverts, cleanup, environment), ``scenario.yaml`` (objectives, measurement settings)
and ``samples/`` (one row per request). The verdict is decided once, by
:func:`harness.verdict.decide_verdict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness import measure
from harness.errors import ScenarioError
from harness.measure import cost as measure_cost
from harness.measure import shapes as measure_shapes
from harness.measure.agreement import agreement
from harness.measure.capacity import measure_capacity
from harness.measure.quality import QUALITY_COLUMNS, RETRIEVAL, metric_name
from harness.measure.quality_phases import QualityJudgement, min_quality_objective, quality_phase_stats
from harness.measure.timeline import timeline as measure_timeline
from harness.metrics.results import metrics_summary
from harness.results.kubernetes import repair_chain_figures
from harness.results.model import (
    AfterResult,
    Agreement,
    CapacityResult,
    Cleanup,
    CostResult,
    FaultResult,
    HumanTimeline,
    ImpactResult,
    LoadClockResult,
    MeasurementInfo,
    ObjectiveResult,
    PhaseResult,
    QualityIndexResult,
    QualityPhaseResult,
    QualityResult,
    RunbookResult,
    RunResults,
    ScenarioRef,
    ShapeResult,
    StopResult,
)
from harness.rundir import (
    COST_RECORDS_FILE,
    JOURNAL_FILE,
    SCENARIO_FILE,
    STACK_EVENTS_FILE,
    journal_path,
    read_cost_records,
    read_stack_events,
    scenario_path,
)
from harness.rundir.clock import load_clock
from harness.rundir.events import (
    CleanupVerified,
    FaultApplied,
    FaultIntent,
    FaultReverted,
    FaultStep,
    GamedayAbort,
    GamedayHold,
    GamedayInject,
    GamedayParticipants,
    HumanEntry,
    PhaseEnd,
    PhaseStart,
    RunAborted,
    RunEnvironment,
    RunFinished,
    RunStart,
    StopReverted,
    StopTripped,
)
from harness.rundir.frames import read_capacity, read_samples, records_schedule
from harness.rundir.health import health_path, read_health
from harness.rundir.journal import read_journal, utc_iso
from harness.rundir.quality import read_quality, read_quality_index
from harness.scenario.cost import Prices
from harness.scenario.loader import load_model
from harness.scenario.model import Runbook, Scenario
from harness.scenario.units import parse_latency_bound
from harness.verdict import decide_verdict


@dataclass
class JournalFacts:
    """What the journal says about a run, in the shapes measure and the report need."""

    run_id: str
    start: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    phase_starts: dict[str, float] = field(default_factory=dict)
    recovery_end: float | None = None
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    cleanup: dict[str, Any] = field(default_factory=dict)
    abort_reason: str | None = None
    stop: dict[str, Any] = field(default_factory=dict)
    first_ts: float | None = None
    last_ts: float | None = None
    finished_ts: float | None = None
    # The game-day console (docs/gameday.md): people, their entries, the facilitator's commands.
    participants: list[str] = field(default_factory=list)
    human_entries: list[tuple[float, str, str, str]] = field(default_factory=list)
    injects: list[dict[str, Any]] = field(default_factory=list)
    holds: list[dict[str, Any]] = field(default_factory=list)
    aborted_by: str | None = None


def read_facts(run_dir: Path) -> JournalFacts:
    path = journal_path(run_dir)
    if not path.exists():
        raise ScenarioError(f"{run_dir}: no {JOURNAL_FILE}: not a drill run directory")
    facts = JournalFacts(run_id=Path(run_dir).name)
    for record in read_journal(path):
        ts = record.ts
        facts.first_ts = ts if facts.first_ts is None else facts.first_ts
        facts.last_ts = ts
        match record.event:
            case RunStart() as start:
                facts.start = record.document()
                facts.run_id = start.run_id or facts.run_id
            case RunFinished() if facts.finished_ts is None:
                facts.finished_ts = ts
            case RunEnvironment(environment=environment):
                facts.environment = environment
            case PhaseStart(phase=phase):
                facts.phase_starts[phase] = ts
            case PhaseEnd(phase="recovery"):
                facts.recovery_end = ts
            case FaultIntent() as intent:
                facts.faults[intent.fault_id] = {
                    "name": intent.name, "type": intent.type, "targets": intent.targets, "params": intent.params,
                }
            case FaultApplied() as applied if applied.fault_id in facts.faults:
                facts.faults[applied.fault_id].update(
                    onset_at=applied.onset_at, onset_source=applied.onset_source,
                    onset_uncertainty_s=applied.onset_uncertainty_s,
                )
            case FaultStep() as step if step.fault_id in facts.faults:
                fault = facts.faults[step.fault_id]
                fault["param"] = step.param
                fault.setdefault("steps", []).append((step.index, step.onset_at, step.value))
            case FaultReverted() as reverted if reverted.fault_id in facts.faults:
                facts.faults[reverted.fault_id]["reverted_at"] = (
                    ts if reverted.reverted_at is None else reverted.reverted_at
                )
            case CleanupVerified() as cleanup:
                facts.cleanup = cleanup.fields()
            case StopTripped() | StopReverted() as stop:
                facts.stop.update(stop.fields())
            case RunAborted(reason=reason):
                facts.abort_reason = reason
            case GamedayParticipants(participants=participants):
                facts.participants = list(participants)
            case HumanEntry() as entry:
                facts.human_entries.append((ts, entry.participant, entry.kind, entry.note))
            case GamedayInject() as inject:
                facts.injects.append({"fault": inject.fault, "by": inject.by, "at": utc_iso(ts)})
            case GamedayHold() as hold:
                facts.holds.append({"phase": hold.phase, "seconds": hold.seconds, "by": hold.by, "at": utc_iso(ts)})
            case GamedayAbort(by=by):
                facts.aborted_by = by
    return facts


def phase_bounds(facts: JournalFacts, scenario: Scenario) -> dict[str, tuple[float, float]]:
    """Each phase's (start, end) in epoch seconds. An aborted run's last phase ends at the abort."""
    p = scenario.phases
    lengths = {"baseline": p.baseline, "fault": p.fault, "recovery": p.recovery}
    if "baseline" not in facts.phase_starts:
        return {}
    t0 = facts.phase_starts["baseline"]
    planned = {
        "baseline": (t0, t0 + p.baseline),
        "fault": (t0 + p.baseline, t0 + p.baseline + p.fault),
        "recovery": (t0 + p.baseline + p.fault, t0 + p.total_s),
    }
    if facts.holds:  # a facilitator held a phase: the journaled starts and end are the phases
        fault_at = facts.phase_starts.get("fault", planned["fault"][0])
        recovery_at = facts.phase_starts.get("recovery", max(planned["recovery"][0], fault_at + p.fault))
        recovery_end = max(recovery_at + p.recovery, facts.recovery_end or 0.0)
        planned = {"baseline": (t0, fault_at), "fault": (fault_at, recovery_at),
                   "recovery": (recovery_at, recovery_end)}
    end_of_data = facts.recovery_end or facts.finished_ts or facts.last_ts or planned["recovery"][1]
    out: dict[str, tuple[float, float]] = {}
    for name in lengths:
        start, end = planned[name]
        if start >= end_of_data:
            break
        out[name] = (start, min(end, end_of_data))
    return out


def load_run_scenario(run_dir: Path) -> Scenario:
    path = scenario_path(run_dir)
    if not path.exists():
        raise ScenarioError(f"{run_dir}: no {SCENARIO_FILE}: not a drill run directory")
    return load_model(path, Scenario)


def compute_results(run_dir: Path) -> tuple[RunResults, pd.DataFrame]:
    """Recompute results.json and the report's bucket timeline from a run directory."""
    run_dir = Path(run_dir)
    facts = read_facts(run_dir)
    clock = load_clock(run_dir)  # distributed load: the workers' clock offsets against the master
    scenario = load_run_scenario(run_dir)
    phases = phase_bounds(facts, scenario)
    samples = read_samples(run_dir)
    timings = fault_timings(facts, clock.uncertainty_s if clock else 0.0)
    # A run directory made before the harness measured its own health (no ``intended`` column, no
    # health.jsonl) recomputes without it, to the figures and verdict it gave.
    troubles = read_health(run_dir) if records_schedule(run_dir) or health_path(run_dir).exists() else None
    m = measure.measure_run(
        samples=samples,
        phases=phases,
        faults=timings,
        objectives=objective_spec(scenario),
        settings=measure_settings(scenario),
        troubles=troubles,
        stack_events=read_stack_events(run_dir),
    )
    shapes = _shape_figures(facts, scenario, samples, m, phases, run_dir)
    shape_objectives = measure_shapes.shape_objectives(
        {str(k): v for k, v in (scenario.objectives.failover_by or {}).items()} or None,
        scenario.objectives.max_flaps, shapes,
        breaker_open_by={str(k): v for k, v in (scenario.objectives.breaker_open_by or {}).items()} or None,
        max_bad_answers=scenario.objectives.max_bad_answers)
    quality, quality_judgement = _quality(run_dir, scenario, phases)
    quality_objectives = [] if quality_judgement is None else [quality_judgement.objective]
    quality_undecided = () if quality_judgement is None else quality_judgement.undecided
    cost = cost_result(run_dir, scenario, samples, phases, timings)
    shape_objectives += measure_cost.cost_objectives(
        scenario.objectives.max_retry_amplification, scenario.objectives.cost_bound, cost[0] if cost else None)
    never_verified = {"ok": False, "toxics_left": None, "containers_not_running": None}
    cleanup = Cleanup.model_validate(facts.cleanup or never_verified)
    metrics = metrics_summary(run_dir)  # Prometheus: recorded series, steady state after recovery
    steady_state_held = metrics is None or metrics.steady_state_held
    chains, chain_objectives = repair_chain_figures(run_dir, facts.faults, scenario)  # Kubernetes faults
    decision = decide_verdict(
        objectives_met=(m.decided_objectives_met and steady_state_held and measure.all_met(shape_objectives)
                        and measure.all_met(chain_objectives)
                        and (bool(quality_undecided) or measure.all_met(quality_objectives))),
        abort_reason=facts.abort_reason,
        cleanup_verified=cleanup.ok is not False,
        undecided=[*m.undecided, *quality_undecided],
    )
    undecided = {u.name: u.reasons for u in m.health.undecided} if m.health is not None else {}
    if quality_undecided:
        undecided["min_quality"] = quality_undecided
    start = facts.start
    results = RunResults(
        run_id=facts.run_id,
        scenario=ScenarioRef(
            name=scenario.name, path=start.get("scenario_path"), sha256=start.get("scenario_sha256"),
            description=scenario.description,
        ),
        started_at=utc_iso(facts.first_ts) if facts.first_ts else None,
        ended_at=utc_iso(facts.finished_ts or facts.last_ts) if facts.last_ts else None,
        verdict=decision.verdict,
        operator=start.get("user"),
        host=start.get("host"),
        environment=facts.environment,
        phases={name: PhaseResult.of(stats, m.streams.get(name), m.answers.get(name))
                for name, stats in m.phases.items()},
        faults=[FaultResult.of(f) for f in m.faults],
        objectives=[ObjectiveResult.of(o, undecided.get(o.name, ()))
                    for o in [*m.objectives, *shape_objectives, *quality_objectives, *chain_objectives]]
        + [ObjectiveResult.model_validate(o) for o in (metrics.objectives if metrics else [])],
        measurement=MeasurementInfo.of(m),
        cleanup=cleanup,
    )
    _add_capacity(results, run_dir, samples, scenario, timings)
    _add_agreement(results, run_dir, phases)
    _add_faults_never_applied(results.faults, facts)
    _add_timelines(results.faults, scenario)
    for fault in results.faults:
        if fault.name in shapes:
            fault.shape = ShapeResult.of(shapes[fault.name])
    if decision.abort_reason:
        results.abort_reason = decision.abort_reason
    if clock:
        results.load_clock = LoadClockResult.model_validate(clock.to_dict())
    if facts.stop:
        results.stop = stop_figures(facts.stop)
    if metrics is not None:
        results.metrics = metrics.document
    if m.impact is not None:
        results.impact = ImpactResult.of(m.impact)
    results.runbook = runbook_figures(scenario, samples, m, phases)
    if quality is not None:
        results.quality = quality
    if cost is not None:
        results.cost = CostResult.of(*cost)
    if facts.participants or facts.human_entries or facts.injects or facts.aborted_by:
        results.human = human_figures(facts, results)
    if chains:
        results.repair_chains = chains
    return results, _timeline(samples, m, phases, scenario)


def _quality(
    run_dir: Path, scenario: Scenario, phases: measure.Phases
) -> tuple[QualityResult | None, QualityJudgement | None]:
    """Answer quality from the probe's scored canary answers (``samples/quality.csv``) and the
    ``min_quality`` judgement; (None, None) for a run without canaries."""
    rows = read_quality(run_dir)
    index = read_quality_index(run_dir)
    if rows is None and index is None:
        return None, None
    frame = rows if rows is not None else pd.DataFrame({c: [] for c in QUALITY_COLUMNS})
    stats = quality_phase_stats(frame, phases)
    k = index.k if index is not None and index.k else (scenario.load.canaries.k if scenario.load.canaries else None)
    metric = metric_name(index.kind if index is not None else RETRIEVAL, k)
    result = QualityResult(
        metric=metric,
        index=None if index is None else QualityIndexResult(
            served_by=index.served_by, tier=index.tier, model=index.model, documents=index.documents,
            problem=index.problem),
        phases={name: QualityPhaseResult.of(s) for name, s in stats.items()},
    )
    spec = scenario.objectives.min_quality
    if spec is None:
        return result, None
    _, minimum, factor = spec.bound
    problem = "the probe wrote no index record" if index is None else index.problem
    return result, min_quality_objective(metric, minimum, factor, stats, problem)


def human_figures(facts: JournalFacts, results: RunResults) -> HumanTimeline:
    """The people's lane, from the first fault that took effect (docs/gameday.md)."""
    applied = [f for f in results.faults if f.onset_epoch is not None]
    first = min(applied, key=lambda f: f.onset_epoch or 0.0) if applied else None
    runbook = results.runbook
    return HumanTimeline.of(
        facts.participants, facts.human_entries, first.onset_epoch if first else None, first,
        runbook.fired_epoch if runbook is not None else None, facts.injects, facts.holds, facts.aborted_by,
    )


def cost_result(
    run_dir: Path, scenario: Scenario, samples: pd.DataFrame, phases: measure.Phases,
    timings: list[measure.FaultTiming],
) -> tuple[measure_cost.CostFigures, dict[str, str]] | None:
    """What the failover cost, from ``cost-records.json`` (the proxy's call log, the cloud's
    instance record, the prices in force) and the samples; None when the run kept no records."""
    records = read_cost_records(run_dir)
    if records is None or not phases:
        return None
    sources = {"client requests": "samples/*.csv (send time)", "tokens": "samples/*.csv (streamed tokens received)"}
    proxy = records.get("proxy")
    calls: list[measure_cost.ProxyCall] | None = None
    if isinstance(proxy, dict) and proxy.get("ok"):
        calls = [
            measure_cost.ProxyCall(str(c.get("proxy")), float(c["at"]),
                                   int(c["status"]) if isinstance(c.get("status"), int) else None,
                                   str(c["fault"]) if c.get("fault") else None)
            for c in proxy.get("calls") or [] if isinstance(c, dict) and isinstance(c.get("at"), (int, float))
        ]
        sources["upstream calls"] = (f"{COST_RECORDS_FILE} proxy.calls (the HTTP fault proxy's own log, "
                                     f"{proxy.get('url')}); tiers without a route: answers served")
    instances_doc = records.get("instances")
    instances: list[measure_cost.InstanceRecord] | None = None
    if isinstance(instances_doc, dict) and instances_doc.get("ok"):
        instances = [
            measure_cost.InstanceRecord(
                id=str(r.get("id")), region=str(r.get("region")), node=str(r.get("node")),
                created_at=float(r["created_at"]),
                terminated_at=float(r["terminated_at"]) if isinstance(r.get("terminated_at"), (int, float)) else None,
                preexisting=bool(r.get("preexisting")),
            )
            for r in instances_doc.get("records") or []
            if isinstance(r, dict) and isinstance(r.get("created_at"), (int, float))
        ]
        sources["instances"] = f"{COST_RECORDS_FILE} instances (the cloud's own record, {instances_doc.get('url')})"
    prices = _price_table(records.get("prices"))
    if prices is not None:
        sources["prices"] = f"{COST_RECORDS_FILE} prices" + (" (example prices)" if prices.example else "")
    routes = sorted({c.proxy for c in calls or []})
    declared = records.get("routes")
    tiers_of_routes = {**measure_cost.route_tiers(samples, routes),
                       **({str(k): str(v) for k, v in declared.items()} if isinstance(declared, dict) else {})}
    figures = measure_cost.cost_figures(
        samples, phases, [(t.name, t.onset_at, t.reverted_at) for t in timings], calls,
        tiers_of_routes, instances, prices,
    )
    return figures, sources


def _price_table(document: Any) -> measure_cost.PriceTable | None:
    if not isinstance(document, dict):
        return None
    try:
        prices = Prices.model_validate(document)
    except ValueError as exc:
        raise ScenarioError(f"{COST_RECORDS_FILE}: prices do not read as prices ({exc})") from None
    return measure_cost.PriceTable(
        currency=prices.currency, example=prices.example,
        tiers={name: measure_cost.TierRate(**t.model_dump()) for name, t in prices.tiers.items()},
        regions={name: r.per_instance_hour for name, r in prices.regions.items()},
    )


def runbook_figures(
    scenario: Scenario, samples: pd.DataFrame, m: measure.Measurement, phases: measure.Phases
) -> RunbookResult:
    """The scenario's runbook trigger (the playbook's without ``runbook:``) walked over the run."""
    runbook = scenario.runbook or Runbook()
    absolute, factor = parse_latency_bound(runbook.p95)
    limit = absolute
    if absolute is None and factor is not None and m.baseline_p95_ms is not None:
        limit = factor * m.baseline_p95_ms
    trigger = measure.RunbookTrigger(error_rate=runbook.error_rate, p95_limit_ms=limit, window_s=float(runbook.window))
    onsets = [f.fault.onset_at for f in m.faults]
    data_end = max(end for _, end in phases.values()) if phases else None
    walk = measure.runbook_walk(samples, trigger, min(onsets) if onsets else None, data_end, m.settings.bucket_s)
    return RunbookResult.of(runbook.error_rate, runbook.p95, trigger, walk)


def _add_timelines(faults: list[FaultResult], scenario: Scenario) -> None:
    """Each fault's place in a compound timeline (``after``, ``branch``), for the report's lanes."""
    specs = {f.name: f for f in scenario.faults}
    for fault in faults:
        spec = specs.get(fault.name)
        if spec is None:
            continue
        if spec.after is not None:
            fault.after = AfterResult(fault=spec.after.fault, when=spec.after.when, offset_s=spec.after.offset)
        if spec.branch is not None:
            fault.branch = spec.branch


def _shape_figures(
    facts: JournalFacts, scenario: Scenario, samples: pd.DataFrame, m: measure.Measurement,
    phases: measure.Phases, run_dir: Path,
) -> dict[str, measure_shapes.ShapeFigures]:
    """Each applied scheduled fault's figures (harness/measure/shapes.py), by fault name."""
    schedules = {f.name: s for f in scenario.faults if (s := getattr(f, "schedule", None)) is not None}
    applied = [f for f in facts.faults.values() if f["name"] in schedules and f.get("steps") and "onset_at" in f]
    if not applied or samples.empty or not phases:
        return {}
    ordered = measure.sort_samples(samples)
    good = measure.good_mask(ordered, m.latency_bound_ms)
    failover = {f.fault.name: f.fault.onset_at + f.failover_s for f in m.faults if f.failover_s is not None}
    data_end = max(end for _, end in phases.values())
    events = read_stack_events(run_dir)
    figures: dict[str, measure_shapes.ShapeFigures] = {}
    for f in applied:
        steps = [measure_shapes.Step(index, at, value) for index, at, value in sorted(f["steps"])]
        until = f.get("reverted_at") or data_end
        figures[f["name"]] = measure_shapes.shape_figures(
            schedules[f["name"]].shape, f["param"], steps, ordered, good, m.primary_tier,
            (f["onset_at"], until), failover.get(f["name"]), scenario.measurement.bucket, events,
        )
    return figures


def _timeline(
    samples: pd.DataFrame, m: measure.Measurement, phases: measure.Phases, scenario: Scenario
) -> pd.DataFrame:
    """The report's per-bucket series, from the run start to the end of the last phase."""
    if not phases or samples.empty:
        return pd.DataFrame()
    ordered = measure.sort_samples(samples)
    good = measure.good_mask(ordered, m.latency_bound_ms)
    start = phases["baseline"][0]
    end = max(end for _, end in phases.values())
    return measure_timeline(ordered, good, start, scenario.measurement.bucket, end, m.stream_lengths)


def _add_agreement(results: RunResults, run_dir: Path, phases: measure.Phases) -> None:
    """Each fault's failover/failback beside the stack's own record, when the run kept one."""
    events = read_stack_events(run_dir)
    if events is None:
        return
    faults = sorted((f for f in results.faults if f.onset_at), key=lambda f: f.onset_at or "")
    onsets = [f.onset_epoch or 0.0 for f in faults]
    data_end = max(end for _, end in phases.values()) if phases else None
    for i, fault in enumerate(faults):
        # Faults applied together share the stack's events; a later fault's own window starts at
        # the first onset after this one was reverted.
        reverted = fault.reverted_epoch
        later = [t for t in onsets[i + 1:] if reverted is not None and t >= reverted]
        until = later[0] if later else data_end
        fault.agreement = Agreement.of(agreement(
            events, onsets[i], until, fault.failover_s, fault.failback_s,
            fault.resolution_s or 0.25, f"{STACK_EVENTS_FILE} (the stack's own routing log)",
        ))


def _add_capacity(
    results: RunResults, run_dir: Path, samples: pd.DataFrame, scenario: Scenario, timings: list[measure.FaultTiming]
) -> None:
    """Capacity figures when the run sampled the serving pool (``capacity:`` in the scenario)."""
    if scenario.capacity is None:
        return
    capacity = read_capacity(run_dir)
    if capacity is None:
        return
    figures = CapacityResult.model_validate(
        measure_capacity(capacity, timings, scenario.capacity.target, samples).to_dict()
    )
    results.capacity = figures
    for fault in results.faults:
        if fault.name in figures.per_fault:
            fault.add_capacity(figures.per_fault[fault.name])


def stop_figures(stop: dict[str, Any]) -> StopResult:
    """results.json ``stop``: the stop condition, what was measured when it held, and how long
    the engine took from that instant to its first revert call (``reaction_s``, goal <= 1 s)."""
    def when(key: str) -> str | None:
        value = stop.get(key)
        return utc_iso(value) if isinstance(value, (int, float)) else None

    held, first = stop.get("held_at"), stop.get("first_revert_at")
    reaction = first - held if isinstance(held, (int, float)) and isinstance(first, (int, float)) else None
    return StopResult(
        condition=stop.get("condition"),
        error_rate_threshold=stop.get("error_rate_threshold"),
        for_s=stop.get("for_s"),
        measured=stop.get("measured"),
        bad_requests=stop.get("bad_requests"),
        requests=stop.get("requests"),
        held_at=when("held_at"),
        detected_at=when("detected_at"),
        first_revert_at=when("first_revert_at"),
        reaction_s=None if reaction is None else round(reaction, 6),
    )


def fault_timings(facts: JournalFacts, clock_uncertainty_s: float = 0.0) -> list[measure.FaultTiming]:
    """The applied faults, as measure is given them; ``clock_uncertainty_s`` (distributed load:
    the workers' clock offsets against the master) widens every onset's uncertainty."""
    return [
        measure.FaultTiming(
            name=f["name"], type=f["type"], onset_at=f["onset_at"], onset_source=f["onset_source"],
            onset_uncertainty_s=f["onset_uncertainty_s"] + clock_uncertainty_s, reverted_at=f.get("reverted_at"),
            targets=list(f.get("targets", [])),
        )
        for f in facts.faults.values()
        if "onset_at" in f
    ]


def _add_faults_never_applied(faults: list[FaultResult], facts: JournalFacts) -> None:
    """Faults that were intended but never took effect still belong in the results."""
    measured = {f.name for f in faults}
    for f in facts.faults.values():
        if f["name"] not in measured:
            faults.append(FaultResult(
                name=f["name"], type=f["type"], targets=f.get("targets", []),
                onset_at=None, onset_source=None, onset_uncertainty_s=None,
                # A fault whose apply failed is still reverted (it may have half-happened): epoch -> ISO.
                reverted_at=utc_iso(f["reverted_at"]) if f.get("reverted_at") is not None else None,
                time_to_detect_s=None, rto_s=None,
                failover_s=None, failback_s=None, degraded_s=None, impact="not applied",
            ))


def objective_spec(scenario: Scenario) -> measure.ObjectiveSpec:
    o = scenario.objectives
    absolute, factor = o.p95_bound
    ttft_absolute, ttft_factor = o.ttft_p95_bound
    return measure.ObjectiveSpec(
        rto_s=o.rto_s,
        max_impact_s=o.max_impact_s,
        max_error_rate=o.max_error_rate,
        p95_ms=absolute,
        p95_baseline_factor=factor,
        p95_during=o.p95_during,
        failover_to=o.failover_to,
        max_lost_requests=o.max_lost_requests,
        ttft_p95_ms=ttft_absolute,
        ttft_p95_baseline_factor=ttft_factor,
        ttft_p95_during=o.ttft_p95_during,
        min_stream_completion=o.min_stream_completion,
        splice_gap_p95_ms=o.splice_gap_p95_ms,
        max_tokens_lost=o.max_tokens_lost,
        max_tokens_repeated=o.max_tokens_repeated,
        max_foreign_tokens=o.max_foreign_tokens,
        max_invalid_answer_rate=o.max_invalid_answer_rate,
    )


def measure_settings(scenario: Scenario) -> measure.MeasureSettings:
    m = scenario.measurement
    absolute, factor = m.good_latency_bound
    return measure.MeasureSettings(
        probe_rate_hz=scenario.load.probe_rate_hz or 1.0,
        bucket_s=m.bucket,
        window_s=m.window,
        good_latency_ms=absolute,
        good_latency_factor=factor,
        good_latency_floor_ms=m.good_latency_floor_ms,
        min_bad_requests=m.min_bad_requests,
        confidence=m.confidence,
    )

