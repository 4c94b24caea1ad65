"""Campaigns: a list of scenarios run together, in order (e.g. the quarterly drill).

A campaign file::

    apiVersion: drill/v1
    kind: Campaign
    name: quarterly
    description: ...            # optional
    every: 90d                  # optional: how often it must run; `drill campaign status` exits 5 when overdue
    scenarios: [endpoint-kill.yaml, gpu-node-loss.yaml]   # relative to the campaign file

:func:`run_campaign` runs each scenario with the engine's ``run_drill`` (one after the other: they
share a stack) into ``REPORTS_DIR/<campaign>/<UTC-stamp>/``, then writes ``campaign.json`` (every
run's verdict, exit code, RTOs and capacity figures), ``index.html`` linking each run's report and
one ``junit.xml`` holding every run's suite.
A scenario that is bad input (exit 2) or aborts (exit 3) is recorded and the campaign goes on.
The campaign's exit code is the worst of its runs (0 < 1 < 3 < 2).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from harness.errors import EXIT_BAD_INPUT, DrillError, ScenarioError
from harness.rundir import report_path
from harness.scenario.loader import load_model, path_problem, read_yaml, show_path
from harness.scenario.units import ScheduleDuration
from harness.verdict import VERDICT_COUNTS, Verdict, worst_exit_code

if TYPE_CHECKING:
    from harness.results.model import FaultResult, RunResults

CAMPAIGN_SCHEMA = "drill.campaign/v1"
SUMMARY_FILE = "campaign.json"
INDEX_FILE = "index.html"
Say = Callable[[str], None]


def _scenario_path(value: str) -> str:
    problem = path_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class CampaignSpec(BaseModel):
    """A campaign file (``kind: Campaign``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    api_version: Literal["drill/v1"] = Field(alias="apiVersion")
    kind: Literal["Campaign"]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    description: str | None = None
    every: ScheduleDuration | None = Field(default=None, gt=0)
    scenarios: list[Annotated[str, AfterValidator(_scenario_path)]] = Field(min_length=1, max_length=500)


@dataclass
class CampaignRun:
    """One scenario's outcome inside a campaign."""

    scenario: str
    exit_code: int
    verdict: str
    run_dir: str | None
    error: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "exit_code": self.exit_code, "verdict": self.verdict,
                "run_dir": self.run_dir, "error": self.error, **self.figures}


@dataclass
class CampaignResult:
    """What :func:`run_campaign` produced: the campaign directory, each run, the exit code."""

    name: str
    campaign_dir: Path
    runs: list[CampaignRun]
    started_at: str
    ended_at: str
    every_s: float | None = None

    @property
    def exit_code(self) -> int:
        return worst_exit_code([r.exit_code for r in self.runs])

    @property
    def verdict(self) -> Verdict:
        return Verdict.from_exit_code(self.exit_code)

    @property
    def summary_path(self) -> Path:
        return self.campaign_dir / SUMMARY_FILE

    @property
    def index_path(self) -> Path:
        return self.campaign_dir / INDEX_FILE

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": CAMPAIGN_SCHEMA,
            "name": self.name,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "verdicts": {v: sum(1 for r in self.runs if r.verdict == v) for v in VERDICT_COUNTS},
            "every_s": self.every_s,
            "runs": [r.to_dict() for r in self.runs],
        }


def load_campaign(path: str | Path) -> tuple[CampaignSpec, list[Path]]:
    """The campaign and its scenario paths (resolved against the campaign file's folder).

    Raises ScenarioError (exit 2) naming the file for a bad campaign or a missing scenario file.
    """
    path = Path(path)
    spec = load_model(path, CampaignSpec)
    data, lines = read_yaml(path)
    scenarios = [(path.parent / s).resolve() for s in spec.scenarios]
    missing = [f"{show_path(path)}:{lines.get(('scenarios', i), 1)} scenarios[{i}]: no such file: {show_path(s)}"
               for i, s in enumerate(scenarios) if not s.is_file()]
    if missing:
        raise ScenarioError(missing[0], missing)
    return spec, scenarios


