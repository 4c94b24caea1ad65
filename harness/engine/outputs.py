"""A run's outputs, written from its typed results: results.json, junit.xml and report.html.

This sits above both the data (harness/results/) and its renderings (harness/report/), so the
results room never imports the report (docs/architecture.md). The engine and ``drill report``
call it; each file is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report.html import write_report
from harness.report.junit import write_junit
from harness.results.model import RunResults
from harness.results.store import write_results


def write_outputs(run_dir: Path, results: RunResults, timeline: pd.DataFrame) -> None:
    """results.json, junit.xml and report.html, each written atomically."""
    write_results(run_dir, results)
    write_junit(run_dir, results)
    write_report(run_dir, results, timeline)
