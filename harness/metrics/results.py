"""results.json's ``metrics`` key, and the steady-state objectives, from the run directory alone:
``metrics.json`` (the recorded series) and the journal's ``metrics.*`` and ``stop.*`` events.

``results["metrics"]``::

    {"prometheus_url", "scrape_interval_s", "step_s",
     "series": [{"name", "query", "unit", "error"?, "series": [{"labels", "points": [[t, v], ...]}]}],
     "steady_state": {"preflight": [outcome, ...], "after_recovery": [outcome, ...]},
     "stop_reaction": {"condition_true_at", "condition_held_at", "rollback_done_at",
                       "true_to_rollback_s", "held_to_rollback_s", "scrape_interval_s"}}

Point times ``t`` are epoch seconds (UTC), values are numbers or null (NaN/Inf). An outcome is
``{query, condition, passed, detail, start, end, observed_min, observed_max}``. A steady state that
failed after recovery is an objective ``steady_state[QUERY]`` that failed, so the verdict is
``failed`` (exit 1: ``harness.verdict.decide_verdict`` counts them with the other objectives) and
the report, JUnit and the terminal name the query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from harness.errors import ScenarioError
from harness.metrics import METRICS_FILE
from harness.rundir import journal_path
from harness.rundir.events import MetricsPreflight, MetricsSteadyStateAfter, StopMetricsReaction
from harness.rundir.journal import read_journal


def read_metrics_file(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ScenarioError(f"{path}: not a readable metrics file ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("queries"), list):
        raise ScenarioError(f"{path}: expected an object with a 'queries' list")
    return document


@dataclass(frozen=True)
class MetricsSummary:
    """What the run's Prometheus said: results.json's ``metrics`` object, and the steady-state
    checks after recovery as objectives (the verdict counts them with the others)."""

    document: dict[str, JsonValue]
    objectives: list[dict[str, JsonValue]]

    @property
    def steady_state_held(self) -> bool:
        return all(bool(o["passed"]) for o in self.objectives)


def metrics_summary(run_dir: Path) -> MetricsSummary | None:
    """The summary of a run that used Prometheus (None otherwise), from the run directory alone."""
    document = read_metrics_file(run_dir)
    preflight: list[JsonValue] = []
    after: list[dict[str, Any]] | None = None
    reaction: dict[str, JsonValue] | None = None
    url = scrape = None
    for record in read_journal(journal_path(Path(run_dir))):
        match record.event:
            case MetricsPreflight() as checked:
                url = checked.url
                scrape = checked.scrape_interval_s if "scrape_interval_s" in checked.model_fields_set else scrape
                preflight = list(checked.steady_state)
            case MetricsSteadyStateAfter(steady_state=steady_state):
                after = list(steady_state)
            case StopMetricsReaction() as seen:
                reaction = seen.fields()
    if document is None and url is None:
        return None
    doc = document or {}
    summary: dict[str, JsonValue] = {
        "prometheus_url": doc.get("prometheus_url", url),
        "scrape_interval_s": doc.get("scrape_interval_s", scrape),
        "step_s": doc.get("step_s"),
        "series": doc.get("queries", []),
        "steady_state": {"preflight": preflight, "after_recovery": list(after or [])},
        "stop_reaction": reaction,
    }
    objectives: list[dict[str, JsonValue]] = [
        {
            "name": f"steady_state[{outcome.get('query')}]",
            "target": outcome.get("condition"),
            "measured": outcome.get("detail"),
            "passed": bool(outcome.get("passed")),
        }
        for outcome in after or []
    ]
    return MetricsSummary(summary, objectives)
