"""junit.xml: a run as one JUnit test suite, so CI systems show drills next to unit tests.

- one ``<testsuite>`` named for the scenario, with properties ``run_id``, ``verdict`` and
  ``rto_s[<fault name>]`` per fault (plus ``abort_reason`` when aborted), and what the failover
  cost when counted (:func:`cost_properties`);
- one ``<testcase>`` per objective, with ``<failure message="measured X, target Y">`` when missed
  (an objective that could not be measured, e.g. in an aborted run, is missed: ``measured —``
  and why);
- a ``cleanup`` testcase that fails when ``cleanup.ok`` is false;
- an ``aborted`` testcase carrying an ``<error>`` when the verdict is ``aborted``, so an aborted
  drill is never green in CI;
- an objective the measurement's own trouble left undecided is ``<skipped>`` with its causes
  (neither a pass nor a failure), and an ``inconclusive`` run adds an ``inconclusive`` testcase
  carrying an ``<error type="Inconclusive">`` with one line per cause: an inconclusive drill is
  counted apart from passes and failures, and never green in CI either.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.report.formatting import MISSING, base_name, plain, quantity, target_text
from harness.report.limits import p95_limit_ms
from harness.results.model import Cleanup, ObjectiveResult, RunResults
from harness.results.store import atomic_write_text
from harness.rundir import JUNIT_FILE, junit_path

JUNIT_NAME = JUNIT_FILE


def objective_message(objective: ObjectiveResult, results: RunResults | None = None) -> str:
    """``measured 18.2 s, target 15.0 s`` (units from the objective's name).

    With ``results``, a relative p95 target shows what it resolved to: ``2x baseline (236 ms)``.
    """
    name = objective.name
    measured = quantity(name, objective.measured)
    target = target_text(name, objective.target, _resolved(name, results))
    message = f"measured {measured}, target {target}"
    if measured == MISSING and objective.note:
        message += f" ({objective.note})"
    return message


def _resolved(name: str, results: RunResults | None) -> float | None:
    return p95_limit_ms(results) if results is not None and base_name(name) == "p95_ms" else None


def _cleanup_message(cleanup: Cleanup) -> str:
    toxics = cleanup.toxics_left or []
    containers = cleanup.containers_not_running or []
    parts = []
    if toxics:
        parts.append(f"toxics left: {plain(toxics)}")
    if containers:
        parts.append(f"containers not running: {plain(containers)}")
    detail = "; ".join(parts) or "cleanup reported not ok"
    return f"{detail} — run `drill recover RUN_DIR` to revert what is left"


def _duration_s(results: RunResults) -> float:
    start, end = results.started_epoch, results.ended_epoch
    if start is None or end is None or end < start:
        return 0.0
    return end - start


def cost_properties(results: RunResults) -> list[tuple[str, str]]:
    """What the failover cost, as suite properties (docs/cost.md): amplification and upstream calls
    per fault, spend and cost per 1,000 requests per phase, the extra spend over baseline."""
    cost = results.cost
    if cost is None:
        return []
    out: list[tuple[str, str]] = []
    for fault in cost.faults:
        out.append((f"retry_amplification[{fault.name}]", "" if fault.amplification is None
                    else f"{fault.amplification:.3f}"))
        out.append((f"upstream_calls[{fault.name}]", str(fault.upstream_calls)))
        out.append((f"client_requests[{fault.name}]", str(fault.client_requests)))
    for name, phase in cost.phases.items():
        if phase.spend is not None:
            out.append((f"spend[{name}]", f"{phase.spend:.6f}"))
        if phase.cost_per_1k_requests is not None:
            out.append((f"cost_per_1k_requests[{name}]", f"{phase.cost_per_1k_requests:.6f}"))
    if cost.extra_spend is not None:
        out.append(("extra_spend", f"{cost.extra_spend:.6f}"))
    if cost.currency is not None:
        out.append(("currency", cost.currency + (" (example prices)" if cost.example_prices else "")))
    launched = [i for i in cost.instances if i.launched_in_run]
    if cost.instances_counted:
        out.append(("instances_launched", str(len(launched))))
    return out


def build_junit(results: RunResults) -> ET.ElementTree:
    """The JUnit XML tree for ``results`` (see the module docstring for its shape)."""
    scenario = results.scenario.name or "scenario"
    classname = f"drill.{scenario}"
    suites = ET.Element("testsuites", name="drill")
    suite = ET.SubElement(suites, "testsuite", name=str(scenario))

    properties = ET.SubElement(suite, "properties")

    def prop(name: str, value: str) -> None:
        ET.SubElement(properties, "property", name=name, value=value)

    prop("run_id", results.run_id)
    prop("verdict", str(results.verdict))
    for fault in results.faults:
        prop(f"rto_s[{fault.name}]", "" if fault.rto_s is None else f"{float(fault.rto_s):.3f}")
        if fault.incidents is not None:
            prop(f"incidents[{fault.name}]", str(len(fault.incidents)))
    summary = results.impact.incidents if results.impact is not None else None
    if summary is not None:  # docs/method.md "Incidents": from the first onset
        prop("impact_s", f"{summary.impact_s:.3f}" + (" (still open)" if summary.open else ""))
    if results.abort_reason:
        prop("abort_reason", results.abort_reason)
    for name, value in cost_properties(results):
        prop(name, value)

    tests = failures = errors = skipped = 0
    for objective in results.objectives:
        tests += 1
        case = ET.SubElement(suite, "testcase", classname=classname, name=objective.name)
        if objective.undecided:
            skipped += 1
            ET.SubElement(case, "skipped", message="undecided: " + "; ".join(objective.undecided))
        elif not objective.passed:
            failures += 1
            message = objective_message(objective, results)
            failure = ET.SubElement(case, "failure", message=message, type="ObjectiveMissed")
            failure.text = message

    tests += 1
    case = ET.SubElement(suite, "testcase", classname=classname, name="cleanup")
    if not results.cleanup.ok:
        failures += 1
        message = _cleanup_message(results.cleanup)
        failure = ET.SubElement(case, "failure", message=message, type="CleanupIncomplete")
        failure.text = message

    if results.verdict == "aborted":
        tests += 1
        errors += 1
        case = ET.SubElement(suite, "testcase", classname=classname, name="aborted")
        reason = results.abort_reason or "the run was aborted (no reason recorded)"
        error = ET.SubElement(case, "error", message=str(reason), type="Aborted")
        error.text = str(reason)

    if results.verdict == "inconclusive":
        tests += 1
        errors += 1
        case = ET.SubElement(suite, "testcase", classname=classname, name="inconclusive")
        causes = [line for o in results.objectives for line in (o.undecided or [])]
        message = "; ".join(causes) or "the instrument could not see well enough to decide"
        error = ET.SubElement(case, "error", message=message, type="Inconclusive")
        error.text = "\n".join(causes) or message

    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", f"{_duration_s(results):.3f}")
    if results.started_at:
        suite.set("timestamp", results.started_at)
    for key in ("tests", "failures", "errors", "skipped", "time"):
        suites.set(key, suite.get(key, "0"))
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(run_dir: Path, results: RunResults) -> Path:
    """Write ``RUN_DIR/junit.xml`` atomically and return its path."""
    root = build_junit(results).getroot()
    assert root is not None  # build_junit always builds a <testsuites> root
    text = ET.tostring(root, encoding="unicode", xml_declaration=True)
    return atomic_write_text(junit_path(run_dir), text + "\n")


def combine_junit(name: str, suites: list[tuple[str, Path | None, str | None]]) -> str:
    """One ``<testsuites>`` for a campaign: each run's junit.xml suite (``(label, path, error)``),
    or, for a run that wrote none (bad input, crash), a suite with one errored testcase saying why.
    Totals are summed so CI shows the campaign as one result."""
    root = ET.Element("testsuites", name=f"campaign {name}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for label, path, error in suites:
        found: list[ET.Element] = []
        if path is not None and path.is_file():
            try:
                parsed = ET.parse(path).getroot()
            except ET.ParseError as exc:
                error = f"{path.name} is not valid XML ({exc})"
            else:
                found = [parsed] if parsed.tag == "testsuite" else list(parsed.iter("testsuite"))
        if not found:
            suite = ET.Element("testsuite", name=label, tests="1", failures="0", errors="1", skipped="0")
            case = ET.SubElement(suite, "testcase", classname=label, name="run")
            ET.SubElement(case, "error", message=error or "the run wrote no junit.xml")
            found = [suite]
        for suite in found:
            for key in totals:
                try:
                    totals[key] += int(suite.get(key) or 0)
                except ValueError:
                    pass
            root.append(suite)
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
