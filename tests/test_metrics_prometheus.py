"""A real Prometheus (Debian's binary, scripts/prometheus-setup) scraping the real reference stack:
the local runtime starts and stops it, and drills check steady states and stop on PromQL.
Under CI=true a missing binary fails these tests (conftest.require)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from harness.engine import run_drill
from harness.metrics.client import PrometheusClient, PromQLError
from harness.rundir.events import (
    FaultApplied,
    FaultIntent,
    FaultReverted,
    LoadStarting,
    MetricsPreflight,
    StopTripped,
)
from harness.rundir.journal import applied_faults, read_journal
from harness.runtime.local import LocalRuntime
from harness.runtime.ports import port_in_use
from harness.runtime.stackfile import LocalStackSpec
from harness.scenario import load_scenario
from harness.testing import free_port, require, toxiproxy_binary
from harness.testing.drills import rebased

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def need_prometheus() -> None:
    require(shutil.which("prometheus") is not None, "the prometheus binary", "run scripts/prometheus-setup")


def test_the_local_runtime_runs_a_prometheus_that_scrapes_the_stack(tmp_path: Path) -> None:
    need_prometheus()
    node_port, prom_port = free_port(), free_port()
    spec = LocalStackSpec.model_validate({
        "kind": "Stack", "name": "one-node",
        "prometheus": {"listen": f"127.0.0.1:{prom_port}", "scrape_interval": "200ms"},
        "processes": [{
            "name": "gpu-x", "argv": [sys.executable, "-m", "targets.model_server"],
            "env": {"HOST": "127.0.0.1", "PORT": node_port, "NODE_ID": "gpu-x", "TIER": "gpu"},
            "port": node_port, "health": f"http://127.0.0.1:{node_port}/health", "labels": {"tier": "gpu"},
        }],
    })
    runtime = LocalRuntime(spec, tmp_path / "logs", base_dir=REPO)
    with runtime:
        assert runtime.prometheus_url == f"http://127.0.0.1:{prom_port}"
        with PrometheusClient(runtime.prometheus_url) as prom:
            assert prom.scrape_interval_s() == pytest.approx(0.2)
            prom.wait_for_first_scrape(timeout_s=20)
            up = prom.query("up")
            assert [(s.labels["service"], s.labels["tier"], s.value) for s in up] == [("gpu-x", "gpu", 1.0)]
            depth = prom.query('drill_model_queue_depth{service="gpu-x"}')
            assert [s.value for s in depth] == [0.0]
            with pytest.raises(PromQLError, match="cannot parse"):
                prom.query("sum(")
        assert (tmp_path / "logs" / "prometheus" / "data").is_dir()
    # Stopped with the stack: its port is free and its TSDB gone (metrics.json keeps what a drill needs).
    assert not port_in_use(prom_port)
    assert not (tmp_path / "logs" / "prometheus" / "data").exists()
    assert (tmp_path / "logs" / "prometheus" / "prometheus.yml").is_file()


def test_a_promql_stop_condition_aborts_mid_fault_and_reverts_everything(tmp_path: Path) -> None:
    need_prometheus()
    require(toxiproxy_binary() is not None, "toxiproxy-server", "run scripts/bootstrap")
    # The shipped scenario on free ports (its stack file's Prometheus too).
    path, _ = rebased(REPO / "scenarios" / "stop-when-promql.local.yaml", tmp_path)
    result = run_drill(load_scenario(path), out=tmp_path / "run")
    assert result.verdict == "aborted" and result.exit_code == 3
    assert result.abort_reason is not None and "drill_gateway_breaker_state" in result.abort_reason
    journal = list(read_journal(result.run_dir / "journal.jsonl"))
    events = [type(r.event) for r in journal]
    # Tripped during the fault phase, with the fault applied, and everything reverted before the end.
    assert events.index(FaultApplied) < events.index(StopTripped) < events.index(FaultReverted)
    assert applied_faults(result.run_dir / "journal.jsonl") == []
    assert result.results.document()["cleanup"]["ok"] is True
    reaction = result.results.document()["metrics"]["stop_reaction"]
    assert reaction["condition_true_at"] is not None
    assert reaction["condition_true_at"] <= reaction["condition_held_at"] < reaction["rollback_done_at"]
    charted = {entry["name"]: entry for entry in result.results.document()["metrics"]["series"]}
    assert any(s["labels"].get("tier") == "hosted" for s in charted["circuit breaker state per tier"]["series"])
    assert "Stack metric: circuit breaker state per tier" in result.report_path.read_text(encoding="utf-8")


def test_an_unmeetable_steady_state_aborts_before_any_fault_naming_the_query(tmp_path: Path) -> None:
    need_prometheus()
    require(toxiproxy_binary() is not None, "toxiproxy-server", "run scripts/bootstrap")
    shipped, _ = rebased(REPO / "scenarios" / "steady-state.local.yaml", tmp_path)
    text = shipped.read_text(encoding="utf-8").replace("{query: 'drill_gateway_pool_healthy_nodes', min: 2, for: 3s}",
                        "{query: 'drill_gateway_pool_healthy_nodes', min: 5, for: 0s}")
    path = tmp_path / "impossible.yaml"
    path.write_text(text, encoding="utf-8")
    result = run_drill(load_scenario(path), out=tmp_path / "run")
    assert result.verdict == "aborted" and result.exit_code == 3
    assert result.abort_reason is not None
    assert "steady state not met before any fault: drill_gateway_pool_healthy_nodes ≥ 5" in result.abort_reason
    events = [type(r.event) for r in read_journal(result.run_dir / "journal.jsonl")]
    assert FaultIntent not in events and LoadStarting not in events
    preflight = next(r.event for r in read_journal(result.run_dir / "journal.jsonl")
                     if isinstance(r.event, MetricsPreflight))
    assert [c["passed"] for c in preflight.steady_state] == [True, False, True]
    assert json.loads((result.run_dir / "results.json").read_text())["verdict"] == "aborted"
