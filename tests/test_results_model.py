"""The results.json models: measure's figures formatted into the document's shape, and a document
read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.measure import FaultTiming, MeasureSettings, ObjectiveSpec, PhaseStats, measure_run
from harness.measure.testing import probe_stream, set_between
from harness.results.model import SCHEMA, FaultResult, MeasurementInfo, ObjectiveResult, PhaseResult, RunResults

T0 = 3_000_020.0
RUN_START = T0 - 20.0
PHASES = {"baseline": (RUN_START, T0), "fault": (T0, T0 + 20), "recovery": (T0 + 20, T0 + 40)}
DESIGN_FAULT_KEYS = [
    "name", "type", "targets", "onset_at", "onset_source", "onset_uncertainty_s", "reverted_at",
    "time_to_detect_s", "rto_s", "failover_s", "failback_s", "degraded_s", "impact",
]
RECOMPUTED = Path(__file__).parent / "data" / "recomputed"


def _measured():  # type: ignore[no-untyped-def]
    samples = probe_stream(T0 + 40, 20.0, phase_s=RUN_START + 0.01)
    samples = set_between(samples, T0, T0 + 2.0, status=503)
    samples = set_between(samples, T0 + 2.0, T0 + 20.0, tier="gpu", latency_ms=30.0)
    fault = FaultTiming("provider-down", "endpoint_kill", T0, "docker-event:die", 0.002, T0 + 20, ["hosted"])
    objectives = ObjectiveSpec(rto_s=5.0, max_error_rate=0.11, p95_baseline_factor=2.0, failover_to="gpu")
    return measure_run(samples, PHASES, [fault], objectives, MeasureSettings(20.0))


def test_measured_figures_take_the_results_json_shape() -> None:
    m = _measured()
    [fault] = [FaultResult.of(f).model_dump(mode="json", exclude_unset=True) for f in m.faults]
    assert list(fault)[: len(DESIGN_FAULT_KEYS)] == DESIGN_FAULT_KEYS
    assert {"lost_requests", "resolution_s", "method", "rto_by_stream"} <= set(fault)
    assert "agreement" not in fault and "capacity_restored_s" not in fault  # absent, not null
    assert fault["impact"] == "recovered" and fault["onset_at"].endswith("Z")
    objectives = [ObjectiveResult.of(o).model_dump(exclude_unset=True) for o in m.objectives]
    assert [o["name"] for o in objectives] == ["rto_s", "max_error_rate", "p95_ms", "failover_to"]
    assert all("note" in o for o in objectives if o["name"] == "p95_ms")
    assert all("note" not in o for o in objectives if o["name"] == "max_error_rate")  # nothing to say
    measurement = MeasurementInfo.of(m).model_dump()
    assert measurement["samples"] == 1200 and measurement["method"].startswith("drill.rto/v2")
    assert set(measurement["clocks"]) >= {"rto_s", "failover_s"}


def test_a_phase_takes_the_results_json_shape() -> None:
    stats = PhaseStats("baseline", 1_700_000_000.0, 1_700_000_020.0, 400, 20.0, 0.0, 20.0, 41.23456, 60.0)
    entry = PhaseResult.of(stats).model_dump()
    assert list(entry)[:8] == ["start", "end", "requests", "rps", "error_rate", "p50_ms", "p95_ms", "p99_ms"]
    assert entry["stream"] == "probe" and entry["closed_loop"] is None
    assert entry["start"] == "2023-11-14T22:13:20.000000Z"
    assert entry["p95_ms"] == 41.235


@pytest.mark.parametrize("path", sorted(RECOMPUTED.glob("*.results.json")), ids=lambda p: p.name)
def test_a_document_reads_back_to_itself(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert RunResults.from_document(document).document() == document


def test_a_misspelt_key_is_refused() -> None:
    document = json.loads((RECOMPUTED / "latency-run.results.json").read_text(encoding="utf-8"))
    document["faults"][0]["rto"] = document["faults"][0].pop("rto_s")
    with pytest.raises(ValidationError, match="rto"):
        RunResults.from_document(document)


def test_one_schema_constant_names_results_json() -> None:
    """results.json's schema is spelled once, in results/model.py; the store writes and checks it."""
    from harness.results import store

    harness = Path(__file__).parent.parent / "harness"
    spelled = [p.relative_to(harness).as_posix() for p in harness.rglob("*.py")
               if '"drill.results/v1"' in p.read_text(encoding="utf-8")]
    assert spelled == ["results/model.py"]
    assert store.SCHEMA is SCHEMA
