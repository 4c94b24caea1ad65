"""Results: a run directory in, the typed results.json out (``model``), computed by ``compute``,
kept on disk by ``store`` (atomic write, read back checked).

    results, timeline = compute_results(run_dir)   # RunResults, the report's bucket series
    results.verdict.exit_code                      # harness/verdict.py
    write_results(run_dir, results)                # results.json (harness/engine/outputs.py writes
                                                   # it with junit.xml and report.html)
    read_results(run_dir)                          # RunResults, or exit 2 naming the file and field
"""

from harness.results.compute import (
    JournalFacts,
    compute_results,
    fault_timings,
    load_run_scenario,
    measure_settings,
    objective_spec,
    phase_bounds,
    read_facts,
    stop_figures,
)
from harness.results.model import SCHEMA, FaultResult, ObjectiveResult, PhaseResult, RunResults
from harness.results.store import atomic_write_text, parse_results, read_results, write_results

__all__ = [
    "SCHEMA",
    "FaultResult",
    "JournalFacts",
    "ObjectiveResult",
    "PhaseResult",
    "RunResults",
    "atomic_write_text",
    "compute_results",
    "fault_timings",
    "load_run_scenario",
    "measure_settings",
    "objective_spec",
    "parse_results",
    "phase_bounds",
    "read_facts",
    "read_results",
    "stop_figures",
    "write_results",
]
