"""What people read in the terminal: no Python reprs, units and targets, names not cut at 80
columns, a verdict line per run and per scenario (pure output: click's CliRunner, no stack)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO
from rich.console import Console

from harness.cli import main
from harness.measure.repeats import summarize_repeats
from harness.report.terminal import (
    params_text,
    repeat_table,
    repeat_targets,
    run_verdict_line,
    small_sample_caution,
)
from harness.scenario import load_scenario

REPRS = ("{'", "['", "{\"", "[\"", "='")  # dict, list and pydantic model reprs
SHIPPED = sorted((REPO / "scenarios").rglob("*.yaml"))


def render(renderable: object, width: int = 80) -> str:
    console = Console(width=width, record=True, highlight=False, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("path", [p for p in SHIPPED if "Campaign" not in p.read_text()], ids=lambda p: p.name)
def test_dry_run_of_every_shipped_scenario_prints_no_python_repr(path: Path) -> None:
    done = CliRunner().invoke(main, ["run", str(path), "--dry-run"])
    assert done.exit_code == 0, done.output
    assert not [r for r in REPRS if r in done.output], done.output
    assert "dry run" in done.output and "objectives:" in done.output


def test_dry_run_names_parameters_as_key_equals_value() -> None:
    done = CliRunner().invoke(main, ["run", str(REPO / "scenarios/latency.yaml"), "--dry-run"])
    assert "(latency_ms=2000)" in done.output
    assert "stop when: error rate ≥ 90.0 % for 10 s" in done.output


def test_params_text_flattens_lists_and_mappings() -> None:
    text = params_text({"mode": "kill", "labels": {"tier": "gpu"}, "nodes": ["a", "b"], "percent": 50.0})
    assert text == "mode=kill labels=tier=gpu nodes=a,b percent=50"


def _run(verdict: str, rto: float | None, **extra: object) -> dict[str, object]:
    return {
        "run_id": f"r-{rto}", "verdict": verdict,
        "faults": [{"name": "provider-slow-with-a-long-name", "rto_s": rto, "failover_s": 0.4, "failback_s": 1.2}],
        "phases": {"fault": {"error_rate": 0.02, "p95_ms": 120.0}},
        "objectives": [{"name": "rto_s", "target": 10.0, "measured": rto, "passed": rto is not None and rto <= 10}],
        **extra,
    }


def test_repeat_summary_fits_80_columns_with_units_targets_and_whole_names() -> None:
    runs = [_run("passed", 2.5), _run("failed", 12.0), _run("passed", 3.0)]
    summary = summarize_repeats(runs)
    loaded = load_scenario(REPO / "scenarios/latency.yaml")
    text = render(repeat_table("latency", summary, repeat_targets(loaded.spec.objectives)))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    assert "fault provider-slow-with-a-long-name" in text  # the whole name, as a heading
    lines = text.splitlines()
    for figure in ("failover_s", "failback_s", "rto_s", "error_rate", "p95_ms"):
        assert any(line.startswith(f"{figure} ") for line in lines), figure
    rto_row = next(line for line in lines if line.startswith("rto_s "))
    assert "3.00 s" in rto_row and "2.50–12.0 s" in rto_row and "≤ 10.0 s" in rto_row  # units, target
    assert "≤ 10.0 %" in text and "≤ 2x" in text and "after" in text  # p95 judged after failover
    assert "2 passed, 1 failed, 0 inconclusive, 0 aborted" in text
    assert not [r for r in REPRS if r in text]


def test_repeat_verdict_line_per_run_and_caution_below_five_runs() -> None:
    assert "all 1 objectives met" in run_verdict_line(1, 3, _run("passed", 2.5))
    failed = run_verdict_line(2, 3, _run("failed", 12.0))
    assert "run 2/3" in failed and "FAILED" in failed and "rto_s 12.0 s > target 10.0 s" in failed
    aborted = run_verdict_line(3, 3, _run("aborted", None, abort_reason="stop condition met"))
    assert "ABORTED" in aborted and "stop condition met" in aborted
    caution = small_sample_caution(3)
    assert caution is not None and "n = 3" in caution and "95 %" in caution
    assert small_sample_caution(5) is None


def test_campaign_status_says_when_how_long_and_a_verdict_per_scenario(tmp_path: Path) -> None:
    summary = {
        "schema": "drill.campaign/v1", "name": "quarterly", "verdict": "failed", "exit_code": 1,
        "started_at": "2026-11-30T07:00:00Z", "ended_at": "2026-11-30T07:04:10Z",
        "runs": [
            {"scenario": "/x/endpoint-kill.yaml", "exit_code": 0, "verdict": "passed", "run_dir": "/r/01",
             "error": None, "faults": [{"name": "provider-down", "rto_s": 1.25}], "objectives": []},
            {"scenario": "/x/gpu-node-loss.yaml", "exit_code": 1, "verdict": "failed", "run_dir": "/r/02",
             "error": None, "faults": [{"name": "gpu-loss", "rto_s": 14.0}],
             "objectives": [{"name": "rto_s", "target": 10.0, "measured": 14.0, "passed": False}]},
            {"scenario": "/x/region.yaml", "exit_code": 2, "verdict": "bad_input", "run_dir": None,
             "error": "region.yaml:3 name: required field is missing"},
        ],
    }
    (tmp_path / "campaign.json").write_text(json.dumps(summary))
    done = CliRunner().invoke(main, ["campaign", "status", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert "ran 2026-11-30 07:00:00.000 UTC, took 250 s (4 min 10 s)" in done.output
    assert "1/3 endpoint-kill.yaml PASSED: RTO provider-down 1.25 s" in done.output
    assert "2/3 gpu-node-loss.yaml FAILED: rto_s 14.0 s > target 10.0 s; RTO gpu-loss 14.0 s" in done.output
    assert "3/3 region.yaml BAD_INPUT: region.yaml:3 name: required field is missing" in done.output
    assert not [r for r in REPRS if r in done.output]


def test_applied_fault_names_what_its_selector_resolved_to() -> None:
    from harness.engine import _hit_text
    from harness.scenario.fault_specs import parse_fault_spec

    kill = parse_fault_spec({"name": "k", "type": "endpoint_kill", "target": {"service": "hosted-model"}})
    assert _hit_text(kill, ["drill-staging-hosted-model-1"]) == "service hosted-model → drill-staging-hosted-model-1"
    slow = parse_fault_spec({"name": "s", "type": "latency", "latency_ms": 5, "target": {"proxy": "p"}})
    assert _hit_text(slow, ["toxiproxy:p"]) == "proxy p"  # a proxy names itself once
