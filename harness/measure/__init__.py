"""measure: samples in, figures out — phases, RTO, failover, objectives. Pure; never talks
to a stack and never writes files (``load_samples`` only reads). docs/method.md is the method.

    samples = load_samples(run_dir)
    m = measure_run(samples, phases, faults, ObjectiveSpec(rto_s=15), MeasureSettings(probe_rate_hz=20))
    results.update(m.to_dict()); results["verdict"] = m.verdict

Modules: ``model`` (inputs), ``loading`` (sample files), ``goodness`` (latency bound, good
requests), ``buckets`` (grid, sustained runs), ``phases``, ``recovery`` (per-fault figures),
``routing`` (tiers), ``objectives``, ``agreement`` (the stack's own failover instants),
``timeline`` (chart series), ``capacity``,
``run`` (everything at once), ``testing`` (synthetic samples).
"""

from harness.measure.goodness import LatencyBound, good_mask, latency_bound, visible_at
from harness.measure.loading import SAMPLE_DTYPES, empty_samples, load_samples, sort_samples
from harness.measure.model import FaultTiming, MeasureSettings, ObjectiveSpec, Phases
from harness.measure.objectives import ObjectiveResult, evaluate_objectives, verdict
from harness.measure.phases import PhaseStats, phase_stats
from harness.measure.recovery import FaultMeasure, measure_fault, resolution_s
from harness.measure.routing import primary_tier
from harness.measure.run import METHOD_ID, Measurement, measure_run
from harness.measure.timeline import timeline

__all__ = [
    "METHOD_ID",
    "SAMPLE_DTYPES",
    "FaultMeasure",
    "FaultTiming",
    "MeasureSettings",
    "Measurement",
    "ObjectiveResult",
    "ObjectiveSpec",
    "PhaseStats",
    "Phases",
    "empty_samples",
    "evaluate_objectives",
    "good_mask",
    "LatencyBound",
    "latency_bound",
    "visible_at",
    "load_samples",
    "measure_fault",
    "measure_run",
    "phase_stats",
    "primary_tier",
    "resolution_s",
    "sort_samples",
    "timeline",
    "verdict",
]
