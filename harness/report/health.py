"""The report's "Measurement health" section and the stretches drawn on its timeline, rendered
from the typed ``measurement.health`` (:class:`harness.results.model.HealthResult`): it
formats what measure/health.py found and computes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # harness.results imports the report to write it: the model is imported late
    from harness.results.model import HealthResult

CLEAN = "The instrument saw the whole run: no host stall, no probe sent late by more than {late}, no sample gap."
NOT_RECORDED = ("This run directory predates measurement health (no probe schedule was recorded): the "
                "instrument's own trouble cannot be told apart from the stack's.")
KIND_WORDS = {
    "host_stall": "host stall", "probe_lag": "probe schedule", "probe_skipped": "probes skipped",
    "worker_cpu": "Locust worker CPU", "proxy_delay": "fault proxy delay", "sample_gap": "sample gap",
    "write_error": "write error", "clock_step": "clock step", "docker_restart": "Docker restart",
}


def typed_health(results: dict[str, Any]) -> HealthResult | None:
    """results.json's ``measurement.health`` as its model; None when the run recorded none."""
    from harness.results.model import HealthResult

    found = (results.get("measurement") or {}).get("health")
    return HealthResult.model_validate(found) if isinstance(found, dict) else None


def health_section(health: HealthResult | None) -> dict[str, Any]:
    """The section's context: a sentence when there is nothing to list, else the problems, the
    widened figures, the undecided objectives, the probe's schedule and the intended-clock
    latencies, each already in words."""
    if health is None:
        return {"sentence": NOT_RECORDED, "problems": [], "figures": [], "undecided": [], "schedule": None,
                "latency": [], "clock": None}
    schedule = health.probe_schedule
    late = f"{schedule.late_after_ms:g} ms" if schedule is not None else "10 ms"
    schedule_text = None if schedule is None else (
        f"{schedule.probes:,} probes: {schedule.late:,} sent more than {schedule.late_after_ms:g} ms late, "
        f"{schedule.skipped:,} skipped; lag p50 {_ms(schedule.lag_p50_ms)}, p99 {_ms(schedule.lag_p99_ms)}, "
        f"max {_ms(schedule.lag_max_ms)}"
    )
    return {
        "sentence": None if health.problems else CLEAN.format(late=late),
        "problems": [
            {"at": "—" if p.at_s is None else f"+{p.at_s:.1f} s", "length": f"{p.length_s:.2f} s",
             "kind": KIND_WORDS.get(p.kind, p.kind), "magnitude": f"{p.magnitude_s:.2f} s",
             "detail": p.detail + (" — data after it may be missing" if p.partial else "")}
            for p in health.problems
        ],
        "figures": [
            {"fault": f.fault, "figure": f.figure, "resolution": f"± {f.resolution_s:.2f} s",
             "widened": f"± {f.widened_resolution_s:.2f} s", "reason": f.reason}
            for f in health.figures
        ],
        "undecided": [{"objective": u.objective, "reasons": u.reasons} for u in health.undecided],
        "schedule": schedule_text,
        "latency": [
            {"phase": name, "probes": f"{v.probes:,}", "p50": _ms(v.p50_ms), "p95": _ms(v.p95_ms), "p99": _ms(v.p99_ms)}
            for name, v in health.latency_from_intended.items()
        ],
        "clock": health.latency_clock,
    }


def health_spans(results: dict[str, Any]) -> list[tuple[float, float]]:
    """(start, length) in seconds from the run start of every health problem, for the timeline."""
    health = typed_health(results)
    if health is None:
        return []
    return [(p.at_s, p.length_s) for p in health.problems if p.at_s is not None]


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"
