"""Run directory -> results.json content, from the run directory alone.

``drill run`` and ``drill report RUN_DIR`` both call :func:`compute_results`, so every figure in
a report can be recomputed from what the run directory keeps: ``journal.jsonl`` (phases, fault
onsets and reverts, cleanup, environment), ``scenario.yaml`` (objectives, measurement settings)
and ``samples/`` (one row per request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import ScenarioError
from harness.journal import JOURNAL_NAME, read_journal, utc_iso
from harness.metrics.results import add_metrics
from harness.scenario.loader import load_model
from harness.scenario.model import Scenario


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


def read_facts(run_dir: Path) -> JournalFacts:
    path = Path(run_dir) / JOURNAL_NAME
    if not path.exists():
        raise ScenarioError(f"{run_dir}: no {JOURNAL_NAME}: not a drill run directory")
    facts = JournalFacts(run_id=Path(run_dir).name)
    for rec in read_journal(path):
        ts = rec.get("ts")
        facts.first_ts = ts if facts.first_ts is None else facts.first_ts
        facts.last_ts = ts
        event = rec.get("event")
        if event == "run.start":
            facts.start = rec
            facts.run_id = rec.get("run_id") or facts.run_id
        elif event == "run.finished" and facts.finished_ts is None:
            facts.finished_ts = ts
        elif event == "run.environment":
            facts.environment = rec.get("environment", {})
        elif event == "phase.start":
            facts.phase_starts[rec["phase"]] = rec["ts"]
        elif event == "phase.end" and rec.get("phase") == "recovery":
            facts.recovery_end = rec["ts"]
        elif event == "fault.intent":
            facts.faults[rec["fault_id"]] = {
                "name": rec.get("name"), "type": rec.get("type"), "targets": rec.get("targets", []),
                "params": rec.get("params", {}),
            }
        elif event == "fault.applied" and rec.get("fault_id") in facts.faults:
            facts.faults[rec["fault_id"]].update(
                onset_at=rec["onset_at"], onset_source=rec["onset_source"],
                onset_uncertainty_s=rec["onset_uncertainty_s"],
            )
        elif event == "fault.reverted" and rec.get("fault_id") in facts.faults:
            facts.faults[rec["fault_id"]]["reverted_at"] = rec.get("reverted_at", ts)
        elif event == "cleanup.verified":
            facts.cleanup = {k: v for k, v in rec.items() if k not in ("ts", "at", "event")}
        elif event in ("stop.tripped", "stop.reverted"):
            facts.stop.update({k: v for k, v in rec.items() if k not in ("ts", "at", "event")})
        elif event == "run.aborted":
            facts.abort_reason = rec.get("reason")
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
    end_of_data = facts.recovery_end or facts.finished_ts or facts.last_ts or planned["recovery"][1]
    out: dict[str, tuple[float, float]] = {}
    for name in lengths:
        start, end = planned[name]
        if start >= end_of_data:
            break
        out[name] = (start, min(end, end_of_data))
    return out


def load_run_scenario(run_dir: Path) -> Scenario:
    path = Path(run_dir) / "scenario.yaml"
    if not path.exists():
        raise ScenarioError(f"{run_dir}: no scenario.yaml: not a drill run directory")
    return load_model(path, Scenario)


def compute_results(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """Recompute results.json content and the report's bucket timeline from a run directory."""
    from harness import measure

    run_dir = Path(run_dir)
    facts = read_facts(run_dir)
    scenario = load_run_scenario(run_dir)
    phases = phase_bounds(facts, scenario)
    samples = measure.load_samples(run_dir)
    m = measure.measure_run(
        samples=samples,
        phases=phases,
        faults=_fault_timings(facts),
        objectives=_objective_spec(scenario),
        settings=_settings(scenario),
    )
    if facts.abort_reason:
        verdict = "aborted"
    else:
        verdict = m.verdict
    start = facts.start
    results: dict[str, Any] = {
        "schema": "drill.results/v1",
        "run_id": facts.run_id,
        "scenario": {
            "name": scenario.name,
            "path": start.get("scenario_path"),
            "sha256": start.get("scenario_sha256"),
            "description": scenario.description,
        },
        "started_at": utc_iso(facts.first_ts) if facts.first_ts else None,
        "ended_at": utc_iso(facts.finished_ts or facts.last_ts) if facts.last_ts else None,
        "verdict": verdict,
        "operator": start.get("user"),
        "host": start.get("host"),
        "environment": facts.environment,
        **m.to_dict(),
        "cleanup": facts.cleanup or {"ok": False, "toxics_left": None, "containers_not_running": None},
    }
    _add_capacity(results, run_dir, samples, scenario, facts)
    _add_agreement(results, run_dir, phases)
    _add_fault_facts(results["faults"], facts)
    if facts.abort_reason:
        results["abort_reason"] = facts.abort_reason
    if facts.stop:
        results["stop"] = stop_figures(facts.stop)
    add_metrics(results, run_dir)  # issue 15: Prometheus series, steady state after recovery
    if results["cleanup"].get("ok") is False and verdict == "passed":
        results["verdict"] = "aborted"
        results["abort_reason"] = "cleanup could not be verified: a fault may still be applied"
    return results, _timeline(samples, m, phases, scenario)


