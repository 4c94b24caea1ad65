"""measure: samples in, figures out — phases, RTO, failover, objectives. Pure: it never talks
to a stack and never reads or writes a file, and it imports only numpy, pandas and itself
(tests/test_measure_imports.py). docs/method.md is the method.

    samples = harness.rundir.frames.read_samples(run_dir)
    m = measure_run(samples, phases, faults, ObjectiveSpec(rto_s=15), MeasureSettings(probe_rate_hz=20))
    m.objectives_met  # harness/verdict.py decides the verdict; harness/results/model.py formats m

Modules: ``model`` (inputs), ``samples`` (the sample frame's columns), ``goodness`` (latency bound, good
requests), ``buckets`` (grid, sustained runs), ``phases``, ``recovery`` (per-fault figures),
``routing`` (tiers), ``objectives``,
``impact`` (what users felt, the runbook trigger's walk), ``agreement`` (the stack's own failover instants),
``timeline`` (chart series), ``streams`` (streamed answers: TTFT, completion, cut streams), ``capacity``,
``run`` (everything at once), ``testing`` (synthetic samples).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.measure.answers import AnswerStats, answer_phase_stats
    from harness.measure.goodness import LatencyBound, good_mask, latency_bound, visible_at
    from harness.measure.impact import Impact, RunbookTrigger, RunbookWalk, measure_impact, runbook_walk
    from harness.measure.model import FaultTiming, MeasureSettings, ObjectiveSpec, Phases
    from harness.measure.objectives import ObjectiveResult, all_met, evaluate_objectives
    from harness.measure.phases import ClosedLoop, PhaseStats, phase_stats
    from harness.measure.recovery import FaultMeasure, measure_fault, resolution_s
    from harness.measure.routing import primary_tier
    from harness.measure.run import METHOD_ID, Measurement, measure_run
    from harness.measure.samples import SAMPLE_COLUMNS, SAMPLE_DTYPES, empty_samples, sort_samples
    from harness.measure.streams import (
        SpliceStats,
        StreamStats,
        completion_window,
        stream_phase_stats,
        stream_stats_for,
    )


__all__ = [
    "AnswerStats",
    "answer_phase_stats",
    "METHOD_ID",
    "SAMPLE_COLUMNS",
    "SAMPLE_DTYPES",
    "ClosedLoop",
    "FaultMeasure",
    "FaultTiming",
    "Impact",
    "RunbookTrigger",
    "RunbookWalk",
    "MeasureSettings",
    "Measurement",
    "ObjectiveResult",
    "ObjectiveSpec",
    "PhaseStats",
    "SpliceStats",
    "StreamStats",
    "Phases",
    "all_met",
    "completion_window",
    "empty_samples",
    "evaluate_objectives",
    "good_mask",
    "LatencyBound",
    "latency_bound",
    "visible_at",
    "measure_fault",
    "measure_impact",
    "runbook_walk",
    "measure_run",
    "phase_stats",
    "primary_tier",
    "resolution_s",
    "sort_samples",
    "stream_phase_stats",
    "stream_stats_for",
]

# The names above are imported when first asked for (PEP 562), not with the package: the load
# room's processes (prober, Locust, watchdog) import ``harness.measure.quality`` for canaries and
# have no use for pandas, which the other modules pull in (~0.25 s of CPU per process).
_MODULES = ("answers", "goodness", "impact", "model", "objectives", "phases", "recovery", "routing", "run", "samples",
            "streams")


def __getattr__(name: str) -> Any:
    if name in __all__:
        for module in _MODULES:
            found = importlib.import_module(f"harness.measure.{module}")
            if hasattr(found, name):
                return getattr(found, name)
    raise AttributeError(f"module 'harness.measure' has no attribute {name!r}")
