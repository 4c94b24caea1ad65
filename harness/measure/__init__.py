"""measure: samples in, figures out — phases, RTO, failover, objectives. Pure: it never talks
to a stack and never reads or writes a file, and it imports only numpy, pandas and itself
(tests/test_measure_imports.py). docs/method.md is the method.

    samples = harness.rundir.frames.read_samples(run_dir)
    m = measure_run(samples, phases, faults, ObjectiveSpec(rto_s=15), MeasureSettings(probe_rate_hz=20))
    m.objectives_met  # harness/verdict.py decides the verdict; harness/results/model.py formats m

Modules: ``model`` (inputs), ``samples`` (the sample frame's columns), ``goodness`` (latency bound, good
requests), ``buckets`` (grid, sustained runs), ``phases``, ``recovery`` (per-fault figures),
``routing`` (tiers), ``objectives``, ``agreement`` (the stack's own failover instants),
``timeline`` (chart series), ``streams`` (streamed answers: TTFT, completion, cut streams), ``capacity``,
``run`` (everything at once), ``testing`` (synthetic samples).
"""

from harness.measure.answers import AnswerStats, answer_phase_stats
from harness.measure.goodness import LatencyBound, good_mask, latency_bound, visible_at
from harness.measure.model import FaultTiming, MeasureSettings, ObjectiveSpec, Phases
from harness.measure.objectives import ObjectiveResult, all_met, evaluate_objectives
from harness.measure.phases import ClosedLoop, PhaseStats, phase_stats
from harness.measure.recovery import FaultMeasure, measure_fault, resolution_s
from harness.measure.routing import primary_tier
from harness.measure.run import METHOD_ID, Measurement, measure_run
from harness.measure.samples import SAMPLE_COLUMNS, SAMPLE_DTYPES, empty_samples, sort_samples
from harness.measure.streams import SpliceStats, StreamStats, completion_window, stream_phase_stats, stream_stats_for
from harness.measure.timeline import timeline

__all__ = [
    "AnswerStats",
    "answer_phase_stats",
    "METHOD_ID",
    "SAMPLE_COLUMNS",
    "SAMPLE_DTYPES",
    "ClosedLoop",
    "FaultMeasure",
    "FaultTiming",
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
    "measure_run",
    "phase_stats",
    "primary_tier",
    "resolution_s",
    "sort_samples",
    "stream_phase_stats",
    "stream_stats_for",
    "timeline",
]
