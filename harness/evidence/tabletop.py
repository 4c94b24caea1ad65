"""The tabletop sheet: a printable page for the exercise that walks through a drill (or a campaign).

For each run: the scenario's narrative, the injects (planned offset and duration, and when each
actually took effect and was removed), expected vs observed per objective, discussion questions
per fault (with the run's own figures in them), and a findings table (owner, due date, status)
seeded from what the run missed, with blank rows to fill in. Then the attendees and a sign-off
block. Rendered with Jinja2 (autoescaped) under the same strict Content-Security-Policy as the
report: no script, no network source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.report.cost import spend_question
from harness.report.formatting import MISSING, is_missing, plain, quantity, seconds, utc_text
from harness.report.story import build_story, offset_text, run_origin
from harness.results.model import FaultResult, RunResults
from harness.results.store import read_results
from harness.rundir import scenario_path

TABLETOP_NAME = "tabletop.html"
TEMPLATE = "tabletop.html.j2"
TEMPLATES_DIR = Path(__file__).parent / "templates"
BLANK_FINDING_ROWS = 3


@dataclass(frozen=True)
class PackedRun:
    """One run directory going into a pack, and where it sits inside the pack."""

    run_dir: Path
    pack_dir: str  # e.g. "run/" or "campaign/01-latency/"
    results: RunResults


def read_run_results(run_dir: Path) -> RunResults:
    """results.json as written, read back with the model (checked like ``drill report`` checks it)."""
    return read_results(run_dir)


def _scenario_data(run_dir: Path) -> dict[str, Any]:
    """The run's scenario.yaml as plain data ({} when missing or damaged)."""
    import yaml

    try:
        data = yaml.safe_load(scenario_path(run_dir).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _injects(run: PackedRun, scenario: dict[str, Any]) -> list[dict[str, str]]:
    """Planned (scenario) beside actual (results) for each fault."""
    results = run.results
    origin = run_origin(results)
    planned = {str(f.get("name")): f for f in scenario.get("faults") or [] if isinstance(f, dict)}
    rows = []
    for fault in results.faults:
        name = fault.name or MISSING
        plan = planned.get(name, {})
        params = {k: v for k, v in plan.items() if k not in ("name", "type", "target", "at", "duration")}
        onset, reverted = fault.onset_epoch, fault.reverted_epoch
        rows.append({
            "name": name,
            "what": f"{fault.type or MISSING} on {', '.join(fault.targets) or MISSING}",
            "params": ", ".join(f"{k} {plain(v)}" for k, v in params.items()),
            "planned": f"fault phase +{plan.get('at', 0)}"
            + (f" for {plan['duration']}" if plan.get("duration") else ""),
            "applied": f"{offset_text(onset, origin)} ({utc_text(onset)})"
            if onset is not None else f"{MISSING} (never took effect)",
            "removed": f"{offset_text(reverted, origin)} ({utc_text(reverted)})"
            if reverted is not None else f"{MISSING} (no revert recorded)",
        })
    return rows


def _objectives(results: RunResults) -> list[dict[str, str]]:
    rows = []
    for o in results.objectives:
        rows.append({
            "name": o.name,
            "expected": quantity(o.name, o.target),
            "observed": quantity(o.name, o.measured),
            # An undecided objective is neither met nor missed: the instrument could not see.
            "status": "UNDECIDED" if o.undecided else "met" if o.passed else "MISSED",
            "note": "; ".join(filter(None, [o.note, *(o.undecided or [])])),
        })
    return rows


def _figure(fault: FaultResult, key: str) -> str:
    value = getattr(fault, key)
    return MISSING if is_missing(value) else quantity(key, value)


def _questions(fault: FaultResult, results: RunResults) -> list[str]:
    """Questions for the room, specific to the fault family and carrying the run's figures."""
    kind = fault.type
    rto, ttd, failover = _figure(fault, "rto_s"), _figure(fault, "time_to_detect_s"), _figure(fault, "failover_s")
    questions = [
        f"Clients first felt this {ttd} after onset. Who would have noticed first — an alert, a dashboard, "
        f"a customer — and how long after?",
        f"Service was healthy again {rto} after onset. Does that meet what we promise, and what would have "
        f"made it shorter?",
    ]
    if kind in ("latency", "jitter", "bandwidth"):
        questions.append(f"The provider was slow, not down. Traffic moved {failover} after onset: did the "
                         "runbook trigger (error rate > 10 % or p95 > 2x baseline) fire at the right moment, "
                         "and would a person have moved traffic sooner or later?")
    if kind in ("blackhole", "reset", "down", "endpoint_kill"):
        questions.append("If the provider stayed down for hours, what does serving from the fallback cost, "
                         "who approves it, and who tells customers?")
        questions.append("How do we know the provider is healthy again, and who decides to fail back?")
    if kind == "gpu_node_loss":
        questions.append(f"The pool was back at its target {_figure(fault, 'capacity_restored_s')} after onset. "
                         "Is that within our capacity objective, and what did users get meanwhile?")
        questions.append("If the replacement could not be provisioned at all, what is the next step and who takes it?")
    if kind == "region_quota_denial":
        region = fault.replacement_region
        questions.append(f"The replacement came from {region or 'another region'}. Are data residency, export "
                         "controls and latency acceptable there?")
        questions.append("Who owns quota and capacity requests with the cloud provider, and how long do they take?")
    if results.verdict == "aborted":
        questions.append(f"The drill was aborted ({results.abort_reason or 'no reason recorded'}). "
                         "Would production have hit the same stop condition?")
    spend = spend_question(results)
    if spend is not None:
        questions.append(f"Inject: {spend}")
    questions.append("What did the runbook say to do here, and was any step unclear or out of date?")
    return questions


def _findings(results: RunResults) -> list[dict[str, str]]:
    """Findings the run itself suggests (each missed objective, an abort, a cleanup problem)."""
    found = []
    for o in results.objectives:
        if o.undecided:
            found.append(f"Objective {o.name} undecided: the measurement could not carry it "
                         f"({'; '.join(o.undecided)}). Run the drill again on a quieter host.")
        elif not o.passed:
            found.append(f"Objective {o.name} missed: expected {quantity(o.name, o.target)}, "
                         f"observed {quantity(o.name, o.measured)}.")
    if results.verdict == "inconclusive":
        found.append("Verdict inconclusive: the instrument's own trouble could flip an objective, so the drill "
                     "neither passed nor failed.")
    if results.verdict == "aborted":
        found.append(f"Drill aborted: {results.abort_reason or 'no reason recorded'}.")
    if results.cleanup.ok is False:
        found.append("Cleanup could not be verified: check that nothing is left applied (drill recover).")
    spend = spend_question(results)  # what the failover cost (docs/cost.md)
    if spend is not None:
        found.append(f"Cost: {spend}")
    return [{"finding": f, "owner": "", "due": "", "status": "open"} for f in found]


def _human(results: RunResults) -> list[dict[str, str]]:
    """The people beside the instruments (drill gameday): each pair from the first fault's onset."""
    human = results.human
    if human is None:
        return []

    def shown(value: float | None) -> str:
        return seconds(value) if value is not None else MISSING

    return [
        {"what": "noticed vs detected", "people": shown(human.time_to_notice_s),
         "measured": shown(human.time_to_detect_s), "note": "first 'noticed' entry vs the first impact a client saw"},
        {"what": "decided vs failover", "people": shown(human.time_to_decide_s),
         "measured": shown(human.failover_s), "note": "first 'decided' entry vs good answers moving tier"},
        {"what": "first notice vs runbook trigger", "people": shown(human.time_to_notice_s),
         "measured": shown(human.runbook_fired_s),
         "note": "the runbook trigger would have paged then" + (
             f"; people noticed {seconds(abs(human.notice_after_runbook_s))} "
             f"{'after' if human.notice_after_runbook_s >= 0 else 'before'} it"
             if human.notice_after_runbook_s is not None else "")},
    ]


def tabletop_context(
    runs: list[PackedRun],
    *,
    title: str,
    approver: str | None,
    participants: list[str],
    created_at: str,
    key_id: str | None,
) -> dict[str, Any]:
    sections = []
    for run in runs:
        results = run.results
        scenario = _scenario_data(run.run_dir)
        story = build_story(results, run.run_dir)
        started, ended = results.started_epoch, results.ended_epoch
        sections.append({
            "pack_dir": run.pack_dir,
            "name": str(results.scenario.name or scenario.get("name") or MISSING),
            "description": str(results.scenario.description or scenario.get("description") or ""),
            "run_id": results.run_id or MISSING,
            "verdict": str(results.verdict),
            "when": f"{utc_text(results.started_at)} to {utc_text(results.ended_at)}"
                    + (f" ({seconds(ended - started)})" if started is not None and ended is not None else ""),
            "summary": story.summary,
            "injects": _injects(run, scenario),
            "timeline": story.timeline,
            "human": _human(results),
            "human_entries": len(results.human.entries) if results.human else 0,
            "runbook": story.runbook,
            "impact": story.impact,
            "impact_note": story.impact_note,
            "objectives": _objectives(results),
            "faults": [{"name": f.name or MISSING, "questions": _questions(f, results)} for f in results.faults],
            "findings": _findings(results),
        })
    if not participants:  # the people the game-day console named at the start
        participants = list(dict.fromkeys(p for run in runs if run.results.human
                                          for p in run.results.human.participants))
    return {
        "title": title,
        "sections": sections,
        "approver": approver or "",
        "participants": participants,
        "created": utc_text(created_at),
        "key_id": key_id,
        "blank_findings": BLANK_FINDING_ROWS,
        "blank_attendees": max(0, 6 - len(participants)),
    }


def render_tabletop(runs: list[PackedRun], **kwargs: Any) -> str:
    from harness.report.html import render_template

    return render_template(TEMPLATE, TEMPLATES_DIR, **tabletop_context(runs, **kwargs))