def _figures(results: RunResults) -> dict[str, Any]:
    """A run's headline figures for campaign.json (the keys each fault carries, as results.json has them)."""
    keep = ("name", "type", "rto_s", "time_to_detect_s", "capacity_restored_s", "replacement_region",
            "degraded_requests")
    return {
        "run_id": results.run_id,
        "faults": [{k: getattr(f, k) for k in keep if k in f.model_fields_set} | _shape_figures(f)
                   for f in results.faults],
        "objectives": [{"name": o.name, "target": o.target, "measured": o.measured, "passed": o.passed}
                       | ({"undecided": o.undecided} if o.undecided else {}) for o in results.objectives],
    }


SHAPE_KEYS = ("failover_magnitude", "breaker_open_magnitude", "failovers", "stack_breaker_opens", "bad_answers")
"""A scheduled fault's headline figures, kept quarter over quarter (docs/method.md "Reaction threshold")."""


def _shape_figures(fault: FaultResult) -> dict[str, Any]:
    """``param`` and :data:`SHAPE_KEYS` of a scheduled fault, ``after`` of a follower; {} otherwise."""
    out: dict[str, Any] = {}
    if fault.shape is not None:
        out["shape"] = {"shape": fault.shape.shape, "param": fault.shape.param,
                        **{k: getattr(fault.shape, k) for k in SHAPE_KEYS}}
    if fault.after is not None:
        out["after"] = fault.after.model_dump()
    return out


def run_campaign(
    path: str | Path,
    reports_dir: str | Path = "reports",
    *,
    runtime: str | None = None,
    say: Say | None = None,
    run: Callable[..., Any] | None = None,
) -> CampaignResult:
    """Run every scenario of the campaign at ``path`` in order; write campaign.json and index.html.

    ``runtime`` overrides each scenario's runtime; ``run`` replaces the engine's ``run_drill``
    (same keyword arguments: ``out``, ``runtime``, ``say``). Raises ScenarioError when the campaign
    file itself is bad (nothing run).
    """
    spec, scenarios = load_campaign(path)
    if run is None:
        # The engine imports the scenario and report rooms; importing it here keeps
        # `drill campaign status` (which runs nothing) quick to start.
        from harness.engine import run_drill

        run = run_drill
    tell: Say = say or (lambda text: None)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    campaign_dir = Path(reports_dir) / spec.name / f"{stamp}-{os.urandom(3).hex()}"
    campaign_dir.mkdir(parents=True, exist_ok=True)
    started = _iso(time.time())
    runs: list[CampaignRun] = []
    for index, scenario in enumerate(scenarios):
        out = campaign_dir / f"{index + 1:02d}-{scenario.stem}"
        tell(f"campaign {spec.name}: [{index + 1}/{len(scenarios)}] {scenario}")
        try:
            result = run(scenario, out=out, runtime=runtime, say=say)
        except ScenarioError as exc:
            runs.append(CampaignRun(str(scenario), EXIT_BAD_INPUT, "bad_input", None, str(exc)))
        except DrillError as exc:
            runs.append(CampaignRun(str(scenario), exc.exit_code, "aborted", str(out), str(exc)))
        else:
            runs.append(CampaignRun(str(scenario), result.exit_code, result.verdict, str(result.run_dir),
                                    result.abort_reason, _figures(result.results)))
        done = runs[-1]
        tell(f"campaign {spec.name}: [{index + 1}/{len(scenarios)}] {scenario.name}: {done.verdict.upper()}"
             + (f" ({' '.join(done.error.split())})" if done.error else ""))
        _write(CampaignResult(spec.name, campaign_dir, runs, started, _iso(time.time()), spec.every))
    result = CampaignResult(spec.name, campaign_dir, runs, started, _iso(time.time()), spec.every)
    _write(result)
    return result


