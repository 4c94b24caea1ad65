"""``drill run --repeat N``: the same scenario N times, and each figure's distribution."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness.engine.drill import run_drill
from harness.engine.paths import new_run_dir
from harness.engine.result import RunResult, Say, say_nothing
from harness.measure.repeats import summarize_repeats
from harness.scenario import LoadedScenario, load_scenario
from harness.verdict import Verdict


def run_repeated(
    scenario: str | Path | LoadedScenario,
    repeat: int,
    *,
    settle_s: float = 10.0,
    out: Path | None = None,
    runtime: str | None = None,
    say: Say | None = None,
    reports_dir: Path = Path("reports"),
) -> tuple[list[RunResult], dict[str, Any], Path]:
    """Run a scenario ``repeat`` times with ``settle_s`` between runs; summarise each figure's
    distribution into ``repeat-summary.json`` beside the runs. A run that aborts stops the series."""
    say = say or say_nothing
    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario)
    series_dir = Path(out) if out else new_run_dir(loaded.spec.name, reports_dir).with_name(
        "repeat-" + new_run_dir(loaded.spec.name, reports_dir).name
    )
    results: list[RunResult] = []
    for i in range(1, repeat + 1):
        if i > 1:
            say(f"settling {settle_s:g}s before run {i}/{repeat}")
            time.sleep(settle_s)
        say(f"[bold]run {i}/{repeat}[/bold]")
        result = run_drill(loaded, out=series_dir / f"run-{i:02d}", runtime=runtime, say=say)
        results.append(result)
        if result.verdict == Verdict.ABORTED:
            say("[red]run aborted: the series stops here[/red]")
            break
    summary = summarize_repeats([r.results.document() for r in results]) | {
        "schema": "drill.repeat/v1", "scenario": loaded.spec.name, "requested": repeat, "settle_s": settle_s,
    }
    path = series_dir / "repeat-summary.json"
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return results, summary, path
