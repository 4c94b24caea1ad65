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

from harness.report.formatting import MISSING, is_missing, parse_utc, plain, quantity, seconds, utc_text
from harness.report.story import build_story, load_run_samples, offset_text, run_origin
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
    results: dict[str, Any]


def read_run_results(run_dir: Path) -> dict[str, Any]:
    """results.json as written (checked like ``drill report`` checks it)."""
    from harness.report.results import read_results

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
    for fault in results.get("faults") or []:
        name = str(fault.get("name") or MISSING)
        plan = planned.get(name, {})
        params = {k: v for k, v in plan.items() if k not in ("name", "type", "target", "at", "duration")}
        onset, reverted = parse_utc(fault.get("onset_at")), parse_utc(fault.get("reverted_at"))
        rows.append({
            "name": name,
            "what": f"{fault.get('type') or MISSING} on {', '.join(map(str, fault.get('targets') or [])) or MISSING}",
            "params": ", ".join(f"{k} {plain(v)}" for k, v in params.items()),
            "planned": f"fault phase +{plan.get('at', 0)}"
            + (f" for {plan['duration']}" if plan.get("duration") else ""),
            "applied": f"{offset_text(onset, origin)} ({utc_text(onset)})"
            if onset is not None else f"{MISSING} (never took effect)",
            "removed": f"{offset_text(reverted, origin)} ({utc_text(reverted)})"
            if reverted is not None else f"{MISSING} (no revert recorded)",
        })
    return rows


def _objectives(results: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for o in results.get("objectives") or []:
        name = str(o.get("name", MISSING))
        passed = o.get("passed")
        rows.append({
            "name": name,
            "expected": quantity(name, o.get("target")),
            "observed": quantity(name, o.get("measured")),
            "status": "met" if passed is True else "MISSED" if passed is False else "not evaluated",
            "note": str(o.get("note") or ""),
        })
    return rows


def _figure(fault: dict[str, Any], key: str) -> str:
    value = fault.get(key)
    return MISSING if is_missing(value) else quantity(key, value)


def _questions(fault: dict[str, Any], results: dict[str, Any]) -> list[str]:
    """Questions for the room, specific to the fault family and carrying the run's figures."""
    kind = str(fault.get("type") or "")
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
        region = fault.get("replacement_region")
        questions.append(f"The replacement came from {region or 'another region'}. Are data residency, export "
                         "controls and latency acceptable there?")
        questions.append("Who owns quota and capacity requests with the cloud provider, and how long do they take?")
    if results.get("verdict") == "aborted":
        questions.append(f"The drill was aborted ({results.get('abort_reason') or 'no reason recorded'}). "
                         "Would production have hit the same stop condition?")
    questions.append("What did the runbook say to do here, and was any step unclear or out of date?")
    return questions


def _findings(results: dict[str, Any]) -> list[dict[str, str]]:
    """Findings the run itself suggests (each missed objective, an abort, a cleanup problem)."""
    found = []
    for o in results.get("objectives") or []:
        if o.get("passed") is False:
            name = str(o.get("name"))
            found.append(f"Objective {name} missed: expected {quantity(name, o.get('target'))}, "
                         f"observed {quantity(name, o.get('measured'))}.")
    if results.get("verdict") == "aborted":
        found.append(f"Drill aborted: {results.get('abort_reason') or 'no reason recorded'}.")
    cleanup = results.get("cleanup") or {}
    if cleanup.get("ok") is False:
        found.append("Cleanup could not be verified: check that nothing is left applied (drill recover).")
    return [{"finding": f, "owner": "", "due": "", "status": "open"} for f in found]


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
        samples, _ = load_run_samples(run.run_dir)
        story = build_story(results, run.run_dir, samples)
        started = parse_utc(results.get("started_at"))
        ended = parse_utc(results.get("ended_at"))
        sections.append({
            "pack_dir": run.pack_dir,
            "name": str((results.get("scenario") or {}).get("name") or scenario.get("name") or MISSING),
            "description": str((results.get("scenario") or {}).get("description") or scenario.get("description") or ""),
            "run_id": str(results.get("run_id") or MISSING),
            "verdict": str(results.get("verdict") or "aborted"),
            "when": f"{utc_text(results.get('started_at'))} to {utc_text(results.get('ended_at'))}"
                    + (f" ({seconds(ended - started)})" if started is not None and ended is not None else ""),
            "summary": story.summary,
            "injects": _injects(run, scenario),
            "timeline": story.timeline,
            "runbook": story.runbook,
            "impact": story.impact,
            "objectives": _objectives(results),
            "faults": [{"name": str(f.get("name") or MISSING), "questions": _questions(f, results)}
                       for f in results.get("faults") or []],
            "findings": _findings(results),
        })
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