def _timeline(samples: pd.DataFrame, m: Any, phases: dict[str, tuple[float, float]], scenario: Scenario) -> pd.DataFrame:
    """The report's per-bucket series, from the run start to the end of the last phase."""
    from harness import measure

    if not phases or samples.empty:
        return pd.DataFrame()
    ordered = measure.sort_samples(samples)
    good = measure.good_mask(ordered, m.latency_bound_ms)
    start = phases["baseline"][0]
    end = max(end for _, end in phases.values())
    return measure.timeline(ordered, good, start, scenario.measurement.bucket, end)


def _add_agreement(results: dict[str, Any], run_dir: Path, phases: dict[str, tuple[float, float]]) -> None:
    """Each fault's failover/failback beside the stack's own record, when the run kept one."""
    from harness.measure.agreement import agreement
    from harness.report.formatting import parse_utc
    from harness.rundir import STACK_EVENTS_FILE, read_stack_events

    events = read_stack_events(run_dir)
    if events is None:
        return
    faults = sorted((f for f in results["faults"] if f.get("onset_at")), key=lambda f: f["onset_at"])
    onsets = [parse_utc(f["onset_at"]) or 0.0 for f in faults]
    data_end = max(end for _, end in phases.values()) if phases else None
    for i, fault in enumerate(faults):
        # Faults applied together share the stack's events; a later fault's own window starts at
        # the first onset after this one was reverted.
        reverted = parse_utc(fault.get("reverted_at"))
        later = [t for t in onsets[i + 1:] if reverted is not None and t >= reverted]
        until = later[0] if later else data_end
        fault["agreement"] = agreement(
            events, onsets[i], until, fault.get("failover_s"), fault.get("failback_s"),
            fault.get("resolution_s") or 0.25, f"{STACK_EVENTS_FILE} (the stack's own routing log)",
        )




def _add_capacity(
    results: dict[str, Any], run_dir: Path, samples: pd.DataFrame, scenario: Scenario, facts: JournalFacts
) -> None:
    """Capacity figures when the run sampled the serving pool (``capacity:`` in the scenario)."""
    if scenario.capacity is None:
        return
    from harness.measure.capacity import load_capacity, measure_capacity

    capacity = load_capacity(run_dir)
    if capacity is None:
        return
    timings = _fault_timings(facts)
    cm = measure_capacity(capacity, timings, scenario.capacity.target, samples)
    results["capacity"] = cm.to_dict()
    for fault in results["faults"]:
        fault.update(cm.per_fault.get(fault["name"], {}))


def stop_figures(stop: dict[str, Any]) -> dict[str, Any]:
    """results.json ``stop``: the stop condition, what was measured when it held, and how long
    the engine took from that instant to its first revert call (``reaction_s``, goal <= 1 s)."""
    def when(key: str) -> str | None:
        value = stop.get(key)
        return utc_iso(value) if isinstance(value, (int, float)) else None

    held, first = stop.get("held_at"), stop.get("first_revert_at")
    reaction = first - held if isinstance(held, (int, float)) and isinstance(first, (int, float)) else None
    return {
        "condition": stop.get("condition"),
        "error_rate_threshold": stop.get("error_rate_threshold"),
        "for_s": stop.get("for_s"),
        "measured": stop.get("measured"),
        "bad_requests": stop.get("bad_requests"),
        "requests": stop.get("requests"),
        "held_at": when("held_at"),
        "detected_at": when("detected_at"),
        "first_revert_at": when("first_revert_at"),
        "reaction_s": None if reaction is None else round(reaction, 6),
    }


def _fault_timings(facts: JournalFacts) -> list[Any]:
    from harness import measure

    return [
        measure.FaultTiming(
            name=f["name"], type=f["type"], onset_at=f["onset_at"], onset_source=f["onset_source"],
            onset_uncertainty_s=f["onset_uncertainty_s"], reverted_at=f.get("reverted_at"),
            targets=list(f.get("targets", [])),
        )
        for f in facts.faults.values()
        if "onset_at" in f
    ]


def _add_fault_facts(faults: list[dict[str, Any]], facts: JournalFacts) -> None:
    """Faults that were intended but never took effect still belong in the results."""
    measured = {f["name"] for f in faults}
    for f in facts.faults.values():
        if f["name"] not in measured:
            faults.append({
                "name": f["name"], "type": f["type"], "targets": f.get("targets", []),
                "onset_at": None, "onset_source": None, "onset_uncertainty_s": None,
                "reverted_at": f.get("reverted_at"), "time_to_detect_s": None, "rto_s": None,
                "failover_s": None, "failback_s": None, "degraded_s": None, "impact": "not applied",
            })


def _objective_spec(scenario: Scenario) -> Any:
    from harness import measure

    o = scenario.objectives
    absolute, factor = o.p95_bound
    return measure.ObjectiveSpec(
        rto_s=o.rto_s,
        max_error_rate=o.max_error_rate,
        p95_ms=absolute,
        p95_baseline_factor=factor,
        p95_during=o.p95_during,
        failover_to=o.failover_to,
        max_lost_requests=o.max_lost_requests,
    )


def _settings(scenario: Scenario) -> Any:
    from harness import measure

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


def write_outputs(run_dir: Path, results: dict[str, Any], timeline: pd.DataFrame) -> None:
    """results.json, junit.xml and report.html, each written atomically."""
    from harness.report.html import write_report
    from harness.report.junit import write_junit
    from harness.report.results import write_results

    write_results(run_dir, results)
    write_junit(run_dir, results)
    write_report(run_dir, results, timeline)