def latest_campaign_dir(path: str | Path, reports_dir: str | Path = "reports") -> Path:
    """The newest run directory of the campaign file at ``path`` under ``reports_dir``."""
    spec, _ = load_campaign(path)
    runs = sorted(p.parent for p in (Path(reports_dir) / spec.name).glob(f"*/{SUMMARY_FILE}"))
    if not runs:
        raise ScenarioError(f"{path}: campaign {spec.name!r} has no run under {reports_dir} yet")
    return runs[-1]


def campaign_status(campaign_dir: str | Path) -> dict[str, Any]:
    """The summary a campaign run wrote (``campaign.json``), for ``drill campaign status``."""
    path = Path(campaign_dir) / SUMMARY_FILE
    try:
        summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return summary
    except OSError as exc:
        raise ScenarioError(f"{path}: no campaign summary here ({exc}); give a campaign run directory") from exc


@dataclass(frozen=True)
class Schedule:
    """Whether a campaign with ``every:`` is due: from its last run's start (None: never ran)."""

    every_s: float
    last_started: float | None
    now: float

    @property
    def due_at(self) -> float | None:
        return None if self.last_started is None else self.last_started + self.every_s

    @property
    def overdue(self) -> bool:
        return self.due_at is None or self.now > self.due_at

    def text(self) -> str:
        every = f"every {_days(self.every_s)}"
        if self.last_started is None or self.due_at is None:
            return f"OVERDUE: never run ({every})"
        last = f"last run {_iso(self.last_started)[:10]} ({_days(self.now - self.last_started)} ago)"
        if self.overdue:
            return f"OVERDUE by {_days(self.now - self.due_at)}: {last}, due {every} since {_iso(self.due_at)[:10]}"
        return f"on schedule: {last}; next due {_iso(self.due_at)[:10]} (in {_days(self.due_at - self.now)}, {every})"


def _days(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:.0f} days" if days >= 2 else f"{seconds / 3600:.0f} hours"


def schedule(every_s: float | None, summary: dict[str, Any] | None, now: float | None = None) -> Schedule | None:
    """The schedule of a campaign (None without ``every``) from its latest campaign.json."""
    if not every_s:
        return None
    started = None
    if summary:
        from harness.report.formatting import parse_utc

        started = parse_utc(summary.get("started_at"))
    return Schedule(float(every_s), started, time.time() if now is None else now)


def _write(result: CampaignResult) -> None:
    summary = json.dumps(result.to_dict(), indent=2)
    tmp = result.summary_path.with_suffix(".tmp")
    tmp.write_text(summary, encoding="utf-8")
    tmp.replace(result.summary_path)  # atomic: a reader never sees half a summary
    result.index_path.write_text(render_index(result), encoding="utf-8")
    _write_junit(result)


def _write_junit(result: CampaignResult) -> None:
    """One junit.xml for the whole campaign (every run's suite), so CI shows it as one result."""
    from harness.report.junit import JUNIT_NAME, combine_junit
    from harness.results.store import atomic_write_text

    suites = [(Path(r.scenario).stem, Path(r.run_dir) / JUNIT_NAME if r.run_dir else None, r.error)
              for r in result.runs]
    atomic_write_text(result.campaign_dir / JUNIT_NAME, combine_junit(result.name, suites))


def render_index(result: CampaignResult) -> str:
    """A small self-contained HTML page linking each run's report."""
    from harness.report.html import render_template

    rows = []
    for r in result.runs:
        report = report_path(Path(r.run_dir)) if r.run_dir else None
        rows.append({
            "scenario": Path(r.scenario).name,
            "verdict": r.verdict,
            "exit_code": r.exit_code,
            "error": r.error or "",
            "faults": r.figures.get("faults", []),
            "missed": [o["name"] for o in r.figures.get("objectives", [])
                       if not o.get("passed") and not o.get("undecided")],
            "report": os.path.relpath(report, result.campaign_dir) if report and report.exists() else None,
        })
    return render_template("campaign.html.j2", campaign=result, rows=rows)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


__all__ = ["CampaignResult", "CampaignRun", "CampaignSpec", "Schedule", "campaign_status", "load_campaign",
           "run_campaign", "schedule"]
