"""Results: a run directory in, the typed results.json out (``model``), computed by ``compute``.

    results, timeline = compute_results(run_dir)   # RunResults, the report's bucket series
    results.verdict.exit_code                      # harness/verdict.py
    write_outputs(run_dir, results, timeline)      # results.json, junit.xml, report.html
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
    write_outputs,
)
from harness.results.model import SCHEMA, FaultResult, ObjectiveResult, PhaseResult, RunResults

__all__ = [
    "SCHEMA",
    "FaultResult",
    "JournalFacts",
    "ObjectiveResult",
    "PhaseResult",
    "RunResults",
    "compute_results",
    "fault_timings",
    "load_run_scenario",
    "measure_settings",
    "objective_spec",
    "phase_bounds",
    "read_facts",
    "stop_figures",
    "write_outputs",
]
